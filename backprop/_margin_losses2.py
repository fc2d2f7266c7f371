"""MultiMarginLoss and MultiLabelMarginLoss: PyTorch's hinge losses on class scores, one
target class or a list of them per sample (see :mod:`backprop.losses`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._cross_entropy import SoftmaxCrossEntropy
from ._loss_base import Loss, _as_target, _weights
from ._validate import in_range


class _ScoresLoss(Loss):
    """A loss on class scores ``(N, C)``, or one sample's ``(C,)`` as PyTorch takes it."""

    _what = "class scores"

    def forward(self, output: np.ndarray, target: Any, sample_weight: Any = None
                ) -> float | np.ndarray:
        """As :meth:`Loss.forward`; one sample ``(C,)`` takes no ``sample_weight`` (there is
        no batch to weigh)."""
        if sample_weight is not None and getattr(output, "ndim", 2) == 1:
            raise ValueError(f"{self!r}: expected {self._what} of shape (N, C) with a "
                             f"sample_weight, got one sample {output.shape}")
        return super().forward(output, target, sample_weight)

    def _check_output(self, output):
        super()._check_output(output)
        w = getattr(self, "weight", None)
        classes = "C" if w is None else w.size
        if output.ndim > 2 or output.shape[-1] == 0 or (w is not None
                                                        and output.shape[-1] != w.size):
            raise ValueError(f"{self!r}: expected {self._what} of shape (N, {classes}) or "
                             f"({classes},){' (one per weight)' if w is not None else ''}, "
                             f"got {output.shape}")

    def _integers(self, t: np.ndarray, shape: str) -> None:
        if t.dtype.kind not in "iu":
            raise TypeError(f"{self!r}: expected integer class indices {shape}, got dtype "
                            f"{t.dtype} (convert with y.astype(int))")


class MultiMarginLoss(_ScoresLoss):
    """Multi-class hinge loss of class scores against integer labels (PyTorch
    ``MultiMarginLoss``).

    ::

        Forward:   h[n, i] = max(0, margin - x[n, y_n] + x[n, i])  x (N, C) scores, y (N,) int
                   l_n = w[y_n] Σ_{i != y_n} h[n, i]^p / C           w (C,) weight (1 by default)
                   L = mean_n(l_n)                                   p = 1 or 2
        Backward:  dL/dx[n, i] = w[y_n] p h[n, i]^(p-1) [h[n, i] > 0] / C / N    (i != y_n)
                   dL/dx[n, y_n] = -Σ_{i != y_n} dL/dx[n, i]

    Each other class scoring within ``margin`` of the label's score costs; the weight is
    the label's, and the sum divides by C (not C - 1), both as PyTorch's. At the kink
    (``h = 0`` before the max) a term passes no gradient, as PyTorch's ``z > 0`` has it.
    One sample ``(C,)`` takes a scalar label ``()`` (or ``(1,)``), and ``'none'`` gives
    its loss in the label's shape. The prediction is ``argmax(x)``: in ``fit`` and
    ``evaluate``, ``accuracy`` scores it, as for :class:`SoftmaxCrossEntropy`.

    Where PyTorch differs: a column of labels ``(N, 1)`` is taken as ``(N,)`` and labels of
    any integer dtype (PyTorch: int64 ``(N,)`` only); labels outside ``[0, C)`` raise
    ValueError (PyTorch: RuntimeError); ``weight`` must be >= 0; an empty batch raises
    ValueError (PyTorch's ``'mean'`` of none is undefined); a NaN score, or infinite scores
    whose difference is NaN, make the loss NaN, so that ``fit`` sees it (PyTorch's skips
    the NaN terms: 0 for a NaN label score).

    Args:
        p: 1 (the hinge, PyTorch's default) or 2 (the squared hinge).
        margin: How far the label's score must beat every other class's (PyTorch's
            default 1.0; any finite number).
        weight: Per-class weights ``(C,)``, finite and >= 0 (PyTorch's ``weight``): a
            sample's loss is multiplied by its label's; the mean still divides by N.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (one loss per sample;
            see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).

    Raises:
        ValueError: ``p`` not 1 or 2, a margin that is not finite, weights that are
            negative or not finite; scores not ``(N, C)`` or ``(C,)`` (C = the weights'
            number), labels of another shape or outside ``[0, C)``.
        TypeError: ``p`` or ``margin`` not a number, labels that are not integers.
    """

    ignore_index = None  # every label counts (read by the cross-entropy's label check)
    _check_labels = SoftmaxCrossEntropy._check_labels

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Any = None, *,
                 reduction: str = "mean", dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        who = "MultiMarginLoss"
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"{who}: expected p to be 1 or 2, got {p!r}")
        if p not in (1, 2):
            raise ValueError(f"{who}: expected p to be 1 or 2 (PyTorch's only ones), got {p!r}")
        self.p = int(p)
        self.margin = in_range(margin, "margin", who, -float("inf"))
        self.weight = None if weight is None else _weights(
            weight, who, "weight", (1,), "one per class (C,)")

    def _check_target(self, output, target):
        t = _as_target(self, target)
        n = output.shape[0]
        labels = "()" if output.ndim == 1 else f"({n},)"
        self._integers(t, labels)
        if output.ndim == 2 and t.shape == (n, 1):  # a column of labels, as NLLLoss takes
            t = t.reshape(n)
        if t.shape != ((n,) if output.ndim == 2 else ()) and not (
                output.ndim == 1 and t.shape == (1,)):
            raise ValueError(f"{self!r}: expected class indices of shape {labels} for "
                             f"class scores {output.shape}, got {t.shape}")
        return self._check_labels(t, output.shape[-1])

    def _forward(self, output, target):
        c = output.shape[-1]
        x, y = output.reshape(-1, c), target.reshape(-1)
        rows = np.arange(len(y))
        # float32 scores ±3e38 apart: ±inf, as PyTorch's; inf - inf: NaN (see the docstring)
        h = (self.margin - x[rows, y])[:, None] + x  # its order: exact kinks alike
        h[rows, y] = 0.0  # the label's own term is not in the sum
        np.maximum(h, 0.0, out=h)
        scale = np.full_like(x[:, 0], 1.0 / c)
        if self.weight is not None:
            scale *= self.weight.astype(x.dtype)[y]
        if self.p == 1:
            losses, grad = h.sum(axis=1), (h > 0).astype(x.dtype)
            grad *= scale[:, None]
        else:  # 2 h / C, not (2 h) / C: finite wherever the gradient is
            losses, grad = np.square(h).sum(axis=1), h * (2.0 * scale)[:, None]
        grad[rows, y] = -grad.sum(axis=1)  # its own entry is 0 until here
        return (losses * scale).reshape(target.shape), grad.reshape(output.shape)

    def _metric_rows(self, y, out):
        if y.ndim == 2:  # a column of labels
            y = y[:, 0]
        return super()._metric_rows(y, out)

    def get_config(self):
        config: dict[str, Any] = {}
        if self.p != 1:
            config["p"] = self.p
        if self.margin != 1.0:
            config["margin"] = self.margin
        if self.weight is not None:
            config["weight"] = self.weight.tolist()
        return config


class MultiLabelMarginLoss(_ScoresLoss):
    """Multi-label hinge loss: each target class's score above every other class's by 1
    (PyTorch ``MultiLabelMarginLoss``).

    ::

        Forward:   T_n = y[n, :k_n]      the indices before the first -1   y (N, C) int
                   l_n = Σ_{j in T_n} Σ_{i not in T_n} max(0, 1 - x[n, j] + x[n, i]) / C
                   L = mean_n(l_n)                                   x (N, C) scores
        Backward:  a[n, j, i] = [1 - x[n, j] + x[n, i] > 0]   (j in T_n, i not in T_n)
                   dL/dx[n, i] = Σ_j a[n, j, i] / C / N     dL/dx[n, j] = -Σ_i a[n, j, i] / C / N

    Targets are class indices padded with -1: ``[3, 0, -1, 1]`` means classes 3 and 0
    (what follows the first -1 is ignored, though it must be in ``[-1, C)``). A class
    listed twice counts twice in the sum over ``j``, as PyTorch's; a sample with no
    targets, or with every class a target, costs 0. At the kink (``1 - x_j + x_i = 0``) a
    pair passes no gradient, as PyTorch's ``z > 0`` has it. One sample ``(C,)`` takes
    targets ``(C,)``, and ``'none'`` gives its loss as a 0-d array.

    The scores rank the classes and decide no label set (there is no threshold), so
    ``fit`` and ``evaluate`` refuse the built-in metrics (``accuracy`` and the others,
    which would read the padded indices as labels or 0/1 rows) before training; a metric
    of your own gets the targets as given.

    Where PyTorch differs: targets of any integer dtype (PyTorch: int64 only); targets
    outside ``[-1, C)`` raise ValueError (PyTorch: RuntimeError); an empty batch raises
    ValueError (PyTorch's ``'mean'`` of none is undefined); a NaN score makes the loss NaN,
    so that ``fit`` sees it (PyTorch's skips the NaN terms).

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (one loss per sample;
            see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).

    Raises:
        ValueError: scores not ``(N, C)`` or ``(C,)``, targets of another shape or
            outside ``[-1, C)``.
        TypeError: targets that are not integers.
    """

    def _check_target(self, output, target):
        t = _as_target(self, target)
        self._integers(t, f"{output.shape} (padded with -1)")
        if t.shape != output.shape:
            raise ValueError(f"{self!r}: expected target class indices of the scores' shape "
                             f"{output.shape} (padded with -1), got {t.shape}")
        c = output.shape[-1]
        if t.min() < -1 or t.max() >= c:
            raise ValueError(f"{self!r}: expected target class indices in [0, {c}) or -1 "
                             f"(the end of a sample's list), got values from {t.min()} to "
                             f"{t.max()}")
        return t

    def _forward(self, output, target):
        c = output.shape[-1]
        x, t = output.reshape(-1, c), target.reshape(-1, c)
        rows = np.arange(len(x))
        ended = t < 0
        lengths = np.where(ended.any(axis=1), ended.argmax(axis=1), c)  # up to the first -1
        t = t[:, :lengths.max()]
        listed = np.arange(t.shape[1]) < lengths[:, None]
        picked = np.where(listed, t, c)  # the rest marks a spare column c, then dropped
        is_target = np.zeros_like(x, dtype=bool, shape=(len(x), c + 1))
        is_target[rows[:, None], picked] = True
        others = ~is_target[:, :c]
        losses, grad = np.zeros_like(x[:, 0]), np.zeros_like(x)
        for k in range(t.shape[1]):  # each list's k-th target j
            j = np.where(listed[:, k], picked[:, k], 0)
            # scores ±3e38 apart: ±inf, as PyTorch's
            h = (1.0 - x[rows, j])[:, None] + x  # its order: exact kinks alike
            np.maximum(h, 0.0, out=h)
            h *= others & listed[:, k:k + 1]  # NaN * 0 stays NaN: fit sees a NaN score
            losses += h.sum(axis=1)
            active = h > 0
            grad += active
            grad[rows, j] -= np.count_nonzero(active, axis=1)
        grad *= 1.0 / c
        losses *= 1.0 / c
        return losses.reshape(output.shape[:-1]), grad.reshape(output.shape)
