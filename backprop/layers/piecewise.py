"""Piecewise-linear activations, as PyTorch defines them: ReLU6, Hardtanh, Hardsigmoid,
Hardswish.

At a breakpoint the derivative is PyTorch's: 0 at both ends of Hardtanh, ReLU6 and
Hardsigmoid (``x`` exactly ``min_val``, ``max_val``, 0, 6 or ±3); Hardswish takes the
outer side at ±3 (0 at -3, 1 at 3). A NaN input gives a NaN output and, as PyTorch's
vectorised loop (2.13, float32 and float64), a derivative of 0 (ReLU6, Hardtanh,
Hardsigmoid) or NaN (Hardswish); PyTorch's scalar loop, which takes the last few
elements of a tensor whose size is not a multiple of 16 (8 in float64), passes ``dy``
instead, except Hardsigmoid's. ``-0.0`` stays ``-0.0`` (``np.clip`` keeps it, where
``np.maximum`` would not). The masks are multiplied in, not selected with ``np.where``
(see :mod:`.activations`), so a NaN or inf ``dy`` where ``f′ = 0`` gives NaN, where
PyTorch's select gives 0 (as ReLU's).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import in_range
from .activations import _KeepsDerivative, _KeepsOutput


class Hardtanh(_KeepsOutput):
    """``x`` clipped to ``[min_val, max_val]``.

    ::

        Forward:   y = clip(x, min_val, max_val)          any shape
        Backward:  dx = dy * ((min_val < y) & (y < max_val))
                                  (= min_val < x < max_val: f′ = 0 at both kinks and for
                                   NaN, as in PyTorch)

    Args:
        min_val: The lower end, a finite number (default -1).
        max_val: The upper end, a finite number greater than ``min_val`` (default 1).
        dtype: Input dtype (default float32).

    Raises:
        ValueError: ``max_val <= min_val`` (PyTorch asserts the same), or an end that is
            not finite.
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        who = type(self).__name__
        self.min_val = in_range(min_val, "min_val", who, -math.inf)
        self.max_val = in_range(max_val, "max_val", who, -math.inf)
        if not self.min_val < self.max_val:
            raise ValueError(f"{who}: expected max_val greater than min_val, got "
                             f"min_val={min_val!r}, max_val={max_val!r}")

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        y = np.clip(x, self.min_val, self.max_val)  # NaN stays NaN, -0.0 stays -0.0
        return self._keep_y(y, training)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._take_y(dy)
        inside = y > self.min_val  # the ends in y's dtype (NEP 50), as clip wrote them
        inside &= y < self.max_val
        return dy * inside


class ReLU6(Hardtanh):
    """ReLU capped at 6 (PyTorch's ``ReLU6``, a ``Hardtanh(0, 6)`` there too).

    ::

        Forward:   y = clip(x, 0, 6)                        any shape
        Backward:  dx = dy * ((0 < y) & (y < 6))            (= 0 < x < 6: f′ = 0 at x = 0,
                                                              x = 6 and NaN, as in PyTorch)

    Args:
        dtype: Input dtype (default float32).
    """

    def __init__(self, *, dtype: Any = np.float32) -> None:
        super().__init__(0.0, 6.0, dtype=dtype)


class Hardsigmoid(_KeepsDerivative):
    """Piecewise-linear sigmoid, ``relu6(x + 3) / 6`` (PyTorch's ``Hardsigmoid``).

    ::

        Forward:   y = clip(x + 3, 0, 6) / 6                any shape
        Backward:  dx = dy * (-3 < x < 3) / 6               (0 at x = ±3 and for NaN, as in
                                                              PyTorch)

    The mask is taken from ``x``, not ``y``: ``x + 3`` rounds to 6 for the float just
    below 3, where PyTorch's derivative is still 1/6. (PyTorch's float64 backward uses
    the float32 ``1/6``, 3e-8 off; here it is the float64 one.)

    Args:
        dtype: Input dtype (default float32).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        y = x + 3.0
        np.clip(y, 0.0, 6.0, out=y)
        y /= 6.0  # a division, as PyTorch's (times 1/6 would round differently)
        if training:
            inside = x > -3.0  # False for NaN: dx = 0 there, as PyTorch
            inside &= x < 3.0
            self._d = np.multiply(inside, 1 / 6, dtype=x.dtype)
        return y


class Hardswish(_KeepsDerivative):
    """``x · hardsigmoid(x)`` (PyTorch's ``Hardswish``, from MobileNetV3).

    ::

        Forward:   y = x * clip(x + 3, 0, 6) / 6             any shape
        Backward:  dx = dy * where(x <= -3, 0, where(x < 3, x / 3 + 1/2, 1))
                                          (PyTorch's sides at the kinks: 0 at -3, 1 at 3;
                                           NaN for NaN x, as its vectorised kernel)

    ``-inf`` gives NaN (``-inf · 0``) and NaN a NaN derivative, as in PyTorch. The
    derivative takes no ``np.where`` and no masks: with ``w = clip(x, -3, 3) / 3`` it is
    ``w + 1/2 - trunc(w) / 2``, as ``trunc(w)`` is ±1 at the clipped ends (``|x| >= 3``)
    and 0 inside (``x / 3`` of the float next to ±3 rounds inside ±1). Its scratch array
    then holds ``y``, so a training forward makes two arrays, ``y`` and the derivative
    (which backward turns into ``dx``): 7.3 -> 4.9 ms forward + backward on 32x64x28x28.

    Args:
        dtype: Input dtype (default float32).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        if training:
            self._d, y = _hardswish_slope(x)
            np.add(x, 3.0, out=y)
        else:
            y = x + 3.0
        np.clip(y, 0.0, 6.0, out=y)
        with np.errstate(invalid="ignore", over="ignore"):  # -inf · 0: NaN, as PyTorch
            y *= x  # (inf beyond max / 6, as PyTorch's: (x · h) / 6, in its order)
        y /= 6.0
        return y


def _hardswish_slope(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hardswish's ``f′(x)``: ``x/3 + 1/2`` on ``(-3, 3)``, 0 from -3 down, 1 from 3 up
    (PyTorch's ``x <= -3 ? 0 : x < 3 ? x/3 + 1/2 : 1``), NaN for NaN (as PyTorch's
    vectorised kernel; its scalar path, which that formula is, gives 1), and the scratch
    array it used (``x``'s shape and dtype, free for the caller)."""
    w = np.clip(x, -3.0, 3.0)  # ±inf -> ±3: finite; NaN stays NaN
    w /= 3.0  # divided, as PyTorch's x / 3
    half_t = np.trunc(w)
    half_t *= -0.5
    w += 0.5
    w += half_t  # ±0 inside; (1.5 - 0.5, -0.5 + 0.5) at the ends: +0.0 below -3
    return w, half_t
