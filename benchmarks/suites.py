"""The suites: training throughput (MLP, CNN), loss curves, per-layer timings, memory."""

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


# -- per-layer microbenchmarks ------------------------------------------------------------------
def _layer_cases(dtype: Any) -> list[tuple[str, Any, tuple[int, ...], Any]]:
    """(name, our layer, input shape, PyTorch module factory or None)."""
    def t(make):
        return make if optional("torch") is not None else None

    nn = optional("torch.nn")
    cases = [
        ("Dense(784, 512)", bp.Dense(784, 512, rng=0, dtype=dtype), (128, 784),
         t(lambda lay: _torch_param_copy(nn.Linear(784, 512), {"weight": lay.params["W"].T,
                                                                "bias": lay.params["b"]}))),
        ("ReLU", bp.ReLU(dtype=dtype), (128, 512), t(lambda _: nn.ReLU())),
        ("ReLU (conv map)", bp.ReLU(dtype=dtype), (64, 32, 28, 28), t(lambda _: nn.ReLU())),
        ("Sigmoid", bp.Sigmoid(dtype=dtype), (128, 512), t(lambda _: nn.Sigmoid())),
        ("Softmax", bp.Softmax(dtype=dtype), (128, 512), t(lambda _: nn.Softmax(dim=-1))),
        ("SoftmaxCrossEntropy", bp.SoftmaxCrossEntropy(), (128, 10), t("cross_entropy")),
        ("Conv2D(32, 64, 3, padding=1)", bp.Conv2D(32, 64, 3, padding=1, rng=0, dtype=dtype),
         (64, 32, 14, 14), t(lambda lay: _torch_param_copy(
             nn.Conv2d(32, 64, 3, padding=1),
             {"weight": lay.params["W"], "bias": lay.params["b"]}))),
        ("MaxPool2D(2)", bp.MaxPool2D(2, dtype=dtype), (64, 32, 28, 28),
         t(lambda _: nn.MaxPool2d(2))),
    ]
    cases += [
        ("LayerNorm(256)", bp.LayerNorm(256, dtype=dtype), (32, 128, 256),
         t(lambda _: nn.LayerNorm(256))),
        ("GELU", bp.GELU(dtype=dtype), (256, 1024), t(lambda _: nn.GELU())),
        ("GELU (conv map)", bp.GELU(dtype=dtype), (64, 32, 28, 28), t(lambda _: nn.GELU())),
        ("SoftmaxCrossEntropy (1000 classes)", bp.SoftmaxCrossEntropy(), (1024, 1000),
         t("cross_entropy")),
        ("Huber", bp.Huber(), (8192, 100), t("huber")),
    ]
    if hasattr(bp, "BatchNorm"):
        cases += [("BatchNorm(64) NCHW", bp.BatchNorm(64, dtype=dtype), (64, 64, 14, 14),
                   t(lambda _: nn.BatchNorm2d(64))),
                  ("BatchNorm(512)", bp.BatchNorm(512, dtype=dtype), (128, 512),
                   t(lambda _: nn.BatchNorm1d(512)))]
    return (cases + _cnn_zoo_cases(dtype, t, nn) + _sequence_cases(dtype, t, nn)
            + _review_cases(dtype, t, nn))


def _review_cases(dtype: Any, t: Any, nn: Any) -> list[tuple[str, Any, tuple[int, ...], Any]]:
    """The slow paths the speed reviews against PyTorch found (twenty-second and
    twenty-eighth sessions)."""
    fmap = (64, 32, 28, 28)
    return [
        ("Threshold(0.1, 20)", bp.Threshold(0.1, 20.0, dtype=dtype), (256, 1024),
         t(lambda _: nn.Threshold(0.1, 20.0))),
        ("LPPool2D(3, 3, 2)", bp.LPPool2D(3, 3, 2, dtype=dtype), fmap,
         t(lambda _: nn.LPPool2d(3, 3, 2))),
        ("AdaptiveAvgPool2D(5) from 28", bp.AdaptiveAvgPool2D(5, dtype=dtype), fmap,
         t(lambda _: nn.AdaptiveAvgPool2d(5))),
        ("AdaptiveAvgPool1D(7) from 200", bp.AdaptiveAvgPool1D(7, dtype=dtype), (64, 64, 200),
         t(lambda _: nn.AdaptiveAvgPool1d(7))),
        ("MeanAbsoluteError", bp.MeanAbsoluteError(), (64, 1000), t("l1_loss")),
        ("SmoothL1Loss", bp.SmoothL1Loss(), (64, 1000), t("smooth_l1_loss")),
        ("Upsample(x2, bilinear)", bp.Upsample(scale_factor=2, mode="bilinear", dtype=dtype),
         fmap, t(lambda _: nn.Upsample(scale_factor=2, mode="bilinear"))),
    ]


def _cnn_zoo_cases(dtype: Any, t: Any, nn: Any) -> list[tuple[str, Any, tuple[int, ...], Any]]:
    """Layers of ResNet/MobileNet-style models, outside the two training workloads: the
    slow paths of the speed audits (fifteenth session), on a 32x64x28x28 map."""
    fmap = (32, 64, 28, 28)

    def conv(groups: int) -> Any:
        return t(lambda lay: _torch_param_copy(
            nn.Conv2d(64, 64, 3, padding=1, groups=groups),
            {"weight": lay.params["W"], "bias": lay.params["b"]}))

    return [
        ("SiLU (conv map)", bp.SiLU(dtype=dtype), fmap, t(lambda _: nn.SiLU())),
        ("Softplus (conv map)", bp.Softplus(dtype=dtype), fmap, t(lambda _: nn.Softplus())),
        ("Hardswish (conv map)", bp.Hardswish(dtype=dtype), fmap, t(lambda _: nn.Hardswish())),
        ("LeakyReLU (conv map)", bp.LeakyReLU(dtype=dtype), fmap, t(lambda _: nn.LeakyReLU())),
        ("GroupNorm(8, 64)", bp.GroupNorm(8, 64, dtype=dtype), fmap,
         t(lambda _: nn.GroupNorm(8, 64))),
        ("MaxPool2D(3, 2, padding=1)", bp.MaxPool2D(3, 2, padding=1, dtype=dtype), fmap,
         t(lambda _: nn.MaxPool2d(3, 2, 1))),
        ("AdaptiveAvgPool2D(1)", bp.AdaptiveAvgPool2D(1, dtype=dtype), fmap,
         t(lambda _: nn.AdaptiveAvgPool2d(1))),
        ("Conv2D(64, 64, 3, groups=64)", bp.Conv2D(64, 64, 3, padding=1, groups=64, rng=0,
                                                   dtype=dtype), fmap, conv(64)),
        ("Conv2D(64, 64, 3, groups=8)", bp.Conv2D(64, 64, 3, padding=1, groups=8, rng=0,
                                                  dtype=dtype), fmap, conv(8)),
    ]


def _sequence_cases(dtype: Any, t: Any, nn: Any) -> list[tuple[str, Any, tuple[int, ...], Any]]:
    """The recurrent and attention layers on (N, T, D) = (64, 50, 64), H = 128 / E = 64: a
    GEMM over all steps and a loop of small per-step products and elementwise passes."""
    if not hasattr(bp, "LSTM"):
        return []
    seq, names = (64, 50, 64), {"W": "weight_ih_l0", "U": "weight_hh_l0", "b": "bias_ih_l0",
                                "b_h": "bias_hh_l0"}

    def recurrent(kind: str) -> Any:
        return t(lambda lay: _first_output(_torch_param_copy(
            getattr(nn, kind)(64, 128, batch_first=True),
            {names[k]: v.T if v.ndim == 2 else v for k, v in lay.params.items()})))

    def bidirectional(lay: Any) -> Any:  # forward_layer.W -> weight_ih_l0, backward_ -> _reverse
        return _first_output(_torch_param_copy(
            nn.LSTM(64, 128, batch_first=True, bidirectional=True),
            {names[k.split(".")[1]] + ("_reverse" if k.startswith("backward") else ""):
             v.T if v.ndim == 2 else v for k, v in lay.params.items()}))

    def encoder(lay: Any) -> Any:  # the same weights through from_torch's own mapping
        module = nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True)
        ours = {k: np.array(v) for k, v in bp.from_torch(lay, module.state_dict()).items()}
        lay.load_state_dict(ours)  # torch's initial weights in both
        return module

    def attention(lay: Any) -> Any:
        mha = _torch_param_copy(nn.MultiheadAttention(64, 4, batch_first=True), {
            "in_proj_weight": lay.params["W_in"].T, "in_proj_bias": lay.params["b_in"]})
        _torch_param_copy(mha.out_proj, {"weight": lay.params["W_out"].T,
                                         "bias": lay.params["b_out"]})
        return _first_output(mha, self_attention=True)

    return [
        ("LSTM(64, 128)", bp.LSTM(64, 128, rng=0, dtype=dtype), seq, recurrent("LSTM")),
        ("GRU(64, 128)", bp.GRU(64, 128, rng=0, dtype=dtype), seq, recurrent("GRU")),
        ("RNN(64, 128)", bp.RNN(64, 128, rng=0, dtype=dtype), seq, recurrent("RNN")),
        *([("Bidirectional(LSTM(64, 128))",
            bp.Bidirectional(bp.LSTM(64, 128, rng=0, dtype=dtype), rng=1), seq,
            t(bidirectional))] if hasattr(bp, "Bidirectional") else []),
        ("MultiheadAttention(64, 4)", bp.MultiheadAttention(64, 4, rng=0, dtype=dtype), seq,
         t(attention)),
        *([("TransformerEncoderLayer(64, 4, 256)",
            bp.TransformerEncoderLayer(64, 4, 256, dropout=0.0, rng=0, dtype=dtype), seq,
            t(encoder))] if hasattr(bp, "TransformerEncoderLayer") else []),
    ]


def _first_output(module: Any, self_attention: bool = False) -> Any:
    """A module returning only the first output of ``module`` (PyTorch's recurrent and
    attention modules return a tuple); ``self_attention``: called as ``module(x, x, x)``."""
    from torch import nn

    class First(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: Any) -> Any:
            if self_attention:
                return self.inner(x, x, x, need_weights=False)[0]
            return self.inner(x)[0]

    return First()


def _torch_param_copy(module: Any, arrays: dict[str, np.ndarray]) -> Any:
    from workloads import _copy

    _copy(module, arrays)
    return module


def layers(args: Any) -> dict[str, Any]:
    """Forward (training mode) and backward (with dx) per call, ours and PyTorch's."""
    rng = np.random.default_rng(0)
    out = {}
    cases = [c for c in _layer_cases(args.dtype)
             if not args.layers or any(part in c[0] for part in args.layers)]
    if not cases:
        raise SystemExit(f"run.py: error: --layers: expected a part of some case's name, got "
                         f"{','.join(args.layers)!r}, which no case's name contains")
    for name, layer, shape, make in cases:
        x = rng.standard_normal(shape).astype(args.dtype)
        ours, theirs = _ours_layer(layer, x, rng), None
        if make is not None:
            theirs = _torch_layer(make, layer, x, rng, args.dtype)
        samples: dict[str, list[tuple[float, float]]] = {"backprop": [], "PyTorch": []}
        reps = _calibrate(ours, args.layer_min_time)
        for _ in range(args.repeats):
            for key, pair in (("backprop", ours), ("PyTorch", theirs)):
                if pair is not None:
                    time.sleep(SETTLE_S)  # the other library's workers stop spinning
                    _block(pair, max(2, reps // 4))  # untimed: wake this framework's threads
                    samples[key].append(_block(pair, reps))
        row = {k: {"forward_us": 1e6 * statistics.median(f for f, _ in v),
                   "backward_us": 1e6 * statistics.median(b for _, b in v)}
               for k, v in samples.items() if v}
        if theirs is not None:
            totals = [(tf + tb) / (of + ob) for (of, ob), (tf, tb)
                      in zip(samples["backprop"], samples["PyTorch"], strict=True)]
            row["speedup_vs_torch"] = statistics.median(totals)
        out[name] = {"input_shape": list(shape), **row}
        print(f"  {name}: {row}", flush=True)
    return out


def _ours_layer(layer: Any, x: np.ndarray, rng: np.random.Generator) -> Any:
    if isinstance(layer, bp.Loss):
        regression = isinstance(layer, (bp.Huber, bp.MeanAbsoluteError, bp.SmoothL1Loss))
        target = (rng.standard_normal(x.shape).astype(x.dtype) if regression
                  else rng.integers(0, x.shape[1], size=x.shape[0]))
        return (lambda: layer.forward(x, target)), (lambda _: layer.backward())
    dy = rng.standard_normal(layer.forward(x).shape).astype(x.dtype)
    return (lambda: layer.forward(x, training=True)), (lambda _: layer.backward(dy))


def _torch_layer(make: Any, layer: Any, x: np.ndarray, rng: np.random.Generator,
                 dtype: Any) -> Any:
    import torch

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    if make == "cross_entropy":
        yt = torch.from_numpy(rng.integers(0, x.shape[1], size=x.shape[0]))
        fwd = lambda: torch.nn.functional.cross_entropy(xt, yt)  # noqa: E731
        return fwd, lambda out: out.backward()
    if make in ("huber", "l1_loss", "smooth_l1_loss"):  # regression: normal targets
        tt = torch.from_numpy(rng.standard_normal(x.shape).astype(x.dtype))
        loss = getattr(torch.nn.functional, "huber_loss" if make == "huber" else make)
        return (lambda: loss(xt, tt)), lambda out: out.backward()
    mod = make(layer).to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    dyt = torch.from_numpy(rng.standard_normal(mod(xt).shape).astype(x.dtype))

    def bwd(out: Any) -> None:
        out.backward(dyt)
        xt.grad = None
        mod.zero_grad()

    return (lambda: mod(xt)), bwd


def _block(pair: Any, reps: int) -> tuple[float, float]:
    fwd, bwd = pair
    tf = tb = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fwd()
        t1 = time.perf_counter()
        bwd(out)
        tb += time.perf_counter() - t1
        tf += t1 - t0
    return tf / reps, tb / reps


def _calibrate(pair: Any, min_time: float) -> int:
    reps = 1
    while True:
        f, b = _block(pair, reps)
        if (f + b) * reps >= min_time or reps >= 10**5:
            return reps
        reps *= 4


def layers_table(res: dict[str, Any]) -> str:
    rows = []
    for name, r in res.items():
        o, t = r["backprop"], r.get("PyTorch")
        rows.append([name, "x".join(map(str, r["input_shape"])), o["forward_us"],
                     o["backward_us"], t and t["forward_us"], t and t["backward_us"],
                     f"{r['speedup_vs_torch']:.2f}x" if "speedup_vs_torch" in r else None])
    return table(["layer", "input", "ours fwd us", "ours bwd us", "torch fwd us",
                  "torch bwd us", "ours speedup"], rows)


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
                flops = sum(2 * m * k * n for m, k, n in shapes)
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
