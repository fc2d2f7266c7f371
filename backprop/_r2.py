"""R² (:func:`backprop.metrics.r2`) from statistics that add up batch by batch: ``fit``
sums each batch's with :func:`r2_merge`, so an epoch's training ``r2`` is that of all its
samples at once (as Keras' ``R2Score`` accumulates)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._metric_inputs import _error
from ._validate import as_array


def r2_stats(y_true: Any, output: Any) -> np.ndarray:
    """``(6, columns)``: count, target mean, target sum of squared deviations, residual
    sum of squares, and the targets' least and greatest value, in float64."""
    d = _error(y_true, output, "r2")  # checks both (targets may be (N,) for (N, 1))
    y = as_array(y_true, "r2", "y_true").astype(np.float64).reshape(len(d), -1)
    d = as_array(output, "r2", "output").astype(np.float64).reshape(len(d), -1) - y
    mean = y.mean(axis=0)
    return np.stack([np.full_like(mean, len(y)), mean, np.sum((y - mean) ** 2, axis=0),
                     np.sum(d * d, axis=0), y.min(axis=0, initial=np.inf),
                     y.max(axis=0, initial=-np.inf)])


def r2_merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The statistics of two batches together (Chan et al.'s parallel variance)."""
    (na, ma, va, ra, lo_a, hi_a), (nb, mb, vb, rb, lo_b, hi_b) = a, b
    n = na + nb
    delta = mb - ma
    return np.stack([n, ma + delta * nb / n, va + vb + delta ** 2 * na * nb / n, ra + rb,
                     np.fmin(lo_a, lo_b), np.fmax(hi_a, hi_b)])


def r2_value(stats: np.ndarray) -> float:
    """R² from the statistics: per column, then their plain mean."""
    count, _, total, residual, lo, hi = stats
    if count.size and count[0] < 2:
        return math.nan
    # constant targets: 1 when predicted exactly, 0 otherwise, NaN for a NaN output (NaN
    # == 0 is false: it scored 0, a plausible value, where mse gives NaN). A column is
    # constant when its least and greatest values are equal: its total is then its
    # mean's round-off, not 0 (0.1 seven times: ~1e-33, and 1 - residual / total
    # -5e27, as scikit-learn's), while a column of real spread far below its mean
    # (1e8 + 1e-5 noise) keeps its score (a bound on the round-off read it as constant).
    constant = np.where(residual == 0, 1.0, np.where(np.isnan(residual), np.nan, 0.0))
    varies = ~(hi == lo) & (total > 0)  # NaN targets: varies, and the score NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(varies, 1.0 - residual / np.where(varies, total, 1.0), constant)
    return float(scores.mean())
