"""PReLU: a leaky ReLU whose negative slope is learnt (PyTorch's ``PReLU``)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from .. import backend
from .._validate import in_range, positive_int
from ._alloc import filled
from ._sums import channel_sum
from .base import Layer


class PReLU(Layer):
    """Parametric ReLU: ``y = x`` for ``x > 0``, ``alpha * x`` otherwise, ``alpha`` learnt.

    One slope for all inputs (``num_parameters=1``, the default), or one per channel
    ``c`` of axis 1 of ``x (N, C, *)`` (``num_parameters=C``), as in PyTorch::

        Forward:   y = where(x > 0, x, alpha[c] * x)
        Backward:  dx = dy * where(x > 0, 1, alpha[c])
                   dalpha[c] = (dy * where(x > 0, 0, x)).sum over N and the positions
                               of channel c (over everything with one slope)

    As in PyTorch, ``x = 0`` takes the negative side (``dx = alpha * dy``, which adds
    0 to ``dalpha``), and PyTorch's ``weight`` is ``alpha`` here (``from_torch`` maps
    it). Keras' ``PReLU`` (one slope per feature, starting at 0) is
    ``PReLU(num_features, init=0.0)`` on ``(N, features)``.

    Args:
        num_parameters: 1, or the number of channels ``C`` (axis 1 of the input).
        init: The initial slope (default 0.25, as PyTorch).
        dtype: Parameter and input dtype (default float32).
    """

    _set_once = frozenset({"num_parameters"})  # see Layer._set_once

    _cache_attrs = ("_x",)
    _config_skip: ClassVar[tuple[str, ...]] = ("rng",)  # init is a number here: kept

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.num_parameters = positive_int(num_parameters, "num_parameters", "PReLU")
        self.init = in_range(init, "init", "PReLU", -math.inf)  # finite, any sign
        self.add_param("alpha", filled("PReLU", "alpha", self.num_parameters, self.dtype,
                                       self.init))
        self._x: np.ndarray | None = None

    @property
    def mask_passes(self) -> bool:  # type: ignore[override]
        """A padding mask ``(N, T)`` passes one slope for all (axis 1 would be the steps)."""
        return self.num_parameters == 1

    def _slope(self, x: np.ndarray) -> np.ndarray:
        """``alpha`` shaped to broadcast over ``x``: a 0-d view, or ``(C, 1, ...)``."""
        alpha = self.params["alpha"]
        if self.num_parameters == 1:
            return alpha.reshape(())
        return alpha.reshape((-1,) + (1,) * (x.ndim - 2))

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        if self.num_parameters == 1:
            self._check_batched(x)
        else:
            rest = max(getattr(x, "ndim", 2) - 2, 0)
            self._check_input(x, "N", self.num_parameters, *(None,) * rest)
        # max(x, 0) + alpha·min(x, 0): one term is exactly 0 (NaN stays NaN), with no
        # masked write (np.copyto(where=) ran 3.5x as long on a random sign pattern)
        y = backend.relu(x)  # np.maximum(x, 0) (+0.0 for -0.0), 1.5x faster
        negative = np.clip(x, -np.inf, 0.0)  # (clip keeps -0.0: y's +0.0 absorbs it)
        with np.errstate(over="ignore", invalid="ignore"):  # -inf · 0, -3e38 · 4: as PyTorch
            negative *= self._slope(x)
        y += negative
        if training:
            self._x = x
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x = self._pop("_x")
        self._check_dy(dy, x.shape)
        with np.errstate(over="ignore", invalid="ignore"):  # x·dy past the range: ±inf, NaN
            return self._backward(x, dy)                    # from inf - inf, as PyTorch's

    def _backward(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        positive = x > 0
        # where(x > 0, 1, alpha) with no np.where (13.6 vs 2.8 ms on 32x64x28x28, a random
        # sign pattern), negated: -((not x > 0)·(-alpha) - (x > 0)). One term is exactly
        # 0, and subtracting a False (+0.0) keeps a slope of -0.0, as adding would not.
        slope = self._slope(x)
        if np.isfinite(slope).all():
            dx = np.multiply(~positive, -slope, dtype=x.dtype)
            dx -= positive
            dx *= dy
            backend.negate(dx, out=dx)
        else:  # 0 · NaN would reach x > 0 too: there dy passes, as PyTorch's select
            dx = np.where(positive, dy, slope * dy).astype(x.dtype, copy=False)
        grad = self.grads["alpha"]
        # dalpha's terms min(x, 0)·dy: x·dy where x <= 0 and ±0 elsewhere (sums start
        # from +0.0: all-zero terms give +0.0, as the select's +0.0 did)
        t = np.clip(x, -np.inf, 0.0)
        t *= dy  # 0 · inf: NaN, replaced below
        self._sum(t, grad)
        if not np.isfinite(grad).all():  # an inf or NaN dy where x > 0 adds 0 there, as
            self._sum(np.where(positive, 0, x * dy), grad)  # PyTorch's, not NaN: select
        return dx

    def _sum(self, t: np.ndarray, grad: np.ndarray) -> None:
        """``grad`` = ``t`` summed over everything (one slope) or per channel."""
        if self.num_parameters == 1:
            grad[0] = t.sum()
        else:
            channel_sum(t, out=grad)
