"""Average pooling: AvgPool1D/2D/3D and GlobalAvgPool (the method: see :mod:`.pooling`)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .._validate import boolean
from ._masks import check_mask
from ._pool import _Pool, _Pool1D, _Pool2D, _Pool3D
from ._spatial import offsets, window
from .base import Layer


class _AvgPool(_Pool):
    """Mean over each window; backward spreads ``dy / count`` over it.

    ``count`` is the kernel size, except where ``ceil_mode``'s last windows run past the
    padded input (PyTorch counts the positions up to its end) or, with
    ``count_include_pad=False``, where a window covers padding (then only real inputs
    count). Padding zeros count by default (PyTorch's ``count_include_pad=True``).
    """

    _cache_attrs = ("_x_shape", "_div")
    _fill = 0.0
    count_include_pad: bool  # set by AvgPool1D/AvgPool2D before this __init__ runs

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *,
                 ceil_mode: bool = False, dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode, dtype=dtype)
        self._x_shape: tuple[int, ...] | None = None
        self._div: float | np.ndarray | None = None  # the forward's divisor (see _count)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        x_shape = getattr(x, "shape", None)
        x, out, slices = self._windows(x)
        y = x[slices[0]].copy()
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, a sum past the
            # range inf, quietly, as in PyTorch
            for sl in slices[1:]:
                y += x[sl]
        count = self._count(x_shape, out)
        if isinstance(count, float):
            y *= 1 / count
        else:
            y /= count
        if training:
            self._x_shape, self._div = x_shape, count
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, count = self._pop("_x_shape", "_div")
        out = self._out(x_shape)
        self._check_dy(dy, (*x_shape[:2], *out))
        share = dy * (1 / count) if isinstance(count, float) else dy / count
        dx = np.zeros_like(dy, shape=self._padded_shape(x_shape, out))
        for offset in offsets(self._k):
            dx[window(offset, self._s, out)] += share
        return self._unpad(dx, x_shape)

    def _count(self, x_shape: tuple[int, ...], out: tuple[int, ...]) -> float | np.ndarray:
        """What each window's sum is divided by: ``prod(kernel)`` as a float when every
        window counts it, else an array over the output positions (the product of each
        axis's count of the positions that count: the padded input, or only the real
        input with ``count_include_pad=False``)."""
        counts = []
        for n, k, s, p, o in zip(x_shape[2:], self._k, self._s, self._p, out, strict=True):
            lo, hi = (0, n + 2 * p) if self.count_include_pad else (p, p + n)
            start = np.arange(o) * s
            counts.append(np.minimum(start + k, hi) - np.maximum(start, lo))
        if all(np.all(c == k) for c, k in zip(counts, self._k, strict=True)):
            return float(prod(self._k))
        count = counts[0].astype(self.dtype)
        for c in counts[1:]:
            count = np.multiply.outer(count, c.astype(self.dtype))
        return count


class AvgPool2D(_Pool2D, _AvgPool):
    """2-D average pooling on ``NCHW`` input.

    ::

        Forward:   x padded with zeros by (ph, pw) on each side
                   y[n, c, i, j] = sum over (p, q) < (kh, kw) of x[n, c, i·sh + p, j·sw + q]
                                   / count[i, j]
                   x (N, C, H, W) -> y (N, C, Ho, Wo),  Ho = (H + 2·ph - kh) // sh + 1
        Backward:  dx[n, c, i·sh + p, j·sw + q] += dy[n, c, i, j] / count[i, j]
        where      count = kh·kw (padding zeros count), except: with ceil_mode,
                   Ho = ceil((H + 2·ph - kh) / sh) + 1 (less one if that window would
                   start past the input and left padding) and a window past the padded
                   input counts its positions inside it; with count_include_pad=False,
                   only real inputs count

    Args:
        kernel_size: Window size, an int or a pair.
        stride: Step between windows, an int or a pair; default the kernel size.
        padding: Zeros added on each side, an int or a pair, at most half the kernel.
        ceil_mode: Round the output size up, as PyTorch's ``ceil_mode`` (default False).
        count_include_pad: Whether padding zeros count in the mean (default True, as
            in PyTorch).
        dtype: Input dtype (default float32).
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, *, ceil_mode: bool = False,
                 count_include_pad: bool = True, dtype: Any = np.float32) -> None:
        self.count_include_pad = boolean(count_include_pad, "count_include_pad", "AvgPool2D")
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode, dtype=dtype)


class AvgPool1D(_Pool1D, _AvgPool):
    """1-D average pooling on ``NCL`` input.

    ::

        Forward:   x padded with zeros by p on each side
                   y[n, c, i] = sum over q < k of x[n, c, i·s + q] / count[i]
                   Lo = (L + 2·p - k) // s + 1
        Backward:  dx[n, c, i·s + q] += dy[n, c, i] / count[i]
        where      count = k, except with ceil_mode or count_include_pad=False
                   (see :class:`AvgPool2D`)

    Args:
        kernel_size: Window length.
        stride: Step between windows; default the kernel size.
        padding: Zeros added on each end, at most half the kernel.
        ceil_mode: Round the output length up, as PyTorch's ``ceil_mode`` (default False).
        count_include_pad: Whether padding zeros count in the mean (default True).
        dtype: Input dtype (default float32).
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0, *,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 dtype: Any = np.float32) -> None:
        self.count_include_pad = boolean(count_include_pad, "count_include_pad", "AvgPool1D")
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode, dtype=dtype)


class AvgPool3D(_Pool3D, _AvgPool):
    """3-D average pooling on ``NCDHW`` input (PyTorch's ``AvgPool3d``).

    ::

        Forward:   x padded with zeros by (pd, ph, pw) on each side
                   y[n, c, i, j, l] = sum over the kernel offsets (a, b, e) of
                                      x[n, c, i·sd + a, j·sh + b, l·sw + e] / count[i, j, l]
                   Do = (D + 2·pd - kd) // sd + 1 per axis
        Backward:  dx[n, c, i·sd + a, j·sh + b, l·sw + e] += dy[n, c, i, j, l] / count[i, j, l]
        where      count = kd·kh·kw, except with ceil_mode or count_include_pad=False
                   (see :class:`AvgPool2D`)

    Args:
        kernel_size: Window size, an int or a triple.
        stride: Step between windows; default the kernel size.
        padding: Zeros added on each side, at most half the kernel.
        ceil_mode: Round the output size up, as PyTorch's ``ceil_mode`` (default False).
        count_include_pad: Whether padding zeros count in the mean (default True).
        dtype: Input dtype (default float32).
    """

    def __init__(self, kernel_size: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] | None = None,
                 padding: int | tuple[int, int, int] = 0, *, ceil_mode: bool = False,
                 count_include_pad: bool = True, dtype: Any = np.float32) -> None:
        self.count_include_pad = boolean(count_include_pad, "count_include_pad", "AvgPool3D")
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode, dtype=dtype)


class GlobalAvgPool(Layer):
    """Mean over every spatial position: ``(N, C, L)``, ``(N, C, H, W)`` or
    ``(N, C, D, H, W)`` -> ``(N, C)``; with ``channels_last`` (Keras' default layout)
    ``(N, L, C)``, ``(N, H, W, C)`` or ``(N, D, H, W, C)`` -> ``(N, C)`` (Keras'
    ``GlobalAveragePooling1D/2D/3D``).

    ::

        Forward:   y = x.mean(axis=(2, ...))                 x (N, C, *S), y (N, C)
        Backward:  dx = broadcast(dy[:, :, None, ...], x.shape) / prod(S)
        Masked:    y[n] = sum_t m[n, t] x[n, t] / sum_t m[n, t]   x (N, T, C), m (N, T)
                   dx[n, t] = dy[n] m[n, t] / sum_t m[n, t]       (0 for a row of no real step)

    A padding mask ``m`` (True at real steps; ``layer(x, mask=m)``, or in a Sequential the
    mask of ``Embedding(mask_zero=True)`` or ``Masking``) averages over the real steps of
    channels-last sequences ``(N, T, C)`` only, as Keras' ``GlobalAveragePooling1D``; it
    ends here. A row without a real step gives 0 (Keras: NaN).

    Args:
        channels_last: Channels on the last axis (default False: PyTorch's layout).
        dtype: Input dtype (default float32).
    """

    _cache_attrs = ("_x_shape", "_w")

    def __init__(self, *, channels_last: bool = False, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.channels_last = boolean(channels_last, "channels_last", "GlobalAvgPool")
        self._x_shape: tuple[int, ...] | None = None
        self._w: np.ndarray | None = None  # the masked mean's weights m / count, (N, T)

    def __call__(self, x: np.ndarray, *, training: bool = False, mask: Any = None
                 ) -> np.ndarray:
        return self.forward(x, training=training, mask=mask)

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """The mean over the real steps; the mask ends here (see the class docstring)."""
        return self.forward(x, training=training, mask=mask), None

    def forward(self, x: np.ndarray, *, training: bool = False, mask: Any = None
                ) -> np.ndarray:
        ndim = getattr(x, "ndim", None)
        last = self.channels_last
        if ndim is not None and ndim not in (3, 4, 5):
            want = "(N, L, C), (N, H, W, C)" if last else "(N, C, L), (N, C, H, W)"
            raise ValueError(f"{self!r}: expected input of shape {want} or "
                             f"{'(N, D, H, W, C)' if last else '(N, C, D, H, W)'}, got "
                             f"{x.shape}")
        spatial = {3: ("L",), 5: ("D", "H", "W")}.get(ndim, ("H", "W"))
        if last:
            self._check_input(x, "N", *spatial, "C")
        else:
            self._check_input(x, "N", "C", *spatial)
        axes = tuple(range(1, x.ndim - 1)) if last else tuple(range(2, x.ndim))
        if 0 in (x.shape[a] for a in axes):
            raise ValueError(f"{self!r}: expected at least one position to average over, got "
                             f"input of shape {x.shape}")
        if mask is not None:
            return self._masked_mean(x, mask, training)
        if training:
            self._x_shape, self._w = x.shape, None
        return x.mean(axis=axes)

    def _masked_mean(self, x: np.ndarray, mask: Any, training: bool) -> np.ndarray:
        if not (self.channels_last and x.ndim == 3):
            raise ValueError(f"{self!r}: a padding mask (N, T) needs channels_last=True and "
                             f"sequences (N, T, C) (Keras' GlobalAveragePooling1D), got input "
                             f"of shape {x.shape}" + ("" if self.channels_last else
                                                      " with channels first"))
        real = check_mask(self, mask, *x.shape[:2])
        m = real.astype(x.dtype)
        m /= np.maximum(m.sum(axis=1, keepdims=True), 1.0)  # the weights m / count
        if training:
            self._x_shape, self._w = x.shape, m
        x = np.where(real[..., None], x, 0.0)  # padding never read (0 · NaN would be NaN)
        return np.matmul(m[:, None, :], x)[:, 0]  # (N, 1, T) @ (N, T, C)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._pop("_x_shape")
        w = self.__dict__.get("_w")
        self._check_dy(dy, (x_shape[0], x_shape[-1]) if self.channels_last else x_shape[:2])
        self._w = None
        if w is not None:  # masked: dx[n, t] = dy[n] w[n, t]
            return w[:, :, None] * dy[:, None, :]
        dx = np.empty_like(dy, shape=x_shape)
        if self.channels_last:
            dx[...] = (dy * (1 / prod(x_shape[1:-1]))).reshape(
                x_shape[0], *(1,) * (len(x_shape) - 2), x_shape[-1])
        else:
            dx[...] = (dy * (1 / prod(x_shape[2:]))).reshape(
                *x_shape[:2], *(1,) * (len(x_shape) - 2))
        return dx
