"""Elementwise activations (Softmax, which is not elementwise, is in :mod:`.softmax`).

Each caches the one array its derivative is cheapest from: the output ``y``
when ``f′`` is a function of ``y`` (ReLU, Sigmoid, Tanh), else ``f′(x)`` itself
(LeakyReLU, ELU), which the forward computes while it has the intermediate values
(``exp(x)``) and which backward multiplies by ``dy`` in place; GELU keeps two, ``x``
and ``Φ(x)`` (its tanh form: ``x`` clipped to ±1e4 and ``t = tanh(√(2/π)(x + 0.044715
x³))``). Scratch arrays are reused, so that a training forward makes few arrays:
writing a new 32x64x28x28 float32 array took 2.2 ms where its memory was fresh (page
faults; a network's activations keep memory from being reused), 0.3 ms where it was
not (2-core AMD EPYC VM). Piecewise functions are written branch-free
(multiplying by a 0/1 mask): ``np.where`` on a random mask is an order of magnitude
slower, because every element is a mispredicted branch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from .._validate import in_range
from ._gelu import gelu_erf, gelu_erf_backward
from .base import Layer


class _Elementwise(Layer):
    """Shape-preserving activations: any rank, batch first."""

    mask_passes = True  # each element alone: a padding mask passes (see Layer.forward_masked)


class _KeepsOutput(_Elementwise):
    """An activation whose derivative is cheapest from its output ``y`` (ReLU, Sigmoid,
    Tanh, Softmax): a training forward keeps ``y`` in ``_y``, backward takes it back."""

    _cache_attrs = ("_y",)

    def __init__(self, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self._y: np.ndarray | None = None

    def _keep_y(self, y: np.ndarray, training: bool) -> np.ndarray:
        if training:
            self._y = y
        return y

    def _take_y(self, dy: np.ndarray) -> np.ndarray:
        """The cached ``y`` (freed here), once ``dy`` is checked against its shape."""
        y = self._pop("_y")
        self._check_dy(dy, y.shape)
        return y


class _KeepsDerivative(_Elementwise):
    """An activation whose forward computes ``d = f′(x)`` anyway, or cheaply (LeakyReLU,
    ELU, Softplus): a training forward keeps it in ``_d``, and backward is ``dy * d``,
    written into ``d`` (an array the forward made for the cache alone, and which backward
    frees): no new array for ``dx``."""

    _cache_attrs = ("_d",)

    def __init__(self, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self._d: np.ndarray | None = None

    def backward(self, dy: np.ndarray) -> np.ndarray:
        d = self._pop("_d")
        self._check_dy(dy, d.shape)
        d *= dy
        return d


class Identity(_Elementwise):
    """``y = x``.

    ::

        Forward:   y = x                      any shape
        Backward:  dx = dy

    Args:
        dtype: Input dtype (default float32).
    """

    _cache_attrs = ("_shape",)

    def __init__(self, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        if training:
            self._shape = x.shape
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self._check_dy(dy, self._pop("_shape"))
        return dy


class ReLU(_KeepsOutput):
    """Rectified linear unit.

    ::

        Forward:   y = max(x, 0)              any shape
        Backward:  dx = dy * (y != 0)         (= y > 0 for y >= 0: f′(0) taken as 0, as in
                                              PyTorch; a NaN input stays NaN and
                                              passes dy back unchanged)

    Args:
        dtype: Input dtype (default float32).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        return self._keep_y(backend.relu(x), training)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._take_y(dy)
        return backend.relu_grad(dy, y)


class LeakyReLU(_KeepsDerivative):
    """Leaky ReLU with slope ``negative_slope`` for ``x < 0`` (any finite slope, negative
    ones too, as in PyTorch).

    ::

        Forward:   d = where(x > 0, 1, negative_slope)        = f′(x), cached
                   y = x * d
        Backward:  dx = dy * d

    Args:
        negative_slope: The slope for ``x <= 0``, any finite number (default 0.01).
        dtype: Input dtype (default float32).
    """

    def __init__(self, negative_slope: float = 0.01, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.negative_slope = in_range(negative_slope, "negative_slope", "LeakyReLU",
                                       -math.inf)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        d = _slopes(x, self.negative_slope)
        if training:
            self._d = d
        with np.errstate(over="ignore", invalid="ignore"):  # -inf · 0, -3e38 · 2: as PyTorch
            return x * d


def _slopes(x: np.ndarray, s: float) -> np.ndarray:
    """``where(x > 0, 1, s)`` in ``x``'s dtype (NaN takes ``s``): see :func:`_select`."""
    return _select(x > 0, 1.0, s, x.dtype)


def _select(mask: np.ndarray, a: float, b: float, dtype: Any,
            out: np.ndarray | None = None) -> np.ndarray:
    """``where(mask, a, b)`` in ``dtype`` (into ``out`` if given), as two fast passes where
    the rounding gives both values to the bit (``np.where`` takes ~4x as long):
    ``mask·(a - b) + b``, else ``(not mask)·(b - a) + a``, else ``np.where`` (a slope of
    -0.3 in float32 gave 0.99999994 for 1 the first way; -0.0 loses its sign both ways).
    ``mask`` may be overwritten."""
    t = np.dtype(dtype).type
    if _exact(t, a, b):
        d = np.multiply(mask, a - b, out=out, dtype=dtype)  # bool*float: pin the dtype
        d += b
    elif _exact(t, b, a):
        d = np.multiply(np.logical_not(mask, out=mask), b - a, out=out, dtype=dtype)
        d += a
    else:
        d = np.where(mask, t(a), t(b))
        if out is not None:
            out[...] = d
            d = out
    return d


_EXACT: dict[tuple, bool] = {}


def _exact(t: Any, p: float, q: float) -> bool:
    """Whether ``m·(p - q) + q`` in type ``t`` is ``p`` for ``m = 1`` and ``q`` for ``m = 0``,
    zero signs included (worked out once per type and pair: every forward asks)."""
    key = (t, p, q, math.copysign(1.0, p), math.copysign(1.0, q))  # -0.0 == 0.0 as keys
    if key not in _EXACT:
        got = np.array([t(p - q) + t(q), t(0) * t(p - q) + t(q)])
        want = np.array([t(p), t(q)])
        _EXACT[key] = bool((got == want).all() and (np.signbit(got) == np.signbit(want)).all())
    return _EXACT[key]


class ELU(_KeepsDerivative):
    """Exponential linear unit.

    ::

        Forward:   e = alpha * (exp(min(x, 0)) - 1)           (0 where x >= 0)
                   y = max(x, 0) + e
        Backward:  dx = dy * d,   d = where(x > 0, 1, alpha·exp(x)) = cache["d"]

    ``expm1`` of ``min(x, 0)`` keeps precision near 0 and never overflows; in float32 it
    is ``tanh(v/2)·(exp(v) + 1)`` (within 3.1 ulp, where NumPy's float32 ``expm1``, not
    vectorised, takes 1.7x as long as ``exp`` and ``tanh`` together: ELU forward +
    backward on 32x128x28x28 65 -> 43-47 ms), whose ``exp(v)`` the derivative reuses. The
    derivative is cached, as ``exp(min(x, 0))`` times ``where(x <= 0, alpha, 1)`` (just
    ``exp(min(x, 0))`` for ``alpha = 1``: it is exactly 1 where ``x > 0``): ``e + alpha``
    would cancel for very negative x (float32 x = -17: 44% off, and 0 below about -17,
    where PyTorch's ``alpha·exp(x)`` is exact). A NaN input gives a NaN output and passes
    ``dy`` back unchanged, as PyTorch's scalar loop does (2.13; its vectorised loop, which
    takes most elements of a large tensor, gives NaN there).

    Args:
        alpha: The negative saturation value ``-alpha``, any finite number (default 1).
        dtype: Input dtype (default float32).
    """

    def __init__(self, alpha: float = 1.0, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.alpha = in_range(alpha, "alpha", "ELU", -math.inf)  # any finite alpha, as torch

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        v = np.clip(x, -np.inf, 0.0)  # NaN stays NaN (np.fmin, 0 for NaN: 2.6x slower)
        e, ev, y = _expm1_relu(v, x, training)
        if self.alpha != 1.0:
            e *= self.alpha
        y += e
        y += 0.0  # max(x, 0) + e: clip keeps -0.0, np.maximum gives +0.0 (3x slower)
        if training:
            d = ev
            if self.alpha != 1.0:  # (e's buffer, added into y, is free)
                d *= _select(x <= 0, self.alpha, 1.0, x.dtype, out=e)
            d[np.isnan(x)] = 1.0  # dy passes unchanged, as PyTorch's scalar loop (few: fast)
            self._d = d
        return y


def _expm1_relu(v: np.ndarray, x: np.ndarray, training: bool
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(expm1(v), exp(v), clip(x, 0, inf))`` for the ELU family, ``v = min(x, 0)``:
    ``expm1`` in ``v``'s buffer, ``exp(v)`` None where not needed (inference in float64).

    In float32 ``expm1(v) = tanh(v/2)·(exp(v) + 1)`` (NumPy's float32 ``expm1`` is not
    vectorised), and the third array's buffer holds ``exp(v) + 1`` meanwhile.
    """
    if type(v) is np.ndarray and v.dtype == np.float32:
        ev = np.exp(v)
        e = np.multiply(v, 0.5, out=v)
        np.tanh(e, out=e)
        y = np.add(ev, 1.0)
        e *= y
        return e, ev, np.clip(x, 0.0, np.inf, out=y)
    ev = np.exp(v) if training else None
    return np.expm1(v, out=v), ev, np.clip(x, 0.0, np.inf)


class GELU(_Elementwise):
    """Gaussian error linear unit: the exact erf form (PyTorch's default), or its tanh
    approximation with ``approximate='tanh'`` (as ``torch.nn.GELU(approximate='tanh')``).

    ::

        Forward:   y = x * Φ(x),   Φ(x) = (1 + erf(x / √2)) / 2
        Backward:  dx = dy * (Φ(x) + x * φ(x)),   φ(x) = exp(-x²/2) / √(2π)
        tanh:      t = tanh(√(2/π) (x + 0.044715 x³)),   y = x (1 + t) / 2
                   dx = dy * ((1 + t) / 2 + x (1 - t²) √(2/π) (1 + 3·0.044715 x²) / 2)
        Cache:     cache["x"] and cache["cdf"]: x and Φ(x), or in the tanh form x and t

    In float32, ``Φ`` is a rational approximation within 2.1e-7 of the exact one (that
    of :func:`backprop.backend.erf`, see :mod:`._gelu`), over blocks of values that stay
    in the cache; float64 uses SciPy's ``erf``. The erf form's backward writes ``dx``
    into the cached ``Φ``.

    Args:
        approximate: ``'none'`` (default, the erf form) or ``'tanh'``.
        dtype: Input dtype (default float32).
    """

    _cache_attrs = ("_x", "_cdf")

    def __init__(self, approximate: str = "none", *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: expected approximate 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._x = self._cdf = None  # see Cache in the docstring

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        if self.approximate == "tanh":
            # quietly, as PyTorch: x² = inf from |x| ≈ 1e19 (float64: 1e154), where t = ±1;
            # -inf · 0: NaN
            with np.errstate(over="ignore", invalid="ignore"):
                cdf = x * x  # t = tanh(√(2/π) (1 + 0.044715 x²) x), built in one buffer
                cdf *= _GELU_C
                cdf += 1
                cdf *= x
                cdf *= _SQRT_2_PI
                np.tanh(cdf, out=cdf)
                y = cdf * 0.5  # (1 + t) / 2 first: (1 + t) * x overflows near the float max
                y += 0.5
                y *= x
            if training:
                self._x, self._cdf = x, cdf
            return y
        y, cdf = gelu_erf(x, training)
        if training:
            self._x, self._cdf = x, cdf
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, cdf = self._pop("_x", "_cdf")
        self._check_dy(dy, x.shape)
        if self.approximate == "tanh":  # cdf is t: ours to reuse
            d = cdf * cdf
            np.subtract(1, d, out=d)
            with np.errstate(invalid="ignore"):  # ±inf · 0: NaN, as PyTorch and the formula
                d *= x
            s = np.clip(x, -_GELU_CLIP, _GELU_CLIP)  # no x² overflow; 1 - t² = 0 beyond it
            s *= s
            s *= 3 * _GELU_C * _SQRT_2_PI  # √(2/π) (1 + 3·0.044715 x²), in one pass less
            s += _SQRT_2_PI
            d *= s
            d += np.add(cdf, 1, out=cdf)  # 1 + t first: exact where t ≈ -1 (then d is tiny)
            d *= 0.5
            d *= dy
            return d
        return gelu_erf_backward(x, cdf, dy)  # into cdf, ours


_SQRT_2_PI = math.sqrt(2 / math.pi)
_GELU_C = 0.044715
_GELU_CLIP = 1e4  # tanh of the tanh form's argument is exactly ±1 from |x| ≈ 10 on


class Sigmoid(_KeepsOutput):
    """Logistic sigmoid, warning-free for any input (see :func:`backend.expit` for its
    accuracy: 2.4 ulp in float64, 3.5 in float32).

    ::

        Forward:   y = 1 / (1 + exp(-x))
        Backward:  dx = dy * y * (1 - y)

    Args:
        dtype: Input dtype (default float32).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        y = backend.expit(x)  # exp(-x) may overflow to inf: 1/(1+inf) = 0, the limit
        return self._keep_y(y, training)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._take_y(dy)
        dx = 1 - y  # built in one buffer: no further temporaries
        dx *= y
        dx *= dy
        return dx


class Tanh(_KeepsOutput):
    """Hyperbolic tangent.

    ::

        Forward:   y = tanh(x)
        Backward:  dx = dy * (1 - y²)

    Args:
        dtype: Input dtype (default float32).
    """

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x)
        return self._keep_y(np.tanh(x), training)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._take_y(dy)
        dx = y * y  # built in one buffer: no further temporaries
        np.subtract(1, dx, out=dx)
        dx *= dy
        return dx
