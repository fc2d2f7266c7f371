"""Allocating a layer's arrays with an error that names the layer (see :mod:`.base`)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import numpy as np

from .._validate import MEMORY, gib


def filled(who: str, name: str, shape: Any, dtype: Any, value: float,
           gradient: bool = True) -> np.ndarray:
    """``np.full(shape, value, dtype)`` through :func:`allocated`: a parameter (or, with
    ``gradient=False``, a buffer) of ones, zeros or a constant."""
    return allocated(who, name, shape, dtype, lambda: np.full(shape, value, dtype), gradient)


def allocated(who: str, name: str, shape: Any, dtype: Any, make: Callable[[], np.ndarray],
              gradient: bool = True) -> np.ndarray:
    """``make()``, or a MemoryError naming the layer and the array: a size typed wrong
    (``Dense(10**6, 10**6)``, ``BatchNorm(10**12)``) asks for terabytes, and NumPy's own
    error (a ValueError past 2**63 bytes) names neither."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    size = math.prod(shape) * np.dtype(dtype).itemsize
    left = _BUDGET.get()
    if left is not None and gradient:  # load's rebuild: no more weights than the file's
        left[0] -= math.prod(shape)  # (counted in entries: a constructor may build
        if left[0] < 0:  # float64 that the file stores, and build() casts, as float32)
            raise OverBudget(f"{who}: {name!r} of shape {shape} holds {math.prod(shape):,} "
                             f"weights, more than all the file stores (at most {left[1]:,})")
    try:
        if size >= min(MEMORY, 1 << 62):  # past the machine: drawing it would thrash first
            raise MemoryError
        return make()
    except MemoryError as err:
        more = ", and as much again for its gradient" if gradient else ""
        raise MemoryError(f"{who}: cannot allocate {name!r} of shape {shape} ({gib(size)} GiB of "
                          f"{np.dtype(dtype)}{more})") from err


class OverBudget(MemoryError):
    """A layer rebuilt by ``load`` asks for more weights than its file stores."""


_BUDGET: ContextVar[list[int] | None] = ContextVar("_BUDGET", default=None)


@contextlib.contextmanager
def weights_budget(nbytes: int) -> Iterator[None]:
    """Inside, the parameters :func:`allocated` makes may hold at most ``nbytes / 4``
    entries (a float32's size: no stored float is smaller): a file's header sizes
    (``Dense(10**8, 4)`` in a 2 KB file) are refused before the model takes gigabytes,
    not after, when its weights are found to be of another shape."""
    token = _BUDGET.set([nbytes // 4, nbytes // 4])
    try:
        yield
    finally:
        _BUDGET.reset(token)
