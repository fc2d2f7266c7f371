"""Strided windows as contiguous runs: max pooling's layout for windows that overlap.

A window's tap at offset ``t`` reads input ``o·s + t - p`` for output ``o`` (stride
``s``, padding ``p``): a stride-2 view whose NumPy loops run one short row at a time.
Split the padded input by position modulo the stride (its *phases*): phase
``r = t mod s`` holds padded positions ``a·s + r`` at ``a``, so the tap reads that
phase at ``o + t // s``, consecutive for consecutive outputs. Each phase is stored
flat, ``(N, C, A, B)`` row-major with ``A = Ho + (span - 1) // s`` rows (``B`` likewise);
an output is computed at every ``(a, b)`` of that grid, so a tap is one flat slice
``phase[shift : shift + size]``, ``shift = (t_h // s_h)·B + t_w // s_w``: every pass of
the loop over taps runs on contiguous memory in one stretch. The grid's extra rows
and columns (and the taps that run on past the end of a row into the next) are
computed too and cropped away: ``A·B / (Ho·Wo)`` more work, 1.07 for 3x3 stride-2
windows on 28x28 (``Layout.waste``).

Backward adds into phases of the same layout, then moves each phase back into ``dx``
(every input position belongs to one phase, at one place).
"""

from __future__ import annotations

from math import prod

import numpy as np


class Layout:
    """The phases of an input of shape ``x_shape`` (N, C, *S) for windows with taps at
    ``taps`` (offsets inside the padded window, row-major), ``stride`` and ``padding``
    and ``out`` outputs per axis (ceil_mode's extra ones included)."""

    def __init__(self, x_shape: tuple[int, ...], taps: list[tuple[int, ...]],
                 stride: tuple[int, ...], padding: tuple[int, ...], out: tuple[int, ...]) -> None:
        last = [max(t) for t in zip(*taps, strict=True)]  # the last tap: span - 1
        self.grid = (*x_shape[:2], *(o + t // s for o, t, s in zip(out, last, stride,
                                                                      strict=True)))
        self.size = prod(self.grid)
        self.out, self.x_shape = out, x_shape
        steps = [prod(self.grid[i + 1:]) for i in range(2, len(self.grid))]
        phases = sorted({tuple(t % s for t, s in zip(tap, stride, strict=True)) for tap in taps})
        # per tap: (its phase, the flat shift of its first read in that phase)
        self.reads = [(phases.index(tuple(t % s for t, s in zip(tap, stride, strict=True))),
                       sum(t // s * step for t, s, step in zip(tap, stride, steps, strict=True)))
                      for tap in taps]
        self.tail = max(shift for _, shift in self.reads)
        # per phase: where its positions sit in x, and in the phase's grid
        self.moves = [_move(r, stride, padding, x_shape[2:], self.grid[2:]) for r in phases]
        self.complete = _complete(self.moves, x_shape[2:])

    @property
    def waste(self) -> float:
        """Grid positions per output: the work the flat passes add."""
        return prod(self.grid[2:]) / prod(self.out)

    def split(self, x: np.ndarray, fill: float) -> np.ndarray:
        """``x``'s phases, ``(phases, size + tail)``: ``fill`` (the padding) where no input is."""
        phases = np.full((len(self.moves), self.size + self.tail), fill, x.dtype)
        for phase, (src, dst) in zip(phases, self.moves, strict=True):
            phase[:self.size].reshape(self.grid)[dst] = x[src]
        return phases

    def taps(self, phases: np.ndarray) -> list[np.ndarray]:
        """What each tap reads for every grid position: flat, contiguous views."""
        return [phases[i, shift:shift + self.size] for i, shift in self.reads]

    def crop(self, flat: np.ndarray) -> np.ndarray:
        """The outputs ``(N, C, *out)`` of a flat grid array (a contiguous copy)."""
        return flat.reshape(self.grid)[_corner(self.out)].copy()

    def widen(self, a: np.ndarray) -> np.ndarray:
        """``a`` (N, C, *out) on the flat grid, zeros elsewhere."""
        flat = np.zeros(self.grid, a.dtype)
        flat[_corner(self.out)] = a
        return flat.reshape(-1)

    def merge(self, phases: np.ndarray) -> np.ndarray:
        """The input-shaped array whose phases are ``phases`` (zeros where none reads)."""
        dx = (np.empty if self.complete else np.zeros)(self.x_shape, phases.dtype)
        for phase, (src, dst) in zip(phases, self.moves, strict=True):
            dx[src] = phase[:self.size].reshape(self.grid)[dst]
        return dx


def _move(r: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...],
          size: tuple[int, ...], grid: tuple[int, ...]) -> tuple[tuple, tuple]:
    """Phase ``r``'s inputs: a strided index into x and the block of the grid they fill."""
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for ri, s, p, n, a in zip(r, stride, padding, size, grid, strict=True):
        first = (ri - p) % s  # the first input with (h + p) % s == r
        at = (first + p) // s
        count = max(0, min(len(range(first, n, s)), a - at))
        src.append(slice(first, first + s * count, s))
        dst.append(slice(at, at + count))
    return tuple(src), tuple(dst)


def _complete(moves: list[tuple[tuple, tuple]], size: tuple[int, ...]) -> bool:
    """Whether the phases hold every input (else some are read by no window)."""
    held = np.zeros(size, bool)
    for src, _ in moves:
        held[src[2:]] = True
    return bool(held.all())


def _corner(out: tuple[int, ...]) -> tuple[slice, ...]:
    return (slice(None), slice(None), *(slice(0, o) for o in out))
