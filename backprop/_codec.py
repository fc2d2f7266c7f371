"""JSON with arrays and tuples: how a saved file's model description (configs, Generator
and recurrent states) keeps what JSON cannot (used by :mod:`backprop._layer_tree`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def encode(obj: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """``obj`` as JSON-able data; arrays go to ``arrays[key...]`` and leave a reference."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"save: expected {key} to be a numeric array, got dtype object")
        if key in arrays:
            raise ValueError(f"save: expected one array named {key}, got two")
        arrays[key] = obj
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"save: expected string keys in {key}, got {k!r}")
        if set(obj) in ({"__ndarray__"}, {"__tuple__"}):  # would read back as what they mark
            raise ValueError(f"save: expected a dict in {key} without the reserved key "
                             f"{next(iter(obj))!r} alone (the file's marker for an array or "
                             f"a tuple)")
        return {k: encode(v, f"{key}/{k}", arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [encode(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save: expected JSON-able data or arrays in {key}, got a value of "
                    f"type {type(obj).__name__}")


def decode(obj: Any, arrays: dict[str, np.ndarray], who: str) -> Any:
    if isinstance(obj, list):
        return [decode(v, arrays, who) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__ndarray__"}:
        name = obj["__ndarray__"]
        if not isinstance(name, str) or name not in arrays:
            raise ValueError(f"{who}: expected an array {name!r}, the file has none")
        return arrays[name]
    if set(obj) == {"__tuple__"}:
        if not isinstance(obj["__tuple__"], list):
            raise ValueError(f"{who}: expected a tuple stored as a list, got "
                             f"{obj['__tuple__']!r}")
        return tuple(decode(v, arrays, who) for v in obj["__tuple__"])
    return {k: decode(v, arrays, who) for k, v in obj.items()}
