"""PixelShuffle and PixelUnshuffle: channels to space and back, as PyTorch's.

Each is a pure permutation of the entries (a reshape, a transpose, a reshape), and the
other's inverse: the backward of one is the forward of the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import positive_int
from .base import Layer


def shuffle(a: np.ndarray, r: int) -> np.ndarray:
    """``(N, C·r², H, W) -> (N, C, H·r, W·r)``: channel ``c·r² + i·r + j`` to ``[i::r, j::r]``."""
    n, c, h, w = a.shape
    return fresh(a.reshape(n, c // r**2, r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
                 .reshape(n, c // r**2, h * r, w * r), a)


def unshuffle(a: np.ndarray, r: int) -> np.ndarray:
    """``(N, C, H·r, W·r) -> (N, C·r², H, W)``, the inverse of :func:`shuffle`."""
    n, c, h, w = a.shape
    return fresh(a.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4)
                 .reshape(n, c * r**2, h // r, w // r), a)


def fresh(out: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``out``, a permutation of ``a``'s entries, as a new array: the reshapes give a view
    of ``a`` when the permutation moves nothing (a factor of 1, 1x1 maps, one group), and
    PyTorch's shuffles return a new tensor (writing into ``y`` must not change ``x``)."""
    return out.copy() if np.shares_memory(out, a) else out


class PixelShuffle(Layer):
    """Move channels into space, as PyTorch's ``nn.PixelShuffle`` (sub-pixel upsampling).

    ::

        Forward:   y[n, c, h·r + i, w·r + j] = x[n, c·r² + i·r + j, h, w]
                   x (N, C·r², H, W), y (N, C, H·r, W·r)          r = upscale_factor
        Backward:  dx[n, c·r² + i·r + j, h, w] = dy[n, c, h·r + i, w·r + j]
                   (the inverse permutation: PixelUnshuffle's forward)

    Takes ``(N, C, H, W)`` only (PyTorch also takes other numbers of leading axes).

    Args:
        upscale_factor: ``r``, an int >= 1.
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``upscale_factor`` is not an int.
        ValueError: ``upscale_factor`` < 1; in forward, an input of another rank, or
            channels not a multiple of ``r²``.
    """

    _cache_attrs = ("_x_shape",)

    def __init__(self, upscale_factor: int, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.upscale_factor = positive_int(upscale_factor, "upscale_factor", "PixelShuffle")
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C", "H", "W")
        r = self.upscale_factor
        if x.shape[1] % r**2:
            raise ValueError(f"{self!r}: expected input channels a multiple of {r**2} "
                             f"(upscale_factor²), got input of shape {x.shape}")
        if training:
            self._x_shape = x.shape
        return shuffle(x, r)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        (n, c, h, w), r = self._pop("_x_shape"), self.upscale_factor
        self._check_dy(dy, (n, c // r**2, h * r, w * r))
        return unshuffle(dy, r)


class PixelUnshuffle(Layer):
    """Move space into channels, as PyTorch's ``nn.PixelUnshuffle`` (PixelShuffle's inverse).

    ::

        Forward:   y[n, c·r² + i·r + j, h, w] = x[n, c, h·r + i, w·r + j]
                   x (N, C, H·r, W·r), y (N, C·r², H, W)          r = downscale_factor
        Backward:  dx[n, c, h·r + i, w·r + j] = dy[n, c·r² + i·r + j, h, w]
                   (the inverse permutation: PixelShuffle's forward)

    Takes ``(N, C, H, W)`` only (PyTorch also takes other numbers of leading axes).

    Args:
        downscale_factor: ``r``, an int >= 1.
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``downscale_factor`` is not an int.
        ValueError: ``downscale_factor`` < 1; in forward, an input of another rank, or
            H or W not a multiple of ``r``.
    """

    _cache_attrs = ("_x_shape",)

    def __init__(self, downscale_factor: int, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.downscale_factor = positive_int(downscale_factor, "downscale_factor",
                                             "PixelUnshuffle")
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C", "H", "W")
        r = self.downscale_factor
        if x.shape[2] % r or x.shape[3] % r:
            raise ValueError(f"{self!r}: expected input height and width multiples of {r} "
                             f"(downscale_factor), got input of shape {x.shape}")
        if training:
            self._x_shape = x.shape
        return unshuffle(x, r)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        (n, c, h, w), r = self._pop("_x_shape"), self.downscale_factor
        self._check_dy(dy, (n, c * r**2, h // r, w // r))
        return shuffle(dy, r)
