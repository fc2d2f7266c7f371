"""The state of a running fit: what callbacks see, what checkpoints hold, Ctrl-C.

:class:`FitState` is ``callback.fit_state``; :meth:`FitState.training_state` is
the JSON-able dict :class:`~backprop.ModelCheckpoint` saves beside the weights
and optimizer state, and :func:`open_checkpoint` / :func:`apply_checkpoint` put
all three back, so that a resumed fit continues bit for bit.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._fit_inputs import FitData, trained_positions
from ._validate import caller_level, nonneg_int
from .backend import all_finite
from .callbacks import Callback
from .callbacks.base import adds_own_keys, restore
from .history import History
from .initializers import make_rng
from .layers._state import generators
from .layers._stateful import stateful_layers


class FitState:
    """The running fit as callbacks see it (``callback.fit_state``).

    Attributes:
        epoch: Current epoch index (from 0); ``batch``: current batch index in it.
        epochs: The epoch count fit runs up to.
        stop: Set it True to end training after the current batch. Keras' way,
            ``self.model.stop_training = True`` in a callback, does the same (fit sets
            it to False when it starts).
        interrupted: True after Ctrl-C.
        log_keys: The keys fit puts in every epoch's logs (known_log_keys(): with those
            of backprop's callbacks).
        seed: The seed of ``rng``, the Generator that orders the batches.
    """

    def __init__(self, model: Any, loss: Any, optimizer: Any, data: FitData,
                 callbacks: list[Callback], options: dict[str, Any]) -> None:
        self.model, self.loss, self.optimizer, self.data = model, loss, optimizer, data
        # a History among the callbacks is the one fit fills and returns (Keras' too),
        # emptied first: one History per fit
        given = [cb for cb in callbacks if isinstance(cb, History)]
        self.history = given[0] if given else History()
        History.__init__(self.history)
        self.user_callbacks = [cb for cb in callbacks if cb is not self.history]
        self.callbacks = sorted([*self.user_callbacks, self.history], key=lambda c: c._order)
        self.batch_begin = _hooks(self.callbacks, "on_batch_begin", "on_train_batch_begin")
        self.batch_end = _hooks(self.callbacks, "on_batch_end", "on_train_batch_end")
        self.__dict__.update(options)  # epochs, batch_size, shuffle, drop_last, progress, ...
        self.seed = _seed(options["seed"])
        self.rng = np.random.default_rng(self.seed)
        self.epoch = self.batch = self.epochs_done = 0
        self.stop = self.interrupted = False
        # a second Ctrl-C inside an optimizer step waits for the step's end (see deferred_sigint)
        self.updating = self.deferred = False
        model.stop_training = False  # Keras' flag: a callback may set it (as in Keras)
        names = list(data.metric_names)
        self.log_keys = ["loss", *names] + (
            ["val_loss", *(f"val_{m}" for m in names)] if data.val is not None else [])
        # the rate callbacks declare "lr"; fit logs it, before any callback runs
        self.logs_lr = "lr" in self.known_log_keys()

    @property
    def fresh(self) -> bool:
        """Whether this fit starts from epoch 0 (not ``initial_epoch > 0`` or a resume):
        callbacks that carry state across fits start it over only then."""
        return self.history.params.get("initial_epoch", 0) == 0

    @property
    def stop(self) -> bool:
        return bool(self._stop or self.model.stop_training)

    @stop.setter
    def stop(self, value: bool) -> None:
        self._stop = value

    def known_log_keys(self) -> list[str]:
        """The keys every epoch's logs will hold: fit's and those backprop's callbacks add."""
        return [*self.log_keys, *(k for cb in self.callbacks for k in cb._adds_log_keys)]

    def unknown_log_keys_possible(self) -> bool:
        """Whether a callback of the user's own may add keys at epoch end (none can be
        listed in advance): one that overrides ``on_epoch_end``."""
        return any(adds_own_keys(cb) for cb in self.callbacks)

    def training_state(self) -> dict[str, Any]:
        """Everything besides weights and optimizer state that a resume needs (JSON-able).

        Valid at the end of an epoch (where :class:`ModelCheckpoint` calls it).
        """
        return {
            "format": 1, "epoch": self.epochs_done, "seed": self.seed,
            "rng": _jsonable(self.rng.bit_generator.state),
            "settings": self.settings(),
            "trained": self.trained(),
            "history": self.history.state_dict(),
            "callbacks": [{"class": type(cb).__name__, "state": cb.state_dict()}
                          for cb in self.user_callbacks],
        }

    def trained(self) -> list[str]:
        """The model's names of the parameters the optimizer updates (all, or some: the
        rest frozen), in its order: its state belongs to these."""
        params = self.model.parameters()  # fit checked they are all the model's
        return [params[i].name for i in trained_positions(self.model, self.optimizer)]

    def settings(self) -> dict[str, Any]:
        """What else decides the batches, and the logged keys: a resume with other values
        warns (not bit for bit; History's lists would not line up with its epochs)."""
        return {"batch_size": self.batch_size, "samples": self.data.n, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "log_keys": self.log_keys}

    def __repr__(self) -> str:
        return f"FitState(epoch={self.epoch}, batch={self.batch}, stop={self.stop})"


class StepBuffers:
    """The model's buffers (BatchNorm running statistics, a few numbers per channel) and
    the state a ``stateful`` recurrent layer carries to the next batch, as they were
    before the current step: a training forward updates them before the loss is known,
    so a non-finite step puts them back, and NaN statistics or states never stay behind."""

    def __init__(self, model: Any) -> None:
        self.live = list(model.buffers.values())
        self.saved = [b.copy() for b in self.live]
        self.carrying = stateful_layers(model)
        self.states: list[Any] = []

    def save(self) -> None:
        for saved, live in zip(self.saved, self.live, strict=True):
            np.copyto(saved, live)
        self.states = [layer.state for layer in self.carrying]  # forwards set new arrays

    def restore(self) -> None:
        for saved, live in zip(self.saved, self.live, strict=True):
            np.copyto(live, saved)
        for layer, state in zip(self.carrying, self.states, strict=True):
            layer.state = state

    def finite(self) -> bool:
        """Whether every buffer is finite (a huge activation can overflow a running
        variance while the loss and gradients stay finite)."""
        return all(all_finite(b) for b in self.live)


def _hooks(callbacks: list[Callback], name: str, keras: str) -> list[Any]:
    """Bound hooks of the callbacks that override ``name`` or its Keras 3 name ``keras``
    (which by default calls ``name``): the loop skips the others, and those a callback
    lists in ``_idle_hooks`` (a LearningRateScheduler of epochs)."""
    hooks = []
    for cb in callbacks:
        for n in (keras, name):
            if (getattr(type(cb), n) is not getattr(Callback, n)
                    and n not in getattr(cb, "_idle_hooks", ())):
                hooks.append(getattr(cb, n))
                break
    return hooks


def _seed(seed: Any) -> int:
    """The given seed, or a fresh one from OS entropy or :func:`backprop.manual_seed`'s
    sequence (recorded, so a run can be repeated)."""
    if seed is None:
        return int(make_rng(None).integers(2**63))
    return nonneg_int(seed, "seed (or None)", "fit")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj.item() if isinstance(obj, np.generic) else obj


def layer_rngs(layer: Any, prefix: str = "") -> Iterator[tuple[str, np.random.Generator]]:
    """``(path, generator)`` for every Generator a sub-layer holds (Dropout's ``rng``; a
    layer of one's own's, under any attribute name: path ``"1._rng"``)."""
    for path, child in layer.named_layers(prefix):
        for attr, gen in generators(child):
            yield path if attr == "rng" else f"{path}.{attr}", gen


@contextlib.contextmanager
def deferred_sigint(run: FitState) -> Iterator[None]:
    """Turn the first Ctrl-C into ``run.stop`` (checked between steps); a second one raises,
    at once, but inside an optimizer step only when the step is done (``run.updating``: the
    parameters are updated group by group, in place, so a step cut short could not be put
    back); the loop puts a step's buffers back when the interrupt comes before its update."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if run.interrupted:
            if run.updating:
                run.deferred = True  # raised by the loop as soon as the step is done
                return
            raise KeyboardInterrupt
        run.interrupted = run.stop = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def report_interrupt(run: FitState) -> None:
    run.history.interrupted = True
    print(f"fit: interrupted at epoch {run.epoch + 1}, batch {run.batch + 1} (counted from 1, "
          f"as the progress bar counts); returning the History "
          f"of {len(run.history.epoch)} complete epoch(s), weights from the last step",
          file=sys.stderr)


# -- resume -------------------------------------------------------------------------------
def open_checkpoint(run: FitState, resume: Any) -> Any:
    """Load and check a ModelCheckpoint file; take over its seed, batch order and History.

    Nothing of the model or optimizer changes here: :func:`apply_checkpoint` does
    that after the callbacks' ``on_train_begin`` checks have passed.
    """
    ckpt = resume
    if not hasattr(resume, "training_state"):
        from .serialization import load_checkpoint

        ckpt = load_checkpoint(resume)
    state = ckpt.training_state
    if (not isinstance(state, dict) or state.get("format") != 1
            or not isinstance(ckpt.optimizer_state, dict)):
        where = "" if ckpt is resume else f" {str(resume)!r}"
        raise ValueError(f"fit: expected resume{where} to be a checkpoint written by "
                         "ModelCheckpoint (with optimizer and training state), got one "
                         "without them")
    _check_same_model(ckpt.model, run.model)
    with _damaged(resume):
        saved_callbacks = [s["class"] for s in state["callbacks"]]
    _check_same_parts(run, ckpt, saved_callbacks)  # a mismatch, not damage: its own errors
    with _damaged(resume):
        seed = state["seed"]
        run.seed = None if seed is None else nonneg_int(seed, "the saved seed", "fit")
        epoch = nonneg_int(state["epoch"], "the saved epoch", "fit")
        run.rng.bit_generator.state = state["rng"]
        run.history.load_state_dict(state["history"])
        run.epochs_done = epoch
    return ckpt


@contextlib.contextmanager
def _damaged(resume: Any) -> Iterator[None]:
    """Errors from reading a checkpoint's saved state as one ValueError naming it: a
    missing key or a value of the wrong kind means a damaged (or hand-edited) file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        where = "" if hasattr(resume, "training_state") else f" {str(resume)!r}"
        raise ValueError(f"fit: expected resume{where} to hold the training state "
                         f"ModelCheckpoint writes, got a damaged one "
                         f"({type(err).__name__}: {err})") from err


def apply_checkpoint(run: FitState, ckpt: Any) -> None:
    """Copy weights, buffers, optimizer, dropout Generators and callback states into this fit."""
    state = ckpt.training_state
    with _damaged(ckpt):  # warned here, once every check has passed
        saved = state.get("settings", {})  # absent from older checkpoints
        changed = [f"{k}={saved[k]!r} -> {v!r}" for k, v in run.settings().items()
                   if k in saved and saved[k] != v and k != "log_keys"]
        keys = saved.get("log_keys", run.log_keys)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise TypeError(f"expected settings' log_keys as a list of names, got {keys!r:.60}")
        moved = sorted(set(keys) ^ set(run.log_keys))  # (History is by name: order is free)
    if changed:
        warnings.warn(f"fit: resuming with other settings than the checkpointed run "
                      f"({', '.join(changed)}): training continues from the checkpoint, "
                      f"but its batches differ from the run's own continuation",
                      stacklevel=caller_level())
    if moved:  # other metrics, or validation data given or left out
        warnings.warn(f"fit: resuming with other logged values than the checkpointed run "
                      f"(added or left out: {', '.join(moved)}): the History's lists of "
                      f"those no longer line up with its epochs", stacklevel=caller_level())
    # the callbacks first, then the optimizer (which checks everything before it changes
    # anything): a damaged state is refused before the model's weights are touched
    with _damaged(ckpt):
        for cb, saved in zip(run.user_callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(saved["state"])
    try:
        _load_optimizer(run.optimizer, ckpt.optimizer_state)
    except (TypeError, ValueError, KeyError) as err:  # the file's, not the user's optimizer
        raise ValueError(f"fit: expected resume to hold an optimizer state this "
                         f"{type(run.optimizer).__name__} takes, got one it refuses "
                         f"({err})") from err
    # into the existing arrays: the optimizer keeps its views
    restore(run.model, (ckpt.model.flat_params, ckpt.model.buffers))
    # the saver stored each Dropout's Generator with the model, and a stateful layer's state
    for (_, gen), (_, saved) in zip(layer_rngs(run.model), layer_rngs(ckpt.model), strict=True):
        gen.bit_generator.state = saved.bit_generator.state
    saved_layers = dict([("", ckpt.model), *ckpt.model.named_layers()])
    for path, layer in [("", run.model), *run.model.named_layers()]:
        if getattr(layer, "stateful", False) is True:  # None where the checkpoint kept none
            layer.state = getattr(saved_layers.get(path), "state", None)


def _load_optimizer(opt: Any, saved: Any) -> None:
    """``opt.load_state_dict(saved)``, first turning on a setting that decides the state
    (SGD's ``momentum``) that the checkpoint has on and ``opt`` off: a schedule cycling the
    momentum (OneCycleLR) turned it on in the run, whose optimizer was built as this one
    (``SGD(lr=...)``, momentum 0 as in PyTorch), and the saved hyperparameters replace
    these anyway (with parameter groups: where every group has it off). Put back if the
    load fails."""
    hyper = saved.get("hyper") if isinstance(saved, dict) else None
    every = (opt, *(opt._children or ()))
    flags = [] if not isinstance(hyper, dict) else [
        k for k in type(opt)._state_flags
        if hyper.get(k) and not any(getattr(o, k) for o in every)]
    before, since = {k: getattr(opt, k) for k in flags}, [o._state_since for o in every]
    try:
        for k in flags:
            setattr(opt, k, hyper[k])
        opt.load_state_dict(saved)
    except BaseException:
        for k, v in before.items():
            setattr(opt, k, v)
        for o, n in zip(every, since, strict=True):
            o._state_since = n
        raise


def _check_same_model(saved: Any, model: Any) -> None:
    def layout(m: Any) -> list[tuple[str, tuple[int, ...]]]:
        return [(p.name, p.value.shape) for p in m.parameters()] + sorted(
            (k, v.shape) for k, v in m.buffers.items())

    ours, theirs = layout(model), layout(saved)
    if ours != theirs:
        i = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                 min(len(ours), len(theirs)))  # the first parameter or buffer that differs
        mine, got = (f"{lay[i][0]!r} of shape {lay[i][1]}" if i < len(lay) else "nothing"
                     for lay in (ours, theirs))
        raise ValueError(f"fit: expected a checkpoint of this model's architecture, got one "
                         f"that holds {got} where this model has {mine} ({len(theirs)} "
                         f"parameters and buffers against {len(ours)})")
    # same shapes are not enough: layer types, their settings and the dtype must match too
    ours, theirs = repr(model).splitlines(), repr(saved).splitlines()
    if ours != theirs:
        i = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                 min(len(ours), len(theirs)))
        mine = ours[i].strip() if i < len(ours) else "(nothing)"
        got = theirs[i].strip() if i < len(theirs) else "(nothing)"
        raise ValueError(f"fit: expected a checkpoint of this model's architecture, got one "
                         f"that differs at line {i + 1} of its repr: this model has {mine!r}, "
                         f"the checkpoint {got!r}")


def _check_same_parts(run: FitState, ckpt: Any, saved: list[Any]) -> None:
    """Same optimizer class, dropout layers and callbacks (by position and class)."""
    opt, saved_opt = type(run.optimizer).__name__, ckpt.optimizer_state.get("type")
    if saved_opt != opt:
        raise ValueError(f"fit: expected a checkpoint with {opt} optimizer state, "
                         f"got {saved_opt!r}")
    trained, saved_trained = run.trained(), ckpt.training_state.get("trained", None)
    if saved_trained is not None and saved_trained != trained:  # absent from older files
        raise ValueError(f"fit: expected an optimizer over the parameters the checkpointed "
                         f"run trained, {saved_trained}, got one over {trained} (their "
                         f"optimizer state would move to other layers)")
    paths = [p for p, _ in layer_rngs(run.model)]
    saved_paths = [p for p, _ in layer_rngs(ckpt.model)]
    if paths != saved_paths:
        raise ValueError(f"fit: expected checkpoint Generator states for layers {paths}, "
                         f"got {saved_paths}")
    names = [type(cb).__name__ for cb in run.user_callbacks]
    if names != saved:
        raise ValueError(f"fit: expected the callbacks of the checkpointed run {saved}, "
                         f"got {names}")
