"""The machinery shared by ConvTranspose1D, 2D and 3D (see :mod:`.conv_transpose` for the
method): the geometry of the convolution they transpose, forward (with PyTorch's
``output_size``), the weight gradients and ``dx``, on :mod:`._im2col`'s im2col and
col2im."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .._copy import copy
from .._validate import boolean, fits
from ._im2col import _Geometry, col2im, im2col
from ._padding import check_mode
from ._spatial import ChannelsFirst, as_tuple, canonical, channel_groups
from ._sums import channel_sum
from .base import Layer


class _ConvTranspose(ChannelsFirst, Layer):
    """Shared transposed convolution over ``d`` spatial axes (see ConvTranspose1D/2D/3D)."""

    _cache_attrs = ("_x_mat", "_x_shape", "_out_pad")
    _d: ClassVar[int]
    _axes: ClassVar[tuple[str, ...]]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, output_padding: Any, groups: int, bias: bool, dilation: Any,
                 padding_mode: str, *, init: Any, bias_init: Any, dtype: Any,
                 rng: np.random.Generator | int | None) -> None:
        super().__init__(dtype=dtype)
        who, d = type(self).__name__, self._d
        self.in_channels, self.out_channels, self.groups = channel_groups(
            in_channels, out_channels, groups, who)
        self._k = as_tuple(kernel_size, d, "kernel_size", who)
        self._s = as_tuple(stride, d, "stride", who)
        self._p = as_tuple(padding, d, "padding", who, minimum=0)
        self._op = as_tuple(output_padding, d, "output_padding", who, minimum=0)
        self._dil = as_tuple(dilation, d, "dilation", who)
        # PyTorch's rule: output_padding only picks among the output sizes whose
        # convolution gives back the input's size, of which there are max(stride, dilation)
        if any(op >= max(s, dl) for op, s, dl in zip(self._op, self._s, self._dil, strict=True)):
            raise ValueError(f"{who}: expected output_padding smaller than stride or dilation "
                             f"along each axis (as in PyTorch), got output_padding "
                             f"{canonical(self._op)} with stride {canonical(self._s)} and "
                             f"dilation {canonical(self._dil)}")
        if check_mode(padding_mode, who) != "zeros":
            raise ValueError(f"{who}: expected padding_mode 'zeros' (the only one of PyTorch's "
                             f"transposed convolutions), got {padding_mode!r}")
        self.kernel_size, self.stride = canonical(self._k), canonical(self._s)
        self.padding, self.output_padding = canonical(self._p), canonical(self._op)
        self.dilation, self.padding_mode = canonical(self._dil), padding_mode
        self.bias = boolean(bias, "bias", who)
        # PyTorch's layout (C_in, C_out/g, *k): fan_in = (C_out/g)·prod(k), as PyTorch
        self._init_kernel((self.in_channels, self.out_channels // self.groups, *self._k),
                          self.bias, init, bias_init, rng, who)
        self._x_mat: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None
        self._out_pad: tuple[int, ...] | None = None  # the output_padding of that forward

    def _geometry(self, x_shape: tuple[int, ...], out_pad: tuple[int, ...] | None = None
                  ) -> _Geometry:
        """The geometry of the convolution from ``y`` to ``x``: ``y (N, C_out, *Ho)`` is its
        input, padded by ``padding``, and ``x``'s spatial size its output. ``out_pad``:
        the output_padding of this call (default the layer's)."""
        size, out_pad = tuple(x_shape[2:]), out_pad or self._op
        out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, op, d
                    in zip(size, self._k, self._s, self._p, out_pad, self._dil, strict=True))
        if any(o < 1 for o in out) or min(size) < 1:  # an empty axis: no output (PyTorch)
            need = tuple(max(1, 1 - (d * (k - 1) + op - 2 * p) // s) for k, s, p, op, d
                         in zip(self._k, self._s, self._p, out_pad, self._dil, strict=True))
            raise ValueError(f"{self!r}: expected input spatial size of at least {need} (an "
                             f"output of (in - 1)·stride - 2·padding + dilation·(kernel - 1) "
                             f"+ output_padding + 1 >= 1), got input of shape {tuple(x_shape)}")
        y_shape = (x_shape[0], self.out_channels, *out)
        return _Geometry(y_shape, self._k, self._s, self._p, size, None, self._dil)

    def forward(self, x: np.ndarray, output_size: Sequence[int] | None = None, *,
                training: bool = False) -> np.ndarray:
        """Compute ``y`` from ``x``; cache what backward needs only if ``training``.

        Args:
            x: The input, ``(N, C_in, *spatial)``.
            output_size: PyTorch's ``forward(input, output_size)``: ``y``'s spatial size
                (``d`` ints, or a full shape of ``d + 2`` whose last ``d`` are taken),
                which picks this call's ``output_padding``, ``output_size - min``, each
                within ``[min, min + stride - 1]`` (``min``: the size with no
                output_padding). The layer's ``output_padding`` is left as it is; the
                backward of this call uses the one picked. :class:`Sequential` calls
                ``forward(x, training=...)``: pass it in direct calls.
            training: Keep the cache that backward needs.

        Raises:
            ValueError: An input of the wrong shape, or an ``output_size`` of the wrong
                length or out of range (the message gives the valid sizes).
            TypeError: An ``output_size`` whose entries are not ints.
        """
        self._check_input(x, "N", self.in_channels, *self._axes)
        out_pad = self._op if output_size is None else self._output_padding(x.shape, output_size)
        geo = self._geometry(x.shape, out_pad)  # geo.size: y's spatial size, geo.out: x's
        fits(self, geo.xp_shape, self.dtype, x.shape, "padded output")
        x_mat = np.empty((self.in_channels, geo.n, *geo.out), self.dtype)  # new: kept
        copy(x_mat, x.swapaxes(0, 1))
        x_mat = x_mat.reshape(self.in_channels, geo.cols_shape[1])  # not -1: N may be 0
        # cols_g = W_g.T @ x_g, (g, C_out/g·prod(k), N·prod(H)): row (c, *offset) of the
        # stack is what input pixel (n, *i) adds to y[n, c] at i·s + offset·d - p
        cols = np.matmul(self._w_groups().transpose(0, 2, 1), self._by_group(x_mat))
        yp = np.empty(geo.xp_shape, self.dtype)
        col2im(cols.reshape(geo.cols_shape), geo, yp)  # overlapping stamps add up
        y = np.empty((geo.n, self.out_channels, *geo.size), self.dtype)
        if self.bias:
            np.add(geo.image(yp).swapaxes(0, 1), self.params["b"].reshape(-1, *(1,) * self._d),
                   out=y)
        else:
            copy(y, geo.image(yp).swapaxes(0, 1))
        if training:
            self._x_mat, self._x_shape, self._out_pad = x_mat, x.shape, out_pad
        return y

    def __call__(self, x: np.ndarray, output_size: Sequence[int] | None = None, *,
                 training: bool = False) -> np.ndarray:
        """``layer(x, output_size)``, as a PyTorch module is called: see :meth:`forward`."""
        return self.forward(x, output_size, training=training)

    def _output_padding(self, x_shape: tuple[int, ...], output_size: Any) -> tuple[int, ...]:
        """The output_padding that gives ``output_size``, as PyTorch's ``_output_padding``."""
        d, who = self._d, repr(self)
        size = (tuple(output_size) if isinstance(output_size, Sequence)
                or (isinstance(output_size, np.ndarray) and output_size.ndim) else ())
        size = size[2:] if len(size) == d + 2 else size  # torch.Size is a tuple
        if len(size) != d:
            ints = "one int" if d == 1 else f"{d} ints"
            raise ValueError(f"{who}: expected output_size as {ints} (the spatial size) or "
                             f"{d + 2} (a full shape), got {output_size!r}")
        if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) for n in size):
            raise TypeError(f"{who}: expected output_size as ints, got {output_size!r}")
        size = tuple(int(n) for n in size)
        low = tuple((n - 1) * s - 2 * p + dl * (k - 1) + 1 for n, k, s, p, dl
                    in zip(x_shape[2:], self._k, self._s, self._p, self._dil, strict=True))
        high = tuple(lo + s - 1 for lo, s in zip(low, self._s, strict=True))
        if any(not lo <= n <= hi for n, lo, hi in zip(size, low, high, strict=True)):
            raise ValueError(f"{who}: requested an output size of {size}, but valid sizes "
                             f"range from {low} to {high} (for an input of spatial size "
                             f"{tuple(x_shape[2:])}; output_padding up to stride - 1, as "
                             f"in PyTorch)")
        return tuple(n - lo for n, lo in zip(size, low, strict=True))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cols, geo = self._param_grads(dy)
        dx_mat = np.matmul(self._w_groups(), cols)  # dx_g = W_g @ cols_g: the conv of dy
        dx = np.empty((geo.n, self.in_channels, *geo.out), self.dtype)  # new: the caller's
        copy(dx, dx_mat.reshape(self.in_channels, geo.n, *geo.out).swapaxes(0, 1))
        return dx

    def backward_params(self, dy: np.ndarray) -> None:
        self._param_grads(dy)

    def _param_grads(self, dy: np.ndarray) -> tuple[np.ndarray, _Geometry]:
        """Fill ``dW`` and ``db``; return ``dy``'s columns as the groups' stacked blocks,
        ``(g, C_out/g·prod(k), N·prod(H))``, and the geometry."""
        x_mat, x_shape, out_pad = self._pop("_x_mat", "_x_shape", "_out_pad")
        geo = self._geometry(x_shape, out_pad)
        self._check_dy(dy, (geo.n, self.out_channels, *geo.size))
        dyp = np.zeros(geo.xp_shape, self.dtype)  # dy, zero-padded as y was cropped
        copy(geo.image(dyp), dy.swapaxes(0, 1))
        cols = np.empty(geo.cols_shape, self.dtype)
        im2col(dyp, geo, cols)  # every window of dy: what each input pixel stamped
        cols = self._by_group(cols)
        np.matmul(self._by_group(x_mat), cols.transpose(0, 2, 1),  # dW_g = x_g @ cols_g.T
                  out=self._by_group(self.grads["W"].reshape(self.in_channels, -1)))
        if self.bias:
            channel_sum(dy, out=self.grads["b"])
        return cols, geo

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        geo, g = self._geometry(tuple(x_shape)), self.groups
        c_in, (kc, nl) = self.in_channels // g, geo.cols_shape
        kc //= g  # one product per group: cols_g = W_g.T @ x_g, dW_g = x_g @ cols_g.T
        shapes = [(kc, c_in, nl)] * g + [(c_in, nl, kc)] * g
        return shapes + [(c_in, kc, nl)] * g if input_grad else shapes  # dx_g = W_g @ cols_g

    def _w_groups(self) -> np.ndarray:
        """``W`` as the groups' stacked matrices, ``(g, C_in/g, C_out/g·prod(k))`` (a view)."""
        return self._by_group(self.params["W"].reshape(self.in_channels, -1))

    def _by_group(self, a: np.ndarray) -> np.ndarray:
        """The rows of matrix ``a`` as the groups' stacked blocks, ``(g, rows/g, columns)``."""
        return a.reshape(self.groups, a.shape[0] // self.groups, a.shape[1])
