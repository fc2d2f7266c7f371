"""train_test_split's checks, its stratified draw and its pandas-shaped halves (see
:func:`backprop.data.train_test_split`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_array, in_range


def _test_count(test_size: Any, n: int) -> int:
    if isinstance(test_size, (list, tuple)) or np.ndim(test_size) > 0:
        try:
            shape = str(np.shape(test_size))
        except ValueError:  # a ragged list, which NumPy gives no shape
            shape = f"({len(test_size)}, ...), ragged,"
        raise TypeError("train_test_split: expected test_size to be a number, got an array "
                        f"of shape {shape} (arrays to split go before it: "
                        "train_test_split(x, y, w, test_size=0.2))")
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        count = int(test_size)
    else:
        if isinstance(test_size, np.floating) and np.finfo(test_size).bits < 64:
            # np.float32(0.3) is 0.30000001192...: its decimal 0.3, not one sample more
            test_size = float(np.format_float_positional(test_size, unique=True))
        frac = in_range(test_size, "test_size", "train_test_split", 0.0, 1.0,
                        low_open=True, high_open=True)
        count = int(np.ceil(frac * n))
    if n < 2:
        raise ValueError(f"train_test_split: expected at least 2 samples to split into a "
                         f"train and a test set, got {n}")
    if not 0 < count < n:
        raise ValueError(f"train_test_split: expected a test set of 1 to {n - 1} samples "
                         f"out of {n}, got test_size={test_size!r} ({count} samples)")
    return count


def _stratified_test(y: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Test indices with each class's share: floor quotas, then largest remainders (ties
    broken at random, as scikit-learn does)."""
    if y.ndim == 2 and y.dtype.kind in "biuf":  # scikit-learn's: each distinct row a class
        if np.isnan(y).any():  # ((N, 1): the column)
            raise ValueError("train_test_split: expected labels to stratify by without NaN "
                             "(as scikit-learn), got some NaN")
        y = np.unique(y, axis=0, return_inverse=True)[1].reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"train_test_split: expected labels (N,) or rows (N, k) of numbers "
                         f"to stratify, got shape {y.shape}")
    try:
        missing = bool(np.any(y != y))  # NaN (also inside an object array)
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    except TypeError as err:  # None among strings, say
        raise TypeError(f"train_test_split: expected labels to stratify by of one kind (all "
                        f"numbers or all strings), got {err}") from None
    if missing:
        raise ValueError("train_test_split: expected labels to stratify by without NaN (as "
                         "scikit-learn), got some NaN")
    if counts.min() < 2:
        raise ValueError(f"train_test_split: expected every class to stratify by to have 2 "
                         f"or more members, got {int((counts < 2).sum())} of {classes.size} "
                         "classes with one (continuous targets cannot be stratified)")
    if not classes.size <= n_test <= y.shape[0] - classes.size:
        raise ValueError(f"train_test_split: expected a test set and a training set of at "
                         f"least {classes.size} samples each (one per class), got "
                         f"{n_test} and {y.shape[0] - n_test}")
    exact = counts * (n_test / y.shape[0])
    quota = np.floor(exact).astype(np.int64)
    extra = n_test - quota.sum()
    order = rng.permutation(classes.size)  # a random order among equal remainders
    quota[order[np.argsort(-(exact - quota)[order], kind="stable")][:extra]] += 1
    parts = [rng.permutation(np.flatnonzero(inverse == c))[:q] for c, q in enumerate(quota)]
    return np.concatenate(parts)


def rows_of(v: Any, who: str, name: str) -> Any:
    """``v`` checked as an array of rows; a pandas DataFrame or Series as it is, whatever
    its dtypes (strings, categories, dates: its rows are taken by ``.iloc``, as
    scikit-learn's split takes them)."""
    return v if _is_pandas(v) else as_array(v, who, name)


def _is_pandas(v: Any) -> bool:
    return hasattr(v, "iloc") and hasattr(v, "columns" if v.ndim == 2 else "name")


def take(original: Any, array: np.ndarray, rows: np.ndarray) -> Any:
    """``array[rows]``, or for a pandas DataFrame or Series the same rows of ``original``
    (``.iloc``: its columns, dtypes and index come along, as in scikit-learn's split)."""
    return original.iloc[rows] if _is_pandas(original) else array[rows]


def label_values_error(labels: np.ndarray, who: str) -> Exception:
    """The error for labels that are not ``(N,)`` whole numbers: the shape (ValueError)
    when that is wrong, else the values, naming one (a ValueError for other numbers, as
    1.5 or NaN; a TypeError for another dtype, as strings)."""
    if labels.ndim != 1:
        return ValueError(f"{who}: expected integer labels of shape (N,), got shape "
                          f"{labels.shape}")
    if labels.dtype.kind not in "biuf":
        kind = "str" if labels.dtype.kind in "US" else labels.dtype
        return TypeError(f"{who}: expected integer labels, got {kind} values")
    odd = labels[~(np.isfinite(labels) & (labels == np.round(labels)))]
    return ValueError(f"{who}: expected integer labels (whole numbers), got {labels.dtype} "
                      f"values such as {odd[0] if odd.size else labels[0]}")
