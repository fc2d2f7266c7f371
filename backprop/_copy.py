"""Strided copies moved run by run: ``np.copyto`` with each last-axis row as one element.

NumPy's copy loop pays a fixed cost for every row of the innermost axis it walks, so a
copy between views whose last axis is short (a 14-wide image row inside a padded one, a
convolution's windows) spends more time starting rows than moving bytes. When that axis is
contiguous in both arrays, viewing each row as one element of a raw ``n·itemsize``-byte
type (``np.void``) lets a single inner loop move every row (one ``memcpy`` each): the same
bytes, bit for bit, NaN and signed zeros included. Measured on the 2-core AMD EPYC of
``benchmarks/RESULTS.md`` (float32, 3M elements, strided rows into a contiguous array):
rows of 4 elements 2.9 -> 0.53 ms, of 14 0.80 -> 0.40 ms, of 64 0.35 -> 0.29 ms; float64
rows of 14 2.3 -> 1.4 ms; the 32 -> 64 convolution's im2col on 64x32x14x14 (rows of 14)
1.0 -> 0.5 ms with its data in cache, 1.3 -> 0.85 ms without.
"""

from __future__ import annotations

import numpy as np

# Below this many elements the two views cost more (~1-2 us) than they save.
_MIN_SIZE = 2048
_MAX_ROW = (1 << 31) - 1  # bytes: NumPy's largest np.void
_KINDS = frozenset("biufc")  # plain numbers: raw bytes are their values


def copy(dst: np.ndarray, src: np.ndarray) -> None:
    """``np.copyto(dst, src)``, faster where both are arrays of one shape and dtype whose
    last axes are contiguous: each of their rows is then copied as one raw element.
    Anything else (other shapes or dtypes, broadcasting, lists, small arrays, rows past
    2 GiB, arrays that share memory: as rows, NumPy would not buffer an overlap of
    different strides) is ``np.copyto`` itself.
    """
    if (type(dst) is np.ndarray and type(src) is np.ndarray and dst.size >= _MIN_SIZE
            and dst.ndim > 1 and dst.shape == src.shape and dst.dtype == src.dtype
            and dst.dtype.kind in _KINDS and dst.strides[-1] == dst.itemsize
            and src.strides[-1] == dst.itemsize and dst.shape[-1] * dst.itemsize <= _MAX_ROW
            and not (dst.flags.c_contiguous and src.flags.c_contiguous)
            and not np.may_share_memory(dst, src)):
        item = dst.itemsize
        row = np.dtype((np.void, dst.shape[-1] * item))
        np.copyto(dst.view(row)[..., 0], src.view(row)[..., 0])
        return
    np.copyto(dst, src)
