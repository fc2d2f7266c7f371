"""The one place that knows which array library runs the math.

Layers create arrays from the arrays they already hold (``np.empty_like``,
``np.zeros_like``) and call special functions through here, so the same layer
code can later run on CuPy arrays: :func:`xp` picks the module from an array.
SciPy is imported lazily, so ``import backprop`` stays cheap.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def xp(x: Any) -> ModuleType:
    """Return the array module (NumPy, or CuPy for CuPy arrays) that owns ``x``."""
    if type(x).__module__.split(".")[0] == "cupy":  # pragma: no cover - needs a GPU
        import cupy

        return cupy
    return np


def erf(x: Any) -> Any:
    """Elementwise error function, in the dtype of ``x``."""
    if xp(x) is not np:  # pragma: no cover - needs a GPU
        import cupyx.scipy.special as special
    else:
        import scipy.special as special
    return special.erf(x)


def expit(x: Any, out: Any = None) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, exact and warning-free for any finite x."""
    if xp(x) is not np:  # pragma: no cover - needs a GPU
        import cupyx.scipy.special as special
    else:
        import scipy.special as special
    return special.expit(x, out=out) if out is not None else special.expit(x)


def log_expit(x: Any) -> Any:
    """``log(sigmoid(x))`` without overflow or log(0)."""
    if xp(x) is not np:  # pragma: no cover - needs a GPU
        import cupyx.scipy.special as special
    else:
        import scipy.special as special
    return special.log_expit(x)


def axpy(a: float, x: Any, y: Any) -> None:
    """``y += a * x`` in place, in one pass (BLAS axpy: no temporary, multi-threaded).

    Optimizer updates are memory-bound; this halves their traffic compared with
    ``y -= a * x``, which first writes ``a * x`` to a temporary.
    """
    if xp(y) is np and y.flags.c_contiguous and x.flags.c_contiguous and y.dtype == x.dtype \
            and y.dtype.char in "fd":
        _blas(y.dtype.char, "axpy")(x.reshape(-1), y.reshape(-1), a=a)
    else:
        y += a * x


def scal(a: float, x: Any) -> None:
    """``x *= a`` in place (BLAS scal)."""
    if xp(x) is np and x.flags.c_contiguous and x.dtype.char in "fd":
        _blas(x.dtype.char, "scal")(a, x.reshape(-1))
    else:
        x *= a


def blas_ready() -> None:
    """Import SciPy's BLAS wrappers ahead of the first update (a one-time cost)."""
    _blas("f", "axpy")


def _blas(char: str, name: str) -> Any:
    from scipy.linalg import blas

    return getattr(blas, {"f": "s", "d": "d"}[char] + name)
