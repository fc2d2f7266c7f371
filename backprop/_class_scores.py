"""Precision, recall and F1 from counts of true and false positives, and the ROC AUC
(scikit-learn's scores).

Each is a metric ``(y_true, output) -> float`` as in :mod:`backprop.metrics`, and
carries ``partial``/``merge``/``finish``: a batch's statistics (counts; for the AUC, its
labels and scores), their union, and the score of that union. So ``fit`` adds up each
batch's statistics and the epoch's training value is that of all its samples at once
(an F1 is not a mean over samples: a mean of batch F1s would depend on the batch size),
as Keras' ``F1Score`` and ``AUC`` accumulate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _multi_label
from ._metric_inputs import decision, finite_scores, labels_of, predictions
from ._validate import check_classes, label_span


def _counts(y_true: Any, output: Any, threshold: float, who: str) -> np.ndarray:
    """``(3, C)`` float64 counts per class: true positives, predicted, true. ``C = 2``
    for one binary score per sample."""
    threshold = decision(threshold, who)
    out = finite_scores(output, who)
    binary = out.ndim == 1 or out.shape[1] == 1  # _as_output: (N,), (N, 1) or (N, C)
    n, c = out.shape[0], 2 if binary else out.shape[1]
    y = labels_of(y_true, n, who, _MULTI)
    span = label_span(y)
    if binary and span[1] >= 2:  # scikit-learn's habit: predicted labels as the output
        raise ValueError(f"{who}: expected binary labels in [0, 2) for one output column "
                         f"(a binary score per sample), got values from {span[0]} to "
                         f"{span[1]} (the output is the model's scores, (N, C) for C "
                         f"classes, not predicted labels)")
    check_classes(c, who, span)  # before the cast: a uint64 2**63 would wrap
    y = y.astype(np.int64, copy=False)
    pred = predictions(out, threshold)
    hits = np.bincount(y[pred == y], minlength=c)
    return np.stack([hits, np.bincount(pred, minlength=c),
                     np.bincount(y, minlength=c)]).astype(np.float64)


_MULTI = ("train with BinaryCrossEntropyWithLogits, whose fit/evaluate score each output "
          "column as its own binary problem and average them (scikit-learn's "
          "average='macro'), or call the multi-label score yourself, e.g. "
          "bp.metrics.f1.multi_label(y, output); binary_accuracy scores every decision "
          "at once")


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


def _make(which: str, threshold: float, doc: str, chosen: bool = False) -> Any:
    multi = f"""{which.capitalize()} of multi-label outputs: each column a binary problem
    (its output above the threshold, its target above 0.5), the mean over the columns
    (scikit-learn's ``average='macro'`` on a multi-label indicator; a column with nothing
    to score counts 0). ``fit`` uses it with a binary cross-entropy loss."""
    metric = _multi_label.counted(which, threshold, doc, _counts, _score, _make, chosen)
    metric.multi_label = _multi_label.make(which, threshold, multi, chosen)
    return metric


_COMMON = """

    Binary scores ``(N,)`` / ``(N, 1)`` (a logit: positive above ``0``; a model ending in
    Sigmoid is scored at 0.5 in ``fit``/``evaluate``, except by a metric of
    ``at_threshold(t)``, which keeps its ``t``) and ``(N, 2)`` class scores give
    the score of class 1, scikit-learn's ``average='binary'``; more classes give the
    mean over the classes present in ``y_true`` or predicted, ``average='macro'``. A
    class never predicted scores 0 (``zero_division=0``). Labels are ``(N,)`` or one-hot
    rows; rows of several labels are refused.

    Args:
        y_true: Labels ``(N,)`` or one-hot rows ``(N, C)``.
        output: Scores: one binary logit per sample ``(N,)`` / ``(N, 1)``, or ``(N, C)``.

    Returns:
        The score in [0, 1], a Python float.
    """

precision = _make("precision", 0.0, """Fraction of the predicted positives that are right,
    ``tp / (tp + fp)`` (scikit-learn's ``precision_score``).""" + _COMMON)
recall = _make("recall", 0.0, """Fraction of the true positives found, ``tp / (tp + fn)``
    (scikit-learn's ``recall_score``).""" + _COMMON)
f1 = _make("f1", 0.0, """Harmonic mean of precision and recall, ``2 tp / (2 tp + fp + fn)``
    per class (scikit-learn's ``f1_score``; the macro mean is over per-class F1s).""" + _COMMON)


def _auc_scores(y_true: Any, output: Any) -> tuple[list, list]:
    """One batch for :func:`roc_auc`, checked: ``([labels], [outputs])``, lists that
    :func:`_auc_merge` extends (an epoch's batches, without quadratic copying); the
    scores are made once, for all of them, in :func:`_auc_value`."""
    out = finite_scores(output, "roc_auc")
    n = out.shape[0]
    binary = out.ndim == 1 or out.shape[1] <= 2
    if out.ndim == 2 and out.shape[1] > 1 and np.isinf(out).any():  # z1 - z0, softmax: nan
        raise ValueError(f"roc_auc: expected finite class scores, got {np.isinf(out).sum()} "
                         f"infinite of {out.size} (one binary score per sample may be ±inf)")
    y = labels_of(y_true, n, "roc_auc", _MULTI)
    check_classes(2 if binary else out.shape[1], "roc_auc", label_span(y))
    return [y], [out.reshape(n, -1).copy()]  # the caller's array may change; upcast once



def _auc_ranked(out: np.ndarray, probabilities: bool = False) -> np.ndarray:
    """What ranks the samples: a binary logit itself, the margin ``z1 - z0`` of two
    class scores (the order of class 1's probability, which rounds to 1.0 past a margin
    of ~37), or the softmax probabilities of more classes, as scikit-learn's
    one-vs-rest takes them (the outputs themselves when they are ``probabilities``:
    a softmax of them would reorder each class's column)."""
    if out.shape[1] == 1:
        return out[:, 0]
    if out.shape[1] == 2:
        return out[:, 1] - out[:, 0]
    if probabilities:
        return out
    z = np.exp(out - out.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _auc_merge(a: tuple[list, list], b: tuple[list, list]) -> tuple[list, list]:
    a[0].extend(b[0])
    a[1].extend(b[1])
    return a


def rankdata(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of ``scores``, ties sharing their average rank (SciPy's ``rankdata``,
    whose versions before 1.11 give NaN for every rank once a score is ±inf)."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    first = np.empty(scores.size, dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])  # where a run of ties starts
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], scores.size)
    ranks = np.empty(scores.size)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]  # each run's mean rank
    return ranks


def _auc_value(stats: tuple[list, list], probabilities: bool = False) -> float:
    y = np.concatenate(stats[0])
    scores = _auc_ranked(np.concatenate(stats[1]).astype(np.float64, copy=False),
                         probabilities)
    if scores.ndim == 1:  # one binary score per sample
        return _binary_auc(y == 1, scores)
    aucs = [_binary_auc(y == k, scores[:, k]) for k in range(scores.shape[1])]
    defined = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(defined)) if defined else float("nan")


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """The Mann-Whitney statistic: P(a positive outscores a negative), ties counting half."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks of ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true: Any, output: Any) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``), exact: the chance
    that a positive sample scores above a negative one, ties counting half.

    One binary score per sample ``(N,)`` / ``(N, 1)`` (logits or probabilities: only
    their order counts) or two class scores ``(N, 2)`` (ranked by ``z1 - z0``, the order
    of class 1's probability, which rounds to 1.0 past a margin of ~37): the binary AUC
    of class 1. More
    classes: the mean one-vs-rest AUC over the classes (scikit-learn's
    ``multi_class='ovr'``, macro), on softmax probabilities of the scores (outputs that
    are probabilities already, a model ending in Softmax, are ranked as they are by
    ``roc_auc.of_probabilities``, which ``fit`` and ``evaluate`` use for such a model).
    A class whose AUC is undefined (no positive or no negative sample) is left out of
    the mean; with none defined the result is NaN. In ``fit`` the training value is
    that of all the epoch's samples at once (the batches' scores are kept until the
    epoch ends).

    Args:
        y_true: Labels ``(N,)`` or one-hot rows ``(N, C)``.
        output: Scores: one binary score per sample ``(N,)`` / ``(N, 1)``, or ``(N, C)``.

    Returns:
        The AUC in [0, 1], a Python float; NaN when no class has both positive and
        negative samples.
    """
    return _auc_value(_auc_scores(y_true, output))


def _of_probabilities(y_true: Any, output: Any) -> float:
    """:func:`roc_auc` of outputs that are class probabilities already (a model ending
    in Softmax): more than two classes are ranked by them, not by a softmax of them."""
    return _auc_value(_auc_scores(y_true, output), probabilities=True)


_of_probabilities.__name__ = _of_probabilities.__qualname__ = "roc_auc"
roc_auc.partial, roc_auc.merge, roc_auc.finish = (  # type: ignore[attr-defined]
    _auc_scores, _auc_merge, _auc_value)
_of_probabilities.partial, _of_probabilities.merge = (  # type: ignore[attr-defined]
    _auc_scores, _auc_merge)
_of_probabilities.finish = lambda stats: _auc_value(  # type: ignore[attr-defined]
    stats, probabilities=True)
roc_auc.of_probabilities = _of_probabilities  # type: ignore[attr-defined]
roc_auc.multi_label = _multi_label.roc_auc  # type: ignore[attr-defined]
