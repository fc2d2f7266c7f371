"""im2col and col2im: a convolution's receptive fields as the columns of one matrix.

The input is copied, zero-padded and channels-first, into ``xp (C, N, S)``: one flat
row per channel and image, ``S = Hp·Wp + dw·(kw - 1)`` (the padded image, then slack so
that no window runs into the next image). Output ``(i, j)`` at kernel offset
``(ki, kj)`` reads ``xp[c, n, (i·sh + ki·dh)·Wp + j·sw + kj·dw]`` (``dh, dw``: the
dilation, 1 unless asked), so ``cols (C·kh·kw, N·Ho·Wo)`` is one copy from a strided
view of ``xp``, and col2im is one ``+=`` per kernel offset. :class:`_Geometry` knows
where every window lies for one input shape.

(Until 2026-11-30 a stride-1 last axis was computed over the full padded width,
``Wp`` columns per output row with ``Wp - Wo`` junk ones, so that im2col and col2im
moved long contiguous runs. On the 2-core AMD EPYC of ``benchmarks/RESULTS.md`` the
``Wp/Wo`` wider products cost more than the short rows save: Conv2D(32, 64, 3,
padding=1) on 64x32x14x14, forward + backward, 18.1 -> 16.7 ms in float32 and
31.7 -> 28.3 ms in float64 without the junk columns.)
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._copy import copy
from ._spatial import offsets


class _Geometry:
    """Where the windows of one input shape lie in the flat padded buffer ``xp``."""

    def __init__(self, x_shape: tuple[int, ...], kernel: tuple[int, ...],
                 stride: tuple[int, ...], padding: tuple[int, ...], out: tuple[int, ...],
                 extra: tuple[int, ...] | None = None,
                 dilation: tuple[int, ...] | None = None) -> None:
        self.n, self.c, self.size = x_shape[0], x_shape[1], x_shape[2:]
        # an axis with one output never steps: its stride (10**18, say) is read as 1, so
        # no byte stride below overflows (the windows and the phases are the same)
        stride = tuple(1 if o == 1 else s for o, s in zip(out, stride, strict=True))
        self.kernel, self.out, self.stride = kernel, out, stride
        self.dilation = dilation or (1,) * len(kernel)
        extra = extra or (0,) * len(kernel)  # one more zero after: 'same' with even kernels
        self.padded = tuple(s + 2 * p + e
                            for s, p, e in zip(self.size, padding, extra, strict=True))
        slack = self.dilation[-1] * (kernel[-1] - 1)
        self.xp_shape = (self.c, self.n, prod(self.padded) + slack)
        self.cols_shape = (self.c * prod(kernel), self.n * prod(out))
        self.row = tuple(prod(self.padded[i + 1:]) for i in range(len(out)))  # (Wp, 1)
        self.step = tuple(r * s for r, s in zip(self.row, stride, strict=True))  # (sh·Wp, sw)
        # flat distance between neighbouring kernel taps: (dh·Wp, dw)
        self.tap = tuple(r * d for r, d in zip(self.row, self.dilation, strict=True))
        # the output axes as NumPy should iterate them: one (Ho·Wo,) run when Wo·sw = sh·Wp
        self.runs, self.run_steps = _merged(out, self.step)
        self.interior = (slice(None), slice(None),
                         *(slice(p, p + s) for s, p in zip(self.size, padding, strict=True)))
        # 2-D, stride 1 down the rows, several kernel rows: see _by_rows
        self.by_rows = len(out) == 2 and stride[0] == 1 and kernel[0] > 1
        # stride 1: output (n, *i) and the input it reads at kernel offset o are the same
        # flat position in xp's layout, shifted by Σ o·tap (see col2im_products)
        self.unit_stride = all(s == 1 for s in stride)
        last = sum((o - 1) * r for o, r in zip(out, self.row, strict=True))
        self.span = (self.n - 1) * self.xp_shape[2] + last + 1 if self.n else 0
        # strided: the padded input split into prod(stride) phase planes of ceil(padded /
        # stride) per axis, each laid out like dy there (see col2im_phases)
        self.phases = tuple(-(-p // s) for p, s in zip(self.padded, stride, strict=True))
        self.phase_row = tuple(prod(self.phases[i + 1:]) for i in range(len(out)))
        last = sum((o - 1) * r for o, r in zip(out, self.phase_row, strict=True))
        self.phase_span = (self.n - 1) * prod(self.phases) + last + 1 if self.n else 0

    def image(self, xp: np.ndarray) -> np.ndarray:
        """The unpadded input inside ``xp``: a ``(C, N, *S)`` view."""
        padded = xp[..., :prod(self.padded)].reshape(self.c, self.n, *self.padded)
        return padded[self.interior]

    def outputs(self, yp: np.ndarray) -> np.ndarray:
        """The outputs of a stride-1 layer in an array laid out like ``xp``: output
        ``(n, *i)`` at the position of input ``(n, *i)`` of the padded image (stride 1)."""
        padded = yp[..., :prod(self.padded)].reshape(*yp.shape[:2], *self.padded)
        return padded[(slice(None), slice(None), *(slice(0, o) for o in self.out))]

    def windows(self, xp: np.ndarray) -> np.ndarray:
        """Every window of ``xp``: a read-only ``(C, *kernel, N, *runs)`` view."""
        taps = tuple(t * xp.itemsize for t in self.tap)
        return as_strided(xp, (self.c, *self.kernel, self.n, *self.runs),
                          (xp.strides[0], *taps, *self._strides(xp)[1:]), writeable=False)

    def at(self, xp: np.ndarray, offset: tuple[int, ...]) -> np.ndarray:
        """What kernel position ``offset`` reads, one entry per output: ``(C, N, *runs)``.

        A writable view whose entries never overlap (a row's last, ``(Wo - 1)·sw``,
        comes before the next row's first, ``sh·Wp``), so ``+=`` into it is exact.
        """
        return as_strided(xp[..., self.shift(offset):], (self.c, self.n, *self.runs),
                          self._strides(xp))

    def shift(self, offset: tuple[int, ...]) -> int:
        """Flat distance in ``xp`` from a window's first input to kernel ``offset``'s."""
        return sum(o * t for o, t in zip(offset, self.tap, strict=True))

    def _strides(self, xp: np.ndarray) -> tuple[int, ...]:
        return (*xp.strides[:2], *(s * xp.itemsize for s in self.run_steps))


def _merged(shape: tuple[int, ...], steps: tuple[int, ...]
            ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Axes ``shape`` with element ``steps``, adjacent ones that form one even run merged.

    NumPy copies and adds along a merged view markedly faster (measured 25% on col2im).
    """
    shape, steps = list(shape), list(steps)
    for i in reversed(range(len(shape) - 1)):
        if steps[i] == shape[i + 1] * steps[i + 1]:
            shape[i:i + 2], steps[i:i + 2] = [shape[i] * shape[i + 1]], [steps[i + 1]]
    return tuple(shape), tuple(steps)


def im2col(xp: np.ndarray, geo: _Geometry, cols: np.ndarray) -> None:
    """Fill ``cols`` from the padded input ``xp``: ``(C·prod(kernel), N·prod(out))``, or
    sample-major ``(N, C·prod(kernel), prod(out))`` (a view such as ``cols3[:, :K]`` will
    do).

    Row ``(c, *offset)`` of ``cols`` holds input channel ``c`` at kernel position
    ``offset`` for every sample and output position, matching ``W.reshape(C_out, -1)``.
    """
    if _rows_pay(geo, xp):
        _by_rows(xp, geo, cols, adjoint=False)
    else:
        copy(_blocks(cols, geo, geo.runs), geo.windows(xp))


def _blocks(cols: np.ndarray, geo: _Geometry, cells: tuple[int, ...]) -> np.ndarray:
    """``cols`` in either layout as a ``(C, *kernel, N, *cells)`` view (``cells``: the
    output positions, as ``geo.runs`` or one axis)."""
    if cols.ndim == 2:
        return cols.reshape(geo.c, *geo.kernel, geo.n, *cells)
    d = len(geo.kernel)
    per_sample = cols.reshape(geo.n, geo.c, *geo.kernel, *cells)
    if cols.size and not np.may_share_memory(per_sample, cols):  # a copy: writes lost
        raise ValueError(f"im2col: expected columns that split into (N, C, *kernel, "
                         f"*cells) without a copy, got strides {cols.strides}")
    return per_sample.transpose(1, *range(2, 2 + d), 0, *range(2 + d, per_sample.ndim))


def col2im(dcols: np.ndarray, geo: _Geometry, dxp: np.ndarray) -> None:
    """Adjoint of :func:`im2col` (for ``(C·prod(kernel), N·prod(out))`` columns): sum
    every column back into ``dxp`` (overwritten).

    One ``+=`` per kernel offset; overlapping windows accumulate.
    """
    dxp.fill(0)
    if _rows_pay(geo, dxp):
        _by_rows(dxp, geo, dcols, adjoint=True)
        return
    dcols = dcols.reshape(geo.c, *geo.kernel, geo.n, *geo.runs)
    for offset in offsets(geo.kernel):
        target = geo.at(dxp, offset)
        np.add(target, dcols[(slice(None), *offset)], out=target)


def col2im_products(w_t: np.ndarray, dyp: np.ndarray, geo: _Geometry, dxp: np.ndarray,
                    matmul_add: Any) -> None:
    """``col2im(W_mat.T @ dy_mat, geo, dxp)`` for stride 1, without forming ``dcols``.

    ``dyp (C_out, N, S)`` holds ``dy`` laid out like ``xp`` (:meth:`_Geometry.outputs`),
    zero everywhere else. With stride 1, output ``(n, *i)`` sits at flat position ``p``
    and kernel offset ``o`` reads input position ``p + Σ o·tap`` (``tap = (dh·Wp, dw)``),
    so col2im's sum is

        dxp[:, p + Σ o·tap] += W_o.T @ dyp[:, p]      for every offset o, all p at once:

    one product per kernel offset (``w_t[o] = W[:, :, *o].T``, ``(C_in, C_out)``), each
    added by BLAS (``beta = 1``, ``matmul_add(a, b, out)``) straight into its shifted
    column range of ``dxp``. The zeros of ``dyp`` between and after the rows add exact
    zeros. Against the dcols product and col2im: ``Σ o·tap`` more columns, but no
    ``(C_in·kh·kw, N·Ho·Wo)`` array written and read back (Conv2D(32, 64, 3, padding=1)
    on 64x32x14x14: dx 6.5 -> 4.5 ms in float32).
    """
    flat_dy, flat_dx = dyp.reshape(dyp.shape[0], -1), dxp.reshape(geo.c, -1)
    dxp.fill(0)
    if geo.span == 0:
        return
    source = flat_dy[:, :geo.span]
    for w_o, offset in zip(w_t.reshape(-1, *w_t.shape[-2:]), offsets(geo.kernel), strict=True):
        shift = geo.shift(offset)
        matmul_add(w_o, source, flat_dx[:, shift:shift + geo.span])


def col2im_phases(w_t: np.ndarray, dy: np.ndarray, geo: _Geometry, dx: np.ndarray,
                  matmul_add: Any, planes: np.ndarray, dyq: np.ndarray) -> None:
    """``dx`` (``(N, C, *size)``, written) of a strided convolution as one product per
    kernel offset, as :func:`col2im_products` forms it for stride 1.

    Along an axis of stride ``s``, kernel offset ``o`` reads padded input position
    ``i·s + o·d`` (``d``: the dilation) for output ``i``: phase ``(o·d) mod s`` of the
    input (the positions ``≡`` it mod ``s``), at position ``i + (o·d) // s`` in that
    phase. So with ``dy`` laid out in a phase plane's shape (``dyq (C_out, N, L)``,
    ``L = prod(ceil(padded / s))``, zero but at the outputs), every offset adds
    ``W_o.T @ dyq`` (BLAS, ``beta = 1``) into one of the ``prod(stride)`` planes at a
    shift, and the planes are then interleaved into ``dx``. Against the dcols product
    and col2im: no ``(C·prod(kernel), N·prod(out))`` array and no strided scatter-add
    per offset (dx alone, float32, a busy 2-core machine: Conv2D(32, 64, 3, stride=2,
    padding=1) on 64x32x28x28 21.5 -> 13.8 ms; Conv2D(16, 32, 5, stride=2, padding=2) on
    64x16x32x32 26.2 -> 12.6).

    ``planes (prod(stride), C, N·L)`` is scratch; ``dyq`` must hold zeros outside the
    outputs (a kept workspace whose outputs alone are written).
    """
    if geo.n == 0:  # an empty batch: dx is empty too
        return
    c_out, q = dyq.shape[0], geo.phases
    outputs = (slice(None), slice(None), *(slice(0, o) for o in geo.out))
    copy(dyq.reshape(c_out, geo.n, *q)[outputs], dy.swapaxes(0, 1))
    planes.fill(0)
    span = geo.phase_span
    source = dyq.reshape(c_out, -1)[:, :span]
    for w_o, (phase, shift) in zip(w_t.reshape(-1, *w_t.shape[-2:]), phase_taps(geo),
                                   strict=True):
        matmul_add(w_o, source, planes[phase][:, shift:shift + span])
    for phase, into, take in phase_cuts(geo):
        plane = planes[phase].reshape(geo.c, geo.n, *q)
        copy(dx[into], plane[take].swapaxes(0, 1))


def phase_taps(geo: _Geometry) -> list[tuple[int, int]]:
    """``(phase, shift)`` per kernel offset (row-major): along an axis of stride ``s``,
    offset ``o`` (dilated: ``t = o·d``) reads phase ``t mod s`` of the padded input, from
    position ``t // s`` of it on; ``phase`` is the row-major index of the phase over the
    axes and ``shift`` that start in a phase plane flattened with rows ``geo.phase_row``."""
    taps = []
    for offset in offsets(geo.kernel):
        t = [o * d for o, d in zip(offset, geo.dilation, strict=True)]
        phase = int(np.ravel_multi_index([a % s for a, s in zip(t, geo.stride, strict=True)],
                                         geo.stride))
        shift = sum(a // s * r for a, s, r in zip(t, geo.stride, geo.phase_row, strict=True))
        taps.append((phase, shift))
    return taps


def phase_cuts(geo: _Geometry) -> list[tuple[int, tuple[slice, ...], tuple[slice, ...]]]:
    """``(phase, into, take)`` per phase (row-major): ``a[into]`` of an unpadded
    ``(.., *size)`` array lies at ``plane[take]`` of that phase's ``(.., *phases)`` plane."""
    out = []
    starts = [sl.start for sl in geo.interior[2:]]  # the padding before each axis
    for phase in np.ndindex(*geo.stride):
        into, take = [slice(None)] * 2, [slice(None)] * 2
        for a, s, pad, size in zip(phase, geo.stride, starts, geo.size, strict=True):
            first = (a - pad) % s  # the first unpadded position in this phase
            count = len(range(first, size, s))
            into.append(slice(first, None, s))
            take.append(slice((first + pad) // s, (first + pad) // s + count))
        out.append((len(out), tuple(into), tuple(take)))  # np.ndindex is row-major
    return out


def _rows_pay(geo: _Geometry, xp: np.ndarray) -> bool:
    """Whether :func:`_by_rows` is the faster route: output rows of at most 64 bytes.

    It saves a short run per window row and adds a pass over ``shifted``: with 14
    float32 (56 bytes) it wins, with 14 float64 (112 bytes) it loses (Conv2D(32, 64, 3,
    padding=1) on 64x32x14x14 forward + backward: 15.4 -> 14.3 ms in float32, 29.2 ->
    31.2 ms in float64), and with 28 float32 it ties.
    """
    return geo.by_rows and geo.out[-1] * xp.itemsize <= 64


def _by_rows(xp: np.ndarray, geo: _Geometry, cols: np.ndarray, *, adjoint: bool) -> None:
    """im2col (or, with ``adjoint``, col2im adding into ``xp``) one kernel column at a time.

    The direct copy moves ``Wo``-wide rows: ``C·N·Ho`` short runs per kernel offset. With
    stride 1 down the rows, kernel column ``kj`` is first gathered into ``shifted (C, N,
    Hp, Wo)``, the padded image's columns ``kj·dw, kj·dw + sw, ...``; kernel row ``ki`` of
    it is then the contiguous run ``shifted[c, n, ki·dh·Wo : (ki·dh + Ho)·Wo]``, so ``kh`` of the
    ``kh·kw`` copies move whole ``Ho·Wo`` blocks. im2col copies the same values; col2im
    sums each kernel column's ``kh`` terms before adding them to ``xp``, a different
    grouping of the same sum (last-bit differences). Conv2D(32, 64, 3, padding=1) on
    64x32x14x14: im2col 1.7 -> 1.0 ms, col2im 3.7 -> 3.1 ms.
    """
    (kh, kw), (ho, wo), (hp, wp), sw = geo.kernel, geo.out, geo.padded, geo.stride[1]
    dh, dw = geo.dilation
    image = xp[..., :hp * wp].reshape(geo.c, geo.n, hp, wp)
    blocks = _blocks(cols, geo, (ho * wo,))
    shifted = np.empty((geo.c, geo.n, hp, wo), xp.dtype)
    runs = shifted.reshape(geo.c, geo.n, hp * wo)
    for kj in range(kw):
        columns = image[..., kj * dw:kj * dw + sw * (wo - 1) + 1:sw]
        if not adjoint:
            copy(shifted, columns)
            for ki in range(kh):
                copy(blocks[:, ki, kj], runs[..., ki * dh * wo:(ki * dh + ho) * wo])
            continue
        shifted.fill(0)
        for ki in range(kh):
            target = runs[..., ki * dh * wo:(ki * dh + ho) * wo]
            np.add(target, blocks[:, ki, kj], out=target)
        np.add(columns, shifted, out=columns)
