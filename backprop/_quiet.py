"""No NumPy floating-point warnings out of the library's layers and losses, as PyTorch.

An inf or NaN input, or values past the dtype's range, give the same inf and NaN as
PyTorch's, which never warns: NumPy would print "overflow encountered in matmul" (an
error under ``-W error``). Each ``forward``, ``backward``, ``backward_params`` and
``forward_masked`` that a class of ``backprop`` defines runs with NumPy's ``"warn"``
settings read as ``"ignore"``; a setting the caller chose (``np.seterr(all="raise")``
to find where a NaN starts, ``"call"``) is kept. Only the outermost call pays for it
(~2 us): a model's layers, and the steps of ``fit`` (which sets its own state, see
``training``), run inside it and check one thread-local flag.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ._validate import boolean

_METHODS = ("forward", "backward", "backward_params", "forward_masked")


class _State(threading.local):
    on = False  # inside a quieted call on this thread


_state = _State()


def quieted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with NumPy's floating-point warnings off (see the module docstring); a
    forward called from outside also gets its ``training`` checked (a string such as
    ``"False"`` is truthy: it would cache, or train a Dropout)."""
    forward = fn.__name__.startswith("forward")

    @functools.wraps(fn)
    def method(*args: Any, **kwargs: Any) -> Any:
        if _state.on:
            return fn(*args, **kwargs)
        if forward and type(kwargs.get("training", False)) is not bool:
            kwargs["training"] = boolean(kwargs["training"], "training",
                                         f"{type(args[0]).__name__}.{fn.__name__}")
        _state.on = True
        try:
            with np.errstate(**{k: "ignore" if v == "warn" else v
                                for k, v in np.geterr().items()}):
                return fn(*args, **kwargs)
        finally:
            _state.on = False
    method._quiet = True  # type: ignore[attr-defined]
    return method


def quiet_methods(cls: type) -> None:
    """Wrap the passes ``cls`` itself defines, if it is one of the library's classes."""
    if not cls.__module__.startswith("backprop."):
        return
    for name in _METHODS:
        fn = cls.__dict__.get(name)
        if callable(fn) and not getattr(fn, "_quiet", False):
            setattr(cls, name, quieted(fn))


class inside:
    """Run a block as if inside a quieted call (``fit``'s steps, under its own errstate:
    the passes in it skip theirs), or with ``inside(False)`` as if outside one (fit's
    callbacks, under the caller's settings: a layer they call quiets itself again)."""

    def __init__(self, on: bool = True) -> None:
        self._on = on

    def __enter__(self) -> None:
        self._was, _state.on = _state.on, self._on

    def __exit__(self, *exc: Any) -> None:
        _state.on = self._was
