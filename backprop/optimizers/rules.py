"""The update rules SGD, RMSProp and Adagrad (``torch.optim`` semantics); the Adam
family is in :mod:`.adam`.

Each writes :meth:`~.base.Optimizer.init_state` and :meth:`~.base.Optimizer.update`
with its math in the docstring; the base class does the rest.
"""

from __future__ import annotations

import numpy as np

from .._validate import boolean, in_range
from ..backend import axpby, axpby_axpy, square_into
from .base import Optimizer
from .clip import _decayed, _finite


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (``torch.optim.SGD``).

    ::

        g = grad + weight_decay * p
        b = g  (first step)   |   b = momentum * b + (1 - dampening) * g
        g = g + momentum * b  (nesterov)   |   g = b
        p = p - lr * g

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Learning rate, > 0 (default 1e-3, torch's).
        momentum: Momentum factor (0: plain SGD, no buffer).
        dampening: Dampening of the gradient in the momentum buffer, in [0, 1].
        weight_decay: L2 penalty added to the gradient.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    _state_keys = ("momentum_buffer",)
    _state_flags = ("momentum",)
    _checks = {**Optimizer._checks, "momentum": _finite, "weight_decay": _finite,
               "dampening": lambda v, name, who: in_range(v, name, who, 0.0, 1.0),
               "nesterov": boolean}

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, clip_norm: float | None = None) -> None:  # torch's order
        self.momentum, self.dampening = momentum, dampening  # each checked by _checks
        self.weight_decay, self.nesterov = weight_decay, nesterov
        super().__init__(params, lr, clip_norm=clip_norm)

    def _check_together(self):
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("SGD: expected momentum > 0 and dampening = 0 for nesterov, "
                             f"got momentum={self.momentum}, dampening={self.dampening}")

    def init_state(self, p):
        return super().init_state(p) if self.momentum else {}

    def update(self, p, g, state, tmp):
        if self.weight_decay:
            g = _decayed(g, p, self.weight_decay, tmp[0], tmp[1])
        if self.momentum:
            b = state["momentum_buffer"]
            if self.steps == self._state_since + 1:  # the buffer's first step: b = g
                np.copyto(b, g)
            elif not self.nesterov:  # b = momentum b + (1 - dampening) g, then p -= lr b
                axpby_axpy(1.0 - self.dampening, g, self.momentum, b, -self.lr, p, tmp[1])
                return
            else:
                axpby(1.0 - self.dampening, g, self.momentum, b, tmp[1])
            if self.nesterov:  # g + momentum * b, built in scratch: no flat-sized temporary
                t = np.multiply(b, self.momentum, out=tmp[1])
                t += g
                g = t
            else:
                g = b
        axpby(-self.lr, g, 1.0, p, tmp[1])


class RMSProp(Optimizer):
    """RMSProp (``torch.optim.RMSprop``).

    ::

        g = grad + weight_decay * p
        s = alpha s + (1 - alpha) g²
        a = alpha a + (1 - alpha) g;  d = sqrt(s - a²) + eps    (centered)   |   d = sqrt(s) + eps
        b = momentum b + g / d;  p = p - lr b                   (momentum)   |   p = p - lr g / d

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Learning rate, > 0 (default 0.01, torch's).
        alpha: Smoothing constant of the squared-gradient average, in [0, 1].
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient.
        momentum: Momentum factor (0: none).
        centered: Normalise by the gradient's estimated variance, not its second moment.
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _state_flags = ("centered", "momentum")
    _checks = {**Optimizer._checks, "eps": _finite, "weight_decay": _finite,
               "momentum": _finite,
               "alpha": lambda v, name, who: in_range(v, name, who, 0.0, 1.0),
               "centered": boolean}

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 clip_norm: float | None = None) -> None:
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay  # _checks
        self.momentum, self.centered = momentum, centered
        super().__init__(params, lr, clip_norm=clip_norm)

    def init_state(self, p):
        keys = (("square_avg",) + (("grad_avg",) if self.centered else ())
                + (("momentum_buffer",) if self.momentum else ()))
        return {k: np.zeros_like(p) for k in keys}

    def update(self, p, g, state, tmp):
        if self.weight_decay:
            g = _decayed(g, p, self.weight_decay, tmp[0], tmp[1])
        s, d = state["square_avg"], tmp[1]
        c = square_into(g, 1.0 - self.alpha, d)  # g², (c g) g where that overflows
        axpby(c, d, self.alpha, s, d)
        if self.centered:
            a = state["grad_avg"]
            axpby(1.0 - self.alpha, g, self.alpha, a, d)
            np.multiply(a, a, out=d)
            np.subtract(s, d, out=d)
            np.sqrt(d, out=d)
        else:
            np.sqrt(s, out=d)
        d += self.eps
        np.divide(g, d, out=d)
        if self.momentum:
            b = state["momentum_buffer"]
            axpby_axpy(1.0, d, self.momentum, b, -self.lr, p, d)
        else:
            axpby(-self.lr, d, 1.0, p, d)


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``).

    ::

        g = grad + weight_decay * p;   clr = lr / (1 + (t - 1) lr_decay)
        s = s + g²;                    p = p - clr g / (sqrt(s) + eps)

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Learning rate, > 0 (default 0.01, torch's).
        lr_decay: Rate decay per step (``clr`` above).
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: Starting value of the sum of squares ``s``; a parameter
            group may set its own (PyTorch's groups all start from the constructor's).
        eps: Added to the denominator.
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    _checks = {**Optimizer._checks, "lr_decay": _finite, "weight_decay": _finite,
               "initial_accumulator_value": _finite, "eps": _finite}

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, clip_norm: float | None = None) -> None:
        self.lr_decay, self.weight_decay, self.eps = lr_decay, weight_decay, eps  # _checks
        self.initial_accumulator_value = initial_accumulator_value
        super().__init__(params, lr, clip_norm=clip_norm)

    def init_state(self, p):
        value, top = self.initial_accumulator_value, float(np.finfo(p.dtype).max)
        if value > top:  # it would fill the sums with inf (and warn)
            raise ValueError(f"Adagrad: expected initial_accumulator_value within the "
                             f"parameters' {p.dtype} range (at most {top:.4g}), got {value!r}")
        return {"sum": np.full_like(p, value)}

    def update(self, p, g, state, tmp):
        if self.weight_decay:
            g = _decayed(g, p, self.weight_decay, tmp[0], tmp[1])
        s, d = state["sum"], tmp[1]
        np.multiply(g, g, out=d)
        s += d
        np.sqrt(s, out=d)
        d += self.eps
        np.divide(g, d, out=d)
        axpby(-self.lr / (1.0 + (self.steps - 1) * self.lr_decay), d, 1.0, p, d)
