"""Activations over one axis, as PyTorch defines them: Softmin (``softmax(-x)``, over an
axis as :class:`.Softmax`) and GLU (the gated linear unit, which halves an axis).

Both check their axis as :class:`.Softmax` does: the batch axis 0 is refused (samples
must not mix), and a negative axis is checked against the input's rank in forward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from .activations import _KeepsOutput
from .base import Layer
from .softmax import Softmax


def _checked_axis(axis: Any, who: str) -> int:
    """``axis`` as an int after the batch axis, with Softmax's wording."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{who}: expected axis to be an int, got {axis!r}")
    if axis == 0:  # negative axes are checked against the input's rank in forward
        raise ValueError(f"{who}: expected an axis after the batch axis 0 (samples must "
                         "not mix), got axis 0")
    return int(axis)


class Softmin(_KeepsOutput):
    """``softmax(-x)`` over ``axis`` (the last by default; PyTorch's ``Softmin(dim)``).

    ::

        Forward:   y = exp(min(x) - x) / sum(exp(min(x) - x))              over the axis
        Backward:  dx = -y * (dy - sum(dy * y, axis, keepdims))    (Softmax's, negated)

    ``min(x) - x`` is ``-x - max(-x)`` exactly (negation is exact), so nothing
    overflows. As PyTorch's ``(-x).softmax(dim)``: a row holding NaN or ``-inf``, or
    only ``+inf``, gives NaN (``inf - inf``); a ``+inf`` among finite values gets 0.

    Args:
        axis: The axis normalised over (PyTorch's ``dim``); not 0, the batch axis.
        dtype: Input dtype (default float32).
    """

    def __init__(self, axis: int = -1, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.axis = _checked_axis(axis, "Softmin")

    _axis = Softmax._axis  # the same check against the input's rank, naming this layer
    mask_passes = Softmax.mask_passes

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        axis = self._axis(x)
        if not x.shape[axis]:  # no classes: nothing to normalise (PyTorch: the empty x)
            return self._keep_y(x.copy(), training)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN, as PyTorch's
            y = x.min(axis=axis, keepdims=True) - x
        np.exp(y, out=y)
        s = y.sum(axis=axis, keepdims=True)  # >= 1 (the min gives exp(0))
        y *= np.reciprocal(s, out=s)
        return self._keep_y(y, training)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._take_y(dy)
        dot = np.sum(dy * y, axis=self._axis(y), keepdims=True)
        dx = np.subtract(dot, dy, dtype=y.dtype)  # -(dy - dot)
        dx *= y
        return dx


class GLU(Layer):
    """Gated linear unit (PyTorch's ``GLU(dim)``): the first half of ``axis`` gated by the
    sigmoid of the second.

    ::

        Forward:   a, b = split(x, 2, axis)    s = sigmoid(b)    y = a * s
                   x (N, ..., 2H, ...) -> y (N, ..., H, ...)
        Backward:  da = dy * s    db = dy * a * s * (1 - s)    dx = concatenate([da, db], axis)

    As PyTorch's: ``a = ±inf`` with ``s = 0`` gives NaN (``inf · 0``), NaN gives NaN.

    Args:
        axis: The axis halved (PyTorch's ``dim``, default -1); not 0, the batch axis.
        dtype: Input dtype (default float32).

    Raises:
        ValueError: In forward, an odd size along ``axis`` (PyTorch: "Halving dimension
            must be even"), or an axis the input lacks.
    """

    _cache_attrs = ("_a", "_s")

    def __init__(self, axis: int = -1, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.axis = _checked_axis(axis, "GLU")
        self._a: np.ndarray | None = None
        self._s: np.ndarray | None = None

    _axis = Softmax._axis
    mask_passes = Softmax.mask_passes

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        axis = self._axis(x)
        if x.shape[axis] % 2:
            raise ValueError(f"{self!r}: expected an even size along axis {self.axis} (it is "
                             f"halved), got input of shape {x.shape}")
        a, b = np.split(x, 2, axis=axis)  # views: x is not written to
        s = backend.expit(b)
        with np.errstate(invalid="ignore"):  # inf · 0: NaN, as PyTorch
            y = a * s
        if training:
            self._a, self._s = a, s
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        a, s = self._pop("_a", "_s")
        self._check_dy(dy, s.shape)
        da = dy * s
        db = 1.0 - s
        db *= s
        with np.errstate(invalid="ignore"):  # inf · 0: NaN, as PyTorch
            db *= a
        db *= dy
        return np.concatenate([da, db], axis=self._axis(s))
