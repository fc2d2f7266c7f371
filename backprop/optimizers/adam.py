"""The Adam family: Adam, AdamW, NAdam, Adamax (``torch.optim`` semantics), and their
shared pieces (``betas`` in either spelling, the two moments).

Each writes :meth:`~.base.Optimizer.init_state` and :meth:`~.base.Optimizer.update`
with its math in the docstring; the base class does the rest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import boolean, in_range
from ..backend import axpby, square_into
from .base import Optimizer
from .clip import _decayed, _finite


def _beta(value: Any, name: str, who: str) -> float:
    """A moment's decay rate: in [0, 1)."""
    return in_range(value, name, who, 0.0, 1.0, high_open=True)


def _first_moment(opt: Any, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray],
                  tmp: Any, decoupled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The Adam family's first part, in place: weight decay (``p *= 1 - lr wd`` when
    ``decoupled``, else ``g + wd p``), then ``m = beta1 m + (1 - beta1) g``. Returns
    ``(g, m)``, ``g`` with any L2 term (in ``tmp[0]``); ``tmp[1]`` is left free."""
    if opt.weight_decay and decoupled:
        p *= 1.0 - opt.lr * opt.weight_decay
    elif opt.weight_decay:
        g = _decayed(g, p, opt.weight_decay, tmp[0], tmp[1])
    m = state["exp_avg"]
    axpby(1.0 - opt.beta1, g, opt.beta1, m, tmp[1])
    return g, m


def _moments(opt: Any, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray],
             tmp: Any, decoupled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_first_moment`, then ``v = beta2 v + (1 - beta2) g²``: ``(g, m, v)``."""
    g, m = _first_moment(opt, p, g, state, tmp, decoupled)
    v, t = state["exp_avg_sq"], tmp[1]
    c = square_into(g, 1.0 - opt.beta2, t)  # g², or (c g) g where g² overflows (finite
    axpby(c, t, opt.beta2, v, t)  # in PyTorch's order: an inf v froze p for good)
    return g, m, v


class _Unset:
    """The default of ``betas``: not given (None is a mistake, as in PyTorch)."""

    def __repr__(self) -> str:
        return "<not given>"


_UNSET = _Unset()


def _betas(betas: Any, beta1: Any, beta2: Any, who: str) -> tuple[float, float]:
    """``(beta1, beta2)``, each in [0, 1) as in ``torch.optim.Adam``, from either spelling.

    A pair in ``beta1``'s place is torch's positional ``Adam(params, lr, betas)``: taken
    as ``betas`` when nothing follows it, else refused (torch's next positional, eps,
    would have landed in ``beta2``)."""
    if isinstance(betas, _Unset) and isinstance(beta1, (tuple, list, np.ndarray)):
        if not isinstance(beta2, float) or beta2 != 0.999:
            raise TypeError(f"{who}: got the pair {beta1!r} in beta1's place and beta2={beta2!r}"
                            f": the positional order here is (params, lr, beta1, beta2, eps, "
                            f"...), not torch's (params, lr, betas, eps, ...); pass betas=... "
                            f"and the rest by keyword")
        betas, beta1 = beta1, 0.9
    if isinstance(betas, _Unset):
        return _beta(beta1, "beta1", who), _beta(beta2, "beta2", who)
    what = f"{who}: expected betas as a pair of numbers in [0, 1), got {betas!r}"
    if not (isinstance(betas, (tuple, list))
            or isinstance(betas, np.ndarray) and betas.ndim == 1):
        raise TypeError(what)
    if len(betas) != 2:
        raise ValueError(what)
    try:
        pair = _beta(betas[0], "betas", who), _beta(betas[1], "betas", who)
    except (TypeError, ValueError) as err:
        raise type(err)(what) from None
    if any(b not in (default, v) for b, default, v in zip((beta1, beta2), (0.9, 0.999), pair,
                                                          strict=True)):
        raise ValueError(f"{who}: expected betas or beta1/beta2, got both: betas={betas!r}, "
                         f"beta1={beta1!r}, beta2={beta2!r}")
    return pair


# the checks the whole family shares (each optimizer adds its own flags)
_CHECKS = {**Optimizer._checks, "eps": _finite, "weight_decay": _finite, "beta1": _beta,
           "beta2": _beta}


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``; L2 ``weight_decay`` added to the gradient).

    ::

        g = grad + weight_decay * p
        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g²
        v̂ = max(v̂, v) (amsgrad)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v or v̂) / sqrt(1 - beta2^t) + eps)

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Learning rate, > 0 (default 1e-3, torch's).
        beta1, beta2: Decay rates of the first and second moment averages, in [0, 1).
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient (AdamW decouples it).
        amsgrad: Use the running maximum of ``v`` (AMSGrad).
        betas: ``(beta1, beta2)`` in one tuple, as PyTorch takes them (not with
            ``beta1``/``beta2``).
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad")
    _state_flags = ("amsgrad",)
    _checks = {**_CHECKS, "amsgrad": boolean}
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 betas: tuple[float, float] | _Unset = _UNSET,
                 clip_norm: float | None = None) -> None:
        who = type(self).__name__
        self.beta1, self.beta2 = _betas(betas, beta1, beta2, who)
        self.eps, self.weight_decay, self.amsgrad = eps, weight_decay, amsgrad  # _checks
        super().__init__(params, lr, clip_norm=clip_norm)

    def init_state(self, p):
        keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())
        return {k: np.zeros_like(p) for k in keys}

    def update(self, p, g, state, tmp):
        _, m, v = _moments(self, p, g, state, tmp, self._decoupled)
        t = tmp[1]
        if self.amsgrad:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        bc1, root_bc2 = 1.0 - self.beta1 ** self.steps, math.sqrt(1.0 - self.beta2 ** self.steps)
        # lr/bc1 · m / (sqrt(v)/root_bc2 + eps), with numerator and denominator times
        # root_bc2: the same step (eps still after the bias correction, as in torch)
        # without a pass that divides sqrt(v).
        np.sqrt(v, out=t)
        t += self.eps * root_bc2
        np.divide(m, t, out=t)
        axpby(-self.lr * root_bc2 / bc1, t, 1.0, p, t)


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): weight decay decoupled from the gradient.

    ::

        p = p * (1 - lr * weight_decay), then the Adam step without L2 in g

    Args:
        params, lr, beta1, beta2, eps, amsgrad, betas, clip_norm: As for :class:`Adam`.
        weight_decay: Decoupled decay factor (default 0.01, torch's).
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False, *,
                 betas: tuple[float, float] | _Unset = _UNSET,
                 clip_norm: float | None = None) -> None:
        super().__init__(params, lr, beta1, beta2, eps, weight_decay, amsgrad, betas=betas,
                         clip_norm=clip_norm)


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum (``torch.optim.NAdam``, Dozat 2016).

    ::

        g = grad + weight_decay * p   (or p = p * (1 - lr * weight_decay), decoupled)
        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g²
        mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay));   P_t = mu_1 mu_2 ... mu_t
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr (1 - mu_t) / (1 - P_t) * g / d - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / d

    Keras' ``Nadam`` is this rule with ``0.96^t`` (no ``momentum_decay`` factor):
    ``NAdam(params, lr=1e-3, eps=1e-7, momentum_decay=1.0)``. ``P_t`` is a Python float
    here; PyTorch keeps it in its default dtype (float32 unless set to float64), so
    float64 trajectories agree with PyTorch's to ~1e-8 unless its default is float64.
    ``d`` is formed as ``sqrt(v) / sqrt(1 - beta2^t)``: after a float32 gradient spike
    (5e19-1e21) PyTorch's ``v / (1 - beta2^t)`` overflows and that weight takes a few
    zero steps; here it keeps stepping (0.232 against PyTorch's 0.246 after a 5e19 spike).

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Learning rate, > 0 (default 2e-3, torch's).
        beta1, beta2: Decay rates of the first and second moment averages, in [0, 1).
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient (or decoupled, below).
        momentum_decay: ``psi`` in ``mu_t`` above, >= 0 (default 4e-3, torch's).
        decoupled_weight_decay: Decay the weights as AdamW does (NAdamW).
        betas: ``(beta1, beta2)`` in one tuple, as PyTorch takes them.
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay", "momentum_decay",
              "decoupled_weight_decay")
    _state_keys = ("exp_avg", "exp_avg_sq")
    _checks = {**_CHECKS, "decoupled_weight_decay": boolean,
               "momentum_decay": lambda v, name, who: in_range(v, name, who, 0.0)}

    def __init__(self, params, lr: float = 2e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *,
                 betas: tuple[float, float] | _Unset = _UNSET,
                 clip_norm: float | None = None) -> None:
        self.beta1, self.beta2 = _betas(betas, beta1, beta2, "NAdam")
        self.eps, self.weight_decay, self.momentum_decay = eps, weight_decay, momentum_decay
        self.decoupled_weight_decay = decoupled_weight_decay  # each checked by _checks
        self._mu_product = (0, 1.0)  # (t, P_t), see _mu_prod
        super().__init__(params, lr, clip_norm=clip_norm)

    def _scalar_state(self) -> dict[str, float]:
        return {"mu_product": self._mu_product[1]}

    def _load_scalar_state(self, values: dict[str, float]) -> None:
        self._mu_product = (self.steps, values["mu_product"])

    def _check_scalar(self, name: str, value: Any, who: str) -> None:
        in_range(value, f"{name} in the state", who, 0.0, 1.0)  # a product of mu in [0, 1)

    def _mu(self, t: int) -> float:
        return self.beta1 * (1.0 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def _mu_prod(self, t: int) -> float:
        """``P_t = mu_1 ... mu_t``: one factor more each step, as torch keeps it (so a
        change of beta1 applies from the next factor on), and saved with the state; from
        the start only if ``steps`` was set by hand."""
        done, prod = self._mu_product
        if done == t:  # the step's second group (parameters not in one flat buffer)
            return prod
        if done != t - 1:
            done, prod = 0, 1.0
            for i in range(1, t):
                prod *= self._mu(i)
        prod *= self._mu(t)
        self._mu_product = (t, prod)
        return prod

    def update(self, p, g, state, tmp):
        g, m, v = _moments(self, p, g, state, tmp, self.decoupled_weight_decay)
        t, step = tmp[1], self.steps
        mu, mu_next, prod = self._mu(step), self._mu(step + 1), self._mu_prod(step)
        # (torch keeps P per parameter in its default dtype, float32 unless set to float64)
        # both terms times root_bc2 over sqrt(v) + eps root_bc2, as in Adam: the same step
        root_bc2 = math.sqrt(1.0 - self.beta2 ** step)
        np.sqrt(v, out=t)
        t += self.eps * root_bc2
        d = np.divide(g, t, out=tmp[0])
        axpby(-self.lr * root_bc2 * (1.0 - mu) / (1.0 - prod), d, 1.0, p, d)
        np.divide(m, t, out=t)
        axpby(-self.lr * root_bc2 * mu_next / (1.0 - prod * mu_next), t, 1.0, p, t)


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm (``torch.optim.Adamax``).

    ::

        g = grad + weight_decay * p
        m = beta1 m + (1 - beta1) g          u = max(beta2 u, |g| + eps)
        p = p - lr / (1 - beta1^t) * m / u

    Args:
        params: ``model.parameters()`` (or a model or layer, whose parameters are used).
        lr: Learning rate, > 0 (default 2e-3, torch's).
        beta1, beta2: Decay rates of the first and second moment averages, in [0, 1).
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient.
        betas: ``(beta1, beta2)`` in one tuple, as PyTorch takes them.
        clip_norm: Clip the gradients to this global norm before each step (None:
            never; see :func:`clip_grad_norm`).
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    _state_keys = ("exp_avg", "exp_inf")
    _checks = {**_CHECKS}

    def __init__(self, params, lr: float = 2e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, *,
                 betas: tuple[float, float] | _Unset = _UNSET,
                 clip_norm: float | None = None) -> None:
        self.beta1, self.beta2 = _betas(betas, beta1, beta2, "Adamax")
        self.eps, self.weight_decay = eps, weight_decay  # each checked by _checks
        super().__init__(params, lr, clip_norm=clip_norm)

    def update(self, p, g, state, tmp):
        g, m = _first_moment(self, p, g, state, tmp)
        u, t = state["exp_inf"], tmp[1]
        np.abs(g, out=t)
        t += self.eps
        u *= self.beta2
        np.maximum(u, t, out=u)
        np.divide(m, u, out=t)
        axpby(-self.lr / (1.0 - self.beta1 ** self.steps), t, 1.0, p, t)
