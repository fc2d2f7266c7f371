"""ModelCheckpoint: save the model (and the fit's state, for resume) after epochs."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

from .._validate import as_path, boolean
from .base import _Monitor, key_hint


class ModelCheckpoint(_Monitor):
    """Save the model, optimizer and training state after each epoch.

    The file is written with :func:`backprop.save` and holds everything
    ``fit(..., resume=path)`` needs to continue bit for bit. It runs after every other
    callback's ``on_epoch_end``, wherever it stands in the list (Keras runs them in list
    order): the file then holds what those callbacks changed at the epoch's end (a
    learning rate reduced, EarlyStopping's counters), so a resumed run continues exactly.
    A callback of yours that reads the file in its own ``on_epoch_end`` finds the
    previous epoch's.

    Args:
        path: File path; may contain ``{epoch}`` (counted from 1, as in Keras) and
            any log key, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
        monitor: Log key that decides what "best" means.
        save_best_only: Save only when ``monitor`` improves on the best value seen,
            also in earlier fits with this callback (as in Keras): a later fit never
            overwrites a better checkpoint with a worse model. ``callback.best`` holds
            that value; a fresh ``ModelCheckpoint`` starts over.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (by the name: min for losses and
            errors, max for accuracies, f1, auc...; other names need ``"min"`` or ``"max"``).

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        ValueError: at the start of training, ``path`` names a field the logs will not
            hold (``{val_loss}`` without validation data), a missing or read-only
            folder, or an existing folder.
        TypeError: at the start of training, the model holds a layer class that is
            not registered (:func:`backprop.register_layer`), or a layer's config or a
            callback's state is neither JSON-able nor an array.
    """

    _order = 2

    def __init__(self, path: Any, monitor: str = "val_loss", *, save_best_only: bool = False,
                 mode: str = "auto") -> None:
        as_path(path, "ModelCheckpoint")  # checked now; formatted per epoch later
        super().__init__(monitor, mode)
        self.path = path
        self.save_best_only = boolean(save_best_only, "save_best_only", "ModelCheckpoint")
        self._decided: tuple[int, bool] | None = None  # (epoch, save it?) of on_epoch_end

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        if self.save_best_only:
            self._check_monitor(self.monitor)
        self._check_path()
        self._check_savable()
        # the best so far is kept across fits (as Keras does): a later fit never
        # overwrites a better checkpoint of an earlier one with a worse model
        self._nan_told = False  # but a NaN is told once in each fit
        self._decided = None
        self._written: int | None = None  # the epoch this one last wrote its file at

    def _check_savable(self) -> None:
        """Describe the model and encode the training state now, as ``save`` will: an
        unregistered layer class, or a config or callback state that is not JSON-able,
        fails before training, not after its first epoch; and so does a model that
        ``load`` could not rebuild from its description."""
        from .._layer_tree import describe, encode
        from ..serialization import check_rebuilds

        arrays: dict[str, Any] = {}
        node = describe(self.model, "", arrays)
        encode(self.fit_state.training_state(), "training", arrays)
        check_rebuilds(self.model, node, arrays, "ModelCheckpoint")

    def _check_path(self) -> None:
        """Format the path with stand-ins for epoch and every log key, so that a field the
        logs will not hold, or a missing folder, fails now and not after the first epoch."""
        path = os.fspath(self.path)
        stand_in = {"epoch": 1, **dict.fromkeys(self.fit_state.known_log_keys(), 0.0)}
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(path) if f is not None]
        except ValueError:  # unbalanced braces: the format below reports them
            fields = []
        unknown = [f for f in fields if _field_key(f) not in stand_in]
        # a callback from outside backprop may log keys of its own: only ours are known
        if unknown and not self.fit_state.unknown_log_keys_possible():
            hint = key_hint(_field_key(unknown[0]), list(stand_in))
            raise ValueError(f"ModelCheckpoint: expected path fields from {list(stand_in)}, "
                             f"got {', '.join('{' + f + '}' for f in unknown)} in "
                             f"{path!r}{hint}")
        try:
            name = Path(path.format_map(_StandIns(stand_in)))
        except (IndexError, KeyError, ValueError, AttributeError, TypeError) as err:
            raise ValueError(f"ModelCheckpoint: expected path {path!r} to format with epoch "
                             f"and log keys, got {type(err).__name__}: {err}") from None
        _check_writable(name, path, exact=not fields)

    def _decide(self, epoch: int, logs: dict[str, Any]) -> None:
        """Whether this epoch is saved (and the new best, with ``save_best_only``); once
        per epoch, by whichever checkpoint of the fit runs first."""
        if self._decided is not None and self._decided[0] == epoch:
            return
        improved = True
        self._before = (self.best, self.best_epoch)  # put back if the save fails
        if self.save_best_only:
            value = self._monitored(logs)
            improved = self._improved(value)
            if improved:
                self.best, self.best_epoch = value, epoch
        self._decided = (epoch, improved)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        # every checkpoint of the fit decides first, so that the training state each one
        # saves holds the others' best of this epoch too: a save_best_only one listed
        # after this one would else be saved an epoch behind, and a fit resumed from this
        # file would overwrite its better file with a worse model
        for cb in self.fit_state.callbacks:
            if isinstance(cb, ModelCheckpoint):
                cb._decide(epoch, logs)
        if self._decided != (epoch, True):
            return
        from ..serialization import save

        try:
            try:
                path = os.fspath(self.path).format(epoch=epoch + 1, **logs)
            except KeyError as err:  # a key a callback from outside backprop did not log
                raise ValueError(f"ModelCheckpoint: expected path field {{{err.args[0]}}} "
                                 f"among the logged keys {['epoch', *logs]}, got logs "
                                 f"without it at epoch {epoch}") from None
            save(self.model, path, optimizer=self.optimizer,
                 training_state=self.fit_state.training_state())
        except BaseException:  # (a full disk, a second Ctrl-C): the files keep their old
            for cb in self.fit_state.callbacks:  # best, so a later improvement is saved:
                if (isinstance(cb, ModelCheckpoint) and cb._decided[0] == epoch  # this one's,
                        and cb._written != epoch):  # and those not written yet this epoch
                    cb.best, cb.best_epoch = cb._before
            raise
        self._written = epoch


class _StandIns(dict):
    """Stand-in values for the format check; keys that may be logged later get 0.0."""

    def __missing__(self, key: str) -> float:
        return 0.0


def _field_key(field: str) -> str:
    """The log key of a format field: ``"loss"`` of ``"loss"``, ``"a.b"``, ``"a[0]"``."""
    return field.partition(".")[0].partition("[")[0]


def _check_writable(name: Path, given: str, exact: bool) -> None:
    """The checkpoint file ``name`` can be written: its folder exists and takes files, and
    (for a path without fields, which names the file itself) an existing one is writable."""
    folder = name.parent
    if name.is_dir():
        raise ValueError(f"ModelCheckpoint: expected path to name a file, got {given!r}, "
                         f"which names the folder {str(name)!r}")
    if not folder.is_dir():
        raise ValueError(f"ModelCheckpoint: expected path in an existing folder, got "
                         f"{given!r}, whose folder {str(folder)!r} "
                         + ("is a file" if folder.exists() else "does not exist"))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"ModelCheckpoint: expected path in a writable folder, got "
                         f"{given!r}, whose folder {str(folder)!r} is not writable")
    if exact and name.is_file() and not os.access(name, os.W_OK):
        raise ValueError(f"ModelCheckpoint: expected path to name a writable file, got "
                         f"{given!r}, an existing read-only file")
