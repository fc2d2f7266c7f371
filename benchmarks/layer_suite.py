"""The per-layer microbenchmarks (``--suite layers``): forward and backward of one layer
at a time, ours against PyTorch's twin module, interleaved blocks, medians."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from harness import SETTLE_S, optional, table

import backprop as bp


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
