"""``evaluate`` and ``predict``: inference over all of ``x``, a batch at a time.

``fit`` scores its validation data with the same :func:`scores`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._claims import claimed
from ._fit_inputs import check_inputs, metric_rows, one_number
from ._metric_inputs import metric_values
from ._validate import boolean

__all__ = ["evaluate", "predict", "scores", "forward_batched", "default_batch"]

# Inference batch sizes, measured on 10,000 MNIST-sized samples (2 threads): a dense
# model's products run faster in bigger batches (784-128-10: batch 64 18.7 ms, 256 15.0
# ms), while a convolution's columns outgrow the cache (Conv2D(3, 16, 3) on 32x32, then
# pooling and Dense, 2,000 samples: batch 256 132-170 ms, 64 80-88 ms; PyTorch ~117).
DENSE_BATCH = 256
CONV_BATCH = 64


def evaluate(model: Any, x: Any, y: Any, *, loss: Any = None, metrics: Any = (),
             batch_size: int | None = None, sample_weight: Any = None,
             return_dict: bool = True) -> Any:
    """Loss and metrics of ``model`` on ``(x, y)`` in inference mode (no caches kept).

    Args:
        model: The model.
        x: Inputs (N, ...).
        y: Targets (N, ...).
        loss: A :class:`~backprop.Loss`; its value is reported as ``"loss"``.
        metrics: Metric names or callables (unweighted, as Keras' ``metrics``).
        batch_size: Samples per forward pass (memory; results may differ in the
            last bit between batch sizes, as the matrix products split differently),
            except through a ``stateful`` recurrent layer, whose state passes from each
            batch to the next and on to later calls (``fit``'s ``val_*`` scores instead
            run each batch from zeros). Default: 256, or 64 for a model with
            convolutions (see :func:`default_batch`).
        sample_weight: Per-sample weights (N,) for the loss, or per step (N, T) (see
            :meth:`Loss.forward`).
        return_dict: True (default, Keras' ``return_dict=True``): a dict. False: Keras'
            default, the list ``[loss, *metrics]`` (the loss alone as a float when there
            is nothing else), for ``loss, acc = model.evaluate(..., return_dict=False)``
            (unpacking the dict gives its keys).

    Returns:
        ``{"loss": ..., "<metric>": ...}`` as Python floats (or their list).
    """
    return_dict = boolean(return_dict, "return_dict", "evaluate")
    batch_size = default_batch(model) if batch_size is None else batch_size
    xs, ys, w, fns, names = check_inputs(model, x, y, loss, metrics, batch_size, sample_weight)
    if loss is None and not names:
        raise ValueError("evaluate: expected loss= and/or metrics= (e.g. loss=bp."
                         "SoftmaxCrossEntropy(), metrics=['accuracy']), got neither: nothing "
                         "to compute")
    result = scores(model, (xs, ys, w), loss, fns, names, batch_size)
    if return_dict:
        return result
    values = list(result.values())
    return values[0] if len(values) == 1 else values


def scores(model: Any, data: tuple[Any, ...], loss: Any, fns: tuple[Any, ...],
           names: tuple[str, ...], batch_size: int, who: str = "evaluate") -> dict[str, float]:
    """Inference outputs for all of ``x`` first, then loss and metrics over all N at once."""
    x, y, w = data
    out = forward_batched(model, x, batch_size, who)
    result: dict[str, float] = {}
    if loss is not None:
        # a pending backward of the caller's keeps its gradient (not one of another
        # thread's fit: refused)
        with claimed(who, {"loss": loss}, hold=False), loss._cache_kept():
            result["loss"] = loss.forward(out, y, w)
    y, out = metric_rows(loss, y, out)
    values = metric_values(fns, names, y, out, who) if len(y) else [math.nan] * len(fns)
    result.update((name, one_number(v, name, who))
                  for name, v in zip(names, values, strict=True))
    return result


def predict(model: Any, x: Any, *, batch_size: int | None = None) -> np.ndarray:
    """Model outputs for ``x`` (N, ...) in inference mode (dropout off, BatchNorm's
    running statistics), ``batch_size`` samples at a time.

    Args:
        model: A model or layer.
        x: Inputs ``(N, ...)``, cast once to the model's dtype (integer indices for a
            model that starts with an Embedding).
        batch_size: Samples per forward (default: 256, or 64 for a model with
            convolutions; see :func:`default_batch`); the outputs do not depend on it
            beyond the last bits (BLAS may sum a product in another order for another
            number of rows: ~1e-7 relative in float32), except through a ``stateful``
            recurrent layer, whose state passes from each batch to the next (give its
            batch size).

    Returns:
        The outputs ``(N, ...)`` (logits for a classifier: no softmax is added).
    """
    batch_size = default_batch(model) if batch_size is None else batch_size
    xs, *_ = check_inputs(model, x, None, None, (), batch_size, None, who="predict")
    return forward_batched(model, xs, batch_size, "predict")


def forward_batched(model: Any, x: np.ndarray, batch_size: int, who: str) -> np.ndarray:
    """The model's inference outputs for all of ``x``, ``batch_size`` rows at a time (a
    last batch of one sample joins the one before it when a BatchNorm without running
    statistics normalises by the batch's own: one sample has no variance)."""
    n = x.shape[0]
    bounds = [*range(0, n, batch_size), n] if n else [0, 0]
    if len(bounds) > 2 and n - bounds[-2] == 1 and _batch_statistics(model):
        del bounds[-2]
    try:
        first = model.forward(x[:bounds[1]], training=False)
    except Exception as err:  # the error as raised (a layer's own bug keeps its traceback),
        if hasattr(err, "add_note"):  # with the user's x and the batch the layer saw
            err.add_note(f"{who}: x of shape {x.shape}, run in batches of {batch_size}; "
                         f"this error came from its first batch, of {bounds[1]} samples")
        raise
    if len(bounds) == 2:
        return first
    out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
    out[:bounds[1]] = first
    for start, stop in zip(bounds[1:-1], bounds[2:], strict=True):
        out[start:stop] = model.forward(x[start:stop], training=False)
    return out


def _batch_statistics(model: Any) -> bool:
    """Whether a BatchNorm of ``model`` normalises inference batches by their own
    statistics (``track_running_stats=False``)."""
    from .layers.normalization import BatchNorm

    layers = [model, *(layer for _, layer in model.named_layers())] \
        if hasattr(model, "named_layers") else [model]
    return any(isinstance(la, BatchNorm) and not la.track_running_stats for la in layers)


def default_batch(model: Any) -> int:
    """``predict``'s and ``evaluate``'s default batch: :data:`CONV_BATCH` when the model
    holds a convolution, else :data:`DENSE_BATCH`."""
    from .layers._conv import _Conv
    from .layers._conv_transpose import _ConvTranspose

    layers = [model, *(layer for _, layer in model.named_layers())] \
        if hasattr(model, "named_layers") else [model]
    convs = (_Conv, _ConvTranspose)
    return CONV_BATCH if any(isinstance(layer, convs) for layer in layers) else DENSE_BATCH
