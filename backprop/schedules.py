"""Learning-rate schedules: ``schedule(epoch) -> lr``, epochs counted from 0.

Pass one to ``bp.LearningRateScheduler`` in ``fit(callbacks=...)``; it sets
``optimizer.lr`` at the start of every epoch. Each formula is the closed form of
the ``torch.optim.lr_scheduler`` class of the same name, stepped once per epoch.
:class:`OneCycleLR` and :class:`CyclicLR` count optimizer steps instead (``per_step``:
PyTorch steps them after every batch), and :class:`ReduceLROnPlateau` reacts to a
monitored value. :class:`CosineAnnealingWarmRestarts`, :class:`PolynomialLR`,
:class:`ConstantLR`, :class:`CyclicLR` and :class:`SequentialLR` live in
:mod:`._more_schedules`, :class:`OneCycleLR` in :mod:`._one_cycle`,
:class:`ReduceLROnPlateau` in :mod:`._plateau`; all are re-exported here.
"""

from __future__ import annotations

import bisect
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ._validate import in_range, listlike, nonneg_int, positive_int

__all__ = ["ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR",
           "ExponentialLR", "LinearWarmup", "MultiStepLR", "OneCycleLR", "PolynomialLR",
           "ReduceLROnPlateau", "Schedule", "SequentialLR", "StepLR"]


def _rate(lr: Any, name: str, who: str) -> float:
    """A rate >= 0, or an error; PyTorch's ``StepLR(optimizer, ...)`` form is told ours."""
    if _is_optimizer(lr):
        raise TypeError(f"{who}: expected the initial learning rate (a number), got the "
                        f"optimizer {type(lr).__name__}; a backprop schedule maps epoch (or "
                        f"step) -> lr and goes to fit in a callback: callbacks=["
                        f"bp.LearningRateScheduler(bp.{who}(0.1, ...))]")
    return in_range(lr, name, who, 0.0)  # >= 0, as optimizers' lr


def _rates(value: Any, name: str, who: str) -> float | tuple[float, ...]:
    """One rate, or one per parameter group (a non-empty list or tuple of rates), as
    PyTorch's ``CyclicLR`` and ``OneCycleLR`` take them."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{who}: expected {name} as a rate, or a list of one rate per "
                             f"parameter group, got an empty {type(value).__name__}")
        return tuple(_rate(v, name, who) for v in value)
    return _rate(value, name, who)


def _of_group(value: float | tuple[float, ...], i: int) -> float:
    """Group ``i``'s rate of :func:`_rates`' result (the one rate for every group)."""
    return value[i] if isinstance(value, tuple) else value


def _group_count(*values: float | tuple[float, ...]) -> int | None:
    """How many groups per-group rates are for (None: any), lengths checked together."""
    counts = {len(v) for v in values if isinstance(v, tuple)}
    return counts.pop() if counts else None


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

    def group_count(self) -> int | None:
        """The number of parameter groups the schedule holds one rate each for (a list of
        ``max_lr`` in ``OneCycleLR``, as PyTorch's); None: any number."""
        return None

    def momentum_bounds(self) -> tuple[float, ...]:
        """The least and greatest momentum that :meth:`momentum` gives (none by default):
        ``LearningRateScheduler`` checks them against the optimizer before training."""
        return ()

    def _epoch(self, epoch: int) -> int:
        """``epoch`` as an int >= 0, or a TypeError/ValueError naming the schedule."""
        if isinstance(epoch, (float, np.floating)):
            raise TypeError(f"{type(self).__name__}: expected epoch to be an int >= 0, got "
                            f"{epoch!r}: it counts whole epochs (for a rate per batch, "
                            "give its periods in batches and call it with the batch count, "
                            "as LearningRateScheduler(..., per_step=True) does)")
        return nonneg_int(epoch, "epoch", type(self).__name__)

    def __repr__(self) -> str:
        quiet = getattr(self, "_quiet_defaults", {})  # settings added later, at their default
        args = ", ".join(f"{k}={_setting(v)}" for k, v in vars(self).items()
                         if not k.startswith("_") and not (k in quiet and v == quiet[k]))
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
        return _decayed(self.lr, self.gamma, self._epoch(epoch) // self.step_size)


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
        if not listlike(milestones):
            raise TypeError(f"MultiStepLR: expected milestones as a list of epochs, got "
                            f"{milestones!r}")
        self.milestones = sorted(nonneg_int(m, "each milestone", "MultiStepLR")
                                 for m in milestones)
        self.gamma = in_range(gamma, "gamma", "MultiStepLR", 0.0, low_open=True)

    def __call__(self, epoch: int) -> float:
        return _decayed(self.lr, self.gamma,
                        bisect.bisect_right(self.milestones, self._epoch(epoch)))


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
        return _decayed(self.lr, self.gamma, self._epoch(epoch))


def _decayed(lr: float, gamma: float, k: int) -> float:
    """``lr * gamma ** k``. Where ``gamma ** k`` alone passes float's range (``gamma > 1``,
    a rate range test from 1e-7) and the rate need not, it is taken by logs, as PyTorch's
    step by step products reach it (``ExponentialLR(1e-7, 1.01)`` at 72,000: 1.38e+304);
    past the range it is inf, which fit's callbacks then refuse by name."""
    try:
        return lr * gamma ** k
    except OverflowError:  # gamma ** k > 1.8e308, so gamma > 1
        if lr == 0:
            return 0.0
        try:
            return math.exp(math.log(lr) + k * math.log(gamma))
        except OverflowError:
            return math.inf


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
    """Ramp linearly from ``start_factor * lr`` to ``end_factor * lr`` over ``warmup_epochs``
    (PyTorch's ``LinearLR``), then ``after``, or ``end_factor * lr`` from there on.

    ``lr * (start_factor + (end_factor - start_factor) * min(epoch, warmup_epochs) /
    warmup_epochs)``: a warm-up by default (``end_factor=1``), a linear decay with
    ``start_factor=1, end_factor=0.1`` (``LinearLR(opt, 1.0, 0.1, total_iters)``).

    Args:
        lr: The base rate (reached at the end of a warm-up).
        warmup_epochs: Length of the ramp (PyTorch's ``total_iters``).
        start_factor: Fraction of ``lr`` at epoch 0, in (0, 1] (PyTorch's default 1/3).
        after: Optional schedule that takes over, called with ``epoch - warmup_epochs``.
        end_factor: Fraction of ``lr`` at the end of the ramp, in [0, 1] (default 1).
    """

    _quiet_defaults: ClassVar[dict[str, float]] = {"end_factor": 1.0}  # (older checkpoints)

    def __init__(self, lr: float, warmup_epochs: int, start_factor: float = 1 / 3,
                 after: Schedule | None = None, end_factor: float = 1.0) -> None:
        super().__init__(lr)
        self.warmup_epochs = positive_int(warmup_epochs, "warmup_epochs", "LinearWarmup")
        self.start_factor = in_range(start_factor, "start_factor", "LinearWarmup", 0.0, 1.0,
                                     low_open=True)
        self.end_factor = in_range(end_factor, "end_factor", "LinearWarmup", 0.0, 1.0)
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
            return self.lr * (self.start_factor + (self.end_factor - self.start_factor)
                              * epoch / self.warmup_epochs)
        if self.after:
            return self.after(epoch - self.warmup_epochs)
        return self.lr * self.end_factor

    def group_rates(self, epoch: int, scales: list[float]) -> list[float] | None:
        """The warm-up scales every group; then ``after``'s rule for groups, if it has one."""
        epoch = self._epoch(epoch)
        if epoch < self.warmup_epochs or not isinstance(self.after, Schedule):
            return None
        return self.after.group_rates(epoch - self.warmup_epochs, scales)


class _Function(Schedule):
    """A function ``epoch -> lr`` in :class:`SequentialLR` (the rate itself, as
    ``LearningRateScheduler`` takes one; PyTorch's ``LambdaLR`` returns a factor)."""

    def __init__(self, function: Callable[[int], float]) -> None:
        try:
            inspect.signature(function).bind(0)
        except TypeError:
            raise TypeError(f"SequentialLR: expected each function to take one argument, "
                            f"the epoch (epoch -> lr), got {function!r:.60} (Keras' "
                            f"schedule(epoch, lr) goes to LearningRateScheduler alone)") from None
        except ValueError:  # no signature to read (a builtin): taken as it is
            pass
        self.function = function  # no rate of its own: lr reads the function's at epoch 0

    @property
    def lr(self) -> float:  # type: ignore[override]
        return float(self(0))

    def __repr__(self) -> str:  # the function itself, as a list of schedules shows it
        return getattr(self.function, "__qualname__", repr(self.function))

    def __call__(self, epoch: int) -> float:
        return self.function(self._epoch(epoch))


def _check_groups(schedule: Schedule, groups: int) -> None:
    """A ValueError unless ``schedule``'s per-group rates (if any) are for ``groups``."""
    count = schedule.group_count()
    if count is not None and count != groups:
        raise ValueError(f"{schedule!r}: expected the optimizer to have {count} parameter "
                         f"groups, one for each rate given, got {groups}")


# the rest of PyTorch's schedules, re-exported (imported last: they build on Schedule)
from ._more_schedules import (  # noqa: E402, F401
    ConstantLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    PolynomialLR,
    SequentialLR,
)
from ._one_cycle import OneCycleLR  # noqa: E402, F401
from ._plateau import ReduceLROnPlateau  # noqa: E402, F401


def callback_hint(cb: Any) -> str:
    """What a schedule given to ``fit`` as a callback wants instead (or "")."""
    if isinstance(cb, ReduceLROnPlateau):
        return (" (backprop.schedules.ReduceLROnPlateau is the rule; the callback that "
                "applies it in fit is bp.ReduceLROnPlateau)")
    if isinstance(cb, Schedule):
        return f" (a schedule goes in bp.LearningRateScheduler({cb!r}))"
    return ""
