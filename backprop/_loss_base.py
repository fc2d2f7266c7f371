"""The Loss base class and the helpers the losses share (see :mod:`backprop.losses`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import backend
from ._validate import as_array, check_kind, float_dtype, same_layout, sample_weights
from .layers.base import Cached


class Loss(Cached):
    """Base class: a subclass writes ``_forward(output, target) -> (losses, grad)``.

    ``losses`` are the unreduced losses, PyTorch's ``reduction='none'`` output: one
    per element for an elementwise loss (the output's shape), one per sample ``(N,)``
    or per position for the cross-entropy. ``grad`` (the output's shape) is
    ``∂(Σ losses)/∂output``, not yet divided by anything. :meth:`forward` checks the
    inputs, weighs each sample's losses by ``sample_weight``, reduces them as
    ``reduction`` says and caches the matching gradient, which :meth:`backward`
    returns (the latest forward's: score another batch after the backward, or with a
    loss object of its own); subclasses do not override either. ``'mean'`` divides the
    sum by ``_divisor``: the number of losses, or, for a loss that weighs its targets (as
    PyTorch's weighted cross-entropy), their summed weights. ``grad`` must be a new
    array (it is scaled in place), never a view of ``output``, the target or the loss's
    own state. For mean squared error: ``d = output - target``, ``losses = d²``,
    ``grad = 2 d``. A loss may also return one loss per sample ``(N,)`` with the
    gradient of their sum. Check a new loss with :func:`backprop.check_gradients`.

    Args:
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``, as PyTorch's: the
            mean or the sum of the losses as a float, or the array of them (then
            :meth:`backward` takes the gradient with respect to each, and ``fit``,
            which needs one number, refuses the loss).
        dtype: When given, outputs of another dtype are rejected (TypeError);
            by default the loss follows the dtype of the output it receives.
    """

    _cache_attrs = ("_grad",)
    _needs = "a preceding forward; got none (each forward serves one backward)"
    _finite_targets = False  # True: the base target check refuses NaN and inf (the
    # regression losses; the others check their targets' range themselves)

    def __init__(self, *, reduction: str = "mean", dtype: Any = None) -> None:
        who = type(self).__name__
        if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
            keras = (" (Keras' 'sum_over_batch_size' is 'mean' here)" if isinstance(
                reduction, str) and reduction in ("sum_over_batch_size", "auto") else "")
            raise ValueError(f"{who}: expected reduction 'mean', 'sum' or 'none', got "
                             f"{reduction!r}{keras}")
        self.reduction = reduction
        self.dtype = None if dtype is None else float_dtype(dtype, who)
        self._grad: np.ndarray | None = None
        self._losses_shape: tuple[int, ...] | None = None  # the last forward's, for 'none'
        self._last_divisor: float | None = None  # set by forward; None: N (see fit)

    def forward(self, output: np.ndarray, target: Any, sample_weight: Any = None
                ) -> float | np.ndarray:
        """Return the reduced loss as a Python float (the array of losses with
        ``reduction='none'``) and cache ``∂L/∂output``.

        Args:
            output: The model's output ``(N, ...)`` (logits for the cross-entropies).
            target: What the loss compares it with (class labels, probabilities or
                values; see the loss's own docstring).
            sample_weight: Optional weights ``(N,)`` (or ``(N, 1)``), finite and >= 0:
                each sample's losses are multiplied by its weight before the
                reduction, and ``'mean'`` still divides by the number of losses (as
                Keras' ``sample_weight``; the cross-entropy's class ``weight`` instead
                divides by the summed weights, as PyTorch's). Or per step, Keras'
                temporal weights: the leading axes of the losses, ``(N, T)`` for the
                ``(N, T, F)`` outputs of an elementwise loss or a cross-entropy's
                ``(N, C, T)`` (0 at padded steps masks them out of the loss; with a
                cross-entropy's class ``weight``, whose mean divides by the class
                weights of every label counted, give padded labels ``ignore_index``).
        """
        self._check_output(output)
        if type(output) is not np.ndarray:  # np.matrix (whose * is a product), a memmap
            output = as_array(output, self, "output")
        self._targets_seen = None
        target = self._check_target(output, target)
        # inf or NaN from huge or infinite outputs (inf - inf, 0 · inf, log 0) come quietly,
        # as PyTorch's: forward runs quieted (_quiet), which keeps np.seterr(all="raise")
        losses, grad = self._forward(output, target)  # unreduced; grad of their sum
        n = output.shape[0]
        if sample_weight is not None:  # per sample (N,), or per step (N, T, ...)
            w = sample_weights(sample_weight, n, output.dtype, self,  # (repr: in errors)
                               steps=losses.shape)
            w = w.reshape(w.shape + (1,) * (losses.ndim - w.ndim))
            with np.errstate(invalid="ignore"):  # inf · 0 from an inf target: refused below
                losses = losses * w
                grad *= self._spread(np.broadcast_to(w, losses.shape), grad.ndim)
        # non-finite targets are looked for only where the loss came out non-finite
        total = None if self.reduction == "none" else _sum(losses)
        if self._targets_seen is not None and not (
                backend.all_finite(losses) if total is None else math.isfinite(total)):
            self._refuse_targets()
        self._targets_seen = None
        self._grad, self._losses_shape, self._last_divisor = grad, losses.shape, None
        if total is None:
            return losses  # backward(grad_output) applies the gradient of each
        if self.reduction == "sum":
            return float(total)
        d = self._divisor(target, losses)
        scale = 1.0 / d if d else 0.0  # d = 0: every target ignored, nothing to learn
        if math.isinf(scale):  # class weights below ~1e-308 (~1e-38 in float32)
            grad /= d
        else:
            grad *= scale
        self._last_divisor = d  # fit weighs the batch means by it: the epoch's exact mean
        return float(total / d) if d else 0.0

    def _divisor(self, target: np.ndarray, losses: np.ndarray) -> float:
        """What ``reduction='mean'`` divides the summed losses by: their number (a
        subclass that weighs its targets, as PyTorch's weighted cross-entropy, divides by
        their weights)."""
        return losses.size

    def _counted_rows(self, target: Any) -> np.ndarray | None:
        """The samples the loss counts, as a boolean mask (None: all of them); metrics in
        ``fit`` and ``evaluate`` score only those."""
        return None

    def _metric_rows(self, y: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y, out)`` for the metrics of ``fit`` and ``evaluate``: the samples the loss
        counts (see :meth:`_counted_rows`)."""
        rows = self._counted_rows(y)
        return (y, out) if rows is None else (y[rows], out[rows])

    def backward(self, grad_output: Any = None) -> np.ndarray:
        """Return ``∂L/∂output`` of the last forward (already divided as its reduction
        says).

        Args:
            grad_output: With ``reduction='none'``, required: the gradient of what you
                make of the losses with respect to each of them, in their shape
                (``np.ones_like(losses)`` for their sum), as PyTorch's
                ``losses.backward(gradient)``. With ``'mean'`` or ``'sum'``, an optional
                number that scales the gradient (default 1).
        """
        if self._grad is not None and self.reduction == "none" and grad_output is None:
            raise RuntimeError(
                f"{self!r}: backward() of unreduced losses needs grad_output, their "
                f"gradient of shape {self._losses_shape} (np.ones({self._losses_shape}) "
                "for their sum), as PyTorch needs losses.backward(gradient)")
        if grad_output is None:
            return self._pop("_grad")
        g = as_array(grad_output, self, "grad_output")  # (the repr: only in an error)
        if g.dtype.kind not in "iuf":
            raise TypeError(f"{self!r}: expected grad_output as real numbers, got dtype "
                            f"{g.dtype}")
        want = self._losses_shape if self.reduction == "none" else ()
        if self._grad is not None and g.shape != want:  # checked before the cache is taken
            what = "one per loss" if want else "a single number (the loss is one)"
            raise ValueError(f"{self!r}: expected grad_output of shape {want}, {what}, got "
                             f"{g.shape}")
        grad = self._pop("_grad")
        g = g.astype(grad.dtype, copy=False)
        grad *= self._spread(g, grad.ndim) if want else g
        return grad

    def _spread(self, g: np.ndarray, ndim: int) -> np.ndarray:
        """``grad_output`` (the losses' shape) broadcast against the output's gradient:
        a loss per sample over the sample's trailing axes."""
        return g.reshape(g.shape + (1,) * (ndim - g.ndim))

    def __call__(self, output: np.ndarray, target: Any, sample_weight: Any = None
                 ) -> float | np.ndarray:
        return self.forward(output, target, sample_weight)

    def _forward(self, output: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _check_output(self, output: Any) -> None:
        if not isinstance(getattr(output, "dtype", None), np.dtype):  # a torch tensor, say
            check_kind(output, repr(self), "output", self.dtype)  # (NumPy-typed ones convert)
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
            if same_layout(t.shape, output.shape):  # (N,) for (N, 1); not (N, F, T)
                t = t.reshape(output.shape)
            else:
                raise ValueError(
                    f"{self!r}: expected target of shape {output.shape}, got {t.shape}")
        narrower = t.dtype.kind == "f" and t.dtype.itemsize > output.dtype.itemsize
        if t.dtype == output.dtype:
            cast = t
        elif narrower:
            with np.errstate(over="ignore"):  # beyond the output's dtype: inf, refused below
                cast = t.astype(output.dtype)
        else:  # ints, bools, a wider float: nothing to overflow
            cast = t.astype(output.dtype)
        if self._finite_targets or cast is not t:
            self._targets_seen = (t, cast)  # looked at if the loss is not finite
        if narrower and not backend.all_finite(cast):  # now, before the loss's own checks
            self._refuse_targets()
        return cast

    def _refuse_targets(self) -> None:
        """A non-finite loss from targets that are NaN or infinite (the regression losses
        refuse them) or that became infinite in the cast to the output's dtype (every loss
        refuses those): a ValueError naming which; else nothing (the outputs did it)."""
        t, cast = self._targets_seen
        self._targets_seen = None
        if backend.all_finite(cast):
            return
        bad = ~np.isfinite(cast)
        beyond = bool(np.isfinite(t[bad]).all())  # finite until the cast
        if beyond or self._finite_targets:
            got = f"values beyond the {cast.dtype} range" if beyond else "NaN or infinite values"
            raise ValueError(f"{self!r}: expected finite targets, got {got} "
                             f"({np.count_nonzero(bad)} of {cast.size})")

    def get_config(self) -> dict[str, Any]:
        """The loss's own settings as plain data (those a subclass adds; ``reduction``
        and ``dtype`` are attributes), which ``repr`` shows: ``Huber(delta=2.0)``."""
        return {}

    def __repr__(self) -> str:
        config = self.get_config()
        if self.reduction != "mean":
            config = {**config, "reduction": self.reduction}
        if self.dtype is not None:
            config = {**config, "dtype": str(self.dtype)}
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


def _as_target(loss: Loss, target: Any) -> np.ndarray:
    """``target`` as an array; the loss's repr (for the error) is only built when needed."""
    if type(target) is np.ndarray:  # a subclass too is read by as_array (a mask refused)
        return target
    return as_array(target, repr(loss), "target")


def _weights(value: Any, who: str, name: str, ndims: tuple[int, ...], shape: str
             ) -> np.ndarray:
    """A loss's fixed weights (``weight``, ``pos_weight``): finite reals >= 0, float64."""
    w = as_array(value, who, name)
    if w.dtype.kind not in "iuf":  # bools too, as PyTorch (True read as 1.0 hid a slip)
        hint = " (a 0/1 mask: mask.astype(float))" if w.dtype.kind == "b" else ""
        raise TypeError(f"{who}: expected {name} as real numbers, got "
                        f"{value!r:.60} of dtype {w.dtype}{hint}")
    if w.ndim not in ndims or w.size == 0:
        raise ValueError(f"{who}: expected {name} as {shape}, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{who}: expected finite {name} >= 0, got {w.tolist()}")
    return w.astype(np.float64)


def _check_broadcast(loss: Loss, w: np.ndarray | None, output: np.ndarray,
                     name: str = "weight") -> None:
    """Refuse an output that a fixed ``weight`` does not broadcast to (or would grow)."""
    if w is not None and (w.ndim > output.ndim or any(
            a not in (1, b) for a, b in zip(w.shape[::-1], output.shape[::-1], strict=False))):
        raise ValueError(f"{loss!r}: expected outputs that {name} {w.shape} broadcasts "
                         f"to, got shape {output.shape}")


_REDUCTIONS = ("mean", "sum", "none")


def _sum(losses: np.ndarray) -> float:
    """The sum of all losses: each sample's row summed as a matrix-vector product (BLAS
    sums rows an order of magnitude faster than ``sum(axis=1)``: (8192, 100) float32,
    288 -> 28 µs), then the N row sums. Rows past 65,536 entries are summed in blocks of
    1,024 by BLAS, the block sums in float64, then rounded to the losses' dtype (so a
    float32 total past its range is inf, as PyTorch's): BLAS's float32 running sums drift
    over a long row (a (1, 10**7) MSE was 1e-3 off float64, now 4e-7), and NumPy's float64
    sum of such rows was 4x slower ((8, 150528): 0.38 ms, BLAS 0.09, blocks 0.07)."""
    with np.errstate(over="ignore", invalid="ignore"):  # past the range: inf, as PyTorch
        if losses.ndim < 2:  # one loss per sample
            return float(losses.sum())
        flat = losses.reshape(losses.shape[0], -1)
        m = flat.shape[1]
        if m > 1 << 16:
            v = flat.reshape(-1)
            k = v.size >> 10
            parts = v[:k << 10].reshape(k, 1 << 10) @ np.ones(1 << 10, dtype=v.dtype)
            total = parts.sum(dtype=np.float64) + v[k << 10:].sum(dtype=np.float64)
            return float(v.dtype.type(total))
        rows = flat @ np.ones(m, dtype=flat.dtype) if m != 1 else flat[:, 0]  # m = 0: zeros
        return float(rows.sum())
