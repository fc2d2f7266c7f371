"""The Loss base class and the helpers the losses share (see :mod:`backprop.losses`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_array, float_dtype, sample_weights
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
    _needs = "a preceding forward; got none (each forward serves one backward)"

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
            w = sample_weights(sample_weight, n, output.dtype, repr(self))
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

    def _metric_rows(self, y: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y, out)`` for the metrics of ``fit`` and ``evaluate``: the samples the loss
        counts (see :meth:`_counted_rows`)."""
        rows = self._counted_rows(y)
        return (y, out) if rows is None else (y[rows], out[rows])

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
    """Mean over every axis but the batch axis: (N, ...) -> (N,).

    As a matrix-vector product: BLAS sums rows an order of magnitude faster than
    ``mean(axis=1)`` ((8192, 100) float32: 288 -> 28 µs)."""
    flat = x.reshape(x.shape[0], -1)
    m = flat.shape[1]
    return flat @ np.full(m, 1.0 / m, dtype=flat.dtype) if m > 1 else flat[:, 0].copy()
