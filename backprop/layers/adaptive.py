"""Adaptive pooling: AdaptiveAvgPool1D/2D/3D and AdaptiveMaxPool1D/2D/3D, PyTorch's windows.

Along an axis of ``n`` inputs and ``m`` outputs, output ``i`` pools the inputs
``floor(i·n/m)`` up to ``ceil((i + 1)·n/m)`` (excluded): the windows tile the axis when
``m`` divides ``n``, overlap by one input where it does not, and share inputs when
``m > n``. A window is a box, so both pools are separable: the last axis is pooled
first, then H, then D, each as a sum or running max over the position ``j`` inside the
windows (a few; see :mod:`._runs`), never a loop over pixels. Pooling W first keeps
PyTorch's row-major order, so ties and NaN pick the input PyTorch picks.

Windows that tile an axis (the usual case) are read as strided views of it, with no
gathered copies, and output size 1 (global pooling, ResNet's head) is one reduction
over the contiguous spatial axes; backward then needs no sums: each input has one
window. The results are those of the general code, bit for bit, but for the global
average's mean, whose additions come in another order (NumPy's pairwise sum; PyTorch's
own mean here differs from both in the last bits).
"""

from __future__ import annotations

from math import prod
from typing import Any, ClassVar

import numpy as np

from .._validate import fits, positive_int
from ..backend import all_finite
from ._runs import along, matrix_pays, matrix_sum, run_matrix, run_sum, transposed
from ._tiling import (
    Windows,
    first_max,
    flat_index,
    in_batch,
    over_windows,
    pick,
    window_reads,
    window_sum,
)
from .base import Layer


class _Adaptive(Layer):
    """Output size, windows and the checks the adaptive pools share."""

    _set_once = frozenset({"output_size"})  # see Layer._set_once

    _d: ClassVar[int]
    _axes: ClassVar[tuple[str, ...]]

    def __init__(self, output_size: Any, *, dtype: Any) -> None:
        super().__init__(dtype=dtype)
        who = type(self).__name__
        whole = isinstance(output_size, (tuple, list))
        items = tuple(output_size) if whole else (output_size,) * self._d
        if len(items) != self._d:
            raise ValueError(f"{who}: expected output_size as an int or {self._d} values, got "
                             f"{output_size!r}")
        # None (keep the input's size) only as an entry of a tuple, as in PyTorch
        self._out = tuple(None if v is None and whole and self._d > 1 else
                          positive_int(v, "output_size", who) for v in items)
        self.output_size = self._out if whole else self._out[0]

    def _windows(self, x: Any) -> Windows:
        """Check ``x``; return each spatial axis's windows, the last axis first."""
        self._check_input(x, "N", "C", *self._axes)
        if 0 in x.shape[2:]:
            raise ValueError(f"{self!r}: expected at least one position to pool over, got "
                             f"input of shape {x.shape}")
        fits(self, (*x.shape[:2], *(n if m is None else m
                                   for n, m in zip(x.shape[2:], self._out, strict=True))),
             x.dtype, x.shape)
        windows = []
        for k, (n, m) in enumerate(zip(x.shape[2:], self._out, strict=True)):
            m = n if m is None else m  # None keeps the input's size
            i = np.arange(m)
            start, end = i * n // m, -(-(i + 1) * n // m)  # floor(i·n/m), ceil((i + 1)·n/m)
            windows.append((k - self._d, n, start, end - start))
        return windows[::-1]

    def _y_shape(self, x_shape: tuple[int, ...], windows: Windows) -> tuple[int, ...]:
        shape = list(x_shape)
        for axis, _, start, _ in windows:
            shape[axis] = len(start)
        return tuple(shape)


class _AdaptiveAvgPool(_Adaptive):
    """Window means along W, then H (then D); backward spreads ``dy / count`` back (the transpose).

    Windows that do not tile an axis: with finite values, one matrix product per axis with
    the windows' means as a small ``(m, n)`` matrix (:func:`._runs.matrix_sum`, where
    :func:`._runs.matrix_pays`); else the sums over ``j`` (an inf or NaN stays in its
    windows, as in PyTorch).

    Output size 1 is one mean over the contiguous spatial axes (as PyTorch computes it);
    windows that tile an axis sum strided views of it, and backward then repeats
    ``dy / count`` over each window (:func:`over_windows`) instead of gathering it.
    """

    _cache_attrs = ("_x_shape", "_win")

    def __init__(self, output_size: Any, *, dtype: Any) -> None:
        super().__init__(output_size, dtype=dtype)
        self._x_shape: tuple[int, ...] | None = None
        self._win: Windows | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        win = self._windows(x)
        if all(len(start) == 1 for _, _, start, _ in win):  # global average pooling
            with np.errstate(invalid="ignore"):  # inf - inf is NaN, as in PyTorch
                y = _planes(x).mean(axis=-1).reshape(self._y_shape(x.shape, win))
        else:
            y = x
            for axis, n, start, count in win:  # finite: what this axis reads (sums overflow)
                if n % len(start) and matrix_pays(n, len(start)) and all_finite(y):
                    y = matrix_sum(y, run_matrix(n, start, count, y.dtype), axis)
                else:
                    y = window_sum(y, axis, n, start, count) / along(count.astype(y.dtype), axis)
            y = np.ascontiguousarray(y)
        if training:
            self._x_shape, self._win = x.shape, win
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, win = self._pop("_x_shape", "_win")
        self._check_dy(dy, self._y_shape(x_shape, win))
        if all(n % len(start) == 0 for _, n, start, _ in win):  # windows tile every axis
            share = dy
            for _, _, _, count in reversed(win):  # H first, as below
                share = share * (1 / count[:1].astype(dy.dtype))
            return over_windows(share + 0.0, x_shape)  # + 0.0: a -0.0 share adds up to 0.0 below
        dx = dy
        for axis, n, start, count in reversed(win):  # H first: the forward's transpose
            a = run_matrix(n, start, count, dx.dtype)  # (m, n)
            dx = (matrix_sum(dx, a.T, axis) if matrix_pays(n, len(start)) and all_finite(dx)
                  else run_sum(dx, axis, *transposed(a)))
        return np.ascontiguousarray(dx)


class _AdaptiveMaxPool(_Adaptive):
    """Window maxima along W, then H (then D); backward routes ``dy`` to each window's argmax.

    Output size 1 is one argmax over the contiguous spatial axes; windows that tile an
    axis read strided views of it, and backward, whose windows then share no input,
    writes ``dy`` at each argmax instead of adding it up.
    """

    _cache_attrs = ("_arg", "_x_shape")

    def __init__(self, output_size: Any, *, dtype: Any) -> None:
        super().__init__(output_size, dtype=dtype)
        self._arg: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        win = self._windows(x)
        if all(len(start) == 1 for _, _, start, _ in win):  # global max pooling
            arg = first_max(_planes(x)).reshape(*x.shape[:2], *(1,) * self._d)
        else:
            y, arg = _scan_max(x, win, nan=False)
            if np.isnan(y).any():  # PyTorch's rule for NaN: rare, so a second scan
                _, arg = _scan_max(x, win, nan=True)
        y = pick(x, arg)  # the input PyTorch picks, bit for bit
        if training:
            self._arg, self._x_shape = arg, x.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        arg, x_shape = self._pop("_arg", "_x_shape")
        self._check_dy(dy, arg.shape)
        at = in_batch(arg, x_shape)  # the flat index in x of each maximum
        if all(n % m == 0 for n, m in zip(x_shape[2:], arg.shape[2:], strict=True)):
            # windows that tile: each input has one window at most, so dy is written
            # (+ 0.0: a -0.0 there reads 0.0, as the sum below gives)
            dx = np.zeros(x_shape, dy.dtype)
            dx.reshape(-1)[at] = dy + 0.0
            return dx
        # the routing differs per sample, so there is no shared map to transpose: bincount
        # over the flat index of each maximum adds up the shares of overlapping windows
        # (in float64, then cast back)
        dx = np.bincount(at.ravel(), weights=dy.ravel(), minlength=prod(x_shape))
        return dx.reshape(x_shape).astype(dy.dtype, copy=False)


def _scan_max(x: np.ndarray, win: Windows, nan: bool) -> tuple[np.ndarray, np.ndarray]:
    """The windows' maxima (values; their bits may differ from the inputs' for -0.0 and
    NaN) and the flat spatial index of each: PyTorch's pick, the first maximum in
    row-major order, or the last NaN (pass W first, then H, then D). Without ``nan``, NaN is
    passed over: the indices hold only where no maximum is NaN.

    PyTorch's scan: a later input wins when it is greater *or NaN*. A window shorter than
    the longest reads its last input again, which never changes the winner (a NaN
    there wins again: the index is clipped back to it). The position of the winner is
    kept arithmetically, ``max(arg, j·wins)``, not with ``np.where`` (1.85 ms a pass on
    32x64x28x7 float32, against 0.3 for ``v > y``). Windows that tile an axis read strided
    views of it, others gathered copies.
    """
    y, args = x, []
    for axis, n, start, count in win:
        reads = window_reads(y, axis, start, count)
        y = next(reads).copy()
        arg = np.zeros(y.shape, np.min_scalar_type(int(count.max()) - 1))
        for j, v in enumerate(reads, start=1):
            wins = (v > y) | np.isnan(v) if nan else v > y
            np.maximum(arg, np.multiply(wins, j, dtype=arg.dtype), out=arg)
            np.maximum(y, v, out=y)
        if n % len(start):  # windows that do not tile: back from a short one's re-reads
            arg = np.minimum(arg, along(count - 1, axis))
        args.append(arg if axis == -1 else arg + along(start, axis))  # W: once, on the picks
    return y, flat_index(args, x.shape) + along(win[0][2], -1)


class AdaptiveAvgPool2D(_AdaptiveAvgPool):
    """2-D adaptive average pooling to a fixed output size, as PyTorch's ``AdaptiveAvgPool2d``.

    ::

        Forward:   y[n, c, i, j] = x[n, c, h0:h1, w0:w1].mean()
                   h0 = floor(i·H / Ho)   h1 = ceil((i + 1)·H / Ho)     (w0, w1 likewise)
                   x (N, C, H, W) -> y (N, C, Ho, Wo)
        Backward:  dx[n, c, h, w] = sum over the windows (i, j) holding (h, w) of
                                    dy[n, c, i, j] / ((h1 - h0)·(w1 - w0))

    Args:
        output_size: ``(Ho, Wo)``, or one int for both; an entry None keeps that
            size of the input. ``Ho > H`` is allowed (windows then share inputs).
        dtype: Input dtype (default float32).

    Raises:
        ValueError: An output size < 1 (PyTorch returns an empty array for 0) or not 2
            of them, or an input with an empty spatial axis.
        TypeError: ``output_size`` (or a size in it) that is not an int or None.
    """

    _d = 2
    _axes = ("H", "W")

    def __init__(self, output_size: int | tuple[int | None, int | None], *,
                 dtype: Any = np.float32) -> None:
        super().__init__(output_size, dtype=dtype)


class AdaptiveAvgPool1D(_AdaptiveAvgPool):
    """1-D adaptive average pooling, as PyTorch's ``AdaptiveAvgPool1d``.

    ::

        Forward:   y[n, c, i] = x[n, c, l0:l1].mean()
                   l0 = floor(i·L / Lo)   l1 = ceil((i + 1)·L / Lo)     x (N, C, L) -> (N, C, Lo)
        Backward:  dx[n, c, l] = sum over the windows i holding l of dy[n, c, i] / (l1 - l0)

    Args:
        output_size: ``Lo``, an int >= 1 (may exceed ``L``).
        dtype: Input dtype (default float32).

    Raises:
        ValueError: ``output_size`` < 1, or an input of length 0.
        TypeError: ``output_size`` that is not an int.
    """

    _d = 1
    _axes = ("L",)

    def __init__(self, output_size: int, *, dtype: Any = np.float32) -> None:
        super().__init__(output_size, dtype=dtype)


class AdaptiveMaxPool2D(_AdaptiveMaxPool):
    """2-D adaptive max pooling to a fixed output size, as PyTorch's ``AdaptiveMaxPool2d``.

    ::

        Forward:   y[n, c, i, j] = x[n, c, h0:h1, w0:w1].max()     (windows as in
                   AdaptiveAvgPool2D);  arg[n, c, i, j] = its flat index in H·W: the
                   first maximum in row-major order, or the last NaN (PyTorch's rule)
                   x (N, C, H, W) -> y (N, C, Ho, Wo)
        Backward:  dx[n, c].flat[arg[n, c, i, j]] += dy[n, c, i, j]  (overlapping windows add up)

    Args:
        output_size: ``(Ho, Wo)``, or one int for both; an entry None keeps that
            size of the input. ``Ho > H`` is allowed.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: An output size < 1 or not 2 of them, or an input with an empty spatial axis.
        TypeError: ``output_size`` (or a size in it) that is not an int or None.
    """

    _d = 2
    _axes = ("H", "W")

    def __init__(self, output_size: int | tuple[int | None, int | None], *,
                 dtype: Any = np.float32) -> None:
        super().__init__(output_size, dtype=dtype)


class AdaptiveMaxPool1D(_AdaptiveMaxPool):
    """1-D adaptive max pooling, as PyTorch's ``AdaptiveMaxPool1d``.

    ::

        Forward:   y[n, c, i] = x[n, c, l0:l1].max()      (windows as in AdaptiveAvgPool1D)
                   arg[n, c, i] = its index in L: the first maximum, or the last NaN
        Backward:  dx[n, c, arg[n, c, i]] += dy[n, c, i]

    Args:
        output_size: ``Lo``, an int >= 1 (may exceed ``L``).
        dtype: Input dtype (default float32).

    Raises:
        ValueError: ``output_size`` < 1, or an input of length 0.
        TypeError: ``output_size`` that is not an int.
    """

    _d = 1
    _axes = ("L",)

    def __init__(self, output_size: int, *, dtype: Any = np.float32) -> None:
        super().__init__(output_size, dtype=dtype)


class AdaptiveAvgPool3D(_AdaptiveAvgPool):
    """3-D adaptive average pooling, as PyTorch's ``AdaptiveAvgPool3d`` (AdaptiveAvgPool2D's
    math with a third axis; the window is a box).

    ::

        Forward:   y[n, c, i, j, k] = x[n, c, d0:d1, h0:h1, w0:w1].mean()
                   d0 = floor(i·D / Do)   d1 = ceil((i + 1)·D / Do)     (h, w likewise)
                   x (N, C, D, H, W) -> y (N, C, Do, Ho, Wo)
        Backward:  dx[n, c, d, h, w] = sum over the windows (i, j, k) holding (d, h, w)
                                       of dy[n, c, i, j, k] / window size

    Args:
        output_size: ``(Do, Ho, Wo)``, or one int for all; an entry None keeps that
            size of the input. Sizes above the input's are allowed.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: An output size < 1 or not 3 of them, or an input with an empty spatial axis.
        TypeError: ``output_size`` (or a size in it) that is not an int or None.
    """

    _d = 3
    _axes = ("D", "H", "W")

    def __init__(self, output_size: int | tuple[int | None, int | None, int | None], *,
                 dtype: Any = np.float32) -> None:
        super().__init__(output_size, dtype=dtype)


class AdaptiveMaxPool3D(_AdaptiveMaxPool):
    """3-D adaptive max pooling, as PyTorch's ``AdaptiveMaxPool3d`` (AdaptiveMaxPool2D's
    math with a third axis).

    ::

        Forward:   y[n, c, i, j, k] = x[n, c, d0:d1, h0:h1, w0:w1].max()  (windows as in
                   AdaptiveAvgPool3D);  arg[n, c, i, j, k] = its flat index in D·H·W: the
                   first maximum in row-major order, or the last NaN (PyTorch's rule)
                   x (N, C, D, H, W) -> y (N, C, Do, Ho, Wo)
        Backward:  dx[n, c].flat[arg[n, c, i, j, k]] += dy[n, c, i, j, k]

    Args:
        output_size: ``(Do, Ho, Wo)``, or one int for all; an entry None keeps that
            size of the input. Sizes above the input's are allowed.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: An output size < 1 or not 3 of them, or an input with an empty spatial axis.
        TypeError: ``output_size`` (or a size in it) that is not an int or None.
    """

    _d = 3
    _axes = ("D", "H", "W")

    def __init__(self, output_size: int | tuple[int | None, int | None, int | None], *,
                 dtype: Any = np.float32) -> None:
        super().__init__(output_size, dtype=dtype)


__all__ = ["AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveAvgPool3D", "AdaptiveMaxPool1D",
           "AdaptiveMaxPool2D", "AdaptiveMaxPool3D"]


def _planes(x: np.ndarray) -> np.ndarray:
    """``x (N, C, *)`` as ``(N, C, prod(*))``: explicit sizes, since N or C may be 0."""
    return x.reshape(*x.shape[:2], prod(x.shape[2:]))
