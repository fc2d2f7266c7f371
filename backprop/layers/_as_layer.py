"""``as_layer``: what the tools that take a model (``check_gradients``, ``trace``,
``Bidirectional``) say of an object that is no initialised layer."""

from __future__ import annotations

from typing import Any

from .base import Layer


def as_layer(obj: Any, who: str, what: str) -> Layer:
    """``obj`` if it is an initialised :class:`Layer`, else a TypeError naming ``who``/``what``.

    A subclass whose ``__init__`` skips ``super().__init__()`` has no ``dtype``, params
    or grads; said here, not as an AttributeError deep inside training.
    """
    if isinstance(obj, type) and issubclass(obj, Layer):
        raise TypeError(f"{who}: expected {what} to be a backprop Layer, got the class "
                        f"{obj.__name__} itself; create one: {obj.__name__}(...)")
    if not isinstance(obj, Layer):
        raise TypeError(f"{who}: expected {what} to be a backprop Layer, got {type(obj).__name__}")
    if not hasattr(obj, "dtype"):
        raise TypeError(f"{who}: expected {what} to be an initialised Layer, got a "
                        f"{type(obj).__name__} whose __init__ does not call "
                        "super().__init__() (which sets dtype, params, grads and buffers)")
    return obj
