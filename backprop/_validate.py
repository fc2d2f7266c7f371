"""Boundary checks shared by layers, losses, optimizers and the training loop.

One helper per kind of check, so every error message has the same shape:
``<who>: expected <what>, got <received>``.
"""

from __future__ import annotations

import errno
import math
import os
import sys
from collections.abc import Sequence
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from .display import one_line as _name

Dim = int | str | None


def float_dtype(dtype: Any, who: str, default: Any = None) -> np.dtype:
    """Return ``dtype`` as a NumPy floating dtype, or raise TypeError naming ``who``.

    None is ``default`` where one is given (a layer's ``dtype=None`` is the default
    float32, as in PyTorch and Keras); without one it is refused, never NumPy's
    reading of None as float64.
    """
    if dtype is None:
        if default is None:
            raise TypeError(f"{who}: expected a floating dtype (float32 or float64), got None")
        dtype = default
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{who}: expected a floating dtype, got {dtype!r}") from err
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{who}: expected a floating dtype (float32 or float64), got {dt}")
    return dt


def _fmt_shape(dims: Sequence[Dim]) -> str:
    names = ["?" if d is None else str(d) for d in dims]
    return "(" + ", ".join(names) + (",)" if len(names) == 1 else ")")


def _shape_hint(dims: Sequence[Dim], shape: tuple[int, ...], what: str) -> str:
    """What fixes the common slips: one sample without its batch axis, or images into a
    layer that takes flat rows."""
    if what != "input" or not dims or dims[0] != "N":
        return ""
    fixed = [d for d in dims[1:] if isinstance(d, int)]
    if fixed and len(shape) == len(dims) - 1 and all(  # a fixed size tells them apart
            not isinstance(d, int) or d == s for d, s in zip(dims[1:], shape, strict=True)):
        return " (one sample? add the batch axis: x[None])"
    if len(dims) == 2 and fixed == [1] and len(shape) == 1:
        return " (one feature per sample? x.reshape(-1, 1))"
    if (len(dims) == 2 and fixed and len(shape) > 2
            and int(np.prod(shape[1:])) == fixed[0]):
        return " (images or sequences into a layer of flat rows? put a Flatten() before it)"
    return ""


def check_array(x: Any, who: Any, dims: Sequence[Dim], dtype: np.dtype | None = None,
                what: str = "input") -> None:
    """Check that ``x`` is an array of the given rank, fixed sizes and dtype.

    Args:
        x: The array received.
        who: The layer or function receiving it; formatted with ``str`` only when
            an error is raised (a layer's repr is too slow for every call).
        dims: One entry per axis: an int must match exactly; a str (``"N"``) or
            None accepts any size and only names the axis in the message.
        dtype: When given, ``x.dtype`` must equal it (TypeError otherwise).
        what: What ``x`` is, for the message ("input", "dy", "target").

    Raises:
        TypeError: ``x`` is not an array, or has the wrong dtype.
        ValueError: ``x`` has the wrong rank or a wrong fixed size.
    """
    if type(x) is not np.ndarray:  # (a plain ndarray skips this: every layer call asks)
        check_kind(x, who, what, dtype)
    shape = x.shape
    bad = len(shape) != len(dims)
    if not bad:  # a plain loop: any(<generator>) took twice as long, on every layer call
        for d, s in zip(dims, shape, strict=True):
            if isinstance(d, int) and d != s:
                bad = True
                break
    if bad:
        raise ValueError(f"{_name(who)}: expected {what} of shape {_fmt_shape(dims)}, got "
                         f"{tuple(shape)}{_shape_hint(dims, tuple(shape), what)}")
    if dtype is not None and x.dtype != dtype:
        hint = f"cast once with .astype(np.{dtype})"
        if x.dtype in (np.float32, np.float64):
            hint += f", or build the model with dtype=np.{x.dtype}"
        raise TypeError(f"{_name(who)}: expected {what} of dtype {dtype}, got {x.dtype} ({hint})")


def check_kind(x: Any, who: Any, what: str, dtype: Any = None) -> None:
    """A TypeError unless ``x`` is a NumPy ndarray (a subclass such as ``np.memmap`` too,
    not ``np.matrix`` or a masked array) or a CuPy array: a pandas Series, a torch tensor
    or a masked array has a shape and a dtype, but the layers' NumPy calls would fail on
    it, return its own type, or drop its mask."""
    package = type(x).__module__.split(".")[0]
    if getattr(x, "shape", None) is None or not hasattr(x, "dtype"):
        raise TypeError(f"{_name(who)}: expected {what} as an array, got {type(x).__name__}"
                        + (" (pass x.to_numpy())" if package == "pandas" else ""))
    if isinstance(x, np.matrix):  # its * is a matrix product: every layer would go wrong
        raise TypeError(f"{_name(who)}: expected {what} as an ndarray, got np.matrix (whose * "
                        f"multiplies matrices): pass np.asarray(x)")
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{_name(who)}: expected {what} as a plain ndarray, got a masked array (a "
                        f"layer would use the hidden values under its mask): fill it, "
                        f"a.filled(value), or pass np.asarray(a) if nothing is masked")
    if isinstance(x, np.ndarray) or package == "cupy":
        return
    hint = {"torch": "convert with t.detach().cpu().numpy()",
            "pandas": "pass x.to_numpy()"}.get(package, "pass np.asarray(x)")
    of = "" if dtype is None else f" of dtype {dtype}"
    raise TypeError(f"{_name(who)}: expected {what} as a NumPy array{of}, got a {package}."
                    f"{type(x).__name__} of dtype {x.dtype} ({hint})")


def same_layout(shape: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` holds the values of one of ``want`` in the same order,
    differing only by axes of size 1 after the first: ``(N,)`` for ``(N, 1)``, not
    ``(N, F, T)`` or ``(N, T·F)`` for ``(N, T, F)``, which a reshape would misalign."""
    def squeezed(s: tuple[int, ...]) -> tuple[int, ...]:
        return (*s[:1], *(d for d in s[1:] if d != 1))
    return squeezed(shape) == squeezed(want)


def listlike(value: Any) -> bool:
    """An iterable of items (a list, tuple, 1-D array, iterator): not a str or bytes,
    nor a 0-d array (which has ``__iter__`` but cannot be iterated)."""
    return (not isinstance(value, (str, bytes)) and hasattr(value, "__iter__")
            and getattr(value, "ndim", 1) != 0)


def whole_numbers(a: np.ndarray) -> bool:
    """Whether ``a`` is a float array of finite whole numbers only: labels read as floats
    (from a CSV, or ``np.array([0., 2., 1.])``), which the label-taking functions accept."""
    return (a.dtype.kind == "f" and bool(np.isfinite(a).all())
            and bool(np.array_equal(a, np.round(a))))


def as_array(value: Any, who: Any, what: str, dtype: Any = None) -> np.ndarray:
    """``np.asarray(value, dtype)``, with a TypeError naming ``who`` and ``what`` where
    NumPy cannot read it as one (ragged nested lists, strings for a float dtype).

    A table (pandas DataFrame or Series) that NumPy reads as objects, such as float and
    bool columns side by side (``pandas.get_dummies``) or nullable ``Int64`` columns with
    missing values, becomes float64 (missing values NaN, which the callers refuse) when
    every column is numeric or bool; otherwise the TypeError names the first other column.
    A PyTorch tensor that requires grad is read as its values (``detach()``)."""
    if hasattr(value, "toarray") and hasattr(value, "nnz"):  # a SciPy sparse matrix
        raise TypeError(f"{who}: expected {what} as a dense numeric array, got a sparse "
                        f"{type(value).__name__} (call .toarray() on it, or on each batch)")
    check_unmasked(value, who, what)
    if getattr(value, "requires_grad", False) and type(value).__module__.startswith("torch"):
        value = value.detach()  # its values: backprop keeps no autograd graph to join
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who}: expected {what} as a numeric array, got "
                        f"{type(value).__name__} that NumPy cannot read as one ({err})") from err
    if arr.dtype == object and dtype is None and hasattr(value, "dtypes"):
        return _numeric_table(value, who, what)
    return arr


def gib(size: int) -> str:
    """``size`` bytes in GiB for a message (``about 2**k`` past float's range)."""
    return f"{size / 2**30:,.1f}" if size < 1 << 1000 else f"about 2**{size.bit_length() - 30}"


def _memory() -> int:
    """This machine's physical memory in bytes (2**62 where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 1 << 62


MEMORY = _memory()


def fits(layer: object, shape: tuple[int, ...], dtype: Any, x_shape: tuple[int, ...] | None,
         what: str = "output") -> None:
    """A MemoryError naming ``layer`` (or a function's name) when an array of ``shape``
    (its ``what``, for an input of ``x_shape``) would take more than this machine's memory:
    a padding, output size, scale or count typed wrong asks for terabytes, and NumPy's own
    error (a MemoryError or, past 2**63 bytes, a ValueError) names neither the callee nor
    the argument."""
    size = prod(shape) * np.dtype(dtype).itemsize
    if size >= min(MEMORY, 1 << 62):
        given = "" if x_shape is None else f"an input of shape {tuple(x_shape)} whose "
        raise MemoryError(f"{layer}: expected arguments that fit this machine's memory "
                          f"({gib(MEMORY)} GiB), got {given}{what} of shape "
                          f"{tuple(shape)} ({gib(size)} GiB of {np.dtype(dtype)})")


def check_unmasked(value: Any, who: Any, what: str) -> None:
    """A NumPy masked array with masked entries is refused: ``np.asarray`` would drop the
    mask and train on the hidden values beneath it."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.getmaskarray(value).any():
        raise ValueError(f"{who}: expected {what} without masked entries, got a masked array "
                         f"with {int(np.ma.getmaskarray(value).sum())} masked (their hidden "
                         f"values would be used: fill them, e.g. .filled(0), or drop those "
                         f"samples)")


def _numeric_table(table: Any, who: Any, what: str) -> np.ndarray:
    dtypes = table.dtypes
    if not hasattr(dtypes, "items"):  # a Series: one column, perhaps labels
        if getattr(dtypes, "kind", "O") not in "biuf":
            hint = (" (class names: number them, e.g. classes, y = np.unique(y, "
                    "return_inverse=True))" if what in ("y", "y_true", "target") else "")
            raise TypeError(f"{who}: expected {what} of numbers, got a {type(table).__name__} "
                            f"of dtype {dtypes}{hint}")
        dtypes = {table.name: dtypes}
    for name, dt in dtypes.items():
        if getattr(dt, "kind", "O") not in "biuf":
            raise TypeError(f"{who}: expected {what} with numeric or bool columns, got column "
                            f"{name!r} of dtype {dt} (encode it first, e.g. with "
                            f"pandas.get_dummies)")
    return np.asarray(table.to_numpy(dtype=np.float64, na_value=np.nan))


def sample_shape(value: Any, who: str, indices: bool = False) -> tuple[int, ...]:
    """One sample's shape (no batch axis) as a tuple of ints >= 1 (an int ``n`` is ``(n,)``,
    a list a tuple). With ``indices`` (a model that starts with an Embedding), ``()`` is
    a sample of one index. A TypeError (not ints) or ValueError (a size < 1) names ``who``."""
    shape = (value,) if isinstance(value, (int, np.integer)) else value
    shape = tuple(shape) if isinstance(shape, list) else shape
    ints = isinstance(shape, tuple) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape)
    if not ints or not (shape or indices) or (shape and min(shape) < 1):
        raise (ValueError if ints else TypeError)(
            f"{who}: expected input_shape as a tuple of positive ints (one sample's shape, "
            f"e.g. (784,)), got {value!r}")
    return tuple(int(d) for d in shape)


def positive_int(value: Any, name: str, who: str) -> int:
    """Return ``value`` as an int >= 1, or raise ValueError/TypeError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who}: expected {name} to be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{who}: expected {name} >= 1, got {value}")
    return int(value)


def nonneg_int(value: Any, name: str, who: str) -> int:
    """Return ``value`` as an int >= 0, or raise TypeError (not an int) / ValueError (< 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who}: expected {name} to be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{who}: expected {name} >= 0, got {value}")
    return int(value)


def in_range(value: Any, name: str, who: str, low: float, high: float = float("inf"),
             low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a Python float inside [low, high] (ends optionally open).

    Hyperparameters are kept as Python floats so that, under NEP 50, they never
    upcast float32 arrays. NaN and infinities are refused (a learning rate of inf is
    a typo, not a setting).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{who}: expected {name} to be a number, got {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond any float (10**400)
        v = math.inf
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if not (lo_ok and hi_ok and math.isfinite(v)):
        lo = "(" if low_open or low == -math.inf else "["
        hi = ")" if high_open or high == float("inf") else "]"
        raise ValueError(f"{who}: expected {name} in {lo}{low}, {high}{hi} (finite), "
                         f"got {value!r}")
    return v


def boolean(value: Any, name: str, who: str) -> bool:
    """A boolean option: only True/False (a truthy string such as 'no' is a mistake)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: expected {name} to be True or False, got "
                        f"{type(value).__name__} {value!r}")
    return bool(value)


MAX_ELEMENTS = 2**31
"""The largest array a label may make a function allocate (one_hot, confusion_matrix): 8 GiB
of float32. A class count from one stray label is a data error, not a wish for terabytes."""


def check_size(shape: Sequence[int], who: str, source: str) -> None:
    """Refuse, before allocating, an array of more than :data:`MAX_ELEMENTS` elements;
    ``source`` says where its size came from ("1 + the largest label 10**6")."""
    size = math.prod(int(s) for s in shape)  # Python ints: never overflows
    if size > MAX_ELEMENTS:
        raise ValueError(f"{who}: expected an output of at most 2**31 elements, got shape "
                         f"{tuple(int(s) for s in shape)} ({size:,} elements) from {source}")


def int64_labels(a: np.ndarray, who: str) -> np.ndarray:
    """Whole-number float labels (see :func:`whole_numbers`) as int64, refusing values
    beyond the int64 range (the cast would wrap them to garbage)."""
    big = float(np.abs(a).max(initial=0))
    if big >= 2.0**63:
        raise ValueError(f"{who}: expected integer class labels below 2**63, got {big:g}")
    return a.astype(np.int64)


def as_path(path: Any, who: str, file: bool = False) -> Path:
    """A file or folder argument (a str or an ``os.PathLike`` naming a str) as a Path,
    or a TypeError naming ``who`` (None, ints, bytes...). A ``file`` path may not be
    empty (ValueError; ``Path("")`` is the current folder) nor end in a separator
    (IsADirectoryError, as ``open`` raises; ``Path`` drops it)."""
    try:
        text = os.fspath(path)
    except TypeError:
        text = None
    if not isinstance(text, str):
        raise TypeError(f"{who}: expected path as a str or os.PathLike, got "
                        f"{type(path).__name__} {path!r:.80}")
    if file and not text:
        raise ValueError(f"{who}: expected a file path, got an empty one")
    if "\x00" in text:  # the OS's "embedded null byte" named neither the call nor the path
        raise ValueError(f"{who}: expected a path without NUL characters, got {text!r}")
    if file and text.endswith((os.sep, os.altsep or os.sep)):
        raise IsADirectoryError(errno.EISDIR, f"{who}: expected a file path, got {text!r}, "
                                f"which ends in a folder separator")
    return Path(text)


def label_span(*labels: np.ndarray) -> tuple[int, int]:
    """Smallest and largest label over ``labels``, as Python ints ((0, -1) when empty)."""
    lo = min((int(y.min()) for y in labels if y.size), default=0)
    return lo, max((int(y.max()) for y in labels if y.size), default=-1)


def check_classes(c: int, who: str, span: tuple[int, int]) -> None:
    """Refuse labels outside ``[0, c)`` (the classes of scores (N, C), a one-hot width
    or a confusion matrix), given their :func:`label_span`."""
    lo, hi = span
    if lo < 0 or hi >= c:
        raise ValueError(f"{who}: expected labels in [0, {c}), got values from {lo} to {hi}")


def caller_level() -> int:
    """``stacklevel`` for a ``warnings.warn`` in the calling function that points at the
    user's code: the first frame outside this package (``model.fit`` and ``bp.fit`` reach
    the same check through different depths)."""
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep  # not backprop_demo/
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame, level = frame.f_back, level + 1
    return level


def sample_weights(w: Any, n: int, dtype: np.dtype, who: Any, what: str = "sample_weight",
                   steps: tuple[int, ...] | None = None) -> np.ndarray | None:
    """Per-sample weights ``(N,)`` in ``dtype`` (a column ``(N, 1)`` too, as Keras takes
    it), finite and >= 0; None stays None. Shared by ``fit`` and the losses. ``steps``:
    per-step weights are taken too (Keras' temporal ``sample_weight``), ``(N, T, ...)``
    with the leading axes of ``steps`` (a loss's losses), or any ``(N, ...)`` for
    ``steps=()`` (fit, which leaves the rest to its loss)."""
    if w is None:
        return None
    raw = as_array(w, who, what)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected {what} as a real numeric array (N,), got "
                        f"{type(w).__name__} of dtype {raw.dtype}")
    ws = raw.astype(dtype, copy=False)
    if ws.shape == (n, 1):  # a column, as Keras takes it
        ws = ws.reshape(n)
    per_step = steps is not None and ws.ndim > 1 and ws.shape[0] == n and (
        steps == () or ws.shape == tuple(steps[:ws.ndim]))
    if ws.shape != (n,) and not per_step:
        also = ("" if steps is None or len(steps) == 1 else
                f", or per step {tuple(steps[:2])}, the leading axes of the losses "
                f"{tuple(steps)}" if steps else ", or per step (N, T, ...)")
        raise ValueError(f"{who}: expected {what} of shape ({n},), one per sample{also}, "
                         f"got {ws.shape}")
    if not np.isfinite(ws).all():
        raise ValueError(f"{who}: expected finite {what}, got "
                         f"{np.count_nonzero(~np.isfinite(ws))} NaN or infinite value(s)")
    if (ws < 0).any():
        raise ValueError(f"{who}: expected non-negative {what}, got values from "
                         f"{ws.min()} to {ws.max()}")
    return ws
