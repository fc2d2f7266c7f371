"""The GEMM bound: how long the matrix products of a training step take alone.

:func:`gemm_time` runs each product ``(m, k, n)`` as ``np.matmul(a, b, out=c)`` on
preallocated operands, in its fastest layout; :func:`backprop.bench` puts that time
beside the measured step.
"""

from __future__ import annotations

import statistics
from time import perf_counter
from typing import Any

import numpy as np

from ._validate import float_dtype, in_range, positive_int

__all__ = ["gemm_flops", "gemm_time"]


def gemm_flops(shapes: list[tuple[int, int, int]]) -> int:
    """Floating-point operations of the products ``(m, k, n)`` in ``shapes``: ``2·m·k·n``
    each (a multiply and an add per term), summed."""
    return sum(2 * m * k * n for m, k, n in shapes)


def gemm_time(shapes: list[tuple[int, int, int]], dtype: Any = np.float32, *,
              repeats: int = 5, min_time: float = 0.02) -> float:
    """Median seconds to run every product ``(m, k, n)`` in ``shapes`` once.

    Each product is ``np.matmul(a, b, out=c)`` with ``a (m, k)``, ``b (k, n)``,
    ``c (m, n)`` allocated once, so only BLAS is timed. Layers multiply
    transposed views too (``x.T @ dy``, ``dy @ W.T``), and BLAS speed depends on
    the layout, so each shape runs in whichever of the three layouts (plain,
    ``a`` transposed, ``b`` transposed) is fastest here, and all products share
    their operand memory (a step's products share activations, hot in cache):
    a bound, not a replica.

    Args:
        shapes: The products, e.g. ``model.gemm_shapes((128, 784), input_grad=False)``.
        dtype: Float dtype of the operands.
        repeats: Measurements; the median is returned.
        min_time: Each measurement loops over ``shapes`` for at least this long.

    Raises:
        TypeError, ValueError: A shape is not three positive ints, ``dtype`` is not
            a float dtype, ``repeats`` is not an int >= 1, or ``min_time`` is not > 0.
    """
    shapes = _gemm_shapes(shapes)
    dtype = float_dtype(dtype, "gemm_time")
    repeats = positive_int(repeats, "repeats", "gemm_time")
    min_time = in_range(min_time, "min_time", "gemm_time", 0.0, float("inf"),
                        low_open=True, high_open=True)
    if not shapes:
        return 0.0
    rng = np.random.default_rng(0)
    size = max(max(m * k, k * n, m * n) for m, k, n in shapes)
    pool = [rng.random(size, dtype=np.float64).astype(dtype) for _ in range(3)]
    best = {s: _fastest_layout(s, pool, min_time / 10) for s in set(shapes)}
    ops = [best[s] for s in shapes]
    loops = _calibrate(ops, min_time)
    return statistics.median(_run(ops, loops) / loops for _ in range(repeats))


def _gemm_shapes(shapes: Any) -> list[tuple[int, int, int]]:
    """``shapes`` as a list of ``(m, k, n)`` int triples, or a named error."""
    def ints(s: Any) -> bool:
        return isinstance(s, (tuple, list)) and len(s) == 3 and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in s)

    ok = isinstance(shapes, (list, tuple)) and all(ints(s) for s in shapes)
    if not ok or any(min(s) < 1 for s in shapes):
        raise (ValueError if ok else TypeError)(
            f"gemm_time: expected shapes as a list of (m, k, n) tuples of positive ints, "
            f"got {shapes!r}")
    return [(int(m), int(k), int(n)) for m, k, n in shapes]


def _run(ops: list[tuple[np.ndarray, ...]], loops: int) -> float:
    start = perf_counter()
    for _ in range(loops):
        for a, b, c in ops:
            np.matmul(a, b, out=c)
    return perf_counter() - start


def _calibrate(ops: list[tuple[np.ndarray, ...]], min_time: float) -> int:
    """Loops that take at least ``min_time`` (the first runs double as the warm-up)."""
    loops = 1
    while (elapsed := _run(ops, loops)) < min_time:
        loops = max(2 * loops, int(loops * 1.2 * min_time / max(elapsed, 1e-9)))
    return loops


def _fastest_layout(shape: tuple[int, int, int], pool: list[np.ndarray],
                    min_time: float) -> tuple[np.ndarray, ...]:
    """Operands of one product in its fastest layout, as views of the shared ``pool``
    (every product reads the same memory, as a step's products share activations)."""
    m, k, n = shape
    a, b, c = pool
    view = lambda buf, r, s: buf[:r * s].reshape(r, s)  # noqa: E731
    out = view(c, m, n)
    layouts = [(view(a, m, k), view(b, k, n), out), (view(a, k, m).T, view(b, k, n), out),
               (view(a, m, k), view(b, n, k).T, out)]
    loops = [_calibrate([op], min_time) for op in layouts]
    times = [min(_run([op], n_loops) / n_loops for _ in range(3))
             for op, n_loops in zip(layouts, loops, strict=True)]
    return layouts[times.index(min(times))]
