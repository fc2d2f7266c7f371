"""The :class:`Callback` hooks, the monitored-value base class and :class:`EarlyStopping`."""

from __future__ import annotations

import difflib
import math
import warnings
from typing import Any

import numpy as np

from .._validate import boolean, caller_level, in_range, nonneg_int

_KERAS_ONLY = frozenset(f"on_{what}_{when}" for what in ("test", "predict", "test_batch",
                                                          "predict_batch")
                       for when in ("begin", "end"))


class Callback:
    """Base class: every hook does nothing.

    Hooks get ``logs``, a dict of Python floats. At epoch end it holds ``"loss"``,
    each metric, ``"val_loss"``/``"val_<metric>"`` with validation data, and
    ``"lr"`` with a rate callback (LearningRateScheduler, ReduceLROnPlateau). A callback
    of your own may add keys, which History then records and EarlyStopping,
    ModelCheckpoint and ReduceLROnPlateau can monitor when that callback comes before
    them in the list (such a name is checked in the first epoch's logs instead of at
    train begin). Batch hooks get
    ``{"loss": batch_loss, "size": batch_size}`` at the end (this batch's loss; Keras 3
    gives the epoch's running mean and metrics) and ``{}`` at the beginning.

    ``state_dict()``/``load_state_dict()`` carry what a callback needs to resume
    from a checkpoint (JSON-able values only).

    Before ``on_train_begin``, ``fit`` sets ``self.model``, ``self.optimizer``,
    ``self.fit_state`` (the running fit: epoch, batch, ``stop``, ``log_keys``),
    ``self.params`` (the fit's settings, as :attr:`History.params`; Keras' too) and
    ``self.history`` (the fit's :class:`~backprop.History`), except where a callback
    keeps a ``history`` of its own, as a :class:`~backprop.History` passed in
    ``callbacks`` (the one ``fit`` then fills and returns, as in Keras; emptied at the
    start of each fit, where Keras' keeps adding to its lists) or a Keras-style
    callback's ``self.history = {...}``.

    ``self.model.stop_training = True`` ends training after the current step (from
    ``on_train_begin``: before the first epoch, where Keras still runs one batch). Set
    mid-epoch, that epoch ends there as a whole one does, as in Keras: ``on_epoch_end``
    runs, validation is scored, History logs it and ``ModelCheckpoint`` saves it (a
    ``resume=`` from that file starts at the next epoch). Ctrl-C, instead, keeps only
    the epochs completed.
    """

    # GradientFlowMonitor runs at -1 (it only adds log keys, which others may monitor),
    # History at 1 and ModelCheckpoint at 2: after the others
    _order = 0
    _adds_log_keys: tuple[str, ...] = ()  # keys this class puts into the epoch logs
    model: Any = None
    optimizer: Any = None
    history: Any = None
    fit_state: Any = None
    params: Any = None

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: dict[str, Any]) -> None:
        """Called once after the last epoch (also after an early stop or Ctrl-C)."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        """Called before epoch ``epoch`` (counted from 0)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Called after epoch ``epoch`` with its losses and metrics in ``logs``."""

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before each training step (batches counted from 0 in each epoch); the
        batch hooks get ``logs`` as a keyword argument, as Keras passes it."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after each optimizer step."""

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras 3's name for :meth:`on_batch_begin`, which it calls by default."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras 3's name for :meth:`on_batch_end`, which it calls by default."""
        self.on_batch_end(batch, logs=logs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        never = sorted(n for n in _KERAS_ONLY if n in vars(cls))
        if never:
            warnings.warn(f"{cls.__name__} defines {', '.join(never)}, which backprop never "
                          "calls: evaluate and predict run no callbacks (fit's validation "
                          "scores come to on_epoch_end as val_* logs)", stacklevel=2)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state saved in checkpoints (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output when fit resumes."""

    def _check_monitor(self, monitor: str) -> None:
        """At train begin: ``monitor`` must be a key the epoch logs will hold. A callback
        of the user's own may add keys nobody can list in advance (Keras lets them be
        monitored): with one in the fit, an unknown name waits for the first epoch's logs
        (see :meth:`_monitored`)."""
        state = self.fit_state
        keys = state.known_log_keys()
        no_val = monitor.startswith("val_") and not any(k.startswith("val_") for k in keys)
        if monitor not in keys and (no_val or not state.unknown_log_keys_possible()):
            _refuse_monitor(self, monitor, keys)

    def _monitored(self, logs: dict[str, Any]) -> float:
        """The monitored value of an epoch's logs, or the error naming the keys there."""
        value = logs.get(self.monitor)  # type: ignore[attr-defined]
        if value is None:
            later = self._own_callbacks_after()
            _refuse_monitor(self, self.monitor, list(logs),  # type: ignore[attr-defined]
                            f" (a key your own callback adds must be added by a callback "
                            f"listed before this one: {later} comes after it)" if later else
                            " (no callback before this one added it to this epoch's logs)")
        return float(value)

    def _own_callbacks_after(self) -> str:
        """The user's callbacks that may add log keys listed after this one in the running
        fit ("" if none): a key they add reaches this one's on_epoch_end too late."""
        cbs = list(getattr(self.fit_state, "callbacks", None) or ())
        after = cbs[next((i for i, cb in enumerate(cbs) if cb is self), len(cbs)) + 1:]
        return ", ".join(type(cb).__name__ for cb in after if adds_own_keys(cb))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if not k.startswith("_") and k not in
                         ("model", "optimizer", "history", "fit_state", "params"))
        return f"{type(self).__name__}({args})"


# What 'auto' reads from a log key (its name without "val_"): parts of names that go
# down as a model improves, and parts of names that go up (Keras reads only 'loss' and its
# compiled metrics' directions). Anything else is refused, as Keras refuses a name it
# cannot read: a wrong guess would stop training (or keep a checkpoint) at the worst epoch.
_LOWER = ("loss", "error", "mae", "mse", "rmse", "mape", "entropy", "perplexity")
_HIGHER = ("acc", "f1", "auc", "precision", "recall", "r2", "iou", "dice")


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    """'auto': 'min' for losses and errors, 'max' for accuracies and scores (by name)."""
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: expected mode 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.lower().removeprefix("val_")
    if any(part in name for part in _LOWER):
        return "min"
    if any(part in name for part in _HIGHER):
        return "max"
    raise ValueError(f"{who}: cannot tell from its name whether {monitor!r} improves going "
                     f"up or down; pass mode='max' (an accuracy or score) or mode='min' (a "
                     f"loss or error)")


def adds_own_keys(cb: Callback) -> bool:
    """Whether ``cb`` may add log keys nobody can list in advance: a callback of the user's
    own that overrides ``on_epoch_end``."""
    return (not type(cb).__module__.startswith("backprop.")
            and type(cb).on_epoch_end is not Callback.on_epoch_end)


def _refuse_monitor(cb: Callback, monitor: str, keys: list[str], other: str = "") -> None:
    raise ValueError(f"{type(cb).__name__}: expected monitor to be one of {keys}, "
                     f"got {monitor!r}{key_hint(monitor, keys) or other}")


# Keras 2's names, and Keras 3's key of the logged rate
_KERAS_2_NAMES = {"acc": "accuracy", "val_acc": "val_accuracy", "learning_rate": "lr"}


def key_hint(name: str, keys: list[str]) -> str:
    """What a log key the logs will not hold probably meant: validation data not given
    for a ``val_`` key, Keras 2's ``acc``, Keras 3's ``learning_rate``, or a close spelling;
    "" when nothing fits."""
    if name.startswith("val_") and not any(k.startswith("val_") for k in keys):
        return " (pass validation_data or validation_split)"
    close = [_KERAS_2_NAMES[name]] if _KERAS_2_NAMES.get(name) in keys else (
        difflib.get_close_matches(name, keys, n=1))
    return f"; did you mean {close[0]!r}?" if close else ""


def warn_nan_once(cb: Any, value: float) -> None:
    """Warn, once per fit (``cb._nan_told``, reset when a fit begins), that the value a
    callback watches is NaN: it never counts as an improvement (as in PyTorch; Keras 3
    takes a NaN at the first watched epoch as its best), so it would stop training or cut
    the rate without a word."""
    if math.isnan(value) and not getattr(cb, "_nan_told", False):
        cb._nan_told = True
        warnings.warn(f"{type(cb).__name__}: {cb.monitor} is NaN, which never counts as an "
                      f"improvement (a metric undefined on this data, such as an AUC of "
                      f"labels of one class, or a diverged loss?)", RuntimeWarning,
                      stacklevel=caller_level())


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
        self._nan_told = False

    def _improved(self, value: float, than: float | None = None) -> bool:
        """Whether ``value`` beats the best so far (or ``than``) by more than min_delta.
        NaN never does (Keras 3 takes a first NaN as its best, after which nothing beats
        it); the first NaN of a fit warns, since it would otherwise stop or cut the rate
        silently."""
        warn_nan_once(self, value)
        ref = self.best if than is None else than
        if self.mode == "min":
            return value + self.min_delta < ref
        return value - self.min_delta > ref

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
    ``stopped_epoch`` is the epoch it stopped after, None while it has not (Keras: 0),
    and ``best_epoch`` the best one's. A NaN value never counts as an improvement (a
    warning says so; Keras takes a first NaN as its best). Everything after ``monitor``
    is keyword-only: Keras' positional order (``monitor,
    min_delta, patience, verbose, mode``) would land in other settings.

    Args:
        monitor: Log key to watch (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...).
        patience: Epochs without improvement to tolerate.
        min_delta: Smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (by the name: min for losses and
            errors, max for accuracies, f1, auc...; other names need ``"min"`` or ``"max"``).
        restore_best: Restore the best epoch's weights at the end of training
            (default True; Keras' ``restore_best_weights`` defaults to False); not after
            Ctrl-C, which leaves the last step's, as in Keras. They travel
            in :class:`ModelCheckpoint`'s files too, so a resumed run restores the
            same best epoch as an uninterrupted one.
        baseline: A value to beat, as Keras' ``baseline``: an improvement on the best
            epoch that still does not beat it (by more than ``min_delta``) does not
            reset the patience count. Default None: none.
        start_from_epoch: Epochs to train before watching at all (warm-up), as
            Keras' ``start_from_epoch``; default 0.
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 0,
                 min_delta: float = 0.0, mode: str = "auto", restore_best: bool = True,
                 baseline: Any = None, start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = nonneg_int(patience, "patience", "EarlyStopping")
        self.restore_best = boolean(restore_best, "restore_best", "EarlyStopping")
        self.baseline = None if baseline is None else in_range(
            baseline, "baseline", "EarlyStopping", -math.inf)
        self.start_from_epoch = nonneg_int(start_from_epoch, "start_from_epoch",
                                           "EarlyStopping")

    def _reset(self) -> None:
        super()._reset()
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_weights: Any = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if epoch < self.start_from_epoch:  # warm-up: not watched (as Keras)
            return
        value = self._monitored(logs)
        self.wait += 1
        if self._improved(value):
            self.best, self.best_epoch = value, epoch
            if self.restore_best:
                self._best_weights = snapshot(self.model)
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0  # only a value beating the baseline too restarts the count
            return
        if self.wait >= self.patience and epoch > 0:  # as Keras: never at the first epoch
            self.stopped_epoch = epoch
            self.fit_state.stop = True

    def on_train_end(self, logs: dict[str, Any]) -> None:
        # not after Ctrl-C: fit says it returns the last step's weights (Keras too)
        if self.restore_best and self._best_weights is not None \
                and not self.fit_state.interrupted:
            restore(self.model, self._best_weights)

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "wait": self.wait, "stopped_epoch": self.stopped_epoch}
        if self._best_weights is not None and self._best_weights[0] is not None:
            flat, buffers = self._best_weights
            state.update(best_weights=flat.copy(),
                         best_buffers={k: v.copy() for k, v in buffers.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait = int(state["wait"])
        stopped = state.get("stopped_epoch")  # absent from older checkpoints
        self.stopped_epoch = None if stopped is None else int(stopped)
        if self.stopped_epoch is not None and self.fit_state is not None:
            self.fit_state.stop = True  # the checkpointed run ended here: so does its resume
        if "best_weights" in state:  # checkpoints written before this carry none
            self._best_weights = (np.array(state["best_weights"]),
                                  {k: np.array(v) for k, v in state["best_buffers"].items()})
