"""Stride-1 convolution over images packed back to back, neighbours sharing their padding.

The im2col route lays the columns out over the outputs alone: every copy moves runs one
output row long, and the backward needs ``dy`` twice (as a matrix for ``dW``, spread out
for the ``dx`` products of :func:`._im2col.col2im_products`). Here the zero-padded input
is one flat row per channel, ``xp (C, L)``, with the images one after another, each axis
``pitch = max(size + max(before, after), out)`` long: a row's zeros after it are the next
row's zeros before it, and an image's last zero rows are the next image's first. Output
``(n, *i)`` sits at ``q = n·batch + Σ i·row`` (``batch = prod(pitch)``, ``row`` the flat
stride of each axis), and kernel offset ``o`` reads ``xp[:, q + Σ o·d·row]`` (``d``: the
dilation). Where that grid has too much junk (below), the batch goes inside the last axis
instead, ``(*pitch[:-1], N, pitch[-1])`` (``batch = pitch[-1]``, see :class:`_Layout`).
So, with ``span`` the last output's ``q`` plus one, ``K = C_in·prod(kernel)``::

    cols[(c, o), q]  = xp[c, q + shift(o)]             one contiguous copy per (c, o)
    Forward:   y_full = W|b @ cols                     (C_out, span); y = its outputs
    Inference: y_full = b + Σ_o W[:, :, o] @ xp[:, shift(o) : shift(o) + span]  (no cols)
    Backward:  dW|db  = (cols @ dyp[:, :span].T).T     dyp: dy at the outputs, 0 between
               dxp[:, shift(o) : shift(o) + span] += W[:, :, o].T @ dyp[:, :span]
               dx     = the images inside dxp

The positions between the outputs (``pitch - out`` per axis, the junk) cost their share
of every product: 14x14 images padded by 1 lie 15x15 apart, 1.15x the outputs, where a
padded image of its own would be 16x16 (1.31x); 8x8 ones 9x9 apart are 1.26x, and with
the batch inside the rows 1.13x. A read outside the image lands on a zero (a row's
overrun goes into the gap after it or, carried, into the next row's gap before it: in
either grid, a digit that overflows its axis is left below that axis' first input).
Junk outputs are computed and dropped; in the backward they are zeros of ``dyp``, which
add exact zeros where ``x`` (for ``dW``) and ``W`` (for ``dx``) are finite; where
not, the gradients are formed from the real outputs alone (:func:`_exact_dw`,
:func:`_exact_dx`), as the im2col route forms them. Conv2D(32, 64, 3, padding=1) on
64x32x14x14, float32, forward + backward with other layers' work in between (2-core AMD
EPYC, medians of 8 interleaved rounds): 9.2 ms by im2col, 8.0 ms here (see :func:`usable`).
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import _openblas
from .._copy import copy
from ..backend import all_finite
from ._spatial import offsets

# The most positions per output (outputs plus junk) this route takes: its products grow
# by that much, and from ~1.25 it stops paying (see usable()).
_MAX_JUNK = 1.2
_KEPT: dict[tuple, _Layout] = {}


class _Layout:
    """Where the images, outputs and kernel offsets of one input geometry lie.

    The grid is ``(N, *pitch)`` (image after image), or with ``inner`` ``(*pitch[:-1],
    N, pitch[-1])``: the batch inside the last axis, so that only that axis' zeros lie
    between outputs (the other axes' are shared by the whole batch). The copies into and
    out of that grid cross the images at every row, so it is taken only where the first
    would not be (small maps: 8x8 padded by 1 is 1.26 positions per output image after
    image, 1.13 inside).
    """

    def __init__(self, geo: Any, before: tuple[int, ...], after: tuple[int, ...],
                 inner: bool) -> None:
        self.n, self.c, self.size, self.out = geo.n, geo.c, geo.size, geo.out
        self.pitch = tuple(max(s + max(b, a), o) for s, b, a, o
                           in zip(self.size, before, after, self.out, strict=True))
        p, d, n = self.pitch, len(self.pitch), self.n
        self.inner = inner and d > 1
        self.grid = (*p[:-1], n, p[-1]) if self.inner else (n, *p)
        self.row = tuple(prod(self.grid[i + 1:]) if self.inner and i < d - 1 else prod(p[i + 1:])
                         for i in range(d))  # the flat distance along each axis
        self.batch = p[-1] if self.inner else prod(p)  # flat distance between images
        self.lead = sum(b * r for b, r in zip(before, self.row, strict=True))
        self.span = (n - 1) * self.batch + 1 + sum(
            (o - 1) * r for o, r in zip(self.out, self.row, strict=True))
        self.taps = tuple(d * r for d, r in zip(geo.dilation, self.row, strict=True))
        self.shifts = [sum(o * t for o, t in zip(off, self.taps, strict=True))
                       for off in offsets(geo.kernel)]
        self.kernel = geo.kernel
        self.length = max(self.lead + prod(self.grid), self.span + self.shifts[-1])
        self.junk = self.span / (n * prod(self.out))

    @classmethod
    def of(cls, geo: Any) -> _Layout:
        before = tuple(sl.start for sl in geo.interior[2:])
        after = tuple(p - s - b for p, s, b in zip(geo.padded, geo.size, before, strict=True))
        key = (geo.n, geo.c, geo.size, geo.out, geo.kernel, geo.dilation, before, after,
               _MAX_JUNK)
        lay = _KEPT.get(key)  # one read: another thread may clear it meanwhile
        if lay is None:
            if len(_KEPT) > 64:
                _KEPT.clear()
            lay = cls(geo, before, after, inner=False)
            if lay.junk > _MAX_JUNK:
                lay = cls(geo, before, after, inner=True)
            _KEPT[key] = lay
        return lay

    def image(self, buf: np.ndarray) -> np.ndarray:
        """The images inside a ``(C, length)`` buffer: a ``(C, N, *size)`` view."""
        grid = buf[:, self.lead:self.lead + prod(self.grid)].reshape(buf.shape[0], *self.grid)
        if not self.inner:
            return grid[(slice(None), slice(None), *(slice(0, s) for s in self.size))]
        grid = grid[(slice(None), *(slice(0, s) for s in self.size[:-1]), slice(None),
                     slice(0, self.size[-1]))]
        return np.moveaxis(grid, len(self.size), 1)

    def outputs(self, buf: np.ndarray) -> np.ndarray:
        """The outputs of a ``(rows, >= span)`` array laid out by ``q``: ``(rows, N, *out)``."""
        item = buf.itemsize
        return as_strided(buf, (buf.shape[0], self.n, *self.out),
                          (buf.strides[0], self.batch * item, *(r * item for r in self.row)),
                          writeable=buf.flags.writeable)


def usable(geo: Any) -> bool:
    """Whether a stride-1 layer with one group takes this route on geometry ``geo``: a
    batch, and at most ``_MAX_JUNK`` positions per output.

    Forward + backward, 3x3 kernels, float32 unless said, 2-core AMD EPYC, other layers'
    work between the calls, medians of 8 interleaved rounds, im2col vs packed (ms), by
    positions per output: 32x16x28x28 -> 32, padding 1 (1.07) 7.6 vs 7.0; 64x32x14x14
    -> 64 (1.15) 9.2 vs 8.0, in float64 18.0 vs 17.6; 32x32x32x32 -> 64, 5x5, padding 2
    (1.13) 57.1 vs 53.6; but, forced image after image, 64x64x8x8 -> 64 (1.26) 7.0 vs
    6.8, 32x64x7x7 -> 128 (1.30) 4.7 vs 4.8, 32x32x16x16 -> 64 unpadded (1.30) 5.7 vs
    6.7. With the batch inside the rows (taken only past 1.2 image after image; its
    copies cross the images): 64x64x8x8 -> 128 (1.13) 11.0 vs 10.1, 32x64x7x7 -> 128
    (1.14) 5.0 vs 4.8, but 64x32x14x14 -> 64 (1.07) 8.4-8.9 vs 8.4-9.2 image after image."""
    if not (geo.unit_stride and geo.n and prod(geo.out)):
        return False
    return _Layout.of(geo).junk <= _MAX_JUNK


def forward(layer: Any, x: np.ndarray, geo: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(y, cols)``: the output and the columns ``(K [+ 1], span)`` the backward needs
    (a new array: an inference call before the backward must not change it)."""
    lay = _Layout.of(geo)
    # the zeros depend on the grid and on which axis holds the batch: both in the key
    xp = layer._workspace("xp", (geo.c, lay.length), ("packed", lay.inner, lay.grid))
    copy(lay.image(xp), x.swapaxes(0, 1))  # the zeros between are never written
    k, item = geo.cols_shape[0], xp.itemsize
    cols = np.empty((k + layer.bias, lay.span), layer.dtype)
    windows = as_strided(xp, (geo.c, *lay.kernel, lay.span),
                         (xp.strides[0], *(t * item for t in lay.taps), item), writeable=False)
    copy(cols[:k].reshape(geo.c, *lay.kernel, lay.span), windows)
    if layer.bias:  # a row of ones: the bias is one more column of W (see _Conv.forward)
        cols[k] = 1
    y_full = layer._w_aug() @ cols
    y = np.empty((geo.n, layer.out_channels, *geo.out), layer.dtype)
    copy(y, lay.outputs(y_full).swapaxes(0, 1))
    return y, cols


def infer(layer: Any, x: np.ndarray, geo: Any) -> np.ndarray | None:
    """An inference forward without the columns (nothing keeps them): one product per
    kernel offset straight from ``xp``, ``y_full += W[:, :, o] @ xp[:, shift(o):][:, :span]``
    (``?gemm`` with ``beta = 1`` on a view; None where NumPy's BLAS is not OpenBLAS).
    It skips im2col's copy of ``K·span`` values: Conv2D(32, 64, 3, padding=1) on
    64x32x14x14, float32, 7.2-8.8 -> 4.0-6.4 ms (2-core AMD EPYC, noisy)."""
    add = _openblas.matmul_add(layer.dtype)
    if add is None:
        return None
    lay, c_out = _Layout.of(geo), layer.out_channels
    xp = layer._workspace("xp", (geo.c, lay.length), ("packed", lay.inner, lay.grid))
    copy(lay.image(xp), x.swapaxes(0, 1))  # the zeros between are never written
    w_o = np.ascontiguousarray(np.moveaxis(layer.params["W"].reshape(c_out, geo.c, -1), 2, 0))
    y_full = np.empty((c_out, lay.span), layer.dtype)
    y_full[...] = layer.params["b"][:, None] if layer.bias else 0
    for w, shift in zip(w_o, lay.shifts, strict=True):
        add(w, xp[:, shift:shift + lay.span], y_full)
    y = np.empty((geo.n, c_out, *geo.out), layer.dtype)
    copy(y, lay.outputs(y_full).swapaxes(0, 1))
    return y


def backward(layer: Any, dy: np.ndarray, cols: np.ndarray, geo: Any, input_grad: bool
             ) -> np.ndarray | None:
    """Fill ``dW`` and ``db``; return ``dx`` if ``input_grad``."""
    lay, c_out = _Layout.of(geo), layer.out_channels
    k = geo.cols_shape[0]
    dyp = layer._workspace("dy", (c_out, prod(lay.grid)),
                           ("packed", lay.inner, lay.grid, geo.out))
    copy(lay.outputs(dyp), dy.swapaxes(0, 1))  # the junk positions stay zero
    source = dyp[:, :lay.span]
    dw_t = layer._workspace("dW|db.T", (cols.shape[0], c_out))
    np.matmul(cols, source.T, out=dw_t)
    if not all_finite(dw_t):  # an inf or NaN of x met a junk zero: the real outputs alone
        _exact_dw(layer, dy, cols, geo, lay, dw_t)
    np.copyto(layer.grads["W"].reshape(c_out, -1), dw_t[:k].T)
    if layer.bias:
        np.copyto(layer.grads["b"], dw_t[k])
    if not input_grad:
        return None
    dxp = layer._workspace("dxp", (geo.c, lay.length))
    dxp.fill(0)
    w_t = layer._w_t().reshape(-1, geo.c, c_out)  # W[:, :, o].T per offset
    if all_finite(w_t):
        add = _openblas.matmul_add(layer.dtype) or _matmul_add
        for w_o, shift in zip(w_t, lay.shifts, strict=True):
            add(w_o, source, dxp[:, shift:shift + lay.span])
    else:
        _exact_dx(layer, dy, geo, lay, dxp)
    dx = np.empty((geo.n, geo.c, *geo.size), layer.dtype)  # new: the caller may keep it
    copy(dx, lay.image(dxp).swapaxes(0, 1))
    return dx


def _matmul_add(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out += a @ b`` where NumPy's BLAS is not OpenBLAS."""
    np.add(out, a @ b, out=out)


def _exact_dw(layer: Any, dy: np.ndarray, cols: np.ndarray, geo: Any, lay: _Layout,
              dw_t: np.ndarray) -> None:
    """``dW|db.T`` from the outputs' columns alone (no junk column)."""
    real = np.empty((cols.shape[0], lay.n, *lay.out), cols.dtype)
    copy(real, lay.outputs(cols))
    np.matmul(real.reshape(cols.shape[0], -1), layer._dy_mat(dy, geo).T, out=dw_t)


def _exact_dx(layer: Any, dy: np.ndarray, geo: Any, lay: _Layout, dxp: np.ndarray
              ) -> None:
    """``dxp`` (zeros) += every output's ``W.T @ dy`` at its windows, outputs alone."""
    dcols = layer._w_mat().T @ layer._dy_mat(dy, geo)
    dcols = dcols.reshape(lay.c, len(lay.shifts), lay.n, *lay.out)
    for o, shift in enumerate(lay.shifts):
        target = lay.outputs(dxp[:, shift:])  # distinct positions: += is exact
        np.add(target, dcols[:, o], out=target)


def gemm_shapes(layer: Any, geo: Any, input_grad: bool) -> list[tuple[int, int, int]]:
    """The products as run, junk columns included: ``W|b @ cols``, ``cols @ dyp.T`` and
    one ``W[:, :, o].T @ dyp`` per kernel offset."""
    lay, c_out, kb = _Layout.of(geo), layer.out_channels, geo.cols_shape[0] + layer.bias
    shapes = [(c_out, kb, lay.span), (kb, lay.span, c_out)]
    return shapes + [(geo.c, c_out, lay.span)] * len(lay.shifts) if input_grad else shapes
