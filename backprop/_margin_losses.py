"""SoftMarginLoss, MultiLabelSoftMarginLoss and HingeEmbeddingLoss: PyTorch's losses on
scores with ±1 or 0/1 targets (see :mod:`backprop.losses`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from ._loss_base import Loss, _weights
from ._validate import in_range


def _check_signs(loss: Loss, t: np.ndarray) -> np.ndarray:
    """Targets that are all 1 or -1, or the loss's ValueError."""
    if not np.all((t == 1) | (t == -1)):
        bad = t[(t != 1) & (t != -1)]
        raise ValueError(f"{loss!r}: expected targets of 1 or -1, got {bad.flat[0].item()!r} (0/1 "
                         f"labels become ±1 as 2 * y - 1)")
    return t


def _softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + exp(z)) without overflow: max(z, 0) + log(1 + exp(-|z|))."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


class SoftMarginLoss(Loss):
    """Two-class logistic loss of scores against ±1 targets (PyTorch ``SoftMarginLoss``).

    ::

        Forward:   l = log(1 + exp(-y x))           x (N, ...) scores, y (N, ...) in {-1, 1}
                   L = mean(l)
        Backward:  dL/dx = -y sigmoid(-y x) / x.size

    It is :class:`BinaryCrossEntropyWithLogits` with the targets ``(y + 1) / 2``.

    Where PyTorch differs: targets other than ±1 raise ValueError (PyTorch takes any
    number); the loss is computed as ``max(-y x, 0) + log(1 + exp(-|y x|))``, finite
    where PyTorch's ``log(1 + exp(-y x))`` overflows to inf (``-y x`` above ~709 in
    float64, ~88 in float32).

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def _check_target(self, output, target):
        return _check_signs(self, super()._check_target(output, target))

    def _forward(self, output, target):
        margin = -target * output
        losses = _softplus(margin)
        grad = backend.expit(margin)
        grad *= -target
        return losses, grad


class MultiLabelSoftMarginLoss(Loss):
    """Multi-label logistic loss, one mean per sample over its C classes (PyTorch
    ``MultiLabelSoftMarginLoss``).

    ::

        Forward:   l_n = -Σ_c w_c (y log sigmoid(x) + (1 - y) log sigmoid(-x))[n, c] / C
                   L = mean_n(l_n)                  x (N, C) logits, y (N, C) in [0, 1]
        Backward:  dL/dx[n, c] = w_c (sigmoid(x[n, c]) - y[n, c]) / C / N

    It is :class:`BinaryCrossEntropyWithLogits` averaged per sample first: ``'none'``
    gives one loss per sample ``(N,)``, and ``sample_weight`` weighs those.

    Where PyTorch differs: outputs must be ``(N, C)`` (PyTorch also takes one sample
    ``(C,)``); targets outside [0, 1] raise ValueError (PyTorch takes any number).

    Args:
        weight: Per-class weights ``(C,)`` or one number, finite and >= 0 (PyTorch's
            ``weight``); the mean over classes still divides by C. Default None: 1.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, weight: Any = None, *, reduction: str = "mean",
                 dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        self.weight = None if weight is None else _weights(
            weight, "MultiLabelSoftMarginLoss", "weight", (0, 1), "one per class (C,)")

    def _check_output(self, output):
        super()._check_output(output)
        w = self.weight
        if output.ndim != 2 or (w is not None and w.size != 1 and w.size != output.shape[1]):
            classes = "C" if w is None or w.size == 1 else w.size
            raise ValueError(f"{self!r}: expected logits of shape (N, {classes}), got "
                             f"{output.shape}")

    def _check_target(self, output, target):
        t = super()._check_target(output, target)
        if not (np.all(np.isfinite(t)) and t.min() >= 0 and t.max() <= 1):
            raise ValueError(f"{self!r}: expected targets in [0, 1] (0/1 per class), got "
                             f"values from {t.min()} to {t.max()}")
        return t

    def _forward(self, output, target):
        x, y = output, target
        # -(y log σ(x) + (1 - y) log σ(-x)) = log(1 + exp(-|x|)) + y max(-x, 0)
        # + (1 - y) max(x, 0): terms >= 0, so no two large ones cancel (x = -44, y = 0 gave
        # 0, not 7.8e-20); ±inf logits give NaN (0·inf) or inf where torch's does
        each = np.log1p(np.exp(-np.abs(x)))
        each += y * np.maximum(-x, 0) + (1.0 - y) * np.maximum(x, 0)
        grad = (1.0 - y) * backend.expit(x) - y * backend.expit(-x)  # σ(x) - y, kept exact
        # where σ(x) rounds to 1
        scale = 1.0 / x.shape[1]
        if self.weight is not None:
            w = self.weight.astype(x.dtype)
            each, grad = each * w, grad * w
        grad *= scale
        return each.sum(axis=1) * scale, grad

    def get_config(self):
        return {} if self.weight is None else {"weight": self.weight.tolist()}


class HingeEmbeddingLoss(Loss):
    """Hinge loss of distances against ±1 targets (PyTorch ``HingeEmbeddingLoss``).

    ::

        Forward:   l = x                     where y = 1     x (N, ...) e.g. distances,
                   l = max(0, margin - x)    where y = -1    y (N, ...) in {-1, 1}
                   L = mean(l)
        Backward:  dL/dx = [y = 1] - [y = -1][x <= margin]   (/ x.size for the mean)

    At ``x == margin`` the gradient is -1, as PyTorch's ``clamp_min`` passes it there.

    Where PyTorch differs: targets other than ±1 raise ValueError (PyTorch adds both
    terms for them).

    Args:
        margin: The distance beyond which a dissimilar pair (y = -1) costs nothing
            (PyTorch's default 1.0).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, margin: float = 1.0, *, reduction: str = "mean",
                 dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        self.margin = in_range(margin, "margin", "HingeEmbeddingLoss", -float("inf"))

    def _check_target(self, output, target):
        return _check_signs(self, super()._check_target(output, target))

    def _forward(self, output, target):
        x, similar = output, target == 1
        gap = self.margin - x
        losses = np.where(similar, x, np.maximum(gap, 0.0))
        grad = np.where(similar, 1.0, np.where(gap >= 0, -1.0, 0.0)).astype(x.dtype)
        return losses.astype(x.dtype, copy=False), grad

    def get_config(self):
        return {"margin": self.margin}
