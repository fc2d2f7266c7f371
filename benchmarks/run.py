"""Training-speed benchmarks: backprop vs PyTorch eager, scikit-learn and the GEMM bound.

    python benchmarks/run.py                       # mlp, cnn, layers, memory, gemm; float32
    python benchmarks/run.py --quick               # a fast smoke run
    python benchmarks/run.py --suite mlp --dtype float64 --json mlp64.json

Suites: ``mlp`` (784-512-256-10 at each batch size) and ``cnn`` (two conv blocks on
1x28x28), each with the loss curves of ours and PyTorch from the same weights and batch
order and a verdict on them, ``layers`` (forward/backward per layer), ``memory`` (peak memory of an
epoch), ``gemm`` (the MLP step's matrix products alone, NumPy vs PyTorch), ``profile``
(``bp.bench`` per-layer breakdown and a cProfile of one epoch).
Competitors run interleaved with ours; ratios are medians of per-repeat ratios. The
table is printed and the JSON (every repeat of the mlp and cnn suites, the medians of the
layers and gemm suites, the machine's facts) written to
benchmarks/out/results-<dtype>.json (``-<suites>`` when not all, ``-quick``) unless
``--json`` names another path ('' for none).
See benchmarks/RESULTS.md for the latest numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # backprop from this checkout

import numpy as np  # noqa: E402
from harness import (  # noqa: E402
    QuietGuard,
    blas_line,
    limit_threads,
    machine_facts,
    optional,
    pinning_warning,
    reference_gflops,
    table,
)

SUITES = ("mlp", "cnn", "layers", "memory", "gemm", "profile")
DEFAULT_SUITES = ["mlp", "cnn", "layers", "memory", "gemm"]
TARGETS = [  # (suite, batch, key, threshold, text)
    ("mlp", 32, "PyTorch", 1.3, "MLP >= 1.3x PyTorch at batch 32"),
    ("mlp", 128, "PyTorch", 1.3, "MLP >= 1.3x PyTorch at batch 128"),
    ("mlp", 512, "PyTorch", 1.1, "MLP >= 1.1x PyTorch at batch 512"),
    ("mlp", 32, "GEMM bound", 0.65, "MLP >= 0.65 of the GEMM bound at batch 32"),
    ("mlp", 128, "GEMM bound", 0.8, "MLP >= 0.8 of the GEMM bound at batch 128"),
    ("mlp", 512, "GEMM bound", 0.8, "MLP >= 0.8 of the GEMM bound at batch 512"),
    ("cnn", None, "PyTorch", 1.0, "CNN >= 1.0x PyTorch"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default=",".join(DEFAULT_SUITES),
                   help=f"comma-separated, from {','.join(SUITES)}")
    p.add_argument("--batch-sizes", default="32,128,512", help="MLP batch sizes")
    p.add_argument("--cnn-batch", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved rounds per measurement (default 5; 2 with --quick)")
    p.add_argument("--samples", type=int, default=16384, help="MLP samples per epoch")
    p.add_argument("--cnn-samples", type=int, default=2048)
    p.add_argument("--curve-epochs", type=int, default=3,
                   help="epochs of the MLP and CNN suites' loss curves beside PyTorch's (0: none)")
    p.add_argument("--layer-min-time", type=float, default=None,
                   help="seconds per timed block in the layers suite (default 0.05; 0.01 "
                        "with --quick)")
    p.add_argument("--layers", type=lambda v: [s for s in v.split(",") if s], default=[],
                   help="layers suite: only the cases whose name contains one of these "
                        "comma-separated parts (default: all)")
    p.add_argument("--threads", type=int,
                   default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count())
    p.add_argument("--no-guard", dest="guard", action="store_false",
                   help="do not probe for a core taken by another process between rounds")
    p.add_argument("--json", help="write the results here (default "
                   "benchmarks/out/results-<dtype>[-<suites>][-quick].json; '' for none)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, 2 repeats unless --repeats says: a smoke run")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:  # --quick's defaults yield to the options given with it
        args.repeats = 2 if args.quick else 5
    if args.layer_min_time is None:
        args.layer_min_time = 0.01 if args.quick else 0.05
    args.suites = list(dict.fromkeys(s.strip() for s in args.suite.split(",") if s.strip()))
    for s in args.suites:
        if s not in SUITES:
            p.error(f"unknown suite {s!r}; expected some of {','.join(SUITES)}")
    if not args.suites:
        p.error(f"--suite: expected some of {','.join(SUITES)}, got {args.suite!r}")
    text = args.batch_sizes
    try:
        args.batch_sizes = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        args.batch_sizes = []
    if not args.batch_sizes:
        p.error(f"--batch-sizes: expected comma-separated integers, got {text!r}")
    least = {"--batch-sizes": min(args.batch_sizes, default=0), "--cnn-batch": args.cnn_batch,
             "--repeats": args.repeats, "--samples": args.samples,
             "--cnn-samples": args.cnn_samples, "--threads": args.threads}
    for name, value in least.items():
        if value < 1:
            p.error(f"{name}: expected at least 1, got {value}")
    if args.curve_epochs < 0:
        p.error(f"--curve-epochs: expected at least 0 (0: no loss curves), got {args.curve_epochs}")
    if not 0 < args.layer_min_time < float("inf"):
        p.error(f"--layer-min-time: expected a positive number of seconds, "
                f"got {args.layer_min_time}")
    args.batch_sizes = list(dict.fromkeys(args.batch_sizes))
    if args.json and not Path(args.json).resolve().parent.is_dir():  # not after the run
        p.error(f"--json: expected a path in an existing folder, got {args.json!r}")
    if args.quick:
        args.samples, args.cnn_samples = min(args.samples, 2048), min(args.cnn_samples, 256)
        args.curve_epochs = min(args.curve_epochs, 1)
    for suite, name, n, batch in (("mlp", "--samples", args.samples, max(args.batch_sizes)),
                                  ("cnn", "--cnn-samples", args.cnn_samples, args.cnn_batch)):
        if suite in args.suites and n < batch:  # an epoch of one short batch: its row
            # would be labelled with a batch size that no step ran
            p.error(f"{name}: expected at least the batch size {batch}"
                    f"{' (--quick caps it)' if args.quick else ''}, got {n}")
    args.dtype = np.dtype(args.dtype).type
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = limit_threads(args.threads)  # noqa: F841 - held for the whole run
    import suites

    if args._child:
        who = args._child.removeprefix("memory-")
        print(json.dumps(suites.memory_child(who, args)))
        return 0
    facts = machine_facts()
    args.reference_gflops = facts["reference_gflops_start"] = reference_gflops(args.dtype)
    args.guard = QuietGuard(args.dtype, threads=args.threads) if args.guard else None
    if args.guard is not None:
        facts["guard_reference_gflops"] = args.guard.reference
        facts["guard_best_speedup"] = args.guard.best_speedup
    print(f"machine: {facts['cpu']}, {facts['cores_available']} cores, threads {args.threads}, "
          f"load {facts['loadavg_start']}, numpy {facts['numpy']}, torch {facts['torch']}, "
          f"sklearn {facts['sklearn']}, BLAS {blas_line(facts)}", flush=True)
    if (note := pinning_warning(facts)) is not None:
        print(note, flush=True)
    results: dict[str, Any] = {}
    for name in args.suites:
        print(f"\n== {name} ==", flush=True)
        results[name] = run_suite(name, args, suites)
    facts["loadavg_end"] = list(os.getloadavg())
    facts["reference_gflops_end"] = reference_gflops(args.dtype)
    config = {k: (v.__name__ if k == "dtype" else v) for k, v in vars(args).items()
              if k not in ("suite", "_child", "json", "guard")}
    config["guard"] = args.guard is not None
    report = {"machine": facts, "config": config, "results": results,
              "targets": check_targets(results, args)}
    print("\n" + render(report, suites))
    path = json_path(args)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"\nwrote {path}")
    return 0


def json_path(args: argparse.Namespace) -> Path | None:
    """Where the JSON goes: ``--json`` ('': none), else benchmarks/out/results-<dtype>.json,
    with the suites when not the default ones and ``-quick`` for a smoke run."""
    if args.json is None:  # one file per dtype and choice of suites (a smoke run: its own)
        suites = "" if args.suites == DEFAULT_SUITES else "-" + "-".join(args.suites)
        name = f"results-{args.dtype.__name__}{suites}{'-quick' if args.quick else ''}.json"
        return Path(__file__).with_name("out") / name
    return Path(args.json) if args.json else None


def run_suite(name: str, args: argparse.Namespace, suites: Any) -> Any:
    if name in ("mlp", "cnn"):
        return suites.training(name, args)
    if name == "profile":
        from profile_step import profile

        return profile(args)
    return getattr(suites, name)(args)


def check_targets(results: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    targets = TARGETS if args.dtype == np.float32 else [
        ("mlp", b, "PyTorch", 1.0, f"float64 MLP >= 1.0x PyTorch float64 at batch {b}")
        for b in args.batch_sizes] + [("cnn", None, "PyTorch", 1.0, "float64 CNN >= 1.0x PyTorch")]
    for suite, bs, key, threshold, text in targets:
        batches = results.get(suite, {}).get("batches", {})
        bs = args.cnn_batch if bs is None else bs
        entry = batches.get(bs, {}).get(key)
        if entry is None:
            continue
        value = entry["fraction"] if key == "GEMM bound" else entry["ratio"]
        invalid = key == "GEMM bound" and value > 1  # a step faster than its own products
        kept = batches[bs].get("rounds_kept_disturbed", 0)  # taken after every retry
        out.append({"target": text, "value": round(value, 3), "threshold": threshold,
                    "met": value >= threshold and not invalid, "invalid": invalid,
                    "disturbed": batches[bs].get("disturbed", False) or kept > 0,
                    "rounds_kept_disturbed": kept})
    return out


def render(report: dict[str, Any], suites: Any) -> str:
    m, c, res = report["machine"], report["config"], report["results"]
    lines = [f"{m['cpu']} | {m['cores_available']} cores, {c['threads']} threads | "
             f"{c['dtype']} | load {m['loadavg_start']} -> {m['loadavg_end']} | 512^3 matmul "
             f"{m['reference_gflops_start']:.0f} -> {m['reference_gflops_end']:.0f} GFLOP/s | "
             f"numpy {m['numpy']}, torch {m['torch']}, sklearn {m['sklearn']} | git {m['git']}",
             f"BLAS: {blas_line(m)}"]
    if (note := pinning_warning(m)) is not None:
        lines.append(note)
    if m["reference_gflops_end"] < m["reference_gflops_start"] / 2:
        lines.append("WARNING: the 512^3 matmul ran at less than half its start speed at the end: "
                     "the machine got busy during the run; rerun when `uptime` shows it idle")
    for kind, title in (("mlp", "MLP 784-512-256-10"), ("cnn", "CNN 2x(conv3x3-ReLU-pool)-128-10")):
        if kind in res:
            lines += ["", f"{title}: training samples/s, one epoch of {res[kind]['samples']} "
                      f"samples, median of {c['repeats']} interleaved repeats",
                      suites.training_table(kind, res[kind]), *res[kind]["notes"]]
    for kind in ("mlp", "cnn"):
        if "loss_curves" in res.get(kind, {}):
            cv = res[kind]["loss_curves"]
            lines += ["", f"{kind.upper()} loss curves from the same weights and batches (batch "
                      f"{cv['batch_size']}, {cv['epochs']} epochs, {cv['steps']} steps), chunk "
                      f"means", suites.curves_table(cv)]
    if "layers" in res:
        lines += ["", "Per layer, microseconds per call (forward in training mode; backward "
                  "with dx)", suites.layers_table(res["layers"])]
    if "gemm" in res:
        lines += ["", "The matrix products alone (one MLP step's, matmul with out=, "
                  "median of interleaved blocks)", suites.gemm_table(res["gemm"]),
                  *res["gemm"]["notes"]]
    if "memory" in res:
        mem = res["memory"]
        rows = [[who, mem[who].get("tracemalloc_peak_bytes"), mem[who]["rss_delta_bytes"],
                 mem[who]["params_grads_momentum_bytes"]] for who in ("ours", "torch")
                if who in mem]
        lines += ["", f"Memory of one epoch (MLP, batch {mem['batch_size']}), bytes",
                  table(["", "tracemalloc peak", "max RSS growth", "params+grads+momentum"],
                        rows)]
    if report["targets"]:
        lines += ["", table(["target", "value", "met"], [
            [t["target"], t["value"], ("yes" if t["met"] else "NO") + _flag(t)]
            for t in report["targets"]])]
    return "\n".join(lines)


def _flag(target: dict[str, Any]) -> str:
    """What a target's row says beside met: not valid when disturbed (the bound ran slow,
    or rounds were kept with a core taken by another process after every retry)."""
    if not (target["disturbed"] or target.get("invalid")):
        return ""
    kept = target.get("rounds_kept_disturbed", 0)
    return f" (disturbed run{f': {kept} round(s) kept disturbed' if kept else ''}, not valid)"


if __name__ == "__main__":
    optional("torch")  # import before threadpoolctl limits, so its pools are seen
    sys.exit(main())
