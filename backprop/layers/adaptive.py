"""Adaptive pooling: AdaptiveAvgPool1D/2D and AdaptiveMaxPool1D/2D, with PyTorch's windows.

Along an axis of ``n`` inputs and ``m`` outputs, output ``i`` pools the inputs
``floor(i·n/m)`` up to ``ceil((i + 1)·n/m)`` (excluded): the windows tile the axis when
``m`` divides ``n``, overlap by one input where it does not, and share inputs when
``m > n``. A 2-D window is a rectangle, so both pools are separable: the last axis is
pooled first, then H, each as a sum or running max over the position ``j`` inside the
windows (a few; see :mod:`._runs`), never a loop over pixels. Pooling W first keeps
PyTorch's row-major order, so ties and NaN pick the input PyTorch picks.
"""

from __future__ import annotations

from math import prod
from typing import Any, ClassVar

import numpy as np

from .._validate import positive_int
from ._runs import along, run_sum, transposed
from .base import Layer

# along one axis: (axis, n inputs, first input of each window, its length), each (m,)
Windows = list[tuple[int, int, np.ndarray, np.ndarray]]


class _Adaptive(Layer):
    """Output size, windows and the checks the adaptive pools share."""

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
        # None (keep the input's size) only as an entry of a pair, as in PyTorch
        self._out = tuple(None if v is None and whole and self._d > 1 else
                          positive_int(v, "output_size", who) for v in items)
        self.output_size = self._out if whole else self._out[0]

    def _windows(self, x: Any) -> Windows:
        """Check ``x``; return each spatial axis's windows, the last axis first."""
        self._check_input(x, "N", "C", *self._axes)
        if 0 in x.shape[2:]:
            raise ValueError(f"{self!r}: expected at least one position to pool over, got "
                             f"input of shape {x.shape}")
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
    """Window means along W, then H; backward spreads ``dy / count`` back (the transpose)."""

    _cache_attrs = ("_x_shape", "_win")

    def __init__(self, output_size: Any, *, dtype: Any) -> None:
        super().__init__(output_size, dtype=dtype)
        self._x_shape: tuple[int, ...] | None = None
        self._win: Windows | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        win = self._windows(x)
        y = x
        for axis, _, start, count in win:
            y = run_sum(y, axis, start, count) / along(count.astype(y.dtype), axis)
        if training:
            self._x_shape, self._win = x.shape, win
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, win = self._pop("_x_shape", "_win")
        self._check_dy(dy, self._y_shape(x_shape, win))
        dx = dy
        for axis, n, start, count in reversed(win):  # H first: the forward's transpose
            p = np.arange(n)
            inside = (start[:, None] <= p) & (p < (start + count)[:, None])  # (m, n)
            dx = run_sum(dx, axis, *transposed(inside / count[:, None].astype(dx.dtype)))
        return dx


class _AdaptiveMaxPool(_Adaptive):
    """Window maxima along W, then H; backward routes ``dy`` to each window's argmax."""

    _cache_attrs = ("_arg", "_x_shape")

    def __init__(self, output_size: Any, *, dtype: Any) -> None:
        super().__init__(output_size, dtype=dtype)
        self._arg: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        y, args = x, []
        for axis, _, start, count in self._windows(x):
            y, arg = _running_max(y, axis, start, count, training)
            args.append(arg)
        if training:
            arg = args[-1]  # the row (2-D) or position (1-D) of each maximum
            if len(args) == 2:  # its column: where the W pass found the max of that row
                arg = arg * x.shape[-1] + np.take_along_axis(args[0], arg, axis=-2)
            self._arg, self._x_shape = arg, x.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        arg, x_shape = self._pop("_arg", "_x_shape")
        self._check_dy(dy, arg.shape)
        # the routing differs per sample, so there is no shared map to transpose: bincount
        # over the flat index of each maximum adds up the shares of overlapping windows
        # (in float64, then cast back)
        size = prod(x_shape[2:])
        rows = (np.arange(prod(x_shape[:2])) * size).reshape(*x_shape[:2], *(1,) * self._d)
        dx = np.bincount((arg + rows).ravel(), weights=dy.ravel(), minlength=prod(x_shape))
        return dx.reshape(x_shape).astype(dy.dtype, copy=False)


def _running_max(x: np.ndarray, axis: int, start: np.ndarray, count: np.ndarray,
                 track: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Max over each window along ``axis`` and, if ``track``, the input index it came from.

    PyTorch's scan: a later input wins when it is greater *or NaN*, so ties go to the
    first maximum, NaN to the last NaN, and a window of -inf to its first input. A
    window shorter than the longest reads its last input again, which never changes
    the winner.
    """
    y = x.take(start, axis=axis)
    arg = np.broadcast_to(along(start, axis), y.shape) if track else None
    for j in range(1, int(count.max())):
        pos = np.minimum(start + j, start + count - 1)
        v = x.take(pos, axis=axis)
        wins = (v > y) | np.isnan(v)
        y = np.where(wins, v, y)
        if track:
            arg = np.where(wins, along(pos, axis), arg)
    return y, None if arg is None else np.ascontiguousarray(arg)


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
        ValueError: An output size < 1 (PyTorch returns an empty array for 0), or an
            input with an empty spatial axis.
        TypeError: ``output_size`` that is not an int or a pair of ints or None.
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
                   AdaptiveAvgPool2D);  arg[n, c, i, j] = where it is: the first maximum
                   in row-major order, or the last NaN (PyTorch's rule)
                   x (N, C, H, W) -> y (N, C, Ho, Wo)
        Backward:  dx[n, c, arg[n, c, i, j]] += dy[n, c, i, j]   (overlapping windows add up)

    Args:
        output_size: ``(Ho, Wo)``, or one int for both; an entry None keeps that
            size of the input. ``Ho > H`` is allowed.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: An output size < 1, or an input with an empty spatial axis.
        TypeError: ``output_size`` that is not an int or a pair of ints or None.
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
                   arg[n, c, i] = its position: the first maximum, or the last NaN
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


__all__ = ["AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveMaxPool1D", "AdaptiveMaxPool2D"]
