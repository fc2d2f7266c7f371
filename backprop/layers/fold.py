"""Unfold and Fold: sliding blocks to columns and back, as PyTorch's ``nn.Unfold``/``nn.Fold``.

Unfold is a convolution's im2col as a layer, Fold its adjoint col2im (overlaps summed):
the backward of one is the forward of the other. Both reuse :mod:`._im2col`, in
PyTorch's layout ``(N, C·kh·kw, L)``, rows ordered ``(c, ki, kj)``.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .._copy import copy
from .._validate import fits
from ._im2col import _Geometry, col2im, im2col
from ._spatial import as_tuple, canonical, out_size
from .base import Layer


def unfold(x: np.ndarray, geo: _Geometry) -> np.ndarray:
    """``(N, C, H, W) -> (N, C·kh·kw, L)``: every window of ``x`` as a column."""
    xp = np.zeros(geo.xp_shape, x.dtype)  # the padding must read as zeros
    copy(geo.image(xp), x.swapaxes(0, 1))
    cols = np.empty((geo.n, geo.cols_shape[0], prod(geo.out)), x.dtype)
    im2col(xp, geo, cols)  # writes the sample-major layout directly
    return cols


def fold(cols: np.ndarray, geo: _Geometry) -> np.ndarray:
    """``(N, C·kh·kw, L) -> (N, C, H, W)``, the adjoint of :func:`unfold`: overlaps add."""
    dxp = np.empty(geo.xp_shape, cols.dtype)
    col2im(cols.swapaxes(0, 1).reshape(geo.cols_shape), geo, dxp)  # col2im takes (C·K, N·L)
    return np.ascontiguousarray(geo.image(dxp).swapaxes(0, 1))


class _Blocks(Layer):
    """The kernel, dilation, padding and stride Unfold and Fold share (each a pair)."""

    _set_once = frozenset({  # see Layer._set_once
        "kernel_size", "stride", "padding", "dilation", "output_size"})

    _cache_attrs = ("_geo",)

    def __init__(self, kernel_size: Any, dilation: Any, padding: Any, stride: Any,
                 dtype: Any) -> None:
        super().__init__(dtype=dtype)
        who = type(self).__name__
        self._k = as_tuple(kernel_size, 2, "kernel_size", who)
        self._dil = as_tuple(dilation, 2, "dilation", who)
        self._p = as_tuple(padding, 2, "padding", who, minimum=0)
        self._s = as_tuple(stride, 2, "stride", who)
        self.kernel_size, self.dilation = canonical(self._k), canonical(self._dil)
        self.padding, self.stride = canonical(self._p), canonical(self._s)
        self._geo: _Geometry | None = None

    def _geometry(self, shape: tuple[int, ...]) -> _Geometry:
        """The windows over an image batch ``shape (N, C, H, W)`` (checked: they must fit)."""
        out = out_size(self, shape, self._k, self._s, self._p, dilation=self._dil)
        return _Geometry(shape, self._k, self._s, self._p, out, None, self._dil)


class Unfold(_Blocks):
    """Extract sliding blocks as columns, as PyTorch's ``nn.Unfold`` (im2col).

    ::

        Forward:   y[n, (c·kh + ki)·kw + kj, i·Wo + j]
                       = xp[n, c, i·sh + ki·dh, j·sw + kj·dw]
                   xp: x zero-padded by (ph, pw);  x (N, C, H, W), y (N, C·kh·kw, Ho·Wo)
                   Ho = (H + 2·ph - dh·(kh - 1) - 1) // sh + 1 (Wo likewise)
        Backward:  dx = Fold(dy): each column entry added back where it was read
                   (overlapping windows sum)

    Takes ``(N, C, H, W)`` only (PyTorch also takes an unbatched ``(C, H, W)``).

    Args:
        kernel_size: Block size, an int or a pair.
        dilation: Spacing between a block's taps, an int or a pair (default 1).
        padding: Zeros added on each side, an int or a pair (default 0).
        stride: Step between blocks, an int or a pair (default 1).
        dtype: Input dtype (default float32).

    Raises:
        TypeError: an argument that is not an int or a pair of ints.
        ValueError: kernel_size, dilation or stride < 1, padding < 0; in forward, an
            input of another rank or too small for one block.
    """

    def __init__(self, kernel_size: int | tuple[int, int], dilation: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0, stride: int | tuple[int, int] = 1, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, dilation, padding, stride, dtype)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C", "H", "W")
        geo = self._geometry(x.shape)
        fits(self, geo.xp_shape, x.dtype, x.shape, "padded input")
        fits(self, (geo.n, geo.cols_shape[0], prod(geo.out)), x.dtype, x.shape)
        if training:
            self._geo = geo
        return unfold(x, geo)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        geo = self._pop("_geo")
        self._check_dy(dy, (geo.n, geo.cols_shape[0], prod(geo.out)))
        return fold(dy, geo)


class Fold(_Blocks):
    """Sum columns back into an image, as PyTorch's ``nn.Fold`` (col2im, Unfold's adjoint).

    ::

        Forward:   y = zeros(N, C, H + 2·ph, W + 2·pw)
                   y[n, c, i·sh + ki·dh, j·sw + kj·dw] += x[n, (c·kh + ki)·kw + kj, i·Wo + j]
                   then the padding cut off;  x (N, C·kh·kw, L), y (N, C, H, W)
                   (H, W) = output_size, L = Ho·Wo as for Unfold on (H, W)
        Backward:  dx = Unfold(dy): each entry reads the gradient where it was added

    ``Fold(Unfold(x))`` is ``x`` times how many blocks cover each position. Takes
    ``(N, C·kh·kw, L)`` only (PyTorch also takes an unbatched ``(C·kh·kw, L)``).

    Args:
        output_size: ``(H, W)`` of the image, an int or a pair.
        kernel_size: Block size, an int or a pair.
        dilation: Spacing between a block's taps, an int or a pair (default 1).
        padding: Zeros around the image the blocks were read from (default 0).
        stride: Step between blocks, an int or a pair (default 1).
        dtype: Input dtype (default float32).

    Raises:
        TypeError: an argument that is not an int or a pair of ints.
        ValueError: output_size, kernel_size, dilation or stride < 1, padding < 0, or no
            block fits the padded output; in forward, an input of another rank, rows not a
            multiple of kh·kw, or L not the number of blocks.
    """

    def __init__(self, output_size: int | tuple[int, int], kernel_size: int | tuple[int, int],
                 dilation: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 stride: int | tuple[int, int] = 1, *, dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, dilation, padding, stride, dtype)
        self._size = as_tuple(output_size, 2, "output_size", "Fold")
        self.output_size = canonical(self._size)
        spans = [d * (k - 1) + 1 for k, d in zip(self._k, self._dil, strict=True)]
        if any(n + 2 * p < s for n, p, s in zip(self._size, self._p, spans, strict=True)):
            raise ValueError(f"{self!r}: expected output_size plus padding to hold one block "
                             f"of span {tuple(spans)}, got output_size {output_size!r}")

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C·kh·kw", "L")
        k = prod(self._k)
        geo = self._geometry((x.shape[0], x.shape[1] // k, *self._size))
        if x.shape[1] % k or x.shape[1] == 0 or x.shape[2] != prod(geo.out):
            raise ValueError(f"{self!r}: expected input of shape (N, C·{k}, {prod(geo.out)}) "
                             f"(C·kh·kw rows, C >= 1, {geo.out[0]}·{geo.out[1]} blocks), got "
                             f"{x.shape}")
        if training:
            self._geo = geo
        return fold(x, geo)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        geo = self._pop("_geo")
        self._check_dy(dy, (geo.n, geo.c, *self._size))
        return unfold(dy, geo)
