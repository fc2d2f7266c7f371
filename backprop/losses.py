"""Losses: ``forward(output, target) -> float`` (the batch mean by default) and
``backward() -> ∂L/∂output``.

Reductions follow PyTorch, ``reduction='mean'`` by default: ``SoftmaxCrossEntropy``
averages over the batch (with class ``weight`` or ``ignore_index``, over the targets'
summed weights); ``MeanSquaredError``, ``BinaryCrossEntropyWithLogits`` and ``Huber``
average over every element. ``reduction='sum'`` adds them up instead, and
``reduction='none'`` returns the array of them (one per element, or per sample or
position for the cross-entropy), whose ``backward(grad_output)`` takes the gradient
with respect to each. ``sample_weight`` (N,) scales each sample's losses; the mean
still divides by their number (Keras' ``sum_over_batch_size``), so weights of 1
change nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from ._cross_entropy import SoftmaxCrossEntropy
from ._loss_base import Loss, _check_broadcast, _weights
from ._losses2 import BCELoss, PoissonNLLLoss, SmoothL1Loss
from ._margin_losses import HingeEmbeddingLoss, MultiLabelSoftMarginLoss, SoftMarginLoss
from ._margin_losses2 import MultiLabelMarginLoss, MultiMarginLoss
from ._more_losses import KLDivLoss, NLLLoss
from ._validate import in_range

__all__ = ["Loss", "MeanSquaredError", "MeanAbsoluteError", "Huber",
           "BinaryCrossEntropyWithLogits", "SoftmaxCrossEntropy", "NLLLoss", "KLDivLoss",
           "BCELoss", "SmoothL1Loss", "SoftMarginLoss", "MultiLabelSoftMarginLoss",
           "PoissonNLLLoss", "HingeEmbeddingLoss", "MultiMarginLoss", "MultiLabelMarginLoss"]


class MeanSquaredError(Loss):
    """Mean squared error over all elements (PyTorch ``MSELoss``).

    ::

        Forward:   L = mean((o - t)²)                        o, t (N, ...)
        Backward:  dL/do = 2 (o - t) / o.size

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    _finite_targets = True  # NaN or inf targets refused (see Loss)

    def _forward(self, output, target):
        diff = output - target
        losses = np.square(diff)
        diff *= 2.0  # the gradient, in the buffer the losses no longer need
        return losses, diff


class MeanAbsoluteError(Loss):
    """Mean absolute error over all elements (PyTorch ``L1Loss``, Keras
    ``MeanAbsoluteError``).

    ::

        Forward:   L = mean(|o - t|)                         o, t (N, ...)
        Backward:  dL/do = sign(o - t) / o.size              (sign(0) = 0, as PyTorch)

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    _finite_targets = True  # NaN or inf targets refused (see Loss)

    def _forward(self, output, target):
        diff = output - target
        return np.abs(diff), np.sign(diff)  # (in place it is ~10x slower: 64x1000, 0.25 ms)


class Huber(Loss):
    """Huber loss with threshold ``delta`` (PyTorch ``HuberLoss``), mean over elements.

    ::

        Forward:   L = mean(where(|d| < delta, d²/2, delta (|d| - delta/2))),  d = o - t
        Backward:  dL/do = clip(d, -delta, delta) / o.size

    Args:
        delta: Where the quadratic part turns linear (> 0; PyTorch's default 1.0).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    _finite_targets = True  # NaN or inf targets refused (see Loss)

    def __init__(self, delta: float = 1.0, *, reduction: str = "mean",
                 dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        self.delta = in_range(delta, "delta", "Huber", 0.0, low_open=True)

    def _forward(self, output, target):
        d = output - target
        half = np.abs(d)
        # the part of |d| inside the quadratic zone (clip with both bounds: NumPy's fast
        # loop; np.minimum with a scalar ran 3.5x slower)
        quad = np.clip(half, 0.0, self.delta)
        half -= quad  # in place, no temporaries: (quad/2)(|d| - quad + quad/2), half the
        quad *= 0.5   # loss (never above it: no overflow the loss itself has not)
        half += quad
        half *= quad  # = d²/4 inside, (delta/2)(|d| - delta/2) outside
        half *= 2.0  # the loss (finite wherever the loss is)
        return half, np.clip(d, -self.delta, self.delta, out=d)

    def get_config(self):
        return {"delta": self.delta}


class BinaryCrossEntropyWithLogits(Loss):
    """Binary cross-entropy on logits, stable for any logit (PyTorch ``BCEWithLogitsLoss``).

    ::

        Forward:   L = mean((1 - t) z + max(-z, 0) + log(1 + exp(-|z|)))   z logits, t in [0, 1]
        Backward:  dL/dz = (sigmoid(z) - t) / z.size
        pos_weight r:  L = mean((1 - t) z + (1 + (r - 1) t) softplus(-z)),
                   softplus(-z) = max(-z, 0) + log(1 + exp(-|z|)),
                   dL/dz = ((1 - t) - (1 + (r - 1) t) sigmoid(-z)) / z.size
        weight w:  each element's loss and gradient times w (broadcast)

    The rewritten form never exponentiates a positive number, so logits of ±1e4
    give exact losses without overflow warnings. It is PyTorch's form, ``(1 - t) z -
    log_sigmoid(z)``, so infinite logits give what PyTorch's give (+inf with t = 0: inf;
    -inf, or +inf with t > 0: NaN, from ``inf - inf`` or ``0 · inf``), without warnings;
    the gradient ``sigmoid(z) - t`` stays finite.

    Args:
        weight: Weights of each element's loss, a number or an array broadcast against
            the output (PyTorch's ``weight``: ``(C,)`` weighs each output column),
            finite and >= 0; the mean still divides by the number of elements, as
            PyTorch's. Default None: 1.
        pos_weight: Weight of the positive term, one per output column (broadcast over
            the last axis), a single number, or any array broadcast against the output
            (PyTorch's ``pos_weight``: ``r > 1`` raises recall). Default None: 1.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, weight: Any = None, *, pos_weight: Any = None, reduction: str = "mean",
                 dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        who = "BinaryCrossEntropyWithLogits"
        self.weight = None if weight is None else _weights(
            weight, who, "weight", tuple(range(8)), "an array broadcast to the output")
        self.pos_weight = None if pos_weight is None else _weights(
            pos_weight, who, "pos_weight", tuple(range(8)), "an array broadcast to the output")

    def _check_output(self, output):
        super()._check_output(output)
        _check_broadcast(self, self.weight, output)
        _check_broadcast(self, self.pos_weight, output, "pos_weight")  # (C,), (1, C), (N, C)

    def _check_target(self, output, target):
        t = super()._check_target(output, target)
        if np.any(t < 0) or np.any(t > 1) or not np.all(np.isfinite(t)):
            raise ValueError(f"{self!r}: expected targets in [0, 1], "
                             f"got values from {t.min()} to {t.max()}")
        return t

    def _forward(self, output, target):
        losses, grad = self._forward_unweighted(output, target)
        if self.weight is not None:  # w l, w dl/dz (the mean still over all elements), in
            w = self.weight.astype(output.dtype)  # place: w never grows them (checked)
            losses *= w
            grad *= w
        return losses, grad

    def _forward_unweighted(self, output, target):
        z = output
        if self.pos_weight is not None:
            return self._forward_weighted(z, target)
        losses = np.abs(z)  # then log(1 + exp(-|z|)), in place
        backend.negate(losses, out=losses)
        np.exp(losses, out=losses)
        np.log1p(losses, out=losses)
        losses += np.maximum(-z, 0)
        # ±inf logits: inf - inf or inf·0 is NaN, quietly
        losses += (1.0 - target) * z
        grad = backend.expit(z)
        grad -= target
        return losses, grad

    def _forward_weighted(self, z, target):
        lw = target * (self.pos_weight.astype(z.dtype) - 1.0)
        lw += 1.0  # 1 + (r - 1) t
        softplus = np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z)))
        # ±inf logits, as above
        losses = (1.0 - target) * z + lw * softplus
        grad = backend.expit(-z)
        grad *= -lw
        grad += 1.0 - target
        return losses, grad

    def get_config(self):
        return {k: v.tolist() for k, v in (("weight", self.weight),
                                            ("pos_weight", self.pos_weight)) if v is not None}


def __getattr__(name: str) -> None:
    """Keras' and PyTorch's names for what backprop spells otherwise: an AttributeError
    naming ours (``backprop.losses.AUC``: a metric named in ``fit(metrics=['auc'])``)."""
    from ._other_names import missing

    raise missing(name, "backprop.losses")
