"""What a trace keeps: a :class:`LayerRecord` per layer, holding per call the
:class:`ForwardStats` and :class:`BackwardStats` records, and the norms and fractions
that fill them (O(1) memory per call)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend
from .layers.activations import ReLU, Sigmoid, Tanh
from .layers.base import Layer
from .layers.piecewise import ReLU6

SATURATION = {Sigmoid: (0.01, 0.99), Tanh: (-0.99, 0.99)}
"""Saturated units: sigmoid ``y < 0.01 or y > 0.99``, tanh ``|y| > 0.99`` (f′ < 0.02)."""
DEAD = (ReLU, ReLU6)
"""The layers whose units die: an output of exactly 0 passes no gradient back."""


@dataclass(frozen=True)
class ForwardStats:
    """One forward call. Fractions are over all elements of ``y``.

    ``dead_frac`` is the fraction of units (everything after the batch axis) that
    are exactly zero for every sample of the batch: dead ReLUs, for the ReLU family only
    (see :data:`DEAD`; elsewhere None: a padded step or a zero pad is no dead unit).
    Where a Sequential hands the layer a padding mask ``(N, T)`` (``Embedding(...,
    mask_zero=True)``, ``Masking``, ``forward(x, mask=...)``), padded steps are left out:
    a unit at step t is dead when it is zero in every row where t is real, and steps
    real in no row are not counted. Padding the trace cannot see (zeros padded by hand,
    a mask given to a later layer only) still counts.
    ``saturated_frac`` is set for Sigmoid and Tanh only (see :data:`SATURATION`), else
    None.
    """

    training: bool
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    x_norm: float
    y_norm: float
    y_mean: float
    y_std: float
    zero_frac: float
    dead_frac: float | None
    saturated_frac: float | None


@dataclass(frozen=True)
class BackwardStats:
    """One backward call: ``‖dy‖``, ``‖dx‖`` (None when only ``backward_params`` ran,
    which computes no dx) and ``‖∂L/∂p‖`` per parameter (empty for containers:
    their sub-layers report them; in a ``recursive=False`` trace, which leaves those
    untraced, a container reports its sub-layers' by path, ``"block.0.W"``)."""

    dy_norm: float
    dx_norm: float | None
    grad_norms: dict[str, float]


def sumsq(a: np.ndarray) -> float:
    """``Σ a²``, taken in ``a``'s dtype and again in float64 if that overflowed.

    See :func:`backprop.backend.sumsq` (why einsum, not BLAS). Call it under
    ``np.errstate(all="ignore")``.
    """
    if a.dtype.kind != "f":  # an Embedding's integer indices: a sum in int32 would wrap
        a = a.astype(np.float64)
    total = backend.sumsq(a)
    if not math.isfinite(total) and a.dtype != np.float64:
        total = backend.sumsq(a.astype(np.float64))  # a float32 overflow, or a real inf/nan?
    return total


def norm(a: np.ndarray) -> float:
    return math.sqrt(sumsq(a))


def forward_stats(layer: Layer, y: np.ndarray, training: bool, x_shape: tuple[int, ...],
                   x_norm: float, mask: Any = None) -> ForwardStats:
    with np.errstate(all="ignore"):
        raw = y.ravel()
        n = max(raw.size, 1)
        zero = np.count_nonzero(raw == 0) / n  # faster than counting the nonzero floats
        v = raw.astype(np.float64, copy=False)
        sq, mean = sumsq(v), float(v.sum()) / n
        dead = 0.0 if isinstance(layer, DEAD) else None
        if dead is not None and zero and y.ndim >= 2 and y.shape[0]:
            dead = _dead_frac(y, mask)
        bounds = next((b for cls, b in SATURATION.items() if isinstance(layer, cls)), None)
        sat = None if bounds is None else np.count_nonzero((v < bounds[0]) | (v > bounds[1])) / n
        # moments from the sums already taken: one pass fewer than v.std(); float64
        # keeps the cancellation harmless unless |mean| / std > ~1e6
        std = math.sqrt(max(sq / n - mean * mean, 0.0)) if math.isfinite(sq) else math.nan
        return ForwardStats(training, x_shape, tuple(y.shape), x_norm, math.sqrt(sq),
                            mean, std, float(zero), dead, None if sat is None else float(sat))


def _dead_frac(y: np.ndarray, mask: Any) -> float:
    """The fraction of units zero in every row, over the real steps only where ``mask``
    (True: a real step) has ``y``'s first two axes (see :class:`ForwardStats`)."""
    mask = None if mask is None else np.asarray(mask)
    if mask is None or mask.dtype != bool or mask.shape != y.shape[:2]:
        return float(np.mean(~y.reshape(y.shape[0], -1).any(axis=0)))
    alive = ((y.reshape(*mask.shape, -1) != 0) & mask[..., None]).any(axis=0)  # (T, units)
    counted = alive[mask.any(axis=0)]  # the steps real in some row
    return float(np.mean(~counted)) if counted.size else 0.0


class _Arrays(list):
    """A record's arrays, one per call; indexing one that keeps none says how to."""

    def __init__(self, kept: bool) -> None:
        super().__init__()
        self.kept = kept

    def __getitem__(self, index: Any) -> Any:
        if not self and not self.kept and not isinstance(index, slice):
            raise IndexError("this trace kept no arrays, only their statistics (record."
                             "forward, record.backward): trace(model, keep_arrays=True) "
                             "keeps x, y, dy, dx and the gradients of every call")
        return super().__getitem__(index)


class LayerRecord:
    """Everything traced for one layer, one list entry per call.

    Attributes:
        name: Path in the model (``"2"``, ``"3.block.0"``); ``""`` for a traced leaf.
        layer: The layer.
        forward: :class:`ForwardStats` per forward call.
        backward: :class:`BackwardStats` per backward call.
        x, y, dy, dx, grads: Copies of the arrays per call (``keep_arrays=True``
            only, else empty); ``dx`` entries are None after ``backward_params``.
            ``dy`` is ∂L/∂y at the layer's output: the δ of the recursion at a layer
            with weights (its output is ``z``); at an activation it is ∂L/∂a, and the
            activation's ``dx`` is the δ of the layer with weights before it.
    """

    def __init__(self, name: str, layer: Layer, keep_arrays: bool = True) -> None:
        self.name, self.layer, self.keep_arrays = name, layer, keep_arrays
        self._busy: set[int] = set()  # threads inside one of this layer's methods: their
        # inner calls pass through (another thread's call is its own, and recorded)
        self._masks: dict[int, Any] = {}  # thread: the padding mask of its forward_masked
        self.clear()

    def clear(self) -> None:
        """Forget every recorded call."""
        self.forward: list[ForwardStats] = []
        self.backward: list[BackwardStats] = []
        kept = self.keep_arrays
        self.x: list[np.ndarray] = _Arrays(kept)
        self.y: list[np.ndarray] = _Arrays(kept)
        self.dy: list[np.ndarray] = _Arrays(kept)
        self.dx: list[np.ndarray | None] = _Arrays(kept)
        self.grads: list[dict[str, np.ndarray]] = _Arrays(kept)

    @property
    def label(self) -> str:
        """``(path) repr``, one line (containers by class name only)."""
        text = type(self.layer).__name__ if self.layer.children() else repr(self.layer)
        return f"({self.name}) {text}" if self.name else text

    def __repr__(self) -> str:
        return (f"LayerRecord({self.label}, forward calls={len(self.forward)}, "
                f"backward calls={len(self.backward)})")
