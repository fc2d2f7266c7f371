"""Dropout: inverted dropout, with a seeded Generator for reproducible masks."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from .._validate import boolean, in_range
from .base import Layer


class Dropout(Layer):
    """Inverted dropout: zero each element with probability ``rate`` while training.

    ::

        Forward:   mask = (u >= rate) / (1 - rate),  u ~ U[0, 1) elementwise     any shape
                   (mask = 0 at rate 1)
                   y = x * mask                 (training)      y = x   (inference)
        Backward:  dx = dy * mask

    Scaling the kept elements by ``1 / (1 - rate)`` at training time keeps
    ``E[y] = x``, so inference is the identity and needs no rescaling.

    Masks come from ``self.rng``, an ``np.random.Generator`` (never the global
    ``np.random`` state): the same seed gives the same sequence of masks, and a
    copy of the layer draws the same next mask as the original (how the
    gradient checker fixes the mask). Saving a model stores the generator state.

    Args:
        rate: Probability of dropping an element, in [0, 1]; at 1 every element is
            dropped (``y = 0 · x``, ``dx = 0 · dy``, as in PyTorch).
        rng: Generator or int seed for the masks.
        dtype: Input dtype (default float32).
    """

    _cache_attrs = ("_mask",)

    def __init__(self, rate: float = 0.5, *, rng: np.random.Generator | int | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.rate = in_range(rate, "rate", "Dropout", 0.0, 1.0)
        self.rng = initializers.make_rng(rng, "Dropout")
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        if type(training) is not bool:  # "False", a str, would drop
            training = boolean(training, "training", repr(self))
        if not training:
            return x
        keep = self.rng.random(x.shape, dtype=self.dtype) >= self.rate
        scale = 1 / (1 - self.rate) if self.rate < 1 else 0.0  # rate 1: all dropped
        mask = np.multiply(keep, scale, dtype=self.dtype)  # bool*float: pin dtype
        self._mask = mask
        return x * mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        mask = self._pop("_mask")
        self._check_dy(dy, mask.shape)
        return dy * mask
