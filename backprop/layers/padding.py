"""Padding layers, as PyTorch's ``nn.ZeroPad2d``, ``ConstantPad2d``, ``ReflectionPad2d``,
``ReplicationPad2d``, ``CircularPad2d`` and their 1-D and 3-D forms.

The copies are the convolutions' ``padding_mode`` ones (:mod:`._padding`: ``np.pad``'s
modes), and so is the backward: every padded entry's gradient is added back onto the
entry of ``x`` it copies (``unpad``, the adjoint of the pad). A negative padding crops,
as in PyTorch, which crops after padding, except circular padding, which crops first
(``CircularPad1D((-1, 2))`` on ``[0 1 2 3]`` wraps ``[1 2 3]``: ``[1 2 3 1 2]``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validate import fits
from ._padding import pad, unpad
from .base import Layer

Pairs = tuple[tuple[int, int], ...]
_AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
_ORDER = {1: "(left, right)", 2: "(left, right, top, bottom)",
          3: "(left, right, top, bottom, front, back)"}


def _padding(value: Any, rank: int, who: str) -> tuple[int, ...]:
    """PyTorch's padding: an int for every side, or ``2 * rank`` ints, last axis first."""
    items = (value,) * 2 * rank if isinstance(value, (int, np.integer)) else value
    order = _ORDER[rank]
    if (isinstance(value, bool) or not isinstance(items, (tuple, list))
            or len(items) != 2 * rank
            or any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) for p in items)):
        raise TypeError(f"{who}: expected padding as an int or {2 * rank} ints {order}, "
                        f"got {value!r}")
    return tuple(int(p) for p in items)


def _crop(shape: tuple[int, ...], pairs: Pairs) -> tuple[slice, ...]:
    """The slices that drop the negative paddings' entries from the spatial axes."""
    return (slice(None), slice(None), *(slice(max(-b, 0), n - max(-a, 0))
                                        for n, (b, a) in zip(shape[2:], pairs, strict=True)))


def _grown(shape: tuple[int, ...], pairs: Pairs) -> tuple[int, ...]:
    return (*shape[:2], *(n + b + a for n, (b, a) in zip(shape[2:], pairs, strict=True)))


class _Pad(Layer):
    """Pad the spatial axes of ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)`` input
    in ``_mode``."""

    _set_once = frozenset({"padding"})  # see Layer._set_once

    _cache_attrs = ("_x_shape",)
    _mode: ClassVar[str]
    _rank: ClassVar[int]
    value = 0.0

    def __init__(self, padding: int | tuple[int, ...], *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.padding = _padding(padding, self._rank, type(self).__name__)
        p = self.padding  # torch's order, last axis first -> (before, after) per axis
        self._pairs: Pairs = tuple((p[i], p[i + 1]) for i in range(2 * self._rank - 2, -1, -2))
        self._grow: Pairs = tuple((max(b, 0), max(a, 0)) for b, a in self._pairs)
        self._crop_first = self._mode == "circular"  # PyTorch's order, see the module
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "C", *_AXES[self._rank])
        self._check_size(x.shape)
        fits(self, _grown(x.shape, self._grow), x.dtype, x.shape)
        if np.isfinite(self.value) and abs(self.value) > float(np.finfo(x.dtype).max):
            raise ValueError(f"{self!r}: expected a value within {x.dtype}'s range, "
                             f"±{np.finfo(x.dtype).max:.4g} (or ±inf), got {self.value!r} "
                             f"(PyTorch refuses it too)")
        xc = x[_crop(x.shape, self._pairs)] if self._crop_first else x
        xp = pad(xc, self._mode, self._grow, self.value)
        y = xp if self._crop_first else xp[_crop(xp.shape, self._pairs)]
        if training:
            self._x_shape = x.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._pop("_x_shape")
        self._check_dy(dy, _grown(x_shape, self._pairs))
        if self._crop_first:
            dx = np.zeros(x_shape, dtype=dy.dtype)
            dx[_crop(x_shape, self._pairs)] = unpad(dy.copy(), self._mode, self._grow)
            return dx
        dxp = np.zeros(_grown(x_shape, self._grow), dtype=dy.dtype)
        dxp[_crop(dxp.shape, self._pairs)] = dy
        return unpad(dxp, self._mode, self._grow)

    def _check_size(self, shape: tuple[int, ...]) -> None:
        # PyTorch's limits: a reflection never reaches past the far edge (pad < n), a
        # circular pad wraps once at most (pad <= the cropped size)
        for n, (b, a) in zip(shape[2:], self._pairs, strict=True):
            kept, grow = n - max(-b, 0) - max(-a, 0), max(b, a)
            if self._mode == "reflect" and grow >= n:
                rule = f"each padding smaller than the input size {n}"
            elif self._mode == "circular" and grow > kept:
                rule = f"each padding at most the input size left after cropping, {kept}"
            elif self._mode == "replicate" and n == 0 and grow > 0:  # (NumPy's pad failed)
                rule = "an entry to repeat (a non-empty input)"
            elif (self._mode == "constant" and kept < 0) or n + b + a < 1:  # torch's rule
                rule = "crops no larger than the input and an output of at least 1 entry"
            else:
                continue
            raise ValueError(f"{self!r}: expected {rule} along each spatial axis, got "
                             f"padding {self.padding} and input of shape {tuple(shape)}")


class _Pad1D(_Pad):
    _rank = 1


class _Pad2D(_Pad):
    _rank = 2


class _Pad3D(_Pad):
    _rank = 3


_ARGS = """
    Args:
        padding: An int for every side, or PyTorch's tuple, last axis first: ``(left,
            right)`` for 1-D, ``(left, right, top, bottom)`` for 2-D, ``(left, right, top,
            bottom, front, back)`` for 3-D. Negative crops.
        dtype: Input dtype (default float32).
"""
_RAISES = """
    Raises:
        TypeError: ``padding`` is not an int or a tuple of ``2 · rank`` ints.
        ValueError: In forward, an input of another rank, or too small: an empty output
            (PyTorch returns some of these empty){}.
"""


class ZeroPad2D(_Pad2D):
    """Pad ``(N, C, H, W)`` with zeros, as PyTorch's ``nn.ZeroPad2d``.

    ::

        Forward:   y = zeros(N, C, t + H + b, l + W + r);  y[:, :, t:t+H, l:l+W] = x
                   (l, r, t, b) = padding; a negative one crops that side instead
        Backward:  dx = dy[:, :, t:t+H, l:l+W]
    """

    _mode = "constant"


class ZeroPad1D(_Pad1D):
    """Pad ``(N, C, L)`` with zeros, as PyTorch's ``nn.ZeroPad1d``.

    ::

        Forward:   y = zeros(N, C, l + L + r);  y[:, :, l:l+L] = x    (l, r) = padding
        Backward:  dx = dy[:, :, l:l+L]
    """

    _mode = "constant"


class ConstantPad2D(_Pad2D):
    """Pad ``(N, C, H, W)`` with ``value``, as PyTorch's ``nn.ConstantPad2d``.

    ::

        Forward:   y = full((N, C, t + H + b, l + W + r), value);  y[:, :, t:t+H, l:l+W] = x
        Backward:  dx = dy[:, :, t:t+H, l:l+W]       (value is a constant: no gradient)
    """

    _mode = "constant"

    def __init__(self, padding: int | tuple[int, ...], value: float, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(padding, dtype=dtype)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{type(self).__name__}: expected value to be a number, "
                            f"got {value!r}")
        self.value = float(value)


class ConstantPad1D(ConstantPad2D):
    """Pad ``(N, C, L)`` with ``value``, as PyTorch's ``nn.ConstantPad1d``.

    ::

        Forward:   y = full((N, C, l + L + r), value);  y[:, :, l:l+L] = x
        Backward:  dx = dy[:, :, l:l+L]              (value is a constant: no gradient)
    """

    _rank = 1


class ReflectionPad2D(_Pad2D):
    """Pad ``(N, C, H, W)`` with its mirror image, as PyTorch's ``nn.ReflectionPad2d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode='reflect')
                   along an axis of n:  [1 2 3] -> 3 2 [1 2 3] 2 1     (each pad < n)
        Backward:  dx = dy[:, :, t:t+H, l:l+W] + each padded entry's dy added onto the
                   entry it mirrors (along W, then H: corners are copies of copies)
    """

    _mode = "reflect"


class ReflectionPad1D(_Pad1D):
    """Pad ``(N, C, L)`` with its mirror image, as PyTorch's ``nn.ReflectionPad1d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (l, r)), mode='reflect')   (l, r < L)
        Backward:  dx = dy[:, :, l:l+L] + dy[:, :, i] added onto the entry padded i mirrors
    """

    _mode = "reflect"


class ReplicationPad2D(_Pad2D):
    """Pad ``(N, C, H, W)`` with copies of its edges, as PyTorch's ``nn.ReplicationPad2d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode='edge')
                   along an axis:  [1 2 3] -> 1 1 [1 2 3] 3 3
        Backward:  dx = dy[:, :, t:t+H, l:l+W] + the padded slabs' dy summed onto the
                   edge they copy (along W, then H)
    """

    _mode = "replicate"


class ReplicationPad1D(_Pad1D):
    """Pad ``(N, C, L)`` with copies of its edges, as PyTorch's ``nn.ReplicationPad1d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (l, r)), mode='edge')
        Backward:  dx = dy[:, :, l:l+L];  dx[..., 0] += dy[..., :l].sum(-1);
                   dx[..., -1] += dy[..., l+L:].sum(-1)
    """

    _mode = "replicate"


class CircularPad2D(_Pad2D):
    """Pad ``(N, C, H, W)`` by wrapping around, as PyTorch's ``nn.CircularPad2d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode='wrap')
                   along an axis of n:  [1 2 3] -> 2 3 [1 2 3] 1 2     (each pad <= n)
        Backward:  dx = dy[:, :, t:t+H, l:l+W] + each padded entry's dy added onto the
                   entry at the other end it copies (along W, then H)

    A negative padding crops first, then the rest wraps around (PyTorch's order). A
    padding larger than the axis left after cropping is refused: PyTorch 2.13 raises for
    one larger than the uncropped axis, and for one in between returns uninitialised
    memory where it reads past the cropped axis.
    """

    _mode = "circular"


class CircularPad1D(_Pad1D):
    """Pad ``(N, C, L)`` by wrapping around, as PyTorch's ``nn.CircularPad1d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (l, r)), mode='wrap')     (l, r <= L)
        Backward:  dx = dy[:, :, l:l+L];  dx[..., L-l:] += dy[..., :l];
                   dx[..., :r] += dy[..., l+L:]

    A negative padding crops first, then the rest wraps around (PyTorch's order); the
    limit and the difference from PyTorch are :class:`CircularPad2D`'s.
    """

    _mode = "circular"


class ZeroPad3D(_Pad3D):
    """Pad ``(N, C, D, H, W)`` with zeros, as PyTorch's ``nn.ZeroPad3d``.

    ::

        Forward:   y = zeros(N, C, f + D + k, t + H + b, l + W + r)
                   y[:, :, f:f+D, t:t+H, l:l+W] = x     (l, r, t, b, f, k) = padding
                   (f, k: front and back); a negative one crops that side instead
        Backward:  dx = dy[:, :, f:f+D, t:t+H, l:l+W]
    """

    _mode = "constant"


class ConstantPad3D(ConstantPad2D):
    """Pad ``(N, C, D, H, W)`` with ``value``, as PyTorch's ``nn.ConstantPad3d``.

    ::

        Forward:   y = full((N, C, f + D + k, t + H + b, l + W + r), value)
                   y[:, :, f:f+D, t:t+H, l:l+W] = x     (l, r, t, b, f, k) = padding
        Backward:  dx = dy[:, :, f:f+D, t:t+H, l:l+W]   (value is a constant: no gradient)
    """

    _rank = 3


class ReflectionPad3D(_Pad3D):
    """Pad ``(N, C, D, H, W)`` with its mirror image, as PyTorch's ``nn.ReflectionPad3d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (f, k), (t, b), (l, r)), mode='reflect')
                   along an axis of n:  [1 2 3] -> 3 2 [1 2 3] 2 1     (each pad < n)
        Backward:  dx = dy[:, :, f:f+D, t:t+H, l:l+W] + each padded entry's dy added onto
                   the entry it mirrors (along W, then H, then D)
    """

    _mode = "reflect"


class ReplicationPad3D(_Pad3D):
    """Pad ``(N, C, D, H, W)`` with copies of its edges, as PyTorch's
    ``nn.ReplicationPad3d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (f, k), (t, b), (l, r)), mode='edge')
                   along an axis:  [1 2 3] -> 1 1 [1 2 3] 3 3
        Backward:  dx = dy[:, :, f:f+D, t:t+H, l:l+W] + the padded slabs' dy summed onto
                   the face they copy (along W, then H, then D)
    """

    _mode = "replicate"


class CircularPad3D(_Pad3D):
    """Pad ``(N, C, D, H, W)`` by wrapping around, as PyTorch's ``nn.CircularPad3d``.

    ::

        Forward:   y = np.pad(x, ((0, 0), (0, 0), (f, k), (t, b), (l, r)), mode='wrap')
                   along an axis of n:  [1 2 3] -> 2 3 [1 2 3] 1 2     (each pad <= n)
        Backward:  dx = dy[:, :, f:f+D, t:t+H, l:l+W] + each padded entry's dy added onto
                   the entry at the other end it copies (along W, then H, then D)

    A negative padding crops first, then the rest wraps around (PyTorch's order); the
    limit and the difference from PyTorch are :class:`CircularPad2D`'s.
    """

    _mode = "circular"


_LIMITS = {"reflect": ", or a padding not smaller than the input size",
           "constant": ", or a crop larger than the input",
           "circular": ", or a padding larger than the input size left after cropping"}
_VALUE = "        value: The padding's value (a number).\n"
for _cls in (ZeroPad1D, ZeroPad2D, ZeroPad3D, ConstantPad1D, ConstantPad2D, ConstantPad3D,
             ReflectionPad1D, ReflectionPad2D, ReflectionPad3D, ReplicationPad1D,
             ReplicationPad2D, ReplicationPad3D, CircularPad1D, CircularPad2D, CircularPad3D):
    # the Args and Raises every padding layer shares, written once
    _args = _ARGS.replace("        dtype", _VALUE + "        dtype", 1) \
        if issubclass(_cls, ConstantPad2D) else _ARGS
    _cls.__doc__ = f"{_cls.__doc__}{_args}{_RAISES.format(_LIMITS.get(_cls._mode, ''))}"
