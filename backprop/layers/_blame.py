"""Naming the layer of one's own that handed on a wrong array, where the layer after it
(forward) or before it (backward) refused it: that layer's error names itself and what it
got, which reads as if the model's input or the loss's gradient were at fault.

Only the failure path of :class:`~backprop.Sequential`'s passes calls these (and
:func:`check_output` once per forward), so the hot loops stay as they are.
"""

from __future__ import annotations

import re
import warnings
import weakref
from typing import Any

import numpy as np

from .._validate import caller_level


def _wrong(a: Any, dtype: np.dtype) -> str | None:
    """What is wrong with ``a`` as an array passed between a model's layers, or None: not
    an array, or floats of another width (ints pass: indices for an Embedding)."""
    if not isinstance(a, np.ndarray):
        return f"a {type(a).__name__}"
    return f"dtype {a.dtype}" if a.dtype.kind == "f" and a.dtype != dtype else None


def _index(model: Any, layer: Any) -> int:
    return next((i for i, lay in enumerate(model.layers) if lay is layer), -1)


def check_output(model: Any, y: Any, training: bool) -> Any:
    """``y``, or a TypeError naming the last layer when the model's output is floats of
    another dtype than the model's (a float32 model returns float32)."""
    if getattr(y, "dtype", model.dtype) != model.dtype and y.dtype.kind == "f":
        if training:
            model.clear_cache()
        last, got = len(model.layers) - 1, y.dtype
        slip = (f"a {got} constant or astype upcasts" if got.itemsize > model.dtype.itemsize
                else f"an astype to {got} or a buffer made as {got} downcasts")
        raise TypeError(f"Sequential: expected layer {last} {model.layers[last]!r} to return "
                        f"the model's dtype {model.dtype}, got {got} (its forward must "
                        f"keep the dtype: {slip})")
    return y


def blame_output(model: Any, layer: Any, x: Any, err: BaseException) -> None:
    """Re-raise ``err`` (from ``layer``'s forward) naming the layer before it when that one
    returned no array of the model's dtype (a TypeError), else naming ``layer``'s index
    when another layer of the model reads the same (see :func:`name_position`)."""
    i = _index(model, layer)
    wrong = _wrong(x, model.dtype) if i > 0 and isinstance(err, TypeError) else None
    if wrong is not None:
        raise TypeError(f"Sequential: expected layer {i - 1} {model.layers[i - 1]!r} to "
                        f"return an array of the model's dtype {model.dtype}, got {wrong}, "
                        f"which layer {i} refused: {err}") from err
    name_position(model, i, err)


def name_position(model: Any, i: int, err: BaseException) -> None:
    """Re-raise ``err`` (a plain TypeError, ValueError or RuntimeError from layer ``i``)
    prefixed with where it came from, ``Sequential: layer 2:``, when another layer reads
    the same (which of the model's ``Dense(256, 256)``), or ``layer 1.bn1:`` when a layer
    inside layer ``i`` raised it (a block of one's own holds several ``BatchNorm(8)``); a
    Sequential inside it named its own layer: ``layer 2.1:``, not its ``layer 1:``."""
    if i < 0 or type(err) not in (TypeError, ValueError, RuntimeError):
        return
    path, message = _raised_in(model.layers[i], str(i), err), str(err)
    if message.startswith("Sequential: "):  # a Sequential at ``path`` named its own layer
        inner = re.match(r"Sequential: layer (\S+): ", message)
        raise type(err)(f"Sequential: layer {path}.{inner[1]}: {message[inner.end():]}"
                        if inner else f"Sequential: layer {path}: {message}") from err
    name = repr(model.layers[i])
    if path != str(i) or sum(repr(la) == name for la in model.layers) > 1:
        raise type(err)(f"Sequential: layer {path}: {err}") from err


def _raised_in(layer: Any, at: str, err: BaseException) -> str:
    """The path of the innermost of ``layer`` and its sub-layers whose method is on
    ``err``'s traceback (``at`` for ``layer`` itself, or when none is)."""
    paths = {id(layer): at, **{id(la): f"{at}.{p}" for p, la in layer.named_layers()}}
    found, tb = at, err.__traceback__
    while tb is not None:
        found = paths.get(id(tb.tb_frame.f_locals.get("self")), found)
        tb = tb.tb_next
    return found


def blame_dx(model: Any, layer: Any, dy: Any, err: BaseException) -> None:
    """Re-raise ``err`` (from ``layer``'s backward) naming the layer above it, whose
    backward returned ``dy``, when ``dy`` is no array of the model's dtype or ``layer``
    refused its shape."""
    i = _index(model, layer)
    if i < 0 or i == len(model.layers) - 1 or isinstance(err, RuntimeError):
        name_position(model, i, err)  # dy from the caller, or no cache: no layer above to blame
        return
    above, wrong = f"layer {i + 1} {model.layers[i + 1]!r}", _wrong(dy, model.dtype)
    if wrong is not None:
        raise TypeError(f"Sequential: expected {above} to return dx as an array of the "
                        f"model's dtype {model.dtype} from its backward, got {wrong}, which "
                        f"layer {i} refused: {err}") from err
    if isinstance(err, ValueError) and "expected dy of shape" in str(err):
        raise ValueError(f"Sequential: expected {above} to return dx of its input's shape "
                         f"from its backward, got {dy.shape}, which layer {i} refused: "
                         f"{err}") from err
    name_position(model, i, err)


FORWARD_COUNT = ("_forwards", "_forward_input")  # a Sequential's, since its last backward


def without_count(state: dict[str, Any]) -> dict[str, Any]:
    """A Sequential's ``__dict__`` less its forward count (a copy or pickle starts afresh;
    the count holds a weak reference, which pickle refuses)."""
    return {k: v for k, v in state.items() if k not in FORWARD_COUNT}


def note_forward(model: Any, given: Any) -> None:
    """Count a training forward (of ``given``, the input as passed) since the last
    backward: a forward of the same input again (a notebook cell run twice) counts once.
    The input is known by a weak reference (by its id where it takes none, a list): an id
    alone is reused once its array is freed, and a GAN's two float64 batches, each freed
    after its cast, counted as one."""
    last = model._forward_input
    if last is None or (last() is not given if isinstance(last, weakref.ref)
                        else last != id(given)):
        model._forwards += 1
        try:
            model._forward_input = weakref.ref(given)
        except TypeError:
            model._forward_input = id(given)


def read_only_if_cached(model: Any, y: Any) -> Any:
    """``y`` as a read-only view when a layer keeps it (or a view of it) as its cache
    (ReLU, Tanh, Sigmoid, Softmax keep their output; Flatten, Reshape or Identity after
    one hand on a view of it): ``y -= t`` before the backward then raises NumPy's "output
    array is read-only", where it changed that layer's dx silently (PyTorch raises for
    such an in-place change too). The leaves (inside containers of one's own too) are
    looked at from the last back to the first with parameters (which makes a new array):
    a model ending in Dense, 1.5 µs."""
    if not isinstance(y, np.ndarray) or not y.flags.writeable:
        return y
    root = _root(y)  # a common base array (np.may_share_memory: 4.7 µs a step, this 2)
    for layer in _leaves_from_the_end(model):
        for name in type(layer)._cache_attrs:
            a = getattr(layer, name, None)
            if isinstance(a, np.ndarray) and _root(a) is root:
                y = y.view()
                y.flags.writeable = False
                return y
        if layer.params:
            break
    return y


def _leaves_from_the_end(layer: Any) -> Any:
    """The leaves of nested containers, last first (a Sequential's layers; another
    container's children, in the order it lists them; a leaf: itself)."""
    kids = getattr(layer, "layers", None)
    if not kids:
        kids = [child for _, child in layer.children()]
    if not kids:
        yield layer
        return
    for kid in reversed(kids):
        yield from _leaves_from_the_end(kid)


def _root(a: np.ndarray) -> np.ndarray:
    """The array ``a`` is a view of (through views of views), or ``a`` itself."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def check_forwards(model: Any) -> None:
    """At a backward: warn after two or more counted forwards, then count afresh (a copy
    or a pickle of the model starts afresh too: see ``Sequential.__setstate__``)."""
    if model._forwards > 1:
        warn_forwards(model)
    model._forwards, model._forward_input = 0, None


def warn_forwards(model: Any) -> None:
    """A UserWarning for a backward after training forwards of two or more inputs
    (PyTorch's GAN step, ``loss(D(real)) + loss(D(fake))`` then one backward): each layer
    keeps one cache, so the gradients are the latest forward's alone, silently (PyTorch
    sums both graphs')."""
    warnings.warn(
        f"Sequential: backward after training forwards of {model._forwards} inputs: the "
        f"gradients are those of the latest forward alone (a layer keeps one forward's cache; "
        f"PyTorch would sum both graphs'). For two inputs (a GAN's real and fake batches), "
        f"run a forward and a backward for each and add the gradients (a copy of "
        f"model.flat_grads between), "
        f"or put them in one batch; model.clear_cache() after forwards that need no backward "
        f"(Monte Carlo dropout) drops their count", UserWarning, stacklevel=caller_level())


def set_once_error(layer: Any, name: str, value: Any) -> AttributeError:
    """The refusal of a ``_set_once`` setting assigned after construction."""
    who = type(layer).__name__
    return AttributeError(f"{who}: {name} is fixed when the layer is built (its geometry and "
                          f"arrays follow from it: set later, it would reach repr and saved "
                          f"files but not what the layer computes), got {name} = {value!r}; "
                          f"build a new layer: {who}(..., {name}={value!r})")


def numpy_float(value: Any) -> bool:
    """Whether ``value`` is a NumPy float scalar (or a 0-d float array): assigned to a
    setting held as a Python float (``bn.eps = np.float64(1e-3)``, a value from
    ``np.logspace``), ``Cached.__setattr__`` (layers and losses) stores ``float(value)``,
    as the constructors do, so a float32 layer's outputs stay float32."""
    return isinstance(value, np.floating) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind == "f")
