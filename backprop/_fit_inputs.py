"""Every check ``fit``, ``evaluate`` and ``predict`` run on their arguments, once, up front.

All of it happens before the first weight changes, so a bad argument never
leaves a half-trained model. Arrays are cast here once (inputs to the model
dtype, float targets too), so the training loop does no per-batch conversion.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from . import metrics as metrics_module
from ._validate import boolean, in_range, nonneg_int, positive_int
from .backend import all_finite
from .callbacks import Callback
from .layers.base import Layer
from .losses import Loss
from .optimizers import Optimizer

_PROBE_ROWS = 4096  # targets are checked against the loss in chunks of this many rows


class FitData(NamedTuple):
    """The checked arrays of a fit: training triple, validation triple, metrics."""

    train: tuple[np.ndarray, np.ndarray, np.ndarray | None]
    n: int
    val: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None
    metrics: tuple[Callable[..., float], ...]
    metric_names: tuple[str, ...]


def prepare_fit(model: Any, x: Any, y: Any, loss: Any, optimizer: Any,
                args: dict[str, Any]) -> tuple[FitData, dict[str, Any]]:
    """Check and convert the arguments of ``fit`` (``args`` is its ``locals()``)."""
    _check_parts(model, loss, optimizer)
    options = _options(args)
    fns, names = resolve_metrics(args["metrics"], "fit", model)
    xs, ys, w = _arrays(model, x, y, args["sample_weight"], "fit")
    xs, ys, w, val = _validation(model, xs, ys, w, args)
    out = _probe(model, loss, xs, ys, w, "fit", "x", "y")
    w = _with_class_weight(w, args["class_weight"], ys, model.dtype, out)
    if val is not None:
        _probe(model, loss, *val, "fit", "validation x", "validation y")
    _check_metric_values(fns, names, ys[:2], out)
    _check_batchnorm_batches(model, xs, options["batch_size"])
    _warn_double_activation(model, loss)
    return FitData((xs, ys, w), xs.shape[0], val, fns, names), options


def _last_layer(model: Any) -> Any:
    """The last leaf layer of (nested) Sequentials, or the model itself."""
    last = model
    while getattr(last, "layers", None):
        last = last.layers[-1]
    return last


def _warn_double_activation(model: Any, loss: Any) -> None:
    """Keras' classic slip: a final Softmax (Sigmoid) before a loss that applies it itself."""
    from .layers.activations import Sigmoid, Softmax
    from .losses import BinaryCrossEntropyWithLogits, SoftmaxCrossEntropy

    last = _last_layer(model)
    for act, kind in ((Softmax, SoftmaxCrossEntropy), (Sigmoid, BinaryCrossEntropyWithLogits)):
        if isinstance(last, act) and isinstance(loss, kind):
            warnings.warn(
                f"fit: the model ends in {act.__name__}() and {kind.__name__} applies "
                f"{act.__name__.lower()} itself (it takes logits, as PyTorch's loss does): "
                "it is applied twice, which flattens the gradients. Drop the final "
                f"{act.__name__}() and apply it to predict()'s output instead.",
                UserWarning, stacklevel=4)


def check_inputs(model: Any, x: Any, y: Any, loss: Any, metrics: Any, batch_size: Any,
                 sample_weight: Any, who: str = "evaluate") -> tuple[Any, ...]:
    """Checks of ``evaluate``/``predict``; returns ``(x, y, w, metric_fns, names)``."""
    _check_model(model, who, need_params=False)
    if loss is not None and not isinstance(loss, Loss):
        raise TypeError(f"{who}: expected loss to be a backprop Loss or None, "
                        f"got {type(loss).__name__}")
    positive_int(batch_size, "batch_size", who)
    fns, names = resolve_metrics(metrics, who, model)
    if y is None:
        return _inputs(x, model.dtype, who, "x"), None, None, fns, names
    xs, ys, w = _arrays(model, x, y, sample_weight, who)
    if loss is not None:
        _probe(model, loss, xs, ys, w, who, "x", "y")
    return xs, ys, w, fns, names


# -- model, loss, optimizer, options --------------------------------------------------------
def _check_model(model: Any, who: str, need_params: bool = True) -> None:
    if not isinstance(model, Layer):
        raise TypeError(f"{who}: expected a backprop model (Sequential), "
                        f"got {type(model).__name__}")
    if need_params and getattr(model, "flat_params", None) is None:
        raise ValueError(f"{who}: expected a Sequential with trainable parameters, got "
                         f"{type(model).__name__} with flat_params=None")


def _check_parts(model: Any, loss: Any, optimizer: Any) -> None:
    _check_model(model, "fit")
    if not isinstance(loss, Loss):
        raise TypeError(f"fit: expected loss to be a backprop Loss (e.g. "
                        f"bp.SoftmaxCrossEntropy()), got {type(loss).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: expected optimizer to be a backprop Optimizer (e.g. "
                        f"bp.Adam(model.parameters())), got {type(optimizer).__name__}")
    mine = [p.value for p in model.parameters()]
    theirs = [p.value for p in optimizer.params]
    if len(mine) != len(theirs) or any(a is not b for a, b in zip(mine, theirs, strict=False)):
        raise ValueError(
            f"fit: expected an optimizer built on this model's {len(mine)} parameter arrays "
            f"(bp.Adam(model.parameters())), got one over {len(theirs)} other arrays "
            "(made for another model, or before model.add()/astype()?)")


def _options(args: dict[str, Any]) -> dict[str, Any]:
    """Scalar settings of fit, checked; returned as FitState attributes."""
    for name in ("epochs", "initial_epoch"):
        nonneg_int(args[name], name, "fit")
    if args["on_nonfinite"] not in ("raise", "skip"):
        raise ValueError(f"fit: expected on_nonfinite 'raise' or 'skip', "
                         f"got {args['on_nonfinite']!r}")
    cbs = _callbacks(args["callbacks"])
    for cb in cbs:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: expected callbacks to be bp.Callback instances, "
                            f"got {type(cb).__name__}")
    return {
        "epochs": int(args["epochs"]), "initial_epoch": int(args["initial_epoch"]),
        "batch_size": positive_int(args["batch_size"], "batch_size", "fit"),
        "shuffle": boolean(args["shuffle"], "shuffle", "fit"),
        "progress": boolean(args["progress"], "progress", "fit"),
        "on_nonfinite": args["on_nonfinite"], "seed": args["seed"], "callbacks": cbs,
    }


def _callbacks(callbacks: Any) -> list[Any]:
    """``callbacks`` as a list: None is none, a single Callback is a list of one."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    try:
        return list(callbacks)
    except TypeError:
        raise TypeError(f"fit: expected callbacks as a list of bp.Callback instances, "
                        f"got {type(callbacks).__name__}") from None


def resolve_metrics(metrics: Any, who: str, model: Any = None
                    ) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Metric callables and their log names; names must be known and distinct.

    ``metrics`` is a name, a callable, or a list of them; None is none. For a model
    ending in Sigmoid (probabilities), ``"accuracy"`` thresholds at 0.5, not at the
    logit 0 (which every probability exceeds), as Keras' accuracy does.
    """
    try:
        items = ([] if metrics is None else [metrics] if isinstance(metrics, str)
                 or callable(metrics) else list(metrics))
    except TypeError:
        raise TypeError(f"{who}: expected metrics as a name, a callable (y_true, output) "
                        f"-> float, or a list of them, got {type(metrics).__name__}") from None
    try:
        fns = tuple(metrics_module.get(m) for m in items)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{who}: {err}") from None
    if _last_layer(model).__class__.__name__ == "Sigmoid":
        fns = tuple(partial(f, threshold=0.5) if f is metrics_module.accuracy else f
                    for f in fns)
    names = tuple(metrics_module.name_of(m) for m in items)
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"{who}: expected distinct metric names other than 'loss', "
                         f"got {list(names)}")
    return fns, names


# -- arrays ----------------------------------------------------------------------------------
def _inputs(x: Any, dtype: np.dtype, who: str, what: str) -> np.ndarray:
    """``x`` as a C-contiguous array of the model dtype (no copy if it already is one)."""
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who}: expected {what} as a numeric array, got "
                        f"{type(x).__name__} ({err})") from None
    if raw.dtype.kind not in "biuf":  # None and objects would cast to NaN, complex lose a part
        raise TypeError(f"{who}: expected {what} as a real numeric array, got "
                        f"{type(x).__name__} of dtype {raw.dtype}")
    if raw.ndim < 1 or raw.shape[0] == 0:
        raise ValueError(f"{who}: expected {what} with at least one sample (N, ...), "
                         f"got shape {raw.shape}")
    with np.errstate(over="ignore"):  # a value beyond the dtype's range: reported below
        xs = np.ascontiguousarray(raw, dtype=dtype)
    _check_finite(xs, who, what, raw)
    return xs


def _check_finite(a: np.ndarray, who: str, what: str, source: np.ndarray) -> None:
    """NaN/Inf check: one BLAS dot first (half the time of ``isfinite``; 1.2 vs 2.4 ms on
    16,384 x 784 float32, paid by every ``fit`` call), then chunks, so no full-size
    boolean temporary is allocated, only when that dot is not finite.

    ``source`` is the array before the cast to ``a.dtype``: where it is finite, the
    Inf came from a value too large for that dtype, and the message says so.
    """
    if a.dtype.kind != "f" or all_finite(a):
        return
    flat = a.reshape(-1)
    step = 1 << 20
    for start in range(0, flat.size, step):
        if not np.isfinite(flat[start:start + step]).all():
            bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
            first = int(np.argmax(bad))
            got = (f"values beyond the {a.dtype} range (|v| > {np.finfo(a.dtype).max:.4g})"
                   if np.isfinite(source[first]).all() else "NaN/Inf")
            raise ValueError(f"{who}: expected finite values in {what}, got {got} in "
                             f"{int(bad.sum())} sample(s), the first at index {first}")


def _arrays(model: Any, x: Any, y: Any, sample_weight: Any, who: str) -> tuple[Any, ...]:
    """Inputs cast to the model dtype, targets (floats cast too), weights (N,) or None."""
    xs = _inputs(x, model.dtype, who, "x")
    n = xs.shape[0]
    ys = np.asarray(y)
    if ys.ndim < 1 or ys.shape[0] != n:
        raise ValueError(f"{who}: expected y with one target per sample of x ({n}), "
                         f"got y of shape {ys.shape} for x of shape {xs.shape}")
    if ys.dtype.kind == "f":
        with np.errstate(over="ignore"):
            cast = ys.astype(model.dtype, copy=False)
        _check_finite(cast, who, "y", ys)
        ys = cast
    elif ys.dtype.kind not in "iub":
        raise TypeError(f"{who}: expected numeric targets y, got dtype {ys.dtype}")
    return xs, ys, _sample_weight(sample_weight, n, model.dtype, who)


def _sample_weight(w: Any, n: int, dtype: np.dtype, who: str, what: str = "sample_weight"
                   ) -> np.ndarray | None:
    if w is None:
        return None
    try:
        raw = np.asarray(w)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who}: expected {what} as a numeric array, got "
                        f"{type(w).__name__} ({err})") from None
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected {what} as a real numeric array (N,), got "
                        f"{type(w).__name__} of dtype {raw.dtype}")
    ws = raw.astype(dtype, copy=False)
    if ws.shape != (n,):
        raise ValueError(f"{who}: expected {what} of shape ({n},), one per sample, "
                         f"got {ws.shape}")
    if not np.isfinite(ws).all() or (ws < 0).any():
        raise ValueError(f"{who}: expected finite, non-negative {what}, got values from "
                         f"{ws.min()} to {ws.max()}")
    return ws


def _validation(model: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray | None,
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
        return x[:cut], y[:cut], None if w is None else w[:cut], val
    if data is None:
        return x, y, w, None
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        size = f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""
        raise TypeError("fit: expected validation_data as (x_val, y_val) or "
                        f"(x_val, y_val, w_val), got {type(data).__name__}{size}")
    xv, yv, wv = _arrays(model, data[0], data[1], data[2] if len(data) == 3 else None,
                         "fit (validation_data)")
    if xv.shape[1:] != x.shape[1:] or yv.shape[1:] != y.shape[1:]:
        raise ValueError(f"fit: expected validation samples shaped like the training ones, "
                         f"x (N, {', '.join(map(str, x.shape[1:]))}) and y {('N', *y.shape[1:])}, "
                         f"got x {xv.shape} and y {yv.shape}")
    return x, y, w, (xv, yv, wv)


def _with_class_weight(w: np.ndarray | None, class_weight: Any, y: np.ndarray,
                       dtype: np.dtype, out: np.ndarray) -> np.ndarray | None:
    """Per-sample weights times ``class_weight[label]`` (Keras semantics; absent classes: 1).

    ``out`` is the model's output for a few samples: its width is the number of
    classes (two for a single sigmoid/regression column), which bounds the keys."""
    if class_weight is None:
        return w
    if not isinstance(class_weight, dict):
        raise TypeError(f"fit: expected class_weight as a dict {{class: weight}}, "
                        f"got {type(class_weight).__name__}")
    labels = metrics_module.labels_of(y, y.shape[0], "fit (class_weight)").astype(np.int64)
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
    for k, v in class_weight.items():
        table[k] = in_range(v, f"class_weight[{k}]", "fit", 0.0)
    cw = table[labels]
    return cw if w is None else cw * w


def _probe(model: Any, loss: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray | None,
           who: str, x_name: str, y_name: str) -> np.ndarray:
    """Check x against the model (one inference forward of two samples) and y (and w)
    against the loss (its own checks, on zero outputs, in chunks) — before any step.

    Returns the model's output for those two samples."""
    try:
        out = model.forward(x[:2], training=False)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{who}: {x_name} of shape {x.shape} does not fit the model: "
                        f"{err}") from None
    n = x.shape[0]
    zeros = np.zeros((min(n, _PROBE_ROWS), *out.shape[1:]), dtype=out.dtype)
    try:
        for s in range(0, n, _PROBE_ROWS):
            e = min(n, s + _PROBE_ROWS)
            loss.forward(zeros[:e - s], y[s:e], None if w is None else w[s:e])
    except (ValueError, TypeError) as err:
        raise type(err)(f"{who}: {y_name} of shape {y.shape} does not fit the loss and "
                        f"the model output (N, {', '.join(map(str, out.shape[1:]))}): "
                        f"{err}") from None
    finally:
        loss.clear_cache()
    return out


def _check_metric_values(fns: tuple[Any, ...], names: tuple[str, ...], y: np.ndarray,
                         out: np.ndarray) -> None:
    """Each metric on the first (two) samples must give one real number: the loop adds
    them up after the optimizer step, too late to fail cleanly. A metric that raises
    here is left to the loop: it may need a full batch (both classes, say), and there
    it fails before the first step anyway."""
    for name, fn in zip(names, fns, strict=True):
        try:
            value = fn(y, out)
        except Exception:  # see the docstring
            continue
        arr = np.asarray(value) if not isinstance(value, str) else None
        if arr is None or arr.ndim != 0 or arr.dtype.kind not in "biuf":
            got = (f"ndarray of shape {arr.shape}" if arr is not None and arr.ndim
                   else f"{type(value).__name__} {value!r}")
            raise TypeError(f"fit: expected metric {name!r} to return one real number, "
                            f"got {got} for the first {len(y)} samples")


def _check_batchnorm_batches(model: Any, x: np.ndarray, batch_size: int) -> None:
    """A BatchNorm on (N, C) input gets one value per channel from a batch of one sample:
    its variance is undefined. Say so now, not after the first epoch's steps."""
    n = x.shape[0]
    if (n % batch_size or batch_size) != 1:
        return
    from .layers.normalization import BatchNorm
    from .trace import trace

    with trace(model) as t:  # the input shape each layer sees (after convolutions: H·W)
        model.forward(x[:1], training=False)
    for rec in t:
        bn = rec.layer
        if isinstance(bn, BatchNorm) and not bn.use_running_stats and any(
                math.prod(f.x_shape) < 2 * bn.num_features for f in rec.forward):
            below = next((b for b in range(min(batch_size, n) - 1, 1, -1) if n % b != 1), 0)
            above = next((b for b in range(batch_size + 1, n + 1) if n % b != 1), 0)
            fix = " or ".join(f"batch_size={b}" for b in (below, above) if b)
            raise ValueError(
                f"fit: expected training batches of 2 or more samples for {bn!r} (it "
                f"normalises with batch statistics), got {n} training sample(s) in batches "
                f"of {batch_size}, which leaves a last batch of 1; "
                + (f"use {fix}, or drop or add a sample" if fix else "use 2 or more samples"))
