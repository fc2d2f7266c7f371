"""Every check ``fit``, ``evaluate`` and ``predict`` run on their arguments, once, up front.

All of it happens before the first weight changes, so a bad argument never
leaves a half-trained model. The arrays are cast and checked once, in
:mod:`backprop._fit_arrays`, so the training loop does no per-batch conversion.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from . import metrics as metrics_module
from ._fit_arrays import arrays, inputs, validation, with_class_weight
from ._metric_inputs import call_metric
from ._slips import kind_of as _kind
from ._slips import last_layer, refuse_built_in_metrics, signed_targets, warn_activation_slips
from ._torch_habits import loss_hint
from ._validate import boolean, caller_level, nonneg_int, positive_int
from .backend import all_finite
from .callbacks import Callback
from .layers import Sigmoid, Softmax, _flat
from .layers._stateful import check_stateful_batches, states_kept
from .layers.base import Layer
from .losses import (
    BCELoss,
    BinaryCrossEntropyWithLogits,
    HingeEmbeddingLoss,
    Huber,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    MultiLabelMarginLoss,
    MultiLabelSoftMarginLoss,
    SmoothL1Loss,
    SoftMarginLoss,
)
from .optimizers import Optimizer
from .trace import paused

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
    if args["resume"] is None and not all_finite(model.flat_params):
        raise ValueError("fit: expected finite weights to start from, got NaN or inf ones "
                         "(an earlier fit that diverged, a load or an edit left them so): "
                         "reload or rebuild the model")
    options = _options(args)
    fns, names = resolve_metrics(args["metrics"], "fit", model, loss)
    if args["class_weight"] is not None and isinstance(loss, MultiLabelMarginLoss):
        raise ValueError("fit: expected no class_weight with MultiLabelMarginLoss, whose "
                         "targets list several classes per sample (class_weight weighs "
                         "the one class of each): weigh samples with sample_weight")
    xs, ys, w = arrays(model, x, y, args["sample_weight"], "fit")
    xs, ys, w, val = validation(model, xs, ys, w, args)
    out = _probe(model, loss, xs, ys, w, "fit", "x", "y", y)
    w = with_class_weight(w, args["class_weight"], ys, model.dtype, out,
                          getattr(loss, "ignore_index", None))
    if val is not None:
        _probe(model, loss, *val, "fit", "validation x", "validation y",
               args["validation_data"][1] if args["validation_data"] is not None else None)
    _check_metric_values(fns, names, *metric_rows(loss, ys[:2], out))
    n, size = xs.shape[0], options["batch_size"]
    if options["drop_last"] and n < size:
        raise ValueError(f"fit: drop_last=True skips a last batch smaller than batch_size="
                         f"{size}, which here is every batch: {n} training samples")
    _check_batchnorm_batches(model, xs, size, options["drop_last"])
    check_stateful_batches(model, n - n % size if options["drop_last"] else n, size, "fit")
    warn_activation_slips(model, loss)
    return FitData((xs, ys, w), xs.shape[0], val, fns, names), options


def check_inputs(model: Any, x: Any, y: Any, loss: Any, metrics: Any, batch_size: Any,
                 sample_weight: Any, who: str = "evaluate") -> tuple[Any, ...]:
    """Checks of ``evaluate``/``predict``; returns ``(x, y, w, metric_fns, names)``."""
    _check_model(model, who, need_params=False)
    if loss is not None and not isinstance(loss, Loss):
        raise TypeError(f"{who}: expected loss to be a backprop Loss or None, "
                        f"got {_kind(loss)}{loss_hint(loss)}")
    if loss is not None:
        check_reduced(loss, who)
        warn_activation_slips(model, loss, who)  # (the loss reported would be wrong)
    positive_int(batch_size, "batch_size", who)
    fns, names = resolve_metrics(metrics, who, model, loss)
    if y is None and (loss is not None or names):
        raise TypeError(f"{who}: expected targets y to score against, got None (predict(x) "
                        "gives the outputs alone)")
    if y is None:
        xs = inputs(x, model, who, "x")
        check_stateful_batches(model, xs.shape[0], batch_size, who)
        return xs, None, None, fns, names
    xs, ys, w = arrays(model, x, y, sample_weight, who)
    check_stateful_batches(model, xs.shape[0], batch_size, who)
    if loss is not None:
        _probe(model, loss, xs, ys, w, who, "x", "y", y)
    return xs, ys, w, fns, names


# -- model, loss, optimizer, options --------------------------------------------------------
def _check_model(model: Any, who: str, need_params: bool = True) -> None:
    if not isinstance(model, Layer):
        raise TypeError(f"{who}: expected a backprop model (Sequential), "
                        f"got {type(model).__name__}")
    if not need_params or getattr(model, "flat_params", None) is not None:
        return
    if not model.parameters():
        raise ValueError(f"{who}: expected a Sequential with trainable parameters, got "
                         f"{type(model).__name__} with none")
    if not hasattr(model, "flat_params"):  # a layer, or a container of one's own
        raise TypeError(f"{who}: expected a Sequential (it holds the one flat buffer of "
                        f"parameters the optimizer updates), got a {type(model).__name__}: "
                        f"wrap it, bp.Sequential([model])")
    loose = [f"{path} {la!r}" for path, la in model.named_layers() if la.params and not
             la.children() and all(getattr(v, "base", None) is None for v in la.params.values())]
    raise ValueError(  # they are there, but not one buffer of its own any more
        f"{who}: expected a model whose parameters are its own (one flat buffer), got "
        + (f"{', '.join(loose)} put into model.layers directly (model.layers[i] = ..., "
           "model.layers.append(...)), in no model's buffer. model.add(layer) appends a "
           "layer; to replace one, build a new model: bp.Sequential([...])" if loose else
           "one whose layers were also put into a model built later, which took over "
           "their arrays (a layer belongs to the last model built with it), or a slice with "
           "a step (model[::2]), whose layers are not next to each other in their model's "
           "buffers, or a layer put into model.layers directly. Train the model that holds "
           "them, or give the new one copies: copy.deepcopy(layer)"))


def check_reduced(loss: Loss, who: str) -> None:
    """Refuse ``reduction='none'`` where one number is needed (fit, evaluate, bench)."""
    if loss.reduction == "none":
        raise ValueError(
            f"{who}: expected a loss that gives one number (reduction 'mean' or 'sum'), got "
            f"{loss!r}: its array of losses has no single value to report or step by. "
            "To weigh samples, pass sample_weight= (or class_weight= to fit)")


def trained_positions(model: Any, optimizer: Any) -> list[int | None]:
    """Where each of ``optimizer``'s parameters is in ``model.parameters()``; None: not its."""
    where = {id(p.value): i for i, p in enumerate(model.parameters())}
    return [where.get(id(p.value)) for p in optimizer.params]


def _check_parts(model: Any, loss: Any, optimizer: Any) -> None:
    _check_model(model, "fit")
    _flat.check_distinct(model, "fit")  # a layer put into model.layers twice, by hand
    if not isinstance(loss, Loss):
        raise TypeError(f"fit: expected loss to be a backprop Loss (e.g. "
                        f"bp.SoftmaxCrossEntropy()), got {_kind(loss)}{loss_hint(loss)}")
    check_reduced(loss, "fit")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: expected optimizer to be a backprop Optimizer (e.g. "
                        f"bp.Adam(model.parameters())), got {_kind(optimizer)}")
    foreign = trained_positions(model, optimizer).count(None)
    if foreign:  # all of them, or some to train only those (the others stay frozen)
        raise ValueError(
            f"fit: expected an optimizer built on this model's parameter arrays "
            f"(bp.{type(optimizer).__name__}(model.parameters(), ...), or some of them to "
            f"freeze the others), got one "
            f"over {len(optimizer.params)} arrays of which {foreign} are not this model's "
            "(made for another model, before model.add()/astype() or before the model was "
            "put inside another Sequential, such as Sequential([model, Softmax()]), which "
            "moves its parameters into the new one's buffer; or copied apart from the "
            "model, or through pickle, which rebuilds the model's buffers? "
            "copy.deepcopy((model, opt)) keeps a pair together; or build one on the model's "
            "parameters and load_state_dict the old one's state_dict())")


def _options(args: dict[str, Any]) -> dict[str, Any]:
    """Scalar settings of fit, checked; returned as FitState attributes."""
    for name in ("epochs", "initial_epoch"):
        nonneg_int(args[name], name, "fit")
    if args["on_nonfinite"] not in ("raise", "skip"):
        raise ValueError(f"fit: expected on_nonfinite 'raise' or 'skip', "
                         f"got {args['on_nonfinite']!r}")
    cbs = _callbacks(args["callbacks"])
    first, last = int(args["initial_epoch"]), int(args["epochs"])
    if args.get("resume") is None and first > 0 and first >= last:
        warnings.warn(f"fit: initial_epoch ({first}) >= epochs ({last}): nothing to train; "
                      f"epochs counts from 0, as in Keras (for {last} more epochs pass "
                      f"epochs={first + last})", stacklevel=caller_level())
    return {
        "epochs": int(args["epochs"]), "initial_epoch": int(args["initial_epoch"]),
        "batch_size": positive_int(32 if args["batch_size"] is None else args["batch_size"],
                                   "batch_size", "fit"),  # None: Keras' default
        "shuffle": boolean(args["shuffle"], "shuffle", "fit"),
        "drop_last": boolean(args["drop_last"], "drop_last", "fit"),
        "progress": boolean(args["progress"], "progress", "fit"),
        "on_nonfinite": args["on_nonfinite"], "seed": args["seed"], "callbacks": cbs,
    }


def _callbacks(callbacks: Any) -> list[Any]:
    """``callbacks`` as a list: None is none, a single Callback is a list of one."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if isinstance(callbacks, (str, bytes, Mapping)):  # iterating gives names, not callbacks
        raise TypeError(f"fit: expected callbacks as a list of bp.Callback instances, "
                        f"got {type(callbacks).__name__}")
    try:
        cbs = list(callbacks)
    except TypeError:
        raise TypeError(f"fit: expected callbacks as a list of bp.Callback instances, "
                        f"got {type(callbacks).__name__}") from None
    for i, cb in enumerate(cbs):
        if not isinstance(cb, Callback):
            from .schedules import callback_hint  # (lazy: a cycle at import time)
            raise TypeError(f"fit: expected callbacks to be bp.Callback instances, "
                            f"got {_kind(cb)}{callback_hint(cb)}")
        if any(cb is other for other in cbs[:i]):  # its hooks would run twice per event
            raise ValueError(f"fit: expected each callback object once, got the same "
                             f"{type(cb).__name__} twice (create one per use)")
    return cbs


_REGRESSION = (MeanSquaredError, MeanAbsoluteError, Huber, SmoothL1Loss)


def resolve_metrics(metrics: Any, who: str, model: Any = None, loss: Any = None
                    ) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Metric callables and their log names; names must be known and distinct.

    ``metrics`` is a name, a callable, or a list of them; None is none. With a binary
    cross-entropy loss, ``"accuracy"`` is binary accuracy, output by output (Keras'
    choice for that loss: multi-label targets are not one class per row), and precision,
    recall, F1 and AUC score each output column alone and average them. For a model
    ending in Sigmoid (probabilities), or trained with a regression loss (MSE, MAE,
    Huber, SmoothL1Loss: predictions of the 0/1 targets themselves) or BCELoss (which
    takes probabilities), accuracy, precision, recall and F1 threshold at 0.5, not
    at the logit 0 (which every probability exceeds), as Keras' accuracy does; one of
    ``at_threshold(t)`` (``f1.at_threshold(0.9)``) keeps the user's ``t``. For a
    model ending in Softmax, ``roc_auc`` ranks the probabilities as they are. With
    MultiLabelMarginLoss (targets: class indices padded with -1) every built-in metric is
    refused; MultiMarginLoss's scores take them as SoftmaxCrossEntropy's logits do.
    """
    if isinstance(metrics, Mapping):  # iterating would give the output names
        raise TypeError(f"{who}: expected metrics as a name, a callable or a list of them, "
                        f"got a dict (Keras' metrics per output: a backprop model has one "
                        f"output, so pass the list, e.g. {list(metrics.values())[:1]!r})")
    try:
        items = ([] if metrics is None else [metrics] if isinstance(metrics, str)
                 or callable(metrics) else list(metrics))
    except TypeError:
        raise TypeError(f"{who}: expected metrics as a name, a callable (y_true, output) "
                        f"-> float, or a list of them, got {type(metrics).__name__}") from None
    try:
        fns = tuple(metrics_module.get(m) for m in items)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{who}: {str(err).removeprefix('metrics.get: ')}") from None
    refuse_built_in_metrics(items, fns, loss, who)  # MultiLabelMarginLoss's index lists
    if isinstance(loss, (BinaryCrossEntropyWithLogits, BCELoss, MultiLabelSoftMarginLoss)):
        # each output its own yes/no
        fns = tuple(metrics_module.binary_accuracy if f is metrics_module.accuracy
                    else getattr(f, "multi_label", f) for f in fns)
    if isinstance(loss, (SoftMarginLoss, HingeEmbeddingLoss)):  # targets ±1
        try:
            fns = tuple(signed_targets(f, loss) if f in (metrics_module.accuracy,
                                                          metrics_module.binary_accuracy)
                        else f for f in fns)
        except ValueError as err:
            raise ValueError(f"{who}: {str(err).removeprefix('resolve: ')}") from None
    last = last_layer(model)
    # probabilities, or a regression loss's predictions of 0/1 targets: thresholds at 0.5
    if isinstance(last, Sigmoid) or isinstance(loss, (*_REGRESSION, BCELoss)):
        fns = tuple(f.at_threshold(0.5) if hasattr(f, "at_threshold")  # not the user's:
                    and not getattr(f, "threshold_chosen", False) else f for f in fns)
    if isinstance(last, Softmax):  # probabilities: roc_auc ranks them as they are
        fns = tuple(getattr(f, "of_probabilities", f) for f in fns)
    names = tuple(metrics_module.name_of(m) for m in items)
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"{who}: expected distinct metric names other than 'loss', "
                         f"got {list(names)} (a callable's name is its __name__, 'metric' "
                         f"when it has none, as a functools.partial: set one, e.g. "
                         f"fn.__name__ = 'top_2')")
    return fns, names


def _probe(model: Any, loss: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray | None,
           who: str, x_name: str, y_name: str, y_given: Any = None) -> np.ndarray:
    """Check x against the model (one inference forward of two samples) and y (and w)
    against the loss (its own checks, on zero outputs, in chunks) — before any step.

    ``y_given`` is y as the caller passed it: when it was cast (floats to the model's
    dtype) an error names both dtypes. Returns the model's output for those two samples."""
    try:
        with paused(), states_kept(model), np.errstate(over="ignore", invalid="ignore"):
            out = model.forward(x[:2], training=False)  # a check: no trace records, no
            # state moves, no overflow warnings (a diverging step reports its own)
    except (ValueError, TypeError) as err:
        if type(err) not in (ValueError, TypeError):  # NumPy's own subclasses: keep as is
            raise
        raise type(err)(f"{who}: {x_name} of shape {x.shape} does not fit the model "
                        f"(checked on its first {min(2, x.shape[0])} samples): {err}") from None
    n = x.shape[0]
    zeros = np.zeros((min(n, _PROBE_ROWS), *out.shape[1:]), dtype=out.dtype)
    try:
        # no cache left behind; the values are not used (targets of 1e200 overflow a
        # squared error here: the steps report a non-finite loss, not this check)
        with loss._cache_kept(), np.errstate(over="ignore", invalid="ignore"):
            for s in range(0, n, _PROBE_ROWS):
                e = min(n, s + _PROBE_ROWS)
                loss.forward(zeros[:e - s], y[s:e], None if w is None else w[s:e])
    except (ValueError, TypeError) as err:
        given = None if y_given is None else np.asarray(y_given).dtype  # read once before
        cast = (f" ({y_name} was given as {given}; {who.split(' ')[0]} casts floating "
                f"targets to the model's {y.dtype})"
                if given is not None and given != y.dtype else "")  # (dtype == None is True)
        subject = (f"sample_weight of shape {w.shape}" if w is not None
                   and "sample_weight" in str(err) else f"{y_name} of shape {y.shape}")
        raise type(err)(f"{who}: {subject} does not fit the loss and "
                        f"the model output (N, {', '.join(map(str, out.shape[1:]))}): "
                        f"{err}{cast}") from None
    return out


def metric_rows(loss: Any, y: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y, out)`` for the metrics: the samples the loss counts (all of them, unless it
    ignores some, as ``SoftmaxCrossEntropy(ignore_index=...)`` does). Without a loss, a
    column of class labels ``(N, 1)`` against class scores ``(N, C)`` is flattened, as
    the cross-entropy loss does it: a metric sees the same labels either way."""
    if loss is not None:
        return loss._metric_rows(y, out)
    if (y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind in "iu" and out.ndim == 2
            and out.shape[1] > 1):
        y = y[:, 0]
    return y, out


def _check_metric_values(fns: tuple[Any, ...], names: tuple[str, ...], y: np.ndarray,
                         out: np.ndarray) -> None:
    """Each metric on the first (two) samples must give one real number: the loop adds
    them up after the optimizer step, too late to fail cleanly. A metric that raises
    here is left to the loop: it may need a full batch (both classes, say), and there
    it fails before the first step anyway."""
    for name, fn in zip(names, fns, strict=True):
        try:
            value = call_metric(fn, y, out)
        except Exception:  # see the docstring
            continue
        one_number(value, name, "fit", f" for the first {len(y)} samples")


def one_number(value: Any, name: str, who: str, where: str = "") -> float:
    """A metric's value as a float, or a TypeError naming the metric and what it gave."""
    arr = np.asarray(value) if not isinstance(value, str) else None
    if arr is None or arr.ndim != 0 or arr.dtype.kind not in "biuf":
        got = (f"ndarray of shape {arr.shape}" if arr is not None and arr.ndim
               else f"{type(value).__name__} {value!r}")
        raise TypeError(f"{who}: expected metric {name!r} to return one real number, "
                        f"got {got}{where}")
    return float(arr)


def _check_batchnorm_batches(model: Any, x: np.ndarray, batch_size: int,
                             drop_last: bool = False) -> None:
    """A BatchNorm on (N, C) input gets one value per channel from a batch of one sample:
    its variance is undefined. Say so now, not after the first epoch's steps."""
    n = x.shape[0]
    if (batch_size if drop_last else n % batch_size or batch_size) != 1:
        return
    from .layers.normalization import BatchNorm
    from .trace import trace

    try:  # two samples: a BatchNorm without running statistics needs them in inference too
        with trace(model) as t, states_kept(model):  # each layer's input shape (conv: H·W)
            model.forward(x[:2], training=False)
    except ValueError:  # one sample in all, refused by such a BatchNorm: its own error says it
        return
    for rec in t:
        bn = rec.layer
        if isinstance(bn, BatchNorm) and not bn.use_running_stats and any(
                math.prod(f.x_shape[2:]) < 2 for f in rec.forward):  # one value per sample
            below = next((b for b in range(min(batch_size, n) - 1, 1, -1) if n % b != 1), 0)
            above = next((b for b in range(batch_size + 1, n + 1) if n % b != 1), 0)
            fix = " or ".join(f"batch_size={b}" for b in (below, above) if b)
            raise ValueError(
                f"fit: expected training batches of 2 or more samples for {bn!r} (it "
                f"normalises with batch statistics), got {n} training sample(s) in batches "
                f"of {batch_size}, "
                + ("which leaves a last batch of 1; " if batch_size > 1 else "")
                + (f"use {fix}{' (or drop_last=True)' if batch_size > 1 else ''}, or drop "
                   f"or add a sample" if fix else "use 2 or more samples"))
