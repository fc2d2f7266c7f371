"""Precision, recall, F1 and ROC AUC of multi-label outputs: each output column its own
yes/no problem, scored alone and averaged over the columns (scikit-learn's
``average='macro'`` on a multi-label indicator ``y``).

``fit``/``evaluate`` use these for a model trained with
:class:`~backprop.BinaryCrossEntropyWithLogits`: its outputs ``(N, C)`` are C
independent logits (or probabilities, for a model ending in Sigmoid), and its targets
``(N, C)`` are 0/1 (a soft target counts as 1 above 0.5, as ``binary_accuracy`` takes
it). One column, ``(N,)`` or ``(N, 1)``, is the binary score of class 1, as the
single-label scores give it. Each is reached as ``precision.multi_label`` (and so on)
and carries ``partial``/``merge``/``finish``, so ``fit``'s epoch values are those of all
the epoch's samples at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._metric_inputs import _numbers, decision, finite_scores
from ._validate import same_layout


def _columns(y_true: Any, output: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    """``(positive, scores)``, both ``(N, C)``: the targets above 0.5 and the outputs.
    ``y_true`` has the output's shape, or one that differs by axes of size 1 after the
    first (``(N,)`` for ``(N, 1)``): another order of the same values (a transpose)
    would score each target against another column's output."""
    out = finite_scores(output, who)
    y = _numbers(y_true, who, "y_true")
    if not same_layout(y.shape, out.shape):
        raise ValueError(f"{who}: expected y_true of the output's shape {out.shape} (one 0/1 "
                         f"target per output column), got {y.shape}")
    out = out.reshape(out.shape[0], -1)
    if out.shape[1] == 0:
        raise ValueError(f"{who}: expected at least one output column, got shape "
                         f"{out.shape}")
    y = y.reshape(out.shape)
    if not (y.min() >= 0 and y.max() <= 1):  # NaN fails both
        raise ValueError(f"{who}: expected multi-label targets in [0, 1], got values from "
                         f"{y.min()} to {y.max()}")
    return y > 0.5, out


def _counts(y_true: Any, output: Any, threshold: float, who: str) -> np.ndarray:
    """``(3, C)`` float64 counts per column: true positives, predicted, true."""
    positive, out = _columns(y_true, output, who)
    predicted = out > decision(threshold, who, out.shape)
    return np.stack([(predicted & positive).sum(axis=0), predicted.sum(axis=0),
                     positive.sum(axis=0)]).astype(np.float64)


def _score(counts: np.ndarray, which: str) -> float:
    """The mean over every column (one with nothing to score counts 0, as scikit-learn's
    ``zero_division=0``)."""
    hits, predicted, true = counts
    den = {"precision": predicted, "recall": true, "f1": predicted + true}[which]
    num = 2 * hits if which == "f1" else hits
    per_column = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(per_column.mean())


def counted(which: str, threshold: float, doc: str, counts: Any, score: Any, remake: Any,
            chosen: bool = False) -> Any:
    """A metric from counts (``counts(y, out, threshold, which)``, summed over batches by
    ``merge``) and their ``score(counts, which)``, with ``at_threshold(t)`` (``remake``
    at ``t``, ``chosen``): precision, recall and F1, single- and multi-label.

    ``threshold_chosen`` is ``chosen``: true for a metric of ``at_threshold(t)``, whose
    ``t`` ``fit``/``evaluate`` keep (they score the others of a model ending in Sigmoid
    at 0.5)."""
    def metric(y_true: Any, output: Any) -> float:
        return score(counts(y_true, output, threshold, which), which)

    metric.__name__ = metric.__qualname__ = which
    metric.__doc__ = doc
    metric.partial = lambda y, out: counts(y, out, threshold, which)  # type: ignore[attr-defined]
    metric.merge = np.add  # type: ignore[attr-defined]
    metric.finish = lambda c: score(c, which)  # type: ignore[attr-defined]
    metric.at_threshold = lambda t: remake(which, t, doc, True)  # type: ignore[attr-defined]
    metric.threshold_chosen = chosen  # type: ignore[attr-defined]
    return metric


def make(which: str, threshold: float, doc: str, chosen: bool = False) -> Any:
    """The multi-label ``precision``, ``recall`` or ``f1`` at ``threshold`` (``chosen``:
    by the user, through ``at_threshold``)."""
    return counted(which, threshold, doc, _counts, _score, make, chosen)


def _auc_stats(y_true: Any, output: Any) -> tuple[list, list]:
    positive, out = _columns(y_true, output, "roc_auc")
    return [positive], [out.astype(np.float64)]  # a copy: the caller's array may change


def _auc_merge(a: tuple[list, list], b: tuple[list, list]) -> tuple[list, list]:
    a[0].extend(b[0])
    a[1].extend(b[1])
    return a


def _auc_value(stats: tuple[list, list]) -> float:
    from ._class_scores import _binary_auc

    positive, scores = np.concatenate(stats[0]), np.concatenate(stats[1])
    aucs = [_binary_auc(positive[:, k], scores[:, k]) for k in range(scores.shape[1])]
    defined = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(defined)) if defined else float("nan")


def roc_auc(y_true: Any, output: Any) -> float:
    """The mean over the output columns of each column's binary ROC AUC (its scores
    ranked against its 0/1 targets; scikit-learn's ``roc_auc_score`` of a multi-label
    ``y``, ``average='macro'``). A column whose AUC is undefined (all its targets 0, or
    all 1) is left out of the mean (scikit-learn raises); with none defined, NaN."""
    return _auc_value(_auc_stats(y_true, output))


roc_auc.partial, roc_auc.merge, roc_auc.finish = (  # type: ignore[attr-defined]
    _auc_stats, _auc_merge, _auc_value)
