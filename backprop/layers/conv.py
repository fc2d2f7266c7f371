"""Convolutions (Conv1D, Conv2D) as im2col plus one matrix multiply.

im2col copies every receptive field into a column, so the convolution becomes
``W_mat @ cols``. Columns are laid out channels-first, ``cols (C_in·kh·kw, N·Ho·Wo)``,
built from the input transposed to ``(C, N, H, W)``: then the im2col copy, the
gradient's col2im sum and the output's transpose all move contiguous rows of
width ``Wo``, and each of the three products (forward, ``dW``, ``dcols``) is one
BLAS call over the whole batch. 1-D is the same code with one spatial axis.
"""

from __future__ import annotations

from math import prod
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import initializers
from .._validate import positive_int
from ._spatial import as_tuple, canonical, offsets, out_size, window
from .base import Layer


def im2col(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
           padding: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    """``x (N, C, *S)`` -> ``cols (C·prod(kernel), N·prod(out))``, one copy.

    Row ``(c, *offset)`` of ``cols`` holds input channel ``c`` at kernel position
    ``offset`` for every sample and output position, matching ``W.reshape(C_out, -1)``.
    ``cols`` is always a new array (never a view of ``x``), so backward may reuse it.
    """
    n, c, d = x.shape[0], x.shape[1], len(kernel)
    xp = x.swapaxes(0, 1)  # (C, N, *S): im2col then copies whole rows of each image
    if any(padding):
        xp = np.zeros_like(x, shape=(c, n, *_padded(x.shape[2:], padding)))
        xp[_interior(x.shape[2:], padding)] = x.swapaxes(0, 1)
    windows = sliding_window_view(xp, kernel, axis=tuple(range(2, 2 + d)))  # (C, N, *S', *k)
    windows = windows[(slice(None), slice(None), *(slice(None, None, s) for s in stride))]
    order = (0, *range(2 + d, 2 + 2 * d), 1, *range(2, 2 + d))  # -> (C, *k, N, *out)
    cols = np.empty_like(x, shape=(c * prod(kernel), n * prod(out)), order="C")
    np.copyto(cols.reshape(c, *kernel, n, *out), windows.transpose(order))
    return cols


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], kernel: tuple[int, ...],
           stride: tuple[int, ...], padding: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum every column back onto the input it was copied from.

    One strided ``+=`` per kernel offset; overlapping windows accumulate.
    """
    n, c, size = x_shape[0], x_shape[1], x_shape[2:]
    dcols = dcols.reshape(c, *kernel, n, *out)
    dxp = np.zeros_like(dcols, shape=(c, n, *_padded(size, padding)))
    for offset in offsets(kernel):
        dxp[window(offset, stride, out)] += dcols[(slice(None), *offset)]
    return np.ascontiguousarray(dxp[_interior(size, padding)].swapaxes(0, 1))


def _padded(size: tuple[int, ...], padding: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s + 2 * p for s, p in zip(size, padding, strict=True))


def _interior(size: tuple[int, ...], padding: tuple[int, ...]) -> tuple[slice, ...]:
    """Index of the unpadded input inside a padded ``(C, N, *S)`` buffer."""
    inner = (slice(p, p + s) for s, p in zip(size, padding, strict=True))
    return (slice(None), slice(None), *inner)


class _Conv(Layer):
    """Shared im2col convolution over ``d`` spatial axes (see Conv1D, Conv2D)."""

    _cache_attrs = ("_cols", "_x_shape")
    _d: ClassVar[int]
    _axes: ClassVar[tuple[str, ...]]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, *, bias: bool, init: Any, bias_init: Any, dtype: Any,
                 rng: np.random.Generator | int | None) -> None:
        super().__init__(dtype=dtype)
        who, d = type(self).__name__, self._d
        self.in_channels = positive_int(in_channels, "in_channels", who)
        self.out_channels = positive_int(out_channels, "out_channels", who)
        self._k = as_tuple(kernel_size, d, "kernel_size", who)
        self._s = as_tuple(stride, d, "stride", who)
        self._p = as_tuple(padding, d, "padding", who, minimum=0)
        self.kernel_size, self.stride, self.padding = map(canonical, (self._k, self._s, self._p))
        self.bias = bool(bias)
        rng = initializers.make_rng(rng)
        self.init_param("W", init, (self.out_channels, self.in_channels, *self._k), rng)
        if self.bias:
            self.init_param("b", bias_init, (self.out_channels,), rng)
        self._cols: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None

    def _out(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return out_size(self, x_shape, self._k, self._s, self._p)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", self.in_channels, *self._axes)
        out = self._out(x.shape)
        cols = im2col(x, self._k, self._s, self._p, out)
        y_mat = self.params["W"].reshape(self.out_channels, -1) @ cols  # (C_out, N·L)
        y_mat = y_mat.reshape(self.out_channels, x.shape[0], *out).swapaxes(0, 1)
        y = np.empty_like(y_mat, order="C")
        if self.bias:  # the bias add doubles as the copy back to (N, C_out, *out)
            np.add(y_mat, self.params["b"].reshape(-1, *(1,) * self._d), out=y)
        else:
            np.copyto(y, y_mat)
        if training:
            self._cols, self._x_shape = cols, x.shape
        return y

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        c_out, k = self.out_channels, self.in_channels * prod(self._k)
        nl = x_shape[0] * prod(self._out(x_shape))
        shapes = [(c_out, k, nl), (c_out, nl, k)]  # y_mat = W_mat @ cols, dW = dy_mat @ cols.T
        return shapes + [(k, c_out, nl)] if input_grad else shapes  # dcols = W_mat.T @ dy_mat

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy_mat, cols, x_shape = self._param_grads(dy)
        w_mat = self.params["W"].reshape(self.out_channels, -1)
        # dW is done with cols, so dcols (same shape) overwrites it: no second big buffer
        dcols = np.matmul(w_mat.T, dy_mat, out=cols)  # (K, N·L)
        return col2im(dcols, x_shape, self._k, self._s, self._p, self._out(x_shape))

    def backward_params(self, dy: np.ndarray) -> None:
        self._param_grads(dy)

    def _param_grads(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """Fill ``dW`` and ``db``; return ``dy`` as a ``(C_out, N·L)`` matrix, cols, x's shape."""
        cols, x_shape = self._pop("_cols", "_x_shape")
        self._check_dy(dy, (x_shape[0], self.out_channels, *self._out(x_shape)))
        dy_mat = dy.swapaxes(0, 1).reshape(self.out_channels, -1)
        np.matmul(dy_mat, cols.T, out=self.grads["W"].reshape(self.out_channels, -1))
        if self.bias:
            np.sum(dy_mat, axis=1, out=self.grads["b"])
        return dy_mat, cols, x_shape


class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as in PyTorch) on ``NCHW`` input.

    ::

        Forward:   cols = im2col(x)                 x (N, C_in, H, W), cols (C_in·kh·kw, N·Ho·Wo)
                   y = (W_mat @ cols + b)           W_mat = W.reshape(C_out, C_in·kh·kw)
                       .reshape(C_out, N, Ho, Wo).transpose(1, 0, 2, 3)     y (N, C_out, Ho, Wo)
        Backward:  dy_mat = dy.transpose(1, 0, 2, 3).reshape(C_out, N·Ho·Wo)
                   dW = (dy_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2, 3))
                   dx = col2im(W_mat.T @ dy_mat)

        Ho = (H + 2·ph - kh) // sh + 1,   Wo = (W + 2·pw - kw) // sw + 1

    ``col2im`` is the adjoint of ``im2col``: each column entry is added back to
    the input pixel it was copied from. The first layer of a model skips it
    (:meth:`backward_params`): its ``dx`` is never used.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``kh`` and ``kw``: an int or a pair.
        stride: Step between windows: an int or a pair (default 1).
        padding: Zeros added on both sides of each spatial axis: an int or a pair.
        bias: Learn ``b`` (default True).
        init: Weight initializer; default ``"he_uniform"``, U(±sqrt(6 / fan_in))
            with ``fan_in = C_in·kh·kw``, suited to the ReLU that usually follows
            (PyTorch's default is the narrower U(±1/sqrt(fan_in))).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: The input has the wrong channel count, or is smaller than
            the kernel after padding.
    """

    _d = 2
    _axes = ("H", "W")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        *,
        bias: bool = True,
        init: Any = "he_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias,
                         init=init, bias_init=bias_init, dtype=dtype, rng=rng)


class Conv1D(_Conv):
    """1-D convolution (cross-correlation, as in PyTorch) on ``NCL`` input.

    ::

        Forward:   cols = im2col(x)                 x (N, C_in, L), cols (C_in·k, N·Lo)
                   y = (W_mat @ cols + b)           W_mat = W.reshape(C_out, C_in·k)
                       .reshape(C_out, N, Lo).transpose(1, 0, 2)               y (N, C_out, Lo)
        Backward:  dy_mat = dy.transpose(1, 0, 2).reshape(C_out, N·Lo)
                   dW = (dy_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2))
                   dx = col2im(W_mat.T @ dy_mat)

        Lo = (L + 2·padding - k) // stride + 1

    The same code as :class:`Conv2D` with one spatial axis.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``k``.
        stride: Step between windows (default 1).
        padding: Zeros added on both ends.
        bias: Learn ``b`` (default True).
        init: Weight initializer; default ``"he_uniform"`` (see :class:`Conv2D`).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: The input has the wrong channel count, or is shorter than
            the kernel after padding.
    """

    _d = 1
    _axes = ("L",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        bias: bool = True,
        init: Any = "he_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias,
                         init=init, bias_init=bias_init, dtype=dtype, rng=rng)
