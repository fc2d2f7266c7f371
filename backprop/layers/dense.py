"""Dense (fully connected) layer."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .. import initializers
from .._validate import boolean, positive_int
from ._sums import column_sum
from .base import Layer

# dx = dy @ W.T for a batch of at most 32 rows runs faster in OpenBLAS as W @ dy.T plus a
# copy back to C order (the (32, 512) x (512, 784) product: 0.23 -> 0.15 ms alone, plus
# a 0.01 ms copy). A hand-written training step that keeps the default input gradient
# (784-512-256-10 MLP, float32, 2 threads): batch 16 1.08 -> 0.91 ms, batch 32 1.09 ->
# 0.97 ms; fit's step (no first-layer dx) the same. From batch 64 on the copy costs more
# than the product saves (batch 128: 2.80 vs 2.86 ms), and so it does for small weights
# and in float64 (batch 32: 2.45 -> 2.57 ms).
_THIN_BATCH = 32
_THIN_MIN_WEIGHTS = 32768


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    ::

        Forward:   y = x @ W + b              x (N, D_in), W (D_in, D_out), b (D_out,)
        Backward:  dW = x.T @ dy   db = dy.sum(0)   dx = dy @ W.T

    Input with more axes, ``(N, *, D_in)`` (a sequence of tokens, say), goes through the
    last axis as in PyTorch's ``Linear``: the leading axes are taken as one batch of
    rows, ``x.reshape(-1, D_in)``, and the output is ``(N, *, D_out)``.

    This is the batch form of the delta recursion: with ``dy`` the δ of this
    layer's pre-activation, ``dx = dy @ W.T`` is the textbook ``W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾``
    for every sample at once (the textbook's W, of shape (out, in), acts on a
    column δ; this ``W`` is its transpose and each sample's δ a row), which the
    activation below multiplies by ``f′(z⁽ˡ⁾)``.

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

    _set_once = frozenset({"in_features", "out_features", "bias"})  # see Layer._set_once

    _cache_attrs = ("_x", "_lead")
    mask_passes = True  # each step alone: a padding mask passes (Layer.forward_masked)

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
            self.init_param("b", bias_init, (self.out_features,), rng,
                            fan_in=self.in_features)
        self._x: np.ndarray | None = None  # the input as rows (N·..., D_in)
        self._lead: tuple[int, ...] | None = None  # (N, *) of an input (N, *, D_in)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        if getattr(x, "ndim", 2) > 2:
            return self._forward_rows(x, training)
        self._check_input(x, "N", self.in_features)
        y = x @ self.params["W"]
        if self.bias:
            y += self.params["b"]  # in place: no second (N, D_out) temporary
        if training:
            self._x, self._lead = x, None
        return y

    def _forward_rows(self, x: np.ndarray, training: bool) -> np.ndarray:
        """(N, *, D_in): the leading axes as one batch of rows, as PyTorch's Linear."""
        if x.shape[-1] != self.in_features:
            flat = prod(x.shape[1:]) == self.in_features
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_features}) or "
                             f"(N, ..., {self.in_features}) (Dense acts on the last axis), "
                             f"got {x.shape}" + (" (images or sequences as rows? put a "
                                                 "Flatten() before it)" if flat else ""))
        # the rows' forward checks the rest (dtype, type)
        y = self.forward(x.reshape(-1, self.in_features), training=training)  # a view or copy
        if training:
            self._lead = x.shape[:-1]
        return y.reshape(*x.shape[:-1], self.out_features)

    def gemm_shapes(self, x_shape, input_grad=True):
        n, d_in, d_out = prod(x_shape[:-1]), self.in_features, self.out_features
        shapes = [(n, d_in, d_out), (d_in, n, d_out)]  # y = x @ W, dW = x.T @ dy
        return shapes + [(n, d_out, d_in)] if input_grad else shapes  # dx = dy @ W.T

    def backward(self, dy: np.ndarray) -> np.ndarray:
        lead = self._lead  # (N, *) of an input (N, *, D_in): dy as rows, dx back after
        if lead is not None:
            dy = self._as_rows(dy)
        self.backward_params(dy)  # a subclass may override it (see notebook 03)
        w = self.params["W"]
        if (dy.shape[0] <= _THIN_BATCH and w.size >= _THIN_MIN_WEIGHTS
                and w.dtype == np.float32 and type(dy) is np.ndarray):
            dx = np.ascontiguousarray((w @ dy.T).T)  # dx.T = W @ dy.T, then C order
        else:
            dx = dy @ w.T
        return dx if lead is None else dx.reshape(*lead, self.in_features)

    def _as_rows(self, dy: np.ndarray) -> np.ndarray:
        """``dy (N, *, D_out)`` of an input ``(N, *, D_in)`` as rows; the cache then holds
        rows only."""
        self._check_dy(dy, (*self._lead, self.out_features))  # type: ignore[misc]
        self._lead = None
        return dy.reshape(-1, self.out_features)

    def backward_params(self, dy: np.ndarray) -> None:
        x = self._pop("_x")
        if self._lead is not None:
            dy = self._as_rows(dy)
        self._check_dy(dy, (x.shape[0], self.out_features))
        np.matmul(x.T, dy, out=self.grads["W"])
        if self.bias:
            column_sum(dy, self.grads["b"])  # blocked: np.sum adds N rows one by one
