"""Property-based tests (hypothesis) over every layer family, every loss and fit's input checks.

Each strategy builds one layer family with random sizes: batch, widths, channel
counts, kernel/stride/padding (non-square too) with the input just large enough,
both float dtypes. The properties are the Layer contract of ``tests/table.py``
over random shapes instead of fixed ones:

* forward and backward give the right shapes and the layer's dtype;
* finite inputs (including large magnitudes) give finite outputs, input
  gradients and parameter gradients, with no warnings (``filterwarnings=error``);
* ``check_gradients`` passes in float64 on small random shapes, with inputs drawn
  away from ReLU kinks and max-pool ties (``away_from_zero`` / ``distinct``);
* fit/evaluate/predict reject a wrong width naming what was expected and received.

Examples stay few and small (``deadline=None``: a shared CI core may be slow), so
the file runs in well under a minute; ``BACKPROP_PROPERTY_SCALE=20`` runs twenty
times as many examples for a deeper search. The examples are the same on every run
(``derandomize``, set in ``conftest.py``: CI never fails on a first-time draw);
``BACKPROP_PROPERTY_RANDOM=1`` draws fresh ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table import away_from_zero, distinct

import backprop as bp
from backprop.layers.base import Container

SCALE = int(os.environ.get("BACKPROP_PROPERTY_SCALE", "1"))

# hypothesis's failure report imports a module that warns; with filterwarnings=error that
# warning would replace the falsifying example by an INTERNALERROR
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")


def examples(n: int) -> settings:
    return settings(max_examples=n * SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    """A layer maker (dtype -> layer) with the input shape it takes and its output shape."""

    make: Callable[[Any], bp.Layer]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] = away_from_zero
    tol: float = 1e-6
    indices: bool = False  # the input is an Embedding's indices: never scaled


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


seeds = ints(0, 2**32 - 1)


def conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


# -- one strategy per layer family ---------------------------------------------------------
@st.composite
def dense(draw) -> Case:
    n, d_in, d_out, seed = draw(ints(1, 6)), draw(ints(1, 7)), draw(ints(1, 7)), draw(seeds)
    bias = draw(st.booleans())
    lead = tuple(draw(ints(1, 3)) for _ in range(draw(ints(0, 2))))  # (N, *, D_in) too
    return Case(lambda dt: bp.Dense(d_in, d_out, bias=bias, dtype=dt, rng=seed),
                (n, *lead, d_in), (n, *lead, d_out))


@st.composite
def spatial(draw, d: int, max_k: int = 3) -> tuple[Any, ...]:
    """Kernel, stride, padding per axis (``d`` axes, each its own: non-square) and an
    input size per axis just large enough for one window, plus a little."""
    k = tuple(draw(ints(1, max_k)) for _ in range(d))
    s = tuple(draw(ints(1, 3)) for _ in range(d))
    p = tuple(draw(ints(0, kk // 2 + 1)) for kk in k)
    size = tuple(max(kk - 2 * pp, 1) + draw(ints(0, 3)) for kk, pp in zip(k, p, strict=True))
    return k, s, p, size


@st.composite
def conv(draw, d: int) -> Case:
    n, c_in, c_out, seed = draw(ints(1, 2)), draw(ints(1, 3)), draw(ints(1, 3)), draw(seeds)
    k, s, p, size = draw(spatial(d))
    bias = draw(st.booleans())
    out = tuple(conv_out(*a) for a in zip(size, k, s, p, strict=True))
    cls = {1: bp.Conv1D, 2: bp.Conv2D, 3: bp.Conv3D}[d]
    arg = (lambda t: t[0]) if d == 1 else (lambda t: t)
    return Case(lambda dt: cls(c_in, c_out, arg(k), stride=arg(s), padding=arg(p), bias=bias,
                               dtype=dt, rng=seed), (n, c_in, *size), (n, c_out, *out))


@st.composite
def conv_transpose(draw, d: int) -> Case:
    """A transposed convolution: groups, dilation and an output_padding below stride or
    dilation, the input just large enough for a non-empty output, plus a little."""
    n, g, seed, bias = draw(ints(1, 2)), draw(ints(1, 2)), draw(seeds), draw(st.booleans())
    c_in, c_out = g * draw(ints(1, 2)), g * draw(ints(1, 2))
    k, s, p, size = draw(spatial(d))
    dil = tuple(draw(ints(1, 2)) for _ in range(d))
    op = tuple(draw(ints(0, max(ss, dd) - 1)) for ss, dd in zip(s, dil, strict=True))
    grow = tuple(dd * (kk - 1) + oo - 2 * pp for kk, pp, oo, dd in zip(k, p, op, dil, strict=True))
    size = tuple(max(nn, 1 - gg // ss) for nn, gg, ss in zip(size, grow, s, strict=True))
    out = tuple((nn - 1) * ss + gg + 1 for nn, ss, gg in zip(size, s, grow, strict=True))
    cls = {1: bp.ConvTranspose1D, 2: bp.ConvTranspose2D, 3: bp.ConvTranspose3D}[d]
    arg = (lambda t: t[0]) if d == 1 else (lambda t: t)
    return Case(lambda dt: cls(c_in, c_out, arg(k), arg(s), arg(p), arg(op), g, bias, arg(dil),
                               dtype=dt, rng=seed), (n, c_in, *size), (n, c_out, *out))


@st.composite
def pool(draw, d: int, kind: str) -> Case:
    n, c = draw(ints(1, 3)), draw(ints(1, 3))
    k = tuple(draw(ints(1, 3)) for _ in range(d))
    stride = draw(st.none() | st.tuples(*(ints(1, 3) for _ in range(d))))
    s = k if stride is None else stride
    size = tuple(kk + draw(ints(0, 4)) for kk in k)
    out = tuple(conv_out(nn, kk, ss, 0) for nn, kk, ss in zip(size, k, s, strict=True))
    cls = {("max", 1): bp.MaxPool1D, ("max", 2): bp.MaxPool2D, ("max", 3): bp.MaxPool3D,
           ("avg", 1): bp.AvgPool1D, ("avg", 2): bp.AvgPool2D, ("avg", 3): bp.AvgPool3D}[kind, d]
    kernel, st_arg = (k[0], None if stride is None else s[0]) if d == 1 else (k, stride)
    return Case(lambda dt: cls(kernel, st_arg, dtype=dt), (n, c, *size), (n, c, *out),
                draw=distinct if kind == "max" else away_from_zero)


@st.composite
def adaptive_pool(draw, d: int, kind: str) -> Case:
    """An adaptive pool to any output size, larger than the input too; 2-D and 3-D entries
    may be None (keep the input's size)."""
    n, c = draw(ints(1, 3)), draw(ints(1, 3))
    size = tuple(draw(ints(1, 7 if d < 3 else 4)) for _ in range(d))
    out = tuple(draw(ints(1, 6) | st.none()) if d > 1 else draw(ints(1, 6)) for _ in range(d))
    cls = getattr(bp, f"Adaptive{kind.title()}Pool{d}D")
    arg = out[0] if d == 1 else out
    real = tuple(nn if o is None else o for nn, o in zip(size, out, strict=True))
    return Case(lambda dt: cls(arg, dtype=dt), (n, c, *size), (n, c, *real),
                draw=distinct if kind == "max" else away_from_zero)


@st.composite
def upsample(draw) -> Case:
    """Upsample by a size or a scale factor (down too), in every mode of its rank."""
    d, n, c = draw(ints(1, 3)), draw(ints(1, 2)), draw(ints(1, 3))
    weighted = {1: ["linear"], 2: ["bilinear", "bicubic"], 3: ["trilinear"]}[d]
    mode = draw(st.sampled_from(["nearest", "nearest-exact", *weighted]))
    corners = draw(st.sampled_from([None, False, True])) if mode in weighted else None
    size = tuple(draw(ints(2, 5 if d < 3 else 3)) for _ in range(d))
    if draw(st.booleans()):
        out = tuple(draw(ints(1, 8)) for _ in range(d))
        kwargs = {"size": out[0] if d == 1 else out}
    else:
        scale = draw(st.sampled_from([0.5, 0.75, 1.0, 1.5, 2, 2.5, 3]))
        out = tuple(int(nn * scale) for nn in size)
        kwargs = {"scale_factor": scale}
    return Case(lambda dt: bp.Upsample(mode=mode, align_corners=corners, dtype=dt, **kwargs),
                (n, c, *size), (n, c, *out))


@st.composite
def global_avg_pool(draw) -> Case:
    n, c = draw(ints(1, 3)), draw(ints(1, 4))
    size = tuple(draw(ints(1, 4)) for _ in range(draw(ints(1, 3))))
    if draw(st.booleans()):  # Keras' layout
        return Case(lambda dt: bp.GlobalAvgPool(channels_last=True, dtype=dt), (n, *size, c),
                    (n, c))
    return Case(lambda dt: bp.GlobalAvgPool(dtype=dt), (n, c, *size), (n, c))


@st.composite
def flatten(draw) -> Case:
    n = draw(ints(1, 4))
    rest = tuple(draw(ints(1, 4)) for _ in range(draw(ints(1, 3))))
    return Case(lambda dt: bp.Flatten(dtype=dt), (n, *rest), (n, int(np.prod(rest))))


@st.composite
def permute(draw) -> Case:
    n = draw(ints(1, 4))
    rest = tuple(draw(ints(1, 4)) for _ in range(draw(ints(1, 3))))
    dims = tuple(int(i) + 1 for i in draw(st.permutations(range(len(rest)))))
    return Case(lambda dt: bp.Permute(dims, dtype=dt), (n, *rest),
                (n, *(rest[d - 1] for d in dims)))


@st.composite
def pad(draw, family: str, rank: int) -> Case:
    """A padding layer: each side from -1 (a crop) to 2, on axes of 3 to 5 (within every
    mode's limit)."""
    n, c = draw(ints(1, 3)), draw(ints(1, 3))
    size = tuple(draw(ints(3, 5)) for _ in range(rank))
    padding = tuple(draw(ints(-1, 2)) for _ in range(2 * rank))  # last axis first
    pairs = [padding[i:i + 2] for i in range(2 * rank - 2, -1, -2)]
    out = tuple(m + b + a for m, (b, a) in zip(size, pairs, strict=True))
    extra = (draw(st.sampled_from([-1.0, 0.5])),) if family == "ConstantPad" else ()
    return Case(lambda dt: getattr(bp, f"{family}{rank}D")(padding, *extra, dtype=dt),
                (n, c, *size), (n, c, *out))


@st.composite
def unflatten(draw) -> Case:
    n, a, b = draw(ints(1, 4)), draw(ints(1, 4)), draw(ints(1, 4))
    sizes = draw(st.sampled_from([(a, b), (a, -1), (-1, b)]))
    return Case(lambda dt: bp.Unflatten(1, sizes, dtype=dt), (n, a * b), (n, a, b))


@st.composite
def pixel_shuffle(draw, up: bool) -> Case:
    n, c, h, w, r = (draw(ints(1, 3)) for _ in range(5))
    small, large = (n, c * r * r, h, w), (n, c, h * r, w * r)
    if up:
        return Case(lambda dt: bp.PixelShuffle(r, dtype=dt), small, large)
    return Case(lambda dt: bp.PixelUnshuffle(r, dtype=dt), large, small)


@st.composite
def channel_shuffle(draw) -> Case:
    n, g, per = draw(ints(1, 3)), draw(ints(1, 3)), draw(ints(1, 3))
    shape = (n, g * per, *(draw(ints(1, 3)) for _ in range(draw(ints(1, 2)))))
    return Case(lambda dt: bp.ChannelShuffle(g, dtype=dt), shape, shape)


@st.composite
def fold(draw, unfold: bool) -> Case:
    """Unfold, or Fold back into the image it would read: kernel, dilation, padding and
    stride per axis, the image just large enough for one block, plus a little."""
    n, c = draw(ints(1, 2)), draw(ints(1, 2))
    k, s, p, _ = draw(spatial(2))
    dil = tuple(draw(ints(1, 2)) for _ in range(2))
    span = tuple(d * (kk - 1) + 1 for kk, d in zip(k, dil, strict=True))
    size = tuple(max(sp - 2 * pp, 1) + draw(ints(0, 3)) for sp, pp in zip(span, p, strict=True))
    blocks = int(np.prod([conv_out(*a) for a in zip(size, span, s, p, strict=True)]))
    cols = (n, c * k[0] * k[1], blocks)
    if unfold:
        return Case(lambda dt: bp.Unfold(k, dil, p, s, dtype=dt), (n, c, *size), cols)
    return Case(lambda dt: bp.Fold(size, k, dil, p, s, dtype=dt), cols, (n, c, *size))


@st.composite
def local_response_norm(draw) -> Case:
    rest = tuple(draw(ints(1, 3)) for _ in range(draw(ints(1, 2))))
    shape = (draw(ints(1, 3)), draw(ints(1, 5)), *rest)
    size, alpha = draw(ints(1, 6)), draw(st.sampled_from([1e-4, 0.1, 1.0]))
    beta, k = draw(st.sampled_from([0.5, 0.75, 1.5])), draw(st.sampled_from([1.0, 2.0]))
    return Case(lambda dt: bp.LocalResponseNorm(size, alpha, beta, k, dtype=dt), shape, shape)


@st.composite
def lp_pool(draw, d: int) -> Case:
    """LPPool on positive inputs (an odd p's negative window sum is NaN, as in PyTorch)."""
    n, c, p = draw(ints(1, 3)), draw(ints(1, 3)), draw(st.sampled_from([1, 2, 3, 1.5]))
    k = tuple(draw(ints(1, 3)) for _ in range(d))
    stride, ceil = draw(st.none() | st.tuples(*(ints(1, 3) for _ in range(d)))), draw(st.booleans())
    s = k if stride is None else stride
    size = tuple(kk + draw(ints(0, 4)) for kk in k)
    out = []
    for nn, kk, ss in zip(size, k, s, strict=True):
        o = -(-(nn - kk) // ss) + 1 if ceil else conv_out(nn, kk, ss, 0)
        out.append(o - 1 if (o - 1) * ss >= nn else o)  # the last window starts inside
    cls = {1: bp.LPPool1D, 2: bp.LPPool2D}[d]
    kernel, st_arg = (k[0], None if stride is None else s[0]) if d == 1 else (k, stride)
    return Case(lambda dt: cls(p, kernel, st_arg, ceil, dtype=dt), (n, c, *size), (n, c, *out),
                draw=lambda rng, shape: rng.uniform(0.2, 2.0, shape))


@st.composite
def reshape(draw) -> Case:
    n, a, b = draw(ints(1, 4)), draw(ints(1, 4)), draw(ints(1, 4))
    target = draw(st.sampled_from([(a, b), (a, -1), (-1, b), (b, a, 1)]))
    out = (a, b) if -1 in target else target
    return Case(lambda dt: bp.Reshape(target, dtype=dt), (n, a * b), (n, *out))


@st.composite
def batch_norm(draw) -> Case:
    """BatchNorm on 2-, 3- or 4-D input; batch statistics need >= 4 values per channel
    (fewer make the variance, and so the gradient check, ill-conditioned)."""
    c, seed = draw(ints(1, 3)), draw(seeds)
    size = tuple(draw(ints(1, 3)) for _ in range(draw(ints(0, 2))))
    n = draw(ints(max(1, -(-4 // int(np.prod(size, dtype=int)))), 5))
    frozen = draw(st.booleans())
    momentum = draw(st.floats(0.0, 1.0).filter(lambda m: not 0.9 <= m < 1.0))  # those warn

    def make(dt):
        layer = bp.BatchNorm(c, momentum=momentum, use_running_stats=frozen, dtype=dt)
        rng = np.random.default_rng(seed)
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
        layer.params["beta"][...] = rng.standard_normal(c)
        layer.buffers["running_mean"][...] = rng.standard_normal(c) * 0.3
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
        return layer

    return Case(make, (n, c, *size), (n, c, *size), tol=1e-5)


@st.composite
def embedding(draw) -> Case:
    v, d, seed = draw(ints(1, 6)), draw(ints(1, 4)), draw(seeds)
    shape = (draw(ints(1, 4)), *(draw(ints(1, 4)) for _ in range(draw(ints(0, 2)))))
    # (no padding_idx here: its row's gradient is 0 by rule, not the derivative)
    return Case(lambda dt: bp.Embedding(v, d, dtype=dt, rng=seed), shape,
                (*shape, d), draw=lambda rng, s: rng.integers(0, v, s).astype(np.float64),
                indices=True)


@st.composite
def recurrent(draw, kind: str) -> Case:
    """LSTM, GRU or RNN (tanh or relu): x (N, T, D) -> (N, T, H), or (N, H) for the last
    step only; with or without biases; T = 1 and H = 1 included."""
    n, steps, d, h = draw(ints(1, 4)), draw(ints(1, 5)), draw(ints(1, 4)), draw(ints(1, 4))
    bias, sequences, seed = draw(st.booleans()), draw(st.booleans()), draw(seeds)
    extra = {"nonlinearity": draw(st.sampled_from(["tanh", "relu"]))} if kind == "RNN" else {}
    cls = getattr(bp, kind)
    return Case(lambda dt: cls(d, h, bias=bias, return_sequences=sequences, dtype=dt, rng=seed,
                               **extra), (n, steps, d), (n, steps, h) if sequences else (n, h))


@st.composite
def bidirectional(draw) -> Case:
    """Bidirectional around an LSTM, GRU or RNN, every merge mode: x (N, T, D) -> (N, T, F),
    or (N, F) for each direction's last step; F = 2H for 'concat', else H."""
    kind = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    n, steps, d, h = draw(ints(1, 4)), draw(ints(1, 5)), draw(ints(1, 4)), draw(ints(1, 4))
    bias, sequences, seed = draw(st.booleans()), draw(st.booleans()), draw(seeds)
    mode = draw(st.sampled_from(["concat", "sum", "mul", "ave"]))
    extra = {"nonlinearity": draw(st.sampled_from(["tanh", "relu"]))} if kind == "RNN" else {}
    cls, f = getattr(bp, kind), 2 * h if mode == "concat" else h
    return Case(lambda dt: bp.Bidirectional(cls(d, h, bias=bias, return_sequences=sequences,
                                                dtype=dt, rng=seed, **extra),
                                            merge_mode=mode, rng=seed + 1),
                (n, steps, d), (n, steps, f) if sequences else (n, f))


@st.composite
def masking(draw) -> Case:
    """Masking before an LSTM, GRU or RNN, x (N, T, D) -> (N, T, H) or (N, H): the draws
    hold no step all at mask_value (a mask flips under any perturbation of such a step;
    tests/test_masks.py checks padded steps)."""
    kind = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    n, steps, d, h = draw(ints(1, 4)), draw(ints(1, 5)), draw(ints(1, 4)), draw(ints(1, 4))
    sequences, seed = draw(st.booleans()), draw(seeds)
    value = draw(st.sampled_from([0.0, -1.0]))
    cls = getattr(bp, kind)
    return Case(lambda dt: bp.Sequential([bp.Masking(value, dtype=dt),
                                          cls(d, h, return_sequences=sequences, dtype=dt,
                                              rng=seed)]),
                (n, steps, d), (n, steps, h) if sequences else (n, h))


@st.composite
def attention(draw) -> Case:
    """MultiheadAttention: x (N, T, E) -> (N, T, E), E = heads * d; causal or not, with or
    without biases, attention dropout or none (the mask fixed by the layer's seed); T = 1
    and one head included."""
    n, steps, heads, d = draw(ints(1, 3)), draw(ints(1, 5)), draw(ints(1, 3)), draw(ints(1, 3))
    bias, causal, seed = draw(st.booleans()), draw(st.booleans()), draw(seeds)
    dropout = draw(st.sampled_from([0.0, 0.0, 0.3]))
    return Case(lambda dt: bp.MultiheadAttention(heads * d, heads, bias=bias, causal=causal,
                                                 dropout=dropout, dtype=dt, rng=seed),
                (n, steps, heads * d), (n, steps, heads * d))


@st.composite
def positions(draw) -> Case:
    """PositionalEmbedding: x (N, T, E) -> (N, T, E), T up to max_length."""
    n, steps, e, seed = draw(ints(1, 3)), draw(ints(1, 5)), draw(ints(1, 4)), draw(seeds)
    longest = steps + draw(ints(0, 3))
    return Case(lambda dt: bp.PositionalEmbedding(longest, e, dtype=dt, rng=seed),
                (n, steps, e), (n, steps, e))


@st.composite
def prelu(draw) -> Case:
    shape = (draw(ints(1, 4)), *(draw(ints(1, 4)) for _ in range(draw(ints(1, 3)))))
    per_channel, seed = draw(st.booleans()), draw(seeds)
    k = shape[1] if per_channel else 1

    def make(dt):
        layer = bp.PReLU(k, dtype=dt)
        layer.params["alpha"][...] = np.random.default_rng(seed).uniform(-1.0, 1.0, k)
        return layer

    return Case(make, shape, shape)


@st.composite
def group_norm(draw) -> Case:
    n, groups, per, seed = draw(ints(1, 3)), draw(ints(1, 3)), draw(ints(1, 3)), draw(seeds)
    spatial = tuple(draw(ints(1, 3)) for _ in range(draw(ints(0, 2))))
    if per * int(np.prod(spatial)) < 3:  # 1-2 values a group: variance ill-conditioned
        spatial = (*spatial, 3)
    c = groups * per

    def make(dt):
        layer = bp.GroupNorm(groups, c, dtype=dt)
        rng = np.random.default_rng(seed)
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
        layer.params["beta"][...] = rng.standard_normal(c)
        return layer

    shape = (n, c, *spatial)
    return Case(make, shape, shape, tol=1e-5)


@st.composite
def instance_norm(draw, d: int) -> Case:
    n, c, seed = draw(ints(1, 3)), draw(ints(1, 3)), draw(seeds)
    spatial = tuple(draw(ints(1, 3)) for _ in range(d))
    if int(np.prod(spatial)) < 3:  # 1-2 positions: variance ill-conditioned
        spatial = (*spatial[:-1], spatial[-1] + 2)
    affine, running = draw(st.booleans()), draw(st.booleans())
    cls = (bp.InstanceNorm1D, bp.InstanceNorm2D, bp.InstanceNorm3D)[d - 1]

    def make(dt):
        layer = cls(c, affine=affine, track_running_stats=running, dtype=dt)
        if affine:
            rng = np.random.default_rng(seed)
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
            layer.params["beta"][...] = rng.standard_normal(c)
        return layer

    shape = (n, c, *spatial)
    return Case(make, shape, shape, tol=1e-5)


@st.composite
def channel_dropout(draw, d: int) -> Case:
    shape = (draw(ints(1, 4)), draw(ints(1, 4)), *(draw(ints(1, 4)) for _ in range(d)))
    rate, seed = draw(st.floats(0.0, 0.9)), draw(seeds)
    cls = (bp.Dropout1D, bp.Dropout2D, bp.Dropout3D)[d - 1]
    return Case(lambda dt: cls(rate, rng=seed, dtype=dt), shape, shape)


@st.composite
def rms_norm(draw) -> Case:
    n, seed = draw(ints(1, 4)), draw(seeds)
    lead = tuple(draw(ints(1, 3)) for _ in range(draw(ints(0, 1))))
    normalized = tuple(draw(ints(1, 4)) for _ in range(draw(ints(1, 2))))
    eps, affine = draw(st.sampled_from([None, 1e-5, 0.1])), draw(st.booleans())

    def make(dt):
        layer = bp.RMSNorm(normalized if len(normalized) > 1 else normalized[0], eps=eps,
                           elementwise_affine=affine, dtype=dt)
        if affine:
            layer.params["gamma"][...] = np.random.default_rng(seed).uniform(0.5, 1.5,
                                                                            normalized)
        return layer

    shape = (n, *lead, *normalized)
    return Case(make, shape, shape, tol=1e-5)


@st.composite
def layer_norm(draw) -> Case:
    n, seed = draw(ints(1, 4)), draw(seeds)
    lead = tuple(draw(ints(1, 3)) for _ in range(draw(ints(0, 1))))
    normalized = tuple(draw(ints(1, 4)) for _ in range(draw(ints(1, 2))))
    if int(np.prod(normalized)) < 3:  # 1-2 values: variance ill-conditioned for gradcheck
        normalized = (*normalized[:-1], normalized[-1] + 2)

    def make(dt):
        layer = bp.LayerNorm(normalized if len(normalized) > 1 else normalized[0], dtype=dt)
        rng = np.random.default_rng(seed)
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, normalized)
        layer.params["beta"][...] = rng.standard_normal(normalized)
        return layer

    shape = (n, *lead, *normalized)
    return Case(make, shape, shape, tol=1e-5)


@st.composite
def dropout(draw) -> Case:
    shape = (draw(ints(1, 4)), *(draw(ints(1, 4)) for _ in range(draw(ints(1, 3)))))
    rate, seed = draw(st.floats(0.0, 0.9)), draw(seeds)
    return Case(lambda dt: bp.Dropout(rate, rng=seed, dtype=dt), shape, shape)


@st.composite
def alpha_dropout(draw, feature: bool) -> Case:
    """AlphaDropout of any batch, or FeatureAlphaDropout of (N, C, *); rates 0 and 1 too."""
    lead = 2 if feature else 1
    shape = (draw(ints(1, 4)), *(draw(ints(1, 4)) for _ in range(draw(ints(lead, 3)))))
    rate = draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 0.95))
    seed = draw(seeds)
    cls = bp.FeatureAlphaDropout if feature else bp.AlphaDropout
    return Case(lambda dt: cls(rate, rng=seed, dtype=dt), shape, shape)


@st.composite
def rrelu(draw) -> Case:
    """RReLU with ordered bounds anywhere in [-1, 2] (equal ones too)."""
    shape = (draw(ints(1, 4)), *(draw(ints(1, 4)) for _ in range(draw(ints(1, 3)))))
    lower, upper = sorted(draw(st.floats(-1.0, 2.0)) for _ in range(2))
    seed = draw(seeds)
    return Case(lambda dt: bp.RReLU(lower, upper, rng=seed, dtype=dt), shape, shape)


ACTIVATIONS = {
    "Identity": lambda dt: bp.Identity(dtype=dt),
    "ReLU": lambda dt: bp.ReLU(dtype=dt),
    "LeakyReLU": lambda dt: bp.LeakyReLU(0.1, dtype=dt),
    "ELU": lambda dt: bp.ELU(0.7, dtype=dt),
    "GELU": lambda dt: bp.GELU(dtype=dt),
    "SiLU": lambda dt: bp.SiLU(dtype=dt),
    "Softplus": lambda dt: bp.Softplus(2.0, dtype=dt),
    "Sigmoid": lambda dt: bp.Sigmoid(dtype=dt),
    "Tanh": lambda dt: bp.Tanh(dtype=dt),
    "Softmax": lambda dt: bp.Softmax(dtype=dt),
    "ReLU6": lambda dt: bp.ReLU6(dtype=dt),
    "Hardtanh": lambda dt: bp.Hardtanh(-2.0, 0.5, dtype=dt),
    "Hardsigmoid": lambda dt: bp.Hardsigmoid(dtype=dt),
    "Hardswish": lambda dt: bp.Hardswish(dtype=dt),
    "SELU": lambda dt: bp.SELU(dtype=dt),
    "CELU": lambda dt: bp.CELU(0.5, dtype=dt),
    "Mish": lambda dt: bp.Mish(dtype=dt),
    "Softsign": lambda dt: bp.Softsign(dtype=dt),
    "LogSoftmax": lambda dt: bp.LogSoftmax(dtype=dt),
    "LogSigmoid": lambda dt: bp.LogSigmoid(dtype=dt),
    "Tanhshrink": lambda dt: bp.Tanhshrink(dtype=dt),
    "Softshrink": lambda dt: bp.Softshrink(0.05, dtype=dt),  # kinks inside away_from_zero's gap
    "Hardshrink": lambda dt: bp.Hardshrink(0.05, dtype=dt),
    "Threshold": lambda dt: bp.Threshold(0.05, -1.5, dtype=dt),
    "Softmin": lambda dt: bp.Softmin(dtype=dt),
    "GLU": lambda dt: bp.GLU(dtype=dt),
}


@st.composite
def activation(draw, name: str) -> Case:
    shape = (draw(ints(1, 4)), *(draw(ints(1, 4)) for _ in range(draw(ints(1, 3)))))
    if name == "Softmax":
        shape = shape[:2]
    if name == "GLU":  # halves the last axis
        return Case(ACTIVATIONS[name], (*shape[:-1], 2 * shape[-1]), shape)
    return Case(ACTIVATIONS[name], shape, shape)


@st.composite
def residual(draw) -> Case:
    """Residual around a shape-preserving block: Dense, a small Sequential, a 'same' conv."""
    n, d, seed = draw(ints(1, 4)), draw(ints(1, 5)), draw(seeds)
    kind = draw(st.sampled_from(["dense", "sequential", "conv"]))
    if kind == "conv":
        c, k = draw(ints(1, 3)), draw(st.sampled_from([1, 3]))
        h, w = draw(ints(1, 4)), draw(ints(1, 4))
        return Case(lambda dt: bp.Residual(bp.Conv2D(c, c, k, padding=k // 2, dtype=dt,
                                                     rng=seed)), (n, c, h, w), (n, c, h, w))
    if kind == "dense":
        return Case(lambda dt: bp.Residual(bp.Dense(d, d, dtype=dt, rng=seed)), (n, d), (n, d))
    return Case(lambda dt: bp.Residual(bp.Sequential([
        bp.Dense(d, d + 2, dtype=dt, rng=seed), bp.Tanh(dtype=dt),
        bp.Dense(d + 2, d, dtype=dt, rng=seed + 1)])), (n, d), (n, d))


@st.composite
def sequential(draw) -> Case:
    n, widths, seed = draw(ints(1, 4)), draw(st.lists(ints(1, 6), min_size=2, max_size=4)), \
        draw(seeds)
    acts = draw(st.lists(st.sampled_from(["Tanh", "Sigmoid", "GELU", "ELU"]),
                         min_size=len(widths) - 1, max_size=len(widths) - 1))

    def make(dt):
        layers: list[bp.Layer] = []
        for i, act in enumerate(acts):
            layers += [bp.Dense(widths[i], widths[i + 1], dtype=dt, rng=seed + i),
                       ACTIVATIONS[act](dt)]
        return bp.Sequential(layers, dtype=dt)

    return Case(make, (n, widths[0]), (n, widths[-1]))


FAMILIES: dict[str, st.SearchStrategy[Case]] = {
    "Dense": dense(), "Conv1D": conv(1), "Conv2D": conv(2), "Conv3D": conv(3),
    "MaxPool3D": pool(3, "max"), "AvgPool3D": pool(3, "avg"),
    "ConvTranspose1D": conv_transpose(1), "ConvTranspose2D": conv_transpose(2),
    "ConvTranspose3D": conv_transpose(3),
    "MaxPool1D": pool(1, "max"), "MaxPool2D": pool(2, "max"),
    "AvgPool1D": pool(1, "avg"), "AvgPool2D": pool(2, "avg"),
    "GlobalAvgPool": global_avg_pool(), "Flatten": flatten(), "Reshape": reshape(),
    "AdaptiveAvgPool1D": adaptive_pool(1, "avg"), "AdaptiveAvgPool2D": adaptive_pool(2, "avg"),
    "AdaptiveMaxPool1D": adaptive_pool(1, "max"), "AdaptiveMaxPool2D": adaptive_pool(2, "max"),
    "AdaptiveAvgPool3D": adaptive_pool(3, "avg"), "AdaptiveMaxPool3D": adaptive_pool(3, "max"),
    "Upsample": upsample(),
    "Unflatten": unflatten(), "PixelShuffle": pixel_shuffle(True),
    "PixelUnshuffle": pixel_shuffle(False),
    "ChannelShuffle": channel_shuffle(), "Unfold": fold(True), "Fold": fold(False),
    "LocalResponseNorm": local_response_norm(), "LPPool1D": lp_pool(1), "LPPool2D": lp_pool(2),
    **{f"{f}{d}D": pad(f, d) for f in ("ZeroPad", "ConstantPad", "ReflectionPad",
                                       "ReplicationPad", "CircularPad") for d in (1, 2, 3)},
    "Permute": permute(),
    "BatchNorm": batch_norm(), "LayerNorm": layer_norm(), "GroupNorm": group_norm(),
    "Dropout": dropout(), "PReLU": prelu(), "Embedding": embedding(),
    "InstanceNorm1D": instance_norm(1), "InstanceNorm2D": instance_norm(2),
    "Dropout1D": channel_dropout(1), "Dropout2D": channel_dropout(2),
    "InstanceNorm3D": instance_norm(3), "Dropout3D": channel_dropout(3),
    "RMSNorm": rms_norm(),
    "AlphaDropout": alpha_dropout(False), "FeatureAlphaDropout": alpha_dropout(True),
    "RReLU": rrelu(),
    "LSTM": recurrent("LSTM"), "GRU": recurrent("GRU"), "RNN": recurrent("RNN"),
    "Bidirectional": bidirectional(), "Masking": masking(),
    "MultiheadAttention": attention(), "PositionalEmbedding": positions(),
    "Residual": residual(), "Sequential": sequential(),
    **{name: activation(name) for name in ACTIVATIONS},
}
families = pytest.mark.parametrize("family", list(FAMILIES))
dtypes = st.sampled_from([np.float32, np.float64])


def classes_in(layer: bp.Layer) -> set[type]:
    found = {type(layer)}
    for _, child in layer.children():
        found |= classes_in(child)
    return found


@settings(max_examples=3, deadline=None, database=None)
@given(data=st.data())
def test_strategies_cover_every_exported_layer(data):
    exported = {getattr(bp.layers, n) for n in bp.layers.__all__}
    exported = {c for c in exported if isinstance(c, type) and issubclass(c, bp.Layer)}
    covered: set[type] = set()
    for strategy in FAMILIES.values():
        covered |= classes_in(data.draw(strategy).make(np.float32))
    covered |= {bp.Residual, bp.Sequential, bp.Dense, bp.Conv2D, bp.Tanh}  # residual kinds vary
    assert exported - {bp.Layer, Container} <= covered


# -- contract over random shapes -------------------------------------------------------------
ELEMENTWISE = set(ACTIVATIONS) | {"Dropout", "Dropout1D", "Dropout2D", "Dropout3D", "Flatten",
                                   "Reshape", "Permute", "MaxPool1D", "MaxPool2D",
                                   "AlphaDropout", "FeatureAlphaDropout", "RReLU"}


@families
@examples(25)
@given(data=st.data())
def test_forward_and_backward_give_shapes_dtypes_and_finite_values(family, data):
    case, dtype = data.draw(FAMILIES[family]), data.draw(dtypes)
    # large magnitudes where the layer's math allows them in float32 (no products of x)
    magnitudes = [1.0, 1e3, 1e15, 1e30] if family in ELEMENTWISE else [1.0, 1e3]
    scale = 1.0 if case.indices else data.draw(st.sampled_from(magnitudes))
    rng = np.random.default_rng(data.draw(seeds))
    layer = case.make(dtype)
    x = (case.draw(rng, case.in_shape) * scale).astype(dtype)
    x0 = x.copy()
    y = layer.forward(x, training=True)
    assert y.shape == case.out_shape and y.dtype == dtype
    assert np.isfinite(y).all()
    dx = layer.backward(rng.standard_normal(y.shape).astype(dtype))
    assert dx.shape == case.in_shape and dx.dtype == dtype and np.isfinite(dx).all()
    for k, g in layer.grads.items():
        assert g.dtype == dtype and g.shape == layer.params[k].shape and np.isfinite(g).all()
    assert not layer.has_cache
    np.testing.assert_array_equal(x, x0)
    y_inf = layer.forward(x)
    assert y_inf.shape == case.out_shape and y_inf.dtype == dtype and np.isfinite(y_inf).all()
    assert not layer.has_cache


@families
@examples(12)
@given(data=st.data())
def test_gradients_match_central_differences_on_random_shapes(family, data):
    case = data.draw(FAMILIES[family])
    x = case.draw(np.random.default_rng(data.draw(seeds)), case.in_shape)
    result = bp.check_gradients(case.make(np.float64), x, rng=data.draw(seeds), tol=case.tol)
    assert result.passed, str(result)


@examples(10)
@given(c=ints(1, 3), size=st.tuples(*(st.just(1),) * 2) | st.tuples(st.just(1)) | st.tuples(),
       dtype=dtypes)
def test_batch_norm_with_one_value_per_channel_refuses_training(c, size, dtype):
    layer = bp.BatchNorm(c, dtype=dtype)
    with pytest.raises(ValueError, match="BatchNorm"):
        layer.forward(np.ones((1, c, *size), dtype), training=True)
    assert not layer.has_cache
    assert np.isfinite(layer.forward(np.ones((1, c, *size), dtype))).all()  # running stats


# -- losses --------------------------------------------------------------------------------
@dataclass
class LossCase:
    loss: bp.Loss
    out_shape: tuple[int, ...]
    target: np.ndarray
    max_scale: float  # largest output magnitude whose loss still fits in float32


@st.composite
def losses(draw) -> LossCase:
    n, c, seed = draw(ints(1, 6)), draw(ints(1, 5)), draw(seeds)
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["mse", "huber", "bce", "sce", "sce-soft", "multi-margin",
                                 "multi-label-margin"]))
    if kind == "sce-soft":  # one class of probabilities is refused (the loss would be 0)
        c = max(c, 2)
    shape = (n, c) if kind.startswith(("sce", "multi")) else (
        n, *(draw(ints(1, 3)) for _ in range(draw(ints(1, 2)))))
    if kind == "mse":  # squares its residual: 1e15² · N·C stays below float32's 3.4e38
        return LossCase(bp.MeanSquaredError(), shape, rng.standard_normal(shape), 1e15)
    if kind == "huber":
        delta = draw(st.floats(0.05, 5.0))
        return LossCase(bp.Huber(delta), shape, rng.standard_normal(shape), 1e30)
    if kind == "bce":
        return LossCase(bp.BinaryCrossEntropyWithLogits(), shape, rng.uniform(0, 1, shape), 1e30)
    if kind == "multi-margin":  # p=2 squares its hinge, as MSE its residual
        p = draw(st.sampled_from([1, 2]))
        return LossCase(bp.MultiMarginLoss(p, draw(st.floats(-1.0, 2.0))), shape,
                        rng.integers(0, c, size=n), 1e15 if p == 2 else 1e30)
    if kind == "multi-label-margin":  # index lists: k_n classes (repeats too), then -1s
        lists = np.where(np.arange(c) < rng.integers(0, c + 1, (n, 1)),
                         rng.integers(0, c, (n, c)), -1)
        return LossCase(bp.MultiLabelMarginLoss(), shape, lists, 1e30)
    smoothing = draw(st.sampled_from([0.0, 0.1, 0.5]))
    target = (rng.dirichlet(np.ones(c), size=n) if kind == "sce-soft"
              else rng.integers(0, c, size=n))
    return LossCase(bp.SoftmaxCrossEntropy(smoothing), shape, target, 1e30)


@examples(100)
@given(case=losses(), dtype=dtypes, data=st.data())
def test_loss_value_and_gradient_are_finite_with_right_shape_and_dtype(case, dtype, data):
    scale = data.draw(st.sampled_from([1.0, 1e3, case.max_scale]))
    out = (np.random.default_rng(data.draw(seeds)).standard_normal(case.out_shape)
           * scale).astype(dtype)
    value = case.loss.forward(out, case.target)
    assert type(value) is float and np.isfinite(value) and value >= 0
    grad = case.loss.backward()
    assert grad.shape == out.shape and grad.dtype == dtype and np.isfinite(grad).all()
    assert not case.loss.has_cache


@examples(60)
@given(case=losses(), seed=seeds)
def test_loss_gradients_match_central_differences(case, seed):
    out = np.random.default_rng(seed).standard_normal(case.out_shape)
    result = bp.check_gradients(case.loss, out, case.target)
    assert result.passed, str(result)


@examples(30)
@given(n=ints(1, 6), c=ints(2, 5), bad=st.integers(-3, 3).filter(lambda b: b != 0),
       seed=seeds)
def test_labels_out_of_range_are_refused_naming_the_range(n, c, bad, seed):
    y = np.random.default_rng(seed).integers(0, c, size=n)
    y[n // 2] = c - 1 + bad if bad > 0 else bad
    with pytest.raises(ValueError, match=rf"expected class indices in \[0, {c}\), got values "):
        bp.SoftmaxCrossEntropy().forward(np.zeros((n, c), np.float32), y)


# -- fit / evaluate / predict: a wrong width names expected and received ------------------------
@examples(25)
@given(d=ints(1, 6), wrong=ints(1, 9), n=ints(1, 20), dtype=dtypes,
       call=st.sampled_from(["fit", "evaluate", "predict", "validation"]))
def test_wrong_width_error_names_expected_and_received(d, wrong, n, dtype, call):
    if wrong == d:
        wrong = d + 1
    model = bp.Sequential([bp.Dense(d, 4, dtype=dtype, rng=0), bp.ReLU(dtype=dtype),
                           bp.Dense(4, 3, dtype=dtype, rng=1)])
    before = model.flat_params.copy()
    good, bad = np.ones((n, d)), np.ones((n, wrong))
    y = np.arange(n) % 3
    loss = bp.SoftmaxCrossEntropy()
    opt = bp.SGD(model.parameters(), lr=0.1)
    calls = {
        "fit": lambda: model.fit(bad, y, loss=loss, optimizer=opt, progress=False),
        "evaluate": lambda: model.evaluate(bad, y, loss=loss),
        "predict": lambda: model.predict(bad),
        "validation": lambda: model.fit(good, y, loss=loss, optimizer=opt, progress=False,
                                        validation_data=(bad, y)),
    }
    with pytest.raises(ValueError) as err:
        calls[call]()
    text = str(err.value)
    assert "expected" in text and "got" in text
    if call == "validation":
        assert f"x (N, {d})" in text and f"got x ({n}, {wrong})" in text
    else:  # fit and evaluate probe the model with two samples; predict runs the batch
        rows = n if call == "predict" else min(n, 2)
        assert f"(N, {d})" in text and f"got ({rows}, {wrong})" in text
    np.testing.assert_array_equal(model.flat_params, before)
    assert not model.has_cache


@examples(25)
@given(c=ints(1, 4), wrong=ints(1, 5), n=ints(1, 5), hw=ints(3, 6))
def test_wrong_channel_count_error_names_expected_and_received(c, wrong, n, hw):
    if wrong == c:
        wrong = c + 1
    model = bp.Sequential([bp.Conv2D(c, 2, 3, padding=1, rng=0), bp.GlobalAvgPool(),
                           bp.Dense(2, 3, rng=1)])
    with pytest.raises(ValueError, match=rf"expected input of shape \(N, {c}, H, W\), "
                                         rf"got \({min(n, 2)}, {wrong}, {hw}, {hw}\)"):
        model.evaluate(np.ones((n, wrong, hw, hw)), np.zeros(n, int),
                       loss=bp.SoftmaxCrossEntropy())
    assert not model.has_cache
