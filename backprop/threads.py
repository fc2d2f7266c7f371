"""The BLAS thread pool that runs backprop's matrix products (``torch.set_num_threads``).

backprop's products are NumPy's (``x @ W``) and its fused updates call the same BLAS, so
one setting covers every layer and optimizer. NumPy's own OpenBLAS is set directly
(ctypes, no dependency); another BLAS (MKL, Accelerate) through ``threadpoolctl`` when it
is installed. Small MLP steps often run faster on fewer threads than cores: waking a
pool for each small product can cost more than it saves (``bp.bench`` shows it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from . import _openblas
from ._validate import positive_int


def get_num_threads() -> int:
    """Threads NumPy's BLAS uses for a product (``torch.get_num_threads``).

    Raises:
        RuntimeError: NumPy's BLAS is not OpenBLAS and threadpoolctl is not installed.
    """
    found = _openblas.thread_functions()
    if found is not None:
        return int(found[0]())
    pools = _blas_pools("get_num_threads")
    return max(int(p["num_threads"]) for p in pools)


def set_num_threads(n: int) -> None:
    """Run NumPy's BLAS (so every backprop product) on ``n`` threads, from now on, in
    this process (``torch.set_num_threads``; the ``OPENBLAS_NUM_THREADS`` variable
    does it before start). More threads than cores (``os.cpu_count()``) slow the
    products, each waiting for the others; BLAS may cap ``n`` at its build's limit:
    :func:`get_num_threads` says what applies.

    Args:
        n: The number of threads, at least 1.

    Raises:
        ValueError: ``n`` below 1.
        TypeError: ``n`` not an int.
        RuntimeError: NumPy's BLAS is not OpenBLAS and threadpoolctl is not installed.
    """
    n = positive_int(n, "n", "set_num_threads")
    found = _openblas.thread_functions()
    if found is not None:
        found[1](n)
        return
    _blas_pools("set_num_threads")
    from threadpoolctl import threadpool_limits

    threadpool_limits(n, user_api="blas")  # not as a with-block: it stays


@contextlib.contextmanager
def limited(n: int) -> Iterator[None]:
    """BLAS on ``n`` threads inside, as before after (the command line's ``--threads``):
    every pool threadpoolctl finds when it is installed (SciPy's too), else NumPy's
    OpenBLAS through :func:`set_num_threads`; where neither applies, a RuntimeError
    saying so (it was ignored silently on an install without threadpoolctl)."""
    try:
        import scipy.linalg.blas  # noqa: F401  (loaded first, so the limit covers it too)
        from threadpoolctl import threadpool_limits
    except ImportError:
        before = get_num_threads()  # a RuntimeError where nothing can set it
        set_num_threads(n)
        try:
            yield
        finally:
            set_num_threads(before)
        return
    with threadpool_limits(n, user_api="blas"):
        yield


def _blas_pools(who: str) -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        raise RuntimeError(f"{who}: NumPy's BLAS is not the OpenBLAS backprop can set "
                           "directly; install threadpoolctl (pip install threadpoolctl), or "
                           "set OMP_NUM_THREADS before Python starts") from None
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        raise RuntimeError(f"{who}: threadpoolctl finds no BLAS library loaded")
    return pools
