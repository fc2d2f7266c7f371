"""NLLLoss and KLDivLoss: losses on log-probabilities (see :mod:`backprop.losses`)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from ._cross_entropy import SoftmaxCrossEntropy, _class_last, _shape, class_options
from ._loss_base import Loss, _as_target
from ._validate import boolean


class NLLLoss(Loss):
    """Negative log-likelihood of integer labels under log-probabilities (PyTorch ``NLLLoss``).

    ::

        Forward:   l_n = -w_(y_n) v_n x[n, y_n]       x (N, C) log-probabilities, y (N,) int
                   L = Σ_n l_n / Σ_n w_(y_n) v_n      (w = weight, 1 by default;
                                                       v_n = 0 where y_n == ignore_index, else 1)
        Backward:  dL/dx[n, c] = -w_(y_n) v_n [c = y_n] / Σ_n w_(y_n) v_n
        Samples:   sample_weight s_n multiplies l_n and its gradient; the divisor stays
        Reduced:   reduction='sum': L = Σ_n l_n;  'none': the l_n, unreduced

    After :class:`~backprop.LogSoftmax` it is :class:`SoftmaxCrossEntropy` (which fuses
    the two into one stable step). Outputs ``(N, C, d1, ...)`` take labels ``(N, d1, ...)``:
    each position is one more row of the formulas (and one sample for the metrics of
    ``fit``); a column of labels ``(N, 1)`` is taken as ``(N,)``. The input is used as
    given: nothing checks that it is normalized (PyTorch does not either).

    Where PyTorch differs: a ``'mean'`` over a batch whose counted labels all weigh 0
    (every label ignored, or only classes of weight 0) is 0 with a zero gradient here, as
    for :class:`SoftmaxCrossEntropy` (PyTorch: nan, which would stop ``fit``); a loss of
    weight 0 is 0 even where its log-probability is ``-inf`` (PyTorch: nan); labels
    outside ``[0, C)`` raise ValueError (PyTorch: IndexError); inputs need a batch axis.

    Args:
        weight: Per-class weights ``(C,)``, finite and >= 0 (PyTorch's ``weight``): the
            mean then divides by the counted labels' summed weights, not by their number.
        ignore_index: A label whose samples (or positions) add nothing to the loss, its
            gradient or the mean's divisor; PyTorch's default -100. None: every label
            must be a class.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (each sample's or
            position's weighted loss, 0 where ignored), as PyTorch's (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, weight: Any = None, *, ignore_index: int | None = -100,
                 reduction: str = "mean", dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        self.weight, self.ignore_index = class_options(weight, ignore_index, "NLLLoss")

    # the cross-entropy's label handling, whose checks and messages these share
    _check_labels = SoftmaxCrossEntropy._check_labels
    _labels = SoftmaxCrossEntropy._labels
    _weigh = SoftmaxCrossEntropy._weigh
    _counted_rows = SoftmaxCrossEntropy._counted_rows
    _rows = SoftmaxCrossEntropy._rows
    _spread = SoftmaxCrossEntropy._spread

    def _check_output(self, output):
        super()._check_output(output)
        if output.ndim < 2:
            raise ValueError(f"{self!r}: expected log-probabilities of shape (N, C) (or (N, C, "
                             f"d1, ...), a class axis 1), got {output.shape}")
        if output.shape[1] == 0:  # no class to pick (every label ignored)
            raise ValueError(f"{self!r}: expected log-probabilities of at least one class "
                             f"(C >= 1 on axis 1), got shape {output.shape}")
        if self.weight is not None and self.weight.size != output.shape[1]:
            raise ValueError(f"{self!r}: expected log-probabilities of {self.weight.size} "
                             f"classes (one per weight, on axis 1), got shape {output.shape}")

    def _check_target(self, output, target):
        t = _as_target(self, target)
        n, rest = output.shape[0], output.shape[2:]
        labels = (n, *rest)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{self!r}: expected integer class indices {_shape(labels)}, got "
                            f"dtype {t.dtype} (convert with y.astype(int); class "
                            f"probabilities take KLDivLoss)")
        if t.shape == (n, 1) and not rest:  # a column of labels, as the cross-entropy takes
            t = t.reshape(n)
        if t.shape != labels:
            raise ValueError(f"{self!r}: expected {prod(labels)} class indices of shape "
                             f"{_shape(labels)} for log-probabilities {output.shape}, got "
                             f"{t.shape}")
        return self._check_labels(t, output.shape[1])

    def _forward(self, output, target):
        n, c = output.shape[:2]
        s = prod(output.shape[2:])  # 1 for (N, C); not -1: an empty map must reshape too
        x = output.reshape(n, c, s)
        y, counted = self._labels(target.reshape(n, s))
        picked = y[:, None]  # (N, 1, S): the label's log-probability, per position
        losses = -np.take_along_axis(x, picked, axis=1)[:, 0]
        grad = np.zeros_like(x)
        np.put_along_axis(grad, picked, -1.0, axis=1)
        losses, grad = self._weigh(losses, grad, y, counted)
        return losses.reshape(target.shape), grad.reshape(output.shape)

    def _divisor(self, target, losses):
        labels = target.reshape(-1)
        rows = self._rows(labels)
        if self.weight is None:
            return float(rows.size)
        return float(self.weight[labels[rows]].sum())

    def _metric_rows(self, y, out):
        if out.ndim > 2:  # positions as samples: (N·prod(*), C) and their labels
            y, out = y.reshape(-1), _class_last(out)
        elif y.ndim == 2:  # a column of labels
            y = y[:, 0]
        return super()._metric_rows(y, out)

    def get_config(self):
        config: dict[str, Any] = {}
        if self.weight is not None:
            config["weight"] = self.weight.tolist()
        if self.ignore_index != -100:
            config["ignore_index"] = self.ignore_index
        return config


_KL_REDUCTIONS = ("mean", "batchmean", "sum", "none")


class KLDivLoss(Loss):
    """Kullback-Leibler divergence of a target distribution from log-probabilities
    (PyTorch ``KLDivLoss``).

    ::

        Forward:   l = t (log t - x)        x, t (N, ...): x log-probabilities, t probabilities
                                            (0 where t = 0: 0 · log 0 = 0, PyTorch's xlogy)
                   log_target=True:  l = exp(t) (t - x),  t log-probabilities
                   L = mean(l) ('mean'),  Σ l / N ('batchmean'),  Σ l ('sum'),  l ('none')
        Backward:  dL/dx = -t / x.size      (log_target: -exp(t) / x.size; 'batchmean': / N)

    ``KL(t || exp(x)) = Σ_c t_c (log t_c - x_c)`` per sample is ``'batchmean'``: the
    default ``'mean'`` (PyTorch's) also divides by the number of classes, which PyTorch
    warns about and backprop only says here. Targets need not sum to 1; the input is used
    as given (PyTorch checks neither).

    Where PyTorch differs: a target of 0 (or ``-inf`` with ``log_target``) gives 0 for
    any input, ``-inf`` included (PyTorch: nan for an input of ``-inf``, and for a target
    of ``-inf`` with ``log_target``); targets must have the output's shape ((N,) for
    (N, 1) is taken), with no broadcasting; negative or non-finite probabilities (NaN or
    ``+inf`` log-probabilities) raise ValueError (PyTorch: nan).

    Args:
        reduction: ``'mean'`` (default: over all elements), ``'batchmean'`` (the sum over
            the batch size N), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        log_target: Whether the target holds log-probabilities (PyTorch's
            ``log_target``), which keeps tiny probabilities exact.
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, *, reduction: str = "mean", log_target: bool = False,
                 dtype: Any = None) -> None:
        if not isinstance(reduction, str) or reduction not in _KL_REDUCTIONS:
            raise ValueError(f"KLDivLoss: expected reduction 'mean', 'batchmean', 'sum' or "
                             f"'none', got {reduction!r}")
        super().__init__(reduction="mean" if reduction == "batchmean" else reduction,
                         dtype=dtype)
        self.reduction = reduction  # 'batchmean' reduces as 'mean', by its own _divisor
        self.log_target = boolean(log_target, "log_target", "KLDivLoss")

    def _check_target(self, output, target):
        t = super()._check_target(output, target)
        if self.log_target:
            if np.isnan(t).any() or (t == np.inf).any():
                raise ValueError(f"{self!r}: expected target log-probabilities without NaN "
                                 f"or +inf, got values from {t.min()} to {t.max()}")
        elif not (np.isfinite(t).all() and t.min() >= 0):
            raise ValueError(f"{self!r}: expected finite target probabilities >= 0 "
                             f"(log-probabilities take log_target=True), got values from "
                             f"{t.min()} to {t.max()}")
        return t

    def _forward(self, output, target):
        x, t = output, target
        # log 0 = -inf, 0 · -inf = nan: masked below, so not an error under np.seterr "raise"
        p = np.exp(t) if self.log_target else t  # the target probabilities
        with np.errstate(divide="ignore", invalid="ignore"):
            losses = p * (t - x) if self.log_target else t * (np.log(t) - x)
        if not np.isfinite(losses).all():
            losses[p == 0] = 0.0  # a target of probability 0 adds nothing, whatever x is
        return losses, -p

    def _divisor(self, target, losses):
        return losses.shape[0] if self.reduction == "batchmean" else losses.size

    def get_config(self):
        return {"log_target": True} if self.log_target else {}
