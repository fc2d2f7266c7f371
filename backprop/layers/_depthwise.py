"""Depthwise convolution (``groups = in_channels = out_channels``): one multiply-add per
kernel tap, over the phase planes of :mod:`._grouped`.

Each channel has its own kernel, so a group's product is ``(1, 1) @ (1, span)`` per
tap: BLAS has nothing to do, and im2col's ``prod(kernel)``-fold copies were the cost.
In the planes' layout (``xq (phases, C, N·L)``, one flat row per channel holding the
whole batch; see :mod:`._grouped`) tap ``o`` of channel ``c`` reads one contiguous
run, ``xq[φ(o), c, t(o) : t(o) + span]``, so with ``w[c, o] = W[c, 0, *o]``::

    Forward:   yq[c, :span]                  = Σ_o w[c, o] · xq[φ(o), c, t(o) : t(o) + span]
    Backward:  dW[c, o]                      = Σ_p dyq[c, p] · xq[φ(o), c, t(o) + p]
               dxq[φ(o), c, t(o) : ... + span] += w[c, o] · dyq[c, :span]

each a NumPy pass (a multiply and an add per tap and direction, a dot product per
tap for ``dW``), over blocks of channels that stay in cache while every tap passes.
The rows are the channels, ``N·L`` long: the route this replaced laid one row per
sample and channel (``S`` long) and spent more on each row's start than on its
values for small maps (multiply by a per-row weight, 64 rows of 838: 37 us; 16 rows
of 3,246: 13 us). Forward and ``dx`` add the taps in the kernel's order, as that
route did, so for stride 1 they are the same sums (``dW`` now adds each channel's
products over the whole batch at once, a BLAS dot product). Forward + backward, 3x3,
padding 1, float32, the routes before (stride 1: per-row taps; stride 2: im2col) vs
this one (interleaved, one thread, CPU ms; 2-core AMD EPYC): 32x64x28x28 42 vs 24,
stride 2 35 vs 19; 32x128x14x14 28 vs 15; 32x256x7x7 30 vs 18; 16x32x56x56 25 vs 24;
8x32x16x16 2.2 vs 1.9. (Banded products, the kernel's last axis as a ``(B + 2, B)``
matrix per channel and ~10x the arithmetic, took 50 ms on 28x28, 24 on 14x14, 19 on
7x7 and 51 on 56x56, stride 1.)
"""

from __future__ import annotations

import numpy as np

# Bytes per array of a block of channels: x's, y's and the product's rows stay in cache
# (L2 512 KiB per core here) while every tap passes over them. Forward only, float32,
# 3x3, one thread, CPU ms by channels per block: 32x64x28x28 (28,800 per channel) 1:
# 7.2, 4: 7.2, 64: 13.9; 32x128x14x14 (8,192) 4: 5.0, 8: 4.4, 64: 4.6; 32x256x7x7
# (2,592) 8: 4.8, 64: 4.3.
_BLOCK_BYTES = 1 << 19


def _blocks(c: int, span: int, itemsize: int) -> range:
    """The first channel of each block."""
    return range(0, c, max(1, _BLOCK_BYTES // max(1, span * itemsize)))


def forward(w: np.ndarray, xq: np.ndarray, taps: list[tuple[int, int]], span: int,
            yq: np.ndarray) -> None:
    """``yq[:, :span]`` (written) from the planes ``xq`` and the kernels ``w (C, taps)``."""
    c = yq.shape[0]
    starts = _blocks(c, span, yq.itemsize)
    tmp = np.empty((min(c, starts.step), span), yq.dtype)
    for r in starts:
        rows = slice(r, r + starts.step)
        yb, wb = yq[rows, :span], w[rows]
        t = tmp[:yb.shape[0]]
        for i, (plane, shift) in enumerate(taps):
            xs = xq[plane, rows, shift:shift + span]
            if i == 0:
                np.multiply(xs, wb[:, :1], out=yb)
            else:
                np.multiply(xs, wb[:, i:i + 1], out=t)
                yb += t


def backward(w: np.ndarray, xq: np.ndarray, dyq: np.ndarray, taps: list[tuple[int, int]],
             span: int, dw: np.ndarray, dxq: np.ndarray | None) -> None:
    """``dw (C, taps)`` and, given, ``dxq`` (zeros in, the planes' gradient out)."""
    c = dyq.shape[0]
    starts = _blocks(c, span, dyq.itemsize)
    tmp = np.empty((min(c, starts.step), span), dyq.dtype)
    for r in starts:
        rows = slice(r, r + starts.step)
        db, wb = dyq[rows, :span], w[rows]
        t = tmp[:db.shape[0]]
        for i, (plane, shift) in enumerate(taps):
            np.matmul(db[:, None], xq[plane, rows, shift:shift + span, None],
                      out=dw[rows, i, None, None])
            if dxq is not None:
                target = dxq[plane, rows, shift:shift + span]
                np.multiply(db, wb[:, i:i + 1], out=t)
                target += t
