"""More of PyTorch's schedules: warm restarts, polynomial and constant decay, cyclical rates
(per optimizer step, cycling the momentum) and a sequence of schedules.

Re-exported by :mod:`backprop.schedules`. Each gives the rates that the
``torch.optim.lr_scheduler`` class of the same name gives when stepped once per epoch
(:class:`CyclicLR`: once per batch), written in closed form from the initial rate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._validate import boolean, in_range, listlike, nonneg_int, positive_int
from .schedules import Schedule, _check_groups, _Function, _group_count, _of_group, _rates


class CosineAnnealingWarmRestarts(Schedule):
    """Cosine annealing from ``lr`` to ``eta_min``, restarted at ``lr`` after every period
    (SGDR), PyTorch's ``CosineAnnealingWarmRestarts``::

        lr_t = eta_min + (lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    ``T_i`` is the length of the current period: ``T_0``, then ``T_0 * T_mult``, then
    ``T_0 * T_mult ** 2``...; ``T_cur`` counts the epochs since the last restart (0 at
    each restart, where the rate is ``lr``). With ``LearningRateScheduler(...,
    per_step=True)`` the periods count optimizer steps instead. In a loop of one's own
    it also takes a fraction of an epoch, ``schedule(epoch + i / iters)`` for batch ``i``
    of ``iters``, as PyTorch's ``scheduler.step(epoch + i / iters)``.

    Args:
        lr: The initial rate, and the rate at each restart.
        T_0: The length of the first period (>= 1).
        T_mult: The factor by which each period is longer than the one before (an
            int >= 1, default 1: all periods ``T_0``).
        eta_min: The rate the cosine goes down to, >= 0 (default 0).
    """

    def __init__(self, lr: float, T_0: int, T_mult: int = 1,  # noqa: N803
                 eta_min: float = 0.0) -> None:
        super().__init__(lr)
        who = "CosineAnnealingWarmRestarts"
        self.T_0 = positive_int(T_0, "T_0", who)
        self.T_mult = positive_int(T_mult, "T_mult", who)
        self.eta_min = in_range(eta_min, "eta_min", who, 0.0)

    def _epoch(self, epoch: float) -> float:  # type: ignore[override]
        """An int >= 0, or a fraction of an epoch (a float >= 0), as PyTorch's
        ``scheduler.step(epoch + i / iters)`` inside the batch loop."""
        if isinstance(epoch, (float, np.floating)):
            return in_range(epoch, "epoch", "CosineAnnealingWarmRestarts", 0.0)
        return super()._epoch(epoch)

    def _period(self, epoch: float) -> tuple[float, int]:
        """``(T_cur, T_i)`` of ``epoch``, in exact integers for a whole epoch (PyTorch
        counts them so too)."""
        if self.T_mult == 1:
            return epoch % self.T_0, self.T_0
        t_cur, t_i = epoch, self.T_0
        while t_cur >= t_i:  # one pass per restart: a few dozen at most
            t_cur, t_i = t_cur - t_i, t_i * self.T_mult
        return t_cur, t_i

    def __call__(self, epoch: float) -> float:
        return self._from(epoch, self.lr)

    def _from(self, epoch: float, base: float) -> float:
        t_cur, t_i = self._period(self._epoch(epoch))
        return self.eta_min + (base - self.eta_min) * (
            1 + math.cos(math.pi * t_cur / t_i)) / 2

    def group_rates(self, epoch: int, scales: list[float]) -> list[float] | None:
        """Each group anneals from its own base rate to the one ``eta_min``, as PyTorch's."""
        return [self._from(epoch, self.lr * s) for s in scales] if self.eta_min else None


class PolynomialLR(Schedule):
    """``lr * (1 - min(epoch, total_iters) / total_iters) ** power``, PyTorch's
    ``PolynomialLR``: down to 0 at epoch ``total_iters`` (for ``power > 0``), then 0.

    Args:
        lr: The initial rate.
        total_iters: Epochs of decay (default 5). 0 keeps the rate at ``lr``, as
            PyTorch's scheduler does when stepped.
        power: The power of the polynomial, >= 0 (default 1: linear; 0 keeps ``lr``).
    """

    def __init__(self, lr: float, total_iters: int = 5, power: float = 1.0) -> None:
        super().__init__(lr)
        self.total_iters = nonneg_int(total_iters, "total_iters", "PolynomialLR")
        self.power = in_range(power, "power", "PolynomialLR", 0.0)

    def __call__(self, epoch: int) -> float:
        epoch = self._epoch(epoch)
        if self.total_iters == 0:
            return self.lr
        return self.lr * (1.0 - min(self.total_iters, epoch) / self.total_iters) ** self.power


class ConstantLR(Schedule):
    """``lr * factor`` for the first ``total_iters`` epochs, then ``lr``, PyTorch's
    ``ConstantLR``.

    As PyTorch's scheduler stepped once per epoch, ``total_iters=0`` keeps the rate at
    ``lr * factor`` for good (it applies the factor at epoch 0 and undoes it only on
    reaching epoch ``total_iters`` >= 1; after a milestone of its ``SequentialLR`` it
    gives ``lr`` instead: there this one differs). ``factor=0`` gives 0, then ``lr``
    (PyTorch divides by zero at epoch ``total_iters``).

    Args:
        lr: The rate after ``total_iters`` epochs.
        factor: The fraction of ``lr`` used at first, in [0, 1] (default 1/3).
        total_iters: Epochs at ``lr * factor`` (default 5).
    """

    def __init__(self, lr: float, factor: float = 1 / 3, total_iters: int = 5) -> None:
        super().__init__(lr)
        self.factor = in_range(factor, "factor", "ConstantLR", 0.0, 1.0)
        self.total_iters = nonneg_int(total_iters, "total_iters", "ConstantLR")

    def __call__(self, epoch: int) -> float:
        epoch = self._epoch(epoch)
        factored = epoch < self.total_iters or self.total_iters == 0
        return self.lr * self.factor if factored else self.lr


_MODES = ("triangular", "triangular2", "exp_range")


class CyclicLR(Schedule):
    """Cyclical learning rates (PyTorch's ``CyclicLR``): up from ``base_lr`` towards
    ``max_lr`` in ``step_size_up`` optimizer steps, back down in ``step_size_down``,
    over and over; the momentum (``cycle_momentum``) goes the other way.

    ``t`` counts optimizer steps from 0 (``optimizer.steps`` before the batch's step),
    ``C = step_size_up + step_size_down``, ``r = step_size_up / C``::

        cycle = floor(1 + t / C)                  (1, 2, ...)
        x     = 1 + t / C - cycle                 (0 -> 1 within a cycle)
        h     = x / r if x <= r else (x - 1) / (r - 1)      (0 -> 1 -> 0)
        lr_t       = base_lr + (max_lr - base_lr) * h * scale
        momentum_t = max_momentum - (max_momentum - base_momentum) * h * scale

    ``scale`` is ``scale_fn(cycle)`` (``scale_mode='cycle'``) or ``scale_fn(t)``
    (``'iterations'``). The modes give it without a ``scale_fn``: ``'triangular'`` 1;
    ``'triangular2'`` ``1 / 2 ** (cycle - 1)``, halving the height each cycle;
    ``'exp_range'`` ``gamma ** t``. As in PyTorch, a ``scale_fn`` wins over ``mode``, and
    ``scale_mode`` counts only with a ``scale_fn`` (the modes set their own).

    Pass it to ``bp.LearningRateScheduler``: it sets ``optimizer.lr`` (and, with
    ``cycle_momentum``, SGD's or RMSProp's ``momentum`` or the Adam family's ``beta1``,
    as PyTorch does) before every batch. The cycles never end.

    Args:
        base_lr: The lowest rate, and the first (PyTorch's ``CyclicLR`` sets the
            optimizer's rate to it, whatever it was).
        max_lr: The rate at the top of the first cycle. Each of the two may be, as in
            PyTorch, a list of one rate per parameter group of the optimizer (one rate
            gives every group the same rates, whatever its own lr was).
        step_size_up: Optimizer steps from ``base_lr`` up to the top (>= 1, default 2000).
        step_size_down: Steps from the top back down (>= 0; default ``step_size_up``).
        mode: ``'triangular'`` (default), ``'triangular2'`` or ``'exp_range'``.
        gamma: ``'exp_range'``'s factor per step, in (0, 1] (default 1).
        scale_fn: A function of one int -> the height's scale, meant to stay in [0, 1]
            (replaces ``mode``); None for the mode's.
        scale_mode: ``'cycle'`` (default) or ``'iterations'``: what ``scale_fn`` is given.
        cycle_momentum: Cycle the optimizer's momentum inversely to the rate (default
            True, as PyTorch; an optimizer with neither momentum nor beta1 is refused).
        base_momentum, max_momentum: The momentum at the top and at the bottom of a cycle
            (default 0.8 and 0.9).
    """

    per_step = True

    def __init__(self, base_lr: float, max_lr: float, step_size_up: int = 2000,
                 step_size_down: int | None = None, mode: str = "triangular",
                 gamma: float = 1.0, scale_fn: Callable[[int], float] | None = None,
                 scale_mode: str = "cycle", cycle_momentum: bool = True,
                 base_momentum: float = 0.8, max_momentum: float = 0.9) -> None:
        who = "CyclicLR"
        self.base_lr = _rates(base_lr, "base_lr", who)
        self.max_lr = _rates(max_lr, "max_lr", who)
        if len({len(v) for v in (self.base_lr, self.max_lr) if isinstance(v, tuple)}) > 1:
            raise ValueError(f"CyclicLR: expected base_lr and max_lr for as many parameter "
                             f"groups, got {len(self.base_lr)} and {len(self.max_lr)}")
        self.step_size_up = positive_int(step_size_up, "step_size_up", who)
        self.step_size_down = (self.step_size_up if step_size_down is None else
                               nonneg_int(step_size_down, "step_size_down", who))
        if not isinstance(mode, str) or mode not in _MODES:
            raise ValueError(f"CyclicLR: expected mode 'triangular', 'triangular2' or "
                             f"'exp_range', got {mode!r}")
        self.mode = mode
        # gamma ** t stays in [0, 1], as PyTorch asks of every scale
        self.gamma = in_range(gamma, "gamma", who, 0.0, 1.0, low_open=True)
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"CyclicLR: expected scale_fn as a function of one int, or None, "
                            f"got {type(scale_fn).__name__} {scale_fn!r:.60}")
        self.scale_fn = scale_fn
        if not isinstance(scale_mode, str) or scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"CyclicLR: expected scale_mode 'cycle' or 'iterations', got "
                             f"{scale_mode!r}")
        if scale_fn is None:  # the mode decides, as in PyTorch
            scale_mode = "iterations" if mode == "exp_range" else "cycle"
        self.scale_mode = scale_mode
        self.cycle_momentum = boolean(cycle_momentum, "cycle_momentum", who)
        self.base_momentum = in_range(base_momentum, "base_momentum", who, -math.inf)
        self.max_momentum = in_range(max_momentum, "max_momentum", who, -math.inf)

    @property
    def lr(self) -> float:  # type: ignore[override]
        """The initial rate, ``base_lr`` (every Schedule has ``lr``; the first group's with
        one ``base_lr`` per group)."""
        return _of_group(self.base_lr, 0)

    def _height(self, step: int) -> tuple[float, float]:
        """``(h, scale)`` of ``step``, computed in PyTorch's order (the same floats)."""
        t = nonneg_int(step, "step", "CyclicLR")
        size = float(self.step_size_up + self.step_size_down)
        ratio = self.step_size_up / size
        cycle = math.floor(1 + t / size)
        x = 1.0 + t / size - cycle
        h = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        at = cycle if self.scale_mode == "cycle" else t
        if self.scale_fn is not None:
            return h, self.scale_fn(at)
        if self.mode == "triangular":
            return h, 1.0
        if self.mode == "triangular2":  # PyTorch's 1 / 2.0 ** (at - 1) to the bit, without
            return h, 0.5 ** (at - 1)  # its OverflowError from cycle 1025 on (here 0 from 1076)
        return h, self.gamma ** at

    def __call__(self, step: int, *, group: int = 0) -> float:
        """The rate of ``step`` (of parameter group ``group`` with rates per group)."""
        h, scale = self._height(step)
        low, high = _of_group(self.base_lr, group), _of_group(self.max_lr, group)
        return low + (high - low) * h * scale

    def group_rates(self, step: int, scales: list[float]) -> list[float] | None:
        """As PyTorch's ``CyclicLR``: one ``base_lr`` and ``max_lr`` give every group the
        same rate (whatever its own lr was); lists, each group its own range."""
        _check_groups(self, len(scales))
        return [self(step, group=i if self.group_count() else 0) for i in range(len(scales))]

    def group_count(self) -> int | None:
        return _group_count(self.base_lr, self.max_lr)

    def momentum(self, step: int) -> float | None:
        """The momentum (or beta1) of ``step``; None without ``cycle_momentum``."""
        if not self.cycle_momentum:
            return None
        h, scale = self._height(step)
        return self.max_momentum - (self.max_momentum - self.base_momentum) * h * scale

    def momentum_bounds(self) -> tuple[float, ...]:
        return (self.base_momentum, self.max_momentum) if self.cycle_momentum else ()


class SequentialLR(Schedule):
    """One schedule after another, PyTorch's ``SequentialLR``: ``schedulers[i]`` from
    ``milestones[i - 1]`` on, counting its own epochs from 0 there::

        i = number of milestones <= epoch
        lr_epoch = schedulers[i](epoch - milestones[i - 1])      (epoch itself for i = 0)

    All of them count epochs, or all count optimizer steps (:class:`OneCycleLR`,
    :class:`CyclicLR`); each holds its own initial rate, where PyTorch's share the
    optimizer's. A schedule that sets the momentum sets it while it runs, from its own
    settings: PyTorch's ``CyclicLR`` and ``OneCycleLR`` write their momentum and its
    bounds into the optimizer when built, so there a later one's settings already hold
    while an earlier one runs (the two differ only in such a sequence).

    Args:
        schedulers: The backprop schedules, in order (at least one); a plain function
            ``epoch -> lr`` (the rate itself, counting its own epochs from 0) counts epochs.
        milestones: The epochs (or steps) at which the next one takes over: one fewer
            than the schedules, ints >= 0 in increasing order.
    """

    @classmethod
    def _refuse_optimizer(cls, optimizer: Any) -> None:
        _listed(optimizer, ())

    def __init__(self, schedulers: Any, milestones: Any) -> None:
        self.schedulers, self.milestones = _listed(schedulers, milestones)
        if not self.schedulers or len(self.milestones) != len(self.schedulers) - 1:
            raise ValueError(f"SequentialLR: expected at least one scheduler and one milestone "
                             f"fewer than schedulers, got {len(self.schedulers)} schedulers "
                             f"and milestones {self.milestones}")
        if self.milestones != sorted(self.milestones):
            raise ValueError(f"SequentialLR: expected milestones in order (none before the "
                             f"one listed ahead of it), got {self.milestones}")
        counts = {c for s in self.schedulers if (c := s.group_count()) is not None}
        if len(counts) > 1:
            raise ValueError(f"SequentialLR: expected schedules with rates for as many "
                             f"parameter groups, got {sorted(counts)} groups")
        if len({s.per_step for s in self.schedulers}) > 1:
            raise ValueError(f"SequentialLR: expected schedules that all count epochs or all "
                             f"count optimizer steps, got {self.schedulers}")
        self._check_lengths()

    def _check_lengths(self) -> None:
        """A schedule of a fixed number of steps (OneCycleLR) must last until the next one."""
        for s, start, end in zip(self.schedulers, [0, *self.milestones], self.milestones,
                                 strict=False):
            total = getattr(s, "total_steps", None)
            if total is not None and end - start - 1 > total:
                raise ValueError(f"SequentialLR: {s!r} runs up to its step {total}, and "
                                 f"would run from step {start} to step {end - 1} here (its "
                                 f"steps 0 to {end - 1 - start})")

    @property
    def per_step(self) -> bool:  # type: ignore[override]
        """Whether the schedules count optimizer steps (all alike)."""
        return self.schedulers[0].per_step

    @property
    def lr(self) -> float:  # type: ignore[override]
        """The first schedule's initial rate (every Schedule has ``lr``)."""
        return self.schedulers[0].lr

    @property
    def total_steps(self) -> int | None:
        """The steps the last schedule lasts (OneCycleLR's), counted from step 0; else None."""
        total = getattr(self.schedulers[-1], "total_steps", None)
        return None if total is None else total + ([0, *self.milestones][-1])

    def _active(self, epoch: int) -> tuple[Schedule, int]:
        epoch = self._epoch(epoch)
        i = bisect.bisect_right(self.milestones, epoch)
        return self.schedulers[i], epoch - (self.milestones[i - 1] if i else 0)

    def __call__(self, epoch: int) -> float:
        schedule, local = self._active(epoch)
        return schedule(local)

    def group_rates(self, epoch: int, scales: list[float]) -> list[float] | None:
        """The running schedule's rates for the groups."""
        schedule, local = self._active(epoch)
        return schedule.group_rates(local, scales)

    def group_count(self) -> int | None:
        """The schedules' number of groups with rates of their own (checked alike)."""
        return next((c for s in self.schedulers if (c := s.group_count()) is not None), None)

    def momentum(self, epoch: int) -> float | None:
        """The running schedule's momentum (None: leave it)."""
        schedule, local = self._active(epoch)
        return schedule.momentum(local)

    def momentum_bounds(self) -> tuple[float, ...]:
        bounds = [b for s in self.schedulers for b in s.momentum_bounds()]
        return (min(bounds), max(bounds)) if bounds else ()


def _listed(schedulers: Any, milestones: Any) -> tuple[list[Schedule], list[int]]:
    """SequentialLR's arguments as lists of schedules and of ints >= 0, or a TypeError
    (PyTorch's ``SequentialLR(optimizer, ...)`` form is told ours)."""
    if hasattr(schedulers, "step") and hasattr(schedulers, "params"):
        raise TypeError(f"SequentialLR: expected a list of backprop schedules, got the "
                        f"optimizer {type(schedulers).__name__}; a backprop schedule maps epoch "
                        "(or step) -> lr and goes to fit in a callback: callbacks=["
                        "bp.LearningRateScheduler(bp.SequentialLR([bp.ConstantLR(0.1, 0.1, 5), "
                        "bp.ExponentialLR(0.1, 0.9)], milestones=[5]))]")
    if not (listlike(schedulers) and listlike(milestones)):
        raise TypeError(f"SequentialLR: expected schedulers and milestones as lists, got "
                        f"{schedulers!r:.60} and {milestones!r:.60}")
    listed = [_Function(s) if callable(s) and not isinstance(s, Schedule) else s
              for s in schedulers]  # once: it may be an iterator
    for s in listed:
        if not isinstance(s, Schedule):
            raise TypeError(f"SequentialLR: expected each scheduler to be a backprop schedule "
                            f"(bp.StepLR(0.1, ...), ...) or a function epoch -> lr, got "
                            f"{type(s).__name__} {s!r:.60}")
    return listed, [nonneg_int(m, "each milestone", "SequentialLR") for m in milestones]

