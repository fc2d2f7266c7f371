"""The one table of every layer and loss. Adding a layer means adding one line here.

It drives the gradient checks and the contract tests in ``test_contract.py``.
Inputs are drawn away from kinks (ReLU at 0) and ties (max-pool) so central
differences are meaningful.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import backprop as bp


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal draws pushed at least 0.1 away from 0 (ReLU-family kinks)."""
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.1


def away_from(*kinks: float, low: float, high: float
              ) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    """Uniform draws on [low, high] pushed at least 0.1 away from each kink (ReLU6 at 0
    and 6, Hardswish at ±3)."""
    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        x = rng.uniform(low, high, shape)
        for k in kinks:
            x = np.where(np.abs(x - k) < 0.1, x + np.where(x < k, -0.1, 0.1), x)
        return x
    return draw


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random permutation of well-separated values: no ties for max-pooling."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * (4.0 / n) + 0.01


@dataclass
class LayerCase:
    name: str
    make: Callable[[Any], bp.Layer]  # dtype -> a fresh layer
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] = away_from_zero
    casts_input: bool = False  # models cast their input once instead of rejecting it


@dataclass
class LossCase:
    name: str
    make: Callable[[], bp.Loss]
    out_shape: tuple[int, ...]
    target: Callable[[np.random.Generator], Any]
    # the outputs, where any reals will not do (BCELoss's probabilities); None: normal draws
    draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] | None = None


def _seq(dt):
    return bp.Sequential([bp.Dense(5, 7, dtype=dt, rng=0), bp.Tanh(dtype=dt),
                          bp.Dense(7, 3, dtype=dt, rng=1)])


def indices(v: int) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    """Draws of whole-number indices in [0, v), repeats included (an Embedding's input)."""
    return lambda rng, shape: rng.integers(0, v, shape).astype(np.float64)


def padded_indices(v: int) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    """Indices in [1, v) with 0s as padding (an Embedding(mask_zero=True)'s input): row i of
    ``(N, T)`` padded after its first ``T - 2i`` steps (at least one left), the last row
    also padded at its start and inside (Keras' masks can hold holes)."""
    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        x = rng.integers(1, v, shape)
        n, steps = shape
        for i in range(n):
            x[i, max(1, steps - 2 * i):] = 0
        x[-1, 0] = x[-1, steps // 2] = 0
        return x.astype(np.float64)
    return draw


def _prelu(dt, c):
    """PReLU with one slope per channel, all different."""
    layer = bp.PReLU(c, dtype=dt)
    layer.params["alpha"][...] = np.linspace(-0.5, 0.5, c)
    return layer


def _bn(dt, c, **kwargs):
    """BatchNorm with gamma, beta and running statistics away from their defaults."""
    layer = bp.BatchNorm(c, dtype=dt, **kwargs)
    rng = np.random.default_rng(2)
    if layer.affine:
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
        layer.params["beta"][...] = rng.standard_normal(c)
    if layer.track_running_stats:
        layer.buffers["running_mean"][...] = rng.standard_normal(c) * 0.3
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
    return layer


def _ln(dt, shape, **kwargs):
    """LayerNorm with gamma and beta (those it has) away from their defaults."""
    layer = bp.LayerNorm(shape, dtype=dt, **kwargs)
    rng = np.random.default_rng(3)
    if "gamma" in layer.params:
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, layer.params["gamma"].shape)
    if "beta" in layer.params:
        layer.params["beta"][...] = rng.standard_normal(layer.params["beta"].shape)
    return layer


def _in(cls, dt, channels, **kwargs):
    """InstanceNorm1D/2D/3D with gamma and beta (if it has them) away from their defaults."""
    layer = cls(channels, dtype=dt, **kwargs)
    rng = np.random.default_rng(5)
    if layer.affine:
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, channels)
        layer.params["beta"][...] = rng.standard_normal(channels)
    return layer


def _rms(dt, shape, **kwargs):
    """RMSNorm with gamma (if it has it) away from its default."""
    layer = bp.RMSNorm(shape, dtype=dt, **kwargs)
    if "gamma" in layer.params:
        gamma = layer.params["gamma"]
        gamma[...] = np.random.default_rng(6).uniform(0.5, 1.5, gamma.shape)
    return layer


def _gn(dt, groups, channels, **kwargs):
    """GroupNorm with gamma and beta (if it has them) away from their defaults."""
    layer = bp.GroupNorm(groups, channels, dtype=dt, **kwargs)
    rng = np.random.default_rng(4)
    if layer.affine:
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, channels)
        layer.params["beta"][...] = rng.standard_normal(channels)
    return layer


def _mha(dt, e, heads, **kwargs):
    """MultiheadAttention with biases away from their zero initial values."""
    layer = bp.MultiheadAttention(e, heads, dtype=dt, rng=0, **kwargs)
    rng = np.random.default_rng(7)
    for k in ("b_in", "b_out"):
        if k in layer.params:
            layer.params[k][...] = rng.standard_normal(layer.params[k].shape) * 0.5
    return layer


def _transformer_block(dt, e=6):
    """A pre-norm transformer block: attention, then an MLP, each in a Residual."""
    return bp.Sequential([
        bp.Residual(bp.Sequential([_ln(dt, e), _mha(dt, e, 2, causal=True)])),
        bp.Residual(bp.Sequential([_ln(dt, e), bp.Dense(e, 4 * e, dtype=dt, rng=1),
                                   bp.GELU(dtype=dt), bp.Dense(4 * e, e, dtype=dt, rng=2)]))])


LAYERS: list[LayerCase] = [
    # -- core (dense, activations, containers) ------------------------------------
    LayerCase("Dense", lambda dt: bp.Dense(5, 4, dtype=dt, rng=0), (6, 5), (6, 4)),
    LayerCase("Dense-nobias", lambda dt: bp.Dense(5, 4, bias=False, dtype=dt, rng=0),
              (6, 5), (6, 4)),
    LayerCase("Dense-3d", lambda dt: bp.Dense(5, 4, dtype=dt, rng=0), (2, 3, 5), (2, 3, 4)),
    LayerCase("Dense-4d-nobias", lambda dt: bp.Dense(5, 4, bias=False, dtype=dt, rng=0),
              (2, 2, 3, 5), (2, 2, 3, 4)),
    LayerCase("Identity", lambda dt: bp.Identity(dtype=dt), (6, 5), (6, 5)),
    LayerCase("ReLU", lambda dt: bp.ReLU(dtype=dt), (6, 5), (6, 5)),
    LayerCase("ReLU-4d", lambda dt: bp.ReLU(dtype=dt), (2, 3, 4, 4), (2, 3, 4, 4)),
    LayerCase("LeakyReLU", lambda dt: bp.LeakyReLU(0.1, dtype=dt), (6, 5), (6, 5)),
    LayerCase("LeakyReLU-negative", lambda dt: bp.LeakyReLU(-0.3, dtype=dt), (6, 5), (6, 5)),
    LayerCase("RReLU", lambda dt: bp.RReLU(rng=0, dtype=dt), (6, 5), (6, 5)),
    LayerCase("RReLU-wide-4d", lambda dt: bp.RReLU(-0.5, 1.5, rng=1, dtype=dt), (2, 3, 4, 4),
              (2, 3, 4, 4)),
    LayerCase("PReLU", lambda dt: bp.PReLU(init=-0.2, dtype=dt), (6, 5), (6, 5)),
    LayerCase("PReLU-channels", lambda dt: _prelu(dt, 3), (2, 3, 4, 4), (2, 3, 4, 4)),
    LayerCase("ELU", lambda dt: bp.ELU(0.7, dtype=dt), (6, 5), (6, 5)),
    LayerCase("ELU-negative", lambda dt: bp.ELU(-1.2, dtype=dt), (6, 5), (6, 5)),
    LayerCase("GELU", lambda dt: bp.GELU(dtype=dt), (6, 5), (6, 5)),
    LayerCase("GELU-tanh", lambda dt: bp.GELU("tanh", dtype=dt), (6, 5), (6, 5)),
    LayerCase("SiLU", lambda dt: bp.SiLU(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Softplus", lambda dt: bp.Softplus(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Softplus-beta-threshold", lambda dt: bp.Softplus(2.0, 1.0, dtype=dt), (6, 5),
              (6, 5)),
    LayerCase("Sigmoid", lambda dt: bp.Sigmoid(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Tanh", lambda dt: bp.Tanh(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Softmax", lambda dt: bp.Softmax(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Softmax-channels", lambda dt: bp.Softmax(1, dtype=dt), (2, 3, 4, 4), (2, 3, 4, 4)),
    LayerCase("ReLU6", lambda dt: bp.ReLU6(dtype=dt), (6, 5), (6, 5),
              draw=away_from(0.0, 6.0, low=-2.0, high=8.0)),
    LayerCase("Hardtanh", lambda dt: bp.Hardtanh(-0.5, 2.0, dtype=dt), (2, 3, 5), (2, 3, 5),
              draw=away_from(-0.5, 2.0, low=-2.0, high=3.0)),
    LayerCase("Hardsigmoid", lambda dt: bp.Hardsigmoid(dtype=dt), (6, 5), (6, 5),
              draw=away_from(-3.0, 3.0, low=-5.0, high=5.0)),
    LayerCase("Hardswish", lambda dt: bp.Hardswish(dtype=dt), (2, 3, 4, 4), (2, 3, 4, 4),
              draw=away_from(-3.0, 3.0, low=-5.0, high=5.0)),
    LayerCase("SELU", lambda dt: bp.SELU(dtype=dt), (6, 5), (6, 5)),
    LayerCase("CELU", lambda dt: bp.CELU(0.5, dtype=dt), (6, 5), (6, 5)),
    LayerCase("CELU-negative", lambda dt: bp.CELU(-1.5, dtype=dt), (6, 5), (6, 5)),
    LayerCase("Mish", lambda dt: bp.Mish(dtype=dt), (6, 5), (6, 5),
              draw=lambda rng, shape: rng.standard_normal(shape) * 3),
    LayerCase("Softsign", lambda dt: bp.Softsign(dtype=dt), (6, 5), (6, 5)),
    LayerCase("LogSoftmax", lambda dt: bp.LogSoftmax(dtype=dt), (6, 5), (6, 5)),
    LayerCase("LogSoftmax-channels", lambda dt: bp.LogSoftmax(1, dtype=dt), (2, 3, 4, 4),
              (2, 3, 4, 4)),
    LayerCase("LogSigmoid", lambda dt: bp.LogSigmoid(dtype=dt), (6, 5), (6, 5),
              draw=lambda rng, shape: rng.standard_normal(shape) * 4),
    LayerCase("Tanhshrink", lambda dt: bp.Tanhshrink(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Softshrink", lambda dt: bp.Softshrink(dtype=dt), (6, 5), (6, 5),
              draw=away_from(-0.5, 0.5, low=-2.0, high=2.0)),
    LayerCase("Hardshrink", lambda dt: bp.Hardshrink(0.3, dtype=dt), (2, 3, 5), (2, 3, 5),
              draw=away_from(-0.3, 0.3, low=-2.0, high=2.0)),
    LayerCase("Threshold", lambda dt: bp.Threshold(0.2, -1.5, dtype=dt), (6, 5), (6, 5),
              draw=away_from(0.2, low=-2.0, high=2.0)),
    LayerCase("Softmin", lambda dt: bp.Softmin(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Softmin-channels", lambda dt: bp.Softmin(1, dtype=dt), (2, 3, 4, 4), (2, 3, 4, 4)),
    LayerCase("GLU", lambda dt: bp.GLU(dtype=dt), (6, 8), (6, 4)),
    LayerCase("GLU-channels", lambda dt: bp.GLU(1, dtype=dt), (2, 4, 3, 3), (2, 2, 3, 3)),
    LayerCase("Sequential", _seq, (6, 5), (6, 3), casts_input=True),
    # indices in: every dtype is taken (whole numbers), and x has no gradient
    LayerCase("Embedding", lambda dt: bp.Embedding(7, 3, dtype=dt, rng=0), (6, 4), (6, 4, 3),
              draw=indices(7), casts_input=True),
    LayerCase("Embedding-padding",
              lambda dt: bp.Embedding(7, 3, padding_idx=2, dtype=dt, rng=0), (6, 4), (6, 4, 3),
              draw=indices(7), casts_input=True),
    LayerCase("Embedding-3d-Sequential",
              lambda dt: bp.Sequential([bp.Embedding(5, 4, dtype=dt, rng=0),
                                        bp.Dense(4, 2, dtype=dt, rng=1)]),
              (2, 3, 2), (2, 3, 2, 2), draw=indices(5), casts_input=True),
    # -- layers issue (conv, pooling, reshape, normalization, dropout, residual) --
    LayerCase("Conv2D", lambda dt: bp.Conv2D(2, 3, 3, padding=1, dtype=dt, rng=0),
              (2, 2, 5, 5), (2, 3, 5, 5)),
    LayerCase("Conv2D-packed",  # stride 1, (K + 1)·C_out > 4096: images packed 11x11 apart
              lambda dt: bp.Conv2D(8, 64, 3, padding=1, dtype=dt, rng=0),
              (2, 8, 10, 10), (2, 64, 10, 10)),
    LayerCase("Conv2D-packed-batch-inside",  # 6x6: 7x7 apart is 1.36, rows side by side 1.15
              lambda dt: bp.Conv2D(8, 64, 3, padding=1, dtype=dt, rng=0),
              (2, 8, 6, 6), (2, 64, 6, 6)),
    LayerCase("Conv1D-packed-dilated",
              lambda dt: bp.Conv1D(16, 64, 5, padding="same", dilation=2, dtype=dt, rng=0),
              (2, 16, 20), (2, 64, 20)),
    LayerCase("Conv2D-strided-nonsquare",
              lambda dt: bp.Conv2D(2, 3, (2, 3), stride=(2, 1), padding=(1, 0), dtype=dt, rng=0),
              (2, 2, 5, 6), (2, 3, 3, 4)),
    LayerCase("Conv2D-nobias", lambda dt: bp.Conv2D(2, 2, 2, bias=False, dtype=dt, rng=0),
              (2, 2, 4, 4), (2, 2, 3, 3)),
    LayerCase("Conv1D", lambda dt: bp.Conv1D(2, 3, 3, stride=2, padding=1, dtype=dt, rng=0),
              (2, 2, 7), (2, 3, 4)),
    LayerCase("Conv2D-dilated",
              lambda dt: bp.Conv2D(2, 3, (3, 2), padding=(2, 1), dilation=(2, 3), dtype=dt, rng=0),
              (2, 2, 5, 6), (2, 3, 5, 5)),
    LayerCase("Conv2D-grouped",
              lambda dt: bp.Conv2D(4, 6, 3, stride=(1, 2), padding=1, groups=2, dtype=dt, rng=0),
              (2, 4, 5, 6), (2, 6, 5, 3)),
    LayerCase("Conv2D-depthwise",  # one kernel per channel: the route without im2col
              lambda dt: bp.Conv2D(3, 3, (3, 2), padding="same", dilation=(1, 2), groups=3,
                                   dtype=dt, rng=0),
              (2, 3, 5, 6), (2, 3, 5, 6)),
    LayerCase("Conv1D-depthwise",
              lambda dt: bp.Conv1D(3, 6, 3, padding="same", dilation=2, groups=3, dtype=dt,
                                   rng=0),
              (2, 3, 8), (2, 6, 8)),
    LayerCase("Conv1D-dilated",
              lambda dt: bp.Conv1D(2, 3, 3, stride=2, padding="valid", dilation=2, dtype=dt,
                                   rng=0),
              (2, 2, 9), (2, 3, 3)),
    LayerCase("Conv3D", lambda dt: bp.Conv3D(2, 3, (3, 2, 2), padding=(1, 0, 1), dtype=dt,
                                             rng=0), (2, 2, 4, 3, 3), (2, 3, 4, 2, 4)),
    LayerCase("Conv3D-strided-grouped-dilated",
              lambda dt: bp.Conv3D(4, 2, 2, stride=(2, 1, 1), dilation=(1, 2, 1), groups=2,
                                   dtype=dt, rng=0), (2, 4, 5, 4, 3), (2, 2, 2, 2, 2)),
    LayerCase("Conv3D-replicate", lambda dt: bp.Conv3D(1, 2, 3, padding=1,
                                                       padding_mode="replicate", dtype=dt,
                                                       rng=0), (1, 1, 3, 3, 2), (1, 2, 3, 3, 2)),
    LayerCase("Conv2D-reflect",  # padding_mode: x padded with its own border values
              lambda dt: bp.Conv2D(2, 3, 3, padding=(1, 2), padding_mode="reflect", dtype=dt,
                                   rng=0),
              (2, 2, 5, 6), (2, 3, 5, 8)),
    LayerCase("Conv2D-replicate-strided",
              lambda dt: bp.Conv2D(2, 3, (2, 3), stride=(2, 1), padding=(2, 1),
                                   padding_mode="replicate", dtype=dt, rng=0),
              (2, 2, 5, 6), (2, 3, 4, 6)),
    LayerCase("Conv2D-circular-grouped-dilated",
              lambda dt: bp.Conv2D(4, 6, 3, padding=(2, 1), dilation=(2, 1), groups=2,
                                   padding_mode="circular", dtype=dt, rng=0),
              (2, 4, 5, 6), (2, 6, 5, 6)),
    LayerCase("Conv1D-reflect-depthwise-same",  # an even kernel: one more after
              lambda dt: bp.Conv1D(3, 3, 4, padding="same", groups=3, padding_mode="reflect",
                                   dtype=dt, rng=0),
              (2, 3, 7), (2, 3, 7)),
    LayerCase("ConvTranspose2D",
              lambda dt: bp.ConvTranspose2D(2, 3, 3, padding=1, dtype=dt, rng=0),
              (2, 2, 4, 5), (2, 3, 4, 5)),
    LayerCase("ConvTranspose2D-strided-outpad-nonsquare",  # stride 3 > kernel 2: gaps
              lambda dt: bp.ConvTranspose2D(2, 3, (2, 3), stride=(3, 2), padding=(0, 1),
                                            output_padding=(2, 1), dtype=dt, rng=0),
              (2, 2, 3, 4), (2, 3, 10, 8)),
    LayerCase("ConvTranspose2D-dilated",  # output_padding 1 with stride 1: below dilation 2
              lambda dt: bp.ConvTranspose2D(2, 3, (3, 2), stride=(1, 2), padding=(2, 1),
                                            output_padding=(1, 0), dilation=(2, 3), dtype=dt,
                                            rng=0),
              (2, 2, 4, 5), (2, 3, 5, 10)),
    LayerCase("ConvTranspose2D-grouped",
              lambda dt: bp.ConvTranspose2D(4, 6, 3, stride=2, padding=1, output_padding=1,
                                            groups=2, dtype=dt, rng=0),
              (2, 4, 3, 4), (2, 6, 6, 8)),
    LayerCase("ConvTranspose2D-nobias",
              lambda dt: bp.ConvTranspose2D(2, 2, 2, stride=2, bias=False, dtype=dt, rng=0),
              (2, 2, 3, 3), (2, 2, 6, 6)),
    LayerCase("ConvTranspose1D",
              lambda dt: bp.ConvTranspose1D(2, 3, 3, stride=2, padding=1, output_padding=1,
                                            dtype=dt, rng=0),
              (2, 2, 5), (2, 3, 10)),
    LayerCase("ConvTranspose1D-grouped-dilated",
              lambda dt: bp.ConvTranspose1D(4, 2, 2, stride=3, dilation=2, groups=2, dtype=dt,
                                            rng=0),
              (2, 4, 4), (2, 2, 12)),
    LayerCase("ConvTranspose3D",
              lambda dt: bp.ConvTranspose3D(2, 3, (2, 3, 2), padding=(0, 1, 1), dtype=dt, rng=0),
              (2, 2, 2, 3, 3), (2, 3, 3, 3, 2)),
    LayerCase("ConvTranspose3D-strided-grouped",  # last D and W planes: the bias alone
              lambda dt: bp.ConvTranspose3D(4, 2, (2, 1, 3), stride=(2, 1, 3), padding=(0, 0, 1),
                                            output_padding=(1, 0, 2), groups=2,
                                            dilation=(2, 1, 1), dtype=dt, rng=0),
              (2, 4, 2, 2, 2), (2, 2, 6, 2, 6)),
    LayerCase("MaxPool2D", lambda dt: bp.MaxPool2D(2, dtype=dt), (2, 2, 4, 6), (2, 2, 2, 3),
              draw=distinct),
    LayerCase("MaxPool2D-overlapping", lambda dt: bp.MaxPool2D(3, 2, dtype=dt),
              (2, 2, 7, 5), (2, 2, 3, 2), draw=distinct),
    LayerCase("MaxPool1D", lambda dt: bp.MaxPool1D(2, dtype=dt), (2, 3, 7), (2, 3, 3),
              draw=distinct),
    LayerCase("MaxPool2D-padded", lambda dt: bp.MaxPool2D(3, 2, padding=1, dtype=dt),
              (2, 2, 5, 6), (2, 2, 3, 3), draw=distinct),
    LayerCase("AvgPool2D-padded", lambda dt: bp.AvgPool2D((3, 2), 2, padding=(1, 1), dtype=dt),
              (2, 2, 5, 6), (2, 2, 3, 4)),
    LayerCase("MaxPool1D-padded", lambda dt: bp.MaxPool1D(4, 3, padding=2, dtype=dt),
              (2, 2, 7), (2, 2, 3), draw=distinct),
    LayerCase("AvgPool2D", lambda dt: bp.AvgPool2D((2, 3), (1, 2), dtype=dt),
              (2, 2, 5, 7), (2, 2, 4, 3)),
    LayerCase("AvgPool1D", lambda dt: bp.AvgPool1D(3, 2, dtype=dt), (2, 2, 7), (2, 2, 3)),
    LayerCase("AvgPool2D-ceil-exclude-pad",
              lambda dt: bp.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False, dtype=dt),
              (2, 2, 6, 5), (2, 2, 4, 3)),
    LayerCase("MaxPool2D-ceil", lambda dt: bp.MaxPool2D(3, 2, ceil_mode=True, dtype=dt),
              (2, 2, 6, 8), (2, 2, 3, 4), draw=distinct),
    LayerCase("MaxPool3D", lambda dt: bp.MaxPool3D((2, 2, 1), dtype=dt), (2, 2, 4, 4, 3),
              (2, 2, 2, 2, 3), draw=distinct),
    LayerCase("MaxPool3D-overlapping-padded", lambda dt: bp.MaxPool3D(3, 2, 1, dtype=dt),
              (1, 2, 5, 4, 3), (1, 2, 3, 2, 2), draw=distinct),
    LayerCase("AvgPool3D", lambda dt: bp.AvgPool3D(2, 1, dtype=dt), (2, 2, 3, 3, 3),
              (2, 2, 2, 2, 2)),
    LayerCase("AvgPool3D-padded-no-pad-count",
              lambda dt: bp.AvgPool3D(3, 2, 1, count_include_pad=False, dtype=dt),
              (1, 2, 5, 4, 3), (1, 2, 3, 2, 2)),
    LayerCase("MaxPool2D-dilated", lambda dt: bp.MaxPool2D(3, 2, 1, 2, dtype=dt),
              (2, 2, 7, 8), (2, 2, 3, 3), draw=distinct),
    LayerCase("MaxPool2D-dilated-2-1-ceil",
              lambda dt: bp.MaxPool2D(3, 2, dilation=(2, 1), ceil_mode=True, dtype=dt),
              (2, 2, 8, 6), (2, 2, 3, 3), draw=distinct),
    LayerCase("MaxPool2D-dilated-gaps", lambda dt: bp.MaxPool2D(2, 3, dilation=2, dtype=dt),
              (2, 2, 6, 7), (2, 2, 2, 2), draw=distinct),
    LayerCase("MaxPool1D-dilated", lambda dt: bp.MaxPool1D(3, 1, 1, 2, dtype=dt),
              (2, 3, 8), (2, 3, 6), draw=distinct),
    LayerCase("MaxPool1D-dilated-ceil",
              lambda dt: bp.MaxPool1D(2, 2, 1, 3, ceil_mode=True, dtype=dt),
              (2, 2, 7), (2, 2, 4), draw=distinct),
    LayerCase("GlobalAvgPool-2d", lambda dt: bp.GlobalAvgPool(dtype=dt), (2, 3, 4, 5), (2, 3)),
    LayerCase("GlobalAvgPool-1d", lambda dt: bp.GlobalAvgPool(dtype=dt), (2, 3, 5), (2, 3)),
    LayerCase("GlobalAvgPool-3d", lambda dt: bp.GlobalAvgPool(dtype=dt), (2, 3, 2, 3, 2), (2, 3)),
    LayerCase("GlobalAvgPool-channels-last-2d",
              lambda dt: bp.GlobalAvgPool(channels_last=True, dtype=dt), (2, 4, 5, 3), (2, 3)),
    # adaptive pools: PyTorch's windows floor(i·n/m) .. ceil((i + 1)·n/m), tiling or not
    LayerCase("AdaptiveAvgPool2D-tiling", lambda dt: bp.AdaptiveAvgPool2D((2, 3), dtype=dt),
              (2, 2, 4, 6), (2, 2, 2, 3)),
    LayerCase("AdaptiveAvgPool2D-overlapping", lambda dt: bp.AdaptiveAvgPool2D((3, 4), dtype=dt),
              (2, 2, 5, 7), (2, 2, 3, 4)),
    LayerCase("AdaptiveAvgPool2D-None-larger", lambda dt: bp.AdaptiveAvgPool2D((None, 5), dtype=dt),
              (2, 2, 3, 3), (2, 2, 3, 5)),
    LayerCase("AdaptiveAvgPool1D", lambda dt: bp.AdaptiveAvgPool1D(3, dtype=dt), (2, 3, 7),
              (2, 3, 3)),
    LayerCase("AdaptiveMaxPool2D-overlapping", lambda dt: bp.AdaptiveMaxPool2D((3, 4), dtype=dt),
              (2, 2, 5, 7), (2, 2, 3, 4), draw=distinct),
    LayerCase("AdaptiveMaxPool2D-None-larger", lambda dt: bp.AdaptiveMaxPool2D((4, None), dtype=dt),
              (2, 2, 3, 5), (2, 2, 4, 5), draw=distinct),
    LayerCase("AdaptiveMaxPool1D", lambda dt: bp.AdaptiveMaxPool1D(3, dtype=dt), (2, 3, 8),
              (2, 3, 3), draw=distinct),
    LayerCase("AdaptiveAvgPool3D-tiling", lambda dt: bp.AdaptiveAvgPool3D((2, 1, 3), dtype=dt),
              (2, 2, 4, 3, 6), (2, 2, 2, 1, 3)),
    LayerCase("AdaptiveAvgPool3D-overlapping-None-larger",
              lambda dt: bp.AdaptiveAvgPool3D((3, None, 4), dtype=dt), (1, 2, 5, 3, 3),
              (1, 2, 3, 3, 4)),
    LayerCase("AdaptiveMaxPool3D-overlapping", lambda dt: bp.AdaptiveMaxPool3D((2, 3, 4), dtype=dt),
              (1, 2, 3, 5, 7), (1, 2, 2, 3, 4), draw=distinct),
    LayerCase("AdaptiveMaxPool3D-None-larger-tiling",
              lambda dt: bp.AdaptiveMaxPool3D((4, None, 2), dtype=dt), (2, 2, 3, 3, 4),
              (2, 2, 4, 3, 2), draw=distinct),
    LayerCase("AdaptiveMaxPool3D-global", lambda dt: bp.AdaptiveMaxPool3D(1, dtype=dt),
              (2, 2, 3, 2, 4), (2, 2, 1, 1, 1), draw=distinct),
    # Upsample: nearest (integer and non-integer ratios), (bi)linear, align_corners
    LayerCase("Upsample-nearest-2x", lambda dt: bp.Upsample(scale_factor=2, dtype=dt),
              (2, 2, 3, 4), (2, 2, 6, 8)),
    LayerCase("Upsample-nearest-size", lambda dt: bp.Upsample(size=(5, 7), dtype=dt),
              (2, 2, 3, 4), (2, 2, 5, 7)),
    LayerCase("Upsample-nearest-exact-1d-down",
              lambda dt: bp.Upsample(scale_factor=0.7, mode="nearest-exact", dtype=dt),
              (2, 3, 7), (2, 3, 4)),
    LayerCase("Upsample-bilinear",
              lambda dt: bp.Upsample(scale_factor=(1.5, 2), mode="bilinear", dtype=dt),
              (2, 2, 4, 3), (2, 2, 6, 6)),
    LayerCase("Upsample-bilinear-align_corners",
              lambda dt: bp.Upsample(size=(3, 7), mode="bilinear", align_corners=True, dtype=dt),
              (2, 2, 5, 4), (2, 2, 3, 7)),
    LayerCase("Upsample-linear", lambda dt: bp.Upsample(scale_factor=2.5, mode="linear", dtype=dt),
              (2, 3, 4), (2, 3, 10)),
    LayerCase("Upsample-bicubic",
              lambda dt: bp.Upsample(scale_factor=(1.7, 0.6), mode="bicubic", dtype=dt),
              (2, 2, 4, 7), (2, 2, 6, 4)),
    LayerCase("Upsample-bicubic-align",
              lambda dt: bp.Upsample(size=(5, 3), mode="bicubic", align_corners=True, dtype=dt),
              (2, 2, 3, 4), (2, 2, 5, 3)),
    LayerCase("Upsample-trilinear",
              lambda dt: bp.Upsample(scale_factor=(1.5, 0.6, 2), mode="trilinear", dtype=dt),
              (2, 2, 2, 5, 3), (2, 2, 3, 3, 6)),
    LayerCase("Upsample-trilinear-align",
              lambda dt: bp.Upsample(size=(3, 1, 4), mode="trilinear", align_corners=True,
                                     dtype=dt),
              (2, 2, 2, 3, 3), (2, 2, 3, 1, 4)),
    LayerCase("Upsample-nearest-3d", lambda dt: bp.Upsample(scale_factor=(2.2, 1.5, 0.7), dtype=dt),
              (2, 2, 2, 3, 5), (2, 2, 4, 4, 3)),
    LayerCase("Flatten", lambda dt: bp.Flatten(dtype=dt), (2, 3, 2, 2), (2, 12)),
    LayerCase("Flatten(start_dim=2)", lambda dt: bp.Flatten(2, dtype=dt), (2, 3, 2, 2),
              (2, 3, 4)),
    LayerCase("Reshape", lambda dt: bp.Reshape((3, -1), dtype=dt), (2, 12), (2, 3, 4)),
    LayerCase("Permute", lambda dt: bp.Permute((2, 1), dtype=dt), (2, 3, 4), (2, 4, 3)),
    LayerCase("Permute-3", lambda dt: bp.Permute((3, 1, 2), dtype=dt), (2, 3, 4, 5),
              (2, 5, 3, 4)),
    LayerCase("Unflatten", lambda dt: bp.Unflatten(1, (3, -1), dtype=dt), (2, 12), (2, 3, 4)),
    LayerCase("Unflatten-negative-dim", lambda dt: bp.Unflatten(-2, (2, 2), dtype=dt),
              (2, 4, 3), (2, 2, 2, 3)),
    LayerCase("PixelShuffle", lambda dt: bp.PixelShuffle(2, dtype=dt), (2, 8, 2, 3),
              (2, 2, 4, 6)),
    LayerCase("PixelUnshuffle", lambda dt: bp.PixelUnshuffle(3, dtype=dt), (2, 1, 6, 3),
              (2, 9, 2, 1)),
    LayerCase("ChannelShuffle", lambda dt: bp.ChannelShuffle(3, dtype=dt), (2, 6, 2, 2),
              (2, 6, 2, 2)),
    LayerCase("Unfold", lambda dt: bp.Unfold((2, 3), (1, 2), 1, (2, 1), dtype=dt), (2, 2, 4, 5),
              (2, 12, 9)),
    LayerCase("Fold", lambda dt: bp.Fold((4, 5), (2, 3), (1, 2), 1, (2, 1), dtype=dt),
              (2, 12, 9), (2, 2, 4, 5)),
    LayerCase("LocalResponseNorm", lambda dt: bp.LocalResponseNorm(3, 0.5, dtype=dt), (2, 5, 3),
              (2, 5, 3)),
    LayerCase("LocalResponseNorm-4d", lambda dt: bp.LocalResponseNorm(2, 0.3, 0.6, 2.0, dtype=dt),
              (2, 4, 2, 3), (2, 4, 2, 3)),
    # odd p: positive inputs (a negative window sum is NaN, as in PyTorch)
    LayerCase("LPPool2D", lambda dt: bp.LPPool2D(3, (2, 3), (1, 2), ceil_mode=True, dtype=dt),
              (2, 2, 4, 6), (2, 2, 3, 3), away_from(low=0.2, high=2.0)),
    LayerCase("LPPool1D", lambda dt: bp.LPPool1D(2, 3, 2, dtype=dt), (2, 3, 7), (2, 3, 3)),
    # padding layers: asymmetric, negative (crops), each mode's size limit reached
    LayerCase("ZeroPad2D", lambda dt: bp.ZeroPad2D((1, 2, 0, -1), dtype=dt), (2, 2, 3, 4),
              (2, 2, 2, 7)),
    LayerCase("ZeroPad1D", lambda dt: bp.ZeroPad1D(2, dtype=dt), (2, 3, 4), (2, 3, 8)),
    LayerCase("ConstantPad2D", lambda dt: bp.ConstantPad2D((-1, 1, 2, 1), 0.5, dtype=dt),
              (2, 2, 3, 4), (2, 2, 6, 4)),
    LayerCase("ConstantPad1D", lambda dt: bp.ConstantPad1D((3, -2), -1.5, dtype=dt),
              (2, 3, 4), (2, 3, 5)),
    LayerCase("ReflectionPad2D", lambda dt: bp.ReflectionPad2D((3, 1, 2, -1), dtype=dt),
              (2, 2, 3, 4), (2, 2, 4, 8)),
    LayerCase("ReflectionPad1D", lambda dt: bp.ReflectionPad1D((-1, 3), dtype=dt), (2, 3, 4),
              (2, 3, 6)),
    LayerCase("ReplicationPad2D", lambda dt: bp.ReplicationPad2D((4, 1, -1, 3), dtype=dt),
              (2, 2, 3, 4), (2, 2, 5, 9)),
    LayerCase("ReplicationPad1D", lambda dt: bp.ReplicationPad1D((5, -2), dtype=dt), (2, 3, 4),
              (2, 3, 7)),
    LayerCase("CircularPad2D", lambda dt: bp.CircularPad2D((4, 1, 2, 3), dtype=dt),
              (2, 2, 3, 4), (2, 2, 8, 9)),
    LayerCase("CircularPad1D", lambda dt: bp.CircularPad1D((-1, 3), dtype=dt), (2, 3, 4),
              (2, 3, 6)),
    LayerCase("ZeroPad3D", lambda dt: bp.ZeroPad3D((1, -1, 0, 2, -1, 1), dtype=dt),
              (2, 2, 3, 3, 4), (2, 2, 3, 5, 4)),
    LayerCase("ConstantPad3D", lambda dt: bp.ConstantPad3D((2, 0, -1, 1, 1, -2), 0.5, dtype=dt),
              (2, 2, 3, 3, 4), (2, 2, 2, 3, 6)),
    LayerCase("ReflectionPad3D", lambda dt: bp.ReflectionPad3D((3, -1, 2, 1, -1, 2), dtype=dt),
              (2, 2, 3, 3, 4), (2, 2, 4, 6, 6)),
    LayerCase("ReplicationPad3D",
              lambda dt: bp.ReplicationPad3D((4, -1, -1, 3, 2, 0), dtype=dt),
              (2, 2, 3, 3, 4), (2, 2, 5, 5, 7)),
    LayerCase("CircularPad3D", lambda dt: bp.CircularPad3D((-1, 3, 3, 0, 1, 2), dtype=dt),
              (2, 2, 3, 3, 4), (2, 2, 6, 6, 6)),
    LayerCase("BatchNorm-2d", lambda dt: _bn(dt, 4), (6, 4), (6, 4)),
    LayerCase("BatchNorm-3d", lambda dt: _bn(dt, 3), (4, 3, 5), (4, 3, 5)),
    LayerCase("BatchNorm-4d", lambda dt: _bn(dt, 2), (3, 2, 3, 3), (3, 2, 3, 3)),
    LayerCase("BatchNorm-running-stats", lambda dt: _bn(dt, 4, use_running_stats=True),
              (6, 4), (6, 4)),
    LayerCase("BatchNorm-running-stats-4d", lambda dt: _bn(dt, 2, use_running_stats=True),
              (3, 2, 3, 3), (3, 2, 3, 3)),
    LayerCase("BatchNorm-5d", lambda dt: _bn(dt, 2), (2, 2, 2, 3, 2), (2, 2, 2, 3, 2)),
    LayerCase("BatchNorm-no-affine", lambda dt: _bn(dt, 3, affine=False), (4, 3, 5),
              (4, 3, 5)),
    LayerCase("BatchNorm-no-running-stats",
              lambda dt: _bn(dt, 2, track_running_stats=False), (3, 2, 3, 3), (3, 2, 3, 3)),
    LayerCase("LayerNorm", lambda dt: _ln(dt, 5), (6, 5), (6, 5)),
    LayerCase("LayerNorm-2-axes", lambda dt: _ln(dt, (3, 4)), (2, 2, 3, 4), (2, 2, 3, 4)),
    LayerCase("LayerNorm-no-affine", lambda dt: _ln(dt, 5, elementwise_affine=False),
              (6, 5), (6, 5)),
    LayerCase("LayerNorm-no-bias", lambda dt: _ln(dt, (3, 4), bias=False), (2, 3, 4),
              (2, 3, 4)),
    LayerCase("RMSNorm", lambda dt: _rms(dt, 5), (6, 5), (6, 5)),
    LayerCase("RMSNorm-2-axes-eps", lambda dt: _rms(dt, (3, 4), eps=1e-3), (2, 2, 3, 4),
              (2, 2, 3, 4)),
    LayerCase("RMSNorm-no-affine", lambda dt: _rms(dt, 5, elementwise_affine=False),
              (6, 5), (6, 5)),
    LayerCase("GroupNorm", lambda dt: _gn(dt, 2, 4), (3, 4, 3, 2), (3, 4, 3, 2)),
    LayerCase("GroupNorm-1-group-1-D", lambda dt: _gn(dt, 1, 3), (2, 3, 4), (2, 3, 4)),
    LayerCase("GroupNorm-no-affine", lambda dt: _gn(dt, 2, 4, affine=False), (3, 4, 3, 2),
              (3, 4, 3, 2)),
    LayerCase("InstanceNorm1D", lambda dt: _in(bp.InstanceNorm1D, dt, 3), (2, 3, 4), (2, 3, 4)),
    LayerCase("InstanceNorm2D-affine-running",
              lambda dt: _in(bp.InstanceNorm2D, dt, 4, affine=True, track_running_stats=True),
              (3, 4, 3, 2), (3, 4, 3, 2)),
    LayerCase("InstanceNorm1D-affine", lambda dt: _in(bp.InstanceNorm1D, dt, 2, affine=True),
              (3, 2, 5), (3, 2, 5)),
    LayerCase("InstanceNorm3D-affine-running",
              lambda dt: _in(bp.InstanceNorm3D, dt, 3, affine=True, track_running_stats=True),
              (2, 3, 2, 3, 2), (2, 3, 2, 3, 2)),
    LayerCase("InstanceNorm3D", lambda dt: _in(bp.InstanceNorm3D, dt, 2), (2, 2, 3, 2, 2),
              (2, 2, 3, 2, 2)),
    LayerCase("Dropout", lambda dt: bp.Dropout(0.3, rng=0, dtype=dt), (6, 5), (6, 5)),
    LayerCase("Dropout1D", lambda dt: bp.Dropout1D(0.4, rng=0, dtype=dt), (3, 4, 5), (3, 4, 5)),
    LayerCase("Dropout2D", lambda dt: bp.Dropout2D(0.5, rng=1, dtype=dt), (2, 4, 3, 3),
              (2, 4, 3, 3)),
    LayerCase("Dropout3D", lambda dt: bp.Dropout3D(0.5, rng=2, dtype=dt), (2, 4, 2, 2, 3),
              (2, 4, 2, 2, 3)),
    LayerCase("Dropout-all", lambda dt: bp.Dropout(1.0, rng=0, dtype=dt), (6, 5), (6, 5)),
    LayerCase("Dropout-4d", lambda dt: bp.Dropout(0.5, rng=1, dtype=dt), (2, 2, 3, 3),
              (2, 2, 3, 3)),
    LayerCase("AlphaDropout", lambda dt: bp.AlphaDropout(0.3, rng=0, dtype=dt), (6, 5), (6, 5)),
    LayerCase("AlphaDropout-all", lambda dt: bp.AlphaDropout(1.0, rng=0, dtype=dt), (6, 5),
              (6, 5)),
    LayerCase("AlphaDropout-none", lambda dt: bp.AlphaDropout(0.0, rng=0, dtype=dt), (6, 5),
              (6, 5)),
    LayerCase("FeatureAlphaDropout", lambda dt: bp.FeatureAlphaDropout(0.5, rng=1, dtype=dt),
              (3, 4, 3, 2), (3, 4, 3, 2)),
    LayerCase("FeatureAlphaDropout-2d", lambda dt: bp.FeatureAlphaDropout(0.4, rng=2, dtype=dt),
              (6, 5), (6, 5)),
    LayerCase("Residual", lambda dt: bp.Residual(bp.Dense(5, 5, dtype=dt, rng=0)),
              (6, 5), (6, 5)),
    LayerCase("Residual-Sequential", lambda dt: bp.Residual(bp.Sequential(
        [bp.Dense(5, 5, dtype=dt, rng=0), bp.Tanh(dtype=dt), bp.Dense(5, 5, dtype=dt, rng=1)])),
        (6, 5), (6, 5)),
    # recurrent layers: x (N, T, D) -> every step's h (N, T, H) or the last one's (N, H)
    LayerCase("LSTM", lambda dt: bp.LSTM(5, 3, dtype=dt, rng=0), (3, 4, 5), (3, 4, 3)),
    LayerCase("LSTM-last", lambda dt: bp.LSTM(5, 3, return_sequences=False, dtype=dt, rng=0),
              (3, 4, 5), (3, 3)),
    LayerCase("LSTM-nobias-one-step", lambda dt: bp.LSTM(5, 2, bias=False, dtype=dt, rng=1),
              (3, 1, 5), (3, 1, 2)),
    LayerCase("GRU", lambda dt: bp.GRU(5, 3, dtype=dt, rng=0), (3, 4, 5), (3, 4, 3)),
    LayerCase("GRU-last-nobias",
              lambda dt: bp.GRU(5, 3, bias=False, return_sequences=False, dtype=dt, rng=1),
              (3, 4, 5), (3, 3)),
    LayerCase("GRU-last", lambda dt: bp.GRU(4, 1, return_sequences=False, dtype=dt, rng=2),
              (2, 5, 4), (2, 1)),
    LayerCase("RNN-tanh", lambda dt: bp.RNN(5, 3, dtype=dt, rng=0), (3, 4, 5), (3, 4, 3)),
    LayerCase("RNN-tanh-last-nobias",
              lambda dt: bp.RNN(5, 3, bias=False, return_sequences=False, dtype=dt, rng=1),
              (3, 4, 5), (3, 3)),
    LayerCase("RNN-relu", lambda dt: bp.RNN(5, 3, nonlinearity="relu", dtype=dt, rng=0),
              (3, 4, 5), (3, 4, 3)),
    LayerCase("RNN-relu-last",
              lambda dt: bp.RNN(5, 3, nonlinearity="relu", return_sequences=False, dtype=dt,
                                rng=2), (3, 4, 5), (3, 3)),
    # both directions: concat (N, T, 2H), or each direction's last step (N, 2H); other merges H
    LayerCase("Bidirectional-LSTM", lambda dt: bp.Bidirectional(bp.LSTM(5, 3, dtype=dt, rng=0),
                                                                rng=1), (3, 4, 5), (3, 4, 6)),
    LayerCase("Bidirectional-GRU-last",
              lambda dt: bp.Bidirectional(bp.GRU(5, 3, return_sequences=False, dtype=dt, rng=0),
                                          rng=1), (3, 4, 5), (3, 6)),
    LayerCase("Bidirectional-RNN-sum-nobias-one-step",
              lambda dt: bp.Bidirectional(bp.RNN(5, 2, bias=False, dtype=dt, rng=0),
                                          merge_mode="sum", rng=1), (3, 1, 5), (3, 1, 2)),
    LayerCase("Bidirectional-LSTM-mul",
              lambda dt: bp.Bidirectional(bp.LSTM(4, 2, dtype=dt, rng=2), merge_mode="mul",
                                          rng=3), (2, 5, 4), (2, 5, 2)),
    LayerCase("Bidirectional-GRU-ave-last",
              lambda dt: bp.Bidirectional(bp.GRU(4, 1, return_sequences=False, dtype=dt, rng=2),
                                          merge_mode="ave", rng=3), (2, 5, 4), (2, 1)),
    LayerCase("Embedding-LSTM-Dense",  # the text classifier's shape: indices -> classes
              lambda dt: bp.Sequential([bp.Embedding(7, 4, dtype=dt, rng=0),
                                        bp.LSTM(4, 3, return_sequences=False, dtype=dt, rng=1),
                                        bp.Dense(3, 2, dtype=dt, rng=2)]),
              (3, 5), (3, 2), draw=indices(7), casts_input=True),
    # padded sequences: Embedding(mask_zero=True) masks the 0s for the layers after it
    LayerCase("Embedding-mask-LSTM-Dense",
              lambda dt: bp.Sequential([bp.Embedding(7, 4, mask_zero=True, dtype=dt, rng=0),
                                        bp.LSTM(4, 3, return_sequences=False, dtype=dt, rng=1),
                                        bp.Dense(3, 2, dtype=dt, rng=2)]),
              (3, 6), (3, 2), draw=padded_indices(7), casts_input=True),
    LayerCase("Embedding-mask-Bidirectional-GRU-Dense",
              lambda dt: bp.Sequential([bp.Embedding(7, 4, mask_zero=True, dtype=dt, rng=0),
                                        bp.Bidirectional(bp.GRU(4, 3, dtype=dt, rng=1), rng=2),
                                        bp.Dense(6, 2, dtype=dt, rng=3)]),
              (3, 6), (3, 6, 2), draw=padded_indices(7), casts_input=True),
    LayerCase("Embedding-mask-RNN-attention-LSTM",
              lambda dt: bp.Sequential([bp.Embedding(7, 4, mask_zero=True, dtype=dt, rng=0),
                                        bp.RNN(4, 4, dtype=dt, rng=1), _mha(dt, 4, 2),
                                        bp.LSTM(4, 2, return_sequences=False, dtype=dt,
                                                rng=2)]),
              (3, 6), (3, 2), draw=padded_indices(7), casts_input=True),
    LayerCase("Embedding-mask-mean-Dense",  # Keras' text classifier: the mean of real steps
              lambda dt: bp.Sequential([bp.Embedding(7, 4, mask_zero=True, dtype=dt, rng=0),
                                        bp.GlobalAvgPool(channels_last=True, dtype=dt),
                                        bp.Dense(4, 2, dtype=dt, rng=1)]),
              (3, 6), (3, 2), draw=padded_indices(7), casts_input=True),
    LayerCase("Masking", lambda dt: bp.Masking(dtype=dt), (3, 4, 5), (3, 4, 5)),
    LayerCase("Masking-GRU", lambda dt: bp.Sequential([bp.Masking(-9.0, dtype=dt),
                                                      bp.GRU(5, 3, dtype=dt, rng=0)]),
              (3, 4, 5), (3, 4, 3), casts_input=True),
    # self-attention: x (N, T, E) -> y (N, T, E)
    LayerCase("MultiheadAttention", lambda dt: _mha(dt, 6, 2), (3, 4, 6), (3, 4, 6)),
    LayerCase("MultiheadAttention-causal-heads", lambda dt: _mha(dt, 6, 3, causal=True),
              (2, 5, 6), (2, 5, 6)),
    LayerCase("MultiheadAttention-causal-one-head-nobias",
              lambda dt: _mha(dt, 4, 1, bias=False, causal=True), (3, 4, 4), (3, 4, 4)),
    LayerCase("MultiheadAttention-one-position", lambda dt: _mha(dt, 6, 2), (3, 1, 6),
              (3, 1, 6)),
    LayerCase("MultiheadAttention-dropout",  # the mask fixed by the layer's rng, as Dropout's
              lambda dt: _mha(dt, 6, 2, causal=True, dropout=0.3), (3, 4, 6), (3, 4, 6)),
    LayerCase("Transformer-block", _transformer_block, (2, 4, 6), (2, 4, 6), casts_input=True),
    LayerCase("TransformerEncoderLayer",  # the Sequential it builds (post-norm), dropout 0
              lambda dt: bp.TransformerEncoderLayer(6, 2, 8, dropout=0.0, activation="gelu",
                                                    causal=True, dtype=dt, rng=0),
              (2, 4, 6), (2, 4, 6), casts_input=True),
    LayerCase("TransformerEncoderLayer-prenorm-nobias",
              lambda dt: bp.TransformerEncoderLayer(6, 3, 8, dropout=0.0, norm_first=True,
                                                    bias=False, dtype=dt, rng=0),
              (2, 4, 6), (2, 4, 6), casts_input=True),
    LayerCase("PositionalEmbedding", lambda dt: bp.PositionalEmbedding(5, 3, dtype=dt, rng=0),
              (2, 4, 3), (2, 4, 3)),
    LayerCase("PositionalEmbedding-full-length",
              lambda dt: bp.PositionalEmbedding(4, 3, dtype=dt, rng=0), (2, 4, 3), (2, 4, 3)),
    LayerCase("Embedding-positions-attention",
              lambda dt: bp.Sequential([bp.Embedding(7, 4, dtype=dt, rng=0),
                                        bp.PositionalEmbedding(6, 4, dtype=dt, rng=1),
                                        _mha(dt, 4, 2, causal=True)]),
              (3, 5), (3, 5, 4), draw=indices(7), casts_input=True),
]

_labels = lambda rng: rng.integers(0, 4, size=6)  # noqa: E731


def _signs(rng: np.random.Generator) -> np.ndarray:
    """Targets of 1 or -1 (SoftMarginLoss, HingeEmbeddingLoss)."""
    return np.where(rng.random((6, 3)) < 0.5, -1.0, 1.0)


def _label_lists(rng: np.random.Generator) -> np.ndarray:
    """MultiLabelMarginLoss's targets (6, 4): each row 0 to 4 class indices (repeats too),
    then -1 and anything in [-1, 4) after it."""
    t = rng.integers(-1, 4, (6, 4))
    for n, k in enumerate([0, 1, 2, 3, 4, 2]):
        t[n, :k] = rng.integers(0, 4, k)
        t[n, k:k + 1] = -1
    return t


def _with_zeros(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Probabilities over axis 1 with about a quarter of them 0 (KLDivLoss's 0 · log 0)."""
    p = np.where(rng.random(shape) < 0.25, 0.0, rng.uniform(0.1, 1.0, shape))
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)

LOSSES: list[LossCase] = [
    LossCase("MeanSquaredError", bp.MeanSquaredError, (6, 3),
             lambda rng: rng.standard_normal((6, 3))),
    LossCase("Huber", lambda: bp.Huber(0.5), (6, 3), lambda rng: rng.standard_normal((6, 3))),
    LossCase("MeanAbsoluteError", bp.MeanAbsoluteError, (6, 3),
             lambda rng: rng.standard_normal((6, 3))),
    LossCase("BinaryCrossEntropyWithLogits", bp.BinaryCrossEntropyWithLogits, (6, 3),
             lambda rng: rng.uniform(0, 1, (6, 3))),
    LossCase("SoftmaxCrossEntropy", bp.SoftmaxCrossEntropy, (6, 4), _labels),
    LossCase("SoftmaxCrossEntropy-smoothing", lambda: bp.SoftmaxCrossEntropy(0.2), (6, 4),
             _labels),
    LossCase("SoftmaxCrossEntropy-smoothing-1", lambda: bp.SoftmaxCrossEntropy(1.0), (6, 4),
             _labels),
    LossCase("SoftmaxCrossEntropy-soft", bp.SoftmaxCrossEntropy, (6, 4),
             lambda rng: rng.dirichlet(np.ones(4), size=6)),
    LossCase("SoftmaxCrossEntropy-soft-unnormalized", lambda: bp.SoftmaxCrossEntropy(0.1),
             (6, 4), lambda rng: rng.uniform(0, 1, (6, 4))),  # rows need not sum to 1
    LossCase("SoftmaxCrossEntropy-weight-ignore_index",
             lambda: bp.SoftmaxCrossEntropy(0.1, weight=[1.0, 2.0, 0.5, 3.0], ignore_index=-1),
             (6, 4), lambda rng: np.where(np.arange(6) == 2, -1, rng.integers(0, 4, size=6))),
    LossCase("SoftmaxCrossEntropy-weight-soft",
             lambda: bp.SoftmaxCrossEntropy(weight=[1.0, 2.0, 0.5, 3.0]), (6, 4),
             lambda rng: rng.dirichlet(np.ones(4), size=6)),
    LossCase("SoftmaxCrossEntropy-per-position", bp.SoftmaxCrossEntropy, (2, 4, 3),
             lambda rng: rng.integers(0, 4, size=(2, 3))),
    LossCase("SoftmaxCrossEntropy-per-pixel-weight-ignore_index",
             lambda: bp.SoftmaxCrossEntropy(0.1, weight=[1.0, 2.0, 0.5, 3.0], ignore_index=-1),
             (2, 4, 3, 2),
             lambda rng: np.where(rng.random((2, 3, 2)) < 0.3, -1, rng.integers(0, 4, (2, 3, 2)))),
    LossCase("SoftmaxCrossEntropy-per-position-soft", lambda: bp.SoftmaxCrossEntropy(0.1),
             (2, 4, 3), lambda rng: rng.dirichlet(np.ones(4), size=(2, 3)).transpose(0, 2, 1)),
    LossCase("BinaryCrossEntropyWithLogits-pos_weight",
             lambda: bp.BinaryCrossEntropyWithLogits(pos_weight=[0.5, 2.0, 3.0]), (6, 3),
             lambda rng: rng.uniform(0, 1, (6, 3))),
    # reduction='sum', and 'none' (checked as the gradient of sum(g * losses), g random)
    LossCase("MeanSquaredError-sum", lambda: bp.MeanSquaredError(reduction="sum"), (6, 3),
             lambda rng: rng.standard_normal((6, 3))),
    LossCase("Huber-none", lambda: bp.Huber(0.5, reduction="none"), (6, 3),
             lambda rng: rng.standard_normal((6, 3))),
    LossCase("BinaryCrossEntropyWithLogits-none",
             lambda: bp.BinaryCrossEntropyWithLogits(reduction="none"), (6, 3),
             lambda rng: rng.uniform(0, 1, (6, 3))),
    LossCase("SoftmaxCrossEntropy-weight-ignore_index-sum",
             lambda: bp.SoftmaxCrossEntropy(weight=[1.0, 2.0, 0.5, 3.0], ignore_index=-1,
                                            reduction="sum"),
             (6, 4), lambda rng: np.where(np.arange(6) == 2, -1, rng.integers(0, 4, size=6))),
    LossCase("SoftmaxCrossEntropy-per-position-none",
             lambda: bp.SoftmaxCrossEntropy(0.1, reduction="none"), (2, 4, 3),
             lambda rng: rng.integers(0, 4, size=(2, 3))),
    # NLLLoss (the outputs stand for log-probabilities; any reals do for the checks) and
    # KLDivLoss, whose zero targets take 0 · log 0 = 0
    LossCase("NLLLoss", bp.NLLLoss, (6, 4), _labels),
    LossCase("NLLLoss-weight-ignore_index", lambda: bp.NLLLoss([1.0, 2.0, 0.5, 3.0],
                                                               ignore_index=-1),
             (6, 4), lambda rng: np.where(np.arange(6) == 2, -1, rng.integers(0, 4, size=6))),
    LossCase("NLLLoss-per-pixel-weight-default-ignore",
             lambda: bp.NLLLoss([1.0, 2.0, 0.5, 3.0]), (2, 4, 3, 2),
             lambda rng: np.where(rng.random((2, 3, 2)) < 0.3, -100,
                                  rng.integers(0, 4, (2, 3, 2)))),
    LossCase("NLLLoss-sum", lambda: bp.NLLLoss(reduction="sum"), (6, 4), _labels),
    LossCase("NLLLoss-per-position-none", lambda: bp.NLLLoss(reduction="none"), (2, 4, 3),
             lambda rng: rng.integers(0, 4, size=(2, 3))),
    LossCase("KLDivLoss", bp.KLDivLoss, (6, 4), lambda rng: _with_zeros(rng, (6, 4))),
    LossCase("KLDivLoss-batchmean", lambda: bp.KLDivLoss(reduction="batchmean"), (2, 4, 3),
             lambda rng: _with_zeros(rng, (2, 4, 3))),
    LossCase("KLDivLoss-sum-log_target", lambda: bp.KLDivLoss(reduction="sum", log_target=True),
             (6, 4), lambda rng: np.where(rng.random((6, 4)) < 0.2, -np.inf,
                                          np.log(rng.dirichlet(np.ones(4), size=6)))),
    LossCase("KLDivLoss-none", lambda: bp.KLDivLoss(reduction="none"), (6, 4),
             lambda rng: _with_zeros(rng, (6, 4))),
    # BCELoss on probabilities, SmoothL1Loss, the margin losses (±1 or 0/1 targets) and
    # PoissonNLLLoss (counts)
    LossCase("BCELoss", bp.BCELoss, (6, 3), lambda rng: rng.uniform(0, 1, (6, 3)),
             lambda rng, shape: rng.uniform(0.05, 0.95, shape)),
    LossCase("BCELoss-weight-sum", lambda: bp.BCELoss([0.5, 2.0, 1.0], reduction="sum"),
             (6, 3), lambda rng: rng.integers(0, 2, (6, 3)),
             lambda rng, shape: rng.uniform(0.05, 0.95, shape)),
    LossCase("BCELoss-none", lambda: bp.BCELoss(reduction="none"), (2, 3, 4),
             lambda rng: rng.uniform(0, 1, (2, 3, 4)),
             lambda rng, shape: rng.uniform(0.05, 0.95, shape)),
    LossCase("SmoothL1Loss", bp.SmoothL1Loss, (6, 3),
             lambda rng: rng.standard_normal((6, 3)) + 0.05),
    LossCase("SmoothL1Loss-beta-none", lambda: bp.SmoothL1Loss(beta=0.5, reduction="none"),
             (6, 3), lambda rng: rng.standard_normal((6, 3)) + 0.05),
    LossCase("SoftMarginLoss", bp.SoftMarginLoss, (6, 3), _signs),
    LossCase("SoftMarginLoss-none", lambda: bp.SoftMarginLoss(reduction="none"), (6, 3),
             _signs),
    LossCase("MultiLabelSoftMarginLoss", bp.MultiLabelSoftMarginLoss, (6, 3),
             lambda rng: rng.integers(0, 2, (6, 3))),
    LossCase("MultiLabelSoftMarginLoss-weight-none",
             lambda: bp.MultiLabelSoftMarginLoss([0.5, 2.0, 1.0], reduction="none"), (6, 3),
             lambda rng: rng.integers(0, 2, (6, 3))),
    LossCase("PoissonNLLLoss-full", lambda: bp.PoissonNLLLoss(full=True), (6, 3),
             lambda rng: rng.poisson(2.0, (6, 3))),
    LossCase("PoissonNLLLoss-rates-sum",
             lambda: bp.PoissonNLLLoss(log_input=False, reduction="sum"), (6, 3),
             lambda rng: rng.poisson(2.0, (6, 3)),
             lambda rng, shape: rng.uniform(0.2, 3.0, shape)),
    LossCase("HingeEmbeddingLoss", bp.HingeEmbeddingLoss, (6, 3), _signs,
             lambda rng, shape: rng.uniform(-2, 2, shape) + 0.05),
    LossCase("HingeEmbeddingLoss-none", lambda: bp.HingeEmbeddingLoss(0.5, reduction="none"),
             (6, 3), _signs, lambda rng, shape: rng.uniform(-2, 2, shape) + 0.05),
    # the multi-class hinges: normal draws leave every margin term well off its kink
    LossCase("MultiMarginLoss", bp.MultiMarginLoss, (6, 4), _labels),
    LossCase("MultiMarginLoss-p2-weight-none",
             lambda: bp.MultiMarginLoss(2, 0.5, [1.0, 2.0, 0.5, 3.0], reduction="none"),
             (6, 4), _labels),
    LossCase("MultiLabelMarginLoss", bp.MultiLabelMarginLoss, (6, 4), _label_lists),
    LossCase("MultiLabelMarginLoss-sum", lambda: bp.MultiLabelMarginLoss(reduction="sum"),
             (6, 4), _label_lists),
]
