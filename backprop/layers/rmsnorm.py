"""RMSNorm (PyTorch's ``nn.RMSNorm``): LayerNorm without the centring and the shift."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .._validate import boolean, in_range, positive_int
from ._alloc import filled
from ._norms import quiet_at_eps_zero
from ._sums import column_sum, row_sum
from .base import Layer


class RMSNorm(Layer):
    """Root-mean-square normalization over the trailing ``normalized_shape`` axes, as
    PyTorch's ``nn.RMSNorm``.

    Each sample (and each leading position, e.g. each token) is divided by the root mean
    square of its last ``len(normalized_shape)`` axes, ``D = prod(normalized_shape)``
    values; ``gamma`` has shape ``normalized_shape`` and acts elementwise. With ``axes``
    the trailing axes and ``lead`` the others::

        Forward:   r = 1 / sqrt((x ** 2).mean(axes) + eps)      (one r per lead position)
                   xhat = x * r        y = gamma * xhat
        Backward:  dgamma = (dy * xhat).sum(lead)
                   g = dy * gamma
                   dx = r * (g - xhat * (g * xhat).mean(axes))

    (``dr/dx_j = -r³ x_j / D``, so ``dx_j = r g_j - r³ x_j Σ_i g_i x_i / D``.) Unlike
    LayerNorm nothing is subtracted: a row's mean is kept, only its scale is removed.
    Behaves the same in training and inference; the backward works from the cached ``x``
    and ``r`` and builds ``dx`` in the buffer of ``xhat``.

    Difference from PyTorch: a row whose ``x ** 2`` overflows the dtype (float32 values
    past about 1.8e19) is rescaled by its largest ``|x|`` first, so it normalises as any
    other; PyTorch's ``r`` becomes 0 there, and so do ``y`` and ``dx``. An input without
    a batch axis (of shape ``normalized_shape`` alone) is refused, as by LayerNorm.

    Args:
        normalized_shape: Trailing shape to normalise over: an int or a tuple.
        eps: Added to the mean square inside the square root; None (default): the
            machine epsilon of the dtype, ``np.finfo(dtype).eps``, as PyTorch; 0 is
            allowed, as in PyTorch: a row of zeros then gives NaN.
        elementwise_affine: Learn ``gamma`` (default True); False: ``y = xhat``, no
            parameters.
        dtype: Parameter and input dtype (default float32).

    Raises:
        ValueError: An empty ``normalized_shape`` or one with sizes < 1, ``eps`` < 0 or
            not finite; in forward, an input whose trailing shape is not
            ``normalized_shape``.
        TypeError: Sizes that are not ints, ``eps`` not a number, ``elementwise_affine``
            not a bool.
    """

    _set_once = frozenset({"normalized_shape", "elementwise_affine"})  # see Layer._set_once

    _cache_attrs = ("_x", "_inv_rms")

    @property
    def mask_passes(self) -> bool:  # type: ignore[override]
        """A padding mask ``(N, T)`` passes a norm over the last axis alone (each step)."""
        return len(self._dims) == 1

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float | None = None,
                 elementwise_affine: bool = True, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        dims = (tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list))
                else (normalized_shape,))
        if not dims:
            raise ValueError("RMSNorm: expected a non-empty normalized_shape, got ()")
        dims = tuple(positive_int(d, "normalized_shape", "RMSNorm") for d in dims)
        self.normalized_shape = dims[0] if isinstance(normalized_shape, (int, np.integer)) \
            else dims
        self._dims = dims
        self.eps = None if eps is None else in_range(eps, "eps", "RMSNorm", 0.0)
        self.elementwise_affine = boolean(elementwise_affine, "elementwise_affine", "RMSNorm")
        if self.elementwise_affine:
            self.add_param("gamma", filled("RMSNorm", "gamma", dims, self.dtype, 1.0))
        self._x: np.ndarray | None = None
        self._inv_rms: np.ndarray | None = None

    @quiet_at_eps_zero
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        lead = max(getattr(x, "ndim", 0) - len(self._dims), 1)
        self._check_input(x, "N", *(None,) * (lead - 1), *self._dims)
        rows = x.reshape(-1, prod(self._dims))  # (M, D)
        eps = float(np.finfo(self.dtype).eps) if self.eps is None else float(self.eps)
        inv_rms = _inv_rms(rows, eps)
        y = rows * inv_rms[:, None]
        if "gamma" in self.params:
            y *= self.params["gamma"].reshape(-1)
        if training:
            self._x, self._inv_rms = x, inv_rms
        return y.reshape(x.shape)

    @quiet_at_eps_zero
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, inv_rms = self._pop("_x", "_inv_rms")
        self._check_dy(dy, x.shape)
        d = prod(self._dims)
        dys = dy.reshape(-1, d)
        xhat = x.reshape(-1, d) * inv_rms[:, None]  # a new buffer: dx is built in it
        g = dys
        if "gamma" in self.params:
            column_sum(dys, self.grads["gamma"].reshape(-1), b=xhat)
            g = dys * self.params["gamma"].reshape(-1)
        gx_mean = row_sum(g, xhat) * (1 / d)
        xhat *= -gx_mean[:, None]
        xhat += g
        xhat *= inv_rms[:, None]
        return xhat.reshape(dy.shape)


def _inv_rms(rows: np.ndarray, eps: float) -> np.ndarray:
    """``1 / sqrt(mean(rows²) + eps)`` per row of ``rows (M, D)``. A row whose squares
    overflow is divided by its largest ``|x|`` first: ``s · sqrt(mean((x/s)²) + eps/s²)``
    is the same root mean square without an intermediate past the dtype's range."""
    with np.errstate(over="ignore"):  # inf for such rows, redone below
        ms = row_sum(rows, rows) * (1 / rows.shape[1])
    inv_rms = 1 / np.sqrt(ms + eps)
    big = np.isinf(ms)
    if big.any():  # (a row holding NaN has ms NaN: its output NaN, as PyTorch's)
        big[big] = np.isfinite(rows[big]).all(1)  # holding inf: 1/rms = 0, as PyTorch's
        s = np.abs(rows[big]).max(1)
        xs = rows[big] / s[:, None]
        inv_rms[big] = (1 / s) / np.sqrt(row_sum(xs, xs) * (1 / rows.shape[1]) + eps / s / s)
    return inv_rms
