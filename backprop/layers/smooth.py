"""Smooth activations: SiLU (swish) and Softplus, as PyTorch defines them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from .._validate import in_range
from .activations import _Elementwise, _KeepsDerivative


class SiLU(_Elementwise):
    """Sigmoid-weighted linear unit, ``x · sigmoid(x)`` (PyTorch ``SiLU``, Keras
    ``swish``/``silu``).

    ::

        Forward:   s = 1 / (1 + exp(-x))      y = x * s
        Backward:  dx = dy * s * (1 + x * (1 - s))

    A training forward keeps ``x`` and ``s`` (``layer.cache``), so backward computes
    no exponential.
    """

    _cache_attrs = ("_x", "_s")

    def __init__(self, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self._x: np.ndarray | None = None
        self._s: np.ndarray | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        s = backend.expit(x)
        y = x * s
        if training:
            self._x, self._s = x, s
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, s = self._pop("_x", "_s")
        self._check_dy(dy, s.shape)
        dx = 1 - s  # built in one buffer: 1 + x (1 - s), then times s and dy
        dx *= x
        dx += 1
        dx *= s
        dx *= dy
        return dx


class Softplus(_KeepsDerivative):
    """Smooth ReLU, ``log(1 + exp(β x)) / β``, linear above a threshold (PyTorch
    ``Softplus``; Keras' ``softplus`` is β = 1 without the threshold).

    ::

        Forward:   y = log(1 + exp(β x)) / β     where β x <= threshold, else y = x
        Backward:  dx = dy * sigmoid(β x)         where β x <= threshold, else dy

    Args:
        beta: β > 0 (default 1).
        threshold: Above ``β x > threshold`` the layer is the identity, as PyTorch's
            (default 20, where the two differ by less than ``exp(-20)``).
        dtype: Input dtype (default float32).
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.beta = in_range(beta, "beta", "Softplus", 0.0, low_open=True)
        self.threshold = in_range(threshold, "threshold", "Softplus", -math.inf)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        bx = x * self.beta if self.beta != 1.0 else x  # read only: no copy needed
        linear = bx > self.threshold
        e = np.minimum(bx, self.threshold)  # no overflow where linear
        np.exp(e, out=e)
        y = np.log1p(e)
        if self.beta != 1.0:
            y *= 1.0 / self.beta
        np.copyto(y, x, where=linear)
        if training:
            e /= e + 1  # sigmoid(β x) = e / (1 + e)
            e[linear] = 1.0
            self._d = e
        return y
