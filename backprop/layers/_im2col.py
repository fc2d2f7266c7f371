"""im2col and col2im: a convolution's receptive fields as the columns of one matrix.

The input is copied, zero-padded and channels-first, into ``xp (C, N, S)``: one flat
row per channel and image, ``S = Hp·Wp + kw - 1`` (the padded image, then slack so
that no window runs into the next image). Output ``(i, j)`` at kernel offset
``(ki, kj)`` reads ``xp[c, n, (i·sh + ki)·Wp + j·sw + kj]``, so ``cols (C·kh·kw,
N·Ho·Wq)`` is one copy from a strided view of ``xp``, and col2im is one ``+=`` per
kernel offset. :class:`_Geometry` knows where every window lies for one input shape.
"""

from __future__ import annotations

from math import prod

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._spatial import offsets


class _Geometry:
    """Where the windows of one input shape lie in the flat padded buffer ``xp``."""

    def __init__(self, x_shape: tuple[int, ...], kernel: tuple[int, ...],
                 stride: tuple[int, ...], padding: tuple[int, ...], out: tuple[int, ...]) -> None:
        self.n, self.c, self.size = x_shape[0], x_shape[1], x_shape[2:]
        self.kernel, self.out = kernel, out
        self.padded = tuple(s + 2 * p for s, p in zip(self.size, padding, strict=True))
        wide = len(out) > 1 and stride[-1] == 1  # full padded rows are contiguous runs
        self.grid = (*out[:-1], self.padded[-1] if wide else out[-1])  # (Ho, Wq)
        self.xp_shape = (self.c, self.n, prod(self.padded) + kernel[-1] - 1)
        self.cols_shape = (self.c * prod(kernel), self.n * prod(self.grid))
        self.row = tuple(prod(self.padded[i + 1:]) for i in range(len(out)))  # (Wp, 1)
        self.step = tuple(r * s for r, s in zip(self.row, stride, strict=True))  # (sh·Wp, sw)
        # the grid's axes as NumPy should iterate them: one (Ho·Wq,) run when Wq·sw = sh·Wp
        self.runs, self.run_steps = _merged(self.grid, self.step)
        self.interior = (slice(None), slice(None),
                         *(slice(p, p + s) for s, p in zip(self.size, padding, strict=True)))

    def image(self, xp: np.ndarray) -> np.ndarray:
        """The unpadded input inside ``xp``: a ``(C, N, *S)`` view."""
        padded = xp[..., :prod(self.padded)].reshape(self.c, self.n, *self.padded)
        return padded[self.interior]

    def windows(self, xp: np.ndarray) -> np.ndarray:
        """Every window of ``xp``: a read-only ``(C, *kernel, N, *runs)`` view."""
        rows = tuple(r * xp.itemsize for r in self.row)
        return as_strided(xp, (self.c, *self.kernel, self.n, *self.runs),
                          (xp.strides[0], *rows, *self._strides(xp)[1:]), writeable=False)

    def at(self, xp: np.ndarray, offset: tuple[int, ...]) -> np.ndarray:
        """What kernel position ``offset`` reads, one entry per output: ``(C, N, *runs)``.

        A writable view whose entries never overlap (a row's last, ``(Wq - 1)·sw``,
        comes before the next row's first, ``sh·Wp``), so ``+=`` into it is exact.
        """
        start = sum(o * r for o, r in zip(offset, self.row, strict=True))
        return as_strided(xp[..., start:], (self.c, self.n, *self.runs), self._strides(xp))

    def _strides(self, xp: np.ndarray) -> tuple[int, ...]:
        return (*xp.strides[:2], *(s * xp.itemsize for s in self.run_steps))

    def valid(self, a: np.ndarray) -> np.ndarray:
        """The real outputs of ``a (..., *grid)``, without the junk columns."""
        return a[..., :self.out[-1]]


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
    """Fill ``cols (C·prod(kernel), N·prod(grid))`` from the padded input ``xp``.

    Row ``(c, *offset)`` of ``cols`` holds input channel ``c`` at kernel position
    ``offset`` for every sample and output position, matching ``W.reshape(C_out, -1)``.
    """
    np.copyto(cols.reshape(geo.c, *geo.kernel, geo.n, *geo.runs), geo.windows(xp))


def col2im(dcols: np.ndarray, geo: _Geometry, dxp: np.ndarray) -> None:
    """Adjoint of :func:`im2col`: sum every column back into ``dxp`` (overwritten).

    One ``+=`` per kernel offset, of long contiguous runs when ``Wq = Wp``;
    overlapping windows accumulate.
    """
    dcols = dcols.reshape(geo.c, *geo.kernel, geo.n, *geo.runs)
    dxp.fill(0)
    for offset in offsets(geo.kernel):
        target = geo.at(dxp, offset)
        np.add(target, dcols[(slice(None), *offset)], out=target)
