"""RAdam (the Adam family's rectified member) and Adadelta (RMSProp's unit-correcting
relative), with ``torch.optim`` semantics.

Each writes :meth:`~.base.Optimizer.init_state` and :meth:`~.base.Optimizer.update`
with its math in the docstring; the base class does the rest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import boolean, in_range
from ..backend import axpby, square_into
from .adam import _CHECKS, _UNSET, _betas, _moments, _Unset
from .base import Optimizer
from .clip import _check_values, _decayed, _finite


class RAdam(Optimizer):
    """Rectified Adam (``torch.optim.RAdam``, Liu et al. 2019).

    Adam's adaptive step has a large variance while ``v`` averages few gradients; RAdam
    takes plain momentum steps until the approximated length of the average, ``rho_t``,
    exceeds 5, then Adam's step scaled by the rectification ``r_t``::

        g = grad + weight_decay * p   (or p = p * (1 - lr * weight_decay), decoupled)
        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g²
        rho_inf = 2 / (1 - beta2) - 1;   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        r_t = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
        p = p - lr / (1 - beta1^t) * m * r_t sqrt(1 - beta2^t) / (sqrt(v) + eps)  (rho_t > 5)
        p = p - lr / (1 - beta1^t) * m                                              (else)

    ``eps`` is added to ``sqrt(v)`` before the bias correction, as in torch (Adam adds
    it after). With the default ``beta2 = 0.999`` the first 5 steps are unrectified.

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Learning rate, > 0 (default 1e-3, torch's).
        beta1, beta2: Decay rates of the first and second moment averages, in [0, 1).
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient (or decoupled, below).
        decoupled_weight_decay: Decay the weights as AdamW does (RAdamW).
        betas: ``(beta1, beta2)`` in one tuple, as PyTorch takes them.
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay", "decoupled_weight_decay")
    _state_keys = ("exp_avg", "exp_avg_sq")
    _checks = {**_CHECKS, "decoupled_weight_decay": boolean}

    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False, *,
                 betas: tuple[float, float] | _Unset = _UNSET,
                 clip_norm: float | None = None) -> None:
        self.beta1, self.beta2 = _betas(betas, beta1, beta2, "RAdam")
        self.eps, self.weight_decay = eps, weight_decay  # each checked by _checks
        self.decoupled_weight_decay = decoupled_weight_decay
        super().__init__(params, lr, clip_norm=clip_norm)

    def _rectification(self, t: int) -> float | None:
        """``r_t``, or None while ``rho_t <= 5``: torch's Python-float arithmetic, so the
        switch comes at the same step."""
        bc2 = 1.0 - self.beta2 ** t
        rho_inf = 2.0 / (1.0 - self.beta2) - 1.0
        rho_t = rho_inf - 2.0 * t * self.beta2 ** t / bc2
        if not rho_t > 5.0:
            return None
        return ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) ** 0.5

    def update(self, p, g, state, tmp):
        _, m, v = _moments(self, p, g, state, tmp, self.decoupled_weight_decay)
        step, t = self.steps, tmp[1]
        bc1, rect = 1.0 - self.beta1 ** step, self._rectification(step)
        if rect is None:  # too few squares averaged for an adaptive step: momentum alone
            axpby(-self.lr / bc1, m, 1.0, p, t)
            return
        np.sqrt(v, out=t)
        t += self.eps
        np.divide(m, t, out=t)
        axpby(-self.lr * rect * math.sqrt(1.0 - self.beta2 ** step) / bc1, t, 1.0, p, t)


def _rho(value: Any, name: str, who: str) -> float:
    return in_range(value, name, who, 0.0, 1.0)


def _positive(value: Any, name: str, who: str) -> float:
    return _finite(value, name, who, positive=True)


class Adadelta(Optimizer):
    """Adadelta (``torch.optim.Adadelta``, Zeiler 2012).

    RMSProp's step ``lr * g / sqrt(s)`` takes its units from ``lr``; Adadelta puts the
    root of an average of its own past squared steps in ``lr``'s place, which carries the
    units of ``p`` (``lr`` only scales the result, 1 by default)::

        g = grad + weight_decay * p
        s = rho s + (1 - rho) g²
        d = sqrt(u + eps) / sqrt(s + eps) * g
        u = rho u + (1 - rho) d²
        p = p - lr d

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Scale of the step, > 0 (default 1.0, torch's).
        rho: Decay rate of both averages, in [0, 1].
        eps: Added inside both square roots, > 0: the first step is
            ``sqrt(eps / (s + eps)) g``, so with 0 nothing would move (PyTorch accepts 0:
            an entry whose first gradient is 0 then becomes NaN).
        weight_decay: L2 penalty added to the gradient.
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "rho", "eps", "weight_decay")
    _state_keys = ("square_avg", "acc_delta")
    _checks = {**Optimizer._checks, "rho": _rho, "eps": _positive, "weight_decay": _finite}

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, clip_norm: float | None = None) -> None:
        self.rho, self.eps, self.weight_decay = rho, eps, weight_decay  # each checked by _checks
        super().__init__(params, lr, clip_norm=clip_norm)

    def _saved_arrays(self, saved: Any, probe: Optimizer) -> list[tuple[np.ndarray, Any]]:
        pairs = super()._saved_arrays(saved, probe)
        for name in self._state_names():  # below -eps, sqrt(u + eps) would be NaN
            _check_values(saved[name]["acc_delta"], f"Adadelta: expected state "
                          f"{name}.acc_delta", "an average of squared steps")
        return pairs

    def update(self, p, g, state, tmp):
        if self.weight_decay:
            g = _decayed(g, p, self.weight_decay, tmp[0], tmp[1])
        s, u, d = state["square_avg"], state["acc_delta"], tmp[1]
        c = square_into(g, 1.0 - self.rho, d)  # g², (c g) g where that overflows
        axpby(c, d, self.rho, s, d)
        np.add(s, self.eps, out=d)
        np.sqrt(d, out=d)
        # g / sqrt(s + eps) first, then times sqrt(u + eps) (torch's order the other way
        # round): g, perhaps in tmp[0], is then free, and two scratch arrays suffice
        np.divide(g, d, out=d)
        step = np.add(u, self.eps, out=tmp[0])
        np.sqrt(step, out=step)
        step *= d
        np.multiply(step, step, out=d)
        axpby(1.0 - self.rho, d, self.rho, u, d)
        axpby(-self.lr, step, 1.0, p, d)
