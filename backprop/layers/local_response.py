"""LocalResponseNorm: divide each channel by its neighbours' energy, as PyTorch's."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import in_range, positive_int
from .base import Layer


def channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """``s[:, c] = a[:, c - before : c + after + 1].sum(1)``, zeros past either end (so a
    window past the channels adds nothing more: ``LocalResponseNorm(10**18)`` allocated
    its whole padding)."""
    before, after = min(before, a.shape[1]), min(after, a.shape[1])
    padded = np.zeros_like(a, shape=(a.shape[0], a.shape[1] + before + after, *a.shape[2:]))
    padded[:, before:before + a.shape[1]] = a
    s = padded[:, :a.shape[1]].copy()
    for i in range(1, before + after + 1):
        s += padded[:, i:i + a.shape[1]]
    return s


class LocalResponseNorm(Layer):
    """Local response normalization across channels, as PyTorch's ``nn.LocalResponseNorm``.

    ::

        Forward:   q = k + alpha · S / size      S[:, c] = sum of x[:, j]² over the window
                   y = x / q**beta                j in [c - size//2, c + (size-1)//2]
                   x, y, q (N, C, *)              (channels past either end count as 0)
        Backward:  t = -beta · dy · y / q         (∂L/∂q)
                   dx = dy / q**beta + 2·x · alpha / size · T
                   T[:, j] = sum of t[:, c] over c in [j - (size-1)//2, j + size//2]
                   (the windows that hold j: the forward's window sum, mirrored)

    The divisor ``size`` is the full window, also where it runs past the channels.

    Args:
        size: Channels per window, an int >= 1.
        alpha: Scale of the windowed energy (default 1e-4).
        beta: Exponent (default 0.75).
        k: Additive constant (default 1.0).
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``size`` not an int, or alpha, beta, k not numbers.
        ValueError: ``size`` < 1, alpha, beta or k not finite; in forward, an input of
            rank < 3 (as PyTorch).
    """

    _cache_attrs = ("_x", "_y", "_q", "_qb")

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        who, inf = "LocalResponseNorm", float("inf")
        self.size = positive_int(size, "size", who)
        self.alpha = in_range(alpha, "alpha", who, -inf)
        self.beta = in_range(beta, "beta", who, -inf)
        self.k = in_range(k, "k", who, -inf)
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._q: np.ndarray | None = None
        self._qb: np.ndarray | None = None  # q**beta, which backward divides by again

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C", *(None,) * max(getattr(x, "ndim", 3) - 2, 1))
        # x² past the range, k = 0 over a window of zeros (0 / 0): inf or NaN, quietly as
        # PyTorch's
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            s = channel_window_sum(x * x, self.size // 2, (self.size - 1) // 2)
            q = s * (self.alpha / self.size) + self.k  # PyTorch's order: mean, · alpha, + k
            qb = q**self.beta
            y = x / qb
        if training:
            self._x, self._y, self._q, self._qb = x, y, q, qb
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, y, q, qb = self._pop("_x", "_y", "_q", "_qb")
        self._check_dy(dy, x.shape)
        if self.beta == 0:  # y = x: dy, where the term below is 0 · 0/0 at q = 0 (PyTorch: dy)
            return dy / qb
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            t = (-self.beta) * dy * y / q
            big_t = channel_window_sum(t, (self.size - 1) // 2, self.size // 2)
            return dy / qb + 2 * x * (self.alpha / self.size) * big_t
