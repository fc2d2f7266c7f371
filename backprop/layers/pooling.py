"""Pooling: MaxPool1D/2D/3D here; AvgPool1D/2D/3D and GlobalAvgPool in :mod:`.avgpool`.

Padding follows PyTorch: max pooling pads with ``-inf`` (padding never wins),
average pooling with zeros that count in the mean (``count_include_pad=True``, or
not with ``False``), and padding may be at most half the kernel, so every window holds
a real input (without dilation). ``ceil_mode`` adds PyTorch's last, partial windows.
Max pooling's ``dilation`` spaces a window's taps ``d`` apart, as PyTorch's: a
window then spans ``d·(k - 1) + 1`` inputs.

Windowed pooling loops over the ``prod(kernel)`` kernel offsets (4 for a 2x2
pool), never over pixels or samples: for one offset, ``x[window(offset·d)]`` is a
strided view holding the element every output reads there (see ``_spatial``).
The same loop serves overlapping and non-overlapping windows, and in backward a
plain ``+=`` per offset scatters the gradient with no ``np.add.at``. When the windows
tile the (padded) input exactly (the usual 2x2, stride 2), max pooling's forward first copies
the input, regrouped by offset, into contiguous planes, so the loop's passes read
contiguous memory instead of stride-2 views; when they overlap (3x3, stride 2), both
passes run on the input's phases instead (see :mod:`._polyphase`).
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from ..backend import all_finite
from ._polyphase import Layout
from ._pool import _Pool, _Pool1D, _Pool2D, _Pool3D
from ._spatial import canonical, window
from .avgpool import AvgPool1D, AvgPool2D, AvgPool3D, GlobalAvgPool  # here too, as before the split


class _MaxPool(_Pool):
    """Max over each window; backward routes ``dy`` to the window's argmax.

    ::

        Forward:   y[n, c, o] = max_k x[n, c, o·s + d·k]      (first maximum on ties)
                   arg[n, c, o] = the kernel offset k of that maximum
        Backward:  dx[n, c, o·s + d·k] += dy[n, c, o] · (arg[n, c, o] == k)   for each k
    """

    _cache_attrs = ("_arg", "_x_shape")
    _fill = -np.inf

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, *, ceil_mode: bool = False,
                 dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode,
                         dilation=dilation, dtype=dtype)
        self.dilation = canonical(self._dil)
        self._arg: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        out = self._checked(x)
        phases = self._phases(x.shape, out)
        if phases is not None:  # one copy regroups x by phase; every pass is then contiguous
            y, arg = _running_max(phases.taps(phases.split(x, self._fill)), training)
            y, arg = phases.crop(y), None if arg is None else phases.crop(arg)
        else:
            xp, _, slices = self._padded(x, out)
            y, arg = _running_max(self._planes(xp, out) or [xp[sl] for sl in slices], training)
        if training:
            if not all_finite(y):  # NaN or infinite maxima: PyTorch's exact rule (rare)
                xp, _, slices = self._padded(x, out)
                arg = self._exact_arg(xp, slices, arg, x.shape)
            self._arg, self._x_shape = arg, x.shape
        return y

    def _phases(self, x_shape: tuple[int, ...], out: tuple[int, ...]) -> Layout | None:
        """The phase layout (see :mod:`._polyphase`) for overlapping windows, where it pays.

        Strided views cost about 24 elements' time per row of outputs on top of their
        elements; the phases' flat passes cost their grid's positions, ``waste`` per
        output: so phases when ``waste <= 1 + 24 / Wo``. Forward + backward, float32,
        interleaved medians (strided -> phases, ms): 32x64x28x28 3x3 stride 2 pad 1
        (ResNet's stem) 21.3 -> 9.5; 32x64x28x28 3x3 stride 1 pad 1 49.4 -> 34.4;
        32x64x7x7 7x7 stride 1 pad 3 (waste 3.45) 30.9 -> 22.4; but 8x16x8x256 7x7
        stride 1 (waste 4.1, rows of 250) 6.0 -> 12.9 and 32x64x9x9 3x3 dilation 4
        (waste 13.4) 2.6 -> 3.0. Windows that do not overlap keep the strided views.
        """
        if all(s >= k for s, k in zip(self._s, self._span, strict=True)):
            return None
        layout = Layout(x_shape, self._taps, self._s, self._p, out)
        return layout if layout.waste <= 1 + 24 / out[-1] else None

    def _tiles(self, shape: tuple[int, ...], out: tuple[int, ...]) -> bool:
        """Whether the windows tile the (padded) input ``shape`` exactly: each of its
        elements is in one window (stride = kernel, no remainder: never with dilation,
        whose windows span more than the stride)."""
        return self._s == self._k and all(
            o * k == n for o, k, n in zip(out, self._k, shape[2:], strict=True))

    def _planes(self, x: np.ndarray, out: tuple[int, ...]) -> list[np.ndarray]:
        """What each kernel offset reads, as contiguous ``(N, C, *out)`` planes, when the
        windows tile the (padded) ``x`` exactly; else ``[]``.

        One strided copy regroups ``x`` by offset, so every pass of the max loop runs on
        contiguous memory instead of stride-2 views: 64x32x28x28 float32, 2x2 pool,
        forward 1.70 -> 1.28 ms.
        """
        d, (n, c) = len(out), x.shape[:2]
        if not (x.flags.c_contiguous and self._tiles(x.shape, out)):
            return []
        split = [a for o, k in zip(out, self._k, strict=True) for a in (o, k)]  # Ho, kh, ...
        kernel_first = (*range(3, 2 + 2 * d, 2), 0, 1, *range(2, 2 + 2 * d, 2))
        planes = np.empty((*self._k, n, c, *out), x.dtype)
        np.copyto(planes, x.reshape(n, c, *split).transpose(kernel_first))
        return list(planes.reshape(prod(self._k), n, c, *out))  # offsets in row-major order

    def _exact_arg(self, x: np.ndarray, slices: list[tuple], arg: np.ndarray,
                   x_shape: tuple[int, ...]) -> np.ndarray:
        """The argmax as PyTorch's kernel picks it, for windows with NaN or -inf.

        PyTorch starts each window at its first real input with the value -inf and
        moves on when a later input is greater *or NaN*: so a NaN takes the gradient
        (the last NaN of the window), and a window whose real inputs are all -inf
        gives it to its first real input, never to the padding. The fast loop above
        agrees wherever the maximum is finite.

        A dilated window can miss the input altogether (dilation wider than the input):
        its maximum is -inf and its gradient goes to the padding, so nowhere. (PyTorch's
        index for it points past the window, and the next row or channel gets the
        gradient; not copied here.)
        """
        real = None
        if x.shape != x_shape:  # padded
            real = np.zeros(x.shape, bool)
            real[self._interior(x_shape)] = True
        best = np.full(arg.shape, -np.inf, x.dtype)
        found = np.zeros(arg.shape, bool)
        out = np.zeros_like(arg)
        for k, sl in enumerate(slices):
            v = x[sl]
            ok = np.ones(arg.shape, bool) if real is None else real[sl]
            first = ok & ~found
            out[first] = k
            found |= ok
            take = ok & ((v > best) | np.isnan(v))
            out[take] = k
            best[take] = v[take]
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        arg, x_shape = self._pop("_arg", "_x_shape")
        self._check_dy(dy, arg.shape)
        out = arg.shape[2:]
        overlap = any(s < k for s, k in zip(self._s, self._span, strict=True))
        # dy · mask is fast, but an inf or NaN of dy would reach the window's other inputs
        # as 0 · inf = NaN: then select, as PyTorch's scatter (one BLAS sum to know)
        route = _masked if all_finite(dy) else _selected
        phases = self._phases(x_shape, out)
        if phases is not None:  # routed into x's phases, then moved back
            dyw, argw = phases.widen(dy), phases.widen(arg)
            dxp = np.zeros((len(phases.moves), phases.size + phases.tail), dy.dtype)
            for k, (i, shift) in enumerate(phases.reads):  # overlapping windows add up
                dxp[i, shift:shift + phases.size] += route(dyw, argw == k)
            return phases.merge(dxp)
        padded = self._padded_shape(x_shape, out)  # routed over the padded input, then cut
        # Windows that tile the input exactly write every element once: no zero fill.
        dx = (np.empty_like if self._tiles(padded, out) else np.zeros_like)(dy, shape=padded)
        for k, tap in enumerate(self._taps):
            if overlap:  # windows share inputs: their gradients add up
                with np.errstate(over="ignore", invalid="ignore"):  # inf - inf: NaN, quietly
                    dx[window(tap, self._s, out)] += route(dy, arg == k)
            else:  # each input is in one window at most: write in place, no temporary
                route(dy, arg == k, out=dx[window(tap, self._s, out)])
        return self._unpad(dx, x_shape)


def _masked(dy: np.ndarray, mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``dy`` where ``mask``, 0 elsewhere, for a finite ``dy``: one multiply."""
    return np.multiply(dy, mask, out=out)


def _selected(dy: np.ndarray, mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`_masked` for a ``dy`` holding inf or NaN: those reach only where ``mask``."""
    if out is None:
        return np.where(mask, dy, dy.dtype.type(0))
    out[...] = 0
    np.copyto(out, dy, where=mask)
    return out


def _running_max(views: list[np.ndarray], track: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The maximum over ``views`` (one per kernel offset) and, if ``track``, the offset
    of the first maximum."""
    y = views[0].copy()
    arg = np.zeros_like(y, dtype=np.min_scalar_type(len(views))) if track else None
    for k, v in enumerate(views[1:], start=1):
        if arg is not None:
            # Strict >: the first maximum wins ties, as in PyTorch. Offsets come in
            # increasing order, so max(arg, k·better) is where(better, k, arg) without
            # a masked write (those are ~10x slower than plain arithmetic).
            better = np.multiply(v > y, k, dtype=arg.dtype)
            np.maximum(arg, better, out=arg)
        np.maximum(y, v, out=y)
    return y, arg


class MaxPool2D(_Pool2D, _MaxPool):
    """2-D max pooling on ``NCHW`` input.

    ::

        Forward:   x padded with -inf by (ph, pw) on each side
                   y[n, c, i, j] = max over (p, q) < (kh, kw) of
                                   x[n, c, i·sh + dh·p, j·sw + dw·q]
                   x (N, C, H, W) -> y (N, C, Ho, Wo),
                   Ho = (H + 2·ph - dh·(kh - 1) - 1) // sh + 1
        Backward:  dx = dy routed to each window's argmax (first maximum on ties), zeros
                   elsewhere; overlapping windows (stride < span) accumulate

    A training forward caches ``arg`` (``layer.cache["arg"]``, the shape of ``y``): the
    kernel offset of each window's maximum, row-major (``p·kw + q``), and the input's
    shape; backward sends ``dy[n, c, i, j]`` to offset ``arg[n, c, i, j]`` of its window.

    Args:
        kernel_size: Window size, an int or a pair.
        stride: Step between windows, an int or a pair; default the kernel size.
        padding: ``-inf`` added on each side (it never wins), an int or a pair, at
            most half the kernel size (whatever the dilation, as in PyTorch).
        dilation: Spacing between the window's taps, an int or a pair (default 1;
            PyTorch's ``dilation``): a window spans ``dh·(kh - 1) + 1`` rows.
        ceil_mode: Round the output size up, as PyTorch's ``ceil_mode`` (default False):
            ``Ho = ceil((H + 2·ph - dh·(kh - 1) - 1) / sh) + 1``, less one if that last
            window would start past the input and the left padding; it reads ``-inf``
            past the end.
        dtype: Input dtype (default float32).
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1, *,
                 ceil_mode: bool = False, dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                         dtype=dtype)


class MaxPool1D(_Pool1D, _MaxPool):
    """1-D max pooling on ``NCL`` input.

    ::

        Forward:   x padded with -inf by p on each side
                   y[n, c, i] = max over q < k of x[n, c, i·s + d·q]
                   x (N, C, L) -> y (N, C, Lo),  Lo = (L + 2·p - d·(k - 1) - 1) // s + 1
        Backward:  dx = dy routed to each window's argmax (first maximum on ties)

    Args:
        kernel_size: Window length.
        stride: Step between windows; default the kernel size.
        padding: ``-inf`` added on each end (it never wins), at most half the kernel
            size (whatever the dilation, as in PyTorch).
        dilation: Spacing between the window's taps (default 1; PyTorch's
            ``dilation``): a window spans ``d·(k - 1) + 1`` inputs.
        ceil_mode: Round the output length up, as PyTorch's ``ceil_mode`` (see
            :class:`MaxPool2D`).
        dtype: Input dtype (default float32).
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0,
                 dilation: int = 1, *, ceil_mode: bool = False,
                 dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                         dtype=dtype)


class MaxPool3D(_Pool3D, _MaxPool):
    """3-D max pooling on ``NCDHW`` input (PyTorch's ``MaxPool3d``).

    ::

        Forward:   x padded with -inf by (pd, ph, pw) on each side
                   y[n, c, i, j, l] = max over the kernel offsets (a, b, e) of
                                      x[n, c, i·sd + dd·a, j·sh + dh·b, l·sw + dw·e]
                   x (N, C, D, H, W) -> y (N, C, Do, Ho, Wo),
                   Do = (D + 2·pd - dd·(kd - 1) - 1) // sd + 1 per axis
        Backward:  dx = dy routed to each window's argmax (first maximum on ties), zeros
                   elsewhere; overlapping windows accumulate

    The same code as :class:`MaxPool2D` with three spatial axes (arguments as there,
    ints or triples).

    Args:
        kernel_size: Window size, an int or a triple.
        stride: Step between windows; default the kernel size.
        padding: ``-inf`` added on each side, at most half the kernel size.
        dilation: Spacing between the window's taps (default 1).
        ceil_mode: Round the output size up, as PyTorch's ``ceil_mode`` (default False).
        dtype: Input dtype (default float32).
    """

    def __init__(self, kernel_size: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] | None = None,
                 padding: int | tuple[int, int, int] = 0,
                 dilation: int | tuple[int, int, int] = 1, *, ceil_mode: bool = False,
                 dtype: Any = np.float32) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                         dtype=dtype)


__all__ = ["MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
           "GlobalAvgPool"]
