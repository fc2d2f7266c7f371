"""Upsample: nearest-neighbour and (bi)linear resizing, with PyTorch's index arithmetic.

Every mode is separable: the input is resized along its last axis, then along H (for
bilinear, the order of PyTorch's CPU kernel, so float64 results agree with it to the
rounding). Along one axis each output reads one input (nearest) or two with weights
(linear), the same for every sample and channel: a gather per tap, never a loop over
pixels. Backward is the transposed map, input ``p`` collecting the weighted ``dy`` of
the outputs that read it; their indices never decrease, so those outputs form a run
and the transpose is a gather too (see :mod:`._runs`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import boolean, positive_int
from ._runs import along, run_sum, transposed
from .base import Layer

_MODES = {"nearest": (1, 2), "nearest-exact": (1, 2), "linear": (1,), "bilinear": (2,)}
# along one axis: (input index, weight or None for 1) per tap, each of shape (m,)
Taps = list[tuple[np.ndarray, np.ndarray | None]]


class Upsample(Layer):
    """Resize ``(N, C, L)`` or ``(N, C, H, W)`` input, as PyTorch's ``nn.Upsample``.

    ::

        Forward:   y = x resized along W, then along H          x (N, C, *S) -> y (N, C, *M)
                   m = size, or floor(n · scale_factor)    (per axis: n inputs, m outputs)
                   nearest:        y[..., o] = x[..., i[o]]    i = min(floor(o · r), n - 1)
                                   (2-D: in float32, and i = o if m == n, o // 2 if
                                   m == 2n; 1-D: in x's dtype: PyTorch's two kernels)
                   nearest-exact:  i = min(floor((o + 0.5) · r), n - 1)
                   (bi)linear:     y[..., o] = (1 - λ[o])·x[..., i0[o]] + λ[o]·x[..., i1[o]]
                                   s = o · (n - 1) / (m - 1)         (align_corners=True)
                                   s = max((o + 0.5) · r - 0.5, 0)   (align_corners=False)
                                   i0 = min(floor(s), n - 1)   i1 = min(i0 + 1, n - 1)
                                   λ = s - i0            (i0 = i1 = o, λ = 0 if m == n)
                   r = 1 / scale_factor if given, else n / m
        Backward:  dx[..., p] = sum over the taps (i, w) and the outputs o with i[o] == p
                                of w[o] · dy[..., o]     (along H, then W: the transpose)

    The backward is always the gradient of this forward. PyTorch's 1-D ``'nearest'``
    backward (2.13) is not, where a scale factor gives ``m == n`` or ``m == 2n`` (its
    backward takes the copy or halving shortcut that its forward does not): there the two
    ``dx`` differ (``scale_factor=1.1`` on 2 values: forward ``[x0, x0]`` in both, ``dx``
    ``[2, 0]`` here, ``[1, 1]`` in PyTorch, which fails its own gradcheck).

    Args:
        size: Output size: an int (every spatial axis) or one int per axis.
        scale_factor: Output size as a multiple of the input's, a float or one per
            axis (give ``size`` or this, not both). As in PyTorch (its default
            ``recompute_scale_factor=None``), ``1 / scale_factor`` is the index ratio.
        mode: ``'nearest'`` (PyTorch's default and legacy rule), ``'nearest-exact'``,
            ``'linear'`` (``(N, C, L)`` only) or ``'bilinear'`` (``(N, C, H, W)`` only).
        align_corners: (bi)linear only: True maps the corner pixels' centres onto each
            other; None (default) is False. PyTorch's ``UpsamplingBilinear2d`` is
            ``Upsample(scale_factor=s, mode='bilinear', align_corners=True)``.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: Not exactly one of ``size`` and ``scale_factor``, a size < 1 or a
            scale factor <= 0, an unknown mode, ``align_corners`` with a nearest mode,
            per-axis values of another rank than the mode's (at construction); an
            input of another rank, or an output size of 0 (in forward).
        TypeError: A size that is not an int, a scale factor that is not a number.
    """

    _cache_attrs = ("_x_shape", "_maps")

    def __init__(self, size: int | tuple[int, ...] | None = None,
                 scale_factor: float | tuple[float, ...] | None = None,
                 mode: str = "nearest", align_corners: bool | None = None, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        if mode not in _MODES:
            area = " (mode 'area' is AdaptiveAvgPool1D/2D)" if mode == "area" else ""
            raise ValueError(f"Upsample: expected mode 'nearest', 'nearest-exact', 'linear' or "
                             f"'bilinear', got {mode!r}{area}")
        if (size is None) == (scale_factor is None):
            got = "neither" if size is None else "both"
            raise ValueError(f"Upsample: expected exactly one of size and scale_factor, got {got}")
        if align_corners is not None:
            if mode not in ("linear", "bilinear"):
                raise ValueError(f"Upsample: expected align_corners=None with mode {mode!r} (it "
                                 f"applies to 'linear' and 'bilinear' only), got {align_corners!r}")
            align_corners = boolean(align_corners, "align_corners", "Upsample")
        self.mode, self.align_corners = mode, align_corners
        self.size = None if size is None else _per_axis(size, _size, "size", mode)
        self.scale_factor = (None if scale_factor is None
                             else _per_axis(scale_factor, _scale, "scale_factor", mode))
        self._x_shape: tuple[int, ...] | None = None
        self._maps: list[tuple[int, int, Taps]] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_rank(x)
        maps = []
        y = x
        for axis, n, m, scale in self._plan(x.shape):  # W first, then H
            taps = self._taps(n, m, scale, x.ndim == 4)
            y = _resample(y, axis, taps)
            maps.append((axis, n, taps))
        if training:
            self._x_shape, self._maps = x.shape, maps
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, maps = self._pop("_x_shape", "_maps")
        y_shape = list(x_shape)
        for axis, _, taps in maps:
            y_shape[axis] = len(taps[0][0])
        self._check_dy(dy, tuple(y_shape))
        dx = dy
        for axis, n, taps in reversed(maps):  # H first, then W: the forward's transpose
            dx = _transpose(dx, axis, n, taps)
        return dx

    def _check_rank(self, x: Any) -> None:
        ranks = self._ranks()
        ndim = getattr(x, "ndim", None)
        if ndim is not None and len(ranks) > 1 and ndim - 2 not in ranks:
            raise ValueError(f"{self!r}: expected input of shape (N, C, L) or (N, C, H, W), "
                             f"got {x.shape}")
        d = ndim - 2 if ndim is not None and ndim - 2 in ranks else ranks[0]
        self._check_input(x, "N", "C", *(("L",) if d == 1 else ("H", "W")))

    def _ranks(self) -> tuple[int, ...]:
        """The spatial ranks this layer takes: the mode's, or its per-axis values' length."""
        for value in (self.size, self.scale_factor):
            if isinstance(value, tuple):
                return (len(value),)
        return _MODES[self.mode]

    def _plan(self, x_shape: tuple[int, ...]) -> list[tuple[int, int, int, float | None]]:
        """``(axis, n, m, scale_factor or None)`` per spatial axis, the last axis first."""
        d = len(x_shape) - 2
        sizes = _expand(self.size, d)
        scales = _expand(self.scale_factor, d)
        plan = []
        for k in range(d):
            n = x_shape[2 + k]
            m = sizes[k] if sizes is not None else math.floor(n * scales[k])
            if m < 1 or n < 1:
                raise ValueError(f"{self!r}: expected input and output sizes of at least 1, got "
                                 f"input of shape {tuple(x_shape)} and output size {m} on axis "
                                 f"{2 + k}")
            plan.append((k - d, n, m, None if scales is None else scales[k]))
        return plan[::-1]

    def _taps(self, n: int, m: int, scale: float | None, two_d: bool) -> Taps:
        """Where each of the ``m`` outputs reads along an axis of ``n`` inputs: the class
        docstring's rules, in the arithmetic of the PyTorch 2.13 kernel that runs them."""
        if self.mode.startswith("nearest"):
            exact = self.mode == "nearest-exact"
            if two_d:
                return [(_nearest_2d(n, m, scale, exact), None)]
            return [(_nearest_1d(n, m, scale, exact, self.dtype), None)]
        if m == n:
            return [(np.arange(m), None)]
        return _linear(n, m, scale, bool(self.align_corners), self.dtype)


def _nearest_2d(n: int, m: int, scale: float | None, exact: bool) -> np.ndarray:
    """PyTorch's 2-D nearest kernel: float32 arithmetic, and (legacy mode) a copy when
    ``m == n`` and a halving when ``m == 2n``, whatever the scale factor."""
    o = np.arange(m)
    if not exact and m in (n, 2 * n):
        return o if m == n else o // 2
    r = np.float32(1.0 / scale) if scale else np.float32(n) / np.float32(m)
    src = (o.astype(np.float32) + np.float32(0.5 if exact else 0.0)) * r
    return np.minimum(np.floor(src).astype(np.intp), n - 1)


def _nearest_1d(n: int, m: int, scale: float | None, exact: bool, dtype: np.dtype
                ) -> np.ndarray:
    """PyTorch's 1-D nearest forward (its generic kernel, unlike its 1-D backward): the
    input's dtype, no shortcuts; nearest-exact as ``max(r·(o + 0.5) - 0.5, 0) + 0.5``,
    whose float32 product and difference are one fused multiply-add."""
    t = dtype.type
    o = np.arange(m).astype(dtype)
    r = t(1.0 / scale) if scale else t(n) / t(m)
    if exact:
        if dtype == np.float32:  # the fused multiply-add, exactly, in float64
            src = (np.float64(r) * (o + t(0.5)) - 0.5).astype(np.float32)
        else:
            src = r * (o + t(0.5)) - t(0.5)
        src = np.maximum(src, t(0)) + t(0.5)
    else:
        src = r * o
    # floorf: the index is floored in float32 whatever the dtype
    return np.minimum(np.floor(src.astype(np.float32)).astype(np.intp), n - 1)


def _linear(n: int, m: int, scale: float | None, align_corners: bool, dtype: np.dtype
            ) -> Taps:
    t = dtype.type
    o = np.arange(m).astype(dtype)
    if align_corners:
        r = t(n - 1) / t(m - 1) if m > 1 else t(0)
        src = r * o
    else:
        r = t(1.0 / scale) if scale else t(n) / t(m)
        src = np.maximum(r * (o + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src.astype(np.float32)).astype(np.intp), n - 1)  # floorf
    lam = np.clip(src - i0.astype(dtype), t(0), t(1))
    return [(i0, t(1) - lam), (i0 + (i0 < n - 1), lam)]


def _resample(x: np.ndarray, axis: int, taps: Taps) -> np.ndarray:
    """``y[..., o] = sum over the taps (i, w) of w[o] · x[..., i[o]]`` along ``axis``."""
    y = None
    with np.errstate(invalid="ignore"):  # 0 · inf and inf - inf are NaN, as in PyTorch
        for i, w in taps:
            part = x.take(i, axis=axis)
            if w is not None:
                part *= along(w, axis)
            y = part if y is None else y + part
    return y


def _transpose(dy: np.ndarray, axis: int, n: int, taps: Taps) -> np.ndarray:
    """The transpose of :func:`_resample` onto ``n`` inputs: each input sums the weighted
    ``dy`` of the run of outputs that read it."""
    m = len(taps[0][0])
    a = np.zeros((m, n), dy.dtype)  # the axis's map, small: (outputs, inputs)
    for i, w in taps:
        a[np.arange(m), i] += 1 if w is None else w
    start, count, weights = transposed(a)
    unweighted = all(w is None for _, w in taps)
    return run_sum(dy, axis, start, count, None if unweighted else weights)


def _per_axis(value: Any, check: Any, name: str, mode: str) -> Any:
    """``value`` checked: one value, or a tuple of one per axis of the mode's rank."""
    if not isinstance(value, (tuple, list)):
        return check(value, name)
    ranks = _MODES[mode]
    if len(value) not in ranks:
        want = " or ".join(str(d) for d in ranks)
        raise ValueError(f"Upsample: expected {name} as one value or {want} (one per spatial "
                         f"axis of mode {mode!r}), got {value!r}")
    return tuple(check(v, name) for v in value)


def _size(value: Any, name: str) -> int:
    return positive_int(value, name, "Upsample")


def _scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Upsample: expected {name} as a number or one per axis, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Upsample: expected {name} > 0, got {value!r}")
    return float(value)


def _expand(value: Any, d: int) -> tuple[Any, ...] | None:
    return value if value is None or isinstance(value, tuple) else (value,) * d


__all__ = ["Upsample"]
