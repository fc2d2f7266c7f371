"""Window arithmetic shared by convolutions and pooling (1-D and 2-D alike).

A layer with kernel ``k``, stride ``s`` and padding ``p`` along a spatial axis of
size ``n`` has ``(n + 2p - k) // s + 1`` outputs there. For one kernel offset
``o``, the inputs its outputs read form the strided slice ``o : o + s*(out-1) + 1 : s``;
looping over the ``prod(k)`` offsets (never over pixels or samples) is how pooling
and col2im route gradients back without ``np.add.at``: for a fixed offset the
slices of different outputs never overlap, so a plain ``+=`` is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import initializers
from .._validate import positive_int


def as_tuple(value: Any, d: int, name: str, who: str, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ``d`` ints) as a ``d``-tuple of ints >= minimum."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * d
    if len(items) != d:
        raise ValueError(f"{who}: expected {name} as an int or {d} ints, got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{who}: expected {name} as an int or {d} ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{who}: expected {name} >= {minimum}, got {value!r}")
        if v >= 1 << 62:  # past any array's size; NumPy's strides would overflow
            raise ValueError(f"{who}: expected {name} below 2**62, got {value!r}")
    return tuple(int(v) for v in items)


def canonical(t: tuple[int, ...]) -> int | tuple[int, ...]:
    """An int when every entry is equal (``(3, 3) -> 3``), for a compact repr and config."""
    return t[0] if len(set(t)) == 1 else t


def out_size(
    layer: object, shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], extra: tuple[int, ...] | None = None,
    dilation: tuple[int, ...] | None = None,
) -> tuple[int, ...]:
    """Output spatial size for input ``shape`` (N, C, *S); ValueError when a window cannot fit.

    ``padding`` is added on both sides of each axis, ``extra`` (default none) once more
    at the end: PyTorch's ``padding='same'`` with an even kernel pads one more after.
    A ``dilation`` d spreads the kernel's taps d apart: a window spans ``d·(k - 1) + 1``.
    """
    size, extra = shape[2:], extra or (0,) * len(kernel)
    span = spans(kernel, dilation)
    total = tuple(2 * p + e for p, e in zip(padding, extra, strict=True))
    need = tuple(max(k - t, 1) for k, t in zip(span, total, strict=True))
    if any(n < m for n, m in zip(size, need, strict=True)):
        pad = f", padding {padding}" if any(total) else ""
        dil = f", dilation {dilation}" if span != kernel else ""
        raise ValueError(f"{layer!r}: expected input spatial size of at least {need} (kernel "
                         f"{kernel}{pad}{dil}), got input of shape {tuple(shape)}")
    return tuple((n + t - k) // s + 1
                 for n, k, s, t in zip(size, span, stride, total, strict=True))


def spans(kernel: tuple[int, ...], dilation: tuple[int, ...] | None) -> tuple[int, ...]:
    """How many inputs a window covers along each axis: ``d·(k - 1) + 1``."""
    if dilation is None:
        return kernel
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))


def offsets(kernel: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Every kernel offset, row-major (the order of a flattened kernel)."""
    return iter(np.ndindex(*kernel))


def window(offset: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...]) -> tuple:
    """Index of the inputs that kernel position ``offset`` reads, one per output.

    Leading (batch, channel) axes are kept whole: ``x[window(...)]`` has shape
    ``(N, C, *out)``.
    """
    return (slice(None), slice(None)) + tuple(
        slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, stride, out, strict=True))


def channel_groups(in_channels: Any, out_channels: Any, groups: Any, who: str
                   ) -> tuple[int, int, int]:
    """``(C_in, C_out, groups)`` of a (transposed) convolution, checked: positive ints,
    both channel counts divisible by ``groups``."""
    c_in = positive_int(in_channels, "in_channels", who)
    c_out = positive_int(out_channels, "out_channels", who)
    g = positive_int(groups, "groups", who)
    if c_in % g or c_out % g:
        raise ValueError(f"{who}: expected in_channels and out_channels divisible by groups, "
                         f"got {c_in}, {c_out} and groups={g}")
    return c_in, c_out, g


class ChannelsFirst:
    """Mixin of the layers on ``(N, C_in, *spatial)`` input (before ``Layer`` in the
    bases): an input refused for its shape that looks channels-last (``(N, H, W, C)``,
    from Keras or images) gets the transpose that fixes it."""

    _d: int
    _axes: tuple[str, ...]
    in_channels: int
    out_channels: int
    _set_once = frozenset({  # the convolutions' geometry and arrays: see Layer._set_once
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding",
        "groups", "bias", "dilation", "padding_mode"})

    def _init_kernel(self, shape: tuple[int, ...], bias: bool, init: Any, bias_init: Any,
                     rng: Any, who: str) -> None:
        """Draw ``W`` of ``shape`` and, with ``bias``, ``b`` of ``C_out`` (its fan-in that
        of one row of ``W``, as PyTorch bounds a bias), from ``rng`` (a seed or Generator)."""
        rng = initializers.make_rng(rng, who)
        self.init_param("W", init, shape, rng)  # type: ignore[attr-defined]
        if bias:
            self.init_param("b", bias_init, (self.out_channels,), rng,  # type: ignore[attr-defined]
                            fan_in=self.params["W"][0].size)  # type: ignore[attr-defined]

    def _check_input(self, x: Any, *dims: int | str | None) -> None:
        try:
            super()._check_input(x, *dims)  # type: ignore[misc]
        except ValueError as err:
            shape = getattr(x, "shape", ())
            if len(shape) == self._d + 2 and shape[-1] == self.in_channels != shape[1]:
                axes = ", ".join(map(str, (0, self._d + 1, *range(1, self._d + 1))))
                raise ValueError(f"{err}; channels last? backprop takes channels first, "
                                 f"(N, C, {', '.join(self._axes)}): x.transpose({axes}), or "
                                 f"in a Sequential a layer bp.Permute(({axes[3:]})) before "
                                 f"this one") from None
            raise


def check_batched_channels(layer: Any, x: Any, channels: int | str,
                           axes: tuple[str, ...]) -> None:
    """Check ``x (N, C, *axes)``; an unbatched ``(C, *axes)``, which PyTorch's per-channel
    layers take as one sample, is refused with the fix (``x[None]``)."""
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) == len(axes) + 1:
        raise ValueError(f"{layer!r}: expected a batch of shape (N, C, {', '.join(axes)}), "
                         f"got unbatched input of shape {tuple(shape)} (add the batch axis: "
                         f"x[None])")
    layer._check_input(x, "N", channels, *axes)
