"""Upsample: nearest-neighbour, (bi/tri)linear and bicubic resizing, with PyTorch's arithmetic.

Every mode is separable: the input is resized along its last axis, then along H, then D
(the order of PyTorch's CPU kernels, so float64 results agree with them to the rounding).
Along one axis each output reads one input (nearest), two (linear) or four (cubic) with
weights, the same for every sample and channel: a gather per tap (:mod:`._interp` says
where), never a loop over pixels. Backward is the transposed map, input ``p`` collecting
the weighted ``dy`` of the outputs that read it; their indices never decrease, so those
outputs form a run and the transpose is a gather too (see :mod:`._runs`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import boolean, fits, positive_int
from ..backend import all_finite
from . import _interp
from ._interp import Taps
from ._runs import along, matrix_pays, run_sum, transposed
from .base import Layer

# the spatial ranks each mode takes, and the axes' names at each rank
_MODES = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,), "bilinear": (2,),
          "bicubic": (2,), "trilinear": (3,)}
_AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


class Upsample(Layer):
    """Resize ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)`` input, as PyTorch's
    ``nn.Upsample`` (and ``F.interpolate``).

    ::

        Forward:   y = x resized along W, then H, then D       x (N, C, *S) -> y (N, C, *M)
                   m = size, or floor(n · scale_factor)    (per axis: n inputs, m outputs)
                   y[..., o] = sum over the taps (i, w) of w[o] · x[..., i[o]]
                   nearest:        one tap, w = 1          i = min(floor(o · r), n - 1)
                                   (in x's dtype; but where PyTorch 2.13 runs its
                                   vectorized kernel, 2-D outputs with H + W <= 128
                                   and channels-last inputs of C > 3, in float32,
                                   and i = o if m == n, o // 2 if m == 2n)
                   nearest-exact:  i = min(floor((o + 0.5) · r), n - 1)
                   (bi/tri)linear: taps i0, i1 = min(i0 + 1, n - 1), weights 1 - λ, λ
                                   i0 = min(floor(s⁺), n - 1)   λ = clip(s⁺ - i0, 0, 1)
                                   s⁺ = max(s, 0)    (i0 = i1 = o, λ = 0 if m == n)
                   bicubic:        taps clip(i - 1 + j, 0, n - 1), j = 0..3, weights
                                   K(1 + λ), K(λ), K(1 - λ), K(2 - λ)
                                   i = min(floor(s), n - 1)      λ = clip(s - i, 0, 1)
                                   K(d) = ((A + 2)·d - (A + 3))·d² + 1        d <= 1
                                   K(d) = ((A·d - 5A)·d + 8A)·d - 4A     1 < d < 2
                                   A = -0.75, in x's dtype       (no copy if m == n)
                   s = o · (n - 1) / (m - 1)    (align_corners=True; 0 if m == 1)
                   s = (o + 0.5) · r - 0.5      (align_corners=False)
                   r = 1 / scale_factor if given, else n / m
        Backward:  dx[..., p] = sum over the taps (i, w) and the outputs o with i[o] == p
                                of w[o] · dy[..., o]   (along D, then H, then W: the transpose)

    The backward is always the gradient of this forward. PyTorch's is not in three places
    (2.13). Where a scale factor other than 1 or 2 gives ``m == n`` or ``m == 2n``, its
    1-D and 3-D ``'nearest'`` backwards take the copy or halving shortcut that their
    forwards do not (``scale_factor=1.1`` on 2 values: forward ``[x0, x0]`` in both,
    ``dx`` ``[2, 0]`` here, ``[1, 1]`` in PyTorch, which fails its own gradcheck). Its
    nearest and nearest-exact backwards use float32 indices where the forward did not, so
    they route a few outputs elsewhere: 2-D, 3 -> 141 in float64 (output 47 reads input 1,
    and PyTorch sends its gradient to input 0); 1-D too, at general sizes (388 values at
    ``scale_factor=0.675``: output 81 reads input 120, its gradient goes to 119). Its
    ``'bicubic'`` backward copies ``dy`` whenever the output's shape is the input's,
    while its forward resamples by ``1 / scale_factor``.

    As in PyTorch, ``m == n`` is computed, not copied, in the weighted modes: linear reads
    ``x·1 + x·0`` and bicubic ``0·x[o-1] + 1·x[o] + 0·x[o+1] + 0·x[o+2]``, so an inf turns
    into NaN there (bicubic: and its neighbours too). PyTorch's x86 build fuses some
    multiply-adds (``s``, two steps of ``K``); float32 fuses them here too (they move its
    outputs by ~10 ulps), float64 rounds them twice (1e-16).

    Args:
        size: Output size: an int (every spatial axis) or one int per axis.
        scale_factor: Output size as a multiple of the input's, a float or one per
            axis (give ``size`` or this, not both). As in PyTorch (its default
            ``recompute_scale_factor=None``), ``1 / scale_factor`` is the index ratio.
        mode: ``'nearest'`` (PyTorch's default and legacy rule) or ``'nearest-exact'``
            (any of the three ranks), ``'linear'`` (``(N, C, L)`` only), ``'bilinear'``
            or ``'bicubic'`` (``(N, C, H, W)`` only), ``'trilinear'`` (``(N, C, D, H, W)``
            only).
        align_corners: Linear, bilinear, trilinear and bicubic only: True maps the corner
            pixels' centres onto each other; None (default) is False. PyTorch's
            ``UpsamplingBilinear2d`` is ``Upsample(scale_factor=s, mode='bilinear',
            align_corners=True)``.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: Not exactly one of ``size`` and ``scale_factor``, a size < 1 or a
            scale factor <= 0, an unknown mode, ``align_corners`` with a nearest mode,
            per-axis values of another rank than the mode's (at construction); an
            input of another rank than the mode's (or the per-axis values'), or an
            output size of 0 (in forward).
        TypeError: A size that is not an int, a scale factor that is not a number.
    """

    _cache_attrs = ("_x_shape", "_maps")

    def __init__(self, size: int | tuple[int, ...] | None = None,
                 scale_factor: float | tuple[float, ...] | None = None,
                 mode: str = "nearest", align_corners: bool | None = None, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        if not isinstance(mode, str) or mode not in _MODES:  # (a list: unhashable)
            area = (" (mode 'area' is AdaptiveAvgPool1D/2D/3D)"
                    if isinstance(mode, str) and mode == "area" else "")  # (an array: ambiguous)
            raise ValueError(f"Upsample: expected mode 'nearest', 'nearest-exact', 'linear', "
                             f"'bilinear', 'bicubic' or 'trilinear', got {mode!r}{area}")
        if (size is None) == (scale_factor is None):
            got = "neither" if size is None else "both"
            raise ValueError(f"Upsample: expected exactly one of size and scale_factor, got {got}")
        if align_corners is not None:
            if mode.startswith("nearest"):
                raise ValueError(f"Upsample: expected align_corners=None with mode {mode!r} (it "
                                 f"applies to 'linear', 'bilinear', 'bicubic' and 'trilinear' "
                                 f"only), got {align_corners!r}")
            align_corners = boolean(align_corners, "align_corners", "Upsample")
        self.mode, self.align_corners = mode, align_corners
        self.size = None if size is None else _per_axis(size, _size, "size", mode)
        self.scale_factor = (None if scale_factor is None
                             else _per_axis(scale_factor, _scale, "scale_factor", mode))
        self._x_shape: tuple[int, ...] | None = None
        self._maps: list[tuple[int, int, Taps]] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_rank(x)
        maps, y, plan = [], x, self._plan(x.shape)
        out = list(x.shape)
        for axis, _, m, _ in plan:
            out[axis] = m
        fits(self, tuple(out), x.dtype, x.shape)
        fast = self.mode.startswith("nearest") and _interp.vectorized(x, tuple(out[2:]))
        for axis, n, m, scale in plan:  # W first, then H, then D
            taps = self._taps(n, m, scale, fast)
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
        for axis, n, taps in reversed(maps):  # D, H, W: the forward's transpose
            dx = _transpose(dx, axis, n, taps)
        return dx

    def _check_rank(self, x: Any) -> None:
        ranks = self._ranks()
        ndim = getattr(x, "ndim", None)
        if ndim is not None and len(ranks) > 1 and ndim - 2 not in ranks:
            shapes = ["(" + ", ".join(("N", "C") + _AXES[d]) + ")" for d in ranks]
            raise ValueError(f"{self!r}: expected input of shape {_either(shapes)}, got "
                             f"{x.shape}")
        d = ndim - 2 if ndim is not None and ndim - 2 in ranks else ranks[0]
        self._check_input(x, "N", "C", *_AXES[d])

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

    def _taps(self, n: int, m: int, scale: float | None, fast: bool) -> Taps:
        """Where each of the ``m`` outputs reads along an axis of ``n`` inputs: the class
        docstring's rules, in the arithmetic of the PyTorch 2.13 kernel that runs them
        (``fast``: its vectorized nearest kernel, see :func:`._interp.vectorized`)."""
        if self.mode.startswith("nearest"):
            exact = self.mode == "nearest-exact"
            if fast:
                return _interp.nearest_vectorized(n, m, scale, exact)
            return _interp.nearest(n, m, scale, exact, self.dtype)
        if self.mode == "bicubic":
            return _interp.cubic(n, m, scale, bool(self.align_corners), self.dtype)
        return _interp.linear(n, m, scale, bool(self.align_corners), self.dtype)


def _resample(x: np.ndarray, axis: int, taps: Taps) -> np.ndarray:
    """``y[..., o] = sum over the taps (i, w) of w[o] · x[..., i[o]]`` along ``axis``."""
    n = x.shape[axis]
    if _by_matrix(taps, n) and all_finite(x):
        return _mapped(x, _matrix(taps, n, x.dtype), axis)
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
    a = _matrix(taps, n, dy.dtype)
    if _by_matrix(taps, n) and all_finite(dy):
        return _mapped(dy, a.T, axis)
    start, count, weights = transposed(a)
    unweighted = all(w is None for _, w in taps)
    return run_sum(dy, axis, start, count, None if unweighted else weights)


def _matrix(taps: Taps, n: int, dtype: Any) -> np.ndarray:
    """The axis's map, small: ``a (m, n)``, ``a[o, i[o]] += w[o]`` for each tap."""
    m = len(taps[0][0])
    a = np.zeros((m, n), dtype)
    for i, w in taps:
        a[np.arange(m), i] += 1 if w is None else w
    return a


def _by_matrix(taps: Taps, n: int) -> bool:
    """Whether the (bi/tri)linear and bicubic taps of an axis run as one matrix product,
    ``a @ v`` over the whole batch (:func:`_mapped`; for finite values only, as a zero of
    ``a`` times an inf would be NaN): BLAS does ``n`` multiply-adds per output where the
    gathers make a few passes each. Bilinear x2 on 64x32x28x28, float32 (2-core AMD
    EPYC, noisy): forward 30-40 -> 8-11 ms, backward 36-48 -> 17-22 ms. Nearest taps keep
    their gathers (one pass); a long axis too (:func:`._runs.matrix_pays`)."""
    return any(w is not None for _, w in taps) and matrix_pays(n, len(taps[0][0]))


def _mapped(v: np.ndarray, a: np.ndarray, axis: int) -> np.ndarray:
    """``out[..., q, ...] = sum over p of a[q, p] · v[..., p, ...]`` along ``axis``,
    C-contiguous: one product for the last axis, a batched one (``a`` times each
    ``(n, rest)`` block) for the others, with no moving of axes."""
    if axis == -1:
        return (v.reshape(-1, v.shape[-1]) @ a.T).reshape(*v.shape[:-1], a.shape[0])
    lead, rest = v.shape[:axis], v.shape[axis + 1:]
    out = np.matmul(a, v.reshape(*lead, v.shape[axis], math.prod(rest)))
    return out.reshape(*lead, a.shape[0], *rest)


def _per_axis(value: Any, check: Any, name: str, mode: str) -> Any:
    """``value`` checked: one value, or a tuple of one per axis of the mode's rank."""
    if not isinstance(value, (tuple, list)):
        return check(value, name)
    ranks = _MODES[mode]
    if len(value) not in ranks:
        want = _either([str(d) for d in ranks])
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


def _either(words: list[str]) -> str:
    return " or ".join(filter(None, [", ".join(words[:-1]), words[-1]]))


def _expand(value: Any, d: int) -> tuple[Any, ...] | None:
    return value if value is None or isinstance(value, tuple) else (value,) * d


__all__ = ["Upsample"]
