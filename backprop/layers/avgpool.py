"""Average pooling: AvgPool1D/2D and GlobalAvgPool (the method: see :mod:`.pooling`)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from ._pool import _Pool, _Pool1D, _Pool2D
from ._spatial import offsets, out_size, window
from .base import Layer


class _AvgPool(_Pool):
    """Mean over each window; backward spreads ``dy / prod(kernel)`` over it.

    Padding zeros count in the mean (PyTorch's default ``count_include_pad=True``).
    """

    _cache_attrs = ("_x_shape",)
    _fill = 0.0

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, stride, padding, dtype=dtype)
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x_shape = getattr(x, "shape", None)
        x, _, slices = self._windows(x)
        y = x[slices[0]].copy()
        for sl in slices[1:]:
            y += x[sl]
        y *= 1 / len(slices)
        if training:
            self._x_shape = x_shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._pop("_x_shape")
        out = out_size(self, x_shape, self._k, self._s, self._p)
        self._check_dy(dy, (*x_shape[:2], *out))
        share = dy * (1 / prod(self._k))
        dx = np.zeros_like(dy, shape=self._padded_shape(x_shape))
        for offset in offsets(self._k):
            dx[window(offset, self._s, out)] += share
        return self._unpad(dx)


class AvgPool2D(_Pool2D, _AvgPool):
    """2-D average pooling on ``NCHW`` input.

    ::

        Forward:   x padded with zeros by (ph, pw) on each side (they count in the mean)
                   y[n, c, i, j] = mean over (p, q) < (kh, kw) of x[n, c, i·sh + p, j·sw + q]
                   x (N, C, H, W) -> y (N, C, Ho, Wo),  Ho = (H + 2·ph - kh) // sh + 1
        Backward:  dx[n, c, i·sh + p, j·sw + q] += dy[n, c, i, j] / (kh·kw)

    Args:
        kernel_size: Window size, an int or a pair.
        stride: Step between windows, an int or a pair; default the kernel size.
        padding: Zeros added on each side, counted in the mean (PyTorch's
            ``count_include_pad=True``), an int or a pair, at most half the kernel.
        dtype: Input dtype (default float32).
    """


class AvgPool1D(_Pool1D, _AvgPool):
    """1-D average pooling on ``NCL`` input.

    ::

        Forward:   x padded with zeros by p on each side (they count in the mean)
                   y[n, c, i] = mean over q < k of x[n, c, i·s + q]   Lo = (L + 2·p - k) // s + 1
        Backward:  dx[n, c, i·s + q] += dy[n, c, i] / k

    Args:
        kernel_size: Window length.
        stride: Step between windows; default the kernel size.
        padding: Zeros added on each end, counted in the mean, at most half the kernel.
        dtype: Input dtype (default float32).
    """


class GlobalAvgPool(Layer):
    """Mean over every spatial position: ``(N, C, L)`` or ``(N, C, H, W)`` -> ``(N, C)``.

    ::

        Forward:   y = x.mean(axis=(2, ...))                 x (N, C, *S), y (N, C)
        Backward:  dx = broadcast(dy[:, :, None, ...], x.shape) / prod(S)

    Args:
        dtype: Input dtype (default float32).
    """

    _cache_attrs = ("_x_shape",)

    def __init__(self, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        ndim = getattr(x, "ndim", None)
        if ndim is not None and ndim not in (3, 4):
            raise ValueError(f"{self!r}: expected input of shape (N, C, L) or (N, C, H, W), "
                             f"got {x.shape}")
        self._check_input(x, *(("N", "C", "L") if ndim == 3 else ("N", "C", "H", "W")))
        if 0 in x.shape[2:]:
            raise ValueError(f"{self!r}: expected at least one position to average over, got "
                             f"input of shape {x.shape}")
        if training:
            self._x_shape = x.shape
        return x.mean(axis=tuple(range(2, x.ndim)))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._pop("_x_shape")
        self._check_dy(dy, x_shape[:2])
        dx = np.empty_like(dy, shape=x_shape)
        dx[...] = (dy * (1 / prod(x_shape[2:]))).reshape(*x_shape[:2], *(1,) * (len(x_shape) - 2))
        return dx
