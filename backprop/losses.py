"""Losses: ``forward(output, target) -> float`` (batch mean), ``backward() -> ∂L/∂output``.

Reductions follow PyTorch: ``SoftmaxCrossEntropy`` averages over the batch;
``MeanSquaredError``, ``BinaryCrossEntropyWithLogits`` and ``Huber`` average over
every element. ``sample_weight`` (N,) scales each sample's loss; the mean still
divides by N (Keras' ``sum_over_batch_size``), so weights of 1 change nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from ._validate import as_array, check_array, float_dtype, in_range
from .layers.base import Cached


class Loss(Cached):
    """Base class: a subclass writes ``_forward(output, target) -> (losses, grad)``.

    ``losses`` (N,) are the per-sample losses and ``grad`` (the output's shape) is
    ``∂(Σ_i losses_i)/∂output``, not yet divided by N. :meth:`forward` checks the
    inputs, applies ``sample_weight`` to both, returns ``mean(losses)`` as a float and
    caches ``grad / N``, which :meth:`backward` returns; subclasses do not override
    either. ``grad`` must be a new array (it is scaled in place), never a view of
    ``output``, the target or the loss's own state. For
    mean squared error: ``d = output - target``, ``losses = mean of d² over each
    sample's m elements``, ``grad = 2 d / m``. Check a new loss with
    :func:`backprop.check_gradients`.

    Args:
        dtype: When given, outputs of another dtype are rejected (TypeError);
            by default the loss follows the dtype of the output it receives.
    """

    _cache_attrs = ("_grad",)

    def __init__(self, *, dtype: Any = None) -> None:
        self.dtype = None if dtype is None else float_dtype(dtype, type(self).__name__)
        self._grad: np.ndarray | None = None

    def forward(self, output: np.ndarray, target: Any, sample_weight: Any = None) -> float:
        """Return the mean loss as a Python float and cache ``∂L/∂output``."""
        self._check_output(output)
        target = self._check_target(output, target)
        losses, grad = self._forward(output, target)  # losses (N,), grad unscaled
        n = output.shape[0]
        if sample_weight is not None:
            w = self._check_weight(sample_weight, n, output.dtype)
            losses = losses * w
            grad *= w.reshape((n,) + (1,) * (grad.ndim - 1))
        grad *= 1.0 / n
        self._grad = grad
        return float(losses.sum() / n)

    def backward(self) -> np.ndarray:
        """Return ``∂L/∂output`` of the last forward (already divided by N)."""
        return self._pop("_grad")

    def __call__(self, output: np.ndarray, target: Any, sample_weight: Any = None) -> float:
        return self.forward(output, target, sample_weight)

    def _forward(self, output: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _check_output(self, output: Any) -> None:
        if not hasattr(output, "dtype") or not hasattr(output, "shape"):
            raise TypeError(f"{self!r}: expected output as an array, got {type(output).__name__}")
        if output.dtype.kind != "f":
            raise TypeError(f"{self!r}: expected a floating output, got {output.dtype}")
        if self.dtype is not None and output.dtype != self.dtype:
            raise TypeError(f"{self!r}: expected output of dtype {self.dtype}, got {output.dtype}")
        if output.ndim < 1 or output.shape[0] == 0:
            raise ValueError(f"{self!r}: expected a non-empty batch (N, ...), got {output.shape}")

    def _check_target(self, output: np.ndarray, target: Any) -> np.ndarray:
        """Regression targets: same shape as output ((N,) accepted for (N, 1))."""
        t = _as_target(self, target)
        if t.dtype.kind not in "fiub":
            raise TypeError(f"{self!r}: expected a numeric target, got {t.dtype}")
        if t.shape != output.shape:
            if t.size == output.size and t.ndim >= 1 and t.shape[0] == output.shape[0]:
                t = t.reshape(output.shape)
            else:
                raise ValueError(
                    f"{self!r}: expected target of shape {output.shape}, got {t.shape}")
        return t.astype(output.dtype, copy=False)

    def _check_weight(self, sample_weight: Any, n: int, dtype: np.dtype) -> np.ndarray:
        w = as_array(sample_weight, repr(self), "sample_weight")
        if w.dtype.kind not in "biuf":  # complex would lose its imaginary part in the cast
            raise TypeError(f"{self!r}: expected sample_weight of real numbers, got dtype "
                            f"{w.dtype}")
        w = w.astype(dtype, copy=False)
        if w.shape != (n,):
            raise ValueError(f"{self!r}: expected sample_weight of shape ({n},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"{self!r}: expected finite, non-negative sample_weight")
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _as_target(loss: Loss, target: Any) -> np.ndarray:
    """``target`` as an array; the loss's repr (for the error) is only built when needed."""
    return target if isinstance(target, np.ndarray) else as_array(target, repr(loss), "target")


def _per_sample(x: np.ndarray) -> np.ndarray:
    """Mean over every axis but the batch axis: (N, ...) -> (N,)."""
    return x.reshape(x.shape[0], -1).mean(axis=1)


class MeanSquaredError(Loss):
    """Mean squared error over all elements (PyTorch ``MSELoss``).

    ::

        Forward:   L = mean((o - t)²)                        o, t (N, ...)
        Backward:  dL/do = 2 (o - t) / o.size
    """

    def _forward(self, output, target):
        diff = output - target
        m = diff[0].size  # per-sample mean, then the batch mean divides by N
        return _per_sample(diff * diff), diff * (2.0 / m)


class Huber(Loss):
    """Huber loss with threshold ``delta`` (PyTorch ``HuberLoss``), mean over elements.

    ::

        Forward:   L = mean(where(|d| < delta, d²/2, delta (|d| - delta/2))),  d = o - t
        Backward:  dL/do = clip(d, -delta, delta) / o.size

    Args:
        delta: Where the quadratic part turns linear (> 0; PyTorch's default 1.0).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, delta: float = 1.0, *, dtype: Any = None) -> None:
        super().__init__(dtype=dtype)
        self.delta = in_range(delta, "delta", "Huber", 0.0, low_open=True)

    def _forward(self, output, target):
        d = output - target
        a = np.abs(d)
        quad = np.minimum(a, self.delta)  # the part of |d| inside the quadratic zone
        losses = quad * (a - 0.5 * quad)  # = d²/2 inside, delta(|d| - delta/2) outside
        return _per_sample(losses), np.clip(d, -self.delta, self.delta) * (1.0 / d[0].size)

    def get_config(self):
        return {"delta": self.delta}


class BinaryCrossEntropyWithLogits(Loss):
    """Binary cross-entropy on logits, stable for any logit (PyTorch ``BCEWithLogitsLoss``).

    ::

        Forward:   L = mean(max(z, 0) - z t + log(1 + exp(-|z|)))     z logits, t in [0, 1]
        Backward:  dL/dz = (sigmoid(z) - t) / z.size

    The rewritten form never exponentiates a positive number, so logits of ±1e4
    give exact losses without overflow warnings.
    """

    def _check_target(self, output, target):
        t = super()._check_target(output, target)
        if np.any(t < 0) or np.any(t > 1) or not np.all(np.isfinite(t)):
            raise ValueError(f"{self!r}: expected targets in [0, 1], "
                             f"got values from {t.min()} to {t.max()}")
        return t

    def _forward(self, output, target):
        z = output
        losses = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
        grad = backend.expit(z)
        grad -= target
        grad *= 1.0 / z[0].size
        return _per_sample(losses), grad


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy fused, on logits and integer labels (PyTorch ``CrossEntropyLoss``).

    ::

        Forward:   logp = z - max(z) - log(sum(exp(z - max(z))))   z (N, C), y (N,) int
                   q = (1 - ε) onehot(y) + ε / C                     ε = label_smoothing
                   L = mean_n(-sum_c q * logp)
        Backward:  dL/dz = (softmax(z) · Σ_c q - q) / N          (Σ_c q = 1 for labels)

    Fusing the two makes the gradient the simple ``p - q`` and stays exact for any
    logits (the max-subtraction keeps ``exp`` in range). Targets may also be class
    probabilities ``(N, C)``, as in PyTorch; rows that do not sum to 1 are taken as
    given (PyTorch does the same), hence the ``Σ_c q`` in the gradient.

    Args:
        label_smoothing: ε in [0, 1] (1: the uniform target, as PyTorch allows).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, label_smoothing: float = 0.0, *, dtype: Any = None) -> None:
        super().__init__(dtype=dtype)
        self.label_smoothing = in_range(label_smoothing, "label_smoothing",
                                        "SoftmaxCrossEntropy", 0.0, 1.0)

    def _check_output(self, output):
        super()._check_output(output)
        if output.ndim != 2:
            raise ValueError(f"{self!r}: expected logits of shape (N, C), got {output.shape}")

    def _check_target(self, output, target):
        n, c = output.shape
        t = _as_target(self, target)
        if t.ndim == 2 and t.dtype.kind == "f":  # class probabilities
            check_array(t, self, (n, c), what="target probabilities")
            if t.min() < 0 or t.max() > 1:
                raise ValueError(f"{self!r}: expected target probabilities in [0, 1], "
                                 f"got values from {t.min()} to {t.max()}")
            return t.astype(output.dtype, copy=False)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{self!r}: expected integer class indices (N,), got dtype "
                            f"{t.dtype} (convert with y.astype(int))")
        if t.shape != (n,):
            raise ValueError(f"{self!r}: expected {n} class indices of shape ({n},) "
                             f"for logits {output.shape}, got {t.shape}")
        if t.min() < 0 or t.max() >= c:
            raise ValueError(f"{self!r}: expected class indices in [0, {c}), "
                             f"got values from {t.min()} to {t.max()}")
        return t

    def _forward(self, output, target):
        n, c = output.shape
        z = output - output.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        logp = z
        logp -= lse
        eps = self.label_smoothing
        if target.ndim == 2:
            q = target * (1.0 - eps) + eps / c if eps else target
            losses = -(q * logp).sum(axis=1)
            grad = np.exp(logp, out=logp)  # losses are taken: reuse the buffer
            grad *= q.sum(axis=1, keepdims=True)  # Σq: targets need not sum to 1 (as torch)
            grad -= q
            return losses, grad
        rows = np.arange(n)
        losses = -logp[rows, target]
        if eps:
            losses = (1.0 - eps) * losses - eps * logp.mean(axis=1)
        grad = np.exp(logp, out=logp)  # softmax, in the buffer logp no longer needs
        grad[rows, target] -= 1.0 - eps
        if eps:
            grad -= eps / c
        return losses, grad

    def get_config(self):
        return {"label_smoothing": self.label_smoothing} if self.label_smoothing else {}
