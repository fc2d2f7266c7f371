"""BCELoss, SmoothL1Loss and PoissonNLLLoss: PyTorch's losses on probabilities, on
residuals with a smooth kink and on Poisson counts (see :mod:`backprop.losses`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._loss_base import Loss, _check_broadcast, _weights
from ._validate import boolean, in_range

_LOG_FLOOR = -100.0  # PyTorch's clamp of log(p) and log(1 - p): p = 0 costs 100, not inf
_EPSILON = float(np.float32(1e-12))  # PyTorch's floor of p (1 - p) in the gradient's
# denominator: its EPSILON, a float constant (9.99999996e-13)


def _check_range(loss: Loss, t: np.ndarray, what: str, low: float, high: float) -> None:
    """Finite values in [low, high], or the loss's ValueError naming their range."""
    if t.size and not (np.all(np.isfinite(t)) and t.min() >= low and t.max() <= high):
        raise ValueError(f"{loss!r}: expected {what} in [{low:g}, {high:g}], got values from "
                         f"{t.min()} to {t.max()}")


class BCELoss(Loss):
    """Binary cross-entropy of probabilities (PyTorch ``BCELoss``), for a model that
    ends in :class:`~backprop.Sigmoid`.

    ::

        Forward:   l = -w (t max(log p, -100) + (1 - t) max(log(1 - p), -100))
                   L = mean(l)                     p, t (N, ...) in [0, 1]; w broadcast
        Backward:  dL/dp = w (p - t) / max(p (1 - p), 1e-12) / p.size

    The clamps are PyTorch's: a probability of exactly 0 or 1 costs at most 100 and its
    gradient is finite (up to 1e12). :class:`BinaryCrossEntropyWithLogits` on the logits
    is the same loss without the clamps, stable for any logit: prefer it for training.

    Where PyTorch differs: outputs or targets outside [0, 1] or not finite raise
    ValueError (PyTorch: RuntimeError); ``weight`` must broadcast to the output without
    changing its shape.

    Args:
        weight: Weights of each element's loss, a number or an array broadcast against
            the output (PyTorch's ``weight``), finite and >= 0; the mean still divides
            by the number of elements. Default None: 1.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, weight: Any = None, *, reduction: str = "mean",
                 dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        self.weight = None if weight is None else _weights(
            weight, "BCELoss", "weight", tuple(range(8)), "an array broadcast to the output")

    def _check_output(self, output):
        super()._check_output(output)
        _check_broadcast(self, self.weight, output)
        _check_range(self, output, "probabilities (outputs; logits take "
                     "BinaryCrossEntropyWithLogits)", 0.0, 1.0)

    def _check_target(self, output, target):
        t = super()._check_target(output, target)
        _check_range(self, t, "targets", 0.0, 1.0)
        return t

    def _forward(self, output, target):
        p, t = output, target
        # log 0 = -inf, then clamped as PyTorch's (so not an error under np.seterr "raise")
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), _LOG_FLOOR)
            log_q = np.maximum(np.log1p(-p), _LOG_FLOOR)
        losses = (t - 1.0) * log_q - t * log_p
        grad = (p - t) / np.maximum((1.0 - p) * p, _EPSILON)
        if self.weight is not None:
            w = self.weight.astype(p.dtype)
            losses, grad = losses * w, grad * w
        return losses, grad

    def get_config(self):
        return {} if self.weight is None else {"weight": self.weight.tolist()}


class SmoothL1Loss(Loss):
    """Smooth L1 loss with threshold ``beta`` (PyTorch ``SmoothL1Loss``), mean over elements.

    ::

        Forward:   l = where(|d| < beta, d² / (2 beta), |d| - beta / 2),  d = o - t  (N, ...)
        Backward:  dL/do = clip(d / beta, -1, 1) / o.size
        beta = 0:  l = |d|,  dL/do = sign(d) / o.size     (L1, as PyTorch; sign(0) = 0)

    It is :class:`Huber` divided by beta: ``Huber(delta=beta) / beta``. Near 0 its
    gradient fades linearly (unlike L1's); far away it is L1's.

    Args:
        beta: Where the quadratic part turns linear (>= 0; PyTorch's default 1.0).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    _finite_targets = True  # NaN or inf targets refused (see Loss)

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0,
                 dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        self.beta = in_range(beta, "beta", "SmoothL1Loss", 0.0)

    def _forward(self, output, target):
        d = output - target
        a = np.abs(d)
        if output.dtype.type(self.beta) == 0:  # 0, or below float32's range: L1, as PyTorch
            return a, np.sign(d)  # (not in place: that is ~10x slower)
        # q = min(|d|, beta): l = (|d| - q/2)·(q/beta), d²/(2 beta) below beta and exactly
        # |d| - beta/2 above (q/beta = 1); passes, not np.where (64x1000: 0.30 -> 0.06 ms)
        q = np.clip(a, 0.0, self.beta)  # both bounds: NumPy's fast clip loop
        a -= np.multiply(q, 0.5)
        q /= self.beta
        a *= q  # never above the loss: no overflow it has not
        np.clip(d, -self.beta, self.beta, out=d)  # then / beta: ±1 exactly, and a huge d
        d /= self.beta  # no longer overflows on the way (3e38 / 0.5 warned)
        return a, d

    def get_config(self):
        return {"beta": self.beta}


class PoissonNLLLoss(Loss):
    """Negative log-likelihood of counts under a Poisson rate (PyTorch ``PoissonNLLLoss``).

    ::

        Forward:   l = exp(x) - t x                 log_input=True: x the log-rate (N, ...)
                   l = x - t log(x + eps)           log_input=False: x the rate, >= 0
                   full=True: l += t log t - t + log(2 pi t) / 2  where t > 1 (Stirling)
                   L = mean(l)                      t (N, ...) counts, >= 0
        Backward:  dL/dx = (exp(x) - t) / x.size    (log_input=False: 1 - t / (x + eps))

    The Stirling term (the log of t! beyond the constant) does not depend on x: it changes
    the value, not the gradient. PyTorch adds it only for targets > 1, as here.

    Where PyTorch differs: negative or non-finite targets, and with ``log_input=False``
    negative rates, raise ValueError (PyTorch: nan or a meaningless loss).

    Args:
        log_input: Whether the output is the log of the rate (PyTorch's default True,
            stable for any real) or the rate itself.
        full: Whether to add the Stirling term, making the loss the full negative
            log-likelihood (PyTorch's ``full``, default False).
        eps: Added to the rate inside the log when ``log_input=False`` (> 0; 1e-8).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'`` (see :class:`Loss`).
        dtype: When given, outputs of another dtype are rejected (see :class:`Loss`).
    """

    def __init__(self, log_input: bool = True, full: bool = False, eps: float = 1e-8, *,
                 reduction: str = "mean", dtype: Any = None) -> None:
        super().__init__(reduction=reduction, dtype=dtype)
        who = "PoissonNLLLoss"
        self.log_input = boolean(log_input, "log_input", who)
        self.full = boolean(full, "full", who)
        self.eps = in_range(eps, "eps", who, 0.0, low_open=True)

    def _check_output(self, output):
        super()._check_output(output)
        if not self.log_input:
            _check_range(self, output, "rates (outputs; log-rates take log_input=True)",
                         0.0, math.inf)

    def _check_target(self, output, target):
        t = super()._check_target(output, target)
        if not (np.all(np.isfinite(t)) and t.min() >= 0):
            raise ValueError(f"{self!r}: expected finite counts >= 0 as targets, got values "
                             f"from {t.min()} to {t.max()}")
        return t

    def _forward(self, output, target):
        x, t = output, target
        if self.log_input:
            # a log-rate past ~88 (float32): inf, as torch's; at +inf, inf - inf: NaN, as torch's
            rate = np.exp(x)
            losses, grad = rate - t * x, rate - t
        else:
            shifted = x + self.eps
            losses, grad = x - t * np.log(shifted), 1.0 - t / shifted
        if self.full:
            big = np.where(t > 1, t, 1.0).astype(t.dtype, copy=False)  # log 1 = 0 elsewhere
            stirling = big * np.log(big) - big + 0.5 * np.log(2 * math.pi * big)
            losses = losses + np.where(t > 1, stirling, 0.0).astype(t.dtype, copy=False)
        return losses, grad

    def get_config(self):
        config: dict[str, Any] = {}
        if not self.log_input:
            config["log_input"] = False
        if self.full:
            config["full"] = True
        if self.eps != 1e-8:
            config["eps"] = self.eps
        return config
