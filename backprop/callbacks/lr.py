"""Callbacks that set the optimizer's learning rate: from a schedule, or on a plateau."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import numpy as np

from .. import schedules
from .._validate import boolean, caller_level
from .base import Callback, _resolve_mode, warn_nan_once


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr = schedule(epoch)`` before every epoch and log it as ``"lr"``;
    or ``schedule(step)`` before every batch, for a schedule of optimizer steps.

    Args:
        schedule: ``schedule(epoch) -> lr`` with epochs counted from 0, e.g.
            ``bp.StepLR(0.1, step_size=10)`` or any function; or, as in Keras,
            ``schedule(epoch, lr) -> lr`` given the current rate (any function that takes
            two positional arguments, e.g. ``lambda epoch, lr: lr * 0.9``, or
            ``def schedule(epoch, lr=0.1)``: Keras passes the rate whenever it can).
        per_step: Call the schedule before every batch with the optimizer's step count
            (``optimizer.steps``, from 0; it carries on across fits and resumes), as a
            PyTorch scheduler stepped after every batch. Default: the schedule's own
            ``per_step`` (True for :class:`~backprop.schedules.OneCycleLR` and
            :class:`~backprop.schedules.CyclicLR`, False for the epoch schedules and for
            functions). The epoch's logged ``"lr"`` is then its
            last batch's.

    With parameter groups each group gets the rate PyTorch's scheduler of the same name
    gives it: ``lr`` times the group's scale for the multiplicative schedules; from the
    group's own base down to the shared ``eta_min`` for cosine annealing; the same rate
    for every group from CyclicLR and OneCycleLR given one rate, each group its own cycle
    given a list (see :meth:`~backprop.schedules.Schedule.group_rates`).

    ``schedule(epoch)`` (or ``schedule(step)``) sets the rate over whatever another
    callback set, so a :class:`ReduceLROnPlateau` beside it is undone at the next epoch
    (as in Keras; PyTorch's epoch schedulers multiply the current rate instead): fit warns,
    and a Keras ``schedule(epoch, lr)``, given the current rate, composes with it.

    A backprop schedule whose ``momentum(t)`` gives a number (``OneCycleLR``/``CyclicLR``
    with ``cycle_momentum=True``) also sets the optimizer's ``momentum`` (SGD, RMSProp) or
    ``beta1`` (the Adam family), as PyTorch does.
    """

    _adds_log_keys = ("lr",)

    def __init__(self, schedule: Any, *, per_step: bool | None = None) -> None:
        if not callable(schedule):
            hint = (" (for the plateau rule, use the callback bp.ReduceLROnPlateau instead)"
                    if isinstance(schedule, schedules.ReduceLROnPlateau) else "")
            raise TypeError("LearningRateScheduler: expected a callable schedule(epoch) -> lr, "
                            f"got {type(schedule).__name__}{hint}")
        own = bool(getattr(schedule, "per_step", False))
        if per_step is None:
            per_step = own
        elif boolean(per_step, "per_step", "LearningRateScheduler") is False and own:
            raise ValueError(f"LearningRateScheduler: {schedule!r} counts optimizer steps, "
                             "not epochs; leave per_step at its default (True for it)")
        self.schedule, self.per_step = schedule, bool(per_step)
        takes = _positional(schedule)
        if takes == 0:  # (fit would fail on its first call with a bare TypeError)
            raise TypeError(f"LearningRateScheduler: expected schedule(epoch) -> lr or Keras' "
                            f"schedule(epoch, lr) -> lr, got {schedule!r}, which takes no "
                            f"positional argument")
        self._takes_lr = takes is not None and takes >= 2
        self._momentum = schedule.momentum if isinstance(schedule, schedules.Schedule) else None
        self._checked = False
        # an epoch schedule's batch hook does nothing: fit skips it (unless a subclass
        # writes its own)
        ours = type(self).on_train_batch_begin is LearningRateScheduler.on_train_batch_begin
        self._idle_hooks = ("on_train_batch_begin",) if ours and not self.per_step else ()

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        if (self.fit_state.fresh and isinstance(self.schedule, schedules.Schedule)
                and not self.per_step
                and not math.isclose(self.schedule.lr, self.optimizer.lr, rel_tol=1e-6)):
            warnings.warn(
                f"LearningRateScheduler: {self.schedule!r} starts from "
                f"lr={self.schedule.lr:g}, the optimizer from lr={self.optimizer.lr:g}; the "
                f"schedule's rates are used from the first epoch on (a backprop schedule "
                f"holds its own initial rate, where PyTorch's StepLR takes the optimizer's). "
                f"Give both the same lr to silence this.", UserWarning, stacklevel=caller_level())
        self._checked = False
        self._check_momentum()
        if isinstance(self.schedule, schedules.Schedule):
            schedules._check_groups(self.schedule, len(self.optimizer.param_groups))
        others = [cb for cb in self.fit_state.user_callbacks if cb is not self
                  and "lr" in cb._adds_log_keys]
        if others and (self.per_step or not self._takes_lr):
            when = "batch" if self.per_step else "epoch"
            warnings.warn(f"LearningRateScheduler: {self.schedule!r} sets the rate before "
                          f"every {when}, over what {type(others[0]).__name__} sets (its "
                          f"changes last until then; PyTorch's StepLR and the like multiply "
                          f"the current rate, so theirs compound). A Keras-style "
                          f"schedule(epoch, lr) given the current rate composes with it, "
                          f"e.g. lambda epoch, lr: lr * 0.1 if epoch in (30, 60) else lr",
                          UserWarning, stacklevel=caller_level())

    def _check_momentum(self) -> None:
        """Refuse, before training, an optimizer whose momentum the schedule cannot set:
        none to set, or one that refuses the schedule's bounds."""
        bounds = (self.schedule.momentum_bounds()
                  if isinstance(self.schedule, schedules.Schedule) else ())
        if not bounds:
            return
        opt, who = self.optimizer, "LearningRateScheduler"
        name = self._momentum_name()
        check = type(opt)._checks.get(name)
        for value in bounds:
            try:
                if check is not None:
                    check(float(value), name, type(opt).__name__)
                if value == 0 and name in type(opt)._state_flags:
                    raise ValueError(f"{type(opt).__name__}: {name} 0 drops its buffer, which "
                                     "a cycle would then restart (PyTorch keeps it)")
            except (TypeError, ValueError) as err:
                raise ValueError(f"{who}: {self.schedule!r} takes {type(opt).__name__}'s "
                                 f"{name} to {value}, which it refuses: {err}") from None

    def _momentum_name(self) -> str:
        """The setting a scheduled momentum goes to: ``momentum`` (SGD, RMSProp) or
        ``beta1`` (Adam, AdamW, NAdam, Adamax, RAdam), as PyTorch's OneCycleLR picks."""
        hyper = getattr(self.optimizer, "_hyper", ())
        for name in ("momentum", "beta1"):
            if name in hyper:
                return name
        raise ValueError(f"LearningRateScheduler: {self.schedule!r} sets the momentum; "
                         f"expected an optimizer with momentum or beta1, got "
                         f"{type(self.optimizer).__name__} (build the schedule with "
                         "cycle_momentum=False)")

    def _check_steps(self) -> None:
        """Refuse a fit longer than the schedule at the first batch (a resumed
        checkpoint's step count is loaded by then), before its step."""
        opt, p = self.optimizer, self.params
        total = getattr(self.schedule, "total_steps", None)
        epochs = p["epochs"] - self.fit_state.epoch
        planned = opt.steps + epochs * p["steps"]
        if total is not None and planned > total:
            raise ValueError(
                f"LearningRateScheduler: {self.schedule!r} lasts {total} optimizer steps, "
                f"and this fit runs to step {planned} ({opt.steps} taken before it, then "
                f"{epochs} epochs of {p['steps']} batches); build it with "
                f"total_steps={planned}")

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings (its repr; a function's is not kept) and ``per_step``:
        resuming with others warns."""
        own = isinstance(self.schedule, schedules.Schedule)
        return {"schedule": repr(self.schedule) if own else None, "per_step": self.per_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Warn when the checkpointed run had another schedule: training goes on with this
        one's rates from the checkpoint's step (PyTorch's scheduler would take the saved
        settings instead)."""
        saved = self.state_dict()
        saved.update({k: state[k] for k in saved if k in state})  # older checkpoints: {}
        if not isinstance(saved["schedule"], (str, type(None))) or not isinstance(
                saved["per_step"], bool):
            raise ValueError(f"LearningRateScheduler: expected a saved schedule (a string "
                             f"or None) and per_step (a bool), got {state!r}")
        now = self.state_dict()
        changed = [f"{k}: {saved[k]} -> {now[k]}" for k in now
                   if saved[k] != now[k] and None not in (saved[k], now[k])]
        if changed:
            warnings.warn(f"LearningRateScheduler: resuming with another schedule than the "
                          f"checkpointed run ({'; '.join(changed)}): the rates follow this "
                          "one from the checkpoint's step on", UserWarning,
                          stacklevel=caller_level())

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        if not self.per_step:
            self._set(epoch)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per_step:
            if not self._checked:
                self._check_steps()
                self._checked = True
            self._set(self.optimizer.steps)

    def _set(self, t: int) -> None:
        """Set the rate (and momentum, if the schedule gives one) of epoch or step ``t``."""
        args = (t, self.optimizer.lr) if self._takes_lr else (t,)
        lr = self.schedule(*args)
        if isinstance(lr, np.ndarray) and lr.ndim == 0 and lr.dtype.kind in "iuf":
            lr = lr.item()  # a 0-d array, as NumPy arithmetic on a scalar may give
        number = not isinstance(lr, bool) and isinstance(lr, (int, float, np.floating,
                                                              np.integer))
        if not number or not math.isfinite(lr) or lr < 0:  # 0 is allowed, as in PyTorch
            call = ", ".join(map(repr, args))
            raise (ValueError if number else TypeError)(
                f"LearningRateScheduler: expected schedule({call}) to return a finite number "
                f">= 0, got {lr!r}" + ("" if number else f" ({type(lr).__name__})"))
        self.optimizer.lr = float(lr)  # a Python float: never upcasts float32 (NEP 50)
        children = getattr(self.optimizer, "_children", None)
        if children and isinstance(self.schedule, schedules.Schedule):
            rates = self.schedule.group_rates(t, list(self.optimizer._scales))
            for child, rate in zip(children, rates or (), strict=False):
                child.lr = float(rate)  # the group's own rate; its scale stays
        momentum = self._momentum(t) if self._momentum is not None else None
        if momentum is not None:
            setattr(self.optimizer, self._momentum_name(), float(momentum))


def _positional(fn: Any) -> int | None:
    """How many positional arguments ``fn`` takes (2 for ``*args``; None when it cannot be
    told)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


class ReduceLROnPlateau(Callback):
    """Multiply ``optimizer.lr`` by ``factor`` when ``monitor`` stops improving.

    Wraps :class:`backprop.schedules.ReduceLROnPlateau` (PyTorch's rule) and logs
    the rate used in each epoch as ``"lr"`` (Keras 3 logs it as ``"learning_rate"``).

    Everything after ``monitor`` is keyword-only: Keras' positional order (``monitor,
    factor, patience, verbose``) would land in other settings.

    Args:
        monitor: Log key to watch.
        factor: Multiplier in (0, 1).
        patience: Epochs without improvement tolerated: the rate drops after
            ``patience + 1`` of them (PyTorch's rule; Keras drops it after ``patience``,
            so its ``patience=p`` is ``patience=p - 1`` here; its 0 acts as 1, so 0 here too).
        min_lr: Lower bound on the rate (with parameter groups, on each group's, as
            PyTorch's: a reduction brings every group's lr to ``max(lr · factor,
            min_lr)``, unless that moves it by ``eps`` or less); or a list of one bound
            per parameter group.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (by the name: min for losses and
            errors, max for accuracies, f1, auc...; other names need ``"min"`` or ``"max"``).
        threshold: Improvement that counts: relative (PyTorch's default), or absolute
            with ``threshold_mode="abs"`` (Keras' ``min_delta``).
        cooldown: Epochs to wait after a reduction before counting again (as PyTorch
            counts them: with Keras' ``cooldown`` too the two schedules differ).
        eps: A reduction smaller than this is skipped (PyTorch's ``eps``).
        threshold_mode: ``"rel"`` (default) or ``"abs"``, as in PyTorch.

    A fit from epoch 0 starts the count afresh (as Keras does); one that continues,
    ``fit(..., initial_epoch=k)`` with k > 0 or ``resume=``, carries on with the best
    value, bad epochs and cooldown it had, as a PyTorch scheduler object does across
    epochs. A loop of one-epoch fits passes ``initial_epoch=e, epochs=e + 1``.
    """

    _adds_log_keys = ("lr",)

    def __init__(self, monitor: str = "val_loss", *, factor: float = 0.1, patience: int = 10,
                 min_lr: float | list[float] = 0.0, mode: str = "auto", threshold: float = 1e-4,
                 cooldown: int = 0, eps: float = 1e-8, threshold_mode: str = "rel") -> None:
        if not isinstance(monitor, str):
            torch = (" (PyTorch's ReduceLROnPlateau(optimizer, ...): here it is a callback "
                     "that sets the rate of fit's optimizer, callbacks=[bp.ReduceLROnPlateau("
                     "'val_loss', factor=0.1, patience=10)])"
                     if hasattr(monitor, "step") and hasattr(monitor, "params") else "")
            raise TypeError(f"ReduceLROnPlateau: expected monitor to be a log key (str), "
                            f"got {monitor!r}{torch}")
        self.monitor = monitor
        self.plateau = schedules.ReduceLROnPlateau(
            _resolve_mode(mode, monitor, "ReduceLROnPlateau"), factor, patience, threshold,
            threshold_mode, cooldown, min_lr, eps)

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self._check_monitor(self.monitor)
        self.plateau.check_groups(len(self.optimizer.param_groups))
        self._nan_told = False
        if self.fit_state.fresh:
            fresh = math.inf if self.plateau.mode == "min" else -math.inf
            self.plateau.load_state_dict({"best": fresh, "bad_epochs": 0, "cooldown_left": 0})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = self._monitored(logs)
        warn_nan_once(self, value)
        opt = self.optimizer
        grouped = getattr(opt, "_children", None)  # parameter groups: each its own floor
        if not grouped:  # (a list: min_lr may be a list of one)
            opt.lr = float(self.plateau.step(value, [opt.lr])[0])
            return
        rates = self.plateau.step(value, [g["lr"] for g in opt.param_groups])
        if self.plateau.reduced:
            opt.lr = float(self.plateau.reduce(opt.lr))  # the groups' default, then each
            for group, lr in zip(opt.param_groups, rates, strict=True):
                group["lr"] = float(lr)

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)
