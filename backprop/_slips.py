"""The slips a model and its loss can make together, found before training: an activation
applied twice, probabilities where log-probabilities go, logits where probabilities go
(used by :mod:`._fit_inputs`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._validate import caller_level
from .layers import (
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
    Permute,
    Reshape,
    Sigmoid,
    Softmax,
)
from .losses import (
    BCELoss,
    BinaryCrossEntropyWithLogits,
    HingeEmbeddingLoss,
    KLDivLoss,
    MultiLabelMarginLoss,
    MultiLabelSoftMarginLoss,
    NLLLoss,
    SoftmaxCrossEntropy,
)
from .metrics import binary_accuracy

_SHAPE_ONLY = (Flatten, Reshape, Permute, Identity, Dropout)


def kind_of(value: Any) -> str:
    """What ``value`` is, for an error: its type's name, or for a class given where an
    instance is expected (``loss=bp.SoftmaxCrossEntropy``) a pointer to make one."""
    if isinstance(value, type):
        return f"the class {value.__name__} itself; create one: {value.__name__}(...)"
    return type(value).__name__


def last_layer(model: Any) -> Any:
    """The last leaf layer of (nested) Sequentials that changes values (shape-only layers
    and Dropout after it pass its outputs on), or the model itself."""
    last = model
    while getattr(last, "layers", None):
        layers = [la for la in last.layers if not isinstance(la, _SHAPE_ONLY)]
        if not layers:
            return last.layers[-1]
        last = layers[-1]
    return last


def warn_activation_slips(model: Any, loss: Any, who: str = "fit") -> None:
    """Keras' classic slip: a final Softmax (Sigmoid) before a loss that applies it itself;
    and PyTorch's: probabilities (a final Softmax) into NLLLoss, which takes their logs,
    or logits (a final Dense or Conv) into BCELoss, which takes probabilities."""

    last = last_layer(model)
    for act, kind in ((Softmax, SoftmaxCrossEntropy),
                      (Sigmoid, (BinaryCrossEntropyWithLogits, MultiLabelSoftMarginLoss))):
        if isinstance(last, act) and isinstance(loss, kind):
            warnings.warn(
                f"{who}: the model ends in {act.__name__}() and {type(loss).__name__} applies "
                f"{act.__name__.lower()} itself (it takes logits, as PyTorch's loss does): "
                "it is applied twice, which flattens the gradients. Drop the final "
                f"{act.__name__}() and apply it to predict()'s output instead.",
                UserWarning, stacklevel=caller_level())
    if type(last) is Softmax and isinstance(loss, (NLLLoss, KLDivLoss)):
        fused = (" (or drop the Softmax and use SoftmaxCrossEntropy, which fuses the two)"
                 if isinstance(loss, NLLLoss) else "")
        warnings.warn(f"{who}: the model ends in Softmax() and {type(loss).__name__} takes "
                      f"log-probabilities: end it in LogSoftmax() instead{fused}", UserWarning,
                      stacklevel=caller_level())
    if isinstance(loss, BCELoss) and isinstance(last, (Dense, Conv1D, Conv2D)):
        warnings.warn(f"{who}: the model ends in {type(last).__name__} (logits) and BCELoss "
                      "takes probabilities: end it in Sigmoid(), or train the logits with "
                      "BinaryCrossEntropyWithLogits (stable for any logit)", UserWarning,
                      stacklevel=caller_level())


def signed_targets(fn: Any, loss: Any) -> Any:
    """``accuracy`` for a loss of ±1 targets: SoftMarginLoss's logits decide by their sign
    (binary accuracy of ``y > 0``); HingeEmbeddingLoss's outputs are distances, which decide
    nothing, so accuracy is refused before training."""
    if isinstance(loss, HingeEmbeddingLoss):
        raise ValueError("resolve: HingeEmbeddingLoss's outputs are distances, not decisions: "
                         "there is no accuracy to score (watch the loss, or threshold the "
                         "distances yourself in a metric of your own)")

    def accuracy(y_true: Any, output: Any) -> float:
        return binary_accuracy(np.asarray(y_true) > 0, output)

    return accuracy


def refuse_built_in_metrics(items: list[Any], fns: tuple[Any, ...], loss: Any, who: str
                            ) -> None:
    """MultiLabelMarginLoss's scores rank the classes with no threshold that decides a label
    set, and its targets are class indices padded with -1, which every built-in metric would
    misread (as labels, or as 0/1 rows): those are refused before training."""
    if not isinstance(loss, MultiLabelMarginLoss):
        return
    ours = [isinstance(m, str) or (getattr(f, "__module__", None) or "").startswith("backprop.")
            for m, f in zip(items, fns, strict=True)]
    named = [m if isinstance(m, str) else getattr(m, "__name__", "metric")
             for m, mine in zip(items, ours, strict=True) if mine]
    if named:
        raise ValueError(f"{who}: MultiLabelMarginLoss's outputs rank the classes and decide "
                         f"no set of labels, and its targets are class indices padded with "
                         f"-1: there is no {named[0]!r} to score (watch the loss, or write a "
                         f"metric of your own, which gets the targets as given)")
