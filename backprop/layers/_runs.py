"""Weighted sums over runs of consecutive positions along one axis (adaptive pools, Upsample).

Output ``q`` reads the run of inputs ``start[q] .. start[q] + count[q] - 1`` along one
axis. In these layers the runs' ends never decrease with ``q``, so the outputs that
read an input form a run too (:func:`transposed`): the backward of a run sum is
another run sum, a gather like the forward, with no scatter (``np.add.at`` is ~10x
slower). The loops go over the position ``j`` inside a run (a few), never over
pixels or samples.

Where every value is finite and the axis is small (:func:`matrix_pays`), the same sums
are one matrix product per axis (:func:`matrix_sum`, BLAS over the whole batch): an
adaptive average pool whose windows do not tile an axis ran 3-10x faster that way
(64x32x28x28 to 5x5, forward + backward: 7.5 -> 1.1 ms; 64x64x200 to 7: 2.9 -> 0.23 ms).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def along(v: np.ndarray, axis: int) -> np.ndarray:
    """A per-position vector ``(m,)`` shaped to broadcast along ``axis`` (-1 or -2)."""
    return v.reshape((-1,) + (1,) * (-1 - axis))


def run_sum(v: np.ndarray, axis: int, start: np.ndarray, count: np.ndarray,
            weights: np.ndarray | None = None) -> np.ndarray:
    """``out[..., q] = sum over j < count[q] of weights[j, q] · v[..., start[q] + j]``
    along ``axis`` (weights 1 when None; ``start``, ``count`` (Q,), ``weights`` (J, Q)).

    Positions past a run are read clipped and masked to 0 (not multiplied by 0, which
    would turn an inf inside the run into NaN); runs of count 0 sum to 0.
    """
    n = v.shape[axis]
    shape = list(v.shape)
    shape[axis] = len(start)
    out = np.zeros_like(v, shape=shape)
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, as in PyTorch
        for j in range(int(count.max(initial=0))):
            part = v.take(np.minimum(start + j, n - 1), axis=axis)
            if weights is not None:
                part *= along(weights[j], axis)
            inside = count > j
            out += part if inside.all() else np.where(along(inside, axis), part, 0)
    return out


def transposed(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of ``a.T`` for :func:`run_sum`: for each column ``p`` of the small map
    ``a`` (outputs, inputs), the run of rows with an entry there and those entries.

    Returns ``(start, count, weights)``: ``(n,)``, ``(n,)`` and ``(J, n)``.
    """
    m, n = a.shape
    nonzero = a != 0
    start = nonzero.argmax(axis=0)
    end = m - nonzero[::-1].argmax(axis=0)  # one past the last row with an entry
    count = np.where(nonzero.any(axis=0), end - start, 0)
    rows = start + np.arange(int(count.max(initial=0)))[:, None]
    weights = a[np.minimum(rows, m - 1), np.arange(n)]
    return start, count, weights


def run_matrix(n: int, start: np.ndarray, count: np.ndarray, dtype: Any) -> np.ndarray:
    """The runs' means as a ``(Q, n)`` matrix: row ``q`` holds ``1 / count[q]`` on inputs
    ``start[q] .. start[q] + count[q] - 1`` and 0 elsewhere."""
    p = np.arange(n)
    inside = (start[:, None] <= p) & (p < (start + count)[:, None])
    return inside / count[:, None].astype(dtype)


def matrix_sum(v: np.ndarray, a: np.ndarray, axis: int) -> np.ndarray:
    """``out[..., q, ...] = sum over p of a[q, p] · v[..., p, ...]`` along ``axis``: one
    matrix product. For finite ``v`` only: ``a``'s zeros would turn an inf anywhere on the
    axis into NaN in every output (:func:`run_sum` masks instead)."""
    w = np.moveaxis(v, axis, -1)
    out = w.reshape(-1, w.shape[-1]) @ a.T
    return np.moveaxis(out.reshape(*w.shape[:-1], a.shape[0]), -1, axis)


def matrix_pays(n: int, m: int) -> bool:
    """Whether :func:`matrix_sum` beats the sums along an axis of ``n`` inputs and ``m``
    outputs: it does ``n`` multiply-adds per output where the sums make a few passes per
    position in a window, so while ``m·n <= 65,536``. Adaptive average pooling, forward +
    backward, float32, matrix vs sums, ms: 64x32x28x28 to 5x5 1.3 vs 8.0, 64x64x200 to 7
    0.31 vs 3.1, 16x64x56x56 to 30x30 16 vs 22; but 16x64x1000 to 300 11 vs 8.7 and
    8x32x16000 to 1001 164 vs 55 (and an ``(m, n)`` matrix)."""
    return n * m <= 1 << 16
