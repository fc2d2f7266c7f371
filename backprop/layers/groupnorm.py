"""Group normalization (PyTorch's ``GroupNorm``, Keras' ``GroupNormalization``)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .._validate import boolean, in_range, positive_int
from ._norms import (
    add_channel_state,
    center_rows,
    per_position,
    quiet_at_eps_zero,
    rescaled,
    rows_dx,
    unbuffered,
)
from ._sums import channel_rows, column_sum, row_sum
from .base import Layer


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

    It keeps ``xc = x_g - mu`` and ``1 / sqrt(var + eps)`` per group, not ``xhat``:
    ``y = xc * (gamma[c] / sqrt(var + eps)) + beta[c]``, and the backward's sums come
    from each (sample, channel)'s ``dy.sum()`` and ``(dy * xc).sum()`` (see
    :func:`groups_dx`).

    ``num_groups = 1`` is LayerNorm over ``(C, *)`` with per-channel weights;
    ``num_groups = C`` is instance normalization. It behaves the same in training and
    inference (no running statistics), so it suits batches of one sample, where
    BatchNorm fails.

    Args:
        num_groups: ``G``, which must divide ``num_channels``.
        num_channels: ``C``, the size of axis 1 of the input.
        eps: Added to the variance inside the square root (default 1e-5, as PyTorch); 0
            is allowed, as in PyTorch: a group of equal values then gives NaN.
        affine: Learn ``gamma`` and ``beta`` (default True); False: ``y = xhat``, no
            parameters (PyTorch's ``affine``).
        dtype: Parameter and input dtype (default float32).
    """

    _set_once = frozenset({"num_groups", "num_channels", "affine"})  # see Layer._set_once

    _cache_attrs = ("_xc", "_inv_std")

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.num_groups = positive_int(num_groups, "num_groups", "GroupNorm")
        self.num_channels = positive_int(num_channels, "num_channels", "GroupNorm")
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: expected num_groups to divide num_channels, got "
                             f"{self.num_groups} groups for {self.num_channels} channels")
        self.eps = in_range(eps, "eps", "GroupNorm", 0.0)  # 0 too: see quiet_at_eps_zero
        self.affine = boolean(affine, "affine", "GroupNorm")
        add_channel_state(self, self.num_channels, self.affine, running=False)
        self._xc: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    @quiet_at_eps_zero
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        rest = max(getattr(x, "ndim", 2) - 2, 0)
        self._check_input(x, "N", self.num_channels, *(None,) * rest)
        if x.shape[0] * self._group_size(x.shape) == 1:  # PyTorch's batch-size rule
            raise ValueError(f"{self!r}: expected more than 1 value per group over the batch "
                             f"(PyTorch's rule: N·(C/G)·spatial > 1), got input of shape "
                             f"{x.shape}, one value per group (its output would be beta)")
        if self._group_size(x.shape) == 0:  # a spatial axis of size 0: nothing to normalize
            if training:
                self._xc, self._inv_std = x, np.zeros(x.shape[0] * self.num_groups, x.dtype)
            return x.copy()
        y, xc, _, _, inv_std = normalize_groups(x, self.num_groups, self.eps, self.params,
                                                training)
        if training:
            self._xc, self._inv_std = xc, inv_std
        return y

    @quiet_at_eps_zero
    def backward(self, dy: np.ndarray) -> np.ndarray:
        xc, inv_std = self._pop("_xc", "_inv_std")
        self._check_dy(dy, xc.shape)
        if self._group_size(dy.shape) == 0:  # no values: no gradient
            for grad in self.grads.values():
                grad[...] = 0.0
            return dy.copy()
        return groups_dx(dy, xc, inv_std, self.num_groups, self.params, self.grads)

    def _group_size(self, shape: tuple[int, ...]) -> int:
        """``D``: the values of one sample's group, ``(C/G)·prod(*)``."""
        return shape[1] // self.num_groups * prod(shape[2:])


def normalize_groups(x: np.ndarray, groups: int, eps: float, params: dict[str, np.ndarray],
                     training: bool, constant_to_beta: bool = False) -> tuple[np.ndarray, ...]:
    """``(y, xc, mu, ss, inv_std)`` for ``x (N, C, *)`` in ``groups`` groups of channels:
    ``xc`` in ``x``'s shape, the others per row ``(N·G,)`` (see :func:`center_rows`).

    ``y = xc * (gamma * inv_std) + beta``: one product per (sample, channel) row and one
    sum with ``beta`` repeated over the positions (GroupNorm's and InstanceNorm's
    forward), with NumPy's buffers no longer than a row (:func:`unbuffered`). In
    inference ``y`` is built in ``xc``'s buffer. With ``constant_to_beta`` and
    ``eps = 0``, a row of zero variance gets ``inv_std = 0`` (``y = beta``, finite
    gradients), not ``inf`` (NaN): InstanceNorm's rule, PyTorch's batch-norm kernel's."""
    n, c = x.shape[:2]
    s = prod(x.shape[2:])
    with unbuffered(s):  # rows of S, and of D >= S: see unbuffered
        xc, mu, ss, inv_std = center_rows(x.reshape(n * groups, c // groups * s), eps)
        if constant_to_beta and eps == 0:
            inv_std[ss == 0] = 0
        out = None if training else xc  # y apart from the cache: the caller may change y
        if "gamma" not in params:
            y = np.multiply(xc, inv_std[:, None], out=out)
        else:
            scale = inv_std.reshape(n, groups, 1) * params["gamma"].reshape(groups, -1)
            y = np.multiply(xc.reshape(n * c, s), scale.reshape(n * c, 1),
                            out=None if out is None else out.reshape(n * c, s)).reshape(x.shape)
            y += per_position(params["beta"], x.shape)
    return y.reshape(x.shape), xc.reshape(x.shape), mu, ss, inv_std


def groups_dx(dy: np.ndarray, xc: np.ndarray, inv_std: np.ndarray, groups: int,
              params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> np.ndarray:
    """``dx`` from the cached ``xc (N, C, *)`` and ``inv_std (N·G,)``, filling ``grads``.

    Each (sample, channel) row's ``Σ dy`` and ``Σ dy·xc`` (two BLAS passes) give
    ``dbeta``, ``dgamma = Σ_n inv_std · Σ dy·xc`` and each group's ``g.sum()`` and
    ``(g·xc).sum()`` with ``g = dy * gamma``; :func:`rows_dx` does the rest, in ``xc``'s
    buffer without ``gamma`` (GroupNorm's and InstanceNorm's backward), with NumPy's
    buffers no longer than a row (:func:`unbuffered`)."""
    n, c = dy.shape[:2]
    s = prod(dy.shape[2:])
    with unbuffered(s):  # rows of S, and of D >= S: see unbuffered
        dy3 = dy.reshape(n, c, s)  # explicit sizes: N may be 0
        rows = (n * groups, c // groups * s)
        inv_std, scale = rescaled(inv_std)  # std past ~1e18: see rescaled
        if scale is not None:
            xc.reshape(rows)[...] *= scale[:, None]
        dy_sum, dy_xc = channel_rows(dy3), channel_rows(dy3, xc.reshape(n, c, s))
        if "gamma" not in params:  # g = dy
            g, out = dy3.reshape(rows), xc.reshape(rows)
        else:
            gamma = params["gamma"]
            column_sum(dy_sum, grads["beta"])
            inv_c = np.repeat(inv_std.reshape(n, groups), c // groups, axis=1)  # (N, C)
            column_sum(dy_xc * inv_c, grads["gamma"])  # Σ dy·xhat
            dy_sum *= gamma
            dy_xc *= gamma
            g = out = (dy * per_position(gamma, dy.shape)).reshape(rows)
        g_sum, g_xc = (_per_group(v, groups) for v in (dy_sum, dy_xc))
        dx = rows_dx(g, xc.reshape(rows), inv_std, g_sum, g_xc, out)
        if scale is not None:
            dx *= scale[:, None]
    return dx.reshape(dy.shape)


def _per_group(v: np.ndarray, groups: int) -> np.ndarray:
    """Per-(sample, channel) totals ``(N, C)`` summed over each group's channels:
    ``(N·G,)``. One channel a group (InstanceNorm): ``v + 0.0``, a sum from 0 as the
    per-row sums before (so a channel with gamma = 0 adds +0.0, not -0.0)."""
    n, c = v.shape
    return v.reshape(-1) + 0.0 if c == groups else row_sum(v.reshape(n * groups, c // groups))
