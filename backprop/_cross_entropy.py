"""SoftmaxCrossEntropy: softmax and cross-entropy fused (see :mod:`backprop.losses`)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from ._loss_base import Loss, _as_target, _weights
from ._validate import check_array, in_range


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
        Samples:   sample_weight s_n multiplies l_n and its gradient; the divisor stays
        Reduced:   reduction='sum': L = Σ_n l_n;  'none': the l_n, unreduced

    Fusing the two makes the gradient the simple ``p - q`` and stays exact for any
    logits (the max-subtraction keeps ``exp`` in range). Targets may also be class
    probabilities ``(N, C)``, as in PyTorch; rows that do not sum to 1 are taken as
    given (PyTorch does the same), hence the ``Σ_c q`` in the gradient. With ``weight``
    such targets weigh ``a_nc = w_c q_nc`` and the mean divides by N, as in PyTorch.
    Integer or boolean one-hot rows ``(N, C)`` are taken as such probabilities, and a
    column of labels ``(N, 1)`` as ``(N,)`` (both as Keras takes them).

    Logits with more axes, ``(N, C, d1, ...)`` (a class score per pixel or per time
    step), take labels ``(N, d1, ...)`` or probabilities ``(N, C, d1, ...)``, as in
    PyTorch: each position is one more row of the formulas above, and the mean runs
    over all ``N·d1·...`` of them (or divides by their summed weights). A sample's
    ``sample_weight`` weighs all of its positions; metrics in ``fit`` and ``evaluate``
    score each position (the ones the loss counts) as one sample.

    Args:
        label_smoothing: ε in [0, 1] (1: the uniform target, as PyTorch allows).
        weight: Per-class weights ``(C,)``, finite and >= 0 (PyTorch's ``weight``): the
            mean over labels then divides by the targets' summed weights, not by N. A
            batch whose counted labels all weigh 0 gives a loss of 0 and a zero gradient
            (PyTorch: nan), as a batch of only ignored labels does.
        ignore_index: A label whose samples add nothing to the loss, its gradient or
            the mean's divisor (PyTorch's ``ignore_index``; PyTorch's default -100 is
            ``ignore_index=-100`` here, where by default every label must be a class;
            with probability targets it must be negative, which ignores nothing, as in
            PyTorch).
            A batch of only ignored labels gives a loss of 0 and a zero gradient, as
            Keras' ``ignore_class`` does (PyTorch gives nan, which would stop ``fit``).
        reduction: ``'mean'`` (default), ``'sum'`` (of the weighted losses) or ``'none'``
            (each sample's or position's weighted loss, 0 where ignored), as PyTorch's
            (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, label_smoothing: float = 0.0, *, weight: Any = None,
                 ignore_index: int | None = None, reduction: str = "mean",
                 dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        who = "SoftmaxCrossEntropy"
        self.label_smoothing = in_range(label_smoothing, "label_smoothing", who, 0.0, 1.0)
        self.weight, self.ignore_index = class_options(weight, ignore_index, who)

    def _check_output(self, output):
        super()._check_output(output)
        if output.ndim < 2:
            raise ValueError(f"{self!r}: expected logits of shape (N, C) (or (N, C, d1, ...), "
                             f"a class axis 1), got {output.shape}")
        if output.shape[1] == 0:  # nothing to take a softmax over (every label ignored)
            raise ValueError(f"{self!r}: expected logits of at least one class (C >= 1 on "
                             f"axis 1), got shape {output.shape}")
        if self.weight is not None and self.weight.size != output.shape[1]:
            axis = " (the classes are axis 1)" if output.ndim > 2 else ""
            raise ValueError(f"{self!r}: expected logits of {self.weight.size} classes (one "
                             f"per weight), got shape {output.shape}{axis}")

    def _check_target(self, output, target):
        t = _as_target(self, target)
        if output.ndim == 2 and t.ndim == 1 and t.dtype.kind in "iu" and len(t) == len(output):
            return self._check_labels(t, output.shape[1])  # the usual case, checked first
        n, c, rest = *output.shape[:2], output.shape[2:]
        one_hot = t.shape == output.shape and t.dtype.kind in "biu"  # as Keras takes them
        if t.ndim == output.ndim and t.dtype.kind == "f" or one_hot:  # class probabilities
            if self.ignore_index is not None and self.ignore_index >= 0:  # as PyTorch
                raise ValueError(f"{self!r}: expected class indices with an ignore_index "
                                 f">= 0 (it selects a class; PyTorch refuses it with "
                                 f"probabilities too), got target probabilities {t.shape}")
            if c == 1:  # a softmax over one class is 1: the loss is 0 whatever the model does
                raise ValueError(f"{self!r}: expected logits of at least two classes for "
                                 f"target probabilities (one output column makes the loss "
                                 f"0), got logits {output.shape}: two classes need two "
                                 f"outputs, Dense(..., 2), or one logit takes "
                                 f"BinaryCrossEntropyWithLogits")
            if t.shape == (n, 1) and not rest and t.dtype.kind == "f":  # labels as floats
                raise ValueError(f"{self!r}: expected integer class indices ({n},) or target "
                                 f"probabilities {output.shape}, got float targets {t.shape} "
                                 f"(class labels? convert with y.astype(int).ravel())")
            check_array(t, self, output.shape, what="target probabilities")
            if t.size and not (t.min() >= 0 and t.max() <= 1):  # NaN fails both
                raise ValueError(f"{self!r}: expected target probabilities in [0, 1], "
                                 f"got values from {t.min()} to {t.max()}")
            return t.astype(output.dtype, copy=False)
        labels = (n, *rest)
        if t.shape == (n, 1) and not rest and t.dtype.kind in "iu":  # a column: Keras' too
            t = t.reshape(n)
        if t.dtype.kind not in "iu":
            axes = "".join(f", {r}" for r in rest)
            whole = t.dtype.kind in "bf" and bool(np.all(np.mod(t, 1) == 0))  # NaN: False
            hint = ("convert with y.astype(int)" if whole else "its values are not whole "
                    "numbers: regression targets take MeanSquaredError, class "
                    f"probabilities go as {_shape(output.shape)}" if t.dtype.kind == "f"
                    else "names of classes? number them: np.unique(y, return_inverse=True)[1]")
            raise TypeError(f"{self!r}: expected integer class indices (N{axes or ','}), "
                            f"got dtype {t.dtype} ({hint})")
        if t.shape != labels:
            also = ""
            if rest and t.shape == output.shape[:-1]:  # the classes last, as Dense gives them
                d = output.ndim - 1
                also = (f" (the classes go on axis 1, as in PyTorch: logits (N, ..., C) "
                        f"need np.moveaxis(logits, -1, 1), or in a model a last layer "
                        f"bp.Permute({(d, *range(1, d))}))")
            elif rest and t.shape == (n,) and output.ndim == 3:  # Keras' Embedding -> GRU
                also = (" (logits (N, T, C) for one label per sequence? a recurrent layer "
                        "with return_sequences=True, the default as in PyTorch, outputs "
                        "every step: return_sequences=False, Keras' default, gives the "
                        "last one)")
            raise ValueError(f"{self!r}: expected {prod(labels)} class indices of shape "
                             f"{_shape(labels)} "
                             f"for logits {output.shape}, got {t.shape}{also}")
        return self._check_labels(t, c)

    def _check_labels(self, t: np.ndarray, c: int) -> np.ndarray:
        kept = t if self.ignore_index is None else t[t != self.ignore_index]
        if kept.size and (kept.min() < 0 or kept.max() >= c):
            also = "" if self.ignore_index is None else f" or {self.ignore_index} (ignored)"
            hint = (" (one output column: two classes need two outputs, Dense(..., 2), or "
                    "one logit takes BinaryCrossEntropyWithLogits)" if c == 1
                    else " (labels counted from 1? number them from 0)"
                    if kept.min() >= 1 and kept.max() == c
                    else " (PyTorch's padding label? pass ignore_index=-100: backprop "
                    "ignores none by default)" if kept.min() == -100
                    and self.ignore_index is None else "")
            raise ValueError(f"{self!r}: expected class indices in [0, {c}){also}, "
                             f"got values from {kept.min()} to {kept.max()}{hint}")
        return t

    def _weighed(self) -> bool:
        return self.weight is not None or self.ignore_index is not None

    def _forward(self, output, target):
        if output.ndim == 2:
            return self._rows_forward(output, target)
        n, c, rest = *output.shape[:2], output.shape[2:]
        if target.ndim == output.ndim - 1 and not (self.label_smoothing and
                                                   self.weight is not None):
            s = prod(rest)  # not -1: an empty batch or map must reshape too
            losses, grad = self._planes_forward(output.reshape(n, c, s), target.reshape(n, s))
            return losses.reshape(n, *rest), grad.reshape(output.shape)
        # (N, C, *): every position a row of (N·prod(*), C), class axis last
        losses, grad = self._rows_forward(_class_last(output), _flat(target))
        dz = np.empty_like(output, order="C")
        np.copyto(dz, np.moveaxis(grad.reshape(n, *rest, c), -1, 1))
        return losses.reshape(n, *rest), dz  # a loss per position

    def _rows_forward(self, output, target):
        """``_forward`` on logits ``(N, C)`` and targets ``(N,)`` or ``(N, C)``."""
        n, c = output.shape
        # logits ±3e38 apart: -inf, whose exp is 0; a row of -inf or with +inf: NaN, as PyTorch
        z = output - output.max(axis=1, keepdims=True)
        eps = self.label_smoothing
        if target.ndim == 2 or (eps and self.weight is not None):  # the general form
            logp = z
            logp -= np.log(np.exp(z).sum(axis=1, keepdims=True))
            return self._weighted(logp, self._class_weights(target, output.dtype, c))
        # integer labels: one exp pass; the weights are one number per row
        e = np.exp(z)
        total = e.sum(axis=1)
        lse = np.log(total)
        y, counted = self._labels(target)
        picks = np.arange(0, n * c, c)  # each row's label as a flat index: one gather and
        np.add(picks, y, out=picks, casting="unsafe")  # one scatter (2-D indices: ~2x the
        # time at (32, 10)); the labels are checked in [0, C) (ignored ones made 0)
        losses = lse - z.reshape(-1).take(picks)  # -log p_y
        if eps:  # (1 - ε)(-log p_y) + ε · mean_c(-log p_c), mean_c(-log p_c) = lse - mean z
            losses *= 1.0 - eps
            losses += eps * (lse - z @ np.full(c, 1.0 / c, dtype=z.dtype))
        grad = e
        grad /= total[:, None]  # softmax
        if grad.flags.c_contiguous:  # (as it is unless the logits came F-ordered)
            grad.reshape(-1)[picks] -= 1.0 - eps
        else:
            grad[np.arange(n), y] -= 1.0 - eps
        if eps:
            grad -= eps / c
        return self._weigh(losses, grad, y, counted)

    def _planes_forward(self, output, target):
        """:meth:`_rows_forward`'s integer-label case on ``(N, C, S)`` logits and ``(N, S)``
        labels as they lie: the reductions over the classes run across C contiguous
        planes, where rows of C values (the class axis moved last) reduced a few values
        at a time, ~10x slower (16x2x256x256: 106 ms against PyTorch's 10)."""
        n, c, _ = output.shape
        # logits ±3e38 apart: -inf, whose exp is 0; a row of -inf or with +inf: NaN, as PyTorch
        z = output - output.max(axis=1, keepdims=True)
        eps = self.label_smoothing
        e = np.exp(z)
        total = e.sum(axis=1)
        lse = np.log(total)
        labels, counted = self._labels(target)
        y = labels[:, None, :]
        losses = lse - np.take_along_axis(z, y, axis=1)[:, 0]  # -log p_y
        if eps:  # (1 - ε)(-log p_y) + ε · mean_c(-log p_c)
            losses *= 1.0 - eps
            losses += eps * (lse - z.sum(axis=1) * (1.0 / c))
        grad = e
        grad /= total[:, None]  # softmax
        picked = np.take_along_axis(grad, y, axis=1)
        picked -= 1.0 - eps
        np.put_along_axis(grad, y, picked, axis=1)
        if eps:
            grad -= eps / c
        return self._weigh(losses, grad, labels, counted)

    def _labels(self, target):
        """``(y, counted)`` for integer labels of any shape: ``counted`` marks the labels
        that count (None when all do, or without ``ignore_index``); ``y`` has class 0 (any
        valid class) where one is ignored."""
        counted = None if self.ignore_index is None else target != self.ignore_index
        if counted is not None and counted.all():  # a batch without ignored labels
            counted = None
        return (target if counted is None else np.where(counted, target, 0)), counted

    def _weigh(self, losses, grad, y, counted):
        """Scale each loss (a row's or a position's) and its gradient over the classes
        (axis 1 of ``grad``) by the weight ``w_y`` of its label, 0 where it is ignored."""
        r = None if self.weight is None else self.weight.astype(losses.dtype)[y]
        if counted is not None:
            r = counted.astype(losses.dtype) if r is None else r * counted
        if r is not None:
            # an ignored label's inf · 0: set to 0 below
            losses *= r
            if counted is not None or not np.isfinite(losses).all():
                losses[r == 0] = 0.0
            grad *= r[:, None]
        return losses, grad

    def _class_weights(self, target: np.ndarray, dtype: np.dtype, c: int) -> np.ndarray:
        """``a (N, C)``: how much each ``-logp`` counts (see the Weighted lines)."""
        eps, w = self.label_smoothing, self.weight
        if target.ndim == 2:  # probabilities: the q of the formulas, times w
            a = target * (1.0 - eps) + eps / c if eps else target
            return a if w is None else a * w.astype(dtype)
        rows = self._rows(target)
        a = np.zeros((target.shape[0], c), dtype)
        a[rows, target[rows]] = 1.0 - eps
        if eps:
            a[rows] += eps / c
        return a if w is None else a * w.astype(dtype)

    def _counted_rows(self, target):
        if self.ignore_index is None or getattr(target, "ndim", 0) != 1:
            return None
        return np.asarray(target) != self.ignore_index

    def _rows(self, target: np.ndarray) -> np.ndarray:
        """The indices of the labels that count (all of them without ignore_index)."""
        counted = self._counted_rows(target)
        return np.arange(target.shape[0]) if counted is None else np.flatnonzero(counted)

    @staticmethod
    def _weighted(logp: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms = a * logp  # a -inf logit the target gives no weight: 0 · -inf = nan, set to 0 below
        if not np.isfinite(terms).all():
            terms[a == 0] = 0.0
        losses = -terms.sum(axis=1)
        grad = np.exp(logp, out=logp)  # losses are taken: reuse the buffer
        grad *= a.sum(axis=1, keepdims=True)  # Σa: targets need not sum to 1 (as torch)
        grad -= a
        return losses, grad

    def _divisor(self, target, losses):
        if target.dtype.kind == "f" or not self._weighed():  # probabilities, as torch, or
            return super()._divisor(target, losses)  # no weights: one per sample or position
        labels = target.reshape(-1)
        rows = self._rows(labels)
        if self.weight is None:
            return float(rows.size)
        return float(self.weight[labels[rows]].sum())

    def _spread(self, g, ndim):
        return np.expand_dims(g, 1) if g.ndim < ndim else g  # over the class axis 1

    def _metric_rows(self, y, out):
        if out.ndim > 2 and y.ndim >= 2:  # positions as samples: (N·prod(*), C) and labels
            y = _class_last(y) if y.shape == out.shape else y.reshape(-1)  # rows or labels
            out = _class_last(out)
        elif y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind in "iu":  # a column of labels
            y = y[:, 0]
        return super()._metric_rows(y, out)

    def get_config(self):
        config: dict[str, Any] = {}
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        if self.weight is not None:
            config["weight"] = self.weight.tolist()
        if self.ignore_index is not None:
            config["ignore_index"] = self.ignore_index
        return config


def _class_last(a: np.ndarray) -> np.ndarray:
    """``(N, C, *)`` as ``(N·prod(*), C)``, the class axis last (a copy)."""
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _flat(target: np.ndarray) -> np.ndarray:
    """Labels ``(N, *)`` as ``(N·prod(*),)``; probabilities ``(N, C, *)`` as
    :func:`_class_last`."""
    return _class_last(target) if target.dtype.kind == "f" else target.reshape(-1)


def class_options(weight: Any, ignore_index: Any, who: str) -> tuple[np.ndarray | None,
                                                                     int | None]:
    """A label loss's checked ``(weight, ignore_index)``: per-class weights ``(C,)`` (or
    None) and an int label to ignore (or None)."""
    checked = None if weight is None else _weights(weight, who, "weight", (1,),
                                                   "one per class (C,)")
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, (int, np.integer))):
        raise TypeError(f"{who}: expected ignore_index as an int or None, got "
                        f"{ignore_index!r}")
    return checked, None if ignore_index is None else int(ignore_index)


def _shape(shape: tuple[int, ...]) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else str(shape)
