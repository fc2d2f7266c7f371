"""NumPy's own OpenBLAS, called through ctypes for what NumPy does not expose.

NumPy's wheels ship OpenBLAS with its CBLAS interface exported. Calling it directly
gives two things NumPy's functions lack: the fused ``?axpby``/``?axpy`` updates of
the optimizers, and ``?gemm`` with ``beta = 1`` (``C += A @ B`` into a strided view),
which Conv's backward uses to add each kernel offset's product straight into place.
Both run in the thread pool that does NumPy's matrix products (``ctypes`` gets the
same library handle), whose workers are still awake after the model's products,
and ``threadpoolctl`` limits apply to them as to ``np.matmul``.

The symbols are named ``scipy_cblas_sgemm64_`` (NumPy >= 2) or ``cblas_sgemm64_``
(NumPy 1.26, 64-bit ints), or unsuffixed with 32-bit ints in other builds. Each
function passes a self-test on exact values before it is used; anything else (MKL or
Accelerate builds of NumPy, a failed test) gives None and the caller's NumPy route.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

_ROW_MAJOR, _NO_TRANS = 101, 111
_LOADED: dict[tuple[str, Any], Any] = {}


def address(a: np.ndarray) -> int:
    """The address of ``a``'s first element (``a.ctypes.data`` without its helper objects,
    which kept a few KiB alive from step to step)."""
    return a.__array_interface__["data"][0]


def _libraries() -> Iterator[Any]:
    """The OpenBLAS libraries NumPy's wheel ships (Linux ``numpy.libs``, macOS ``.dylibs``),
    loaded with ctypes (the handle of the copy NumPy already uses)."""
    root = Path(np.__file__).resolve().parent
    paths = sorted(root.parent.glob("numpy.libs/*openblas*")) + sorted(
        root.glob(".dylibs/*openblas*"))
    for path in paths:
        try:
            yield ctypes.CDLL(str(path))
        except OSError:
            continue


def _candidates(*names: str) -> Iterator[tuple[list[Any], Any]]:
    """``([functions], int type)`` for every spelling under which NumPy's OpenBLAS has all
    the CBLAS functions ``names``."""
    for lib in _libraries():
        for prefix, suffix, int_t in (("scipy_", "64_", ctypes.c_int64),
                                      ("", "64_", ctypes.c_int64),
                                      ("scipy_", "", ctypes.c_int), ("", "", ctypes.c_int)):
            found = [getattr(lib, f"{prefix}cblas_{name}{suffix}", None) for name in names]
            if all(f is not None for f in found):
                yield found, int_t


def _cached(key: str, dtype: Any, load: Callable[[Any], Any]) -> Any:
    dtype = np.dtype(dtype)
    if (key, dtype) not in _LOADED:
        _LOADED[key, dtype] = load(dtype) if dtype in (np.float32, np.float64) else None
    return _LOADED[key, dtype]


def _real(dtype: Any) -> tuple[str, Any]:
    return ("s", ctypes.c_float) if dtype == np.float32 else ("d", ctypes.c_double)


# -- axpby / axpy: the optimizers' update ---------------------------------------------------
def axpby_axpy(dtype: Any) -> tuple[Any, Any] | None:
    """``(run_axpby(x, y, alpha, beta), run_axpy(x, y, alpha))`` on whole contiguous
    arrays, in place on ``y``; None where NumPy's BLAS has no such functions."""
    return _cached("axpby", dtype, _load_axpby)


def _load_axpby(dtype: Any) -> tuple[Any, Any] | None:
    t, real = _real(dtype)
    ptr = ctypes.c_void_p
    for (axpby, axpy), int_t in _candidates(f"{t}axpby", f"{t}axpy"):
        axpby.argtypes, axpby.restype = [int_t, real, ptr, int_t, real, ptr, int_t], None
        axpy.argtypes, axpy.restype = [int_t, real, ptr, int_t, ptr, int_t], None

        def run_axpby(x: np.ndarray, y: np.ndarray, alpha: float, beta: float,
                      f: Any = axpby) -> None:
            f(x.size, alpha, address(x), 1, beta, address(y), 1)

        def run_axpy(x: np.ndarray, y: np.ndarray, alpha: float, f: Any = axpy) -> None:
            f(x.size, alpha, address(x), 1, address(y), 1)

        if axpby_self_test(run_axpby, run_axpy, dtype):
            return run_axpby, run_axpy
    return None


def axpby_self_test(run_axpby: Any, run_axpy: Any, dtype: Any) -> bool:
    x = np.arange(1.0, 38.0, dtype=dtype)
    y, z = x[::-1].copy(), x.copy()
    run_axpby(x, y, 0.5, 2.0)
    run_axpy(x, z, -3.0)
    return (np.array_equal(y, 0.5 * x + 2.0 * x[::-1]) and np.array_equal(z, -2.0 * x)
            and np.array_equal(x, np.arange(1.0, 38.0, dtype=dtype)))


# -- gemm with beta = 1: out += a @ b ---------------------------------------------------------
def matmul_add(dtype: Any) -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """``run(a, b, out)``: ``out += a @ b`` in place, one BLAS call; None where not available.

    ``a (M, K)``, ``b (K, N)`` and ``out (M, N)`` are 2-D arrays of ``dtype`` whose rows
    are contiguous, at any row stride (views into wider arrays are fine); ``out`` must
    not overlap ``a`` or ``b``. Anything else raises ValueError.
    """
    return _cached("gemm", dtype, _load_gemm)


def _load_gemm(dtype: Any) -> Any:
    t, real = _real(dtype)
    dt = np.dtype(dtype)
    ptr, item = ctypes.c_void_p, dt.itemsize
    for (gemm,), int_t in _candidates(f"{t}gemm"):
        gemm.argtypes = [ctypes.c_int] * 3 + [int_t] * 3 + [real, ptr, int_t, ptr, int_t,
                                                             real, ptr, int_t]
        gemm.restype = None

        def run(a: np.ndarray, b: np.ndarray, out: np.ndarray, f: Any = gemm,
                dtype: Any = dt, item: int = item) -> None:
            (m, k), (k2, n) = a.shape, b.shape
            if out.shape != (m, n) or k2 != k:
                raise ValueError(f"matmul_add: shapes {a.shape} @ {b.shape} into {out.shape}")
            for arr in (a, b, out):
                if (type(arr) is not np.ndarray or arr.dtype != dtype or arr.ndim != 2
                        or arr.strides[1] != item or arr.strides[0] % item
                        or arr.strides[0] < arr.shape[1] * item):
                    raise ValueError("matmul_add: expected 2-D arrays of "
                                     f"{dtype} with contiguous rows")
            if not out.flags.writeable:
                raise ValueError("matmul_add: out is read-only")
            if m and n:
                f(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, address(a),
                  a.strides[0] // item, address(b), b.strides[0] // item, 1.0, address(out),
                  out.strides[0] // item)

        if gemm_self_test(run, dtype):
            return run
    return None


def gemm_self_test(run: Any, dtype: Any) -> bool:
    """``out += a @ b`` on strided views with small integers (exact in any order)."""
    a = np.arange(12.0, dtype=dtype).reshape(3, 4) - 5
    wide_b = np.arange(4.0 * 9, dtype=dtype).reshape(4, 9) % 7
    wide_out = np.ones((3, 11), dtype)
    want = wide_out.copy()
    want[:, 2:7] += a @ wide_b[:, 1:6]
    try:
        run(a, wide_b[:, 1:6], wide_out[:, 2:7])
    except (ValueError, TypeError, ctypes.ArgumentError):
        return False
    return bool(np.array_equal(wide_out, want))


# -- which kernels: openblas_get_corename -----------------------------------------------------
def blas_note() -> str | None:
    """A note when ``OPENBLAS_CORETYPE`` pins NumPy's OpenBLAS to named kernels (it then runs
    those whatever the CPU supports, and the GEMM bound is theirs), else None."""
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    if not pinned:
        return None
    core = corename()
    return (f"NumPy's OpenBLAS runs its {core or pinned} kernels, pinned by "
            f"OPENBLAS_CORETYPE={pinned} (whatever this CPU supports; PyTorch picks its "
            "own): unset it in the command to time the kernels OpenBLAS would choose")


def corename() -> str | None:
    """The kernel family NumPy's OpenBLAS runs (``"Haswell"``, ``"SkylakeX"``...), or None
    where NumPy's BLAS is not OpenBLAS or does not say."""
    for lib in _libraries():
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_",
                     "scipy_openblas_get_corename", "openblas_get_corename"):
            f = getattr(lib, name, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                value = f()
                return value.decode(errors="replace").strip() or None if value else None
    return None


@functools.cache  # the library's functions stay: looked up once
def thread_functions() -> tuple[Any, Any] | None:
    """``(get(), set(n))`` of NumPy's OpenBLAS thread pool, or None where NumPy's BLAS is
    not OpenBLAS or does not export them."""
    for lib in _libraries():
        for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("scipy_", ""), ("", "")):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                return get, put
    return None
