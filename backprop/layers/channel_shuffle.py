"""ChannelShuffle: interleave channel groups, as PyTorch's ``nn.ChannelShuffle`` (ShuffleNet)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import positive_int
from .base import Layer
from .shuffle import fresh


def channel_shuffle(a: np.ndarray, g: int) -> np.ndarray:
    """``(N, C, *) -> (N, C, *)``: channels viewed ``(g, C/g)``, transposed, flattened."""
    n, c, *rest = a.shape
    if c == 0:  # no channels (the backward's C/g groups would be 0): nothing to move
        return a.copy()
    # groups 1 or C move nothing, and the reshapes give a view: a new array, as PyTorch's
    return fresh(a.reshape(n, g, c // g, *rest).swapaxes(1, 2).reshape(a.shape), a)


class ChannelShuffle(Layer):
    """Shuffle channels across groups, as PyTorch's ``nn.ChannelShuffle``.

    ::

        Forward:   y[n, j·g + i, ...] = x[n, i·(C/g) + j, ...]     i < g, j < C/g
                   x (N, C, *), y (N, C, *)                          g = groups
        Backward:  dx[n, i·(C/g) + j, ...] = dy[n, j·g + i, ...]
                   (the inverse permutation: a shuffle with C/g groups)

    Args:
        groups: ``g``, an int >= 1 dividing the channels.
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``groups`` is not an int.
        ValueError: ``groups`` < 1; in forward, an input of rank < 3 (as PyTorch), or
            channels not divisible by ``groups``.
    """

    _cache_attrs = ("_x_shape",)

    def __init__(self, groups: int, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.groups = positive_int(groups, "groups", "ChannelShuffle")
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C", *(None,) * max(getattr(x, "ndim", 3) - 2, 1))
        if x.shape[1] % self.groups:
            raise ValueError(f"{self!r}: expected input channels divisible by groups="
                             f"{self.groups}, got input of shape {x.shape}")
        if training:
            self._x_shape = x.shape
        return channel_shuffle(x, self.groups)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._pop("_x_shape")
        self._check_dy(dy, x_shape)
        return channel_shuffle(dy, x_shape[1] // self.groups)
