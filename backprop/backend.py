"""The one place that knows which array library runs the math.

Special functions (erf, expit) and the fused passes are called through here, and
:func:`xp` picks the array module from an array, so that elementwise layer code can
later run on CuPy arrays. (Not all of it can yet: on a GPU, ``benchmarks/cupy_probe.py``
ran 64 of the gradient-check table's 222 layer cases and none of its losses; NumPy
workspaces, ``np.asarray`` reads and NumPy Generators stop the rest, listed in
``benchmarks/RESULTS.md``.)
SciPy is imported lazily, so ``import backprop`` stays cheap.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from . import _openblas


def xp(x: Any) -> ModuleType:
    """Return the array module (NumPy, or CuPy for CuPy arrays) that owns ``x``."""
    if type(x).__module__.split(".")[0] == "cupy":  # pragma: no cover - needs a GPU
        import cupy

        return cupy
    return np


def erf(x: Any, out: Any = None) -> Any:
    """Elementwise error function, in the dtype of ``x``, written into ``out`` if given
    (an array of ``x``'s shape and dtype, ``x`` itself too).

    float32 NumPy arrays use the rational approximation Eigen and XLA use for float32
    ``erf`` (odd degree-13 numerator over even degree-8 denominator, input clamped to
    [-4, 4], where float32 ``erf`` is ±1): within 4.5e-7 of float64 ``erf`` (measured
    over 1.2M points), and about 0.36 vs 2.2 ms on 256x512 values, since
    ``scipy.special.erf`` runs ~15 ns per element. float64 keeps SciPy's, exact to
    the last bits (the gradient checker works in float64).
    """
    if xp(x) is not np:  # pragma: no cover - needs a GPU
        import cupyx.scipy.special as special
    elif getattr(x, "dtype", None) == np.float32:
        return _erf32(x, out)
    else:
        import scipy.special as special
    return special.erf(x, out=out)


_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # x · P(x²), highest power first
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)  # Q(x²)


def _erf32(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 ``erf`` as ``x · P(x²) / Q(x²)`` on ``clip(x, -4, 4)``, clipped to [-1, 1]
    (NaN stays NaN; ±inf give ±1), into ``out`` if given (``x`` itself too: each block
    of ``x`` is read once, into scratch, before its block of ``out`` is written).

    The ~20 passes of the two Horner loops run over blocks of :data:`_ERF_BLOCK` values
    that stay in the cache, not over the whole array each time: erf of (64, 64, 32, 32)
    values 25.5 -> 9.9 ms, with three scratch arrays for all blocks (an array of at most
    one block is one block, with no views to slice).
    """
    x = np.asarray(x)
    res = out if out is not None and out.flags.c_contiguous else np.empty(x.shape, np.float32)
    if x.size <= _ERF_BLOCK:
        _erf32_block(x, res, *(np.empty(x.shape, np.float32) for _ in range(3)))
    else:
        flat, rf = np.ascontiguousarray(x).reshape(-1), res.reshape(-1)
        c, x2, q = (np.empty(_ERF_BLOCK, np.float32) for _ in range(3))
        for start in range(0, flat.size, _ERF_BLOCK):
            n = min(_ERF_BLOCK, flat.size - start)
            _erf32_block(flat[start:start + n], rf[start:start + n], c[:n], x2[:n], q[:n])
    if out is not None and res is not out:
        out[...] = res
        return out
    return res


def _erf32_block(x: np.ndarray, p: np.ndarray, c: np.ndarray, x2: np.ndarray,
                 q: np.ndarray) -> np.ndarray:
    """:func:`_erf32` of ``x`` written into ``p``, with ``c``, ``x2`` and ``q`` as scratch
    (all of ``x``'s shape)."""
    np.clip(x, -4.0, 4.0, out=c)
    np.multiply(c, c, out=x2)
    np.multiply(x2, _ERF_P[0], out=p)  # Horner, highest power first
    np.multiply(x2, _ERF_Q[0], out=q)
    p += _ERF_P[1]
    for a in _ERF_P[2:]:
        p *= x2
        p += a
    q += _ERF_Q[1]
    for b in _ERF_Q[2:]:
        q *= x2
        q += b
    p *= c
    p /= q
    return np.clip(p, -1.0, 1.0, out=p)  # near |x| = 4 the quotient overshoots by <= 2.4e-7


_ERF_BLOCK = 1 << 17  # 512 KiB of float32 per array (2^15 and 2^16 measured slower)


def log1p_residual(z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``c = (z - (u - 1)) / u`` as a new array, for ``u = z + 1`` as rounded: then
    ``log1p(z) = log(u) + c`` to first order in ``c``, for float ``z >= 0`` (or NaN).

    ``u - 1`` and ``z - (u - 1)`` are exact for ``z < 2**p`` (p the significand's bits),
    so ``c`` is the rounding error of ``z + 1``; beyond that ``c`` is a few ulp of
    ``u``, below the rounding of ``log(u)``. This is how float32 layers take ``log1p``
    of a non-negative array: NumPy's float32 ``log1p`` (and ``expm1``) is not
    vectorised, 16-34 ms per 1.6M values where ``log`` takes 5 (2-core AMD EPYC).
    With an exact ``log``, ``log(u) + c`` rounds to within 1 ulp of ``log1p(z)``; with
    NumPy's float32 ``log`` (3.1 ulp over 3M points of [1, 1e9]) within 3.5 (tested).
    ``z = 0`` (``exp(-inf)``) gives ``c = 0`` and ``log1p = 0``.
    """
    c = np.subtract(u, 1.0)
    np.subtract(z, c, out=c)
    c /= u
    return c


def expit(x: Any) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, warning-free for any input.

    Within 2.4 ulp in float64 and 3.5 ulp in float32 (the worst on grids of 4 million
    inputs over the range of normal results, against long double; NumPy's ``exp`` decides
    it: with NumPy 1.24's AVX-512 ``exp``, float64 reached 2.55 ulp). Written as exactly
    that formula: where ``exp(-x)`` overflows (x < -88.7 in float32, -709.8 in float64)
    the result is 0, the limit, although the true value there is a subnormal number
    down to about x = -103.9 (-745.1); the overflow is silenced rather than avoided.
    Four NumPy passes are 4x faster than ``scipy.special.expit``, which evaluates
    element by element.
    """
    y = xp(x).negative(x)
    with np.errstate(over="ignore"):
        xp(x).exp(y, out=y)
    y += 1
    return xp(x).reciprocal(y, out=y)


def negate(a: Any, out: Any) -> Any:
    """``out = -a`` (``out`` may be ``a``), as ``multiply(a, -1.0)``: the same values,
    ``-0.0`` and NaN included. NumPy 2.4's ``negative`` with ``out=`` wrote wrong values
    into views whose stride is 16 bytes in float32 or 64 in float64 (it read its input as
    if contiguous; x86-64, AVX2), which an LSTM's gate column is at ``hidden_size=1``."""
    return xp(a).multiply(a, -1.0, out=out)


def sumsq(a: Any) -> float:
    """``Σ a²`` as a Python float, computed in ``a``'s dtype.

    einsum rather than ``np.dot``: a 1-D dot goes to BLAS, whose threads fight the
    model's matrix products on a busy machine and whose split of the sum depends
    on the thread count (so float64 results would differ in the last bits). A
    float32 overflow gives ``inf``, without a warning.
    """
    v = a.reshape(-1)
    return float(xp(a).einsum("i,i->", v, v))


_ZERO_ROWS: dict[Any, np.ndarray] = {}
_RELU_ROW = 8192  # elements per row of relu's comparison against a row of zeros
_ROW = 1024  # elements per row of all_finite's matrix-vector sum


def relu(x: Any) -> Any:
    """``maximum(x, 0)`` as a new array (NaN stays NaN), for ReLU's forward.

    NumPy 2.4's ``maximum`` against a scalar 0 misses the SIMD loop, so a
    C-contiguous array is compared as rows of 8,192 against one cached row of zeros,
    and the tail against the scalar. float32 64x32x28x28: 589 us against the scalar,
    335 us in rows of 1,024, 240 us in rows of 8,192 (128x512: 24.9 / 13.3 / 9.2 us);
    rows of 4,096 are no faster than 1,024. float64 64x32x28x28: 738 / 1,166 / 761 us.
    """
    module = xp(x)
    if (module is not np or x.dtype not in (np.float32, np.float64)
            or not x.flags.c_contiguous or x.size < _RELU_ROW):
        return module.maximum(x, 0)
    zeros = _ZERO_ROWS.get(x.dtype)
    if zeros is None:
        zeros = _ZERO_ROWS[x.dtype] = np.zeros(_RELU_ROW, x.dtype)
    y = np.empty_like(x)
    xf, yf = x.reshape(-1), y.reshape(-1)
    m = x.size - x.size % _RELU_ROW
    np.maximum(xf[:m].reshape(-1, _RELU_ROW), zeros, out=yf[:m].reshape(-1, _RELU_ROW))
    if m < x.size:
        np.maximum(xf[m:], 0, out=yf[m:])
    return y


def relu_grad(dy: Any, y: Any) -> Any:
    """``dy * (y > 0)`` for ReLU's output ``y`` (``>= 0`` or NaN), as a new array.

    Written as ``dy * (y != 0)``, which is the same for ``y >= 0`` and lets a NaN
    output pass ``dy``, as PyTorch's ``threshold_backward(grad, result, 0)`` does
    (``NaN <= 0`` is false). The mask is written straight into the float output
    (``not_equal`` cast on store) and multiplied by ``dy`` in place: two same-dtype
    passes, where ``dy * mask`` multiplies float by bool through a casting loop
    (0.67 -> 0.51 ms on 64x32x28x28 float32), with the same bits, signed zeros
    included.
    """
    if (xp(dy) is not np or dy.dtype != y.dtype or dy.shape != y.shape
            or dy.dtype not in (np.float32, np.float64)):
        return dy * (y != 0)
    out = np.empty_like(dy)
    np.not_equal(y, 0, out=out, casting="unsafe")
    out *= dy
    return out


_ONES: dict[Any, np.ndarray] = {}


def all_finite(a: Any) -> bool:
    """Whether every element of ``a`` is finite: ``fit``'s check before each update.

    A BLAS pass sums ``a``: any NaN or inf makes the sum non-finite, and only then
    is the exact ``isfinite`` pass run (in chunks of 2^20 elements), so large finite
    values whose sum overflows are not mistaken for bad ones. The pass is a
    matrix-vector product, ``a`` as rows of 1,024 times a vector of ones, which
    OpenBLAS splits over its threads (already awake from the model's products), where
    a dot ``a·a`` runs on one thread: 535,818 float32 take 0.015-0.021 ms against
    0.034 ms for the dot (``isfinite(a).all()``: 0.09 ms). The sum's rounding depends
    on the thread split; a finiteness test does not care, which is why :func:`sumsq`
    stays einsum.
    """
    v = a.reshape(-1)
    module = xp(a)
    with np.errstate(over="ignore", invalid="ignore"):
        if module is np and v.dtype in (np.float32, np.float64) and v.size >= 2 * _ROW:
            ones = _ONES.get(v.dtype)
            if ones is None:
                ones = _ONES[v.dtype] = np.ones(_ROW, v.dtype)
            m = v.size - v.size % _ROW
            total = float((v[:m].reshape(-1, _ROW) @ ones).sum()) + float(v[m:].sum())
        else:
            total = float(module.dot(v, v))
        if math.isfinite(total):
            return True
    if module is not np:  # pragma: no cover - needs a GPU
        return bool(module.isfinite(v).all())
    step = 1 << 20  # the exact pass in chunks: no boolean temporary the size of ``a``
    return all(bool(np.isfinite(v[i:i + step]).all()) for i in range(0, v.size, step))


# Three routes for the optimizers' in-place updates, fastest first:
# 1. NumPy's own OpenBLAS ``?axpby``/``?axpy`` called through ctypes, whole arrays at
#    once. They run in the thread pool that just did the model's matrix products, whose
#    workers are still awake: SGD momentum on 535,818 float32 parameters takes 0.08 ms
#    right after a product, against 0.23 ms on route 2 (2-core AMD EPYC).
# 2. SciPy's ``?axpy``/``?scal`` over 9,984-element chunks: below OpenBLAS's threading
#    threshold (n <= 10,000), so SciPy's separate OpenBLAS never wakes its own thread
#    pool (whose spinning workers would fight NumPy's), and each ~40 KiB chunk stays in
#    L1/L2 between the scal and the axpy. Used where NumPy's BLAS is not OpenBLAS
#    (MKL or Accelerate builds) or its symbols are not found.
# 3. NumPy ufuncs through a scratch array: CuPy, strided views, other dtypes.
# Routes 1 and 2 give the same bits at one thread (both OpenBLAS kernels; tested), and
# any route gives the same bits at the same thread count. Across thread counts, up to
# the last bit: every element is computed alone, but OpenBLAS 0.3.31 (NumPy 2.4's
# wheels) computes ``?axpy``'s tail without the fused multiply-add of its vector loop,
# and on two threads each thread's share has a tail (4 of 10,001 float32 elements
# differed by one ulp; 0.3.30 gave the same bits on 1 and 2 threads).
_BLAS_CHUNK = 9984
_BLAS: dict[Any, tuple[Any, Any]] = {}


def _usable(x: Any, y: Any) -> bool:
    """Two same-shape, same-dtype float32/float64 C-contiguous NumPy arrays, y writable."""
    return (type(x) is np.ndarray and type(y) is np.ndarray and x.dtype == y.dtype
            and x.shape == y.shape and x.flags.c_contiguous and y.flags.c_contiguous
            and y.flags.writeable and x.dtype in (np.float32, np.float64))


def _blas_for(x: Any, y: Any) -> tuple[Any, Any] | None:
    """SciPy's (axpy, scal) for two arrays :func:`_usable` accepts (route 2), else None."""
    if not _usable(x, y):
        return None
    if x.dtype not in _BLAS:
        from scipy.linalg import blas

        _BLAS[x.dtype] = ((blas.saxpy, blas.sscal) if x.dtype == np.float32
                          else (blas.daxpy, blas.dscal))
    return _BLAS[x.dtype]


def _numpy_blas_for(x: Any, y: Any) -> tuple[Any, Any] | None:
    """NumPy's own OpenBLAS (axpby, axpy) for arrays :func:`_usable` accepts (route 1).

    Each takes ``(x, y, alpha[, beta])`` and updates ``y`` in place. None when the
    arrays do not qualify or NumPy's BLAS has no such functions.
    """
    if not _usable(x, y):
        return None
    return _openblas.axpby_axpy(x.dtype)


def axpby(alpha: float, x: Any, beta: float, y: Any, tmp: Any) -> None:
    """``y = alpha * x + beta * y`` in place: the optimizers' one fused update.

    NumPy has no fused multiply-add, so ``y *= beta; tmp = alpha * x; y += tmp`` reads
    and writes the whole array three times; BLAS does it in one sweep (see the
    routes above this function). Other arrays (CuPy, strided views, other dtypes)
    take the NumPy route through ``tmp`` (scratch shaped like ``y``; never
    allocated here).
    """
    fast = _numpy_blas_for(x, y)
    if fast is not None:
        if beta != 1.0:
            fast[0](x, y, alpha, beta)
        else:
            fast[1](x, y, alpha)
        return
    blas = _blas_for(x, y)
    if blas is None:
        if beta != 1.0:
            y *= beta
        if alpha == 1.0:
            y += x
        else:
            xp(y).multiply(x, alpha, out=tmp)
            y += tmp
        return
    axpy, scal = blas
    xf, yf, n = x.reshape(-1), y.reshape(-1), x.size
    for i in range(0, n, _BLAS_CHUNK):
        m = min(_BLAS_CHUNK, n - i)
        if beta != 1.0:
            scal(beta, yf, m, i)
        if axpy(xf, yf, m, alpha, i, 1, i, 1) is not yf:  # pragma: no cover - f2py copied y
            raise RuntimeError("axpby: SciPy's BLAS wrote to a copy of y, not y itself")


def square_into(g: Any, c: float, out: Any) -> float:
    """``out = g²`` and ``c`` returned, for the optimizers' ``axpby(c, out, beta, v)``
    (``v = beta v + c g²``); where ``g²`` overflows (float32 ``|g|`` past 1.8e19, still
    finite in PyTorch's ``(c g) g``, which overflows only from ~5.8e20 with c = 0.001),
    ``out = (c g) g`` and 1.0 returned. The overflow is NumPy's floating-point flag,
    read at no cost: a pass more over the gradients each step (``(c g) g`` always) made
    an Adam step 5-11% slower. CuPy arrays (no flag) take ``(c g) g``."""
    if xp(g) is np:
        try:
            with np.errstate(over="raise"):
                np.multiply(g, g, out=out)
            return c
        except FloatingPointError:
            pass
    xp(g).multiply(g, c, out=out)
    out *= g
    return 1.0


def axpby_axpy(alpha: float, x: Any, beta: float, y: Any, gamma: float, z: Any,
               tmp: Any) -> None:
    """``y = alpha * x + beta * y``, then ``z += gamma * y``: a momentum step, in place.

    The same arithmetic as ``axpby(alpha, x, beta, y, tmp)`` followed by
    ``axpby(gamma, y, 1.0, z, tmp)``, bit for bit. On route 2 it is one sweep:
    each chunk of ``y`` is still in L1/L2 when it is added into ``z``.
    """
    fast = _numpy_blas_for(x, y)
    if fast is not None and _usable(y, z):  # route 1: two BLAS calls, checked once
        if beta != 1.0:
            fast[0](x, y, alpha, beta)
        else:
            fast[1](x, y, alpha)
        fast[1](y, z, gamma)
        return
    blas = None if fast is not None else _blas_for(x, y)
    if blas is None or _blas_for(y, z) is None:  # route 1 or 3: two calls
        axpby(alpha, x, beta, y, tmp)
        axpby(gamma, y, 1.0, z, tmp)
        return
    axpy, scal = blas
    xf, yf, zf, n = x.reshape(-1), y.reshape(-1), z.reshape(-1), x.size
    for i in range(0, n, _BLAS_CHUNK):
        m = min(_BLAS_CHUNK, n - i)
        if beta != 1.0:
            scal(beta, yf, m, i)
        if (axpy(xf, yf, m, alpha, i, 1, i, 1) is not yf
                or axpy(yf, zf, m, gamma, i, 1, i, 1) is not zf):  # pragma: no cover
            raise RuntimeError("axpby_axpy: SciPy's BLAS wrote to a copy, not in place")
