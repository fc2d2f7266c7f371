"""Learning-rate schedules: ``schedule(epoch) -> lr``, epochs counted from 0.

Pass one to ``bp.LearningRateScheduler`` in ``fit(callbacks=...)``; it sets
``optimizer.lr`` at the start of every epoch. Each formula is the closed form of
the ``torch.optim.lr_scheduler`` class of the same name, stepped once per epoch.
:class:`OneCycleLR` and :class:`CyclicLR` count optimizer steps instead (``per_step``:
PyTorch steps them after every batch), and :class:`ReduceLROnPlateau` reacts to a
monitored value. :class:`CosineAnnealingWarmRestarts`, :class:`PolynomialLR`,
:class:`ConstantLR`, :class:`CyclicLR` and :class:`SequentialLR` live in
:mod:`._more_schedules`, :class:`ReduceLROnPlateau` in :mod:`._plateau`; all are
re-exported here.
"""

from __future__ import annotations

import bisect
import functools
import inspect
import math
from typing import Any, ClassVar

from ._validate import boolean, in_range, nonneg_int, positive_int


def _rate(lr: Any, name: str, who: str) -> float:
    """A rate >= 0, or an error; PyTorch's ``StepLR(optimizer, ...)`` form is told ours."""
    if _is_optimizer(lr):
        raise TypeError(f"{who}: expected the initial learning rate (a number), got the "
                        f"optimizer {type(lr).__name__}; a backprop schedule maps epoch (or "
                        f"step) -> lr and goes to fit in a callback: callbacks=["
                        f"bp.LearningRateScheduler(bp.{who}(0.1, ...))]")
    return in_range(lr, name, who, 0.0)  # >= 0, as optimizers' lr


class Schedule:
    """Base class: ``__call__(epoch) -> lr`` from the initial ``lr``.

    ``per_step`` (class attribute): False for a schedule of epochs; True for one of
    optimizer steps, which ``LearningRateScheduler`` then calls before every batch.
    """

    per_step: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each schedule's ``__init__`` first refuses PyTorch's ``Scheduler(optimizer, ...)``
        form by name, before Python's own argument errors ("got multiple values for
        argument 'base_lr'") could hide what went wrong."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _optimizer_first_refused(init)  # type: ignore[method-assign]

    @classmethod
    def _refuse_optimizer(cls, optimizer: Any) -> None:
        """Raise the TypeError for an optimizer passed first (see :func:`_rate`)."""
        _rate(optimizer, "lr", cls.__name__)

    def __init__(self, lr: float) -> None:
        self.lr = _rate(lr, "lr", type(self).__name__)

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def momentum(self, epoch: int) -> float | None:
        """The optimizer's momentum (or beta1) to set with the rate; None: leave it."""
        return None

    def group_rates(self, epoch: int, scales: list[float]) -> list[float] | None:
        """Each parameter group's rate at ``epoch``, given each group's lr scale (its lr
        over the optimizer's, so its base rate is ``self.lr * scale``), as PyTorch's
        scheduler of the same name sets the groups; None where that is ``self(epoch) *
        scale`` for every group (the multiplicative schedules), which setting
        ``optimizer.lr`` gives."""
        return None

    def momentum_bounds(self) -> tuple[float, ...]:
        """The least and greatest momentum that :meth:`momentum` gives (none by default):
        ``LearningRateScheduler`` checks them against the optimizer before training."""
        return ()

    def _epoch(self, epoch: int) -> int:
        """``epoch`` as an int >= 0, or a TypeError/ValueError naming the schedule."""
        return nonneg_int(epoch, "epoch", type(self).__name__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_setting(v)}" for k, v in vars(self).items()
                         if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _is_optimizer(value: Any) -> bool:
    return hasattr(value, "step") and hasattr(value, "params")


def _optimizer_first_refused(init: Any) -> Any:
    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        if args and _is_optimizer(args[0]):
            type(self)._refuse_optimizer(args[0])
        init(self, *args, **kwargs)

    return checked


def _setting(value: Any) -> str:
    """A setting's repr; a function (``after=decay``) by its name, not its address, which
    differs between processes (a resumed fit compared the two and warned)."""
    if callable(value) and not isinstance(value, Schedule):
        return getattr(value, "__qualname__", type(value).__name__)
    return repr(value)


class StepLR(Schedule):
    """``lr * gamma ** (epoch // step_size)``, PyTorch's ``StepLR``.

    Args:
        lr: The initial rate.
        step_size: Epochs between two cuts (>= 1).
        gamma: The factor of each cut, > 0 (default 0.1).
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(lr)
        self.step_size = positive_int(step_size, "step_size", "StepLR")
        self.gamma = in_range(gamma, "gamma", "StepLR", 0.0, low_open=True)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma ** (self._epoch(epoch) // self.step_size)


class MultiStepLR(Schedule):
    """``lr * gamma ** (number of milestones <= epoch)``, PyTorch's ``MultiStepLR``.

    Args:
        lr: The initial rate.
        milestones: Epochs (counted from 0) at which the rate is multiplied by
            ``gamma``: ints >= 0, in any order; one listed twice counts twice and
            none keeps the rate, as in PyTorch.
        gamma: The factor (default 0.1).
    """

    def __init__(self, lr: float, milestones: Any, gamma: float = 0.1) -> None:
        super().__init__(lr)
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"MultiStepLR: expected milestones as a list of epochs, got "
                            f"{milestones!r}")
        self.milestones = sorted(nonneg_int(m, "each milestone", "MultiStepLR")
                                 for m in milestones)
        self.gamma = in_range(gamma, "gamma", "MultiStepLR", 0.0, low_open=True)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma ** bisect.bisect_right(self.milestones,
                                                            self._epoch(epoch))


class ExponentialLR(Schedule):
    """``lr * gamma ** epoch``, PyTorch's ``ExponentialLR``.

    Args:
        lr: The initial rate.
        gamma: The factor per epoch, > 0.
    """

    def __init__(self, lr: float, gamma: float) -> None:
        super().__init__(lr)
        self.gamma = in_range(gamma, "gamma", "ExponentialLR", 0.0, low_open=True)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma ** self._epoch(epoch)


class CosineAnnealingLR(Schedule):
    """``eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``, PyTorch's
    ``CosineAnnealingLR`` (its closed form; past ``T_max`` the cosine rises again).

    Args:
        lr: The initial rate.
        T_max: Epochs from ``lr`` down to ``eta_min`` (>= 1).
        eta_min: The lowest rate, >= 0 (default 0).
    """

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        super().__init__(lr)
        self.T_max = positive_int(T_max, "T_max", "CosineAnnealingLR")
        self.eta_min = in_range(eta_min, "eta_min", "CosineAnnealingLR", 0.0)

    def __call__(self, epoch: int) -> float:
        return self._from(self._epoch(epoch), self.lr)

    def _from(self, epoch: int, base: float) -> float:
        return self.eta_min + (base - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def group_rates(self, epoch: int, scales: list[float]) -> list[float] | None:
        """Each group anneals from its own base rate to the one ``eta_min``, as PyTorch's."""
        epoch = self._epoch(epoch)
        return [self._from(epoch, self.lr * s) for s in scales] if self.eta_min else None


class LinearWarmup(Schedule):
    """Ramp linearly from ``start_factor * lr`` to ``lr`` over ``warmup_epochs``, then ``after``.

    Args:
        lr: The rate reached at the end of warm-up.
        warmup_epochs: Length of the ramp.
        start_factor: Fraction of ``lr`` at epoch 0 (PyTorch's LinearLR default 1/3).
        after: Optional schedule that takes over, called with ``epoch - warmup_epochs``.
    """

    def __init__(self, lr: float, warmup_epochs: int, start_factor: float = 1 / 3,
                 after: Schedule | None = None) -> None:
        super().__init__(lr)
        self.warmup_epochs = positive_int(warmup_epochs, "warmup_epochs", "LinearWarmup")
        self.start_factor = in_range(start_factor, "start_factor", "LinearWarmup", 0.0, 1.0,
                                     low_open=True)
        if after is not None and not callable(after):
            raise TypeError(f"LinearWarmup: expected after as a schedule (callable epoch -> lr) "
                            f"or None, got {type(after).__name__} {after!r:.60}")
        if getattr(after, "per_step", False):
            raise ValueError(f"LinearWarmup: expected after as a schedule of epochs, got "
                             f"{after!r}, which counts optimizer steps (it warms up itself)")
        self.after = after

    def __call__(self, epoch: int) -> float:
        epoch = self._epoch(epoch)
        if epoch < self.warmup_epochs:
            frac = self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs
            return self.lr * frac
        return self.after(epoch - self.warmup_epochs) if self.after else self.lr

    def group_rates(self, epoch: int, scales: list[float]) -> list[float] | None:
        """The warm-up scales every group; then ``after``'s rule for groups, if it has one."""
        epoch = self._epoch(epoch)
        if epoch < self.warmup_epochs or not isinstance(self.after, Schedule):
            return None
        return self.after.group_rates(epoch - self.warmup_epochs, scales)


class OneCycleLR(Schedule):
    """The 1cycle policy (PyTorch's ``OneCycleLR``): warm up to ``max_lr``, then anneal
    far below the start, over ``total_steps`` optimizer steps (not epochs).

    ``t`` counts optimizer steps from 0 (``optimizer.steps`` before the batch's step),
    ``lr0 = max_lr / div_factor``, ``lr_min = lr0 / final_div_factor``, ``a = pct_start``,
    ``T = total_steps``. Each phase anneals from its start to its end as ``p`` goes
    from 0 to 1 (``'cos'``: ``end + (start - end) (1 + cos(pi p)) / 2``; ``'linear'``)::

        phase         ends at step        lr                momentum (cycle_momentum)
        warm-up       a T - 1             lr0 -> max_lr     max_momentum -> base_momentum
        annealing     T - 1               max_lr -> lr_min  base_momentum -> max_momentum
        (three_phase: warm-up; back to lr0 by step 2 a T - 2; then lr0 -> lr_min, momentum
        held at max_momentum)

    ``p = (t - phase start) / (phase end - phase start)``, with each phase starting where
    the one before ends (the first at 0). A phase of length 0 (``a T = 1``) is at its end
    (PyTorch divides by zero there). Steps up to ``T`` are allowed, as in PyTorch.

    Pass it to ``bp.LearningRateScheduler``: it sets ``optimizer.lr`` (and, with
    ``cycle_momentum``, SGD's or RMSProp's ``momentum`` or the Adam family's ``beta1``,
    as PyTorch does) before every batch.

    Args:
        max_lr: The peak rate.
        total_steps: The number of optimizer steps of the cycle (it wins when
            ``epochs`` and ``steps_per_epoch`` are given too, as in PyTorch).
        epochs: With ``steps_per_epoch``, instead of ``total_steps``: the cycle is
            ``epochs * steps_per_epoch`` steps.
        steps_per_epoch: Batches per epoch, ``ceil(N / batch_size)``.
        pct_start: ``a``, the fraction of the steps spent warming up (default 0.3).
        anneal_strategy: ``'cos'`` (default) or ``'linear'``.
        cycle_momentum: Cycle the optimizer's momentum inversely to the rate (default
            True, as PyTorch; an optimizer with neither momentum nor beta1 is refused).
        base_momentum, max_momentum: The momentum's range (default 0.85 to 0.95).
        div_factor: ``max_lr / lr0`` (default 25).
        final_div_factor: ``lr0 / lr_min`` (default 1e4).
        three_phase: The three-phase variant above (default False).
    """

    per_step = True

    def __init__(self, max_lr: float, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85,
                 max_momentum: float = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        who = "OneCycleLR"
        self.max_lr = _rate(max_lr, "max_lr", who)
        if total_steps is None and (epochs is None or steps_per_epoch is None):
            raise ValueError("OneCycleLR: expected total_steps, or epochs and steps_per_epoch "
                             f"(batches per epoch), got total_steps={total_steps}, "
                             f"epochs={epochs}, steps_per_epoch={steps_per_epoch}")
        if total_steps is None:  # as PyTorch, total_steps wins when both are given
            total_steps = (positive_int(epochs, "epochs", who)
                           * positive_int(steps_per_epoch, "steps_per_epoch", who))
        self.total_steps = positive_int(total_steps, "total_steps", who)
        self.pct_start = in_range(pct_start, "pct_start", who, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: expected anneal_strategy 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = boolean(cycle_momentum, "cycle_momentum", who)
        self.base_momentum = in_range(base_momentum, "base_momentum", who, -math.inf)
        self.max_momentum = in_range(max_momentum, "max_momentum", who, -math.inf)
        self.div_factor = in_range(div_factor, "div_factor", who, 0.0, low_open=True)
        self.final_div_factor = in_range(final_div_factor, "final_div_factor", who, 0.0,
                                         low_open=True)
        self.three_phase = boolean(three_phase, "three_phase", who)

    @property
    def lr(self) -> float:  # type: ignore[override]
        """The initial rate, ``max_lr / div_factor`` (every Schedule has ``lr``)."""
        return self.max_lr / self.div_factor

    def __repr__(self) -> str:  # the settings that differ from PyTorch's defaults
        defaults = inspect.signature(OneCycleLR.__init__).parameters
        args = [f"{self.max_lr!r}", f"total_steps={self.total_steps}"] + [
            f"{k}={v!r}" for k, v in vars(self).items() if k in defaults
            and k not in ("max_lr", "total_steps") and v != defaults[k].default]
        return f"OneCycleLR({', '.join(args)})"

    def _phases(self) -> list[tuple[float, float, float, float, float]]:
        """``(last step, lr from, lr to, momentum from, momentum to)`` of each phase."""
        lr0, top = self.lr, self.max_lr
        low, peak, base = lr0 / self.final_div_factor, self.max_momentum, self.base_momentum
        a, last = self.pct_start * self.total_steps, self.total_steps - 1
        if self.three_phase:
            return [(a - 1, lr0, top, peak, base), (2 * a - 2, top, lr0, base, peak),
                    (last, lr0, low, peak, peak)]
        return [(a - 1, lr0, top, peak, base), (last, top, low, base, peak)]

    def _at(self, step: int) -> tuple[float, float, float, float, float]:
        """``(p, lr from, lr to, momentum from, momentum to)`` of ``step``'s phase."""
        t = nonneg_int(step, "step", "OneCycleLR")
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: step {t} is past total_steps={self.total_steps}: "
                             "build it with the total number of optimizer steps of the fit "
                             "(epochs x batches per epoch)")
        phases, start = self._phases(), 0.0
        for phase in phases[:-1]:  # each phase starts where the one before ends
            if t <= phase[0]:
                break
            start = phase[0]
        else:
            phase = phases[-1]
        end = phase[0]
        pct = 1.0 if end == start else (t - start) / (end - start)
        return (pct, *phase[1:])  # type: ignore[return-value]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def __call__(self, step: int) -> float:
        pct, lr_from, lr_to, _, _ = self._at(step)
        return self._anneal(lr_from, lr_to, pct)

    def group_rates(self, step: int, scales: list[float]) -> list[float] | None:
        """One ``max_lr`` for every group: every group gets the same rate, as PyTorch's
        ``OneCycleLR`` with one ``max_lr`` gives them (whatever their own lr was)."""
        return [self(step)] * len(scales)

    def momentum(self, step: int) -> float | None:
        """The momentum (or beta1) of ``step``; None without ``cycle_momentum``."""
        if not self.cycle_momentum:
            return None
        pct, _, _, m_from, m_to = self._at(step)
        return self._anneal(m_from, m_to, pct)

    def momentum_bounds(self) -> tuple[float, ...]:
        return (self.base_momentum, self.max_momentum) if self.cycle_momentum else ()


# the rest of PyTorch's schedules, re-exported (imported last: they build on Schedule)
from ._more_schedules import (  # noqa: E402, F401
    ConstantLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    PolynomialLR,
    SequentialLR,
)
from ._plateau import ReduceLROnPlateau  # noqa: E402, F401
