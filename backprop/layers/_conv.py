"""The machinery shared by Conv1D and Conv2D (see :mod:`.conv` for the method): forward,
the weight gradients and the two routes to ``dx``; the geometry, im2col and col2im are in
:mod:`._im2col`, the padding modes' pad and its adjoint in :mod:`._padding`."""

from __future__ import annotations

import threading
from math import prod
from typing import Any, ClassVar

import numpy as np

from .. import _openblas
from .._copy import copy
from .._validate import boolean, fits
from ..backend import all_finite
from . import _grouped, _packed
from ._im2col import _Geometry, col2im, col2im_phases, col2im_products, im2col
from ._padding import check_mode, fold, pad_input, padded_shape
from ._spatial import ChannelsFirst, as_tuple, canonical, channel_groups, out_size
from ._sums import channel_sum
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
# A strided layer forms dx in phase planes (see _im2col.col2im_phases) from this many
# outputs N·prod(out): forward + backward, float32, stride 2 unless said, phases vs
# col2im (interleaved, medians; a busy 2-core AMD EPYC): Conv2D(3, 8, 3) on 4x3x8x8 (64
# outputs) 0.41 vs 0.31 ms and on 8x3x16x16 (512) 0.46 vs 0.38: the per-offset calls
# cost more than they save; (8, 16, 3) on 16x8x16x16 (1,024) 0.73 vs 0.84, (16, 32, 3)
# on 32x16x16x16 2.6 vs 3.2, (32, 64, 3) on 64x32x28x28 28.1 vs 32.3, (16, 32, 5) on
# 64x16x32x32 28.3 vs 35.4, (64, 128, 3) on 64x64x16x16 20.8 vs 25.5, (3, 16, 4,
# stride 4) on 64x3x32x32 1.79 vs 1.92.
_PHASES_FROM = 1024


class _Conv(ChannelsFirst, Layer):
    """Shared im2col convolution over ``d`` spatial axes (see Conv1D, Conv2D)."""

    _cache_attrs = ("_cols", "_x_shape")
    _d: ClassVar[int]
    _axes: ClassVar[tuple[str, ...]]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, dilation: Any, groups: Any, *, bias: bool, padding_mode: Any,
                 init: Any, bias_init: Any, dtype: Any, rng: np.random.Generator | int | None
                 ) -> None:
        super().__init__(dtype=dtype)
        who, d = type(self).__name__, self._d
        self.in_channels, self.out_channels, self.groups = channel_groups(
            in_channels, out_channels, groups, who)
        self._k = as_tuple(kernel_size, d, "kernel_size", who)
        self._s = as_tuple(stride, d, "stride", who)
        self._dil = as_tuple(dilation, d, "dilation", who)
        self._p, self._p_extra = self._padding(padding, who)
        self.kernel_size, self.stride = canonical(self._k), canonical(self._s)
        self.dilation = canonical(self._dil)
        # a string is kept as given, so repr and config show 'same'/'valid'
        self.padding = padding.lower() if isinstance(padding, str) else canonical(self._p)
        self.padding_mode = check_mode(padding_mode, who)
        # reflect/replicate/circular: forward pads x itself by _border (see _padding), and
        # the machinery, which pads with zeros (_p, _p_extra), sees a layer without padding
        self._border: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        if self.padding_mode != "zeros" and any(self._p + self._p_extra):
            self._border = (self._p, self._p_extra)
            self._p = self._p_extra = (0,) * d
        self.bias = boolean(bias, "bias", who)
        self._init_kernel((self.out_channels, self.in_channels // self.groups, *self._k),
                          self.bias, init, bias_init, rng, who)
        self._cols: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None
        self._ws: dict[tuple[int, str], tuple[np.ndarray, Any]] = {}  # (thread, name)

    def _padding(self, padding: Any, who: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Zeros per axis on both sides, and how many more after (``'same'`` with an even
        kernel). ``'valid'`` is 0; ``'same'`` keeps the size: ``d·(k - 1)`` zeros per axis
        (``d`` the dilation), half of them (rounded down) before and the rest after, as in
        PyTorch."""
        none = (0,) * self._d
        if not isinstance(padding, str):
            return as_tuple(padding, self._d, "padding", who, minimum=0), none
        if padding.lower() == "valid":
            return none, none
        if padding.lower() != "same":
            raise ValueError(f"{who}: expected padding as an int, {self._d} ints, 'same' or "
                             f"'valid', got {padding!r}")
        if any(s != 1 for s in self._s):
            raise ValueError(f"{who}: padding='same' needs stride 1 (as in PyTorch), got "
                             f"stride {canonical(self._s)}")
        zeros = tuple(d * (k - 1) for k, d in zip(self._k, self._dil, strict=True))
        return tuple(z // 2 for z in zeros), tuple(z % 2 for z in zeros)

    def _geometry(self, x_shape: tuple[int, ...]) -> _Geometry:
        out = out_size(self, x_shape, self._k, self._s, self._p, self._p_extra, self._dil)
        return _Geometry(x_shape, self._k, self._s, self._p, out, self._p_extra, self._dil)

    def _workspace(self, name: str, shape: tuple[int, ...], layout: Any = None) -> np.ndarray:
        """The layer's scratch array ``name``, one per thread (threads predicting with one
        model write their own), zeros when (re)made for a new shape, dtype or ``layout``:
        ``xp``'s and ``dy``'s padding is never written, so it stays zero. Their ``layout``
        is the padded size, which their shape does not fix (14x14 and 6x30, padded by 1,
        both give ``S = 258``)."""
        key = (threading.get_ident(), name)
        buf, made_for = self._ws.get(key, (None, None))
        if buf is None or buf.shape != shape or buf.dtype != self.dtype or made_for != layout:
            alive = {t.ident for t in threading.enumerate()}  # at a new shape or thread:
            self._ws = {k: v for k, v in self._ws.items() if k[0] in alive}  # drop the dead
            buf = np.zeros(shape, self.dtype)
            self._ws[key] = (buf, layout)
        return buf

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", self.in_channels, *self._axes)
        if self._border is not None:  # the padding mode's copies of x's border values
            x = pad_input(self, x)
        geo = self._geometry(x.shape)
        fits(self, geo.xp_shape, self.dtype, x.shape, "padded input")
        direct = self._direct(geo)
        if direct is _packed and not training and (y := _packed.infer(self, x, geo)) is not None:
            return y  # no columns to keep: no im2col
        if direct is not None:  # groups without im2col: see _grouped
            y, xq = direct.forward(self, x, geo)
            if training:
                self._cols, self._x_shape = xq, x.shape
            return y
        if self._pointwise():  # 1x1: x itself is the columns, by sample (no im2col)
            x3 = x.reshape(geo.n, self.in_channels, prod(geo.out))
            y = np.matmul(self._w_mat(), x3)
            if self.bias:
                y += self.params["b"][:, None]
            if training:
                self._cols, self._x_shape = x3, x.shape
            return y.reshape(geo.n, self.out_channels, *geo.out)
        xp = self._workspace("xp", geo.xp_shape, geo.padded)
        copy(geo.image(xp), x.swapaxes(0, 1))  # padding stays zero from the first call
        (k, nl), kb, cells = geo.cols_shape, geo.cols_shape[0] + self.bias, prod(geo.out)
        if self.groups > 1:
            y, cols = self._grouped_forward(xp, geo)
        # cols is new each step (backward keeps it); with a bias, a last row of ones: the
        # bias as one more column of W_mat, so the product adds it (no pass over y)
        elif kb * self.out_channels <= _PER_SAMPLE:  # by sample: (N, K + 1, Ho·Wo)
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
            copy(y, y_mat)  # back to (N, C_out, *out)
        if training:
            self._cols, self._x_shape = cols, x.shape
        return y

    def _direct(self, geo: _Geometry) -> Any:
        """The module of this layer's route on inputs of geometry ``geo`` if not im2col's:
        :mod:`._grouped` or :mod:`._packed` (see their ``usable``), else None."""
        if self.groups > 1:
            return _grouped if _grouped.usable(self, geo) else None
        by_sample = (geo.cols_shape[0] + self.bias) * self.out_channels <= _PER_SAMPLE
        return None if by_sample or self._pointwise() or not _packed.usable(geo) else _packed

    def _pointwise(self) -> bool:
        """A small 1x1 convolution without stride, padding or groups: per sample a product
        ``W (C_out, C_in) @ x[n] (C_in, prod(S))`` in NCHW as it comes, with no im2col and
        no transposing copies (64x32x32x32, 32 -> 64, forward + backward 21-26 -> 18 ms).
        Small as the columns by sample are (``(C_in + 1)·C_out <= 4096``): for a large
        layer on small maps N products and an ``(N, C_out, C_in)`` sum lose to one product
        (1024x256x1x1, 256 -> 256: 8 against 160-210 ms)."""
        return (self.groups == 1 and all(k == 1 for k in self._k)
                and all(s == 1 for s in self._s) and not any(self._p + self._p_extra)
                and (self.in_channels + 1) * self.out_channels <= _PER_SAMPLE)

    def _grouped_forward(self, xp: np.ndarray, geo: _Geometry) -> tuple[np.ndarray, np.ndarray]:
        """``(y, cols)`` with groups on the im2col route (grouped layers take
        :mod:`._grouped`; this is its reference, where ``_grouped.usable`` says no):
        ``cols (K, N·prod(out))`` as without, its rows split into the groups' blocks (row
        ``(c, *offset)`` belongs to ``c``'s group), and one product per group, stacked:
        ``y_g = W_g @ cols_g`` (``(g, C_out/g, K/g)`` times ``(g, K/g, N·prod(out))``),
        then ``+ b``. The backward's fallback for non-finite values (see
        :meth:`_direct_grads`) continues from such columns."""
        cols = np.empty(geo.cols_shape, self.dtype)
        im2col(xp, geo, cols)
        y_mat = np.matmul(self._w_groups(), self._by_group(cols))
        y_mat = y_mat.reshape(self.out_channels, geo.n, *geo.out)
        if self.bias:
            y_mat += self.params["b"].reshape(-1, *(1,) * (self._d + 1))
        y = np.empty((geo.n, self.out_channels, *geo.out), self.dtype)
        copy(y, y_mat.swapaxes(0, 1))
        return y, cols

    def _w_groups(self) -> np.ndarray:
        """``W`` as the groups' stacked matrices, ``(g, C_out/g, K/g)`` (a view)."""
        return self._by_group(self._w_mat())

    def _by_group(self, a: np.ndarray) -> np.ndarray:
        """The rows of matrix ``a`` as the groups' stacked blocks, ``(g, rows/g, columns)``."""
        return a.reshape(self.groups, a.shape[0] // self.groups, a.shape[1])

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        if self._border is not None:  # those of the layer without padding, on the padded x
            x_shape = padded_shape(self, x_shape)
        geo = self._geometry(x_shape)
        direct = self._direct(geo)
        if direct is not None:  # groups without im2col (with finite values)
            return direct.gemm_shapes(self, geo, input_grad)
        (k, nl), c_out, kb = geo.cols_shape, self.out_channels, geo.cols_shape[0] + self.bias
        if self._pointwise():  # by sample, listed as the one product of the same size
            shapes = [(c_out, k, nl), (c_out, nl, k)]
            return shapes + [(k, c_out, nl)] if input_grad else shapes
        # y_mat = W|b @ cols, dW|db.T = cols @ dy_mat.T (columns by sample: N products
        # that add up to these, listed as the one product of the same size)
        if self.groups > 1:  # one product per group, each on 1/g of the rows and outputs
            g = self.groups
            kg, cg = k // g, c_out // g
            shapes = [(cg, kg, nl)] * g + [(cg, nl, kg)] * g
            return shapes + [(kg, cg, nl)] * g if input_grad else shapes
        shapes = [(c_out, kb, nl), (kb, nl, c_out)]
        if not input_grad:
            return shapes
        if self._dx_products(geo) is not None:  # W[:, :, *o].T @ dy over the span, per offset
            span = geo.span if geo.unit_stride else geo.phase_span
            return shapes + [(self.in_channels, c_out, span)] * prod(self._k)
        return shapes + [(k, c_out, nl)]  # dcols = W_mat.T @ dy_mat

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = self._dx(dy)  # of the padded x with a padding mode: its border gradient folds back
        return dx if self._border is None else fold(self, dx)

    def _dx(self, dy: np.ndarray) -> np.ndarray:
        """Fill the grads and return ``dx`` of the input the machinery saw."""
        direct, dx = self._direct_grads(dy, input_grad=True)
        if direct:
            return dx
        dy_mat, cols, geo = self._param_grads(dy)
        if self._pointwise():  # dx[n] = W.T @ dy[n]
            dy3 = dy.reshape(geo.n, self.out_channels, prod(geo.out))
            return np.matmul(self._w_mat().T, dy3).reshape(geo.n, geo.c, *geo.size)
        add = self._dx_products(geo)
        dx = np.empty((geo.n, geo.c, *geo.size), self.dtype)  # new: the caller may keep it
        if add is not None and type(dy) is np.ndarray and not geo.unit_stride:
            del cols, dy_mat  # strided: one product per offset, in phase planes
            q = prod(geo.phases)
            col2im_phases(self._w_t(), dy, geo, dx, add,
                          self._workspace("planes", (prod(geo.stride), geo.c, geo.n * q)),
                          self._workspace("dyq", (self.out_channels, geo.n, q),
                                          (geo.phases, geo.out)))  # 0 past the outputs
            return dx
        dxp = self._workspace("dxp", geo.xp_shape)
        if add is None or type(dy) is not np.ndarray:
            if dy_mat is None:  # columns by sample: dcols gets its own array
                dcols = self._w_mat().T @ self._dy_mat(dy, geo)
            elif self.groups > 1:  # the groups' stacked W_g.T @ dy_g, into cols
                dcols = cols
                np.matmul(self._w_groups().transpose(0, 2, 1), self._by_group(dy_mat),
                          out=self._by_group(cols))
            else:  # dW is done with cols, so dcols (its first K rows) overwrites it
                dcols = np.matmul(self._w_mat().T, dy_mat, out=cols[:geo.cols_shape[0]])
            col2im(dcols, geo, dxp)
        else:  # stride 1: one product per kernel offset, added in place (see col2im_products)
            del cols, dy_mat
            dyp = self._workspace("dy", (self.out_channels, *geo.xp_shape[1:]), geo.padded)
            copy(geo.outputs(dyp), dy.swapaxes(0, 1))
            col2im_products(self._w_t(), dyp, geo, dxp, add)
        copy(dx, geo.image(dxp).swapaxes(0, 1))
        return dx

    def _w_t(self) -> np.ndarray:
        """``W[:, :, *o].T`` for every kernel offset ``o``: ``(*kernel, C_in, C_out)``."""
        w_t = self._workspace("W.T", (*self._k, self.in_channels, self.out_channels))
        np.copyto(w_t, np.moveaxis(self.params["W"], (0, 1), (-1, -2)))
        return w_t

    def _dx_products(self, geo: _Geometry) -> Any:
        """BLAS's ``out += a @ b`` when dx is one product per kernel offset (one group,
        NumPy's OpenBLAS, a finite W: the layout's zeros times an inf would add NaN; see
        :func:`._im2col.col2im_products`, :func:`._im2col.col2im_phases`), else None."""
        if (self.groups > 1 or (not geo.unit_stride and geo.n * prod(geo.out) < _PHASES_FROM)
                or not all_finite(self.params["W"])):
            return None
        return _openblas.matmul_add(self.dtype)

    def backward_params(self, dy: np.ndarray) -> None:
        if not self._direct_grads(dy, input_grad=False)[0]:
            self._param_grads(dy)

    def _direct_grads(self, dy: np.ndarray, input_grad: bool) -> tuple[bool, Any]:
        """``(True, dx or None)`` after the backward of a route without im2col (see
        :meth:`_direct`; a grouped layer's cache is its input, 3-D); ``(False, None)`` for
        the others, and before any forward (the usual path then says what is missing).
        Where the grouped route's zeros would meet an inf or NaN, the columns are formed
        from the cached input and put in the cache for the im2col route."""
        if self._cols is None:
            return False, None
        if self.groups == 1:  # the packed route, where the cached input's geometry takes it
            geo = self._geometry(self._x_shape)
            if self._direct(geo) is None:
                return False, None
            cols = self._pop("_cols", "_x_shape")[0]
            self._check_dy(dy, (geo.n, self.out_channels, *geo.out))
            return True, _packed.backward(self, dy, cols, geo, input_grad)
        if self._cols.ndim != 3:
            return False, None
        xq, x_shape = self._pop("_cols", "_x_shape")
        geo = self._geometry(x_shape)
        self._check_dy(dy, (geo.n, self.out_channels, *geo.out))
        done, dx = _grouped.backward(self, dy, xq, geo, input_grad)
        if not done:
            xp = self._workspace("xp", geo.xp_shape, geo.padded)
            copy(geo.image(xp), _grouped.unpadded(self, xq, geo))
            cols = np.empty(geo.cols_shape, self.dtype)
            im2col(xp, geo, cols)
            self._cols, self._x_shape = cols, x_shape
        return done, dx

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
        if self.groups > 1:  # dW_g = dy_g @ cols_g.T, stacked; db = Σ dy
            dy_mat = self._dy_mat(dy, geo)
            np.matmul(self._by_group(dy_mat), self._by_group(cols).transpose(0, 2, 1),
                      out=self._by_group(self.grads["W"].reshape(c_out, -1)))
            if self.bias:
                np.sum(dy_mat, axis=1, out=self.grads["b"])
            return dy_mat, cols, geo
        if cols.ndim == 3:  # by sample: Σ_n dy[n] @ cols[n].T, with dy as it comes (NCHW)
            cells = prod(geo.out)  # explicit, not -1: an empty batch (N = 0) must reshape
            dy3 = dy.reshape(geo.n, c_out, cells)
            dw = self._workspace("dW|db", (c_out, cols.shape[1]))
            np.sum(np.matmul(dy3, cols.transpose(0, 2, 1)), axis=0, out=dw)
            np.copyto(self.grads["W"].reshape(c_out, -1), dw[:, :k])
            if self.bias:  # the row of ones' column; a 1x1 layer's cols (x itself) has none
                if cols.shape[1] > k:
                    np.copyto(self.grads["b"], dw[:, k])
                else:
                    channel_sum(dy3, out=self.grads["b"])
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
        copy(dy_t, dy.swapaxes(0, 1))
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
        self._ws = {}

    def __getstate__(self) -> dict[str, Any]:
        # copies (deepcopy, astype) and pickles leave the scratch behind
        return {**self.__dict__, "_ws": {}}
