"""More smooth activations, as PyTorch defines them: SELU, CELU, Mish, Softsign, and
LogSoftmax (not elementwise: over one axis, as :class:`.Softmax`).

SELU and CELU are PyTorch's ELU family, ``scale · (x if x > 0 else alpha · (exp(x ·
input_scale) - 1))``, computed as ELU's (:mod:`.activations`): ``x = 0`` takes the
negative side's derivative and ``-0.0`` stays ``-0.0``. A NaN input gives a NaN output
and a NaN derivative in all of them, as PyTorch's vectorised loop (2.13; its scalar loop,
which takes the last few elements of a tensor whose size is not a multiple of 16, 8 in
float64, passes ``scale · dy`` through SELU and CELU instead). Each layer keeps what its
backward multiplies by, so backward evaluates no exponential.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import in_range
from .activations import _Elementwise, _expm1_relu, _KeepsDerivative, _select
from .softmax import Softmax


class SELU(_KeepsDerivative):
    """Scaled exponential linear unit (self-normalising networks; PyTorch's ``SELU``).

    ::

        Forward:   y = scale * where(x > 0, x, alpha * (exp(x) - 1))        any shape
        Backward:  dx = dy * scale * where(x > 0, 1, alpha * exp(x))
                   alpha = 1.6732632423543772,  scale = 1.0507009873554805

    At ``x = 0`` the derivative is the left one, ``scale · alpha``, as in PyTorch.

    Args:
        dtype: Input dtype (default float32).
    """

    alpha = 1.6732632423543772848170429916717  # PyTorch's (and the paper's) constants
    scale = 1.0507009873554804934193349852946

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        y, d = _elu(x, self.alpha, self.scale, 1.0, training)
        if training:
            self._d = d
        return y


class CELU(_KeepsDerivative):
    """Continuously differentiable ELU (PyTorch's ``CELU``): ELU with its input scaled by
    ``1/alpha``, so that the slope at 0 is 1 for any ``alpha``.

    ::

        Forward:   y = max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)     any shape
        Backward:  dx = dy * where(x > 0, 1, exp(x / alpha))

    In float64 PyTorch's backward (2.13) uses ``1/alpha`` rounded to float32 (its forward
    does not): for an ``alpha`` that is no power of two it is off the exact derivative
    this one gives by a relative error that grows with ``|x / alpha|`` (``alpha = 0.3``:
    6.7e-7 at ``x = -5.35``, 2.6e-6 at -20, 1.3e-5 at -100).

    Args:
        alpha: Any finite number but 0 (default 1); negative ones too, as PyTorch
            (``exp(x / alpha)`` then grows as ``x`` falls, to inf below about
            ``88.7 · alpha`` in float32).
        dtype: Input dtype (default float32).

    Raises:
        ValueError: ``alpha`` 0 (PyTorch: "alpha cannot be 0") or not finite.
    """

    def __init__(self, alpha: float = 1.0, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.alpha = in_range(alpha, "alpha", "CELU", -math.inf)
        if self.alpha == 0:
            raise ValueError(f"CELU: expected a nonzero alpha (it divides x), got {alpha!r}")

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        y, d = _elu(x, self.alpha, 1.0, 1.0 / self.alpha, training)
        if training:
            self._d = d
        return y


def _elu(x: np.ndarray, alpha: float, scale: float, input_scale: float, training: bool
         ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(y, f′(x))`` of PyTorch's ELU family (``f′`` only when ``training``)::

        y  = scale * where(x > 0, x, alpha * expm1(x * input_scale))
        f′ = where(x > 0, scale, alpha * scale * input_scale * exp(x * input_scale))

    ``v = min(x, -0.0)`` keeps NaN (``f′`` is NaN there, as PyTorch's vectorised loop), and
    ``x = ±0.0`` gives ``y = ±0.0``, as in PyTorch (the sign of x is copied onto y, which
    has it anyway everywhere else).
    In float32, ``expm1(v) = tanh(v/2)·(exp(v) + 1)`` (within 3.4 ulp; see ELU), whose
    ``exp(v)`` the derivative reuses. Overflow is silenced: it gives inf only where the
    value is beyond the float range (``x · scale`` near the float max, ``exp`` of a large
    positive ``v`` for CELU with a negative alpha), as PyTorch's.
    """
    with np.errstate(over="ignore"):
        v = np.clip(x, -math.inf, -0.0)  # np.minimum (1.8x slower) but for +0.0, which
        if input_scale != 1.0:             # changes only the zero sign of e, where y is +0.0
            v *= input_scale
        e, ev, y = _expm1_relu(v, x, training)  # y = clip(x, 0, inf): keeps NaN and -0.0
        e *= alpha * scale
        if scale != 1.0:
            y *= scale
        y += e
        # y has x's sign for SELU and CELU (any alpha), so copysign changes only zeros:
        # y(±0.0) = ±0.0, as PyTorch's, whatever np.clip does with -0.0 (NumPy 2.2 kept it
        # on contiguous input and not on strided, 1.26 never); one pass, 0.3 of ~15 ms
        np.copysign(y, x, out=y)
        if not training:
            return y, None
        d = ev  # exp(v) is 1 where x > 0 (v = -0.0) and NaN for NaN; e's buffer is free
        d *= _select(x <= 0, alpha * scale * input_scale, scale, x.dtype, out=e)
    return y, d


class Mish(_KeepsDerivative):
    """``x · tanh(softplus(x))`` (PyTorch's ``Mish``).

    ::

        Forward:   e = exp(min(x, 20))      t = tanh(log(1 + e)) = e (e + 2) / (e (e + 2) + 2)
                   y = x * t                                                any shape
        Backward:  dx = dy * (t + x * s * (1 - t²)),   s = sigmoid(x) = e / (1 + e)

    ``t`` is 1 in float64 from ``x = 20`` on, so clipping there keeps ``exp`` from
    overflowing and changes nothing; the rational form of ``tanh(log1p(e))`` costs a
    few multiplies where NumPy's ``log1p`` and ``tanh`` are slow. As in PyTorch, NaN
    and ``-inf`` give NaN (``-inf · 0``), ``inf`` gives inf with a NaN derivative
    (``inf · 0``), and a large negative ``x`` gives ``-0.0``.

    Args:
        dtype: Input dtype (default float32).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        e = np.clip(x, -np.inf, 20.0)  # NaN stays NaN
        np.exp(e, out=e)
        n = e + 2.0
        n *= e  # (1 + e)² - 1
        t = n + 2.0
        np.divide(n, t, out=t)
        with np.errstate(invalid="ignore"):  # ±inf · 0: NaN, as PyTorch
            if training:  # n's and e's buffers, free by now, take s and then d
                s = np.add(e, 1.0, out=n)
                np.divide(e, s, out=s)
                d = np.multiply(t, t, out=e)
                np.subtract(1.0, d, out=d)
                d *= s
                d *= x
                d += t
                self._d = d
            return np.multiply(x, t, out=t)


class Softsign(_KeepsDerivative):
    """``x / (1 + |x|)`` (PyTorch's ``Softsign``).

    ::

        Forward:   y = x / (1 + |x|)                                        any shape
        Backward:  dx = dy / (1 + |x|)²

    As PyTorch's, ``±inf`` gives NaN (``inf / inf``) and a NaN derivative. The
    derivative is kept as ``(1 / (1 + |x|))²``, exact for any ``|x|``, where PyTorch's
    autograd of the quotient cancels (8e-5 off in float32 at ``|x| = 1e4``).

    Args:
        dtype: Input dtype (default float32).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        a = np.abs(x)
        a += 1.0
        with np.errstate(invalid="ignore"):  # inf / inf: NaN, as PyTorch
            y = x / a
        if training:
            d = np.reciprocal(a, out=a)
            d *= d
            d[np.isinf(x)] = np.nan  # (0 here) as PyTorch's; a mask of few: a fast pass
            self._d = d
        return y


class LogSoftmax(_Elementwise):
    """``log(softmax(x))`` over ``axis`` (the last by default; PyTorch's ``LogSoftmax(dim)``),
    without overflow for any finite logits.

    ::

        Forward:   z = x - max(x)     y = z - log(sum(exp(z)))              over the axis
        Backward:  dx = dy - p * sum(dy, axis, keepdims),   p = exp(z) / sum(exp(z)) = softmax(x)

    A training forward keeps ``p``, which it has anyway. As in PyTorch, a row holding
    NaN or ``+inf``, or only ``-inf``, gives NaN (``inf - inf``); a ``-inf`` among
    finite values gives ``-inf`` and passes ``dy`` back there. The axis is checked as
    :class:`Softmax`'s: the batch axis 0 is refused.

    Args:
        axis: The axis normalised over (PyTorch's ``dim``); not 0, the batch axis.
        dtype: Input dtype (default float32).
    """

    _cache_attrs = ("_p",)

    def __init__(self, axis: int = -1, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"LogSoftmax: expected axis to be an int, got {axis!r}")
        if axis == 0:  # negative axes are checked against the input's rank in forward
            raise ValueError("LogSoftmax: expected an axis after the batch axis 0 (samples "
                             "must not mix), got axis 0")
        self.axis = int(axis)
        self._p: np.ndarray | None = None

    _axis = Softmax._axis  # the same check against the input's rank, naming this layer
    mask_passes = Softmax.mask_passes

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        axis = self._axis(x)
        if not x.shape[axis]:  # no classes: nothing to normalise (PyTorch: the empty x)
            if training:
                self._p = x.copy()
            return x.copy()
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN, as PyTorch's
            z = x - x.max(axis=axis, keepdims=True)  # (and -fmax - fmax: -inf)
        e = np.exp(z)
        s = e.sum(axis=axis, keepdims=True)  # >= 1 (the max gives exp(0)): log is safe
        y = z
        y -= np.log(s)
        if training:
            e /= s
            self._p = e
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        p = self._pop("_p")
        self._check_dy(dy, p.shape)
        dx = p * dy.sum(axis=self._axis(p), keepdims=True)
        np.subtract(dy, dx, out=dx)
        return dx
