"""Grouped convolution (``groups > 1``) without im2col: per kernel offset, one product
per group, or for a depthwise layer one multiply-add per channel (:mod:`._depthwise`).

With groups the im2col products are thin (``C_out/g`` rows, ``K/g`` deep), so the
``prod(kernel)``-fold copies into ``cols`` and back took more time than the products:
Conv2D(64, 64, 3, padding=1, groups=8) on 32x64x28x28 spent 15 ms in im2col, 31 in
col2im and ~25 in the products per step. Here the input is split once into the
``prod(stride)`` phase planes of :func:`._im2col.col2im_phases` (stride 1: one plane,
the zero-padded input itself), ``xq (phases, C_in, N·L)`` with ``L =
prod(ceil(padded / stride))`` per image: kernel offset ``o`` reads plane ``φ(o)`` at a
flat shift ``t(o)``, and output ``(n, i)`` sits at ``n·L + Σ i·row`` in every plane's
layout. So for group ``j`` (its blocks of channels) and every offset ``o``::

    Forward:   yq_j[:, :span]           += W_j[:, :, o] @ xq[φ(o)]_j[:, t(o) : t(o) + span]
    Backward:  dW_j[:, :, o]             = dyq_j[:, :span] @ xq[φ(o)]_j[:, t(o) : t(o) + span].T
                                          (by blocks of the span, see _weight_grads)
               dxq[φ(o)]_j[:, t(o) : ...] += W_j[:, :, o].T @ dyq_j[:, :span]
               db                        = Σ dy

``dyq`` is ``dy`` in that layout with zeros between; the junk outputs (positions past
an image's last output) are dropped from ``y``, and ``dxq``'s planes are interleaved
back into ``dx``. The products are added in place (BLAS ``out += a @ b``, or a scratch
product and one add when small, see :func:`_add_products`), so nothing
``prod(kernel)`` times the input is written. Forward + backward, 3x3, padding 1,
float32, im2col route vs this one (interleaved, one thread, CPU ms; 2-core AMD EPYC):
32x64x28x28 groups=8 78 vs 58, stride 2 28 vs 20; 32x128x14x14 groups=8 44 vs 35;
32x256x7x7 groups=16 28 vs 27; depthwise see :mod:`._depthwise`.

The junk positions multiply too: their zeros in ``dyq`` times ``W`` (for ``dx``) or
``x`` (for ``dW``) add exact zeros when those are finite; otherwise the layer takes
the im2col route for what they touch (:func:`backward` says when), whose sums hold
only the windows' products. The cache is ``xq``; the forward's sums are the windows'
own (with the padding's zeros, as im2col's).
"""
from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .. import _openblas
from .._copy import copy
from ..backend import all_finite
from . import _depthwise
from ._im2col import phase_cuts, phase_taps
from ._sums import channel_sum

_KEPT: dict[tuple, Any] = {}  # _Planes by input geometry

# Below this many N·prod(out)·C_in, a grouped layer that is not depthwise keeps im2col:
# a few dozen NumPy calls here against a handful there. Forward + backward, 3x3, stride
# 1, float32, one thread, CPU ms, im2col vs this route: 8x32x16x16 g=4 (65 K) 2.8 vs
# 3.1, 4x32x8x8 g=8 (8 K) 0.6 vs 0.8; 8x64x16x16 g=8 (131 K) 5.6 vs 5.7; 16x32x16x16
# g=4 (131 K) 5.7 vs 4.7, 32x32x16x16 g=4 11.0 vs 7.8. Depthwise layers gain at every
# size (8x32x16x16 2.3 vs 2.1, 4x32x8x8 0.7 vs 0.6).
_SMALL = 1 << 17

# Multiply-adds from which a group's product is worth its own BLAS call (see _add_products).
_PER_CALL = 1 << 18

# Bytes of dy and x rows per block of the span in the dW products (see _weight_grads).
_BLOCK_BYTES = 1 << 21


def usable(layer: Any, geo: Any) -> bool:
    """Whether ``layer`` takes this route for an input of geometry ``geo``: a depthwise
    layer always, another grouped one from ``_SMALL`` input entries (it falls back to
    im2col for non-finite values, see :func:`backward`)."""
    return layer.groups > 1 and (_depthwise_layer(layer)
                                 or geo.n * prod(geo.out) * layer.in_channels >= _SMALL)


def _depthwise_layer(layer: Any) -> bool:
    return layer.groups == layer.in_channels == layer.out_channels


class _Planes:
    """Where every kernel offset reads in the phase planes of one input shape."""

    def __init__(self, geo: Any, groups: int) -> None:
        self.geo, self.g = geo, groups
        self.q, self.len = geo.phases, prod(geo.phases)
        self.count, self.span = prod(geo.stride), geo.phase_span
        self.taps = phase_taps(geo)  # (plane, shift) per kernel offset, row-major
        self.cuts = phase_cuts(geo)  # (plane, into, take) per phase

    @staticmethod
    def of(layer: Any, geo: Any) -> _Planes:
        """The planes of ``geo`` for ``layer``'s groups, made once per input shape and
        kept (a few dozen; a step's forward and backward share them)."""
        key = (geo.n, geo.c, geo.size, geo.kernel, geo.stride, geo.dilation, geo.padded,
               geo.out, tuple(sl.start for sl in geo.interior[2:]), layer.groups)
        planes = _KEPT.get(key)
        if planes is None:
            if len(_KEPT) >= 32:
                _KEPT.clear()
            planes = _KEPT[key] = _Planes(geo, layer.groups)
        return planes

    def grouped(self, a: np.ndarray, shift: int) -> np.ndarray:
        """Rows ``a (C, N·L)`` from ``shift`` on, ``span`` long, as ``(g, C/g, span)``."""
        return a[:, shift:shift + self.span].reshape(self.g, a.shape[0] // self.g, self.span)

    def outputs(self, a: np.ndarray) -> np.ndarray:
        """The outputs in rows ``a (C, N·L)``: a ``(C, N, *out)`` view."""
        cut = (slice(None), slice(None), *(slice(0, o) for o in self.geo.out))
        return a.reshape(a.shape[0], self.geo.n, *self.q)[cut]


def forward(layer: Any, x: np.ndarray, geo: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(y, xq)``: the output and the phase planes ``(phases, C_in, N·L)`` the backward
    needs (a new array: an inference call before the backward must not change it)."""
    pl, (n, c_in), c_out, g = _Planes.of(layer, geo), x.shape[:2], layer.out_channels, layer.groups
    xq = np.zeros((pl.count, c_in, n * pl.len), layer.dtype)
    xt = x.swapaxes(0, 1)
    for plane, into, take in pl.cuts:
        copy(xq[plane].reshape(c_in, n, *pl.q)[take], xt[into])
    yq = layer._workspace("yq", (c_out, n * pl.len))
    w, span = _by_offset(layer), pl.span  # (offsets, C_out, C_in/g)
    if _depthwise_layer(layer):
        _depthwise.forward(w[..., 0].T, xq, pl.taps, span, yq)
    elif span:  # offset 0 writes, the others add
        (plane, shift), co, ci = pl.taps[0], c_out // g, c_in // g
        out = yq[:, :span].reshape(g, co, span)
        np.matmul(w[0].reshape(g, co, ci), pl.grouped(xq[plane], shift), out=out)
        _add_products(layer, w[1:].reshape(-1, g, co, ci),
                      [(pl.grouped(xq[plane], shift), out) for plane, shift in pl.taps[1:]])
    y = np.empty((n, c_out, *geo.out), layer.dtype)
    cells = pl.outputs(yq).swapaxes(0, 1)
    if layer.bias:  # + b in the copy out
        np.add(cells, layer.params["b"].reshape(-1, *(1,) * len(geo.out)), out=y)
    else:
        copy(y, cells)
    return y, xq


def _by_offset(layer: Any) -> np.ndarray:
    """``W[:, :, *o]`` for every kernel offset ``o``: ``(offsets, C_out, C_in/g)``."""
    w = layer.params["W"]
    out = np.empty((prod(w.shape[2:]), *w.shape[:2]), w.dtype)  # strides as made, for BLAS
    np.copyto(out, np.moveaxis(w.reshape(*w.shape[:2], -1), -1, 0))
    return out


def backward(layer: Any, dy: np.ndarray, xq: np.ndarray, geo: Any, input_grad: bool
             ) -> tuple[bool, np.ndarray | None]:
    """Fill ``dW`` and ``db`` and return ``(True, dx or None)``; ``(False, None)`` when
    ``dW`` or (for ``dx``) ``W`` is not all finite: the junk positions' zeros would
    meet an inf or NaN, and the caller's im2col route redoes the gradients."""
    if input_grad and not all_finite(layer.params["W"]):
        return False, None
    pl, n, c_in, span = _Planes.of(layer, geo), geo.n, geo.c, geo.phase_span
    c_out, g = layer.out_channels, layer.groups
    co, ci = c_out // g, c_in // g
    dyq = layer._workspace("dy planes", (c_out, n * pl.len), (pl.q, geo.out))  # 0 between
    copy(pl.outputs(dyq), dy.swapaxes(0, 1))
    dw = np.empty((len(pl.taps), c_out, ci), layer.dtype)
    dxq = np.zeros((pl.count, c_in, n * pl.len), layer.dtype) if input_grad else None
    if _depthwise_layer(layer):
        dw_t = np.empty((c_out, len(pl.taps)), layer.dtype)
        _depthwise.backward(_by_offset(layer)[..., 0].T, xq, dyq, pl.taps, span, dw_t, dxq)
        np.copyto(dw[..., 0], dw_t.T)
    else:
        src = dyq[:, :span].reshape(g, co, span)
        _weight_grads(pl, src, xq, dw.reshape(-1, g, co, ci))
    if not all_finite(dw):
        return False, None
    np.copyto(layer.grads["W"].reshape(c_out, ci, -1), np.moveaxis(dw, 0, -1))
    if layer.bias:
        channel_sum(dy, out=layer.grads["b"])
    if dxq is None:
        return True, None
    if not _depthwise_layer(layer) and span:
        w_t = np.empty((len(pl.taps), g, ci, co), layer.dtype)  # W_j[:, :, o].T
        np.copyto(w_t, _by_offset(layer).reshape(-1, g, co, ci).transpose(0, 1, 3, 2))
        _add_products(layer, w_t, [(src, pl.grouped(dxq[plane], shift))
                                   for plane, shift in pl.taps])
    return True, _merge(pl, dxq, np.empty((n, c_in, *geo.size), layer.dtype))


def _weight_grads(pl: _Planes, src: np.ndarray, xq: np.ndarray, dw: np.ndarray) -> None:
    """``dw (offsets, g, C_out/g, C_in/g)`` (written): for offset ``o``, ``src (g, C_out/g,
    span)`` times ``xq[φ(o)]``'s rows from ``t(o)`` on, transposed, summed over blocks of
    the span (:func:`_blocks`): a block's rows are read from memory once for all the
    offsets, then from cache. Over the whole span each product (``C_out/g x C_in/g``
    summed over ``K = span``) streamed ``(C_out + C_in)·span`` entries for ``C_out·C_in/g``
    results, once per offset. The dW products of one step, 3x3, padding 1, float32, one
    thread, CPU ms, whole span vs blocks of 1,024 / 2,048 / 4,096 columns: 32x64x32x32
    g=8 (span 36,922) 24 vs 5.3 / 5.1 / 4.8; 16x128x32x32 g=8 26 vs 12 / 8.2 / 20;
    32x256x16x16 g=16 26 vs 9.2 / 9.2 / 20 (2 MiB: 4,096, 2,048 and 1,024 columns). The
    whole step of the first, forward + backward, 77 -> 47 ms (one thread), 43 -> 25 (two).
    """
    g, co, span = src.shape
    ci = dw.shape[-1]
    starts = _blocks(g * (co + ci), span, src.itemsize)
    if not span:  # N = 0
        dw[...] = 0
    tmp = np.empty(dw.shape[1:], dw.dtype)
    for start in starts:
        stop = min(start + starts.step, span)
        a = src[..., start:stop]
        for dw_o, (plane, shift) in zip(dw, pl.taps, strict=True):
            b = xq[plane][:, shift + start:shift + stop].reshape(g, ci, stop - start)
            if start:
                dw_o += np.matmul(a, b.swapaxes(1, 2), out=tmp)
            else:
                np.matmul(a, b.swapaxes(1, 2), out=dw_o)


def _blocks(rows: int, span: int, itemsize: int) -> range:
    """The first column of each block of the span: ``_BLOCK_BYTES`` of ``rows`` rows."""
    return range(0, span, max(1, _BLOCK_BYTES // (rows * itemsize)))


def _add_products(layer: Any, a: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]
                  ) -> None:
    """``out += a[i] @ b`` for each ``(b, out)`` of ``pairs``, stacked by group: ``a
    (len(pairs), g, m, k)``, ``b (g, k, span)``, ``out (g, m, span)``.

    Large products are added in place by BLAS (``beta = 1``), one call per group; small
    ones go through a scratch product and one add, the ~10 us of each call weighing
    more than the pass (forward, 3x3, stride 1, float32, one thread, CPU ms by
    ``C_out/g · C_in/g · span``, per call vs stacked: 8x32x16x16 g=4 (163 K) 1.07 vs
    0.86; 32x128x14x14 g=32 (130 K) 6.4 vs 6.1, g=64 (33 K) 9.4 vs 5.5; 32x256x7x7
    g=16 (658 K) 5.3 vs 6.7; 32x64x28x28 g=8 (1.8 M) 11.1 vs 19.4).
    """
    if not pairs:
        return
    g, m, k = a.shape[1:]
    span = pairs[0][0].shape[-1]
    add = _openblas.matmul_add(layer.dtype)
    if add is not None and m * k * span >= _PER_CALL:
        for a_i, (b, out) in zip(a, pairs, strict=True):
            for j in range(g):
                add(a_i[j], b[j], out[j])
        return
    tmp = np.empty((g, m, span), layer.dtype)
    for a_i, (b, out) in zip(a, pairs, strict=True):
        out += np.matmul(a_i, b, out=tmp)


def _merge(pl: _Planes, xq: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out (N, C, *size)`` (written, returned): the unpadded entries of planes ``xq``."""
    c, n, into_t = xq.shape[1], out.shape[0], out.swapaxes(0, 1)
    for plane, into, take in pl.cuts:
        copy(into_t[into], xq[plane].reshape(c, n, *pl.q)[take])
    return out


def unpadded(layer: Any, xq: np.ndarray, geo: Any) -> np.ndarray:
    """The input held in the phase planes ``xq``, channels first: ``(C, N, *size)``."""
    out = np.empty((geo.n, geo.c, *geo.size), layer.dtype)
    return _merge(_Planes.of(layer, geo), xq, out).swapaxes(0, 1)


def gemm_shapes(layer: Any, geo: Any, input_grad: bool) -> list[tuple[int, int, int]]:
    """The products of one step, ``(m, k, n)``: per kernel offset, one per group for
    ``y``, ``dW`` (per block of the span, see :func:`_weight_grads`) and (``input_grad``)
    ``dx``; a depthwise layer's are per channel dot products for ``dW`` (its ``y`` and
    ``dx`` are elementwise)."""
    g, span, taps = layer.groups, geo.phase_span, prod(geo.kernel)
    co, ci = layer.out_channels // g, layer.in_channels // g
    if _depthwise_layer(layer):
        return [(1, span, 1)] * (g * taps)
    starts = _blocks(g * (co + ci), span, np.dtype(layer.dtype).itemsize)
    dw = [(co, min(s + starts.step, span) - s, ci) for s in starts]
    shapes = [(co, ci, span)] * (g * taps) + dw * (g * taps)
    return shapes + [(ci, co, span)] * (g * taps) if input_grad else shapes
