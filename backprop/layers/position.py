"""PositionalEmbedding: a learned vector per position, added to a sequence of features."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from .._validate import positive_int
from ._sums import column_sum
from .base import Layer


class PositionalEmbedding(Layer):
    """Learned position embeddings added to the input (GPT's and BERT's; Keras-NLP's
    ``PositionEmbedding`` added to its input; in PyTorch ``x + pos(torch.arange(T))`` with
    ``pos = nn.Embedding(max_length, E)``), so that attention, which treats its positions
    alike, can tell them apart.

    ::

        Forward:   y = x + W[:T]                 x (N, T, E), W (max_length, E)
        Backward:  dW[:T] = dy.sum(0)   dW[T:] = 0   dx = dy

    Sequences of any length up to ``max_length`` go through; each uses the first ``T``
    rows. A model ``Embedding(V, E) -> PositionalEmbedding(T_max, E) ->
    transformer blocks`` takes token indices ``(N, T)``.

    Args:
        max_length: The longest sequence, the rows of ``W``.
        embed_dim: ``E``, the features of each position.
        init: Initializer of ``W`` (default ``'standard_normal'``, PyTorch's
            ``nn.Embedding``'s; Keras-NLP draws ``'glorot_uniform'``).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: a size < 1; in forward an input not ``(N, T, E)``, or longer than
            ``max_length``.
        TypeError: an input of another dtype than the layer's.
    """

    _cache_attrs = ("_shape",)
    mask_passes = True  # each step alone: a padding mask passes (Layer.forward_masked)

    def __init__(self, max_length: int, embed_dim: int, *, init: Any = "standard_normal",
                 dtype: Any = np.float32, rng: np.random.Generator | int | None = None) -> None:
        super().__init__(dtype=dtype)
        who = "PositionalEmbedding"
        self.max_length = positive_int(max_length, "max_length", who)
        self.embed_dim = positive_int(embed_dim, "embed_dim", who)
        self.init_param("W", init, (self.max_length, self.embed_dim),
                        initializers.make_rng(rng, who))
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x, "N", "T", self.embed_dim)
        steps = x.shape[1]
        if steps > self.max_length:
            raise ValueError(f"{self!r}: expected at most max_length={self.max_length} "
                             f"positions, got input of shape {x.shape} (build the layer "
                             f"with max_length >= {steps})")
        if training:
            self._shape = x.shape
        return x + self.params["W"][:steps]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.backward_params(dy)
        return dy

    def backward_params(self, dy: np.ndarray) -> None:
        shape = self._pop("_shape")
        self._check_dy(dy, shape)
        steps, dw = shape[1], self.grads["W"]
        rows = dy.reshape(dy.shape[0], dw[:steps].size)  # N rows, as one BLAS product
        column_sum(rows, dw[:steps].reshape(-1))  # (np.sum(axis=0) adds them one by one)
        dw[steps:] = 0.0
