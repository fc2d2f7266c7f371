"""Power-average pooling: LPPool1D and LPPool2D, computed as PyTorch's ``nn.LPPool1d/2d``.

PyTorch forms ``(sign(s)·relu(|s|)·K)^(1/p)`` from ``s``, the average pooling of ``x^p``
(``K`` the kernel's size). ``sign(s)·relu(|s|)`` is ``s`` itself, but autograd sees a
zero derivative where ``s == 0``; the layers here follow that value for value,
including the NaN PyTorch gives (see :class:`LPPool2D`).
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .._validate import in_range
from ._pool import _Pool1D, _Pool2D
from .avgpool import _AvgPool


class _LPPool(_AvgPool):
    """``(K · AvgPool(x^p))^(1/p)``; backward as PyTorch's autograd (see LPPool2D)."""

    _set_once = _AvgPool._set_once | {"norm_type"}

    _cache_attrs = ("_x", "_u", "_x_shape", "_div")
    count_include_pad = True

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any, ceil_mode: bool,
                 dtype: Any) -> None:
        v = in_range(norm_type, "norm_type", type(self).__name__, 0, low_open=True)
        self.norm_type = int(v) if isinstance(norm_type, (int, np.integer)) else v
        super().__init__(kernel_size, stride, 0, ceil_mode=ceil_mode, dtype=dtype)
        self._x: np.ndarray | None = None
        self._u: np.ndarray | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C", *self._axes)
        p = self.norm_type
        with np.errstate(invalid="ignore", divide="ignore"):  # x < 0, p not whole: NaN, as torch
            xp = _power(x, p)
        u = super().forward(xp, training=training) * prod(self._k)
        with np.errstate(invalid="ignore"):  # u < 0 with 1/p not whole: NaN, as torch
            y = u ** (1 / p)
        if training:
            self._x, self._u = x, u
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, u = self._pop("_x", "_u")
        self._check_dy(dy, u.shape)
        p = self.norm_type
        with np.errstate(invalid="ignore", divide="ignore"):  # 0^(negative): torch's inf, NaN
            # the power again, not y / u: where u overflowed to inf torch's 0 stays 0
            du = dy * ((1 / p) * u ** (1 / p - 1))
            # torch's sign(s)·relu(|s|) multiplies a NaN window's gradient by sign(NaN) = 0:
            # 0 where du is finite (p = 1: NaN ** 0 is 1), NaN where it is not
            nan = np.isnan(u)
            if nan.any():
                du[nan] *= 0
            # torch's relu(|s|) passes no gradient where s == 0 (the inf · 0 above included)
            ds = np.where(u == 0, 0, du * prod(self._k)).astype(self.dtype, copy=False)
            return super().backward(ds) * (p * _power(x, p - 1))


def _power(x: np.ndarray, p: float) -> np.ndarray:
    """``x ** p`` as a new array; a whole ``p`` as products (``p <= 4``, as PyTorch's ``x·x·x``
    for 3) or as ``|x| ** p`` with ``x``'s sign when ``p`` is odd. NumPy's float power of a
    negative base with a whole exponent takes libm's slow path (~57 ns an element):
    LPPool2D(3, 3, 2) on 64x32x28x28 ran 90 ms forward + backward against PyTorch's 5.8."""
    if p < 1 or p != int(p):
        return x**p
    k = int(p)
    if k > 4:
        y = np.abs(x)
        y **= k
        return np.copysign(y, x, out=y) if k % 2 else y
    y = x * x if k > 1 else x.copy()
    if k == 3:
        y *= x
    elif k == 4:
        y *= y
    return y


class LPPool2D(_Pool2D, _LPPool):
    """2-D power-average pooling on ``NCHW`` input, as PyTorch's ``nn.LPPool2d``.

    ::

        Forward:   s = AvgPool2D(kernel_size, stride, ceil_mode=ceil_mode)(x**p)
                   u = s · kh·kw       y = u**(1/p)
                   x (N, C, H, W), y (N, C, Ho, Wo),  Ho = (H - kh) // sh + 1
        Backward:  du = dy · (1/p) · u**(1/p - 1), then 0 where u == 0
                   dx = AvgPool2D.backward(du · kh·kw) · p · x**(p - 1)

    Without ceil_mode ``y`` is ``(sum of x**p over the window)**(1/p)``. With it, a last
    window past the input is averaged over the positions inside and scaled by kh·kw,
    as in PyTorch. PyTorch's values, NaN included: a negative window sum (odd ``p``,
    negative inputs) gives ``y`` NaN (unless ``1/p`` is whole) and a NaN gradient there;
    an all-zero window gives ``y = 0`` and gradient 0 (PyTorch's ``relu`` mask), but NaN
    at zero inputs when ``p < 1`` (``0 · inf``); a negative input with ``p`` not whole
    is NaN; a window whose sum is NaN (a NaN input, or +inf and -inf) passes gradient 0
    with ``p = 1`` and NaN otherwise (PyTorch's ``sign(NaN) = 0`` times the power's
    derivative).

    Args:
        norm_type: ``p``, a number > 0 (PyTorch's ``inf``, a max of ``|x|``, is not taken).
        kernel_size: Window size, an int or a pair.
        stride: Step between windows, an int or a pair; default the kernel size.
        ceil_mode: Round the output size up, as PyTorch's ``ceil_mode`` (default False).
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``norm_type`` not a number, kernel_size or stride not ints.
        ValueError: ``norm_type`` <= 0 or not finite, kernel_size or stride < 1; in
            forward, an input of another rank or smaller than the kernel.
    """

    def __init__(self, norm_type: float, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None, ceil_mode: bool = False, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(norm_type, kernel_size, stride, ceil_mode, dtype)


class LPPool1D(_Pool1D, _LPPool):
    """1-D power-average pooling on ``NCL`` input, as PyTorch's ``nn.LPPool1d``.

    ::

        Forward:   s = AvgPool1D(kernel_size, stride, ceil_mode=ceil_mode)(x**p)
                   u = s · k           y = u**(1/p)
                   x (N, C, L), y (N, C, Lo),  Lo = (L - k) // stride + 1
        Backward:  du = dy · (1/p) · u**(1/p - 1), then 0 where u == 0
                   dx = AvgPool1D.backward(du · k) · p · x**(p - 1)

    PyTorch's values at the edges, NaN included: see :class:`LPPool2D`.

    Args:
        norm_type: ``p``, a number > 0 (PyTorch's ``inf`` is not taken).
        kernel_size: Window length.
        stride: Step between windows; default the kernel size.
        ceil_mode: Round the output length up, as PyTorch's ``ceil_mode`` (default False).
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``norm_type`` not a number, kernel_size or stride not ints.
        ValueError: ``norm_type`` <= 0 or not finite, kernel_size or stride < 1; in
            forward, an input of another rank or shorter than the kernel.
    """

    def __init__(self, norm_type: float, kernel_size: int, stride: int | None = None,
                 ceil_mode: bool = False, *, dtype: Any = np.float32) -> None:
        super().__init__(norm_type, kernel_size, stride, ceil_mode, dtype)
