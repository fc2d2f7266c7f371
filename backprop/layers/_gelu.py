"""GELU's exact (erf) form, forward and backward, over blocks of :data:`_BLOCK` values.

float32 NumPy arrays take ``Φ(x) = (1 + erf(x / √2)) / 2`` as ``1/2 + x · P(x²) / Q(x²)``:
the rational approximation of :func:`backprop.backend.erf` with ``1/√2`` and ``1/2``
folded into its coefficients (scaled by powers of 2, the ``1/(2√2)`` into ``P``, ``Q``
made monic), so the forward is 26 passes where ``x / √2``, ``erf``, ``+ 1``, ``· 1/2``
and ``x · Φ`` took 29; in inference ``Φ`` is built in ``y``'s buffer. Measured over 11
million float32 values in [-8, 8] (every 211th bit pattern, both signs) and a million
normal ones, against float64: Φ within 2.1e-7 (the unfolded form 2.3e-7), y within 3.0
ulp for x > 0 (3.8). Other dtypes use SciPy's ``erf``, as before.
The backward is the same statements as before, per block, written into ``Φ``'s buffer
(the cache, which backward frees): the same bits, and no new array.
Blocks of 2^18 values (1 MiB of float32 per array) keep a large input's passes within
the cache: GELU's forward and backward of (64, 128, 512) take 0.8 of the time of the
passes before (over whole arrays, erf's over blocks of 2^17), (256, 4096) 0.88-0.97
(2-core AMD EPYC, one thread); blocks of 2^15 and 2^16 were slower (a NumPy call costs
~1 µs), 2^19 and 2^20 2.5x slower on (256, 4096).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import backend

_Q_TOP = backend._ERF_Q[0] / 2 ** 4  # Q(x² / 2)'s leading coefficient: both divided by it
_PHI_P = tuple(a / 2 ** (6 - k) / (2 * math.sqrt(2)) / _Q_TOP
               for k, a in enumerate(backend._ERF_P))  # Φ - 1/2 = x · P(x²) / Q(x²)
_PHI_Q = tuple(b / 2 ** (4 - k) / _Q_TOP for k, b in enumerate(backend._ERF_Q))[1:]
_PHI_CLIP = 4 * math.sqrt(2)  # erf's clip at ±4, where float32's Φ is 0 or 1
_BLOCK = 1 << 18  # values per block


def _blocks(*arrays: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    """Blocks of :data:`_BLOCK` values of arrays of one shape, or the arrays themselves
    when they are at most one block. An array the caller writes must be C-contiguous
    (one of ours): the others are read through C-contiguous copies where they are not."""
    size = arrays[-1].size
    if size <= _BLOCK:
        yield arrays
        return
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    for i in range(0, size, _BLOCK):
        yield tuple(a[i:i + _BLOCK] for a in flat)


def gelu_erf(x: np.ndarray, training: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x · Φ(x), Φ(x))``, ``Φ`` only when ``training`` (the backward's cache)."""
    if x.dtype != np.float32:
        cdf = np.multiply(x, 1 / math.sqrt(2))
        backend.erf(cdf, out=cdf)
        cdf += 1
        cdf *= 0.5
        with np.errstate(invalid="ignore"):  # -inf · 0: NaN, quietly, as PyTorch
            return x * cdf, cdf if training else None
    y = np.empty(x.shape, np.float32)
    cdf = np.empty(x.shape, np.float32) if training else y  # inference: Φ in y, then x · Φ
    c, s, q = (np.empty(min(x.size, _BLOCK), np.float32) for _ in range(3))
    with np.errstate(invalid="ignore"):  # -inf · 0: NaN, quietly, as PyTorch
        for xb, pb, yb in _blocks(x, cdf, y):
            n = pb.size
            _phi32(xb, pb, *(a[:n].reshape(pb.shape) for a in (c, s, q)))
            np.multiply(xb, pb, out=yb)
    return y, cdf if training else None


def _phi32(x: np.ndarray, p: np.ndarray, c: np.ndarray, s: np.ndarray,
           q: np.ndarray) -> None:
    """float32 ``Φ(x)`` into ``p``, with ``c``, ``s`` and ``q`` as scratch (NaN stays NaN,
    ±inf give 1 and 0; the quotient, which overshoots by up to 1.2e-7 near ``|x| = 4√2``,
    is clipped to ±1/2)."""
    np.clip(x, -_PHI_CLIP, _PHI_CLIP, out=c)
    np.multiply(c, c, out=s)
    np.multiply(s, _PHI_P[0], out=p)  # Horner, highest power first
    p += _PHI_P[1]
    for a in _PHI_P[2:]:
        p *= s
        p += a
    np.add(s, _PHI_Q[0], out=q)  # Q is monic
    for b in _PHI_Q[1:]:
        q *= s
        q += b
    p *= c
    p /= q
    np.clip(p, -0.5, 0.5, out=p)
    p += 0.5


def gelu_erf_backward(x: np.ndarray, cdf: np.ndarray, dy: Any) -> np.ndarray:
    """``dy · (Φ(x) + x φ(x))``, ``φ(x) = exp(-x²/2) / √(2π)``, written into ``cdf``."""
    cdf = np.ascontiguousarray(cdf)  # ours: a copy only where a float64 x was strided
    scratch = np.empty(min(x.size, _BLOCK), cdf.dtype)
    for xb, dyb, cb in _blocks(x, dy, cdf):
        d = scratch[:cb.size].reshape(cb.shape)
        with np.errstate(over="ignore"):  # x² overflows for |x| > 1.8e19: exp(-inf) = 0
            np.multiply(xb, xb, out=d)
            d *= -0.5
            np.exp(d, out=d)
        d *= 1 / math.sqrt(2 * math.pi)
        with np.errstate(invalid="ignore"):  # ±inf · 0: NaN, as before
            d *= xb
        cb += d
        cb *= dyb
    return cdf
