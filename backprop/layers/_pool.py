"""The window bookkeeping shared by max and average pooling (see :mod:`.pooling`)."""

from __future__ import annotations

from math import prod
from typing import Any, ClassVar

import numpy as np

from .._validate import boolean
from ._spatial import as_tuple, canonical, offsets, out_size, spans, window
from .base import Layer

_MAX_TAPS = 1 << 24  # kernel positions a pooling layer takes (see _Pool.__init__)


class _Pool(Layer):
    """Shared window bookkeeping: kernel, stride (default: the kernel), padding,
    dilation (taps ``d`` apart: a window spans ``d·(k - 1) + 1`` inputs; max pooling
    only, as in PyTorch) and ``ceil_mode`` (PyTorch's: one more window where the input
    does not fill the last, as long as it starts inside the input or the left padding;
    the padded copy is then extended on the right with the fill value)."""

    _set_once = frozenset({"kernel_size", "stride", "padding", "dilation"})  # see Layer._set_once

    _d: ClassVar[int]
    _axes: ClassVar[tuple[str, ...]]
    _fill: ClassVar[float]  # the padding value

    def __init__(self, kernel_size: Any, stride: Any, padding: Any = 0, *,
                 ceil_mode: bool = False, dilation: Any = 1, dtype: Any) -> None:
        super().__init__(dtype=dtype)
        who = type(self).__name__
        self.ceil_mode = boolean(ceil_mode, "ceil_mode", who)
        self._k = as_tuple(kernel_size, self._d, "kernel_size", who)
        self._s = self._k if stride is None else as_tuple(stride, self._d, "stride", who)
        self._p = as_tuple(padding, self._d, "padding", who, minimum=0)
        self._dil = as_tuple(dilation, self._d, "dilation", who)
        if any(p > k // 2 for p, k in zip(self._p, self._k, strict=True)):
            # PyTorch 2.13 bounds padding by the kernel size whatever the dilation
            why = ("every window must hold an input" if self._dil == (1,) * self._d else
                   f"the kernel size, not its span with dilation {canonical(self._dil)}")
            raise ValueError(f"{who}: expected padding of at most half the kernel size "
                             f"{canonical(self._k)} (as in PyTorch: {why}), got padding "
                             f"{padding!r}")
        self._span = spans(self._k, self._dil)
        if prod(self._k) > _MAX_TAPS:  # MaxPool1D(10**12): a typo (the list would fill memory)
            raise ValueError(f"{who}: expected a kernel of at most 2**24 positions (each is a "
                             f"NumPy pass over the output; a global pool is AdaptiveMaxPool or "
                             f"GlobalAvgPool), got kernel_size {canonical(self._k)}, "
                             f"{prod(self._k):,} positions")
        # where each kernel offset reads inside its window, row-major: offset · dilation
        self._taps = [tuple(o * d for o, d in zip(offset, self._dil, strict=True))
                      for offset in offsets(self._k)]
        self.kernel_size = canonical(self._k)
        self.stride = None if stride is None else canonical(self._s)
        self.padding = canonical(self._p)

    def _windows(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], list[tuple]]:
        """Check ``x``; return it padded, the output size and one index per kernel offset."""
        return self._padded(x, self._checked(x))

    def _checked(self, x: Any) -> tuple[int, ...]:
        """Check ``x``; return the output size."""
        self._check_input(x, "N", "C", *self._axes)
        return self._out(x.shape)

    def _padded(self, x: np.ndarray, out: tuple[int, ...]
                ) -> tuple[np.ndarray, tuple[int, ...], list[tuple]]:
        """``x`` padded, ``out`` and one index per kernel offset (see :meth:`_windows`)."""
        padded = self._padded_shape(x.shape, out)
        if padded != x.shape:
            xp = np.full_like(x, self._fill, shape=padded)
            xp[self._interior(x.shape)] = x
            x = xp
        return x, out, [window(t, self._s, out) for t in self._taps]

    def _out(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output size (checked: a ValueError when a window cannot fit).

        With ``ceil_mode`` an input shorter than the kernel still gets its one window,
        as in PyTorch (its rule needs only that the window starts inside the input or
        the left padding)."""
        if not self.ceil_mode or len(x_shape) != self._d + 2:
            return out_size(self, x_shape, self._k, self._s, self._p, dilation=self._dil)
        ceil = []
        for n, k, s, p in zip(x_shape[2:], self._span, self._s, self._p, strict=True):
            o = -(-(n + 2 * p - k) // s) + 1
            ceil.append(o - 1 if (o - 1) * s >= n + p else o)  # the last must start inside
        if min(ceil) < 1:  # raises, naming the sizes
            return out_size(self, x_shape, self._k, self._s, self._p, dilation=self._dil)
        return tuple(ceil)

    def _padded_shape(self, x_shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, ...]:
        """The padded input: ``p`` on both sides, plus what ``ceil_mode``'s last windows
        (``out`` outputs) need on the right."""
        return (*x_shape[:2], *(max(n + 2 * p, (o - 1) * s + k) for n, p, o, s, k in zip(
            x_shape[2:], self._p, out, self._s, self._span, strict=True)))

    def _interior(self, x_shape: tuple[int, ...]) -> tuple[slice, ...]:
        """Where the input sits inside its padded copy."""
        return (slice(None), slice(None)) + tuple(
            slice(p, p + n) for n, p in zip(x_shape[2:], self._p, strict=True))

    def _unpad(self, dxp: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
        """The input's part of a gradient over the padded input (a new array)."""
        return dxp if dxp.shape == x_shape else dxp[self._interior(x_shape)].copy()


class _Pool2D(_Pool):
    """The 2-D pools' axes (``NCHW``); each pool writes its own typed ``__init__``
    (the one ``get_config`` and ``repr`` read)."""

    _d = 2
    _axes = ("H", "W")


class _Pool1D(_Pool):
    """The 1-D pools' axis (``NCL``); see :class:`_Pool2D`."""

    _d = 1
    _axes = ("L",)


class _Pool3D(_Pool):
    """The 3-D pools' axes (``NCDHW``); see :class:`_Pool2D`."""

    _d = 3
    _axes = ("D", "H", "W")
