"""Softmax as a layer: normalises over one axis, so its backward mixes that axis."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._sums import _DOT_MIN, _VECDOT
from .activations import _KeepsOutput


class Softmax(_KeepsOutput):
    """Softmax over ``axis`` (the last by default; ``axis=1`` is the channel softmax of
    ``(N, C, H, W)`` maps, PyTorch's ``Softmax(dim=1)``), with its true Jacobian-vector
    product.

    ::

        Forward:   y = exp(x - max(x)) / sum(exp(x - max(x)))      over the axis
        Backward:  dx = y * (dy - sum(dy * y, axis, keepdims))      = Jᵀ dy, J = diag(y) - y yᵀ

    Subtracting the max changes nothing mathematically and keeps ``exp`` from
    overflowing. For classification prefer ``SoftmaxCrossEntropy`` on logits,
    which fuses both and is exact for any logits. The batch axis 0 is refused:
    samples must not mix.

    Args:
        axis: The axis normalised over (PyTorch's ``dim``); not 0, the batch axis.
        dtype: Input dtype (default float32).
    """

    def __init__(self, axis: int = -1, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Softmax: expected axis to be an int, got {axis!r}")
        if axis == 0:  # negative axes are checked against the input's rank in forward
            raise ValueError("Softmax: expected an axis after the batch axis 0 (samples must "
                             "not mix), got axis 0")
        self.axis = int(axis)

    @property
    def mask_passes(self) -> bool:  # type: ignore[override]
        """A padding mask ``(N, T)`` passes when the axis lies within a step (-1, or 2 on)."""
        return self.axis == -1 or self.axis >= 2

    def _axis(self, x: np.ndarray) -> int:
        if not (-x.ndim <= self.axis < x.ndim) or self.axis % x.ndim == 0:
            raise ValueError(f"{self!r}: expected an axis after the batch axis of input of "
                             f"shape {x.shape}, got axis {self.axis}")
        return self.axis % x.ndim

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        axis = self._axis(x)
        if not x.shape[axis]:  # no classes: nothing to normalise (PyTorch: the empty x)
            return self._keep_y(x.copy(), training)
        # a row spanning more than the dtype: -inf, exp 0; a row of -inf (all masked) or
        # with +inf: NaN, quietly, as PyTorch
        with np.errstate(over="ignore", invalid="ignore"):
            y = x - x.max(axis=axis, keepdims=True)
        np.exp(y, out=y)
        s = y.sum(axis=axis, keepdims=True)
        y *= np.reciprocal(s, out=s)  # one divide per row, then a multiply pass
        return self._keep_y(y, training)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._take_y(dy)
        axis = self._axis(y)
        if axis == y.ndim - 1:
            # row sums of dy * y, one pass: BLAS's dot (NumPy >= 2), einsum on short rows
            short = y.shape[-1] < _DOT_MIN or _VECDOT is None
            dot = (np.einsum("...i,...i->...", dy, y) if short else _VECDOT(dy, y))[..., None]
        else:
            dot = np.sum(dy * y, axis=axis, keepdims=True)
        dx = np.subtract(dy, dot, dtype=y.dtype)
        dx *= y
        return dx
