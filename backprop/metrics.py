"""Metrics: ``metric(y_true, output) -> float`` over a batch (or a whole set).

``output`` is what the model returns — logits, as the losses take them:

* ``(N, C)`` with ``C > 1``: class scores (logits or probabilities); the
  prediction is ``output.argmax(1)``.
* ``(N,)`` or ``(N, 1)``: one binary logit per sample; the prediction is
  ``output > threshold`` with ``threshold=0`` (a logit of 0 is probability 0.5,
  matching :class:`~backprop.BinaryCrossEntropyWithLogits`). For probabilities
  pass ``threshold=0.5``.

Labels are integer class indices ``(N,)``; one-hot or probability rows ``(N, C)`` are
accepted too (their argmax is the label). The accuracies, ``mae`` and ``mse`` are plain
means over samples, so the mean of batch values weighted by batch size is the metric
over the whole data: that is how ``fit`` accumulates their training values. ``r2``,
``precision``, ``recall``, ``f1`` and ``roc_auc`` are not such means: ``fit`` adds up
their statistics batch by batch instead (their ``partial``/``merge``/``finish``), so
their epoch values too are those of all samples at once. A metric of your own is
averaged over the batches, each weighted by its size (Keras 3 takes the plain mean of
scalar batch values, so a short last batch counts as a full one there); validation
values and :func:`evaluate` compute every metric on the whole set at once. In
``fit``/``evaluate``, a model ending in ``Sigmoid`` or trained with a regression loss
(MSE, MAE, Huber: its outputs predict the 0/1 targets) gets ``accuracy``, ``precision``,
``recall`` and ``f1`` at ``threshold=0.5`` (one of ``at_threshold(t)``, e.g.
``f1.at_threshold(0.9)``, keeps its ``t``); a model ending in ``Softmax`` gets
``roc_auc`` of its probabilities as they are; and with the loss
:class:`~backprop.BinaryCrossEntropyWithLogits` ``"accuracy"`` is
:func:`binary_accuracy` (each output a yes/no decision, as Keras picks it for a binary
cross-entropy), so multi-label targets are scored label by label, and ``precision``,
``recall``, ``f1`` and ``roc_auc`` are their ``.multi_label`` forms: each output column
scored as its own binary problem, then averaged over the columns (scikit-learn's
``average='macro'`` on a multi-label ``y``). A metric of your own gets ``y_true`` and
``output`` of one rank where they differ by a trailing axis of 1 (``(N,)`` targets
against an ``(N, 1)`` output: both ``(N,)``), as in Keras.

NaN scores are refused by every metric of classes (the accuracies, ``precision``,
``recall``, ``f1``, ``roc_auc``, ``confusion_matrix``, ``predicted_labels``: a NaN has
no class, and ``argmax`` or a threshold would file it silently under one), as
scikit-learn refuses them; ±inf is a score and is kept. ``mae``, ``mse`` and ``r2`` of a
NaN output are NaN, as the regression losses are (scikit-learn refuses it).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ._class_scores import f1, precision, recall, roc_auc
from ._metric_inputs import (
    _error,
    _numbers,
    _read,
    decision,
    finite_scores,
    labels_of,
    no_nan,
    predicted_labels,
    predictions,
)
from ._r2 import r2_merge, r2_stats, r2_value
from ._validate import (
    caller_level,
    check_classes,
    check_size,
    label_span,
    positive_int,
    same_layout,
    whole_numbers,
)

__all__ = [
    "Metric", "accuracy", "binary_accuracy", "top_k_accuracy", "mean_absolute_error",
    "mean_squared_error", "r2", "precision", "recall", "f1", "roc_auc", "confusion_matrix",
    "predicted_labels", "get", "name_of",
]

Metric = Callable[[Any, np.ndarray], float]


def accuracy(y_true: Any, output: Any, *, threshold: float = 0.0) -> float:
    """Fraction of samples whose predicted class equals the label.

    Args:
        y_true: Labels (N,) (or one-hot / probability rows (N, C)).
        output: Scores (N, C), or binary logits (N,) / (N, 1) (see the module docs).
        threshold: Decision threshold for binary outputs (0 for logits, 0.5 for
            probabilities).

    Returns:
        The accuracy in [0, 1], a Python float.

    Raises:
        ValueError: NaN scores, as :func:`f1` and the other class metrics refuse them (a
            NaN has no class: ``argmax`` would pick the first NaN, and a NaN binary logit
            is not above the threshold, class 0), labels outside the classes, or shapes
            that do not match.
        TypeError: labels or scores that are not real numbers (strings, objects, None).
    """
    threshold = decision(threshold, "accuracy")
    out = finite_scores(output, "accuracy")
    if out.ndim == 1 or out.shape[1] == 1:
        y = _numbers(y_true, "accuracy", "y_true").reshape(-1)
        if y.shape != (out.shape[0],):
            raise ValueError(f"accuracy: expected y_true of shape ({out.shape[0]},) to match "
                             f"the output, got {np.shape(y_true)}")
        if y.size and not (y.min() >= 0 and y.max() <= 1):  # NaN fails both
            raise ValueError(f"accuracy: expected binary labels in [0, 1] for one output "
                             f"column, got values from {y.min()} to {y.max()} (for C "
                             f"classes the model needs C outputs; regression has no accuracy)")
        return float(np.mean((out.reshape(-1) > threshold) == (y > 0.5)))
    y = labels_of(y_true, out.shape[0], "accuracy")
    check_classes(out.shape[1], "accuracy", label_span(y))
    return float(np.mean(out.argmax(axis=1) == y))


def binary_accuracy(y_true: Any, output: Any, *, threshold: float = 0.0) -> float:
    """Fraction of yes/no decisions right, over every output element (multi-label).

    Each element of ``output`` is a binary logit (or a probability, with
    ``threshold=0.5``) and its decision ``output > threshold`` is compared with
    ``y_true > 0.5``, element by element (Keras' ``binary_accuracy``). ``y_true`` has
    the output's shape, or one that differs only by axes of size 1 after the first
    ((N,) for (N, 1)): another layout of as many values (``(N, F, T)`` for
    ``(N, T, F)``) would compare misaligned elements.

    Args:
        y_true: Targets in [0, 1], of the output's shape (or ``(N,)`` for ``(N, 1)``).
        output: Binary logits (or probabilities) ``(N, ...)``.
        threshold: One number (0 for logits, 0.5 for probabilities), or one per output
            column: an array ``(C,)`` for an output ``(N, ..., C)``.

    Returns:
        The accuracy in [0, 1], a Python float.

    Raises:
        ValueError: an empty output, NaN in it (as the other class metrics), ``y_true`` of
            another layout or outside [0, 1], a NaN threshold, or a threshold array not
            of shape ``(C,)``.
        TypeError: values or a threshold that are not real numbers.
    """
    out = _numbers(output, "binary_accuracy", "output")
    y = _numbers(y_true, "binary_accuracy", "y_true")
    if out.ndim == 0 or out.size == 0:  # (0, ...) or a zero-width (N, 0)
        raise ValueError(f"binary_accuracy: expected output of shape (N, ...) with N > 0 "
                         f"and no axis of length 0, got {out.shape}")
    no_nan(out, "binary_accuracy")
    threshold = decision(threshold, "binary_accuracy", out.shape)
    if y.shape != out.shape:
        if not same_layout(y.shape, out.shape):  # (N,) for (N, 1), not (N, F, T)
            raise ValueError(f"binary_accuracy: expected y_true of the output's shape "
                             f"{out.shape}, got {y.shape}")
        y = y.reshape(out.shape)
    if y.size and not (y.min() >= 0 and y.max() <= 1):  # NaN fails both
        raise ValueError(f"binary_accuracy: expected targets in [0, 1], got values from "
                         f"{y.min()} to {y.max()}")
    return float(np.mean((out > threshold) == (y > 0.5)))


def top_k_accuracy(y_true: Any, output: Any, k: int = 5) -> float:
    """Fraction of samples whose label is among the ``k`` highest scores.

    Ties are broken as scikit-learn's ``top_k_accuracy_score`` breaks them: among
    equal scores the higher class index ranks first. So the label's rank is the
    number of higher scores plus the number of equal ones at higher indices, and a
    hit is a rank below ``k``. NaN scores are refused, as scikit-learn's and
    :func:`f1`'s refuse them. With ``k >= C`` every sample is a hit, and a UserWarning
    says so (as scikit-learn's does).

    Args:
        y_true: Labels ``(N,)`` (or one-hot / probability rows ``(N, C)``).
        output: Scores ``(N, C)``.
        k: How many of the highest scores count (default 5).

    Returns:
        The top-k accuracy in [0, 1], a Python float.
    """
    out = finite_scores(output, "top_k_accuracy")
    if out.ndim != 2 or out.shape[1] < 2:  # one column: a binary score, no ranks to take
        raise ValueError(f"top_k_accuracy: expected class scores of shape (N, C) with C >= 2, "
                         f"got {out.shape}" + (" (one score per sample: use accuracy)"
                                               if out.shape[1:] == (1,) else ""))
    k = positive_int(k, "k", "top_k_accuracy")
    y = labels_of(y_true, out.shape[0], "top_k_accuracy")
    n, c = out.shape
    check_classes(c, "top_k_accuracy", label_span(y))
    y = y.astype(np.int64, copy=False)  # bool labels would index as a mask
    if k >= c:
        warnings.warn(f"top_k_accuracy: k ({k}) >= the number of classes ({c}): every sample "
                      f"is a hit and the score is 1.0; pass a smaller k",
                      stacklevel=caller_level())
        return 1.0
    mine = out[np.arange(n), y][:, None]
    later = np.arange(c) > y[:, None]
    rank = (out > mine).sum(axis=1) + ((out == mine) & later).sum(axis=1)
    return float(np.mean(rank < k))


def mean_absolute_error(y_true: Any, output: Any) -> float:
    """Mean of ``|output - y_true|`` over every element, summed in float64.

    Args:
        y_true: Targets, of the output's shape (or ``(N,)`` for ``(N, 1)``).
        output: Predictions ``(N, ...)``.
    """
    return float(np.mean(np.abs(_error(y_true, output, "mean_absolute_error")),
                         dtype=np.float64))


def mean_squared_error(y_true: Any, output: Any) -> float:
    """Mean of ``(output - y_true)²`` over every element, squared and summed in float64 (a
    float16 error past 256, or a float32 one past ~1.8e19, would square to inf).

    Args:
        y_true: Targets, of the output's shape (or ``(N,)`` for ``(N, 1)``).
        output: Predictions ``(N, ...)``.
    """
    d = _error(y_true, output, "mean_squared_error").astype(np.float64)
    return float(np.mean(d * d))


def r2(y_true: Any, output: Any) -> float:
    """Coefficient of determination ``1 - Σ(y - ŷ)² / Σ(y - ȳ)²`` (scikit-learn's
    ``r2_score``): per output column, then their plain mean; a column of constant
    targets scores 1 when predicted exactly, else 0 (scikit-learn's ``force_finite``);
    fewer than two samples give NaN, as scikit-learn's (R² is not defined there).
    Outputs ``(N, T, F)`` (a sequence's) count each of the ``T·F`` values as a column
    (scikit-learn's on ``(N, T·F)``).

    Not a mean over samples, so ``fit`` does not average batch values for it: it sums
    each batch's statistics (:func:`._r2.r2_stats`, merged as Chan et al.'s parallel
    variance) and the epoch's training ``r2`` is that of all its samples at once, as
    Keras' ``R2Score`` accumulates.

    Args:
        y_true: Targets, of the output's shape (or ``(N,)`` for ``(N, 1)``).
        output: Predictions ``(N, ...)``.
    """
    return r2_value(r2_stats(y_true, output))


r2.partial, r2.merge, r2.finish = r2_stats, r2_merge, r2_value  # type: ignore[attr-defined]
# the same metric at another threshold (fit's for a model ending in Sigmoid), as the
# class scores have it
def _at_threshold(fn: Any) -> Any:
    def at(t: float) -> Any:  # named as fn: fit logs a metric by its __name__
        metric = functools.partial(fn, threshold=t)
        metric.__name__ = fn.__name__  # type: ignore[attr-defined]
        return metric
    return at


accuracy.at_threshold = _at_threshold(accuracy)  # type: ignore[attr-defined]
binary_accuracy.at_threshold = _at_threshold(binary_accuracy)  # type: ignore[attr-defined]


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None, *,
                     threshold: float = 0.0) -> np.ndarray:
    """Counts ``M[i, j]`` of samples of true class ``i`` predicted as class ``j``.

    Rows are true classes and columns predictions, as in scikit-learn.

    Args:
        y_true: Labels (N,).
        y_pred: Predicted labels (N,) (integers, or floats that are all whole
            numbers), or model output (scores (N, C) / binary scores), converted with
            :func:`predicted_labels`.
        num_classes: Size of the matrix (an int); by default the ``C`` of scores
            ``(N, C)``, else ``1 + max`` label seen (the matrix is indexed by label, so
            unlike scikit-learn's, it has a row for every label up to the largest).
        threshold: For binary scores: 0 for logits, 0.5 for probabilities.

    Returns:
        An int64 array (num_classes, num_classes).

    Raises:
        ValueError: labels outside ``[0, num_classes)`` (or ``[0, C)`` for scores
            ``(N, C)``, ``[0, 2)`` for binary scores), NaN scores (as :func:`f1` and
            the other class metrics), no samples, a NaN threshold, or a matrix of more
            than 2**31 elements (one stray huge label would ask for terabytes).
        TypeError: None, strings or anything else that is not real numbers (complex
            scores, say).
    """
    who = "confusion_matrix"
    threshold = decision(threshold, who)
    pred = _read(y_pred, who, "y_pred", "an array of labels (N,) or scores (N, C)")
    # scores (N, C) know their classes: a class nobody predicted or labelled still counts
    width = pred.shape[1] if pred.ndim == 2 and pred.shape[1] > 1 else 0
    scores = pred.dtype.kind in "fc" and not (pred.ndim == 1 and whole_numbers(pred))
    shape = pred.shape
    if scores:
        pred = predictions(finite_scores(pred, who), threshold)
    elif pred.ndim not in (1, 2) or pred.shape[0] == 0:
        raise ValueError(f"{who}: expected y_pred of shape (N,) (labels) or (N, C) (one-hot "
                         f"rows or scores) with N > 0, got {pred.shape}")
    else:
        pred = labels_of(pred, pred.shape[0], who, what="y_pred")
    true = labels_of(y_true, pred.shape[0], who)
    span = label_span(true, pred)
    if scores and not width and span[1] >= 2:  # one score per sample: two classes
        raise ValueError(f"{who}: expected labels in [0, 2) for binary scores (y_pred of "
                         f"shape {shape}: " + ("floats (N, 1) are one score per sample"
                                               if len(shape) == 2 else "floats but not "
                                               "whole-number labels") + "), got values "
                         f"from {span[0]} to {span[1]} (pass predicted labels as integers, "
                         f"or scores (N, C) for C classes)")
    seen = span[1] + 1
    if num_classes is None and width:  # scores (N, C): C classes, labels beyond refused
        c, source = width, f"{width} score columns"
    elif num_classes is None:
        c, source = seen, f"1 + the largest label {seen - 1}"
    else:
        c = positive_int(num_classes, "num_classes", "confusion_matrix")
        source = f"num_classes={c}"
    check_classes(c, "confusion_matrix", span)
    check_size((c, c), "confusion_matrix", source)
    flat = true.astype(np.int64, copy=False) * c  # int64 first: uint64 with int64 is float64
    flat += pred.astype(np.int64, copy=False)
    return np.bincount(flat, minlength=c * c).reshape(c, c)


_NAMES: dict[str, Metric] = {
    "accuracy": accuracy, "acc": accuracy, "binary_accuracy": binary_accuracy,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "r2": r2, "r2_score": r2,
    "precision": precision, "recall": recall, "f1": f1, "f1_score": f1,
    "auc": roc_auc, "roc_auc": roc_auc,
    # Keras' names: its accuracy for labels (sparse) and for one-hot rows are one here
    "sparse_categorical_accuracy": accuracy, "categorical_accuracy": accuracy,
}


def _top_k(k: int) -> Metric:
    def metric(y_true: Any, output: Any) -> float:
        return top_k_accuracy(y_true, output, k)

    metric.__name__ = f"top_{k}_accuracy"
    return metric


def get(metric: str | Metric) -> Metric:
    """Resolve a metric name (or pass a callable through).

    Names: ``"accuracy"``/``"acc"`` (also Keras' ``"sparse_categorical_accuracy"`` and
    ``"categorical_accuracy"``), ``"binary_accuracy"``, ``"top_k_accuracy"`` (k = 5;
    Keras' ``"top_k_categorical_accuracy"`` and its sparse form),
    ``"top_<k>_accuracy"`` (e.g. ``"top_3_accuracy"``), ``"mae"``/
    ``"mean_absolute_error"``, ``"mse"``/``"mean_squared_error"``, ``"r2"``,
    ``"precision"``, ``"recall"``, ``"f1"``/``"f1_score"``, ``"auc"``/``"roc_auc"``.

    Args:
        metric: A name above, or a callable ``(y_true, output) -> float``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: neither a string nor a callable.
    """
    if callable(metric):
        return metric
    if not isinstance(metric, str):
        raise TypeError(f"metrics.get: expected a metric name or a callable "
                        f"(y_true, output) -> float, got {type(metric).__name__}")
    if metric in _NAMES:
        return _NAMES[metric]
    if metric in ("top_k_accuracy", "top_k_categorical_accuracy",
                  "sparse_top_k_categorical_accuracy"):  # Keras' default k is 5 too
        return _top_k(5)
    match = re.fullmatch(r"top_([1-9][0-9]*)_accuracy", metric)
    if match:
        return _top_k(int(match.group(1)))
    known = sorted(_NAMES) + ["top_k_accuracy", "top_<k>_accuracy"]
    lower = metric.lower()  # Keras' class names: "AUC", "Precision"
    hint = f"; did you mean {lower!r}?" if lower in _NAMES else ""
    raise ValueError(f"metrics.get: expected a metric name in {known}, got {metric!r}{hint}")


def name_of(metric: str | Metric) -> str:
    """The key a metric gets in logs and History: its name as given, or ``__name__``.

    Args:
        metric: A metric name or callable, as :func:`get` takes it.
    """
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")


def __getattr__(name: str) -> None:
    """Keras' and PyTorch's names for what backprop spells otherwise: an AttributeError
    naming ours (``backprop.metrics.AUC``: a metric named in ``fit(metrics=['auc'])``)."""
    from ._other_names import missing

    raise missing(name, "backprop.metrics")
