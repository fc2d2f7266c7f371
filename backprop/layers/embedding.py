"""Embedding: a learnt lookup table from integer indices to vectors (PyTorch's ``Embedding``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from .._validate import boolean, check_unmasked, in_range, positive_int
from .base import Layer
from .residual import Residual

# dW is a sum of dy rows per index. np.add.at costs ~9 ns per element of dy, a sparse
# one-hot matrix times dy (scipy, a runtime dependency) ~50 µs to set up: add.at up to
# 8,192 elements (128 rows of 64: 120 µs against 162 with V x D = 10,000 x 64), the
# product beyond (1,600 rows of 64: 950 -> 200 µs). When the table is much taller than
# the rows (V > 4 M) only the touched rows are summed and written (100,000 x 128 with
# 6,400 rows: 9.5 -> 2.7 ms).
_FEW = 8192
_TALL = 4


class Embedding(Layer):
    """Row ``x`` of the table ``W`` for every index ``x``: ``y = W[x]``.

    ::

        Forward:   y[n, ..., :] = W[x[n, ...], :]     x (N, *) indices, W (V, D), y (N, *, D)
        Backward:  dW[v] = sum of dy[n, ..., :] over the positions where x[n, ...] = v
                   (dW[padding_idx] = 0);  dx = 0 (indices have no gradient)

    A one-hot row times ``W`` is the same product, so this is a Dense layer without
    bias on one-hot inputs, computed by lookup. Indices are whole numbers in
    ``[0, V)``: an integer array, or floats holding whole numbers. A model that starts
    with an Embedding does not cast its input to floats: ``fit``, ``evaluate`` and
    ``predict`` check the indices before the first batch and keep them as integers.
    An Embedding after other layers gets their floats, which hold whole numbers exactly
    only up to ``2**24`` in float32: it refuses them for a taller table.

    As PyTorch's ``Embedding``: ``W`` starts as N(0, 1) draws, and the row
    ``padding_idx`` (negative counts from the end) starts at zero and never learns
    (its gradient is 0 by that rule, not the derivative: ``check_gradients`` checks
    that row against the rule, see :meth:`frozen_entries`). Keras'
    ``Embedding(input_dim, output_dim)`` is ``Embedding(num_embeddings, embedding_dim,
    init='uniform')``.

    With ``max_norm`` (PyTorch's ``embedding_renorm_``), every forward first rescales,
    in ``W`` itself, each row it reads whose ``norm_type``-norm exceeds ``max_norm``:
    ``W[v] *= max_norm / (norm(W[v]) + 1e-7)`` (the norm in ``W``'s dtype, as PyTorch's,
    the factor computed in float64 and cast to ``W``'s dtype). That edit is not
    differentiated: the backward is the lookup's. With
    ``scale_grad_by_freq``, each position's ``dy`` counts ``1 / c(v)``, ``c(v)`` the
    number of times its index ``v`` occurs in the batch (``dW[v]`` becomes the mean: a
    rule, not the derivative, as PyTorch's; ``check_gradients`` would report it).

    With ``mask_zero`` (Keras'), index 0 is padding: in a :class:`~backprop.Sequential`
    the layer hands the mask ``x != 0`` of its ``(N, T)`` indices to the layers after it
    (a recurrent layer then skips the padded steps, attention ignores those keys; see
    :meth:`Layer.forward_masked`). The vectors themselves are unchanged (row 0 is still
    looked up; with ``padding_idx=0`` it is zero), and row 0 gets no gradient through a
    recurrent layer, which passes none to padded steps; attention still computes its
    padded queries' outputs, so it gets theirs unless a recurrent layer follows.

    Args:
        num_embeddings: ``V``, the number of rows (the vocabulary's size).
        embedding_dim: ``D``, the length of each vector.
        padding_idx: A row kept at zero, with no gradient (default None).
        max_norm: Rows read with a larger norm are scaled down to it, in ``W``
            (default None: never).
        norm_type: The ``p`` of the p-norm for ``max_norm`` (default 2.0; ``inf`` is
            the largest magnitude).
        scale_grad_by_freq: Divide each row's gradient by its index's count in the
            batch (default False).
        init: Initializer of ``W`` (default ``"standard_normal"``: N(0, 1), as PyTorch;
            Keras' is ``"uniform"``, U(-0.05, 0.05)).
        mask_zero: Index 0 marks padding, masked in the layers after it (default False).
        dtype: Parameter dtype (default float32).
        rng: Generator or seed for the initial weights.
    """

    _set_once = frozenset({"num_embeddings", "embedding_dim"})  # see Layer._set_once

    _cache_attrs = ("_idx",)
    mask_passes = True  # each index alone: a padding mask passes (Layer.forward_masked)

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: int | None = None, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, *,
                 init: Any = "standard_normal", mask_zero: bool = False,
                 dtype: Any = np.float32, rng: np.random.Generator | int | None = None
                 ) -> None:
        super().__init__(dtype=dtype)
        self.mask_zero = boolean(mask_zero, "mask_zero", "Embedding")
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim", "Embedding")
        self.max_norm = (None if max_norm is None else
                         in_range(max_norm, "max_norm (or None)", "Embedding", 0.0,
                                  low_open=True))
        self.norm_type = _norm_type(norm_type)
        self.scale_grad_by_freq = boolean(scale_grad_by_freq, "scale_grad_by_freq",
                                          "Embedding")
        if padding_idx is not None:
            v = self.num_embeddings
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"Embedding: expected padding_idx to be an int or None, got "
                                f"{padding_idx!r}")
            if not -v <= padding_idx < v:
                raise ValueError(f"Embedding: expected padding_idx in [{-v}, {v}), got "
                                 f"{padding_idx}")
            padding_idx = int(padding_idx) % v
        self.padding_idx = padding_idx
        shape = (self.num_embeddings, self.embedding_dim)
        self.init_param("W", init, shape, initializers.make_rng(rng, "Embedding"))
        if padding_idx is not None:
            self.params["W"][padding_idx] = 0
        self._idx: np.ndarray | None = None

    def frozen_entries(self, key: str) -> Any:
        """The row ``padding_idx`` of ``W`` (its gradient is 0 by rule), else None."""
        return self.padding_idx if key == "W" else None

    def indices(self, x: Any) -> np.ndarray:
        """``x`` as an intp array of indices in ``[0, V)`` (no copy if it is one), or an
        error naming what is wrong."""
        check_unmasked(x, self, "indices")  # (self: its repr only in an error, 36 us)
        kind = getattr(getattr(x, "dtype", None), "kind", None)
        if kind is None or getattr(x, "ndim", 0) < 1:
            what = type(x).__name__ if kind is None else f"a 0-d array {x!r}"
            raise TypeError(f"{self!r}: expected indices as an array (N, ...), got {what}")
        if kind not in "iuf":
            raise TypeError(f"{self!r}: expected integer indices, got dtype {x.dtype}")
        v = self.num_embeddings
        if kind == "f":
            if not np.isfinite(x).all():
                raise ValueError(f"{self!r}: expected whole-number indices, got "
                                 f"{x[~np.isfinite(x)].flat[0].item()!r}")
            if v > 2 ** (np.finfo(x.dtype).nmant + 1):  # 2**24 in float32
                raise ValueError(f"{self!r}: expected integer indices for a table of {v} "
                                 f"rows, got {x.dtype}, which holds whole numbers exactly "
                                 f"only up to 2**{np.finfo(x.dtype).nmant + 1}: pass "
                                 "integer indices (an Embedding after other layers gets "
                                 "their float output: put it first in the model)")
        if x.size:  # compared in x's own dtype: no cast wraps an unsigned value first
            low, high = x.min(), x.max()
            if low < 0 or high >= v:
                bad = low if low < 0 else high
                raise ValueError(f"{self!r}: expected indices in [0, {v}), got {bad.item()!r}")
        idx = np.asarray(x).astype(np.intp, copy=False)  # np.matrix rows stay 2-D in reshapes
        if kind == "f" and not np.array_equal(idx, x):
            bad = x[idx != x].flat[0].item()
            raise ValueError(f"{self!r}: expected whole-number indices, got {bad!r}")
        return idx

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        idx = self.indices(x)
        if self.max_norm is not None:
            self._renorm(idx)
        y = np.take(self.params["W"], idx, axis=0)
        if training:
            self._idx = idx
        return y

    @property
    def makes_mask(self) -> bool:  # type: ignore[override]
        """Whether a padding mask starts here (see :meth:`Layer.forward_masked`)."""
        return self.mask_zero

    def compute_mask(self, x: Any) -> np.ndarray | None:
        """The padding mask of indices ``x (N, T)``: ``x != 0`` with ``mask_zero`` (Keras'
        ``compute_mask``), else None."""
        if not self.mask_zero:
            return None
        if getattr(x, "ndim", None) != 2:
            raise ValueError(f"{self!r}: mask_zero masks the steps of sequences: expected "
                             f"indices of shape (N, T), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        return np.asarray(x) != 0

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward`` with a padding mask; returns ``(y, the mask of y)`` (see
        :meth:`Layer.forward_masked`)."""
        y = self.forward(x, training=training)  # checks the indices first
        own = self.compute_mask(x)
        if own is not None:
            mask = own if mask is None else mask & own
        return y, mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        idx = self._pop("_idx")
        self._param_grad(idx, dy)
        return np.zeros(idx.shape, self.dtype)

    def backward_params(self, dy: np.ndarray) -> None:
        self._param_grad(self._pop("_idx"), dy)

    def _param_grad(self, idx: np.ndarray, dy: np.ndarray) -> None:
        self._check_dy(dy, (*idx.shape, self.embedding_dim))
        grad, rows = self.grads["W"], idx.reshape(-1)
        dy = dy.reshape(-1, self.embedding_dim)
        m = rows.size
        if self.scale_grad_by_freq and m:  # each position's dy times 1 / c(its index)
            counts = np.bincount(rows)[rows]  # of the read indices only: no 1 / 0
            dy = dy * np.reciprocal(counts.astype(np.float64)).astype(self.dtype)[:, None]
        if dy.size <= _FEW:
            grad.fill(0)
            np.add.at(grad, rows, dy)
        else:
            from scipy import sparse  # the one user of scipy.sparse: imported when needed

            ones = np.ones(m, self.dtype)
            if self.num_embeddings > _TALL * m:  # only the touched rows
                touched, which = np.unique(rows, return_inverse=True)
                one_hot = sparse.csr_matrix((ones, (which, np.arange(m))),
                                            shape=(touched.size, m))
                grad.fill(0)
                grad[touched] = one_hot @ dy
            else:
                one_hot = sparse.csr_matrix((ones, (rows, np.arange(m))),
                                            shape=(self.num_embeddings, m))
                grad[...] = one_hot @ dy
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0


    def _renorm(self, idx: np.ndarray) -> None:
        """Scale the rows ``idx`` reads whose norm exceeds ``max_norm`` down to it, in
        ``W`` (PyTorch's ``embedding_renorm_``: norm in W's dtype, compared and ``+ 1e-7``
        in float64: a float32 row renormed to ``max_norm = 1e-3`` reads a norm of
        ``float32(1e-3) > 1e-3`` and shrinks again, as in PyTorch)."""
        w, rows = self.params["W"], np.unique(idx)
        norms = np.linalg.norm(w[rows], ord=self.norm_type, axis=1).astype(np.float64)
        big = norms > self.max_norm  # a NaN norm is left, as in PyTorch
        if big.any():
            rows = rows[big]
            scale = (self.max_norm / (norms[big] + 1e-7)).astype(self.dtype)
            w[rows] *= scale[:, None]


def _norm_type(p: Any) -> float:
    """``norm_type``: a number > 0, ``inf`` included (PyTorch's p-norms)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"Embedding: expected norm_type to be a number, got {p!r}")
    if not float(p) > 0:
        raise ValueError(f"Embedding: expected norm_type > 0 (inf allowed), got {p!r}")
    return float(p)


def index_layer(layer: Layer) -> Embedding | None:
    """The Embedding that takes ``layer``'s input (itself, or a model's first layer), or
    None: such a model's input is indices, not the model's floats."""
    while not isinstance(layer, Embedding):
        children = layer.children()
        if not children or isinstance(layer, Residual):  # x + block(x): never indices
            return None
        layer = children[0][1]
    return layer
