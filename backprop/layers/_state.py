"""``state_dict`` / ``load_state_dict`` of any layer or model, as in PyTorch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` left out: names the layer has that the
    state lacks, and names in the state the layer does not have."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def state_dict(layer: Any) -> dict[str, np.ndarray]:
    """Copies of the parameters and buffers, by their dotted names."""
    return {k: v.copy() for k, v in (*layer.params.items(), *layer.buffers.items())}


def load_state_dict(layer: Any, state: Any, strict: Any) -> IncompatibleKeys:
    """Copy ``state`` into the layer's own arrays; all checked before any is written."""
    name = repr(layer)
    if "\n" in name or len(name) > 60:  # a model: its class name
        name = type(layer).__name__
    who = f"{name}.load_state_dict"
    if not isinstance(state, Mapping):
        raise TypeError(f"{who}: expected a mapping of names to arrays (from state_dict()), "
                        f"got {type(state).__name__}")
    if not isinstance(strict, bool | np.bool_):
        raise TypeError(f"{who}: expected strict to be True or False, got {strict!r}")
    target = {**layer.params, **layer.buffers}
    missing = [k for k in target if k not in state]
    unexpected = sorted(str(k) for k in state if k not in target)
    if strict and (missing or unexpected):
        raise ValueError(f"{who}: expected the names {list(target)}; missing {missing}, "
                         f"unexpected {unexpected} (strict=False loads the names that match)")
    sources = {k: _source(state[k], dst, k, who) for k, dst in target.items() if k in state}
    for k, src in sources.items():
        np.copyto(target[k], src, casting="same_kind")  # in place: optimizers keep their views
    return IncompatibleKeys(missing, unexpected)


def _source(value: Any, dst: np.ndarray, key: str, who: str) -> np.ndarray:
    """``value`` as an array ``dst`` may take: the same shape, a real number dtype that
    casts to ``dst.dtype`` within its kind (float64 into float32, as PyTorch's copy)."""
    try:
        src = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who}: expected an array for {key!r}, got {type(value).__name__} "
                        f"({err})") from None
    if src.dtype.kind not in "biuf" or not np.can_cast(src.dtype, dst.dtype, "same_kind"):
        raise TypeError(f"{who}: expected {key!r} as real numbers castable to {dst.dtype}, "
                        f"got dtype {src.dtype}")
    if src.shape != dst.shape:
        raise ValueError(f"{who}: expected {key!r} of shape {dst.shape}, got {src.shape}")
    return src
