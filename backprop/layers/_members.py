"""Which model holds a layer's parameters in its flat buffer: a parameter added to such a
layer (``add_param`` or ``self.params["w"] = ...`` at its first forward, PyTorch's lazy
layers' habit) is held by no flat buffer and trained by no optimizer, so it is refused.

The registry is weak on both sides and outside the layers: a deepcopy or pickle of a
layer is in no model, and a layer whose model is gone (or which left it) takes
parameters again.
"""

from __future__ import annotations

import weakref
from typing import Any

_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> {id: ref(model)}
_PARAMS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # id(params) -> layer


def joined(layer: Any, model: Any) -> None:
    """Note that ``model``'s flat buffer now holds ``layer``'s parameters (every model's:
    a layer put in a second model may still be in the first)."""
    refs = _MODELS.setdefault(layer, {})  # by identity: a model class with __eq__ has no hash
    key = id(model)
    refs[key] = weakref.ref(model, lambda _: refs.pop(key, None))
    _PARAMS[id(layer.params)] = layer


def refuse_new_param(layer: Any, name: str, who: str) -> None:
    """A RuntimeError when ``layer`` is in a live model that flattened it. (A model in a
    reference cycle, as after ``fit`` with some callbacks, lives until the collector
    runs.)"""
    models = [m for m in (ref() for ref in list(_MODELS.get(layer, {}).values())) if m is not None]
    if not any(lay is layer for m in models for _, lay in m.named_layers()):
        return
    raise RuntimeError(
        f"{who}: expected parameters registered in __init__, got {name!r} added to "
        f"{layer!r} inside a model (as PyTorch's lazy layers do at their first forward): "
        f"the model's flat buffer and its optimizers would never hold or train it; add it "
        f"in __init__ (take its size as an argument), or write new values into an existing "
        f"one (self.params[name][...] = value)")


def refuse_new_key(params: Any, name: str) -> None:
    """:func:`refuse_new_param` for a new name written into a layer's ``params``."""
    layer = _PARAMS.get(id(params))
    if layer is not None and layer.params is params:
        refuse_new_param(layer, name, f"{type(layer).__name__}.params[{name!r}] = ...")
