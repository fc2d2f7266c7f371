"""RReLU: the leaky ReLU whose negative slope is drawn at random while training."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import initializers
from .._validate import boolean, in_range
from .activations import _KeepsDerivative, _slopes


class RReLU(_KeepsDerivative):
    """Randomized leaky ReLU (PyTorch's ``RReLU``; Xu et al., 2015): in training each
    element gets its own slope for ``x <= 0``, drawn from ``U(lower, upper)``; in inference
    the slope is their mean.

    ::

        Forward:   r ~ U[lower, upper) elementwise, drawn from self.rng    any shape
                   d = where(x <= 0, r, 1)                   (training)   = f′(x), cached
                   d = where(x > 0, 1, (lower + upper) / 2)  (inference)
                   y = x * d
        Backward:  dx = dy * d

    At ``x = 0`` the derivative is the left one (the drawn slope ``r`` in training, the
    mean in inference), as in PyTorch. The random slopes act as a regulariser, as dropout
    does; like Dropout's masks they come from ``self.rng`` (same seed, same slopes, saved
    with the model). A NaN input gets slope 1 in training (NaN out, ``dy`` back), as in
    PyTorch, whose kernel draws a slope only where ``x <= 0``.

    Args:
        lower: Lower bound of the slopes, any finite number (default 1/8).
        upper: Upper bound, finite and >= ``lower`` (default 1/3).
        rng: Generator or int seed for the slopes.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: ``lower > upper`` (PyTorch: "Lower bound should be less than or equal
            to the upper bound"), or either not finite (PyTorch: "lower bound must be
            finite").
        TypeError: ``lower`` or ``upper`` not a number.
    """

    def __init__(self, lower: float = 1 / 8, upper: float = 1 / 3, *,
                 rng: np.random.Generator | int | None = None, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.lower = in_range(lower, "lower", "RReLU", -math.inf)
        self.upper = in_range(upper, "upper", "RReLU", -math.inf)
        if self.lower > self.upper:
            raise ValueError(f"RReLU: expected lower <= upper, got lower={lower!r} > "
                             f"upper={upper!r}")
        self.rng = initializers.make_rng(rng, "RReLU")

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        if type(training) is not bool:  # "False", a str, would draw slopes
            training = boolean(training, "training", repr(self))
        if not training:
            with np.errstate(over="ignore", invalid="ignore"):  # -inf · 0: NaN, as PyTorch
                return x * _slopes(x, (self.lower + self.upper) / 2)
        d = self.rng.random(x.shape, dtype=self.dtype)
        d *= self.upper - self.lower
        d += self.lower  # r ~ U[lower, upper)
        np.copyto(d, 1, where=~(x <= 0))  # only 0 and negatives keep r (NaN: 1), as PyTorch
        self._d = d
        with np.errstate(over="ignore", invalid="ignore"):
            return x * d
