"""AlphaDropout and FeatureAlphaDropout: dropout that keeps a SELU network self-normalising.

Plain dropout sets units to 0 and scales the rest by ``1 / (1 - rate)``: that keeps the
mean but raises the variance, which a self-normalising (SELU) network then carries from
layer to layer. Alpha dropout sets dropped units to SELU's negative saturation value
``alpha' = -scale · alpha`` instead, then applies the one affine map ``a·x + b`` that brings
an input of mean 0 and variance 1 back to mean 0 and variance 1 (Klambauer et al., 2017).
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import boolean
from .dropout import Dropout
from .more_activations import SELU


class AlphaDropout(Dropout):
    """Alpha dropout (PyTorch's ``AlphaDropout``): drop each element with probability
    ``rate`` while training, to SELU's saturation value, then restore mean 0 / variance 1.

    ::

        Forward:   keep = (u >= rate),  u ~ U[0, 1) elementwise           any shape
                   alpha' = -SELU.scale * SELU.alpha = -1.7580993408473766
                   a = ((1 - rate) * (1 + rate * alpha'**2)) ** -0.5
                   b = -a * alpha' * rate
                   y = a * where(keep, x, alpha') + b                      (training)
                     = x * mask + shift,   mask = a * keep,
                                           shift = b + a * alpha' * (1 - keep)
                   y = x                                                   (inference)
        Backward:  dx = dy * mask   (= dy * a * keep)

    For an input of mean 0 and variance 1 (what SELU layers keep) the output has mean 0
    and variance 1 too, so inference is the identity. Computed in the order PyTorch's
    kernel computes it, it gives PyTorch's values for the same mask bit for bit. At
    ``rate`` 0 the layer is the identity (``a = 1``, ``b = 0``) in training too; at
    ``rate`` 1, where ``a`` is infinite, it returns ``0 · x`` (zeros; NaN where ``x`` is
    NaN or inf) with ``dx = 0 · dy``, as PyTorch does.

    Masks come from ``self.rng`` as :class:`Dropout`'s do (same seed, same masks; saved
    with the model).

    Args:
        rate: Probability of dropping an element, in [0, 1].
        rng: Generator or int seed for the masks.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: ``rate`` outside [0, 1] or not finite (PyTorch: "dropout probability
            has to be between 0 and 1").
        TypeError: ``rate`` not a number.
    """

    alpha = -SELU.scale * SELU.alpha  # alpha' (PyTorch's kernel: 1.7580993408473766, negated)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_shape(x)
        if type(training) is not bool:  # "False", a str, would drop
            training = boolean(training, "training", repr(self))
        if not training:
            return x
        keep = self.rng.random(self._mask_shape(x), dtype=self.dtype)
        np.greater_equal(keep, self.rate, out=keep, casting="unsafe")  # keep: 1.0, drop: 0.0
        shift = self._shift(keep)  # before keep becomes the mask
        if 0 < self.rate < 1:  # rate 0: keep is all 1 (= mask); rate 1: all 0
            keep *= self._a()
        # backward checks dy's shape against the mask's: a channel mask is a broadcast view
        self._mask = keep if keep.shape == x.shape else np.broadcast_to(keep, x.shape)
        y = x * keep
        if shift is not None:
            y += shift
        return y

    def _check_shape(self, x: np.ndarray) -> None:
        """Any batch ``(N, ...)``."""
        self._check_batched(x)

    def _a(self) -> float:
        """The scale ``a``, written as PyTorch's kernel writes it (its rounding too)."""
        alpha = -self.alpha
        return 1.0 / math.sqrt((alpha * alpha * self.rate + 1) * (1 - self.rate))

    def _shift(self, keep: np.ndarray) -> np.ndarray | None:
        """``b + a·alpha'·(1 - keep)`` as PyTorch rounds it: ``(keep - 1)·(|alpha'|·a)``
        plus ``|alpha'|·a·rate``, each product rounded to the dtype; None at rate 0 or 1
        (PyTorch adds nothing there, so ``-0.0`` stays ``-0.0``)."""
        if not 0 < self.rate < 1:
            return None
        scale = -self.alpha * self._a()
        shift = keep - 1  # 0 kept, -1 dropped
        shift *= scale
        shift += scale * self.rate
        return shift


class FeatureAlphaDropout(AlphaDropout):
    """Alpha dropout of whole channels (PyTorch's ``FeatureAlphaDropout``): one draw per
    (sample, channel) of ``(N, C, *)`` input, broadcast over the positions.

    ::

        Forward:   keep = (u >= rate),  u ~ U[0, 1) of shape (N, C, 1, ..., 1)
                   y = x * mask + shift        (as AlphaDropout, mask and shift
                                                broadcast over the positions)
                   y = x                                               (inference)
        Backward:  dx = dy * mask              (mask = a * keep, broadcast)

    As :class:`AlphaDropout` (same ``a``, ``b``, rate 0 and rate 1), with the mask of
    :class:`Dropout2D`: neighbouring positions of a feature map are strongly correlated,
    so dropping whole channels regularises a convolution where single units would not.
    Input of any rank >= 2; on ``(N, C)`` every element is its own channel, as in
    PyTorch. PyTorch's unbatched ``(C, ...)`` input is not taken: every layer here is
    batch first.

    Args:
        rate: Probability of dropping a channel, in [0, 1].
        rng: Generator or int seed for the masks.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: ``rate`` outside [0, 1] or not finite; input of fewer than 2
            dimensions (PyTorch: "Feature dropout requires at least 2 dimensions").
        TypeError: ``rate`` not a number.
    """

    mask_passes = False  # whole channels of (N, C, ...): axis 1 would be a sequence's steps

    def _check_shape(self, x: np.ndarray) -> None:
        """A batch of channels ``(N, C, *)``."""
        if getattr(x, "ndim", 2) < 2:  # a non-array: _check_batched's TypeError
            raise ValueError(f"{self!r}: expected input of shape (N, C, *) (at least 2 "
                             f"dimensions), got {x.shape}")
        self._check_batched(x, min_ndim=2)

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        """One draw per (sample, channel), broadcast over its positions."""
        return (*x.shape[:2], *(1,) * (x.ndim - 2))
