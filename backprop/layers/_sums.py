"""The sums of the normalization layers, accurate in float32 for any size.

``einsum`` and BLAS products add long runs of values one after another (a few SIMD
lanes each), so their float32 error grows with the count: a sum of squares of 2^20
values was off by 6e-5 relative (a pairwise sum: 5e-8), and BatchNorm on one 1024x1024
map 300x less accurate than PyTorch's. So no single call here adds more than
:data:`BLOCK` values into one total: longer sums are cut into blocks whose partial
sums are added at the end. Sizes up to ``BLOCK`` take one call, as before.

Sums along contiguous rows are BLAS products: ``a @ ones`` for ``a``'s own, one BLAS
dot per row (``np.vecdot``) for ``a * b``'s, so no ``a * b`` temporary is made.
"""

from __future__ import annotations

from math import prod

import numpy as np

BLOCK = 1 << 14  # at most this many values into one total per call
# rows of (N·C, S) at least this long are summed along S first, then over the samples;
# shorter ones down the samples first. Measured per channel on (N, 32, S) float32 with
# 2 threads: S = 784, N = 32: dots along rows 0.17 ms, down samples 0.20; S = 16,
# N = 128: 0.066 vs 0.020 (a BLAS call per row of 16 values)
ROWS_FIRST = 128
_VECDOT = getattr(np, "vecdot", None)  # NumPy >= 2.0
_DOT_MIN = 64  # shorter rows: einsum (2^16 values in rows of 16: 0.034 ms, vecdot 0.062)


def channel_sum(a: np.ndarray, b: np.ndarray | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
    """Per-channel sum of ``a`` (or of ``a * b``) over the batch and spatial axes: ``(C,)``.

    One einsum over ``(N, C, S)`` views: no ``a * b`` temporary, and 2.5-3x faster
    than ``np.sum(..., axis=(0, 2, 3))`` on NCHW maps (NumPy reduces several
    non-adjacent axes slowly); over blocks of samples and positions when a channel
    holds more than :data:`BLOCK` values. (The convolutions' bias gradients; the norms
    use :func:`batch_sum`.)
    """
    n, c, s = (*a.shape[:2], prod(a.shape[2:]))  # not -1: an empty batch must reshape too
    views = [v.reshape(n, c, s) for v in ((a,) if b is None else (a, b))]
    spec = "ncs->c" if b is None else "ncs,ncs->c"
    if n * s <= BLOCK:
        return np.einsum(spec, *views, out=out)
    bs = min(s, BLOCK)
    bn = max(1, BLOCK // bs)
    parts = np.stack([np.einsum(spec, *(v[i:i + bn, :, j:j + bs] for v in views))
                      for i in range(0, n, bn) for j in range(0, s, bs)])
    return np.sum(parts, axis=0, out=out)


def batch_sum(a: np.ndarray, b: np.ndarray | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
    """Per-channel sum of ``a (N, C, S)`` (or of ``a * b``) over the samples and
    positions: ``(C,)``, as BLAS products over contiguous axes (BatchNorm's sums).

    Long maps sum each (sample, channel) row, then the samples; short ones each
    (channel, position) column down the samples, then the positions (see
    :data:`ROWS_FIRST`): both ways each total takes at most :data:`BLOCK` values.
    """
    n, c, s = a.shape
    if s >= ROWS_FIRST:
        return column_sum(channel_rows(a, b), out)
    a2, b2 = (None if v is None else v.reshape(n, c * s) for v in (a, b))
    if s == 1:
        return column_sum(a2, out, b=b2)
    total = row_sum(column_sum(a2, b=b2).reshape(c, s))
    if out is None:
        return total
    out[...] = total
    return out


def channel_rows(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Per (sample, channel) sums of ``a (N, C, S)`` (or of ``a * b``) along ``S``:
    ``(N, C)``. ``a``'s own by einsum, which keeps more partial sums than the BLAS
    product (on zero-mean float32 rows of 256-4096 values its error was 0.7-0.8x the
    product's, as the per-channel einsum's before; the product is 1.5x faster)."""
    n, c, s = a.shape
    rows = (n * c, s)
    return row_sum(a.reshape(rows), None if b is None else b.reshape(rows),
                   lanes=True).reshape(n, c)


def row_sum(a: np.ndarray, b: np.ndarray | None = None, *, w: np.ndarray | None = None,
            lanes: bool = False) -> np.ndarray:
    """``(a * b).sum(1)`` (or ``a.sum(1)``, or ``(a * w).sum(1)`` with column weights
    ``w (D,)``) of ``(M, D)`` rows, without an ``a * b`` temporary: a BLAS product
    ``a @ ones`` (``a @ w``; ``lanes``: an einsum, see :func:`channel_rows`), a BLAS dot
    per row for ``a * b``; over blocks of columns when ``D`` exceeds :data:`BLOCK`."""
    d = a.shape[1]
    if d <= BLOCK:
        return _row_sum(a, b, w, lanes)
    parts = np.stack([_row_sum(a[:, j:j + BLOCK], None if b is None else b[:, j:j + BLOCK],
                               None if w is None else w[j:j + BLOCK], lanes)
                      for j in range(0, d, BLOCK)])
    return parts.sum(axis=0)


def _row_sum(a: np.ndarray, b: np.ndarray | None, w: np.ndarray | None,
             lanes: bool) -> np.ndarray:
    if lanes and b is None:
        return np.einsum("ij->i", a) if w is None else np.einsum("ij,j->i", a, w)
    if b is not None:
        short = a.shape[1] < _DOT_MIN or _VECDOT is None  # NumPy 1.x has no vecdot
        return np.einsum("ij,ij->i", a, b) if short else _VECDOT(a, b)
    if a.shape[1] == 1:  # a BLAS product with one column: 1.4 ms for 2^18 rows, this 0.1
        return a[:, 0] * (1 if w is None else w[0])
    return a @ (np.ones(a.shape[1], dtype=a.dtype) if w is None else w)


def column_sum(a: np.ndarray, out: np.ndarray | None = None, *, b: np.ndarray | None = None,
               w: np.ndarray | None = None) -> np.ndarray:
    """``a.sum(0)`` of ``(M, D)`` rows into ``(D,)``: a BLAS product ``ones @ a`` (``w @ a``
    with row weights ``w (M,)``), or with ``b`` an einsum accumulating ``a * b`` row by
    row (no temporary); over blocks of rows when ``M`` exceeds :data:`BLOCK`."""
    m = a.shape[0]
    if m <= BLOCK:
        return _column_sum(a, b, w, out)
    parts = np.stack([_column_sum(a[i:i + BLOCK], None if b is None else b[i:i + BLOCK],
                                  None if w is None else w[i:i + BLOCK], None)
                      for i in range(0, m, BLOCK)])
    return np.sum(parts, axis=0, out=out)


def _column_sum(a: np.ndarray, b: np.ndarray | None, w: np.ndarray | None,
                out: np.ndarray | None) -> np.ndarray:
    if b is not None:
        return np.einsum("ij,ij->j", a, b, out=out)
    return np.matmul(_ones(a.shape[0], a.dtype) if w is None else w, a, out=out)


_ONES: dict[tuple[int, np.dtype], np.ndarray] = {}


def _ones(m: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ``m`` ones, kept: Dense's bias gradient asks for one per
    step (a new one took 0.8 us of its ~1.5 us at batch 32). At most 64 kept."""
    key = (m, dtype)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) >= 64:
            _ONES.clear()
        ones = _ONES[key] = np.ones(m, dtype=dtype)
        ones.flags.writeable = False
    return ones
