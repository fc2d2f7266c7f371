"""The matrix products of a container of one's own, for :func:`~backprop.bench`'s GEMM
bound (backprop's containers list theirs themselves).

One inference forward on zeros, with each child's ``forward`` wrapped for the call,
records the input shape of every call to a child (twice for a child called twice);
each child then lists its own products for that shape (a nested container of one's own
walks its children the same way). Without this a container holding Dense layers read
as having no products at all: a bound near 0 and a fraction near 0 %.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_MISSING = object()


def children_gemm_shapes(container: Any, x_shape: tuple[int, ...],
                         input_grad: bool) -> list[tuple[int, int, int]]:
    """The products ``(m, k, n)`` of every child call in one forward of an ``x_shape``
    input; a child given the container's own input skips its ``dx`` product when
    ``input_grad`` is False and both the container and the child have a ``backward_params``
    of their own (see :func:`runs_dx`). ``[]`` when no forward on zeros runs (floats, then
    ints for a container that starts with an Embedding)."""
    from ._stateful import states_kept  # here: _stateful imports base, which imports us

    input_grad = runs_dx(container, input_grad)
    calls: list[tuple[Any, tuple[int, ...], bool]] = []
    for dtype in (container.dtype, np.int64):
        x = np.zeros(x_shape, dtype)
        saved = [(child, child.__dict__.get("forward", _MISSING))
                 for _, child in container.children()]
        for child, _ in saved:
            child.forward = _recorder(child, child.forward, x, calls)
        try:
            with states_kept(container):
                container.forward(x)
            break
        except (TypeError, ValueError, IndexError):
            calls.clear()
        finally:
            for child, before in saved:
                if before is _MISSING:
                    del child.forward
                else:
                    child.forward = before
    return [s for child, shape, first in calls
            for s in child.gemm_shapes(shape, runs_dx(child, input_grad or not first))]


def runs_dx(layer: Any, input_grad: bool) -> bool:
    """Whether ``layer``'s ``dx`` product runs when its caller asks for ``dx`` only if
    ``input_grad``: the caller then calls ``backward_params``, and Layer's default one
    (a Sequential's, a Residual's, a container of one's own without one) runs the full
    ``backward``, ``dx`` included."""
    from .base import Layer  # here: base imports us

    return input_grad or type(layer).backward_params is Layer.backward_params


def _recorder(child: Any, forward: Any, x: np.ndarray, calls: list) -> Any:
    def record(inp: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((child, np.shape(inp), inp is x))
        return forward(inp, *args, **kwargs)
    return record
