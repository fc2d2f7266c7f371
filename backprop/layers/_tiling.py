"""Adaptive pooling's windows when they tile an axis: strided views, no gathers.

When ``m`` outputs divide ``n`` inputs, window ``i`` is inputs ``i·k`` to ``i·k + k - 1``
(``k = n / m``): splitting the axis into ``(m, k)`` makes the input at position ``j``
of every window one strided view, and each input belongs to one window. Output size
1 (global pooling) is one reduction over the contiguous spatial axes.
"""

from __future__ import annotations

from collections.abc import Iterator
from math import prod

import numpy as np

from ._runs import run_sum

# along one axis: (axis, n inputs, first input of each window, its length), each (m,)
Windows = list[tuple[int, int, np.ndarray, np.ndarray]]


def tap_views(v: np.ndarray, axis: int, k: int) -> list[np.ndarray]:
    """For windows of ``k`` that tile ``axis``: what position ``j`` of each reads, for
    every ``j < k`` (strided views of ``v``, ``(..., n // k, ...)``)."""
    a = v.ndim + axis
    split = v.reshape(*v.shape[:a], v.shape[a] // k, k, *v.shape[a + 1:])
    return [split[(slice(None),) * (a + 1) + (j,)] for j in range(k)]


def window_reads(v: np.ndarray, axis: int, start: np.ndarray,
                 count: np.ndarray) -> Iterator[np.ndarray]:
    """What position ``j`` of every window reads along ``axis``, for each ``j`` below the
    longest window: strided views when the windows tile the axis, else gathered copies
    (a window shorter than the longest reads its last input again)."""
    if v.shape[axis] % len(start) == 0:
        yield from tap_views(v, axis, int(count[0]))
    else:
        for j in range(int(count.max())):
            yield v.take(np.minimum(start + j, start + count - 1), axis=axis)


def window_sum(v: np.ndarray, axis: int, n: int, start: np.ndarray,
               count: np.ndarray) -> np.ndarray:
    """:func:`run_sum` over the windows, as a sum of strided views when they tile the axis
    (the same additions in the same order, with no gathers)."""
    if n % len(start):
        return run_sum(v, axis, start, count)
    taps = tap_views(v, axis, n // len(start))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, past the range
        # inf, quietly, as in PyTorch
        total = taps[0] + 0.0  # run_sum starts from 0.0: a -0.0 input adds up to 0.0
        for t in taps[1:]:
            total += t
    return total


def over_windows(share: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Each window's ``share`` (N, C, *out) copied over its inputs, for windows that tile
    ``x_shape``. Rows of ``W`` are built first (one broadcast copy of a few elements
    at a time is slow: 32x64x28x28 float32 from 14x14, 4.9 ms against 1.4 for
    ``np.repeat`` then whole rows), unless a window is a whole row already."""
    wo, w = share.shape[-1], x_shape[-1]
    if wo not in (1, w):
        share = np.repeat(share, w // wo, axis=-1)
    # x as (N, C, Ho, kh, ..., row): the share broadcast over each window's k's
    out = share.shape[2:]
    dx = np.empty(x_shape, share.dtype)
    dx.reshape(*x_shape[:2], *(a for o, n in zip(out, x_shape[2:], strict=True)
                               for a in (o, n // o)))[...] = share.reshape(
        *x_shape[:2], *(a for o in out for a in (o, 1)))
    return dx


def flat_index(args: list[np.ndarray], x_shape: tuple[int, ...]) -> np.ndarray:
    """The flat index in the spatial plane (``D·H·W``, ``H·W`` or ``L``) of each maximum
    from the passes' positions (``args[0]`` from the last axis's pass): the last pass
    gives the first axis's position; each earlier pass's is read where the later ones
    found the maximum (its array is ``(N, C, *inputs before its axis, *outputs from it)``).
    The last axis's window starts are left for the caller to add."""
    arg, out = args[-1], args[-1].shape[2:]
    for k, a in enumerate(reversed(args[:-1]), start=1):  # the axes after the first, in order
        tail = np.arange(prod(out[k:])).reshape(out[k:])  # the outputs' flat index from axis k
        arg = arg * x_shape[2 + k] + pick(a, arg * len(tail.flat) + tail)
    return arg


def pick(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``a[n, c].flat[index[n, c, ...]]``, shaped as ``index``: one flat take (32x64x784 from
    32x64x49: 0.36 ms; ``np.take_along_axis`` builds an index per axis: 6.3 ms)."""
    return np.take(a.reshape(-1), in_batch(index, a.shape))


def in_batch(index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Flat indices into an array of ``shape`` (N, C, ...) from ``index`` (N, C, ...),
    flat indices into its ``(n, c)`` planes."""
    rows = np.arange(prod(shape[:2])).reshape(*shape[:2], *(1,) * (index.ndim - 2))
    return index + rows * prod(shape[2:])


def first_max(flat: np.ndarray) -> np.ndarray:
    """Where PyTorch finds each row's maximum in ``flat`` (N, C, L): the first maximum,
    or the last NaN if there is one. Returns ``(N, C, 1)``."""
    arg = flat.argmax(axis=-1)[..., None]  # the first maximum, or the first NaN
    nan = np.isnan(pick(flat, arg)[..., 0])
    if nan.any():
        arg[nan, 0] = flat.shape[-1] - 1 - np.isnan(flat[nan][:, ::-1]).argmax(axis=-1)
    return arg
