"""Callbacks: code that ``fit`` runs at the start and end of training, epochs and batches.

Subclass :class:`Callback` and override the hooks you need; ``fit`` calls a
batch hook only if a callback overrides it, so unused hooks cost nothing in
the training loop. Before ``on_train_begin`` every callback gets four
attributes: ``model``, ``optimizer``, ``history`` (the :class:`History` being
filled) and ``fit_state`` (the running fit: ``epoch``, ``stop``,
``log_keys``, ``training_state()``). To end training after the current batch,
set ``self.fit_state.stop = True``.

Order: callbacks run in the order given, then :class:`History` records the
epoch's logs, then :class:`ModelCheckpoint` saves — so a checkpoint holds the
state at the very end of the epoch, every other callback's changes included.
"""

from __future__ import annotations

import math
import os
import string
from pathlib import Path
from typing import Any

import numpy as np

from . import schedules
from ._validate import boolean, in_range, nonneg_int

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "ReduceLROnPlateau"]


class Callback:
    """Base class: every hook does nothing.

    Hooks get ``logs``, a dict of Python floats. At epoch end it holds ``"loss"``,
    each metric, and ``"val_loss"``/``"val_<metric>"`` with validation data; a
    callback may add keys (``"lr"``), which History then records. Batch hooks get
    ``{"loss": batch_loss, "size": batch_size}`` at the end and ``{}`` at the
    beginning.

    ``state_dict()``/``load_state_dict()`` carry what a callback needs to resume
    from a checkpoint (JSON-able values only).
    """

    _order = 0  # History runs at 1, ModelCheckpoint at 2: after the others
    _adds_log_keys: tuple[str, ...] = ()  # keys this class puts into the epoch logs
    model: Any = None
    optimizer: Any = None
    history: Any = None
    fit_state: Any = None

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: dict[str, Any]) -> None:
        """Called once after the last epoch (also after an early stop or Ctrl-C)."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        """Called before epoch ``epoch`` (counted from 0)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Called after epoch ``epoch`` with its losses and metrics in ``logs``."""

    def on_batch_begin(self, batch: int, logs: dict[str, Any]) -> None:
        """Called before each training step (batches counted from 0 in each epoch)."""

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        """Called after each optimizer step."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state saved in checkpoints (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output when fit resumes."""

    def _check_monitor(self, monitor: str) -> None:
        keys = list(self.fit_state.log_keys)
        if monitor not in keys:
            hint = " (pass validation_data or validation_split)" if monitor.startswith(
                "val_") else ""
            raise ValueError(f"{type(self).__name__}: expected monitor to be one of {keys}, "
                             f"got {monitor!r}{hint}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if not k.startswith("_") and k not in
                         ("model", "optimizer", "history", "fit_state"))
        return f"{type(self).__name__}({args})"


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    """'auto' is 'max' for accuracies and 'min' for everything else (losses, errors)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: expected mode 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


class _Monitor(Callback):
    """Shared by callbacks that track the best value of one logged quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        who = type(self).__name__
        if not isinstance(monitor, str):
            raise TypeError(f"{who}: expected monitor to be a log key (str), got {monitor!r}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, who)
        self.min_delta = in_range(min_delta, "min_delta", who, 0.0)
        self._reset()

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self._check_monitor(self.monitor)
        self._reset()

    def _reset(self) -> None:
        """Forget earlier fits (a resumed fit then loads its saved state)."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])


def snapshot(model: Any) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Copies of a model's weights (the flat buffer) and buffers (e.g. running statistics)."""
    flat = None if model.flat_params is None else model.flat_params.copy()
    return flat, {k: v.copy() for k, v in model.buffers.items()}


def restore(model: Any, snap: tuple[np.ndarray | None, dict[str, np.ndarray]]) -> None:
    """Copy a :func:`snapshot` back into the model's existing arrays (never rebinding them)."""
    flat, buffers = snap
    if flat is not None:
        model.flat_params[...] = flat
    current = model.buffers
    for k, v in buffers.items():
        current[k][...] = v


class EarlyStopping(_Monitor):
    """Stop training when a monitored value has stopped improving.

    After ``patience`` epochs in a row without an improvement of more than
    ``min_delta``, training stops (Keras' rule). With ``restore_best`` the
    weights of the best epoch are copied back into the model when training ends.

    Args:
        monitor: Log key to watch (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...).
        patience: Epochs without improvement to tolerate.
        min_delta: Smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracies).
        restore_best: Restore the best epoch's weights at the end of training.
            They travel in :class:`ModelCheckpoint`'s files too, so a resumed
            run restores the same best epoch as an uninterrupted one.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = nonneg_int(patience, "patience", "EarlyStopping")
        self.restore_best = boolean(restore_best, "restore_best", "EarlyStopping")

    def _reset(self) -> None:
        super()._reset()
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_weights: Any = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best_weights = snapshot(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.fit_state.stop = True

    def on_train_end(self, logs: dict[str, Any]) -> None:
        if self.restore_best and self._best_weights is not None:
            restore(self.model, self._best_weights)

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "wait": self.wait}
        if self._best_weights is not None and self._best_weights[0] is not None:
            flat, buffers = self._best_weights
            state.update(best_weights=flat.copy(),
                         best_buffers={k: v.copy() for k, v in buffers.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait = int(state["wait"])
        if "best_weights" in state:  # checkpoints written before this carry none
            self._best_weights = (np.array(state["best_weights"]),
                                  {k: np.array(v) for k, v in state["best_buffers"].items()})


class ModelCheckpoint(_Monitor):
    """Save the model, optimizer and training state after each epoch.

    The file is written with :func:`backprop.save` and holds everything
    ``fit(..., resume=path)`` needs to continue bit for bit.

    Args:
        path: File path; may contain ``{epoch}`` (counted from 1, as in Keras) and
            any log key, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
        monitor: Log key that decides what "best" means.
        save_best_only: Save only when ``monitor`` improves.
        mode: ``"min"``, ``"max"``, or ``"auto"``.

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        ValueError: at the start of training, ``path`` names a field the logs will not
            hold (``{val_loss}`` without validation data), a missing or read-only
            folder, or an existing folder.
    """

    _order = 2

    def __init__(self, path: Any, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto") -> None:
        if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
            raise TypeError(f"ModelCheckpoint: expected path as a str or os.PathLike, "
                            f"got {type(path).__name__} {path!r}")
        super().__init__(monitor, mode)
        self.path = path
        self.save_best_only = boolean(save_best_only, "save_best_only", "ModelCheckpoint")

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        if self.save_best_only:
            self._check_monitor(self.monitor)
        self._check_path()
        self._reset()

    def _check_path(self) -> None:
        """Format the path with stand-ins for epoch and every log key, so that a field the
        logs will not hold, or a missing folder, fails now and not after the first epoch."""
        path, cbs = os.fspath(self.path), self.fit_state.callbacks
        stand_in = {"epoch": 1, **dict.fromkeys(self.fit_state.log_keys, 0.0),
                    **{k: 0.0 for cb in cbs for k in cb._adds_log_keys}}
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(path) if f is not None]
        except ValueError:  # unbalanced braces: the format below reports them
            fields = []
        unknown = [f for f in fields if _field_key(f) not in stand_in]
        # a callback from outside backprop may log keys of its own: only ours are known
        if unknown and all(type(cb).__module__.startswith("backprop.") for cb in cbs):
            hint = (" (pass validation_data or validation_split)"
                    if any(f.startswith("val_") for f in unknown) else "")
            raise ValueError(f"ModelCheckpoint: expected path fields from {list(stand_in)}, "
                             f"got {', '.join('{' + f + '}' for f in unknown)} in "
                             f"{path!r}{hint}")
        try:
            name = Path(path.format_map(_StandIns(stand_in)))
        except (IndexError, KeyError, ValueError, AttributeError, TypeError) as err:
            raise ValueError(f"ModelCheckpoint: expected path {path!r} to format with epoch "
                             f"and log keys, got {type(err).__name__}: {err}") from None
        _check_writable(name, path)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.save_best_only:
            value = float(logs[self.monitor])
            if not self._improved(value):
                return
            self.best, self.best_epoch = value, epoch
        from .serialization import save

        try:
            path = os.fspath(self.path).format(epoch=epoch + 1, **logs)
        except KeyError as err:  # a key a callback from outside backprop did not log
            raise ValueError(f"ModelCheckpoint: expected path field {{{err.args[0]}}} among "
                             f"the logged keys {['epoch', *logs]}, got logs without it "
                             f"at epoch {epoch}") from None
        save(self.model, path, optimizer=self.optimizer,
             training_state=self.fit_state.training_state())


class _StandIns(dict):
    """Stand-in values for the format check; keys that may be logged later get 0.0."""

    def __missing__(self, key: str) -> float:
        return 0.0


def _field_key(field: str) -> str:
    """The log key of a format field: ``"loss"`` of ``"loss"``, ``"a.b"``, ``"a[0]"``."""
    return field.partition(".")[0].partition("[")[0]


def _check_writable(name: Path, given: str) -> None:
    """The checkpoint file ``name`` can be written: its folder exists and takes files."""
    folder = name.parent
    if name.is_dir():
        raise ValueError(f"ModelCheckpoint: expected path to name a file, got {given!r}, "
                         f"which names the folder {str(name)!r}")
    if not folder.is_dir():
        raise ValueError(f"ModelCheckpoint: expected path in an existing folder, got "
                         f"{given!r}, whose folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"ModelCheckpoint: expected path in a writable folder, got "
                         f"{given!r}, whose folder {str(folder)!r} is not writable")


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr = schedule(epoch)`` before every epoch and log it as ``"lr"``.

    Args:
        schedule: ``schedule(epoch) -> lr`` with epochs counted from 0, e.g.
            ``bp.StepLR(0.1, step_size=10)`` or any function.
    """

    _adds_log_keys = ("lr",)

    def __init__(self, schedule: Any) -> None:
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: expected a callable schedule(epoch) -> lr, "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
                or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"LearningRateScheduler: expected schedule({epoch}) to return a "
                             f"positive finite number, got {lr!r}")
        self.optimizer.lr = float(lr)  # a Python float: never upcasts float32 (NEP 50)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        logs["lr"] = self.optimizer.lr


class ReduceLROnPlateau(Callback):
    """Multiply ``optimizer.lr`` by ``factor`` when ``monitor`` stops improving.

    Wraps :class:`backprop.schedules.ReduceLROnPlateau` (PyTorch's rule) and logs
    the rate used in each epoch as ``"lr"``.

    Args:
        monitor: Log key to watch.
        factor: Multiplier in (0, 1).
        patience: Epochs without improvement before reducing.
        min_lr: Lower bound on the rate.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracies).
        threshold: Relative improvement that counts.
        cooldown: Epochs to wait after a reduction before counting again.
        eps: A reduction smaller than this is skipped (PyTorch's ``eps``).
    """

    _adds_log_keys = ("lr",)

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_lr: float = 0.0, mode: str = "auto", threshold: float = 1e-4,
                 cooldown: int = 0, eps: float = 1e-8) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"ReduceLROnPlateau: expected monitor to be a log key (str), "
                            f"got {monitor!r}")
        self.monitor = monitor
        self.plateau = schedules.ReduceLROnPlateau(
            _resolve_mode(mode, monitor, "ReduceLROnPlateau"), factor, patience, threshold,
            cooldown, min_lr, eps)

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self._check_monitor(self.monitor)
        fresh = math.inf if self.plateau.mode == "min" else -math.inf
        self.plateau.load_state_dict({"best": fresh, "bad_epochs": 0, "cooldown_left": 0})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        logs["lr"] = self.optimizer.lr
        self.optimizer.lr = float(self.plateau.step(float(logs[self.monitor]),
                                                    self.optimizer.lr))

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)
