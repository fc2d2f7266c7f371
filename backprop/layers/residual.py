"""Residual: a skip connection around any shape-preserving block."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import boolean
from ._as_layer import as_layer
from .base import Container, Layer


class Residual(Container):
    """Skip connection ``y = x + block(x)``.

    ::

        Forward:   y = x + block(x)                 x, y: any shape, block(x).shape == x.shape
        Backward:  dx = dy + block.backward(dy)     the two paths' gradients add

    The identity path hands ``dy`` to the layers below unchanged, however deep
    the stack, which is why residual networks train where plain deep stacks
    see their gradients vanish.

    ``block`` is any layer or :class:`Sequential` whose output has its input's
    shape. Its parameters appear here as ``"block.<name>"`` (``"block.0.W"``), so
    an enclosing model's flat parameter buffer and optimizers cover them.
    ``get_config()`` holds only the dtype: saving rebuilds the block from
    :meth:`children` (``[("block", block)]``).

    Args:
        block: The residual branch ``F`` in ``y = x + F(x)``.
        dtype: Must equal the block's dtype (the default).

    Raises:
        TypeError: ``block`` is not a Layer, or ``dtype`` differs from the block's.
        ValueError: At forward, when ``block(x)`` has another shape than ``x``.
    """

    _cache_attrs = ("_x_shape",)

    def __init__(self, block: Layer, *, dtype: Any = None) -> None:
        as_layer(block, "Residual", "block")
        super().__init__(dtype=block.dtype if dtype is None else dtype)
        if block.dtype != self.dtype:
            raise TypeError(f"Residual: expected a block in {self.dtype}, got {block!r} "
                            f"in {block.dtype}")
        self.block = block
        self._x_shape: tuple[int, ...] | None = None
        self.output_mask: np.ndarray | None = None  # the block's padding mask, last forward

    def children(self) -> list[tuple[str, Layer]]:
        return [("block", self.block)]

    def __call__(self, x: np.ndarray, *, training: bool = False,
                 mask: np.ndarray | None = None) -> np.ndarray:
        return self.forward(x, training=training, mask=mask)

    @property
    def makes_mask(self) -> bool:  # type: ignore[override]
        """Whether a padding mask starts here (see :meth:`Layer.forward_masked`)."""
        return self.block.makes_mask

    def forward(self, x: np.ndarray, *, training: bool = False,
                mask: np.ndarray | None = None) -> np.ndarray:
        """``x + block(x)``; ``mask``: a padding mask ``(N, T)`` from the layers before, handed
        to the block (see :meth:`forward_masked`; the block's is then ``output_mask``)."""
        self._check_batched(x)
        if type(training) is not bool:  # "False", a str, would train the block
            training = boolean(training, "training", repr(self))
        if mask is None and not self.block.makes_mask:
            fx, self.output_mask = self.block.forward(x, training=training), None
        else:
            fx, self.output_mask = self.block.forward_masked(x, mask, training=training)
        if fx.shape != x.shape:
            self.block.clear_cache()
            raise ValueError(f"{self!r}: expected block output of the input's shape "
                             f"{x.shape}, got {fx.shape}")
        if training:
            self._x_shape = x.shape
        return x + fx

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward`` with a padding mask; returns ``(y, the mask of y)`` (see
        :meth:`Layer.forward_masked`)."""
        y = self.forward(x, training=training, mask=mask)
        return y, self.output_mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self._check_dy(dy, self._pop("_x_shape"))
        return dy + self.block.backward(dy)

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        return self.block.gemm_shapes(x_shape, True)  # dx of the block is always needed

    def get_config(self) -> dict[str, Any]:
        return {"dtype": str(self.dtype)}

    def __repr__(self) -> str:
        return f"Residual({self.block!r})"  # a container around it indents the lines
