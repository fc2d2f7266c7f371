"""Precision, recall and F1 from counts of true and false positives (scikit-learn's).

Each is a metric ``(y_true, output) -> float`` as in :mod:`backprop.metrics`, and
carries ``partial``/``merge``/``finish``: the counts of a batch, their sum, and the
score of a sum. So ``fit`` adds up each batch's counts and the epoch's training value
is that of all its samples at once (an F1 is not a mean over samples: a mean of batch
F1s would depend on the batch size), as Keras' ``F1Score`` accumulates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._metric_inputs import _as_output, labels_of, refuse_multi_label
from ._validate import as_array, check_classes, label_span


def _counts(y_true: Any, output: Any, threshold: float, who: str) -> np.ndarray:
    """``(3, C)`` float64 counts per class: true positives, predicted, true. ``C = 2``
    for one binary score per sample."""
    out = _as_output(output, who)
    binary = out.ndim == 1 or out.shape[1] == 1  # _as_output: (N,), (N, 1) or (N, C)
    n, c = out.shape[0], 2 if binary else out.shape[1]
    y = _labels(y_true, n, who)
    check_classes(c, who, label_span(y))
    pred = (out.reshape(n) > threshold).astype(np.int64) if binary else out.argmax(axis=1)
    hits = np.bincount(y[pred == y], minlength=c)
    return np.stack([hits, np.bincount(pred, minlength=c),
                     np.bincount(y, minlength=c)]).astype(np.float64)


def _labels(y_true: Any, n: int, who: str) -> np.ndarray:
    y = as_array(y_true, who, "y_true")
    refuse_multi_label(y, who, "score each output with binary_accuracy")
    return labels_of(y, n, who).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, 0 where ``den`` is 0 (scikit-learn's ``zero_division`` default)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _score(counts: np.ndarray, which: str) -> float:
    hits, predicted, true = counts
    per_class = {"precision": lambda: _ratio(hits, predicted),
                 "recall": lambda: _ratio(hits, true),
                 "f1": lambda: _ratio(2 * hits, predicted + true)}[which]()
    if counts.shape[1] == 2:  # binary: the positive class 1, scikit-learn's default
        return float(per_class[1])
    seen = (predicted + true) > 0  # macro: over the classes present in y or predicted
    return float(per_class[seen].mean()) if seen.any() else 0.0


def _make(which: str, threshold: float, doc: str) -> Any:
    def metric(y_true: Any, output: Any) -> float:
        return _score(_counts(y_true, output, threshold, which), which)

    metric.__name__ = metric.__qualname__ = which
    metric.__doc__ = doc
    metric.partial = lambda y, out: _counts(y, out, threshold, which)  # type: ignore[attr-defined]
    metric.merge = np.add  # type: ignore[attr-defined]
    metric.finish = lambda counts: _score(counts, which)  # type: ignore[attr-defined]
    metric.at_threshold = lambda t: _make(which, t, doc)  # type: ignore[attr-defined]
    return metric


_COMMON = """

    Binary scores ``(N,)`` / ``(N, 1)`` (a logit: positive above ``0``; a model ending in
    Sigmoid is scored at 0.5 in ``fit``/``evaluate``) and ``(N, 2)`` class scores give
    the score of class 1, scikit-learn's ``average='binary'``; more classes give the
    mean over the classes present in ``y_true`` or predicted, ``average='macro'``. A
    class never predicted scores 0 (``zero_division=0``). Labels are ``(N,)`` or one-hot
    rows; rows of several labels are refused.
    """

precision = _make("precision", 0.0, """Fraction of the predicted positives that are right,
    ``tp / (tp + fp)`` (scikit-learn's ``precision_score``).""" + _COMMON)
recall = _make("recall", 0.0, """Fraction of the true positives found, ``tp / (tp + fn)``
    (scikit-learn's ``recall_score``).""" + _COMMON)
f1 = _make("f1", 0.0, """Harmonic mean of precision and recall, ``2 tp / (2 tp + fp + fn)``
    per class (scikit-learn's ``f1_score``; the macro mean is over per-class F1s).""" + _COMMON)
