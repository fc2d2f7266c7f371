"""Multi-head self-attention over batch-first sequences ``(N, T, E)``: PyTorch's
``nn.MultiheadAttention(E, H, batch_first=True)`` called as ``mha(x, x, x)`` (with its
``key_padding_mask`` and ``attn_mask``).

Every product is one GEMM: the query, key and value projections of all ``N·T`` rows
together, the scores and the weighted values of all ``N·H`` (sample, head) pairs as one
batched ``np.matmul`` over ``(N, H, T, d)``, and the output projection over all rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import initializers
from .._validate import boolean, in_range, positive_int
from ._attention import add_masks, masked_softmax_, refuse_call, refuse_torch_options
from ._sums import column_sum
from .base import Layer


class MultiheadAttention(Layer):
    """Multi-head scaled dot-product self-attention (PyTorch's
    ``nn.MultiheadAttention(E, H, batch_first=True)`` as ``mha(x, x, x, need_weights=False)``).

    ::

        Forward:   [q, k, v] = x @ W_in + b_in       x (N, T, E), W_in (E, 3E), b_in (3E,)
                   q, k, v split into H heads (N, H, T, d), d = E / H
                   S = q @ kᵀ / sqrt(d) + masks      (N, H, T, T); causal: S[i, j>i] = -inf
                   P = softmax(S) over the keys      (max-subtracted)
                   P' = P * mask  (training; mask = (u >= dropout) / (1 - dropout), u ~ U[0, 1))
                   O = P' @ v (N, H, T, d), heads concatenated (N, T, E)
                   y = O @ W_out + b_out             W_out (E, E), b_out (E,)
        Backward:  dW_out = O.T @ dy   db_out = dy.sum(0)   dO = dy @ W_out.T   (over N·T rows)
                   dv = P'ᵀ @ dO   dP = (dO @ vᵀ) * mask   dS = P * (dP - rowsum(dP * P))
                   dq = dS @ k / sqrt(d)   dk = dSᵀ @ q / sqrt(d)
                   G = [dq, dk, dv] as rows (N·T, 3E), the heads side by side again
                   dW_in = x.T @ G   db_in = G.sum(0)   dx = G @ W_in.T

    Parameters in Dense's convention (``x @ W``): ``W_in`` is PyTorch's ``in_proj_weight``
    transposed (its columns: the query, key and value projections, in that order),
    ``b_in`` its ``in_proj_bias``, ``W_out`` ``out_proj.weight`` transposed and ``b_out``
    ``out_proj.bias``. Initialised as PyTorch's: ``W_in`` Glorot-uniform as one matrix,
    ``W_out`` U(±1/sqrt(E)) (``nn.Linear``'s default), both biases 0. A training forward
    keeps ``q``, ``k``, ``v``, ``P`` (and with dropout ``P'`` and its mask) and ``O``, so
    backward recomputes nothing; ``layer.cache['p']`` shows the attention weights.

    Masks at call time, PyTorch's (``mha(x, x, x, key_padding_mask=m)``):
    ``layer(x, key_padding_mask=m)`` with ``m (N, T)``, True where a key is padding, and
    ``attn_mask`` ``(T, T)`` or ``(N·H, T, T)``, True where query ``i`` may not attend to
    key ``j``; a float mask is added to the scores instead. A query whose every key is
    masked gets weights 0 (its output is ``b_out``), as PyTorch's ``need_weights=False``
    call. The masks only change ``S`` (``P`` is 0 where they are -inf), so backward needs
    nothing more. In a Sequential, a padding mask from ``Embedding(mask_zero=True)`` or
    ``Masking`` (True at real steps) is applied as ``key_padding_mask`` and passed on.

    One input, one output: it goes in a :class:`Sequential`. A pre-norm transformer block
    is ``Residual(Sequential([LayerNorm(E), MultiheadAttention(E, H)]))`` then
    ``Residual(Sequential([LayerNorm(E), Dense(E, 4 * E), GELU(), Dense(4 * E, E)]))``.

    Args:
        embed_dim: ``E``, the features of each position (input and output).
        num_heads: ``H``, the heads; ``E`` must be divisible by it (each head takes
            ``d = E / H`` features). Keras' ``key_dim`` is ``d``.
        bias: Learn ``b_in`` and ``b_out`` (default True).
        causal: Each position attends to itself and earlier ones only (PyTorch's
            ``is_causal=True`` with the causal ``attn_mask``; Keras' ``use_causal_mask``).
        dropout: Probability of zeroing each attention weight in training, in [0, 1)
            (PyTorch's ``dropout``); the kept ones are scaled by ``1 / (1 - dropout)``.
            Masks come from ``rng``; inference never drops.
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights and the dropout masks.
        kdim, vdim, batch_first, add_bias_kv, add_zero_attn: PyTorch's options, accepted
            only at their self-attention, batch-first values (``None``, ``None``, ``True``,
            ``False``, ``False``).

    Raises:
        ValueError: a size < 1, ``embed_dim`` not divisible by ``num_heads``, ``dropout``
            outside [0, 1), another PyTorch option (the message says what is supported);
            in forward an input not ``(N, T, E)`` or with ``T = 0``, a mask of another
            shape.
        TypeError: an input of another dtype than the layer's, a mask neither boolean nor
            float; separate query, key and value inputs or PyTorch's other call arguments
            (``need_weights``, ``is_causal``).
    """

    _set_once = frozenset({"embed_dim", "num_heads", "bias"})  # see Layer._set_once

    _cache_attrs = ("_x", "_qkv", "_p", "_o", "_dropped", "_mask")

    def __init__(self, embed_dim: int, num_heads: int, *, bias: bool = True,
                 causal: bool = False, dropout: float = 0.0, dtype: Any = np.float32,
                 rng: np.random.Generator | int | None = None, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = True, add_bias_kv: bool = False,
                 add_zero_attn: bool = False) -> None:
        super().__init__(dtype=dtype)
        who = type(self).__name__
        self.embed_dim = positive_int(embed_dim, "embed_dim", who)
        self.num_heads = positive_int(num_heads, "num_heads", who)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{who}: expected embed_dim divisible by num_heads (each head takes "
                             f"embed_dim / num_heads features), got embed_dim={embed_dim} and "
                             f"num_heads={num_heads}")
        self.bias = boolean(bias, "bias", who)
        self.causal = boolean(causal, "causal", who)
        self.dropout = in_range(dropout, "dropout", who, 0.0, 1.0, high_open=True)
        refuse_torch_options(self.embed_dim, kdim, vdim, batch_first, add_bias_kv,
                             add_zero_attn)
        self.rng = initializers.make_rng(rng, who)  # kept: the dropout masks draw from it
        e = self.embed_dim
        self.init_param("W_in", "glorot_uniform", (e, 3 * e), self.rng)  # PyTorch's xavier
        self.init_param("W_out", "torch_uniform", (e, e), self.rng)  # nn.Linear's U(±1/√E)
        if self.bias:
            self.init_param("b_in", "zeros", (3 * e,), self.rng)
            self.init_param("b_out", "zeros", (e,), self.rng)
        self._x: np.ndarray | None = None  # the input (N, T, E)
        self._qkv: np.ndarray | None = None  # q, k, v stacked: (3, N, H, T, d)
        self._p: np.ndarray | None = None  # the attention weights P (N, H, T, T)
        self._o: np.ndarray | None = None  # the heads' outputs concatenated, as rows (N·T, E)
        self._dropped: np.ndarray | None = None  # P' = P * mask (training with dropout)
        self._mask: np.ndarray | None = None  # the scaled dropout mask (N, H, T, T)

    def __call__(self, x: np.ndarray, *others: Any, training: bool = False,
                 key_padding_mask: Any = None, attn_mask: Any = None,
                 **options: Any) -> np.ndarray:
        return self.forward(x, *others, training=training, key_padding_mask=key_padding_mask,
                            attn_mask=attn_mask, **options)

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """In a Sequential with a padding mask (``Embedding(mask_zero=True)``, ``Masking``):
        the padded steps are masked as keys (``key_padding_mask = ~mask``); the mask goes on."""
        if mask is None:
            return self.forward(x, training=training), None
        return self.forward(x, training=training, key_padding_mask=~mask), mask

    # -- forward ------------------------------------------------------------------
    def forward(self, x: np.ndarray, *others: Any, training: bool = False,
                key_padding_mask: Any = None, attn_mask: Any = None,
                **options: Any) -> np.ndarray:
        if others or options:  # PyTorch's mha(q, k, v, need_weights=...): said what to do
            refuse_call(repr(self), others, options)
        training = training if type(training) is bool else boolean(training, "training",
                                                                    repr(self))
        n, steps = self._check_sequence(x, self.embed_dim)
        e, h = self.embed_dim, self.num_heads
        qkv = self._project(x)
        q, k, v = qkv
        s = np.matmul(q, k.swapaxes(-1, -2))  # (N, H, T, T): every (sample, head) at once
        s *= 1.0 / math.sqrt(e // h)
        if key_padding_mask is not None or attn_mask is not None:
            add_masks(self, s, key_padding_mask, attn_mask)
        p = masked_softmax_(s, self.causal)
        dropped, mask = p, None
        if training and self.dropout > 0.0:
            mask = self.rng.random(p.shape, dtype=self.dtype)  # drawn as Dropout draws
            np.greater_equal(mask, self.dropout, out=mask, casting="unsafe")
            mask *= 1.0 / (1.0 - self.dropout)
            dropped = p * mask
        o = np.matmul(dropped, v).transpose(0, 2, 1, 3).reshape(n * steps, e)  # heads side by side
        y = o @ self.params["W_out"]
        if self.bias:
            y += self.params["b_out"]
        if training:  # (no mask: None, not an earlier forward's)
            self._x, self._qkv, self._p, self._o = x, qkv, p, o
            self._dropped, self._mask = (dropped, mask) if mask is not None else (None, None)
        return y.reshape(n, steps, e)

    def _project(self, x: np.ndarray) -> np.ndarray:
        """``[q, k, v] = x @ W_in + b_in`` for all ``N·T`` rows in one GEMM, split into
        heads: ``(3, N, H, T, d)``, contiguous (each head's ``(T, d)`` block in a row)."""
        n, steps, e = x.shape
        h = self.num_heads
        qkv = x.reshape(n * steps, e) @ self.params["W_in"]
        if self.bias:
            qkv += self.params["b_in"]
        return np.ascontiguousarray(qkv.reshape(n, steps, 3, h, e // h).transpose(2, 0, 3, 1, 4))

    # -- backward -----------------------------------------------------------------
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward(dy, True)  # type: ignore[return-value]

    def backward_params(self, dy: np.ndarray) -> None:
        self._backward(dy, False)  # the first layer: no dx, one GEMM fewer

    def _backward(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        x, qkv, p, o = self._pop("_x", "_qkv", "_p", "_o")
        n, steps, e = x.shape
        self._check_dy(dy, (n, steps, e))
        dropped, mask = self._dropped, self._mask  # None without dropout
        self._dropped = self._mask = None
        h, scale = self.num_heads, 1.0 / math.sqrt(e // self.num_heads)
        rows = dy.reshape(n * steps, e)
        np.matmul(o.T, rows, out=self.grads["W_out"])
        if self.bias:
            column_sum(rows, self.grads["b_out"])  # N·T rows, blocked (see Dense)
        d_o = (rows @ self.params["W_out"].T).reshape(n, steps, h, e // h).transpose(0, 2, 1, 3)
        q, k, v = qkv
        d_qkv = np.empty_like(qkv)
        dq, dk, dv = d_qkv
        np.matmul((p if dropped is None else dropped).swapaxes(-1, -2), d_o, out=dv)
        ds = np.matmul(d_o, v.swapaxes(-1, -2))  # dP' (N, H, T, T), then dP, then dS
        if mask is not None:
            ds *= mask
        ds -= np.einsum("...i,...i->...", ds, p)[..., None]  # softmax: P * (dP - rowsum(dP*P))
        ds *= p
        ds *= scale
        np.matmul(ds, k, out=dq)
        np.matmul(ds.swapaxes(-1, -2), q, out=dk)
        # back to rows (N·T, 3E) in W_in's column order: [q heads, k heads, v heads]
        g = d_qkv.transpose(1, 3, 0, 2, 4).reshape(n * steps, 3 * e)
        np.matmul(x.reshape(n * steps, e).T, g, out=self.grads["W_in"])
        if self.bias:
            column_sum(g, self.grads["b_in"])
        if not need_dx:
            return None
        return (g @ self.params["W_in"].T).reshape(n, steps, e)

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        n, steps, e = x_shape
        rows, d = n * steps, e // self.num_heads
        # a batched product over the N·H (sample, head) pairs counted as one GEMM of its
        # arithmetic: N·H products (T, k, c) as one (N·H·T, k, c)
        pairs = n * self.num_heads * steps
        shapes = [(rows, e, 3 * e), (pairs, d, steps), (pairs, steps, d), (rows, e, e)]
        shapes += [(e, rows, e), (rows, e, e)]  # dW_out = O.T @ dy, dO = dy @ W_out.T
        shapes += [(pairs, steps, d), (pairs, d, steps), (pairs, steps, d), (pairs, steps, d)]
        shapes += [(e, rows, 3 * e)]  # dW_in = x.T @ d[q, k, v]; above: dv, dP, dq, dk
        return shapes + [(rows, 3 * e, e)] if input_grad else shapes  # dx = d[q,k,v] @ W_in.T
