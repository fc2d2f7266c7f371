"""What :func:`backprop.save` checks of the optimizer it is given: that it trains the
model saved beside it (a review found one over another model's parameters accepted, and
the checkpoint failing, or loading the wrong state, only at resume)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .layers.base import Layer
from .optimizers import OPTIMIZERS
from .optimizers.base import Optimizer


def check_optimizer(model: Layer, optimizer: Any, state: dict[str, Any], who: str) -> None:
    """Refuse an optimizer over another model's parameters: its state, saved beside this
    model, would fail (or load another model's moments) at resume."""
    ours = model.params
    bad = _strangers(ours, optimizer, state)
    if bad:
        raise ValueError(f"{who}: the optimizer's parameters are not this model's: "
                         f"{_listed(bad)} match none of its parameters by shape (it has "
                         f"{_listed(list(ours.items()))}); pass the optimizer that trains "
                         "this model, built over model.parameters() or some of them. "
                         "Nothing was written")


def _strangers(ours: dict[str, np.ndarray], optimizer: Any, state: dict[str, Any]
               ) -> list[tuple[str, np.ndarray]]:
    """``(name, array)`` of what the optimizer holds for no parameter of the model.

    A live optimizer's parameters that are the model's own arrays (any of them: frozen
    layers are left out) take their places; every other one (a twin model's, loose arrays
    saved beside a model) must take the place of a parameter of its shape not yet taken,
    as must each entry of a built-in optimizer's state dict (whose names are positions
    or a layer's own where the optimizer was built over a part). Names are not compared,
    nor dtypes: files that carry a loose optimizer's state are written that way. Another
    kind of state has a layout of its own: nothing is checked."""
    free = Counter(v.shape for v in ours.values())
    if isinstance(optimizer, Optimizer):
        known = {id(v) for v in ours.values()}
        free.subtract(p.value.shape for p in optimizer.params if id(p.value) in known)
        held = [(p.name, p.value) for p in optimizer.params if id(p.value) not in known
                and not any(np.may_share_memory(p.value, v) for v in ours.values())]
    elif state.get("type") in {c.__name__ for c in OPTIMIZERS.values()} \
            and isinstance(state.get("state"), dict):
        held = [(str(name), a) for name, entry in state["state"].items()
                for a in [next(iter(entry.values()), None) if isinstance(entry, dict) else None]
                if isinstance(a, np.ndarray)]
    else:
        return []
    bad = []
    for name, a in held:
        if free[a.shape] > 0:
            free[a.shape] -= 1
        else:
            bad.append((name, a))
    return bad


def _listed(pairs: list[tuple[str, np.ndarray]]) -> str:
    text = ", ".join(f"{n!r} {a.shape} {a.dtype}" for n, a in pairs[:4])
    return text + (f" and {len(pairs) - 4} more" if len(pairs) > 4 else "")
