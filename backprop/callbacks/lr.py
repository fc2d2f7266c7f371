"""Callbacks that set the optimizer's learning rate: from a schedule, or on a plateau."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import numpy as np

from .. import schedules
from .._validate import caller_level
from .base import Callback, _resolve_mode


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr = schedule(epoch)`` before every epoch and log it as ``"lr"``.

    Args:
        schedule: ``schedule(epoch) -> lr`` with epochs counted from 0, e.g.
            ``bp.StepLR(0.1, step_size=10)`` or any function; or, as in Keras,
            ``schedule(epoch, lr) -> lr`` given the current rate (any function that takes
            two positional arguments, e.g. ``lambda epoch, lr: lr * 0.9``, or
            ``def schedule(epoch, lr=0.1)``: Keras passes the rate whenever it can).
    """

    _adds_log_keys = ("lr",)

    def __init__(self, schedule: Any) -> None:
        if not callable(schedule):
            hint = (" (for the plateau rule, use the callback bp.ReduceLROnPlateau instead)"
                    if isinstance(schedule, schedules.ReduceLROnPlateau) else "")
            raise TypeError("LearningRateScheduler: expected a callable schedule(epoch) -> lr, "
                            f"got {type(schedule).__name__}{hint}")
        self.schedule = schedule
        self._takes_lr = _positional(schedule) >= 2

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        base = self.schedule.lr if isinstance(self.schedule, schedules.Schedule) else None
        if (self.fit_state.fresh and base is not None
                and not math.isclose(base, self.optimizer.lr, rel_tol=1e-6)):
            warnings.warn(
                f"LearningRateScheduler: {self.schedule!r} starts from lr={base:g}, the "
                f"optimizer from lr={self.optimizer.lr:g}; the schedule's rates are used from "
                f"the first epoch on (a backprop schedule holds its own initial rate, where "
                f"PyTorch's StepLR takes the optimizer's). Give both the same lr to silence "
                f"this.", UserWarning, stacklevel=caller_level())

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        args = (epoch, self.optimizer.lr) if self._takes_lr else (epoch,)
        lr = self.schedule(*args)
        if isinstance(lr, np.ndarray) and lr.ndim == 0 and lr.dtype.kind in "iuf":
            lr = lr.item()  # a 0-d array, as NumPy arithmetic on a scalar may give
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
                or not math.isfinite(lr) or lr < 0:  # 0 is allowed, as in PyTorch
            call = ", ".join(map(repr, args))
            raise ValueError(f"LearningRateScheduler: expected schedule({call}) to return a "
                             f"finite number >= 0, got {lr!r}")
        self.optimizer.lr = float(lr)  # a Python float: never upcasts float32 (NEP 50)


def _positional(fn: Any) -> int:
    """How many positional arguments ``fn`` takes (2 for ``*args``; 0 when it cannot be
    told)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return 0
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


class ReduceLROnPlateau(Callback):
    """Multiply ``optimizer.lr`` by ``factor`` when ``monitor`` stops improving.

    Wraps :class:`backprop.schedules.ReduceLROnPlateau` (PyTorch's rule) and logs
    the rate used in each epoch as ``"lr"``.

    Args:
        monitor: Log key to watch.
        factor: Multiplier in (0, 1).
        patience: Epochs without improvement before reducing.
        min_lr: Lower bound on the rate.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (by the name: min for losses and
            errors, max for accuracies, f1, auc...; other names need ``"min"`` or ``"max"``).
        threshold: Improvement that counts: relative (PyTorch's default), or absolute
            with ``threshold_mode="abs"`` (Keras' ``min_delta``).
        cooldown: Epochs to wait after a reduction before counting again.
        eps: A reduction smaller than this is skipped (PyTorch's ``eps``).
        threshold_mode: ``"rel"`` (default) or ``"abs"``, as in PyTorch.

    A fit from epoch 0 starts the count afresh (as Keras does); one that continues,
    ``fit(..., initial_epoch=k)`` with k > 0 or ``resume=``, carries on with the best
    value, bad epochs and cooldown it had, as a PyTorch scheduler object does across
    epochs. A loop of one-epoch fits passes ``initial_epoch=e, epochs=e + 1``.
    """

    _adds_log_keys = ("lr",)

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_lr: float = 0.0, mode: str = "auto", threshold: float = 1e-4,
                 cooldown: int = 0, eps: float = 1e-8, threshold_mode: str = "rel") -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"ReduceLROnPlateau: expected monitor to be a log key (str), "
                            f"got {monitor!r}")
        self.monitor = monitor
        self.plateau = schedules.ReduceLROnPlateau(
            _resolve_mode(mode, monitor, "ReduceLROnPlateau"), factor, patience, threshold,
            threshold_mode, cooldown, min_lr, eps)

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self._check_monitor(self.monitor)
        if self.fit_state.fresh:
            fresh = math.inf if self.plateau.mode == "min" else -math.inf
            self.plateau.load_state_dict({"best": fresh, "bad_epochs": 0, "cooldown_left": 0})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.optimizer.lr = float(self.plateau.step(self._monitored(logs),
                                                    self.optimizer.lr))

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)
