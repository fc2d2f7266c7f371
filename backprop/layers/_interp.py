"""Upsample's taps: where each of ``m`` outputs reads along one axis of ``n`` inputs, in
the arithmetic of the PyTorch 2.13 CPU kernel that runs each mode.

A mode's map along one axis is a few taps ``(i, w)``: output ``o`` reads input ``i[o]``
with weight ``w[o]`` (None: 1), the same for every sample, channel and other axis. The
indices are floored in float32 whatever the dtype (PyTorch's ``floorf``); the ratio,
source position and weights are in the input's dtype (its ``opmath``), except where a
kernel says otherwise (2-D nearest: float32). PyTorch's x86 build fuses some of these
multiply-adds (measured against torch 2.13: the source position, two steps of the cubic
weight); :func:`_fma` fuses them in float32, where it shows (unfused, float32 outputs
move by up to ~10 ulps); float64 rounds them twice, 1e-16 off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# along one axis: (input index, weight or None for 1) per tap, each of shape (m,)
Taps = list[tuple[np.ndarray, np.ndarray | None]]


def nearest_vectorized(n: int, m: int, scale: float | None, exact: bool) -> Taps:
    """PyTorch's vectorized nearest kernel (``cpu_upsample_nearest_channels_last`` with
    ``nearest_idx``; see :func:`vectorized`): float32 arithmetic whatever the dtype, and
    (legacy mode) a copy when ``m == n`` and a halving when ``m == 2n``, whatever the
    scale factor."""
    o = np.arange(m)
    if not exact and m in (n, 2 * n):
        return [(o if m == n else o // 2, None)]
    r = np.float32(1.0 / scale) if scale else np.float32(n) / np.float32(m)
    src = (o.astype(np.float32) + np.float32(0.5 if exact else 0.0)) * r
    return [(np.minimum(np.floor(src).astype(np.intp), n - 1), None)]


def vectorized(x: np.ndarray, out: tuple[int, ...]) -> bool:
    """Whether PyTorch 2.13 resizes ``x`` to spatial size ``out`` with its vectorized
    nearest kernel (``_use_vectorized_kernel_cond_2d``/``_3d``): a channels-last input of
    more than 3 channels (2-D or 3-D), or a 2-D output with ``H + W <= 128``; otherwise
    the generic one (:func:`nearest`). Their index arithmetic differs where the exact
    source is a whole number (n=3 to m=141: output 47 reads input 1 generically, 0 in
    float32)."""
    d = x.ndim - 2
    if d not in (2, 3):
        return False
    last = np.transpose(x, (0, *range(2, x.ndim), 1)).flags.c_contiguous
    return (last and x.shape[1] > 3) or (d == 2 and sum(out) <= 128)


def nearest(n: int, m: int, scale: float | None, exact: bool, dtype: np.dtype) -> Taps:
    """PyTorch's generic nearest kernel (1-D forwards, and 2-D and 3-D ones that are not
    :func:`vectorized`): the input's dtype, no shortcuts; nearest-exact as
    ``max(s, 0) + 0.5`` (PyTorch's source position ``s``)."""
    t = dtype.type
    if exact:
        src = np.maximum(_source(n, m, scale, False, dtype), t(0)) + t(0.5)
    else:
        src = _ratio(n, m, scale, dtype) * np.arange(m).astype(dtype)
    return [(_floor(src, n), None)]


def linear(n: int, m: int, scale: float | None, align_corners: bool, dtype: np.dtype
           ) -> Taps:
    """Two taps, ``1 - λ`` and ``λ``; the source clamped at 0. At ``m == n`` PyTorch
    reads ``x·1 + x·0`` (an inf becomes NaN), whatever the scale factor."""
    t = dtype.type
    if m == n:
        o = np.arange(m)
        return [(o, np.ones(m, dtype)), (o, np.zeros(m, dtype))]
    src = _source(n, m, scale, align_corners, dtype)
    if not align_corners:
        src = np.maximum(src, t(0))
    i0 = _floor(src, n)
    lam = np.clip(src - i0.astype(dtype), t(0), t(1))
    return [(i0, t(1) - lam), (i0 + (i0 < n - 1), lam)]


def cubic(n: int, m: int, scale: float | None, align_corners: bool, dtype: np.dtype
          ) -> Taps:
    """Four taps ``i - 1 .. i + 2`` (clamped into the axis) with Keys' cubic weights,
    ``A = -0.75``; the source is not clamped at 0, and ``m == n`` is no copy."""
    t = dtype.type
    src = _source(n, m, scale, align_corners, dtype)
    i = _floor(src, n)
    lam = np.clip(src - i.astype(dtype), t(0), t(1))
    rest = t(1) - lam
    weights = (_outer(lam + t(1)), _inner(lam), _inner(rest), _outer(rest + t(1)))
    return [(np.clip(i + j - 1, 0, n - 1), w) for j, w in enumerate(weights)]


_A = -0.75  # Keys' a, as in PyTorch (and OpenCV)


def _inner(s: np.ndarray) -> np.ndarray:
    """The cubic kernel at distance ``s`` in [0, 1]: ``((A + 2)·s - (A + 3))·s·s + 1``."""
    t = s.dtype.type
    return ((t(_A + 2) * s - t(_A + 3)) * s) * s + t(1)


def _outer(s: np.ndarray) -> np.ndarray:
    """The cubic kernel at distance ``s`` in [1, 2]: ``((A·s - 5A)·s + 8A)·s - 4A``."""
    t = s.dtype.type
    return _fma(_fma(t(_A), s, t(-5 * _A)), s, t(8 * _A)) * s - t(4 * _A)


def _ratio(n: int, m: int, scale: float | None, dtype: np.dtype) -> np.floating:
    """PyTorch's ``compute_scales_value``: ``1 / scale_factor`` if given, else ``n / m``."""
    t = dtype.type
    return t(1.0 / scale) if scale else t(n) / t(m)


def _source(n: int, m: int, scale: float | None, align_corners: bool, dtype: np.dtype
            ) -> np.ndarray:
    """Each output's position on the input axis, unclamped (``area_pixel_compute_source_index``)."""
    t = dtype.type
    o = np.arange(m).astype(dtype)
    if align_corners:
        return (t(n - 1) / t(m - 1) if m > 1 else t(0)) * o
    return _fma(_ratio(n, m, scale, dtype), o + t(0.5), t(-0.5))


def _floor(src: np.ndarray, n: int) -> np.ndarray:
    """``min(floorf(src), n - 1)``: floored in float32 whatever the dtype, as PyTorch does."""
    return np.minimum(np.floor(src.astype(np.float32)).astype(np.intp), n - 1)


def _fma(a: Any, b: Any, c: Any) -> Any:
    """``a·b + c`` rounded once in float32, as a fused multiply-add: a product of two
    float32 is exact in float64, and so is the sum here (for scale factors up to 32),
    which leaves the one rounding to float32. Float64 is left to round twice."""
    if np.result_type(a, b, c) != np.float32:
        return a * b + c
    f64 = np.float64
    return (np.asarray(a, f64) * np.asarray(b, f64) + np.asarray(c, f64)).astype(np.float32)
