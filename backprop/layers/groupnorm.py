"""Group normalization (PyTorch's ``GroupNorm``, Keras' ``GroupNormalization``)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .._validate import boolean, in_range, positive_int
from ._sums import channel_sum
from .base import Layer
from .normalization import add_channel_state, normalize_rows, rows_dx


class GroupNorm(Layer):
    """Normalise each sample over groups of channels, then scale and shift each channel.

    The ``C`` channels of ``x (N, C, *)`` are split into ``G = num_groups`` groups of
    consecutive channels; each sample's group (its ``C/G`` channels and all their
    positions, ``D = (C/G)·prod(*)`` values) is normalised on its own, as LayerNorm
    normalises a sample. With ``x_g`` one sample's group and ``gamma``, ``beta``
    per channel::

        Forward:   mu = x_g.mean()     var = x_g.var()          (biased)
                   xhat = (x_g - mu) / sqrt(var + eps)      y = gamma[c] * xhat + beta[c]
        Backward:  dgamma[c] = (dy * xhat).sum over N and the positions of channel c
                   dbeta[c] = dy.sum over N and the positions of channel c
                   g = dy * gamma[c]
                   dx_g = 1 / sqrt(var + eps) / D * (D * g - g.sum() - xhat * (g * xhat).sum())

    ``num_groups = 1`` is LayerNorm over ``(C, *)`` with per-channel weights;
    ``num_groups = C`` is instance normalization. It behaves the same in training and
    inference (no running statistics), so it suits batches of one sample, where
    BatchNorm fails.

    Args:
        num_groups: ``G``, which must divide ``num_channels``.
        num_channels: ``C``, the size of axis 1 of the input.
        eps: Added to the variance inside the square root (default 1e-5, as PyTorch).
        affine: Learn ``gamma`` and ``beta`` (default True); False: ``y = xhat``, no
            parameters (PyTorch's ``affine``).
        dtype: Parameter and input dtype (default float32).
    """

    _cache_attrs = ("_xhat", "_inv_std")

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.num_groups = positive_int(num_groups, "num_groups", "GroupNorm")
        self.num_channels = positive_int(num_channels, "num_channels", "GroupNorm")
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: expected num_groups to divide num_channels, got "
                             f"{self.num_groups} groups for {self.num_channels} channels")
        self.eps = in_range(eps, "eps", "GroupNorm", 0.0, low_open=True)
        self.affine = boolean(affine, "affine", "GroupNorm")
        add_channel_state(self, self.num_channels, self.affine, running=False)
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        rest = max(getattr(x, "ndim", 2) - 2, 0)
        self._check_input(x, "N", self.num_channels, *(None,) * rest)
        n, c = x.shape[:2]
        d = self._group_size(x.shape)
        if d == 0:  # a spatial axis of size 0: nothing to normalize, as PyTorch
            if training:
                self._xhat, self._inv_std = x, np.zeros(n * self.num_groups, x.dtype)
            return x.copy()
        # (N·G, D): one group of one sample a row, normalized as LayerNorm's rows
        xhat, inv_std = normalize_rows(x.reshape(n * self.num_groups, d), self.eps)
        # gamma, beta repeated over each channel's positions: one long contiguous pass per
        # sample (broadcasting (C, 1) over (N, C, S): 0.39 vs 0.25 ms a pass, 64x32x28x28)
        positions = d * self.num_groups // c
        if self.affine:
            y = xhat.reshape(n, c * positions) * self._per_position("gamma", positions)
            y += self._per_position("beta", positions)
        else:  # a copy in training: the cache must not change with what the caller does to y
            y = xhat.copy() if training else xhat
        if training:
            self._xhat, self._inv_std = xhat.reshape(x.shape), inv_std
        return y.reshape(x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, inv_std = self._pop("_xhat", "_inv_std")
        self._check_dy(dy, xhat.shape)
        n, c = dy.shape[:2]
        d = self._group_size(dy.shape)
        if d == 0:  # no values: no gradient
            for grad in self.grads.values():
                grad[...] = 0.0
            return dy.copy()
        per_channel = (n, c, d * self.num_groups // c)  # explicit sizes: N may be 0
        rows = (n * self.num_groups, d)
        if not self.affine:  # g = dy
            return rows_dx(dy.reshape(rows).copy(), xhat.reshape(rows),
                           inv_std).reshape(dy.shape)
        xc, dyc = xhat.reshape(per_channel), dy.reshape(per_channel)
        channel_sum(dyc, xc, out=self.grads["gamma"])
        channel_sum(dyc, out=self.grads["beta"])
        g = dy.reshape(n, c * per_channel[2]) * self._per_position("gamma", per_channel[2])
        return rows_dx(g.reshape(rows), xhat.reshape(rows), inv_std).reshape(dy.shape)

    def _per_position(self, name: str, positions: int) -> np.ndarray:
        """A per-channel parameter repeated over each channel's positions: ``(C·S,)``."""
        return np.repeat(self.params[name], positions)

    def _group_size(self, shape: tuple[int, ...]) -> int:
        """``D``: the values of one sample's group, ``(C/G)·prod(*)``."""
        return shape[1] // self.num_groups * prod(shape[2:])
