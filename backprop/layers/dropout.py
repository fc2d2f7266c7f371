"""Dropout: inverted dropout, with a seeded Generator for reproducible masks."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .. import initializers
from .._validate import boolean, in_range
from ._spatial import check_batched_channels
from .base import Layer


class Dropout(Layer):
    """Inverted dropout: zero each element with probability ``rate`` while training.

    ::

        Forward:   mask = (u >= rate) / (1 - rate),  u ~ U[0, 1) elementwise     any shape
                   (mask = 0 at rate 1; at rate 0 y is x, nothing drawn, as PyTorch's)
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
    mask_passes = True  # elementwise: a padding mask passes (see Layer.forward_masked)

    def __init__(self, rate: float = 0.5, *, rng: np.random.Generator | int | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.rate = in_range(rate, "rate", type(self).__name__, 0.0, 1.0)
        self.rng = initializers.make_rng(rng, type(self).__name__)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        if type(training) is not bool:  # "False", a str, would drop
            training = boolean(training, "training", repr(self))
        if not training:
            return x
        if self.rate == 0.0:  # PyTorch's dropout(p=0): x itself, nothing drawn
            self._mask = np.broadcast_to(np.ones_like(x, shape=()), x.shape)  # dx = dy · 1
            return x
        mask = self.rng.random(self._mask_shape(x), dtype=self.dtype)
        np.greater_equal(mask, self.rate, out=mask, casting="unsafe")  # keep: 1.0, drop: 0.0
        mask *= 1 / (1 - self.rate) if self.rate < 1 else 0.0  # rate 1: all dropped
        # backward checks dy's shape against the mask's: a channel mask is a broadcast view
        self._mask = mask if mask.shape == x.shape else np.broadcast_to(mask, x.shape)
        return x * mask

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        """One draw per element."""
        return x.shape

    def backward(self, dy: np.ndarray) -> np.ndarray:
        mask = self._pop("_mask")
        self._check_dy(dy, mask.shape)
        if mask.flags.writeable:  # one draw per element: dx goes into the mask, freed here
            mask *= dy
            return mask
        return dy * mask


class _ChannelDropout(Dropout):
    """Dropout of whole channels; see :class:`Dropout1D`, :class:`Dropout2D`, :class:`Dropout3D`.
    """

    _axes: ClassVar[tuple[str, ...]]
    mask_passes = False  # whole channels of (N, C, ...): axis 1 would be a sequence's steps

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        try:
            check_batched_channels(self, x, "C", self._axes)
        except ValueError as err:  # PyTorch's Dropout2d/3d take one rank less with a warning
            lower = {2: "(N, C, L) use Dropout1D", 3: "(N, C, H, W) use Dropout2D"}
            if len(self._axes) in lower and getattr(x, "ndim", 0) == len(self._axes) + 1:
                raise ValueError(f"{err}; for {lower[len(self._axes)]}") from None
            raise
        return super().forward(x, training=training)

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        """One draw per (sample, channel), broadcast over its positions."""
        return (*x.shape[:2], *(1,) * len(self._axes))


class Dropout1D(_ChannelDropout):
    """Channel dropout of ``(N, C, L)`` input: zero each sample's whole channels with
    probability ``rate`` while training (PyTorch's ``Dropout1d``, Keras'
    ``SpatialDropout1D`` channels first).

    ::

        Forward:   mask = (u >= rate) / (1 - rate),  u ~ U[0, 1) of shape (N, C, 1)
                   (mask = 0 at rate 1)
                   y = x * mask                 (training)      y = x   (inference)
        Backward:  dx = dy * mask               (mask broadcast over L)

    Neighbouring positions of a feature map are strongly correlated, so dropping them one
    by one (:class:`Dropout`) barely regularises a convolution; dropping whole channels
    does. Masks, seeds and saving are those of :class:`Dropout`. Unbatched ``(C, L)``
    input is refused (PyTorch takes it as one sample).

    Args:
        rate: Probability of dropping a channel, in [0, 1].
        rng: Generator or int seed for the masks.
        dtype: Input dtype (default float32).
    """

    _axes = ("L",)


class Dropout2D(_ChannelDropout):
    """Channel dropout of ``(N, C, H, W)`` input: zero each sample's whole channels with
    probability ``rate`` while training (PyTorch's ``Dropout2d``, Keras'
    ``SpatialDropout2D`` channels first).

    ::

        Forward:   mask = (u >= rate) / (1 - rate),  u ~ U[0, 1) of shape (N, C, 1, 1)
                   (mask = 0 at rate 1)
                   y = x * mask                 (training)      y = x   (inference)
        Backward:  dx = dy * mask               (mask broadcast over H, W)

    As :class:`Dropout1D`, on feature maps. PyTorch's ``Dropout2d`` on 3-D input warns
    and drops channels of ``(N, C, L)`` (2.13; the warning says a later release will read
    it as one unbatched ``(C, H, W)``); here 3-D input is refused: :class:`Dropout1D` is
    the layer for ``(N, C, L)``.

    Args:
        rate: Probability of dropping a channel, in [0, 1].
        rng: Generator or int seed for the masks.
        dtype: Input dtype (default float32).
    """

    _axes = ("H", "W")


class Dropout3D(_ChannelDropout):
    """Channel dropout of ``(N, C, D, H, W)`` input: zero each sample's whole channels with
    probability ``rate`` while training (PyTorch's ``Dropout3d``, Keras'
    ``SpatialDropout3D`` channels first).

    ::

        Forward:   mask = (u >= rate) / (1 - rate),  u ~ U[0, 1) of shape (N, C, 1, 1, 1)
                   (mask = 0 at rate 1)
                   y = x * mask                 (training)      y = x   (inference)
        Backward:  dx = dy * mask               (mask broadcast over D, H, W)

    As :class:`Dropout2D`, on volumes. PyTorch's ``Dropout3d`` takes 4-D input as one
    unbatched ``(C, D, H, W)`` sample, without a warning (2.13); here it is refused:
    :class:`Dropout2D` is the layer for ``(N, C, H, W)``.

    Args:
        rate: Probability of dropping a channel, in [0, 1].
        rng: Generator or int seed for the masks.
        dtype: Input dtype (default float32).
    """

    _axes = ("D", "H", "W")
