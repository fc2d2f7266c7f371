"""Learning-rate schedules: ``schedule(epoch) -> lr``, epochs counted from 0.

Pass one to ``bp.LearningRateScheduler`` in ``fit(callbacks=...)``; it sets
``optimizer.lr`` at the start of every epoch. Each formula is the closed form of
the ``torch.optim.lr_scheduler`` class of the same name, stepped once per epoch.
:class:`ReduceLROnPlateau` reacts to a monitored value instead of the epoch.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from ._validate import in_range, nonneg_int, positive_int


class Schedule:
    """Base class: ``__call__(epoch) -> lr`` from the initial ``lr``."""

    def __init__(self, lr: float) -> None:
        who = type(self).__name__
        if hasattr(lr, "step") and hasattr(lr, "params"):  # StepLR(opt, ...): PyTorch's form
            raise TypeError(f"{who}: expected the initial learning rate (a number), got the "
                            f"optimizer {type(lr).__name__}; a backprop schedule maps epoch "
                            f"-> lr and goes to fit in a callback: callbacks=["
                            f"bp.LearningRateScheduler(bp.{who}(0.1, ...))]")
        self.lr = in_range(lr, "lr", who, 0.0)  # >= 0, as optimizers' lr

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def _epoch(self, epoch: int) -> int:
        """``epoch`` as an int >= 0, or a TypeError/ValueError naming the schedule."""
        return nonneg_int(epoch, "epoch", type(self).__name__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class StepLR(Schedule):
    """``lr * gamma ** (epoch // step_size)``."""

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
    """``lr * gamma ** epoch``."""

    def __init__(self, lr: float, gamma: float) -> None:
        super().__init__(lr)
        self.gamma = in_range(gamma, "gamma", "ExponentialLR", 0.0, low_open=True)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma ** self._epoch(epoch)


class CosineAnnealingLR(Schedule):
    """``eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        super().__init__(lr)
        self.T_max = positive_int(T_max, "T_max", "CosineAnnealingLR")
        self.eta_min = in_range(eta_min, "eta_min", "CosineAnnealingLR", 0.0)

    def __call__(self, epoch: int) -> float:
        epoch = self._epoch(epoch)
        return self.eta_min + (self.lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


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
        self.after = after

    def __call__(self, epoch: int) -> float:
        epoch = self._epoch(epoch)
        if epoch < self.warmup_epochs:
            frac = self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs
            return self.lr * frac
        return self.after(epoch - self.warmup_epochs) if self.after else self.lr


class ReduceLROnPlateau:
    """Divide the rate by ``1 / factor`` once a monitored value stops improving.

    Same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau``: an improvement is
    ``value < best * (1 - threshold)`` in ``"min"`` mode with ``threshold_mode="rel"``
    (``value < best - threshold`` with ``"abs"``; ``"max"`` mode mirrors both);
    after ``patience`` epochs without one the rate is multiplied by ``factor``
    (never below ``min_lr``), then ``cooldown`` epochs pass before counting again.
    A reduction smaller than ``eps`` is skipped (the rate stays), as in PyTorch.
    """

    def __init__(self, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: expected mode 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.factor = in_range(factor, "factor", "ReduceLROnPlateau", 0.0, 1.0,
                               low_open=True, high_open=True)
        self.patience = nonneg_int(patience, "patience", "ReduceLROnPlateau")
        self.threshold = in_range(threshold, "threshold", "ReduceLROnPlateau", 0.0)
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: expected threshold_mode 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = nonneg_int(cooldown, "cooldown", "ReduceLROnPlateau")
        self.min_lr = in_range(min_lr, "min_lr", "ReduceLROnPlateau", 0.0)
        self.eps = in_range(eps, "eps", "ReduceLROnPlateau", 0.0)
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0
        self.cooldown_left = 0

    def _improved(self, value: float) -> bool:
        sign = 1.0 if self.mode == "min" else -1.0  # max mode: the same rule on -value
        if self.threshold_mode == "abs":
            return sign * value < sign * self.best - self.threshold
        if self.mode == "min":
            return value < self.best * (1 - self.threshold)
        return value > self.best * (1 + self.threshold)

    def step(self, value: float, lr: float) -> float:
        """Record this epoch's monitored ``value``; return the rate to use next."""
        if self._improved(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            self.bad_epochs, self.cooldown_left = 0, self.cooldown
            new_lr = max(lr * self.factor, self.min_lr)
            return new_lr if lr - new_lr > self.eps else lr
        return lr

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "bad_epochs": self.bad_epochs,
                "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.cooldown_left = int(state["cooldown_left"])
