"""The convolutions' padding modes other than zeros: 'reflect', 'replicate', 'circular'.

As in PyTorch, such a layer pads ``x`` itself with copies of its own values and then
convolves without padding: ``xp = pad(x)``, and the im2col machinery of :mod:`._conv`
runs on ``xp`` as a layer with no padding (every route: columns, products, the grouped
and depthwise route without im2col, 1x1). Along one axis of size ``n``, padded by ``b``
before and ``a`` after, padded position ``i`` (``x`` starts at ``b``) copies ``x`` at::

    reflect     the mirror image without the edge:  [1 2 3] -> 3 2 [1 2 3] 2 1   (b, a < n)
    replicate   the nearest edge:                   [1 2 3] -> 1 1 [1 2 3] 3 3
    circular    the other end, wrapping around:     [1 2 3] -> 2 3 [1 2 3] 1 2   (b, a <= n)

NumPy's ``np.pad`` modes ``'reflect'``, ``'edge'`` and ``'wrap'`` are exactly these.
Each axis pads separately (a corner is a copy of a copy), so the backward is the
adjoint of the padding, axis by axis: every padded entry's gradient is added back onto
the entry of ``x`` it was copied from, ``dx = fold(dxp)``. Each side of an axis is one
slab added onto ``x``'s entries in one ``+=``: the mirror images map one to one (the
slab reversed), replicate's pile onto the edge (the slab summed), circular's onto the
other end. :func:`pad` and :func:`unpad` are the same two steps for any ``(before, after)``
pairs (and ``'constant'``): the padding layers of :mod:`.padding` are built on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import fits
from ._spatial import out_size

_NUMPY = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}  # np.pad's names
MODES = ("zeros", *_NUMPY)


def check_mode(value: Any, who: str) -> str:
    """``value`` if it is one of :data:`MODES`, else TypeError (no string) or ValueError."""
    expected = "padding_mode 'zeros', 'reflect', 'replicate' or 'circular'"
    if not isinstance(value, str):
        raise TypeError(f"{who}: expected {expected}, got {type(value).__name__} {value!r}")
    if value not in MODES:
        ours = {v: k for k, v in _NUMPY.items() if k != v}.get(value)  # np.pad's name?
        hint = f" (NumPy's {value!r} is {ours!r} here, as in PyTorch)" if ours else ""
        raise ValueError(f"{who}: expected {expected}, got {value!r}{hint}")
    return value


def pad_input(layer: Any, x: np.ndarray) -> np.ndarray:
    """``x (N, C, *S)`` padded by ``layer._border`` in ``layer.padding_mode`` (a new array);
    ValueError when the input is too small for the mode or the kernel."""
    mode, pairs = layer.padding_mode, _pairs(layer._border)
    # reflect mirrors up to b entries past the edge, never the edge itself: n > b; circular
    # may wrap around once, not more: n >= b (replicate takes any size)
    need = tuple(max(p) + (mode == "reflect") for p in pairs)
    if mode != "replicate" and any(n < m for n, m in zip(x.shape[2:], need, strict=True)):
        rule = "smaller than" if mode == "reflect" else "at most"
        raise ValueError(f"{layer!r}: expected input spatial size of at least {need} "
                         f"(padding_mode={mode!r} needs each padding {rule} the input size; "
                         f"padding (before, after) per axis {pairs}), got input of shape "
                         f"{tuple(x.shape)}")
    out_size(layer, x.shape, layer._k, layer._s, *layer._border, layer._dil)  # window fits?
    fits(layer, (*x.shape[:2], *(n + b + a for n, (b, a) in zip(x.shape[2:], pairs, strict=True))),
         x.dtype, x.shape, "padded input")
    return pad(x, mode, pairs)


def pad(x: np.ndarray, mode: str, pairs: tuple[tuple[int, int], ...],
        value: float = 0.0) -> np.ndarray:
    """``x (N, C, *S)`` padded by ``pairs``, ``(before, after) >= 0`` per spatial axis, in
    ``mode`` (one of :data:`MODES` but zeros, or ``'constant'`` with ``value``; a new array)."""
    if mode == "constant":
        return np.pad(x, ((0, 0), (0, 0), *pairs), constant_values=value)
    return np.pad(x, ((0, 0), (0, 0), *pairs), mode=_NUMPY[mode])


def padded_shape(layer: Any, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``pad_input(layer, x)`` for ``x`` of shape ``x_shape``."""
    return (*x_shape[:2], *(n + b + a for n, (b, a) in
                            zip(x_shape[2:], _pairs(layer._border), strict=True)))


def fold(layer: Any, dxp: np.ndarray) -> np.ndarray:
    """``dx (N, C, *S)`` from ``dxp``, the gradient of the padded input (overwritten): the
    adjoint of :func:`pad_input`, each padded entry's gradient added onto its source."""
    return unpad(dxp, layer.padding_mode, _pairs(layer._border))


def unpad(dxp: np.ndarray, mode: str, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The adjoint of :func:`pad` (``dxp`` overwritten): ``'constant'`` keeps the middle."""
    view = dxp
    for axis, (b, a) in enumerate(pairs, start=2):
        n = view.shape[axis] - b - a  # x is view[b : b + n] along this axis
        before, after = _slab(view, axis, 0, b), _slab(view, axis, b + n, b + n + a)
        if mode == "reflect":  # padded i < b copies x[b - i]; b + n + j copies x[n - 2 - j]
            _add(_slab(view, axis, b + 1, 2 * b + 1), np.flip(before, axis))
            _add(_slab(view, axis, b + n - 1 - a, b + n - 1), np.flip(after, axis))
        elif mode == "replicate":  # copies of x[0] before, of x[n - 1] after
            _add(_slab(view, axis, b, b + 1), before.sum(axis, keepdims=True))
            _add(_slab(view, axis, b + n - 1, b + n), after.sum(axis, keepdims=True))
        elif mode == "circular":  # padded i < b copies x[n - b + i]; b + n + j copies x[j]
            _add(_slab(view, axis, n, b + n), before)
            _add(_slab(view, axis, b, b + a), after)
        view = _slab(view, axis, b, b + n)
    return np.ascontiguousarray(view)


def _slab(a: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """``a[start:stop]`` along ``axis`` (a view)."""
    return a[(slice(None),) * axis + (slice(start, stop),)]


def _add(target: np.ndarray, source: np.ndarray) -> None:
    np.add(target, source, out=target)  # into dxp's view (a slab never overlaps its source)


def _pairs(border: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per spatial axis from ``(padding, extra after)``."""
    padding, extra = border
    return tuple((p, p + e) for p, e in zip(padding, extra, strict=True))
