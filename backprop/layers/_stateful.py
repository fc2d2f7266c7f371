"""The model-level side of the recurrent layers' state: finding them in a model, the
batches a ``stateful`` layer can carry its state through, a saved state put back, and
forwards that leave every state as it was (fit's checks, ``summary``, validation)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._recurrent import Recurrent, as_tuple
from .base import Layer


def recurrent_layers(model: Layer) -> list[Recurrent]:
    """The recurrent layers in ``model`` (itself included), in layer order."""
    return [layer for layer in (model, *(m for _, m in model.named_layers()))
            if isinstance(layer, Recurrent)]


def stateful_layers(model: Layer) -> list[Recurrent]:
    """The ``stateful`` recurrent layers in ``model`` (itself included), in layer order."""
    return [layer for layer in recurrent_layers(model) if layer.stateful]


def check_stateful_batches(model: Layer, n: int, batch_size: int, who: str) -> None:
    """Refuse, before any batch runs, batches a ``stateful`` layer cannot carry its state
    through: a short last batch, or batches of another size than its kept state's (each
    raised only when reached, after the earlier batches had trained or moved the state)."""
    layers = stateful_layers(model)
    if not layers or n == 0:
        return
    if n > batch_size and n % batch_size:
        raise ValueError(f"{who}: expected {n} samples to split into equal batches for "
                         f"{layers[0]!r} (stateful=True carries each batch's state into the "
                         f"next), got batches of {batch_size}, which leave a last batch of "
                         f"{n % batch_size}; use a batch_size that divides {n}, drop "
                         f"{n % batch_size} samples, or (in fit) drop_last=True")
    size = min(n, batch_size)
    for layer in layers:
        rows = None if layer.state is None else as_tuple(layer.state)[0].shape[0]
        if rows is not None and rows != size:
            raise ValueError(f"{who}: expected batches of {rows} sequences for {layer!r}, "
                             f"whose kept state (stateful=True) has {rows}, got batches of "
                             f"{size}; call reset_state() first, or use batch_size={rows}")


def restore_state(layer: Layer, saved: Any) -> None:
    """Set a stateful layer's kept ``state`` from a saved file, checked as a forward's
    initial state would be (``(N, H)`` arrays of the layer's dtype)."""
    if not isinstance(layer, Recurrent):
        raise TypeError(f"expected a recurrent layer to take the saved state, got {layer!r}")
    first = saved[0] if isinstance(saved, (tuple, list)) and saved else saved
    shape = getattr(first, "shape", ())
    n = shape[1] if len(shape) == 3 else shape[0] if shape else 0  # (N, H) or (1, N, H)
    arrays = layer._state_arrays(saved, "the saved state", n)
    layer._keep(a.copy(order="C") for a in arrays)


def _own_leaves(layers: list[Layer]) -> list[Layer]:
    """The leaves of ``layers`` whose class is not the library's (a layer of one's own):
    their ``forward`` may keep state the library cannot know of."""
    return [layer for layer in layers if not type(layer).__module__.startswith("backprop.")
            and not layer.children()]


def _snapshot(layer: Layer) -> list[Callable[[], None]]:
    """What puts back what a forward may change in a layer of one's own, in order: its
    instance attributes (a shallow copy), the contents of its plain dicts and lists (the
    same objects, refilled: ``self.stats["mean"] = ...``), the values of the writable
    arrays among them and in tuples, to 4 levels down and 4,096 members (written into
    themselves, so every holder of one sees it: no copies swapped in, nothing
    deep-copied), and its ``buffers`` (names and values); not ``params``/``grads``, which
    only a step changes. A read-only array (a lookup table) is not copied."""
    attrs = dict(layer.__dict__)
    undo: list[Callable[[], None]] = [lambda: (layer.__dict__.clear(),
                                               layer.__dict__.update(attrs))]
    seen: set[int] = set()

    def take(value: Any, depth: int) -> None:
        if id(value) in seen or depth > 4:
            return
        seen.add(id(value))
        if isinstance(value, np.ndarray):
            if value.flags.writeable:
                saved = value.copy()
                undo.append(lambda: np.copyto(value, saved))
            return
        if isinstance(value, dict) and value is not attrs.get("buffers"):
            if type(value) is not dict:
                return  # an ArrayDict: params or grads
            items = dict(value)
            undo.append(lambda: (value.clear(), value.update(items)))
        elif type(value) is list:
            members = list(value)
            undo.append(lambda: value.__setitem__(slice(None), members))
        elif type(value) is not tuple and value is not attrs.get("buffers"):
            return
        if len(value) > _WALKED:  # refilled, not walked: a vocabulary list of 10^6
            return  # strings took 0.6 s a probe (its arrays' values are not put back)
        for v in (value.values() if isinstance(value, dict) else value):
            take(v, depth + 1)

    buffers = attrs.get("buffers")
    if isinstance(buffers, dict):
        kept = dict(buffers)
        undo.append(lambda: (dict.clear(buffers), dict.update(buffers, kept)))  # dict's own:
        # an ArrayDict's would check each name
    for value in attrs.values():
        take(value, 0)
    return undo


# A dict, list or tuple of a layer of one's own longer than this is put back (its
# members) but not looked into (see _snapshot).
_WALKED = 4096


@contextlib.contextmanager
def states_kept(model: Layer) -> Iterator[None]:
    """Forwards inside (the checks of ``fit`` and ``evaluate``, ``summary``, ``fit``'s
    validation) start every recurrent layer from zeros, each forward (their kept states
    paused inside), and leave its ``state`` as it was: a ``stateful`` layer's next training
    batch starts where the last ended, whatever the batch sizes inside. (``stateful``
    itself stays as it is, so that an error inside names the layer as the user built it.)

    A layer of one's own (a leaf whose class is not the library's) may keep state too
    (``self._s = x.mean(0)``): its instance attributes, arrays, plain dicts and lists and
    buffers are put back as they were on the way out, so that these forwards change none
    of it either (the forwards inside see its state as it is: the library cannot start
    it from zeros; a container of one's own is not looked into, its leaves are)."""
    layers = [model, *(m for _, m in model.named_layers())]
    own = [_snapshot(layer) for layer in _own_leaves(layers)]  # built-in: nothing copied
    kept = [(layer, layer.state, layer.__dict__.get("_states_paused")) for layer in layers
            if isinstance(layer, Recurrent)]
    try:
        for layer, _, _ in kept:
            layer.state, layer._states_paused = None, True
        yield
    finally:
        for layer, state, paused in kept:
            layer.state = state
            if paused is None:
                del layer._states_paused
            else:
                layer._states_paused = paused
        for undo in own:
            for step in undo:
                step()
