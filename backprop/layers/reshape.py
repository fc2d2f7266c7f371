"""Flatten, Unflatten and Reshape: change the per-sample shape, keep the batch axis.

Each returns views when the input is contiguous; backward reshapes ``dy`` back
to the input's shape (a pure relabelling, so the gradient is the identity).
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from .base import Layer


class _Reshaping(Layer):
    _cache_attrs = ("_x_shape", "_y_shape")

    def __init__(self, *, dtype: Any) -> None:
        super().__init__(dtype=dtype)
        self._x_shape: tuple[int, ...] | None = None
        self._y_shape: tuple[int, ...] | None = None

    def _target(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_batched(x, min_ndim=2)
        y = x.reshape(self._target(x.shape))
        if training:
            self._x_shape, self._y_shape = x.shape, y.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, y_shape = self._pop("_x_shape", "_y_shape")
        self._check_dy(dy, y_shape)
        return dy.reshape(x_shape)


class Flatten(_Reshaping):
    """Flatten the axes ``start_dim`` to ``end_dim`` into one (by default every axis but the
    batch axis), as PyTorch's ``nn.Flatten``.

    ::

        Forward:   y = x.reshape(N, -1)             x (N, d1, d2, ...), y (N, d1·d2·...)
                   (start_dim=s, end_dim=e: axes s..e, both included, become one)
        Backward:  dx = dy.reshape(x.shape)

    Args:
        start_dim: First axis to flatten (default 1); negative counts from the end, as
            PyTorch's (``Flatten(-3)`` flattens ``C, H, W`` of ``(N, C, H, W)``). The batch
            axis 0 stays: 0 is refused, and so is a negative one that reaches it.
        end_dim: Last axis to flatten, included; negative counts from the end
            (default -1, the last).
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``start_dim`` or ``end_dim`` is not an int.
        ValueError: ``start_dim`` 0 (at construction), or axes that do not fit the input
            or include its batch axis (at forward).
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Flatten: expected {name} to be an int, got {v!r}")
        if start_dim == 0:
            raise ValueError("Flatten: expected start_dim >= 1 or negative (the batch axis 0 "
                             "stays), got 0")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    @property
    def mask_passes(self) -> bool:  # type: ignore[override]
        """A padding mask ``(N, T)`` passes a flattening within each step (start_dim >= 2;
        a negative one's axis is known only with the input)."""
        return self.start_dim >= 2

    def _target(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        d = len(x_shape)
        s = self.start_dim + d if self.start_dim < 0 else self.start_dim
        e = self.end_dim + d if self.end_dim < 0 else self.end_dim
        if (s, e) == (1, len(x_shape) - 1):
            return (x_shape[0], prod(x_shape[1:]))
        if s == 0 < d:  # a negative start_dim counted back to the batch axis
            raise ValueError(f"{self!r}: expected axes after the batch axis, got start_dim "
                             f"{self.start_dim}, axis 0 of an input of shape {x_shape} (the "
                             f"batch axis stays: start_dim {1 - d} or more)")
        if not 1 <= s <= e < len(x_shape):
            raise ValueError(f"{self!r}: expected start_dim <= end_dim within the axes of the "
                             f"input, got axes {s}..{e} of an input of shape {x_shape}")
        return (*x_shape[:s], prod(x_shape[s:e + 1]), *x_shape[e + 1:])


class Reshape(_Reshaping):
    """Reshape each sample to ``shape`` (one entry may be -1, inferred).

    ::

        Forward:   y = x.reshape(N, *shape)         x (N, ...), y (N, *shape)
        Backward:  dx = dy.reshape(x.shape)

    ``Reshape((1, 8, 8))`` turns flat 64-pixel rows into one-channel images for a
    :class:`Conv2D`.

    Args:
        shape: Target shape of one sample, without the batch axis.
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``shape`` is not ints (at construction).
        ValueError: ``shape`` has more than one -1 or a size < 1 (at construction),
            or the input's per-sample size does not fit it (at forward).
    """

    def __init__(self, shape: tuple[int, ...], *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        items = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in items):
            raise TypeError(f"Reshape: expected shape as a tuple of ints, got {shape!r}")
        if sum(s == -1 for s in items) > 1 or any(s < 1 and s != -1 for s in items):
            raise ValueError(f"Reshape: expected shape of sizes >= 1 with at most one -1, "
                             f"got {shape!r}")
        self.shape = tuple(int(s) for s in items)

    def _target(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        size, known = prod(x_shape[1:]), prod(s for s in self.shape if s != -1)
        if (size % known if -1 in self.shape else size != known):
            raise ValueError(f"{self!r}: expected input with per-sample size "
                             f"{'a multiple of ' if -1 in self.shape else ''}{known}, "
                             f"got input of shape {x_shape}")
        return (x_shape[0], *(size // known if s == -1 else s for s in self.shape))


class Permute(Layer):
    """Reorder the axes of each sample (Keras' ``Permute``), the batch axis kept first.

    ::

        Forward:   y = x.transpose(0, *dims)        dims: a permutation of 1..d
        Backward:  dx = dy.transpose(0, *(argsort(dims) + 1))

    ``dims`` counts the sample's axes from 1, as Keras does (PyTorch's ``permute``
    counts the batch axis as 0; ``x.permute(0, 2, 1)`` there is ``Permute((2, 1))``
    here). ``Permute((2, 1))`` after a Dense applied to each time step of ``(N, T, C)``
    gives the ``(N, C, T)`` logits :class:`SoftmaxCrossEntropy` takes per position.
    The output is a view (not contiguous): the next layer reads it as it is. A padding
    mask ``(N, T)`` in a Sequential passes when axis 1 stays (``dims[0] == 1``); else it
    ends here, its steps no longer on axis 1 (the per-position loss's ``(N, C, T)``: give
    padded targets ``ignore_index``).

    Args:
        dims: The new order of the sample's axes, a permutation of ``1..d``.
        dtype: Input dtype (default float32).
    """

    _set_once = frozenset({"dims"})  # see Layer._set_once

    _cache_attrs = ("_y_shape",)

    def __init__(self, dims: tuple[int, ...], *, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        items = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in items):
            raise TypeError(f"Permute: expected dims as a tuple of ints, got {dims!r}")
        if not items:
            raise ValueError("Permute: expected dims of at least one axis (a permutation of "
                             "1..d), got ()")
        if sorted(items) == list(range(len(items))) and items[0] == 0:  # torch's permute
            raise ValueError(f"Permute: expected dims of the sample's axes only, counted from "
                             f"1 (the batch axis stays first, as in Keras), got {dims!r}: "
                             f"PyTorch's x.permute{tuple(items)} is Permute({tuple(items[1:])})")
        if sorted(items) != list(range(1, len(items) + 1)):
            raise ValueError(f"Permute: expected dims as a permutation of 1..{len(items)} "
                             f"(the sample's axes, counted from 1 as in Keras; the batch axis "
                             f"0 stays first), got {dims!r}")
        self.dims = tuple(int(d) for d in items)
        self._order = (0, *self.dims)
        self._inverse = tuple(int(i) for i in np.argsort(self._order))
        self._y_shape: tuple[int, ...] | None = None

    @property
    def ends_mask_unused(self) -> bool:
        """Whether a padding mask ends here unused (axis 1 moves): only the model's last
        layer may do that (see :func:`._masks.masked_forward`)."""
        return self.dims[0] != 1

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward``; a padding mask goes on if axis 1 stays, else it ends here."""
        return self.forward(x, training=training), None if self.ends_mask_unused else mask

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", *(None,) * len(self.dims))
        y = x.transpose(self._order)
        if training:
            self._y_shape = y.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y_shape = self._pop("_y_shape")
        self._check_dy(dy, y_shape)
        return dy.transpose(self._inverse)


class Unflatten(_Reshaping):
    """Split axis ``dim`` into ``unflattened_size``, as PyTorch's ``nn.Unflatten`` (the
    inverse of :class:`Flatten`).

    ::

        Forward:   y = x.reshape(*x.shape[:dim], *unflattened_size, *x.shape[dim + 1:])
                   x (N, ..., d, ...), y (N, ..., s1, s2, ..., ...)    s1·s2·... = d
        Backward:  dx = dy.reshape(x.shape)

    ``Unflatten(1, (C, H, W))`` turns ``(N, C·H·W)`` rows back into images.

    Args:
        dim: The axis to split, counting the batch axis as 0 as PyTorch does: >= 1, or
            negative from the end (the batch axis stays).
        unflattened_size: The sizes it splits into (one may be -1, inferred).
        dtype: Input dtype (default float32).

    Raises:
        TypeError: ``dim`` is not an int, ``unflattened_size`` not ints or empty.
        ValueError: ``dim`` is 0, ``unflattened_size`` has a size < 1 or more
            than one -1 (at construction); ``dim`` is no axis of the input but the batch
            axis, or the sizes do not multiply up to its size (at forward).
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...], *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Unflatten: expected dim to be an int, got {dim!r}")
        if dim == 0:
            raise ValueError("Unflatten: expected dim >= 1 or negative (the batch axis 0 "
                             "stays), got 0")
        items = tuple(unflattened_size) if isinstance(unflattened_size, (tuple, list)) else ()
        if not items or any(isinstance(s, bool) or not isinstance(s, (int, np.integer))
                            for s in items):
            raise TypeError(f"Unflatten: expected unflattened_size as a non-empty tuple of "
                            f"ints, got {unflattened_size!r}")
        if sum(s == -1 for s in items) > 1 or any(s < 1 and s != -1 for s in items):
            raise ValueError(f"Unflatten: expected unflattened_size of sizes >= 1 with at "
                             f"most one -1, got {unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), tuple(int(s) for s in items)

    @property
    def mask_passes(self) -> bool:  # type: ignore[override]
        """A padding mask ``(N, T)`` passes a split within each step (dim >= 2, or -1)."""
        return self.dim >= 2 or self.dim == -1

    def _target(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        d, sizes = self.dim + len(x_shape) if self.dim < 0 else self.dim, self.unflattened_size
        known = prod(s for s in sizes if s != -1)
        if not 1 <= d < len(x_shape) or (x_shape[d] % known if -1 in sizes
                                           else x_shape[d] != known):
            raise ValueError(f"{self!r}: expected input whose axis {self.dim} (not the batch "
                             f"axis) has the size {'a multiple of ' if -1 in sizes else ''}"
                             f"{known}, got input of shape {x_shape}")
        d_sizes = tuple(x_shape[d] // known if s == -1 else s for s in sizes)
        return (*x_shape[:d], *d_sizes, *x_shape[d + 1:])

