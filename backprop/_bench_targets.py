"""Random targets that :func:`backprop.bench` feeds each loss: what the loss takes for an
output of the model's shape (class indices, probabilities, ±1, counts or real values)."""

from __future__ import annotations

import numpy as np

from .losses import (
    BCELoss,
    BinaryCrossEntropyWithLogits,
    HingeEmbeddingLoss,
    KLDivLoss,
    Loss,
    MultiLabelMarginLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    NLLLoss,
    PoissonNLLLoss,
    SoftMarginLoss,
    SoftmaxCrossEntropy,
)

_LABELS = (SoftmaxCrossEntropy, NLLLoss, MultiMarginLoss)  # one class index per position
_PROBABILITIES = (BinaryCrossEntropyWithLogits, BCELoss, MultiLabelSoftMarginLoss)
_SIGNS = (SoftMarginLoss, HingeEmbeddingLoss)


def target_for(loss: Loss, out: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random target for ``loss`` on the output ``out``: class indices ``(N, d1, ...)``
    in ``[0, C)`` for an output ``(N, C, d1, ...)`` (the cross-entropies, PyTorch's
    layout; ``(N,)`` for ``(N, C)``), values in [0, 1) for the binary cross-entropies,
    ±1 for the margin losses, one label then -1s per row for ``MultiLabelMarginLoss``,
    probabilities (or their logarithms) for ``KLDivLoss``, counts for
    ``PoissonNLLLoss``, and standard normal values for the regression losses and any
    loss of your own."""
    if isinstance(loss, _LABELS) and out.ndim >= 2:
        return rng.integers(0, out.shape[1], size=(out.shape[0], *out.shape[2:]))
    if isinstance(loss, MultiLabelMarginLoss):
        target = np.full(out.shape, -1, dtype=np.int64)
        target[..., 0] = rng.integers(0, out.shape[-1], size=out.shape[:-1])
        return target
    if isinstance(loss, _PROBABILITIES):
        return rng.random(out.shape).astype(out.dtype)
    if isinstance(loss, _SIGNS):
        return np.where(rng.random(out.shape) < 0.5, -1, 1).astype(out.dtype)
    if isinstance(loss, KLDivLoss):
        p = rng.random(out.shape).astype(out.dtype) + out.dtype.type(1e-3)
        return np.log(p) if loss.log_target else p
    if isinstance(loss, PoissonNLLLoss):
        return rng.poisson(1.0, out.shape).astype(out.dtype)
    return rng.standard_normal(out.shape).astype(out.dtype)
