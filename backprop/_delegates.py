"""A method that hands its model to a function of :mod:`backprop.training` or
:mod:`backprop.serialization` (``model.fit`` is ``training.fit(model, ...)``) shows that
function's signature and docstring."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def delegates(func: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a method that passes ``self`` on to ``func`` that function's signature (its
    first parameter, the model, named ``self``) and docstring."""
    def mirror(method: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func)
        first, *rest = sig.parameters.values()
        method.__signature__ = sig.replace(parameters=[first.replace(name="self"), *rest])
        lines = (func.__doc__ or "").replace("``model``", "the model").splitlines()
        method.__doc__ = "\n".join(line for line in lines  # its model is self: no Args entry
                                    if not line.lstrip().startswith("model: "))
        return method
    return mirror
