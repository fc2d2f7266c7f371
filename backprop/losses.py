"""Losses: ``forward(output, target) -> float`` (batch mean), ``backward() -> ∂L/∂output``.

Reductions follow PyTorch: ``SoftmaxCrossEntropy`` averages over the batch (with
class ``weight`` or ``ignore_index``, over the targets' summed weights);
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
    inputs, applies ``sample_weight`` to both, returns ``Σ losses / N`` as a float and
    caches ``grad / N``, which :meth:`backward` returns; subclasses do not override
    either (one that divides by something else than N, as a weighted cross-entropy by
    its targets' weights, overrides ``_divisor``). ``grad`` must be a new array (it is
    scaled in place), never a view of ``output``, the target or the loss's own state.
    For mean squared error: ``d = output - target``, ``losses = mean of d² over each
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
        self._last_divisor: float | None = None  # set by forward; None: N (see fit)

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
        d = self._divisor(target, n)
        grad *= 1.0 / d if d else 0.0  # d = 0: every target ignored, nothing to learn
        self._grad = grad
        self._last_divisor = d  # fit weighs the batch means by it: the epoch's exact mean
        return float(losses.sum() / d) if d else 0.0

    def _divisor(self, target: np.ndarray, n: int) -> float:
        """What the summed losses are divided by: the batch size N (a subclass that weighs
        its targets, as PyTorch's weighted cross-entropy, divides by their weights)."""
        return n

    def _counted_rows(self, target: Any) -> np.ndarray | None:
        """The samples the loss counts, as a boolean mask (None: all of them); metrics in
        ``fit`` and ``evaluate`` score only those."""
        return None

    def backward(self) -> np.ndarray:
        """Return ``∂L/∂output`` of the last forward (already divided by N, or by the
        loss's divisor)."""
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


def _weights(value: Any, who: str, name: str, ndims: tuple[int, ...], shape: str
             ) -> np.ndarray:
    """A loss's fixed weights (``weight``, ``pos_weight``): finite reals >= 0, float64."""
    w = as_array(value, who, name)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected {name} as real numbers, got dtype {w.dtype}")
    if w.ndim not in ndims or w.size == 0:
        raise ValueError(f"{who}: expected {name} as {shape}, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{who}: expected finite {name} >= 0, got {w.tolist()}")
    return w.astype(np.float64)


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
        pos_weight r:  L = mean((1 - t) z + (1 + (r - 1) t) softplus(-z)),
                   softplus(-z) = max(-z, 0) + log(1 + exp(-|z|)),
                   dL/dz = ((1 - t) - (1 + (r - 1) t) sigmoid(-z)) / z.size

    The rewritten form never exponentiates a positive number, so logits of ±1e4
    give exact losses without overflow warnings.

    Args:
        pos_weight: Weight of the positive term, one per output column (broadcast over
            the last axis) or a single number (PyTorch's ``pos_weight``: ``r > 1``
            raises recall). Default None: 1.
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, *, pos_weight: Any = None, dtype: Any = None) -> None:
        super().__init__(dtype=dtype)
        who = "BinaryCrossEntropyWithLogits"
        self.pos_weight = None if pos_weight is None else _weights(
            pos_weight, who, "pos_weight", (0, 1), "a number or one per output column (C,)")

    def _check_output(self, output):
        super()._check_output(output)
        r = self.pos_weight
        if r is not None and r.ndim == 1 and r.size != 1 and (
                output.ndim < 2 or output.shape[-1] != r.size):
            raise ValueError(f"{self!r}: expected outputs (N, ..., {r.size}), one column per "
                             f"pos_weight, got shape {output.shape}")

    def _check_target(self, output, target):
        t = super()._check_target(output, target)
        if np.any(t < 0) or np.any(t > 1) or not np.all(np.isfinite(t)):
            raise ValueError(f"{self!r}: expected targets in [0, 1], "
                             f"got values from {t.min()} to {t.max()}")
        return t

    def _forward(self, output, target):
        z = output
        if self.pos_weight is not None:
            return self._forward_weighted(z, target)
        losses = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
        grad = backend.expit(z)
        grad -= target
        grad *= 1.0 / z[0].size
        return _per_sample(losses), grad

    def _forward_weighted(self, z, target):
        lw = target * (self.pos_weight.astype(z.dtype) - 1.0)
        lw += 1.0  # 1 + (r - 1) t
        softplus = np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z)))
        losses = (1.0 - target) * z + lw * softplus
        grad = backend.expit(-z)
        grad *= -lw
        grad += 1.0 - target
        grad *= 1.0 / z[0].size
        return _per_sample(losses), grad

    def get_config(self):
        return {} if self.pos_weight is None else {"pos_weight": self.pos_weight.tolist()}


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy fused, on logits and integer labels (PyTorch ``CrossEntropyLoss``).

    ::

        Forward:   logp = z - max(z) - log(sum(exp(z - max(z))))   z (N, C), y (N,) int
                   q = (1 - ε) onehot(y) + ε / C                     ε = label_smoothing
                   L = mean_n(-sum_c q * logp)
        Backward:  dL/dz = (softmax(z) · Σ_c q - q) / N          (Σ_c q = 1 for labels)
        Weighted:  l_n = -Σ_c a_nc logp_nc,  a_nc = v_n ((1 - ε) w_c [c = y_n] + ε w_c / C)
                   L = Σ_n l_n / Σ_n v_n w_(y_n),    dl_n/dz_n = softmax(z_n) · Σ_c a_nc - a_n
                   (w = weight, v_n = 0 where y_n == ignore_index, else 1)

    Fusing the two makes the gradient the simple ``p - q`` and stays exact for any
    logits (the max-subtraction keeps ``exp`` in range). Targets may also be class
    probabilities ``(N, C)``, as in PyTorch; rows that do not sum to 1 are taken as
    given (PyTorch does the same), hence the ``Σ_c q`` in the gradient. With ``weight``
    such targets weigh ``a_nc = w_c q_nc`` and the mean divides by N, as in PyTorch.

    Args:
        label_smoothing: ε in [0, 1] (1: the uniform target, as PyTorch allows).
        weight: Per-class weights ``(C,)``, finite and >= 0 (PyTorch's ``weight``): the
            mean over labels then divides by the targets' summed weights, not by N.
        ignore_index: A label whose samples add nothing to the loss, its gradient or
            the mean's divisor (PyTorch's ``ignore_index``; PyTorch's default -100 is
            ``ignore_index=-100`` here, where by default every label must be a class;
            with probability targets it must be negative, which ignores nothing, as in
            PyTorch).
            A batch of only ignored labels gives a loss of 0 and a zero gradient, as
            Keras' ``ignore_class`` does (PyTorch gives nan, which would stop ``fit``).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, label_smoothing: float = 0.0, *, weight: Any = None,
                 ignore_index: int | None = None, dtype: Any = None) -> None:
        super().__init__(dtype=dtype)
        who = "SoftmaxCrossEntropy"
        self.label_smoothing = in_range(label_smoothing, "label_smoothing", who, 0.0, 1.0)
        self.weight = None if weight is None else _weights(weight, who, "weight", (1,),
                                                           "one per class (C,)")
        if ignore_index is not None and (isinstance(ignore_index, bool)
                                         or not isinstance(ignore_index, (int, np.integer))):
            raise TypeError(f"{who}: expected ignore_index as an int or None, got "
                            f"{ignore_index!r}")
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def _check_output(self, output):
        super()._check_output(output)
        if output.ndim != 2:
            raise ValueError(f"{self!r}: expected logits of shape (N, C), got {output.shape}")
        if self.weight is not None and self.weight.size != output.shape[1]:
            raise ValueError(f"{self!r}: expected logits of {self.weight.size} classes (one "
                             f"per weight), got shape {output.shape}")

    def _check_target(self, output, target):
        n, c = output.shape
        t = _as_target(self, target)
        if t.ndim == 2 and t.dtype.kind == "f":  # class probabilities
            if self.ignore_index is not None and self.ignore_index >= 0:  # as PyTorch
                raise ValueError(f"{self!r}: expected class indices with an ignore_index "
                                 f">= 0 (it selects a class; PyTorch refuses it with "
                                 f"probabilities too), got target probabilities {t.shape}")
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
        kept = t if self.ignore_index is None else t[t != self.ignore_index]
        if kept.size and (kept.min() < 0 or kept.max() >= c):
            also = "" if self.ignore_index is None else f" or {self.ignore_index} (ignored)"
            raise ValueError(f"{self!r}: expected class indices in [0, {c}){also}, "
                             f"got values from {kept.min()} to {kept.max()}")
        return t

    def _weighed(self) -> bool:
        return self.weight is not None or self.ignore_index is not None

    def _forward(self, output, target):
        n, c = output.shape
        z = output - output.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        logp = z
        logp -= lse
        eps = self.label_smoothing
        if target.ndim == 2 or self._weighed():
            return self._weighted(logp, self._class_weights(target, output.dtype, c))
        rows = np.arange(n)
        losses = -logp[rows, target]
        if eps:
            losses = (1.0 - eps) * losses - eps * logp.mean(axis=1)
        grad = np.exp(logp, out=logp)  # softmax, in the buffer logp no longer needs
        grad[rows, target] -= 1.0 - eps
        if eps:
            grad -= eps / c
        return losses, grad

    def _class_weights(self, target: np.ndarray, dtype: np.dtype, c: int) -> np.ndarray:
        """``a (N, C)``: how much each ``-logp`` counts (see the Weighted lines)."""
        eps, w = self.label_smoothing, self.weight
        if target.ndim == 2:  # probabilities: the q of the formulas, times w
            a = target * (1.0 - eps) + eps / c if eps else target
            return a if w is None else a * w.astype(dtype)
        n, kept = target.shape[0], self._kept(target)
        a = np.zeros((n, c), dtype)
        a[np.flatnonzero(kept), target[kept]] = 1.0 - eps
        if eps:
            a[kept] += eps / c
        return a if w is None else a * w.astype(dtype)

    def _kept(self, target: np.ndarray) -> np.ndarray:
        return (np.ones(target.shape, bool) if self.ignore_index is None
                else target != self.ignore_index)

    def _counted_rows(self, target):
        if self.ignore_index is None or getattr(target, "ndim", 0) != 1:
            return None
        return np.asarray(target) != self.ignore_index

    @staticmethod
    def _weighted(logp: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        losses = -(a * logp).sum(axis=1)
        grad = np.exp(logp, out=logp)  # losses are taken: reuse the buffer
        grad *= a.sum(axis=1, keepdims=True)  # Σa: targets need not sum to 1 (as torch)
        grad -= a
        return losses, grad

    def _divisor(self, target, n):
        if target.ndim == 2 or not self._weighed():
            return n
        kept = self._kept(target)
        if self.weight is None:
            return float(np.count_nonzero(kept))
        return float(self.weight[target[kept]].sum())

    def get_config(self):
        config: dict[str, Any] = {}
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        if self.weight is not None:
            config["weight"] = self.weight.tolist()
        if self.ignore_index is not None:
            config["ignore_index"] = self.ignore_index
        return config
