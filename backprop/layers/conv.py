"""Convolutions (Conv1D, Conv2D) as im2col plus one matrix multiply.

im2col copies every receptive field into a column, so the convolution becomes
``W_mat @ cols``: one BLAS call over the whole batch (and two in backward).

The input is first copied, zero-padded and channels-first, into ``xp (C, N, S)``:
one flat row per channel and image, ``S = Hp·Wp + kw - 1`` (the padded image,
then slack so that no window runs into the next image). Output ``(i, j)`` at
kernel offset ``(ki, kj)`` reads ``xp[c, n, (i·sh + ki)·Wp + j·sw + kj]``, so
``cols (C·kh·kw, N·Ho·Wo)`` is one copy from a strided view of ``xp`` (the
geometry, im2col and col2im are in :mod:`._im2col`).

With stride 1 the backward forms ``dx`` without ``dcols``: output ``(n, i, j)``
and the input it reads at kernel offset ``(ki, kj)`` are one flat position apart by
``ki·Wp + kj`` in ``xp``'s layout, so ``col2im(W_mat.T @ dy_mat)`` is ``kh·kw``
products ``W[:, :, ki, kj].T @ dy``, each added by BLAS (``beta = 1``, NumPy's own
OpenBLAS through :mod:`backprop._openblas`) into its shifted place in the ``dx``
accumulator (:func:`._im2col.col2im_products`). Other strides, and NumPy builds
without that BLAS, take the dcols product and col2im.

``xp`` (its padding is written once), ``dy`` in ``xp``'s layout and the ``dx``
accumulator are workspaces that the layer keeps from step to step; the big per-step
arrays (``cols``, the products) are left to the allocator, which recycles them
within the step (keeping them too measured slower: more page faults in the other
layers).
Workspaces are scratch: never saved, copied or counted as parameters.

The bias rides in the products: ``cols`` gets one more row, of ones, and ``W_mat``
one more column, ``b``. The forward product then adds ``b`` (no pass over ``y``),
and the ``dW`` product's last row is ``db = Σ dy`` (no reduction over ``dy``), for
one extra row in a ``K``-row product (conv 1->32 3x3 at N=64: bias pass 0.28 ms and
db 0.09 ms saved, the products ~0.06 ms longer).
"""

from __future__ import annotations

from math import prod
from typing import Any, ClassVar

import numpy as np

from .. import _openblas, initializers
from .._validate import boolean, positive_int
from ._im2col import _Geometry, col2im, col2im_products, im2col
from ._spatial import as_tuple, canonical, out_size
from .base import Layer

# Layers with at most this many weights (K·C_out, the bias included) lay their columns
# out by sample, (N, K, Ho·Wo), and run one product per sample. dW's one GEMM (a tiny
# output, a very long shared axis) leaves OpenBLAS little to split, and N per-sample
# products summed run 2-7x faster (Conv2D(1, 32, 3) at N=64: 0.83 -> 0.39 ms); the
# forward's per-sample products land in (N, C_out, Ho·Wo), NCHW, with no transposing
# copy of y, and dW needs no transposed copy of dy. Forward + backward at batch 64,
# padding 1, float32, 2-core AMD EPYC, by sample vs one matrix: Conv2D(1, 32, 3) on
# 28x28 (K·C_out 320) 1.1 vs 2.5 ms; (3, 32, 3) on 32x32 (896) 4.9 vs 5.7; (3, 64, 3)
# (1,792) 8.1 vs 17.2; (8, 32, 3) on 28x28 (2,336) 10.7 vs 11.3; from ~9,000 one
# matrix wins: (16, 64, 3) on 16x16 11.7 vs 10.7, (32, 64, 3) on 14x14 15.9 vs 13.2.
_PER_SAMPLE = 4096


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
        self._p = self._padding(padding, who)
        self.kernel_size, self.stride = canonical(self._k), canonical(self._s)
        # a string is kept as given, so repr and config show 'same'/'valid'
        self.padding = padding.lower() if isinstance(padding, str) else canonical(self._p)
        self.bias = boolean(bias, "bias", who)
        rng = initializers.make_rng(rng, who)
        self.init_param("W", init, (self.out_channels, self.in_channels, *self._k), rng)
        if self.bias:
            self.init_param("b", bias_init, (self.out_channels,), rng)
        self._cols: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None
        self._ws: dict[str, np.ndarray] = {}
        self._ws_layout: dict[str, Any] = {}

    def _padding(self, padding: Any, who: str) -> tuple[int, ...]:
        """Padding per axis; ``'valid'`` is 0 and ``'same'`` keeps the size (as in PyTorch)."""
        if not isinstance(padding, str):
            return as_tuple(padding, self._d, "padding", who, minimum=0)
        if padding.lower() == "valid":
            return (0,) * self._d
        if padding.lower() != "same":
            raise ValueError(f"{who}: expected padding as an int, {self._d} ints, 'same' or "
                             f"'valid', got {padding!r}")
        if any(s != 1 for s in self._s):
            raise ValueError(f"{who}: padding='same' needs stride 1 (as in PyTorch), got "
                             f"stride {canonical(self._s)}")
        if any(k % 2 == 0 for k in self._k):
            raise ValueError(f"{who}: padding='same' with the even kernel "
                             f"{canonical(self._k)} needs more zeros on one side than the "
                             "other, which this layer does not do; use an odd kernel")
        return tuple((k - 1) // 2 for k in self._k)

    def _geometry(self, x_shape: tuple[int, ...]) -> _Geometry:
        out = out_size(self, x_shape, self._k, self._s, self._p)
        return _Geometry(x_shape, self._k, self._s, self._p, out)

    def _workspace(self, name: str, shape: tuple[int, ...], layout: Any = None) -> np.ndarray:
        """The layer's scratch array ``name``: zeros when (re)made for a new shape, dtype
        or ``layout``.

        ``xp`` and ``dy`` rely on that: their padding is never written, so it stays zero.
        Their ``layout`` is the padded input size, which their shape alone does not fix
        (14x14 and 6x30 images, padded by 1, both give ``S = 258``).
        """
        buf = self._ws.get(name)
        if (buf is None or buf.shape != shape or buf.dtype != self.dtype
                or self._ws_layout.get(name) != layout):
            buf = self._ws[name] = np.zeros(shape, self.dtype)
            self._ws_layout[name] = layout
        return buf

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", self.in_channels, *self._axes)
        geo = self._geometry(x.shape)
        xp = self._workspace("xp", geo.xp_shape, geo.padded)
        np.copyto(geo.image(xp), x.swapaxes(0, 1))  # padding stays zero from the first call
        (k, nl), kb, cells = geo.cols_shape, geo.cols_shape[0] + self.bias, prod(geo.out)
        # cols is new each step (backward keeps it); with a bias, a last row of ones: the
        # bias as one more column of W_mat, so the product adds it (no pass over y)
        if kb * self.out_channels <= _PER_SAMPLE:  # by sample: (N, K + 1, Ho·Wo)
            cols = np.empty((geo.n, kb, cells), self.dtype)
            im2col(xp, geo, cols[:, :k])
            if self.bias:
                cols[:, k] = 1
            y = np.matmul(self._w_aug(), cols).reshape(geo.n, self.out_channels, *geo.out)
        else:
            cols = np.empty((kb, nl), self.dtype)
            im2col(xp, geo, cols[:k])
            if self.bias:
                cols[k] = 1
            y_mat = self._w_aug() @ cols  # (C_out, N·prod(out)), bias included
            y_mat = y_mat.reshape(self.out_channels, geo.n, *geo.out).swapaxes(0, 1)
            y = np.empty(y_mat.shape, self.dtype)
            np.copyto(y, y_mat)  # back to (N, C_out, *out)
        if training:
            self._cols, self._x_shape = cols, x.shape
        return y

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        geo = self._geometry(x_shape)
        (k, nl), c_out, kb = geo.cols_shape, self.out_channels, geo.cols_shape[0] + self.bias
        # y_mat = W|b @ cols, dW|db.T = cols @ dy_mat.T (columns by sample: N products
        # that add up to these, listed as the one product of the same size)
        shapes = [(c_out, kb, nl), (kb, nl, c_out)]
        if not input_grad:
            return shapes
        if self._dx_by_products(geo):  # W[:, :, *o].T @ dy over the span, per offset o
            return shapes + [(self.in_channels, c_out, geo.span)] * prod(self._k)
        return shapes + [(k, c_out, nl)]  # dcols = W_mat.T @ dy_mat

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy_mat, cols, geo = self._param_grads(dy)
        dxp = self._workspace("dxp", geo.xp_shape)
        add = _openblas.matmul_add(self.dtype) if self._dx_by_products(geo) else None
        if add is None or type(dy) is not np.ndarray:
            if dy_mat is None:  # columns by sample: dcols gets its own array
                dcols = self._w_mat().T @ self._dy_mat(dy, geo)
            else:  # dW is done with cols, so dcols (its first K rows) overwrites it
                dcols = np.matmul(self._w_mat().T, dy_mat, out=cols[:geo.cols_shape[0]])
            col2im(dcols, geo, dxp)
        else:  # stride 1: one product per kernel offset, added in place (see col2im_products)
            del cols, dy_mat
            dyp = self._workspace("dy", (self.out_channels, *geo.xp_shape[1:]), geo.padded)
            np.copyto(geo.outputs(dyp), dy.swapaxes(0, 1))
            w_t = self._workspace("W.T", (*self._k, self.in_channels, self.out_channels))
            np.copyto(w_t, np.moveaxis(self.params["W"], (0, 1), (-1, -2)))
            col2im_products(w_t, dyp, geo, dxp, add)
        dx = np.empty((geo.n, geo.c, *geo.size), self.dtype)
        np.copyto(dx, geo.image(dxp).swapaxes(0, 1))  # dx is new: the caller may keep it
        return dx

    def _dx_by_products(self, geo: _Geometry) -> bool:
        """Whether dx is formed as one product per kernel offset (stride 1, NumPy's
        OpenBLAS found; see :func:`._im2col.col2im_products`)."""
        return geo.unit_stride and _openblas.matmul_add(self.dtype) is not None

    def backward_params(self, dy: np.ndarray) -> None:
        self._param_grads(dy)

    def _param_grads(self, dy: np.ndarray
                     ) -> tuple[np.ndarray | None, np.ndarray, _Geometry]:
        """Fill ``dW`` and ``db``; return ``dy`` as a ``(C_out, N·prod(out))`` matrix
        (None when the columns are laid out by sample, which do not need it), cols,
        and the geometry.

        With a bias, cols' row of ones makes the products' last row (column) ``db = Σ dy``.
        """
        cols, x_shape = self._pop("_cols", "_x_shape")
        geo = self._geometry(x_shape)
        self._check_dy(dy, (geo.n, self.out_channels, *geo.out))
        k, c_out = geo.cols_shape[0], self.out_channels
        if cols.ndim == 3:  # by sample: Σ_n dy[n] @ cols[n].T, with dy as it comes (NCHW)
            cells = prod(geo.out)  # explicit, not -1: an empty batch (N = 0) must reshape
            per_sample = np.matmul(dy.reshape(geo.n, c_out, cells), cols.transpose(0, 2, 1))
            dw = self._workspace("dW|db", (c_out, cols.shape[1]))
            np.sum(per_sample, axis=0, out=dw)
            np.copyto(self.grads["W"].reshape(c_out, -1), dw[:, :k])
            if self.bias:
                np.copyto(self.grads["b"], dw[:, k])
            return None, cols, geo
        dy_mat = self._dy_mat(dy, geo)
        # dW = dy_mat @ cols.T, formed as its transpose cols @ dy_mat.T: that BLAS call
        # is ~25% faster here (the long N·prod(out) axis is the same; the split differs).
        dw_t = self._workspace("dW|db.T", (cols.shape[0], c_out))
        np.matmul(cols, dy_mat.T, out=dw_t)
        np.copyto(self.grads["W"].reshape(c_out, -1), dw_t[:k].T)
        if self.bias:
            np.copyto(self.grads["b"], dw_t[k])
        return dy_mat, cols, geo

    def _dy_mat(self, dy: np.ndarray, geo: _Geometry) -> np.ndarray:
        """``dy.transpose(1, 0, ...)`` as a new ``(C_out, N·prod(out))`` matrix."""
        dy_t = np.empty((self.out_channels, geo.n, *geo.out), self.dtype)
        np.copyto(dy_t, dy.swapaxes(0, 1))
        return dy_t.reshape(self.out_channels, -1)

    def _w_mat(self) -> np.ndarray:
        return self.params["W"].reshape(self.out_channels, -1)

    def _w_aug(self) -> np.ndarray:
        """``W_mat``, with the bias as one more column when there is one: ``(C_out, K + 1)``."""
        w_mat = self._w_mat()
        if not self.bias:
            return w_mat
        c_out, k = w_mat.shape
        w_aug = self._workspace("W|b", (c_out, k + 1))
        np.copyto(w_aug[:, :k], w_mat)
        np.copyto(w_aug[:, k], self.params["b"])
        return w_aug

    def clear_cache(self) -> None:
        """Drop the backward cache and the workspaces (remade on the next call)."""
        super().clear_cache()
        self._ws, self._ws_layout = {}, {}

    def __getstate__(self) -> dict[str, Any]:
        # copies (deepcopy, astype) and pickles leave the scratch behind
        return {**self.__dict__, "_ws": {}, "_ws_layout": {}}


class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as in PyTorch) on ``NCHW`` input.

    ::

        Forward:   cols = im2col(x)                 x (N, C_in, H, W), cols (C_in·kh·kw, N·Ho·Wo)
                   y = (W_mat @ cols)               W_mat = W.reshape(C_out, C_in·kh·kw)
                       .reshape(C_out, N, Ho, Wo).transpose(1, 0, 2, 3) + b
                                                                            y (N, C_out, Ho, Wo)
        Backward:  dy_mat = dy.transpose(1, 0, 2, 3).reshape(C_out, N·Ho·Wo)
                   dW = (dy_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2, 3))
                   dx = col2im(W_mat.T @ dy_mat)
        where      Ho = (H + 2·ph - kh) // sh + 1,   Wo = (W + 2·pw - kw) // sw + 1

    In the code ``+ b`` and ``db`` come out of the products: ``cols`` carries a last
    row of ones and ``W_mat`` a last column ``b``, so ``[W_mat | b] @ cols`` adds the
    bias and the last row of ``cols @ dy_mat.T`` is ``db``.

    ``col2im`` is the adjoint of ``im2col``: each column entry is added back to
    the input pixel it was copied from. With stride 1 the code adds, for each
    kernel offset, ``W[:, :, ki, kj].T @ dy`` into ``dx`` shifted by that offset:
    the same sum without the ``(C_in·kh·kw, N·Ho·Wo)`` array ``W_mat.T @ dy_mat``
    (see the module docstring). The first layer of a model skips ``dx``
    (:meth:`backward_params`): it is never used.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``kh`` and ``kw``: an int or a pair.
        stride: Step between windows: an int or a pair (default 1).
        padding: Zeros added on both sides of each spatial axis: an int, a pair,
            ``'valid'`` (0) or ``'same'`` (output size = input size; stride 1 and odd
            kernels only).
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
        padding: int | tuple[int, int] | str = 0,
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
        where      Lo = (L + 2·padding - k) // stride + 1

    The same code as :class:`Conv2D` with one spatial axis; the bias rides in the
    products the same way (a row of ones in ``cols``, a column ``b`` in ``W_mat``).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``k``.
        stride: Step between windows (default 1).
        padding: Zeros added on both ends: an int, ``'valid'`` (0) or ``'same'``
            (output length = input length; stride 1 and an odd kernel only).
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
        padding: int | str = 0,
        *,
        bias: bool = True,
        init: Any = "he_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias,
                         init=init, bias_init=bias_init, dtype=dtype, rng=rng)
