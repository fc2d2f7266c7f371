"""Data helpers: minibatches, train/test splits, one-hot labels, standardization.

Randomness comes from an ``rng`` argument (a Generator or a seed), never from
the global ``np.random`` state. ``fit`` draws its batches with
:func:`batch_indices`, the same helper :func:`minibatches` uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ._split import _stratified_test, _test_count, label_values_error, rows_of, take
from ._validate import (
    _fmt_shape,
    _shape_hint,
    as_array,
    boolean,
    check_classes,
    check_size,
    fits,
    int64_labels,
    label_span,
    nonneg_int,
    positive_int,
    whole_numbers,
)
from .initializers import make_rng

__all__ = ["batch_indices", "minibatches", "train_test_split", "one_hot", "Standardizer",
           "standardize"]


def batch_indices(n: int, batch_size: int, *, shuffle: bool = True,
                  rng: np.random.Generator | int | None = None,
                  drop_last: bool = False) -> Iterator[np.ndarray]:
    """Yield index arrays that cover ``range(n)`` once each, ``batch_size`` at a time.

    Shuffling permutes the indices, never the data: one ``rng.permutation(n)``
    per pass, and each batch is then gathered with ``x[idx]``.

    Args:
        n: Number of samples (an int >= 0; 0 yields nothing).
        batch_size: Indices per batch (an int >= 1); the last batch is smaller
            unless ``drop_last``.
        shuffle: Draw a fresh order from ``rng``; else 0..n-1 in order.
        rng: Generator or seed that orders the samples (a fresh unseeded
            Generator when None, as in :func:`minibatches`).
        drop_last: Skip a final batch smaller than ``batch_size``.

    Raises:
        TypeError, ValueError: ``n`` or ``batch_size`` is not an int in range,
            ``shuffle`` or ``drop_last`` is not a bool, or ``rng`` is not a Generator,
            an int seed or None. Raised here, at the call, not at the first ``next()``.
    """
    n = nonneg_int(n, "n", "batch_indices")
    batch_size = positive_int(batch_size, "batch_size", "batch_indices")
    shuffle = boolean(shuffle, "shuffle", "batch_indices")
    drop_last = boolean(drop_last, "drop_last", "batch_indices")
    stop = n - n % batch_size if drop_last else n
    if not shuffle:  # no array of all n indices (n may be huge); rng checked, not drawn
        if rng is not None:
            make_rng(rng, "batch_indices")
        return (np.arange(start, min(start + batch_size, stop))
                for start in range(0, stop, batch_size))
    fits("batch_indices", (n,), np.int64, None, f"n {n:,}: a shuffled order")  # (its size)
    order = make_rng(rng, "batch_indices").permutation(n)
    return (order[start:start + batch_size] for start in range(0, stop, batch_size))


def minibatches(n_or_arrays: Any, batch_size: int, *, shuffle: bool = True,
                rng: np.random.Generator | int | None = None,
                drop_last: bool = False) -> Iterator[Any]:
    """Iterate over minibatches, each sample once per pass.

    Args:
        n_or_arrays: A sample count ``n`` (yields index arrays), one array (yields
            its batches), or a tuple/list of arrays of equal length (yields tuples
            of batches, e.g. ``for xb, yb in minibatches((x, y), 32, rng=0)``); a list
            of rows (plain lists or numbers, no arrays) is one array, as NumPy reads it.
        batch_size: Samples per batch (an int >= 1).
        shuffle: Visit samples in a random order drawn from ``rng``.
        rng: Generator or seed (a fresh unseeded Generator when None).
        drop_last: Skip a final batch smaller than ``batch_size``.

    Raises:
        ValueError: arrays of unequal length, or ``batch_size < 1`` (raised at the
            call, not at the first ``next()``).
        TypeError: ``batch_size`` is not an int, ``shuffle`` or ``drop_last`` is not
            a bool, ``n_or_arrays`` is no count or array (a float, None, a dict), or
            ``rng`` is no Generator, seed or None.
    """
    batch_size = positive_int(batch_size, "batch_size", "minibatches")
    shuffle = boolean(shuffle, "shuffle", "minibatches")
    drop_last = boolean(drop_last, "drop_last", "minibatches")
    if isinstance(n_or_arrays, (int, np.integer)) and not isinstance(n_or_arrays, bool):
        if n_or_arrays < 0:
            raise ValueError(f"minibatches: expected a sample count >= 0, got {n_or_arrays}")
        n, arrays = int(n_or_arrays), None
    elif isinstance(n_or_arrays, tuple) or (isinstance(n_or_arrays, list) and any(
            hasattr(a, "shape") for a in n_or_arrays)):  # several arrays
        arrays = [as_array(a, "minibatches", f"array {i}") for i, a in enumerate(n_or_arrays)]
        n = _common_length(arrays, "minibatches")
    else:
        if n_or_arrays is None or isinstance(n_or_arrays, (float, bool, np.bool_, dict)):
            raise TypeError(f"minibatches: expected a sample count (an int), an array or a "
                            f"tuple of arrays, got {type(n_or_arrays).__name__}")
        arrays = as_array(n_or_arrays, "minibatches", "the array")
        n = _common_length([arrays], "minibatches")
    gen = make_rng(rng, "minibatches") if shuffle or rng is not None else None
    if shuffle:  # named here, not by the batch_indices it calls
        fits("minibatches", (n,), np.int64, None, f"n {n:,}: a shuffled order")
    order = batch_indices(n, batch_size, shuffle=shuffle, rng=gen, drop_last=drop_last)
    if arrays is None:
        return order
    if isinstance(arrays, list):
        return (tuple(a[idx] for a in arrays) for idx in order)
    return (arrays[idx] for idx in order)


def _common_length(arrays: list[np.ndarray], who: str) -> int:
    lengths = [a.shape[0] if a.ndim else -1 for a in arrays]
    if not arrays or min(lengths) < 0 or len(set(lengths)) != 1:
        raise ValueError(f"{who}: expected arrays with one common first dimension, "
                         f"got shapes {[a.shape for a in arrays]}")
    return lengths[0]


def train_test_split(*arrays: Any, test_size: float | int = 0.2, stratify: Any = False,
                     rng: np.random.Generator | int | None = None) -> tuple[Any, ...]:
    """Split arrays of samples (``x, y``; or ``x, y, sample_weight``...) at random, the
    same rows for each, into ``x_train, x_test, y_train, y_test, ...``.

    Args:
        *arrays: One or more arrays with the same first dimension N: samples (N, ...),
            labels or targets (N, ...), weights... (scikit-learn's ``*arrays``). The
            older call ``train_test_split(x, y, 0.25)`` still reads the number as
            ``test_size``.
        test_size: Fraction in (0, 1) (rounded up, as scikit-learn does) or a count
            (default 0.2, as ``datasets.digits``' split; scikit-learn's is 0.25).
        stratify: True keeps each class's share of ``y`` (the second array, labels (N,))
            in both parts; an array of N labels stratifies by those instead
            (scikit-learn's ``stratify=y``); False or None (scikit-learn's default) does
            not stratify. Every class needs 2 or more members, and the test set at least
            one sample per class, as in scikit-learn.
        rng: Generator or seed.

    Returns:
        A train and a test part of each array, in the order given, each in a random
        order: arrays, or for a pandas DataFrame or Series its rows as one (``.iloc``,
        index kept), as scikit-learn's split returns them.
    """
    if len(arrays) == 3 and isinstance(arrays[2], (int, float, np.integer, np.floating)):
        *arrays, test_size = arrays  # the older signature: (x, y, test_size)
    if not arrays:
        raise TypeError("train_test_split: expected at least one array of samples "
                        "(train_test_split(x, y, test_size=0.2)), got none")
    names = [("x", "y")[i] if i < 2 else f"array {i}" for i in range(len(arrays))]
    for i, v in enumerate(arrays):  # (not np.ndim: a ragged list is for rows_of to name)
        if v is None or np.isscalar(v) or getattr(v, "ndim", None) == 0:
            raise TypeError(f"train_test_split: expected arrays of samples, got "
                            f"{type(v).__name__} {v!r} as argument {i + 1} (the test share "
                            "goes in test_size=, a number: test_size=0.2)")
    rows = [rows_of(v, "train_test_split", name) for v, name in zip(arrays, names, strict=True)]
    n = _common_length(rows, "train_test_split")
    n_test = _test_count(test_size, n)
    gen = make_rng(rng, "train_test_split")
    if stratify is None:  # scikit-learn's default: no stratification
        stratify = False
    flag = isinstance(stratify, (bool, np.bool_))
    if flag and stratify and len(rows) < 2:
        raise ValueError("train_test_split: stratify=True keeps the shares of y's classes, "
                         "but only x was given; pass y too, or stratify=labels")
    if not flag or stratify:
        labels = np.asarray(rows[1] if flag else rows_of(stratify, "train_test_split",
                                                         "stratify"))
        if not flag and labels.shape[:1] != (n,):
            raise ValueError(f"train_test_split: expected stratify as True/False or {n} "
                             f"labels, got an array of shape {labels.shape}")
        test = _stratified_test(labels, n_test, gen)
    else:
        test = gen.permutation(n)[:n_test]
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    train = gen.permutation(np.flatnonzero(~mask))
    test = gen.permutation(test)
    return tuple(take(v, a, part) for v, a in zip(arrays, rows, strict=True)
                 for part in (train, test))


def one_hot(y: Any, num_classes: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """Rows ``e_{y_i}``: integer labels (N,) -> (N, num_classes).

    Args:
        y: Integer labels in ``[0, num_classes)``, ``(N,)`` or a column ``(N, 1)``;
            floats that are all whole numbers (labels read from a float array, as
            Keras' ``to_categorical`` takes them) count as those integers, and bools
            as 0 and 1.
        num_classes: Width; by default ``1 + y.max()``.
        dtype: Output dtype, a real number one (float32 by default; ints and bool too).

    Raises:
        TypeError: ``dtype`` not a real number dtype (text, complex, object).
        ValueError: labels that are not integers in ``[0, num_classes)``, or an output
            of more than 2**31 elements (a stray huge label would otherwise ask for
            terabytes; see :data:`backprop._validate.MAX_ELEMENTS`).
    """
    try:
        dtype = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"one_hot: expected dtype as a NumPy dtype, got {dtype!r}") from err
    if dtype.kind not in "biuf":
        raise TypeError(f"one_hot: expected a real number dtype (float32, int64, bool...), "
                        f"got {dtype}")
    labels = as_array(y, "one_hot", "labels")
    if labels.ndim == 2 and labels.shape[1] == 1:  # a column of labels, as Keras takes it
        labels = labels[:, 0]
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.ndim == 1 and whole_numbers(labels):
        labels = int64_labels(labels, "one_hot")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise label_values_error(labels, "one_hot")
    span = label_span(labels)
    if labels.size and span[0] < 0:
        raise ValueError(f"one_hot: expected labels >= 0, got {span[0]}")
    hi = span[1]
    if num_classes is None:
        c, source = hi + 1, f"1 + the largest label {hi}"
    else:
        c = positive_int(num_classes, "num_classes", "one_hot")
        source = f"num_classes={c}"
    check_classes(c, "one_hot", span)
    check_size((labels.shape[0], c), "one_hot", source)
    out = np.zeros((labels.shape[0], c), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


class Standardizer:
    """Scale each feature to zero mean and unit variance: ``z = (x - mean_) / std_``.

    Statistics are taken over the first axis with float64 accumulation and kept
    in the data's float dtype (float32 stays float32; integer data gives
    float32), as is the output of :meth:`transform`; input of another dtype (integers,
    such as int64 millisecond timestamps, whose offset float32 would round away) is
    transformed in float64, with fit's float64 statistics, then cast. A constant
    feature (up to the rounding of float64 sums, scikit-learn's
    ``StandardScaler`` rule) gets ``std_ = 1``, so it maps to 0 instead of dividing by
    zero. Features beyond 1e150 (or below 1e-150) are scaled by a power of two first,
    so that their squares stay within float64.

    Fitted on a table with string column names (a pandas DataFrame), it keeps them in
    ``feature_names_in_`` and refuses a table whose columns differ in name or order, as
    scikit-learn's scalers do (the values would be scaled by another column's statistics).

    :meth:`fit` refuses NaN and inf (scikit-learn's ``StandardScaler`` fits around NaN,
    as missing values); :meth:`transform` passes a NaN through as NaN, as scikit-learn's.
    """

    feature_names_in_: np.ndarray | None = None  # a class default: older pickles lack it
    _stats64: tuple[np.ndarray, np.ndarray] | None = None  # mean_, std_ in float64 (too)

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.feature_names_in_ = None

    @property
    def scale_(self) -> np.ndarray | None:
        """``std_`` under scikit-learn's ``StandardScaler`` name (1 for a constant feature)."""
        return self.std_

    def fit(self, x: Any) -> Standardizer:
        """Learn ``mean_`` and ``std_`` from ``x`` (N, ...); returns self."""
        names = _column_names(x)
        x = as_array(x, "Standardizer.fit", "x")
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"Standardizer.fit: expected a non-empty (N, ...) array, "
                             f"got shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"Standardizer.fit: expected x of real numbers, got dtype {x.dtype}")
        if not np.isfinite(x).all():  # one NaN would make its whole feature NaN
            raise ValueError("Standardizer.fit: expected finite values in x, got NaN or inf")
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        big = np.maximum(np.abs(np.asarray(x.max(axis=0), np.float64)),  # max |x| per
                         np.abs(np.asarray(x.min(axis=0), np.float64)))  # feature, no |x| copy
        if ((big > 1e150) | ((big < 1e-150) & (big > 0))).any():
            # squares past ~1e154 overflow float64 (below ~1e-154 they lose precision): each
            # feature over a power of two near its largest magnitude (the scaling rounds
            # nothing), 2**(e - 1) for big = m·2**e, m in [0.5, 1): no 2**1024
            scale = np.ldexp(1.0, np.frexp(np.where(big > 0, big, 1.0))[1] - 1)
            xs = x / scale
            mean = np.asarray(xs.mean(axis=0, dtype=np.float64) * scale)
            std = np.asarray(xs.std(axis=0, dtype=np.float64) * scale)
            del xs
        else:
            mean = np.asarray(x.mean(axis=0, dtype=np.float64))  # 0-d for 1-D x: an array
            std = np.asarray(x.std(axis=0, dtype=np.float64))
        # constant up to the rounding of the sums, scikit-learn's rule (its var <= n·eps·var
        # + (n·eps·mean)², as stds): maps to 0
        n, eps = x.shape[0], np.finfo(np.float64).eps
        const = std <= np.sqrt(n * eps) * std + n * eps * np.abs(mean)
        std[const] = 1.0
        mean = np.where(const, np.asarray(x[0], np.float64), mean)  # (a sum's rounding off)
        self.mean_, self.std_ = mean.astype(dtype), std.astype(dtype)
        self._stats64 = (mean, std)
        self.feature_names_in_ = names
        return self

    def transform(self, x: Any) -> np.ndarray:
        """Return ``(x - mean_) / std_`` in the fitted dtype (computed in float64, then
        cast, for input of another dtype: integers with a large offset keep their
        variation)."""
        x = self._check(x, "transform", cast=False)
        if x.dtype == self.mean_.dtype:  # the fitted float: no copy beyond the result
            return (x - self.mean_) / self.std_
        mean, std = self._stats64 or (self.mean_, self.std_)  # fit's (an old pickle: none)
        if not (np.array_equal(mean.astype(self.mean_.dtype), self.mean_)
                and np.array_equal(std.astype(self.std_.dtype), self.std_)):
            mean, std = self.mean_, self.std_  # set since fit: these
        z = np.subtract(x, mean, dtype=np.promote_types(self.mean_.dtype, np.float64))
        z /= std  # in place: one float64 array, no float32 copy of x first
        return z.astype(self.mean_.dtype, copy=False)

    def fit_transform(self, x: Any) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: Any) -> np.ndarray:
        """Return ``z * std_ + mean_``: undoes :meth:`transform`."""
        z = self._check(z, "inverse_transform")
        return z * self.std_ + self.mean_

    def _check(self, x: Any, method: str, cast: bool = True) -> np.ndarray:
        """``x`` checked, in the fitted dtype (without ``cast``: as it is, if numbers)."""
        if self.mean_ is None:
            raise RuntimeError(f"Standardizer.{method}: expected a fitted Standardizer, "
                               "got one without fit() called first")
        names, fitted = _column_names(x), self.feature_names_in_
        if names is not None and fitted is not None and not np.array_equal(names, fitted):
            seen, given = set(fitted), set(names)
            unseen = [c for c in names if c not in seen][:5]
            missing = [c for c in fitted if c not in given][:5]
            parts = ([f"columns unseen in fit {unseen}"] if unseen else []) + (
                [f"fit's columns missing {missing}"] if missing else [])
            how = "; ".join(parts) or "the same in another order"  # (names never repeat)
            raise ValueError(f"Standardizer.{method}: expected the {len(fitted)} columns it "
                             f"was fitted on, in fit's order, got {len(names)} columns: {how} "
                             "(select them: x[standardizer.feature_names_in_])")
        x = as_array(x, f"Standardizer.{method}", "x", self.mean_.dtype if cast else None)
        if x.dtype.kind not in "biuf":  # strings of numbers, say: read as floats
            x = as_array(x, f"Standardizer.{method}", "x", self.mean_.dtype)
        if x.shape[1:] != self.mean_.shape:  # the layers' message and hints (x[None]...)
            dims = ("N", *self.mean_.shape)
            raise ValueError(f"Standardizer.{method}: expected an array of shape "
                             f"{_fmt_shape(dims)}, got {x.shape}"
                             f"{_shape_hint(dims, x.shape, 'input')}")
        return x

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean_ is None else f"features={self.mean_.shape}"
        return f"Standardizer({fitted})"


def _column_names(x: Any) -> np.ndarray | None:
    """A table's column names when all are strings (scikit-learn's ``feature_names_in_``
    rule) and none repeats (repeated names select more than one column each), else None."""
    columns = getattr(x, "columns", None)
    if columns is None or not hasattr(x, "shape"):
        return None
    names = list(columns)
    ok = names and all(isinstance(c, str) for c in names) and len(set(names)) == len(names)
    return np.asarray(names, dtype=object) if ok else None


def standardize(x_train: Any, *others: Any) -> Any:
    """Standardize ``x_train`` and ``others`` with statistics from ``x_train`` only.

    Args:
        x_train: The features ``(N, ...)`` whose mean and standard deviation are used.
        others: More arrays of the same features (validation, test), scaled alike.

    Returns:
        The standardized ``x_train`` alone, or a tuple ``(x_train, *others)``
        when others are given: ``x_tr, x_te = standardize(x_tr, x_te)``.
    """
    scaler = Standardizer().fit(x_train)
    out = tuple(scaler.transform(a) for a in (x_train, *others))
    return out if others else out[0]


def __getattr__(name: str) -> None:
    """scikit-learn's and Keras' names for what backprop spells otherwise: an
    AttributeError naming ours (``backprop.data.StandardScaler``: ``bp.data.Standardizer``)."""
    from ._other_names import missing

    raise missing(name, "backprop.data")
