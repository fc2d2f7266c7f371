"""ReduceLROnPlateau's rule, PyTorch's (re-exported by :mod:`backprop.schedules`; the
callback that applies it in ``fit`` is :class:`backprop.callbacks.ReduceLROnPlateau`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validate import in_range, nonneg_int
from .schedules import Schedule


class ReduceLROnPlateau:
    """Divide the rate by ``1 / factor`` once a monitored value stops improving.

    Same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau``: an improvement is
    ``value < best * (1 - threshold)`` in ``"min"`` mode with ``threshold_mode="rel"``
    (``value < best - threshold`` with ``"abs"``; ``"max"`` mode mirrors both);
    after ``patience`` epochs without one the rate is multiplied by ``factor``
    (never below ``min_lr``), then ``cooldown`` epochs pass before counting again.
    A reduction smaller than ``eps`` is skipped (the rate stays), as in PyTorch.

    Args:
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        factor: Multiplier of the rate, in (0, 1).
        patience: Epochs without improvement tolerated (the rate drops after
            ``patience + 1``).
        threshold: Improvement that counts, >= 0: relative, or absolute with
            ``threshold_mode="abs"``.
        threshold_mode: ``"rel"`` or ``"abs"``.
        cooldown: Epochs to wait after a reduction before counting again.
        min_lr: Lower bound on the rate, >= 0, or a list of one bound per parameter
            group (as PyTorch's): :meth:`step` then takes and returns one rate per group.
        eps: A reduction smaller than this is skipped.

    :meth:`step` takes the epoch's value and the current rate and returns the next one;
    the callback :class:`backprop.callbacks.ReduceLROnPlateau` applies it in ``fit``.
    """

    def __init__(self, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list[float] = 0.0, eps: float = 1e-8) -> None:
        if not isinstance(mode, str) or mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: expected mode 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.factor = in_range(factor, "factor", "ReduceLROnPlateau", 0.0, 1.0,
                               low_open=True, high_open=True)
        self.patience = nonneg_int(patience, "patience", "ReduceLROnPlateau")
        self.threshold = in_range(threshold, "threshold", "ReduceLROnPlateau", 0.0)
        if not isinstance(threshold_mode, str) or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: expected threshold_mode 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = nonneg_int(cooldown, "cooldown", "ReduceLROnPlateau")
        if isinstance(min_lr, (list, tuple)) and not min_lr:
            raise ValueError("ReduceLROnPlateau: expected min_lr as a number, or a list of one "
                             "per parameter group, got an empty list")
        self.min_lr = (tuple(in_range(v, "min_lr", "ReduceLROnPlateau", 0.0) for v in min_lr)
                       if isinstance(min_lr, (list, tuple)) else
                       in_range(min_lr, "min_lr", "ReduceLROnPlateau", 0.0))
        self.eps = in_range(eps, "eps", "ReduceLROnPlateau", 0.0)
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0
        self.cooldown_left = 0
        self._reduced = False  # whether the last step reduced (not shown by repr)

    __repr__ = Schedule.__repr__  # the settings, then the progress (best, bad epochs...)

    def _improved(self, value: float) -> bool:
        sign = 1.0 if self.mode == "min" else -1.0  # max mode: the same rule on -value
        if self.threshold_mode == "abs":
            return sign * value < sign * self.best - self.threshold
        if self.mode == "min":
            return value < self.best * (1 - self.threshold)
        return value > self.best * (1 + self.threshold)

    def step(self, value: float, lr: float | list[float]) -> float | list[float]:
        """Record this epoch's monitored ``value`` (a number, or anything ``float`` takes,
        as PyTorch's ``float(metrics)``); return the rate to use next (given a list of
        rates, one per parameter group, a list: each group floored at its ``min_lr``)."""
        value = _monitored(value)
        if isinstance(lr, (list, tuple)):
            rates = [in_range(r, "lr", "ReduceLROnPlateau.step", 0.0) for r in lr]
            self.check_groups(len(rates))
        else:
            lr = in_range(lr, "lr", "ReduceLROnPlateau.step", 0.0)  # the rate being reduced
        if self._improved(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        self._reduced = self.bad_epochs > self.patience
        if self._reduced:
            self.bad_epochs, self.cooldown_left = 0, self.cooldown
            if isinstance(lr, (list, tuple)):
                return [self.reduce(r, i) for i, r in enumerate(rates)]
            return self.reduce(lr)
        return list(rates) if isinstance(lr, (list, tuple)) else lr

    def check_groups(self, groups: int) -> None:
        """A ValueError unless a list ``min_lr`` has one bound for each of ``groups``."""
        if isinstance(self.min_lr, tuple) and len(self.min_lr) != groups:
            raise ValueError(f"ReduceLROnPlateau: expected one min_lr per parameter group, "
                             f"got {len(self.min_lr)} values of min_lr for {groups} "
                             f"group{'s' * (groups != 1)}")

    @property
    def reduced(self) -> bool:
        """Whether the last :meth:`step` reduced the rate (or would have, but for ``eps``)."""
        return self._reduced

    def reduce(self, lr: float, group: int | None = None) -> float:
        """``lr`` times ``factor``, floored at ``min_lr`` (``group``'s, when one per group;
        the least of them for none); unchanged when that moves it by ``eps`` or less
        (PyTorch's rule, applied to each parameter group)."""
        floor = self.min_lr if not isinstance(self.min_lr, tuple) else \
            min(self.min_lr) if group is None else self.min_lr[group]
        new_lr = max(lr * self.factor, floor)
        return new_lr if lr - new_lr > self.eps else lr

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "bad_epochs": self.bad_epochs,
                "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.cooldown_left = int(state["cooldown_left"])


def _monitored(value: Any) -> float:
    """The monitored ``value`` as a float, or a TypeError naming the rule: a one-element
    array counts as its element, a string as PyTorch's ``float(metrics)`` reads it."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise TypeError(f"ReduceLROnPlateau: expected the monitored value as one number, "
                            f"got an array of shape {value.shape}")
        value = value.reshape(()).item()
    if hasattr(value, "detach"):  # a torch scalar that needs grad: float() would warn
        value = value.detach()
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # (torch: a tensor of several numbers)
        raise TypeError(f"ReduceLROnPlateau: expected the monitored value as a number, got "
                        f"{value!r}") from None
