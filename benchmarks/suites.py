"""The suites: training throughput (MLP, CNN), loss curves, memory, the products alone; the
per-layer timings live in ``layer_suite`` (re-exported here, as ``run.py`` finds suites by name)."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from harness import SETTLE_S, disturbed, guarded, interleaved, optional, summary, table
from layer_suite import layers, layers_table  # noqa: F401  (run.py: suites.layers)
from workloads import (
    GemmBound,
    OursTrainer,
    SklearnTrainer,
    TorchTrainer,
    cnn,
    mlp,
    synthetic,
)

import backprop as bp
from backprop.gemm import gemm_flops

SHAPES = {"mlp": (784,), "cnn": (1, 28, 28)}


# -- training throughput ---------------------------------------------------------------------
def training(kind: str, args: Any) -> dict[str, Any]:
    """Samples/s of one epoch for each batch size: ours, PyTorch, sklearn, GEMM bound."""
    n = args.samples if kind == "mlp" else args.cnn_samples
    sizes = args.batch_sizes if kind == "mlp" else [args.cnn_batch]
    x, y = synthetic(n, SHAPES[kind], args.dtype)
    build = mlp if kind == "mlp" else cnn
    out: dict[str, Any] = {"samples": n, "notes": [], "batches": {}}
    if optional("torch") is None:
        out["notes"].append("PyTorch not installed: skipped")
    if kind == "mlp" and optional("sklearn") is None:
        out["notes"].append("scikit-learn not installed: skipped")
    for bs in sizes:
        model = build(args.dtype, seed=0)
        runners: dict[str, Any] = {"backprop": OursTrainer(model, x, y, bs)}
        if optional("torch") is not None:  # built before ours trains: same initial weights
            runners["PyTorch"] = TorchTrainer(model, x, y, bs)
        if kind == "mlp" and optional("sklearn") is not None:
            runners["sklearn"] = SklearnTrainer(model, x, y, bs)
        gemm = GemmBound(model, x, bs)
        runners["GEMM bound"] = gemm
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at max_iter=1
            for r in runners.values():  # warm-up: allocator, BLAS threads, caches
                r.epoch(10**6)
            guard = args.guard
            retried, kept = (guard.retried, guard.kept_disturbed) if guard else (0, 0)
            samples = interleaved(runners, args.repeats, n, guard)
        res = summary(samples, "backprop")
        if guard is not None:
            res["rounds_rerun"] = guard.retried - retried
            res["rounds_kept_disturbed"] = guard.kept_disturbed - kept
            if res["rounds_kept_disturbed"]:
                out["notes"].append(
                    f"batch {bs}: {res['rounds_kept_disturbed']} round(s) still found a core "
                    "taken by another process after every retry; kept (ratios less reliable)")
        res["GEMM bound"]["fraction"] = res["GEMM bound"].pop("ratio")
        res["gemm_gflop_per_step"] = gemm.flops / 1e9
        res["gemm_gflops"] = gemm.epoch_flops * res["GEMM bound"]["median"] / n / 1e9
        res["disturbed"] = disturbed(res["gemm_gflops"], args.reference_gflops)
        if res["disturbed"]:
            out["notes"].append(
                f"WARNING batch {bs}: the GEMM bound ran at {res['gemm_gflops']:.0f} GFLOP/s "
                f"against {args.reference_gflops:.0f} for a 512^3 product at the start: "
                "another process took the cores during this row; its numbers are not valid")
        res["fit"] = runners["backprop"].uses_fit
        out["batches"][bs] = res
        _print_training_row(kind, bs, res)
    if optional("torch") is not None and args.curve_epochs:
        out["loss_curves"] = loss_curves(args, x, y, kind)
    return out


def _print_training_row(kind: str, bs: int, res: dict[str, Any]) -> None:
    parts = [f"{kind} batch {bs}: backprop {res['backprop']['median']:,.0f}/s"]
    for k, v in res.items():
        if isinstance(v, dict) and "ratio" in v:
            parts.append(f"{k} {v['median']:,.0f}/s (x{v['ratio']:.2f})")
    parts.append(f"GEMM bound {res['GEMM bound']['median']:,.0f}/s "
                 f"(fraction {res['GEMM bound']['fraction']:.2f})")
    if res.get("rounds_rerun"):
        parts.append(f"{res['rounds_rerun']} round(s) re-run after a disturbed probe")
    print("  " + ", ".join(parts), flush=True)


def training_table(kind: str, res: dict[str, Any]) -> str:
    names = [k for k in ("PyTorch", "sklearn") if any(k in b for b in res["batches"].values())]
    headers = ["batch", "backprop /s"]
    for k in names:
        headers += [f"{k} /s", "ours/" + ("torch" if k == "PyTorch" else k)]
        if k == "PyTorch":
            headers.append("best/best")
    headers += ["GEMM bound /s", "of bound"]
    rows = []
    for bs, b in res["batches"].items():
        row = [bs, b["backprop"]["median"]]
        for k in names:
            row += [b[k]["median"], f"{b[k]['ratio']:.2f}x"] if k in b else [None, None]
            if k == "PyTorch":
                row.append(f"{b[k]['best_ratio']:.2f}x" if k in b else None)
        fraction = b["GEMM bound"]["fraction"]  # above 1: the products ran slow (disturbed)
        row += [b["GEMM bound"]["median"], f"{fraction:.2f}" + (" (invalid)" if fraction > 1
                                                                 else "")]
        rows.append(row)
    text = table(headers, rows)
    if any(b["GEMM bound"]["fraction"] > 1 for b in res["batches"].values()):
        text += ("\n  (invalid): a step cannot beat its own products; they were timed "
                 "while another process took a core: rerun")
    return text


# -- loss curves: no accuracy traded for speed ---------------------------------------------
class _Record(bp.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        self.losses.append(logs["loss"])


def loss_curves(args: Any, x: np.ndarray, y: np.ndarray, kind: str = "mlp") -> dict[str, Any]:
    """Per-step losses of ours and PyTorch from the same weights and batch order (the MLP
    at batch 128, or the CNN at its batch size).

    In float32 a PyTorch float64 run from the same start is the reference: float32
    rounding differences grow over training, so "within noise" means ours is as
    close to the float64 curve as PyTorch float32 is.
    """
    bs = (args.cnn_batch if kind == "cnn" else
          128 if 128 in args.batch_sizes else args.batch_sizes[0])
    model = (cnn if kind == "cnn" else mlp)(args.dtype, seed=1)
    runs = {"PyTorch": TorchTrainer(model, x, y, bs)}
    if np.dtype(args.dtype) == np.float32:
        runs["PyTorch f64"] = TorchTrainer(model.astype(np.float64), x.astype(np.float64), y, bs)
    ours, rec = OursTrainer(model, x, y, bs), _Record()
    losses: dict[str, list[float]] = {k: [] for k in runs}
    for epoch in range(args.curve_epochs):
        if ours.uses_fit:
            ours.epoch(epoch, callbacks=(rec,))
        else:  # pragma: no cover
            ours.explicit_epoch(epoch, rec.losses)
        for k, run in runs.items():
            run.epoch(epoch, losses[k])
    curves = {"backprop": np.array(rec.losses), **{k: np.array(v) for k, v in losses.items()}}
    chunk = max(1, len(rec.losses) // 12)
    points = [{"steps": [i, i + chunk], **{k: float(c[i:i + chunk].mean())
                                          for k, c in curves.items()}}
              for i in range(0, len(rec.losses) - chunk + 1, chunk)]
    pairs = [("backprop", "PyTorch")] + [(k, "PyTorch f64") for k in ("backprop", "PyTorch")
                                         if "PyTorch f64" in curves]
    out = {"batch_size": bs, "epochs": args.curve_epochs, "steps": len(rec.losses),
           "points": points, "max_rel_diff": {}, "final_weights_rel_diff": {}}
    weights = {"backprop": [p.value for p in model.parameters()],
               **{k: run.weights() for k, run in runs.items()}}
    for a, b in pairs:
        key = f"{a} vs {b}"
        out["max_rel_diff"][key] = {
            "chunk_means": max(abs(p[a] - p[b]) / abs(p[b]) for p in points),
            "single_steps": float(np.max(np.abs(curves[a] - curves[b]) / np.abs(curves[b])))}
        out["final_weights_rel_diff"][key] = max(
            float(np.linalg.norm(u - v) / np.linalg.norm(v))
            for u, v in zip(weights[a], weights[b], strict=True))
    out["agree"], out["verdict"] = _verdict(out["max_rel_diff"])
    return out


def _verdict(diffs: dict[str, dict[str, float]]) -> tuple[bool, str]:
    """Whether the curves agree within noise: in float32, ours as close to the float64
    curve as 3x PyTorch float32 is (or within 1e-5); in float64, within 1e-10 of PyTorch."""
    if "backprop vs PyTorch f64" in diffs:
        ours = diffs["backprop vs PyTorch f64"]["chunk_means"]
        noise = diffs["PyTorch vs PyTorch f64"]["chunk_means"]
        ok = ours <= max(3 * noise, 1e-5)
        return ok, (f"{'agree' if ok else 'DISAGREE'} within noise: ours {ours:.1e} from the "
                    f"float64 curve, PyTorch float32 {noise:.1e} (limit max(3x, 1e-5))")
    ours = diffs["backprop vs PyTorch"]["chunk_means"]
    ok = ours <= 1e-10
    return ok, (f"{'agree' if ok else 'DISAGREE'}: ours {ours:.1e} from PyTorch's curve "
                f"(limit 1e-10 in float64)")


def curves_table(c: dict[str, Any]) -> str:
    names = [k for k in ("backprop", "PyTorch", "PyTorch f64") if k in c["points"][0]]
    rows = [[f"{p['steps'][0]}-{p['steps'][1]}", *(f"{p[k]:.5f}" for k in names),
             f"{abs(p['backprop'] - p['PyTorch']) / abs(p['PyTorch']):.1e}"]
            for p in c["points"]]
    text = table(["steps", *(f"{k} loss" for k in names), "ours vs torch"], rows)
    lines = [f"  {pair}: max rel diff {d['chunk_means']:.1e} (chunk means), "
             f"{d['single_steps']:.1e} (single steps); final weights "
             f"{c['final_weights_rel_diff'][pair]:.1e} (max over params of |dW|/|W|)"
             for pair, d in c["max_rel_diff"].items()]
    if "verdict" in c:
        lines.append(f"  {c['verdict']}")
    return text + "\n" + "\n".join(lines)


# -- memory ---------------------------------------------------------------------------------
def memory(args: Any) -> dict[str, Any]:
    """Peak memory of one training epoch (MLP, batch 128), each framework in a fresh process."""
    bs = 128 if 128 in args.batch_sizes else args.batch_sizes[0]
    out: dict[str, Any] = {"batch_size": bs, "samples": args.samples}
    for who in ("ours", "torch"):
        if who == "torch" and optional("torch") is None:
            continue
        cmd = [sys.executable, str(Path(__file__).with_name("run.py")), "--_child",
               f"memory-{who}", "--batch-sizes", str(bs), "--samples", str(args.samples),
               "--dtype", args.dtype.__name__, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[who] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {who}: {out[who]}", flush=True)
    return out


def memory_child(who: str, args: Any) -> dict[str, Any]:
    """In a fresh process: max-RSS growth (and tracemalloc peak, ours) over one epoch."""
    bs = args.batch_sizes[0]
    x, y = synthetic(args.samples, (784,), args.dtype)
    # torch copies the weights of a model of ours built before the baseline (its copy,
    # gradients and momentum counted); ours is built after it, so its parameters and
    # gradient buffers are counted too (session 33: they were left out)
    model = mlp(args.dtype, seed=0) if who == "torch" else None
    facts: dict[str, Any] = {"rss_baseline": _reset_peak_rss()}
    rss0 = _peak_rss()
    if who == "ours":
        tracemalloc.start()
        start, _ = tracemalloc.get_traced_memory()
        model = mlp(args.dtype, seed=0)
    trainer = (OursTrainer if who == "ours" else TorchTrainer)(model, x, y, bs)
    trainer.epoch(0)  # counted: the model, the optimizer's state, one epoch
    if who == "ours":
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        facts["tracemalloc_peak_bytes"] = peak - start
    facts["rss_delta_bytes"] = _peak_rss() - rss0
    itemsize = np.dtype(args.dtype).itemsize
    facts.update({"params_bytes": model.num_params * itemsize,
                  "params_grads_momentum_bytes": 3 * model.num_params * itemsize,
                  "data_bytes": x.nbytes + y.nbytes})
    return facts


def _peak_rss() -> int:
    """Peak RSS in bytes: VmHWM of this process's memory map where Linux shows it.

    ``getrusage``'s ``ru_maxrss`` is the fallback only: it keeps the peak of the
    process image replaced by ``exec`` (here the parent benchmark, PyTorch loaded),
    which would hide any growth below it.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return 1024 * int(line.split()[1])
    except OSError:
        pass
    return 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> str:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux), so the max-RSS
    growth counts training only, not the transient peaks of building the data."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "current RSS (peak reset via /proc/self/clear_refs)"
    except OSError:
        return "peak RSS so far (could not reset it: growth may read low)"


# -- the matrix products alone: NumPy's BLAS against PyTorch's ------------------------------
def gemm(args: Any) -> dict[str, Any]:
    """The MLP step's products, each as ``matmul(a, b, out=c)``: NumPy vs PyTorch.

    Same shapes (``model.gemm_shapes((B, 784), input_grad=False)``), same plain
    layout for both, preallocated outputs, interleaved blocks; per batch size the
    median over repeats of the time of all products of one step, at 1 thread and
    at the run's thread count. Says how much of a gap is the BLAS library alone.
    Each round (NumPy then PyTorch) is guarded like the training rounds.
    """
    from threadpoolctl import threadpool_limits

    torch = optional("torch")
    model = mlp(args.dtype, seed=0)
    guard = args.guard
    out: dict[str, Any] = {"threads": {}, "notes": []}
    if torch is None:
        out["notes"].append("PyTorch not installed: NumPy only")
    for threads in sorted({1, args.threads}):
        rows = {}
        with threadpool_limits(threads):
            if torch is not None:
                torch.set_num_threads(threads)
            for bs in args.batch_sizes:
                shapes = model.gemm_shapes((bs, 784), input_grad=False)
                flops = gemm_flops(shapes)
                rng = np.random.default_rng(0)
                ops = [(rng.random((m, k)).astype(args.dtype), rng.random((k, n)).astype(
                    args.dtype), np.empty((m, n), args.dtype)) for m, k, n in shapes]
                runs = {"numpy": lambda ops=ops: [np.matmul(a, b, out=c) for a, b, c in ops]}
                if torch is not None:
                    tops = [tuple(torch.from_numpy(t) for t in op) for op in ops]
                    runs["torch"] = lambda tops=tops: [torch.matmul(a, b, out=c)
                                                       for a, b, c in tops]
                times: dict[str, list[float]] = {k: [] for k in runs}

                def round_(runs: dict[str, Any] = runs) -> dict[str, float]:
                    row = {}
                    for name, run in runs.items():
                        time.sleep(SETTLE_S)  # the other library's workers stop spinning
                        run()
                        start = time.perf_counter()
                        for _ in range(20):
                            run()
                        row[name] = (time.perf_counter() - start) / 20
                    return row

                retried, kept = (guard.retried, guard.kept_disturbed) if guard else (0, 0)
                for _ in range(max(args.repeats, 5)):
                    for name, value in guarded(round_, guard).items():
                        times[name].append(value)
                row = {name: {"ms": 1e3 * statistics.median(t),
                              "gflops": flops / statistics.median(t) / 1e9}
                       for name, t in times.items()}
                if guard is not None:
                    row["rounds_rerun"] = guard.retried - retried
                    row["rounds_kept_disturbed"] = guard.kept_disturbed - kept
                    if row["rounds_kept_disturbed"]:  # said as for the training rows
                        out["notes"].append(
                            f"{threads} thread(s), batch {bs}: {row['rounds_kept_disturbed']} "
                            "round(s) still found a core taken by another process after "
                            "every retry; kept (times less reliable)")
                if torch is not None:
                    row["numpy_over_torch"] = statistics.median(
                        a / b for a, b in zip(times["numpy"], times["torch"], strict=True))
                rows[bs] = row
        out["threads"][threads] = rows
    if torch is not None:
        torch.set_num_threads(args.threads)
    return out


def gemm_table(res: dict[str, Any]) -> str:
    rows = []
    for threads, per in res["threads"].items():
        for bs, r in per.items():
            t = r.get("torch")
            rows.append([f"{threads} thread{'s' if int(threads) > 1 else ''}, batch {bs}",
                         f"{r['numpy']['ms']:.3f}", f"{r['numpy']['gflops']:.0f}",
                         f"{t['ms']:.3f}" if t else None, f"{t['gflops']:.0f}" if t else None,
                         f"{r['numpy_over_torch']:.2f}x" if t else None])
    return table(["products of one MLP step", "NumPy ms", "GFLOP/s", "PyTorch ms", "GFLOP/s",
                  "NumPy time / PyTorch time"], rows)
