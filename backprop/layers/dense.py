"""Dense (fully connected) layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from .._validate import boolean, positive_int
from .base import Layer


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    ::

        Forward:   y = x @ W + b              x (N, D_in), W (D_in, D_out), b (D_out,)
        Backward:  dW = x.T @ dy   db = dy.sum(0)   dx = dy @ W.T

    This is the batch form of the delta recursion: with ``dy`` the δ of this
    layer's pre-activation, ``dx = dy @ W.T`` is ``W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾`` for every
    sample at once, which the activation below multiplies by ``f′(z⁽ˡ⁾)``.

    Args:
        in_features: Input width ``D_in``.
        out_features: Output width ``D_out``.
        bias: Learn ``b`` (default True).
        init: Weight initializer, a name from :mod:`backprop.initializers` or a
            callable ``(shape, rng, dtype)``; default ``"glorot_uniform"``.
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.
    """

    _cache_attrs = ("_x",)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        init: Any = "glorot_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(dtype=dtype)
        self.in_features = positive_int(in_features, "in_features", "Dense")
        self.out_features = positive_int(out_features, "out_features", "Dense")
        self.bias = boolean(bias, "bias", "Dense")
        rng = initializers.make_rng(rng, "Dense")
        self.init_param("W", init, (self.in_features, self.out_features), rng)
        if self.bias:
            self.init_param("b", bias_init, (self.out_features,), rng)
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", self.in_features)
        y = x @ self.params["W"]
        if self.bias:
            y += self.params["b"]  # in place: no second (N, D_out) temporary
        if training:
            self._x = x
        return y

    def gemm_shapes(self, x_shape, input_grad=True):
        n, d_in, d_out = x_shape[0], self.in_features, self.out_features
        shapes = [(n, d_in, d_out), (d_in, n, d_out)]  # y = x @ W, dW = x.T @ dy
        return shapes + [(n, d_out, d_in)] if input_grad else shapes  # dx = dy @ W.T

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.backward_params(dy)
        return dy @ self.params["W"].T

    def backward_params(self, dy: np.ndarray) -> None:
        x = self._pop("_x")
        self._check_dy(dy, (x.shape[0], self.out_features))
        np.matmul(x.T, dy, out=self.grads["W"])
        if self.bias:
            np.sum(dy, axis=0, out=self.grads["b"])
