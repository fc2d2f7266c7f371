"""Which thread's ``fit`` is using a model, loss, optimizer or callback.

A layer or loss keeps one forward's cache for its backward, an optimizer its step
count and moments, and a callback the fit it is bound to: two threads training with the
same object would mix their batches (a loss shared by two fits gave wrong epoch losses,
and could hand one thread the other's gradient). PyTorch's stateless criteria allow it;
here such a second fit, or an ``evaluate`` with a loss a fit in another thread is using,
is refused by name.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_BUSY: dict[int, int] = {}  # id(object) -> the thread whose fit is using it
_LOCK = threading.Lock()
_COPY = {"model": "copy.deepcopy(model)", "loss": "copy.copy(loss)",
         "optimizer": "an optimizer over its own model", "callback": "one built for each fit"}
_WHY = "its cache holds that thread's batch for its backward: the two would mix"
_WHY_CALLBACK = ("it is bound to one fit's model at a time: a shared EarlyStopping restored "
                 "one thread's best weights into the other's model")


@contextlib.contextmanager
def claimed(who: str, parts: dict[str, Any], hold: bool = True) -> Iterator[None]:
    """Hold ``parts`` (name -> object; a model's layers too: ``model[1:]`` shares them)
    for this thread's fit; ``hold=False`` only checks that no fit in another thread holds
    them. A fit inside a fit of the same thread (a callback's) is let through."""
    me = threading.get_ident()
    pairs = [(n, o) for n, v in parts.items()  # a list: each item under the one name
             for o in (v if isinstance(v, (list, tuple)) else (v,))]
    model = parts.get("model")
    if hasattr(model, "named_layers"):
        pairs += [("model", layer) for _, layer in model.named_layers()]
    pairs = [(n, o) for n, o in pairs if hasattr(o, "__dict__")]  # not None or a str: fit
    with _LOCK:  # refuses those by type, whichever thread passes them
        for name, obj in pairs:
            owner = _BUSY.get(id(obj))
            if owner is not None and owner != me:
                raise RuntimeError(
                    f"{who}: expected a {name} no other thread is training with, got one a "
                    f"fit in another thread is using "
                    f"({_WHY_CALLBACK if name == 'callback' else _WHY}); give each thread "
                    f"its own, {_COPY[name]}")
        taken = list({id(obj) for _, obj in pairs if hold and id(obj) not in _BUSY})
        for key in taken:
            _BUSY[key] = me
    try:
        yield
    finally:
        with _LOCK:
            for key in taken:
                _BUSY.pop(key, None)
