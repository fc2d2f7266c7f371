"""The arrays of ``fit``/``evaluate``/``predict``: cast once, checked once.

Inputs are cast to the model dtype (float targets too) and checked for NaN/Inf (the
indices of a first Embedding are kept as integers and checked against its table);
sample weights, ``class_weight`` and the validation data are checked and built here,
so the training loop does no per-batch conversion.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import metrics as metrics_module
from ._metric_inputs import is_one_hot
from ._validate import as_array, caller_level, in_range, sample_weights
from .backend import all_finite
from .layers.embedding import index_layer


def inputs(x: Any, model: Any, who: str, what: str) -> np.ndarray:
    """``x`` as a C-contiguous array of the model dtype (no copy if it already is one);
    for a model that starts with an Embedding, its indices as integers, checked here
    before the first batch (the layer checks each batch's again)."""
    raw = as_array(x, who, what)
    if raw.dtype.kind not in "biuf":  # None and objects would cast to NaN, complex lose a part
        raise TypeError(f"{who}: expected {what} as a real numeric array, got "
                        f"{type(x).__name__} of dtype {raw.dtype}")
    if raw.ndim < 1 or raw.shape[0] == 0:
        raise ValueError(f"{who}: expected {what} with at least one sample (N, ...), "
                         f"got shape {raw.shape}")
    table = index_layer(model)
    if table is not None:
        try:
            return np.ascontiguousarray(table.indices(raw))
        except (TypeError, ValueError) as err:
            raise type(err)(f"{who}: {what}: {err}") from None
    with np.errstate(over="ignore"):  # a value beyond the dtype's range: reported below
        xs = np.ascontiguousarray(raw, dtype=model.dtype)
    _check_finite(xs, who, what, raw, x)
    return xs


def _check_finite(a: np.ndarray, who: str, what: str, source: np.ndarray,
                  given: Any = None) -> None:
    """NaN/Inf check, paid by every ``fit`` call: :func:`~backprop.backend.all_finite`
    (a BLAS sum, half the time of ``isfinite``: 1.2 vs 2.4 ms on 16,384 x 784 float32;
    its exact pass runs in chunks, so no full-size boolean temporary, and only when the
    sum is not finite). The bad samples are located only when there are some.

    ``source`` is the array before the cast to ``a.dtype``: where it is finite, the
    Inf came from a value too large for that dtype, and the message says so. For a
    pandas ``given``, the message names the row's index label too (a shuffled frame's
    position and label differ).
    """
    if a.dtype.kind != "f" or all_finite(a):
        return
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    first = int(np.argmax(bad))
    got = (f"values beyond the {a.dtype} range (|v| > {np.finfo(a.dtype).max:.4g})"
           if np.isfinite(source[first]).all() else "NaN/Inf")
    index = getattr(given, "index", None) if hasattr(given, "iloc") else None
    label = None if index is None else index[first]
    label = label.item() if isinstance(label, np.generic) else label  # 20, not np.int64(20)
    where = f"index {first}" if index is None else (f"position {first} (.iloc; index "
                                                    f"label {label!r})")
    raise ValueError(f"{who}: expected finite values in {what}, got {got} in "
                     f"{int(bad.sum())} sample(s), the first at {where}")


def arrays(model: Any, x: Any, y: Any, sample_weight: Any, who: str) -> tuple[Any, ...]:
    """Inputs cast to the model dtype, targets (floats cast too), weights (N,) or None."""
    xs = inputs(x, model, who, "x")
    n = xs.shape[0]
    ys = as_array(y, who, "y")
    if ys.ndim == 0 and ys.dtype.kind not in "biuf":  # one object: a generator, set, str
        raise TypeError(f"{who}: expected y as an array of targets (N, ...), got "
                        f"{type(y).__name__}")
    if ys.ndim < 1 or ys.shape[0] != n:
        raise ValueError(f"{who}: expected y with one target per sample of x ({n}), "
                         f"got y of shape {ys.shape} for x of shape {xs.shape}")
    if ys.dtype.kind == "f":
        with np.errstate(over="ignore"):
            cast = ys.astype(model.dtype, copy=False)
        _check_finite(cast, who, "y", ys, y)
        ys = cast
    elif ys.dtype.kind not in "iub":
        hint = (" (class names: number them, e.g. classes, y = np.unique(y, "
                "return_inverse=True))" if ys.dtype.kind in "USO" else "")
        raise TypeError(f"{who}: expected numeric targets y, got dtype {ys.dtype}{hint}")
    return xs, ys, _sample_weights(sample_weight, n, model.dtype, who)


def _sample_weights(w: Any, n: int, dtype: np.dtype, who: str) -> np.ndarray | None:
    """:func:`sample_weights`, with a finite value beyond ``dtype``'s range refused by name
    (the cast would make it inf, with NumPy's overflow warning first)."""
    raw = None if w is None else as_array(w, who, "sample_weight")
    if raw is not None and raw.dtype.kind == "f" and raw.size:
        top = np.max(np.abs(raw), where=np.isfinite(raw), initial=0.0)
        if top > np.finfo(dtype).max:
            raise ValueError(f"{who}: expected sample_weight within the {np.dtype(dtype)} "
                             f"range of the model (<= {np.finfo(dtype).max:.4g}), got {top:.4g}")
    return sample_weights(w, n, dtype, who, steps=())  # per-step ones: the loss checks


def validation(model: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray | None,
                args: dict[str, Any]) -> tuple[Any, ...]:
    """Split off or check validation data; returns ``(x, y, w, val)``."""
    split = in_range(args["validation_split"], "validation_split", "fit", 0.0, 1.0,
                     high_open=True)
    data = args["validation_data"]
    if data is not None and split > 0:
        raise ValueError("fit: expected validation_data or validation_split, got both")
    if split > 0:
        cut = int(x.shape[0] * (1.0 - split))  # Keras: the last fraction, before shuffling
        if cut < 1 or cut == x.shape[0]:
            raise ValueError(f"fit: expected validation_split={split} to leave samples on "
                             f"both sides of {x.shape[0]}, got {cut} for training")
        val = (x[cut:], y[cut:], None if w is None else w[cut:])
        _warn_sorted_labels(y, cut, split)
        return x[:cut], y[:cut], None if w is None else w[:cut], val
    if data is None:
        return x, y, w, None
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        size = f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""
        raise TypeError("fit: expected validation_data as (x_val, y_val) or "
                        f"(x_val, y_val, w_val), got {type(data).__name__}{size}")
    xv, yv, wv = arrays(model, data[0], data[1], data[2] if len(data) == 3 else None,
                         "fit (validation_data)")
    if yv.shape[1:] != y.shape[1:] and {yv.shape[1:], y.shape[1:]} == {(), (1,)}:
        yv = yv.reshape(yv.shape[0], *y.shape[1:])  # (N,) against (N, 1): the same targets
    if xv.shape[1:] != x.shape[1:] or yv.shape[1:] != y.shape[1:]:
        steps = (xv.ndim == x.ndim and (x.ndim == 3 or x.dtype.kind in "iu")  # sequences
                 and xv.shape[2:] == x.shape[2:] and xv.shape[1] != x.shape[1])  # (tokens)
        raise ValueError(f"fit: expected validation samples shaped like the training ones, "
                         f"x {_batch_shape(x)} and y {_batch_shape(y)}, got x {xv.shape} and "
                         f"y {yv.shape}" + (f" (sequences of {xv.shape[1]} steps, not "
                                            f"{x.shape[1]}: pad them, or cut their padding, "
                                            f"to {x.shape[1]}; a mask leaves the padding "
                                            f"out, and evaluate takes any length)"
                                            if steps else ""))
    return x, y, w, (xv, yv, wv)


def with_class_weight(w: np.ndarray | None, class_weight: Any, y: np.ndarray,
                       dtype: np.dtype, out: np.ndarray, ignore: int | None = None
                       ) -> np.ndarray | None:
    """Per-sample weights times ``class_weight[label]`` (Keras semantics; absent classes: 1).

    ``out`` is the model's output for a few samples: its width is the number of
    classes (two for a single sigmoid/regression column), which bounds the keys.
    Labels equal to the loss's ``ignore`` index weigh 1 (the loss skips them anyway)."""
    if class_weight is None:
        return w
    if out.ndim > 2:  # as Keras: no class_weight for targets of more than one label each
        raise ValueError(f"fit: expected class_weight with one label per sample, got output "
                         f"(N, {', '.join(map(str, out.shape[1:]))}) with targets "
                         f"{y.shape}: weigh the classes of every position in the loss "
                         f"instead, e.g. SoftmaxCrossEntropy(weight=[...])")
    ignored = y == ignore if ignore is not None and y.ndim == 1 else None
    if ignored is not None:
        y = np.where(ignored, 0, y)  # any class: their weight is set to 1 below
    balanced = isinstance(class_weight, str) and class_weight == "balanced"
    if not balanced and not isinstance(class_weight, dict):
        raise TypeError(f"fit: expected class_weight as a dict {{class: weight}} or "
                        f"'balanced', got {class_weight!r:.60}")
    labels = metrics_module.labels_of(
        y, y.shape[0], "fit (class_weight)", "class_weight weighs the one class of each "
        "sample; weigh multi-label targets with BinaryCrossEntropyWithLogits(pos_weight="
        "[...]) or sample_weight").astype(np.int64)
    if balanced:
        class_weight = _balanced(labels if ignored is None else labels[~ignored])
    keys = [k for k in class_weight if not isinstance(k, (int, np.integer))
            or isinstance(k, bool) or k < 0]
    if keys:
        raise ValueError(f"fit: expected class_weight keys to be class indices >= 0, "
                         f"got {keys}")
    n_classes = max(2, out.shape[-1]) if out.ndim == 2 else 2
    beyond = sorted(int(k) for k in class_weight if k >= n_classes)
    if beyond:
        raise ValueError(f"fit: expected class_weight keys in [0, {n_classes}) (the classes "
                         f"the model's output has), got {beyond}")
    table = np.ones(max([*class_weight, int(labels.max())]) + 1, dtype=dtype)
    top = float(np.finfo(dtype).max)  # beyond it the cast gives inf (and NumPy's warning)
    for k, v in class_weight.items():
        table[k] = in_range(v, f"class_weight[{k}]", "fit", 0.0, top)
    cw = table[labels]
    if ignored is not None:
        cw[ignored] = 1.0
    if w is None:
        return cw
    if w.ndim > 1:
        raise ValueError(f"fit: expected sample_weight of shape ({w.shape[0]},), one per "
                         f"sample, with class_weight (one label per sample), got per-step "
                         f"weights {w.shape}")
    with np.errstate(over="ignore"):
        both = cw * w
    if not all_finite(both):
        raise ValueError(f"fit: expected class_weight times sample_weight within the "
                         f"{np.dtype(dtype)} range of the model (<= {top:.4g}), got larger "
                         f"products (up to {float(cw.max()):.4g} x {float(w.max()):.4g})")
    return both


def _balanced(labels: np.ndarray) -> dict[int, float]:
    """scikit-learn's ``class_weight='balanced'``: ``n_samples / (n_classes · count)`` for
    each class present in the training labels (int64 class indices)."""
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    return {int(c): labels.size / (present.size * int(counts[c])) for c in present}


def _batch_shape(a: np.ndarray) -> str:
    """``a``'s shape with its batch axis as N: ``(N, 4)``, ``(N,)``."""
    return f"(N, {', '.join(map(str, a.shape[1:]))})" if a.ndim > 1 else "(N,)"


def _warn_sorted_labels(y: np.ndarray, cut: int, split: float) -> None:
    """Warn when the labels are sorted (scikit-learn's iris is): ``validation_split``'s
    last rows then hold only the last classes. Random or imbalanced labels whose
    validation rows happen to share a class do not warn. One-hot rows and a column of
    labels ``(N, 1)`` are read as their labels."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif is_one_hot(y):
        y = y.argmax(axis=1)
    if y.ndim != 1 or y.dtype.kind not in "biu" or y[0] == y[-1]:
        return
    steps = np.diff(y.astype(np.int64))
    if not (np.all(steps >= 0) or np.all(steps <= 0)):
        return
    if np.count_nonzero(steps) >= _FEW_CLASSES:  # many values: ordered targets, not classes
        return
    val = np.unique(y[cut:]).tolist()
    warnings.warn(f"fit: the labels are sorted, so validation_split={split} takes the last "
                  f"{y.size - cut} samples, of class{'es' * (len(val) > 1)} "
                  f"{', '.join(map(str, val))} only: shuffle the data first, or "
                  f"pass validation_data (backprop.data.train_test_split(x, y, "
                  f"stratify=True))", UserWarning, stacklevel=caller_level())


_FEW_CLASSES = 50  # sorted labels with fewer distinct values are taken for classes


def narrowed(a: np.ndarray, dtype: Any, who: str, what: str) -> np.ndarray:
    """``a`` cast to ``dtype`` (``Sequential.forward``'s and ``backward``'s cast); a
    finite value too large for a narrower float (float64 1e39 to float32) is refused, as
    ``predict`` refuses it, not turned into an inf and then NaN silently (PyTorch refuses
    a float64 input to a float32 module). NaN and inf given stay as they are. The check
    runs only when a wider float is narrowed."""
    if a.dtype.kind != "f" or a.dtype.itemsize <= np.dtype(dtype).itemsize:
        return a.astype(dtype, copy=False)
    with np.errstate(over="ignore"):
        out = a.astype(dtype)
    if out.size and not all_finite(out):
        flat = out.reshape(out.shape[0] if out.ndim else 1, -1)
        grew = np.isinf(flat) & np.isfinite(a.reshape(flat.shape))
        if grew.any():
            raise ValueError(f"{who}: expected {what} within the {np.dtype(dtype)} range "
                             f"(|v| <= {np.finfo(dtype).max:.4g}) to cast to the model's "
                             f"{np.dtype(dtype)}, got {int(grew.sum())} finite value(s) "
                             f"beyond it (largest |v| {np.abs(a[np.isfinite(a)]).max():.4g})")
    return out
