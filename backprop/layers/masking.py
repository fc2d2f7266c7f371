"""Masking: mark the padded steps of a batch of sequences (Keras' ``Masking``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import in_range
from .base import Layer


class Masking(Layer):
    """Keras' ``Masking(mask_value)``: a step whose features all equal ``mask_value`` is
    padding; the layers after it in a :class:`~backprop.Sequential` skip it.

    ::

        Forward:   m[n, t] = any(x[n, t, :] != mask_value)     x (N, T, F), m (N, T)
                   y = x ⊙ m (padded steps set to 0)           the mask m goes on
        Backward:  dx = dy ⊙ m

    In a Sequential the mask ``m`` is handed to the layers after this one
    (:meth:`Layer.forward_masked`): the recurrent layers carry their state over padded
    steps and output 0 there, attention ignores them as keys, layers that work on each
    step alone (Dense, activations, Dropout, LayerNorm) pass it on, ``Permute((2, 1))``
    ends it, and the others refuse it. ``layer.compute_mask(x)`` gives ``m`` itself;
    called alone, the layer only zeroes the padded steps.

    Args:
        mask_value: The value that marks padding (default 0.0; NaN never equals it),
            compared with the input as the model holds it: a ``Sequential`` casts its
            input to its dtype first, as Keras does, so a float32 0.1 given to a float64
            model is 0.10000000149 there and is not 0.1 (0, -1 and other values exact in
            both dtypes are safe).
        dtype: Input dtype (default float32).

    Raises:
        ValueError: In forward, an input not ``(N, T, F)``.
    """

    _cache_attrs = ("_m", "_shape")
    makes_mask = True
    mask_passes = True

    def __init__(self, mask_value: float = 0.0, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.mask_value = in_range(mask_value, "mask_value", "Masking", -math.inf)
        self._m: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self.output_mask: np.ndarray | None = None  # the mask the last forward made

    def compute_mask(self, x: Any) -> np.ndarray:
        """``m (N, T)``: True where a step has a feature other than ``mask_value``."""
        self._check_input(x, "N", "T", "F")
        if abs(self.mask_value) > float(np.finfo(x.dtype).max):  # no value of x equals it
            return np.ones(x.shape[:2], dtype=bool)
        return np.not_equal(x, self.mask_value).any(axis=-1)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        m = self.compute_mask(x)
        self.output_mask = m  # for forward_masked (the mask of the last forward)
        if training:
            self._m, self._shape = m, x.shape
        return np.where(m[..., None], x, 0.0)

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward`` with a padding mask; returns ``(y, the mask of y)`` (see
        :meth:`Layer.forward_masked`)."""
        y = self.forward(x, training=training)  # (through self.forward: bp.trace sees it)
        m = self.output_mask
        return y, m if mask is None else mask & m

    def backward(self, dy: np.ndarray) -> np.ndarray:
        m, shape = self._pop("_m", "_shape")
        self._check_dy(dy, shape)
        return np.where(m[..., None], dy, 0.0)  # a NaN at a padded step is not passed


def leading_masking(f: Any) -> Masking | None:
    """The :class:`Masking` that ``f`` starts with (itself, or the first leaf of nested
    Sequentials), or None."""
    first = f
    while getattr(first, "layers", None):
        first = first.layers[0]
    return first if isinstance(first, Masking) else None


def masked_steps(f: Any, x: np.ndarray) -> np.ndarray | None:
    """Where a leading :class:`Masking` of ``f`` (itself, or the first
    leaf of nested Sequentials) reads ``x (N, T, F)`` as padding, in ``x``'s shape."""
    first = leading_masking(f)
    if first is None or np.ndim(x) != 3:
        return None
    pad = np.all(x == first.mask_value, axis=-1)
    return np.broadcast_to(pad[..., None], x.shape).copy() if pad.any() else None
