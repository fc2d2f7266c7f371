"""What the metrics take: outputs, labels and targets checked and put in one form (see
:mod:`backprop.metrics`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_array, int64_labels, same_layout, whole_numbers
from .backend import all_finite


def _read(value: Any, who: str, what: str, expected: str = "an array") -> np.ndarray:
    """``as_array(value)``, refusing None and strings first: NumPy reads either as a 0-d
    array, whose shape or dtype error ("got ()") would hide what was passed."""
    if value is None or isinstance(value, (str, bytes)):
        got = "None" if value is None else f"{type(value).__name__} {value!r:.40}"
        raise TypeError(f"{who}: expected {what} as {expected}, got {got}")
    return as_array(value, who, what)


def _numeric(a: np.ndarray, who: str, what: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected {what} as numbers (bool, int or float), got "
                        f"dtype {a.dtype}")
    return a


def _numbers(value: Any, who: str, what: str) -> np.ndarray:
    """``value`` as an array of real numbers (bool, int or float), or a TypeError."""
    return _numeric(_read(value, who, what, "an array of numbers"), who, what)


def _as_output(output: Any, who: str) -> np.ndarray:
    out = _numbers(output, who, "output")
    if out.ndim not in (1, 2) or out.shape[0] == 0:
        raise ValueError(f"{who}: expected output of shape (N,), (N, 1) or (N, C) with N > 0, "
                         f"got {out.shape}")
    return out


def no_nan(out: np.ndarray, who: str) -> np.ndarray:
    """``out``, refused where it holds a NaN score, which every class metric would
    otherwise score silently as some class (``argmax`` ranks NaN first, ``NaN > t`` is
    false: class 0); scikit-learn refuses it too. One pass clears the usual finite output
    (``isnan`` for a batch, :func:`~backprop.backend.all_finite`'s BLAS sum past 4096
    values); ±inf is a score (a saturated logit) and passes."""
    if out.dtype.kind != "f":
        return out
    # small arrays (fit's batches): isnan beats all_finite's BLAS call (1.1 vs 2.3 µs)
    if (np.isnan(out).any() if out.size <= 4096 else
            not all_finite(out) and np.isnan(out).any()):
        raise ValueError(f"{who}: expected scores without NaN, got {np.isnan(out).sum()} "
                         f"NaN of {out.size} (a diverged model?)")
    return out


def finite_scores(output: Any, who: str) -> np.ndarray:
    """The output, checked (``(N,)``, ``(N, 1)`` or ``(N, C)``) and free of NaN
    (:func:`no_nan`)."""
    return no_nan(_as_output(output, who), who)


def decision(threshold: Any, who: str, output_shape: tuple[int, ...] | None = None) -> Any:
    """A binary decision's ``threshold``: a number (±inf too: scikit-learn's ``roc_curve``
    starts from inf), or, given the scored ``output_shape``, an array ``(C,)``, one per
    output column (``C`` its last axis, 1 for ``(N,)``); NaN is refused (it decided every
    sample 0), as is anything that is not real numbers.

    Raises:
        TypeError: a threshold that is not real numbers, or an array where one number
            is expected (no ``output_shape``).
        ValueError: NaN, or an array not of shape ``(C,)`` (``(N, 1)`` would be applied
            per row, not per column).
    """
    if isinstance(threshold, float) and threshold == threshold:  # the usual case, at once
        return threshold
    t = (None if isinstance(threshold, (str, bytes, bool))
         else as_array(threshold, who, "threshold"))
    if t is None or t.dtype.kind not in "iuf" or (t.ndim and output_shape is None):
        kind = "one number" if output_shape is None else "a number (or one per column)"
        raise TypeError(f"{who}: expected threshold as {kind}, got {threshold!r}")
    if np.isnan(t).any():
        raise ValueError(f"{who}: expected threshold as a number, got NaN (every decision "
                         f"would be 0)")
    if t.ndim == 0 or output_shape is None:  # a number (arrays without a shape: refused)
        return float(t)
    columns = output_shape[-1] if len(output_shape) >= 2 else 1
    if t.shape != (columns,):
        raise ValueError(f"{who}: expected threshold as one number or one per output "
                         f"column, shape ({columns},) for the output of shape "
                         f"{tuple(output_shape)}, got an array of shape {t.shape}")
    return t


def predicted_labels(output: Any, threshold: float = 0.0) -> np.ndarray:
    """Class predictions: ``argmax`` over ``(N, C)`` scores, ``output > threshold`` for binary.

    Args:
        output: Scores ``(N, C)``, or one binary score per sample ``(N,)`` / ``(N, 1)``.
        threshold: The decision threshold for binary scores (0 for logits, 0.5 for
            probabilities).

    Returns:
        Integer labels ``(N,)``.

    Raises:
        ValueError: a NaN score (it has no class) or threshold, or an output not
            ``(N,)``, ``(N, 1)`` or ``(N, C)`` with ``N > 0``.
        TypeError: an output or threshold that is not real numbers.
    """
    threshold = decision(threshold, "predicted_labels")
    return predictions(finite_scores(output, "predicted_labels"), threshold)


def predictions(out: np.ndarray, threshold: Any) -> np.ndarray:
    """:func:`predicted_labels` of an output already checked (the metrics check it once)."""
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(axis=1)
    return (out.reshape(-1) > threshold).astype(np.int64)


def _zero_one_rows(y: np.ndarray) -> bool:
    """Rows ``(N, C)``, ``C >= 2``, of 0s and 1s."""
    return (y.ndim == 2 and y.shape[1] >= 2 and y.dtype.kind in "biuf"
            and bool(((y == 0) | (y == 1)).all()))


def is_one_hot(y: np.ndarray) -> bool:
    """Rows of 0s and 1s with one 1 each: labels, one-hot."""
    return _zero_one_rows(y) and bool((y.sum(axis=1) == 1).all())


def refuse_multi_label(y: np.ndarray, who: str, advice: str, what: str = "y_true") -> None:
    """Rows of 0/1 that are not one-hot are several labels per sample: their argmax (the
    label of a one-hot row) would take them silently wrong."""
    if _zero_one_rows(y) and not (y.sum(axis=1) == 1).all():
        raise ValueError(f"{who}: expected one label per sample in {what} (labels (N,), one-hot or "
                         f"probability rows), got rows of 0/1 that are not one-hot "
                         f"(several labels per sample, or none): {advice}")


def labels_of(y_true: Any, n: int, who: str,
              advice: str = "score multi-label targets with 'binary_accuracy'",
              what: str = "y_true") -> np.ndarray:
    """Integer labels (N,) from labels, or from one-hot / probability rows
    (N, C); rows of several labels are refused with ``advice`` (their argmax would take
    them silently wrong), as are rows of strings or with NaN (their argmax is some
    class). ``what`` names the argument in messages."""
    y = _read(y_true, who, what, "an array of class labels")
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected integer class labels in {what}, got dtype "
                        f"{y.dtype}{_NAMES_HINT if y.dtype.kind in 'OSU' else ''}")
    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind == "f" and not all_finite(y):
            raise ValueError(f"{who}: expected {what} rows (one-hot or probabilities) of "
                             f"finite numbers, got {np.count_nonzero(~np.isfinite(y))} NaN "
                             f"or infinite of {y.size}")
        refuse_multi_label(y, who, advice, what)
        y = y.argmax(axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise ValueError(f"{who}: expected {what} of shape ({n},) to match the output, "
                         f"got {np.shape(y_true)}")
    if y.dtype.kind == "f":
        if not whole_numbers(y):
            raise ValueError(f"{who}: expected integer class labels in {what}, got "
                             "non-integer or non-finite values")
        y = int64_labels(y, who)
    return y


_NAMES_HINT = " (class names: number them, e.g. classes, y = np.unique(y, return_inverse=True))"


def _error(y_true: Any, output: Any, who: str) -> np.ndarray:
    """``output - y_true`` in the output's float dtype (float64 for integer or bool
    output, so neither truncates nor wraps); any output ``(N, ...)`` (a sequence's
    ``(N, T, F)`` too, as Keras' mae/mse take it); targets may be (N,) for (N, 1)."""
    out = _numbers(output, who, "output")
    if out.size == 0 or out.ndim < 1:  # (0, ...) or a zero-width (N, 0): a mean of nothing
        raise ValueError(f"{who}: expected output of shape (N, ...) with N > 0 and no axis "
                         f"of length 0, got {out.shape}")
    if out.dtype.kind != "f":
        out = out.astype(np.float64)
    y = _numbers(y_true, who, "y_true")
    if y.shape != out.shape:
        if not same_layout(y.shape, out.shape):  # (N,) for (N, 1), not (N, F, T)
            raise ValueError(f"{who}: expected y_true of shape {out.shape}, got {y.shape}")
        y = y.reshape(out.shape)
    if y.dtype.kind == "f" and not np.isfinite(y).all():  # r2 would score NaN targets 0
        raise ValueError(f"{who}: expected finite y_true, got {np.count_nonzero(~np.isfinite(y))} "
                         f"NaN or infinite of {y.size}")
    return out - y.astype(out.dtype, copy=False)


def same_rank(y: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y, out)`` of one rank where they differ by a trailing axis of 1, Keras' rule
    (``squeeze_or_expand_to_same_rank``): targets ``(N,)`` against a one-column output
    ``(N, 1)`` give ``(N,)`` both, and a column of labels ``(N, 1)`` against ``(N,)``
    scores too, so ``np.abs(y - out)`` in a user's metric is not an (N, N) broadcast."""
    if y.ndim == out.ndim + 1 and y.shape[-1] == 1:
        y = y[..., 0]
    elif out.ndim == y.ndim + 1 and out.shape[-1] == 1:
        out = out[..., 0]
    return y, out


def call_metric(fn: Any, y: np.ndarray, out: np.ndarray) -> Any:
    """``fn(y, out)``; a user's metric gets them of one rank (:func:`same_rank`), as Keras
    gives them; backprop's own take every documented shape as it is."""
    if getattr(getattr(fn, "func", fn), "__module__", "").startswith("backprop."):
        return fn(y, out)
    return fn(*same_rank(y, out))


def metric_values(fns: Any, names: Any, y: np.ndarray, out: np.ndarray, who: str) -> list:
    """Each metric of ``fns`` on ``(y, out)`` (a user's metric on :func:`same_rank` of
    them). One that raises keeps its own error, with a note naming it and what metrics
    are given (a library's metric, say scikit-learn's ``accuracy_score``, would
    otherwise name neither)."""
    values: list = []
    try:
        for fn in fns:
            values.append(call_metric(fn, y, out))
    except Exception as err:
        if hasattr(err, "add_note"):  # Python 3.11+; 3.10 shows the error alone
            err.add_note(f"{who}: raised by the metric {names[len(values)]!r}, called as "
                         f"metric(y_true, output) with y_true {y.shape} and output "
                         f"{out.shape}: the model's raw output (logits, for a loss that "
                         f"takes them; a metric wanting classes must take the argmax "
                         f"itself)")
        raise
    return values
