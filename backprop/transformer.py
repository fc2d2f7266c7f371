"""Transformer encoder blocks: PyTorch's ``nn.TransformerEncoderLayer`` and
``nn.TransformerEncoder`` (``batch_first=True``), built as :class:`Sequential` models of
the existing layers.

They are functions that return a ``Sequential``, not classes: every sub-layer keeps its
own cache and gradients (post-norm, ``block[0].block[0].cache['p']`` is the attention
weights), and saving, loading, the gradient checker, ``trace`` and ``summary`` see an
ordinary model, so nothing new is needed for them. ``from_torch`` pairs PyTorch's parameter
order (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``) with the block's.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from . import initializers
from ._validate import boolean, fits, float_dtype, in_range, positive_int
from .layers import GELU, Dense, Dropout, LayerNorm, MultiheadAttention, ReLU, Residual
from .layers._as_layer import as_layer
from .layers.base import Layer
from .sequential import Sequential

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}  # GELU(): the exact erf form, torch's "gelu"


def TransformerEncoderLayer(  # a PyTorch class's name: it builds one block, as a model
        d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        activation: str | Layer = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False,
        bias: bool = True, causal: bool = False, batch_first: bool = True,
        dtype: Any = np.float32, rng: np.random.Generator | int | None = None) -> Sequential:
    """One transformer encoder block, PyTorch's ``nn.TransformerEncoderLayer(d_model, nhead,
    ..., batch_first=True)``, as a :class:`Sequential` on ``x (N, T, E)``, ``E = d_model``.

    ::

        post-norm (norm_first=False, the default), PyTorch's layers in brackets:
            x = norm1(x + drop(attn(x)))                          [self_attn, dropout1]
            x = norm2(x + drop(W2(drop(act(W1(x))))))    [linear1, dropout, linear2, dropout2]
          = Sequential([Residual(Sequential([attn, Dropout])), LayerNorm,
                        Residual(Sequential([Dense(E, F), act, Dropout, Dense(F, E),
                                             Dropout])), LayerNorm])
        pre-norm (norm_first=True):
            x = x + drop(attn(norm1(x)))      x = x + drop(W2(drop(act(W1(norm2(x))))))
          = Sequential([Residual(Sequential([LayerNorm, attn, Dropout])),
                        Residual(Sequential([LayerNorm, Dense(E, F), act, Dropout,
                                             Dense(F, E), Dropout]))])
        Backward:  each layer's own; a Residual adds its two paths' gradients

    ``attn`` is ``MultiheadAttention(E, nhead, dropout=dropout)`` (PyTorch drops attention
    weights with the same rate), ``F = dim_feedforward``. Initialised as PyTorch's: the
    attention as its ``nn.MultiheadAttention``, the Dense layers as ``nn.Linear`` (weight
    and bias U(±1/sqrt(fan_in))), the norms at gamma 1, beta 0; the draws come from
    ``rng``, so the numbers differ from torch's (``from_torch`` loads torch's own).

    ``from_torch`` loads an ``nn.TransformerEncoderLayer``'s weights; its ``norm_first``,
    ``activation`` and ``nhead`` are not in a state dict, so build the block with the
    module's (a post-norm module's weights load into a pre-norm block without a word).

    PyTorch's call-time masks: ``block(x, src_key_padding_mask=p)`` (``(N, T)``, True at
    padding) works as PyTorch's, or the mask of an ``Embedding(mask_zero=True)`` before it;
    ``src_mask``/``mask`` (the attention mask) is refused: ``causal=True`` is the causal
    one.

    Args:
        d_model: ``E``, the features of each position (input and output).
        nhead: The attention heads; ``d_model`` must be divisible by it.
        dim_feedforward: ``F``, the hidden width of the feed-forward part.
        dropout: The rate of every dropout in the block, the attention's included, in
            [0, 1). Masks come from ``rng``; inference never drops.
        activation: ``"relu"`` or ``"gelu"`` (exact, erf), or a new backprop activation
            layer for this block (``GELU(approximate="tanh")``, as PyTorch takes a module).
        layer_norm_eps: The norms' ``eps`` (>= 0, see :class:`LayerNorm`).
        norm_first: Pre-norm (normalise each part's input) instead of post-norm.
        bias: Biases in the Dense layers, the attention and the norms (``beta``); False
            removes them all, as PyTorch's ``bias=False``.
        causal: Each position attends to itself and earlier ones only (PyTorch's
            ``src_mask=generate_square_subsequent_mask(T), is_causal=True``).
        batch_first: Only True (input ``(N, T, E)``).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights and the dropout masks (one
            Generator shared by the block's layers).

    Returns:
        The block as a ``Sequential`` (train it, nest it, save it as any model).

    Raises:
        ValueError: a size < 1, ``d_model`` not divisible by ``nhead``, ``dropout``
            outside [0, 1), ``layer_norm_eps`` < 0, an unknown activation name, or
            ``batch_first=False``.
        TypeError: an option of the wrong type (an activation function rather than a
            name or a Layer), a dtype that is not a float.
    """
    who = "TransformerEncoderLayer"
    e, h = positive_int(d_model, "d_model", who), positive_int(nhead, "nhead", who)
    if e % h:
        raise ValueError(f"{who}: expected d_model divisible by nhead (each head takes "
                         f"d_model / nhead features), got d_model={d_model} and nhead={nhead}")
    f = positive_int(dim_feedforward, "dim_feedforward", who)
    rate = in_range(dropout, "dropout", who, 0.0, 1.0, high_open=True)
    eps = in_range(layer_norm_eps, "layer_norm_eps", who, 0.0)
    norm_first, bias = boolean(norm_first, "norm_first", who), boolean(bias, "bias", who)
    causal = boolean(causal, "causal", who)
    if not boolean(batch_first, "batch_first", who):
        raise ValueError(f"{who}: expected batch_first=True (input (N, T, E)), got False; "
                         f"transpose PyTorch's sequence-first (T, N, E) input with "
                         f"x.transpose(1, 0, 2)")
    dt = float_dtype(dtype, who)
    act = _activation(activation, dt, who)
    rng = initializers.make_rng(rng, who)

    def drop() -> Dropout:
        return Dropout(rate, rng=rng, dtype=dt)

    def norm() -> LayerNorm:
        return LayerNorm(e, eps, bias=bias, dtype=dt)

    def linear(n_in: int, n_out: int) -> Dense:  # nn.Linear's init, weight and bias
        return Dense(n_in, n_out, bias=bias, init="torch_uniform", bias_init="torch_uniform",
                     dtype=dt, rng=rng)

    # built in PyTorch's order (self_attn, linear1, linear2): the draws from rng in that order
    attention = [MultiheadAttention(e, h, bias=bias, causal=causal, dropout=rate, dtype=dt,
                                    rng=rng), drop()]
    w1, w2 = linear(e, f), linear(f, e)
    feedforward = [w1, act, drop(), w2, drop()]
    if norm_first:
        return Sequential([Residual(Sequential([norm(), *attention])),
                           Residual(Sequential([norm(), *feedforward]))])
    return Sequential([Residual(Sequential(attention)), norm(),
                       Residual(Sequential(feedforward)), norm()])


def TransformerEncoder(encoder_layer: Layer, num_layers: int,  # PyTorch's name, as above
                       norm: Layer | None = None) -> Sequential:
    """A stack of ``num_layers`` copies of ``encoder_layer``, then ``norm`` if given:
    PyTorch's ``nn.TransformerEncoder(encoder_layer, num_layers, norm)``.

    ::

        Forward:   y = norm(layer_k(... layer_1(x)))      each layer_i a copy of encoder_layer
        Backward:  the Sequential's delta recursion through the copies

    As PyTorch's, the copies are deep copies: each has its own weights, all starting
    from ``encoder_layer``'s values (``encoder_layer`` itself is not in the stack). Each
    copy gets its own Generator, seeded from the layer's and its place, so the copies draw
    different dropout masks, none of them those of another layer that shares the
    original Generator.

    Args:
        encoder_layer: The block to copy (a :func:`TransformerEncoderLayer`, or any layer
            whose output has its input's shape).
        num_layers: The copies, >= 1.
        norm: A layer after the stack (``LayerNorm(d_model)``, PyTorch's ``norm``), or None.

    Returns:
        ``Sequential([copy_1, ..., copy_k])``, with ``norm`` last when given.

    Raises:
        TypeError: ``encoder_layer`` or ``norm`` is not a backprop Layer; ``num_layers``
            not an int.
        ValueError: ``num_layers`` < 1. MemoryError: copies past this machine's memory.
    """
    who = "TransformerEncoder"
    layer = as_layer(encoder_layer, who, "encoder_layer")
    n = positive_int(num_layers, "num_layers", who)
    fits(who, (n, max(layer.num_params, 1), 2), layer.dtype, None,  # weights, gradients
         f"num_layers {n:,} copies, parameters")
    layers = [_clone(layer, k) for k in range(n)]
    if norm is not None:
        layers.append(as_layer(norm, who, "norm"))
    return Sequential(layers)


def _activation(activation: Any, dtype: np.dtype, who: str) -> Layer:
    if isinstance(activation, Layer):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"{who}: expected activation 'relu', 'gelu' or a backprop Layer "
                        f"(GELU(approximate='tanh')), got {activation!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{who}: expected activation 'relu' or 'gelu' (or a backprop "
                         f"activation Layer), got {activation!r}")
    return _ACTIVATIONS[activation](dtype=dtype)


def _clone(layer: Layer, k: int) -> Layer:
    """A deep copy of ``layer`` with new Generators (seeded from the copied ones and ``k``):
    PyTorch's copies draw from one stream, not the same masks, and copy 0 must not replay
    the original Generator's draws, which other layers may share."""
    new = copy.deepcopy(layer)
    fresh: dict[int, np.random.Generator] = {}
    for sub in [new, *(sub for _, sub in new.named_layers())]:
        gen = getattr(sub, "rng", None)
        if isinstance(gen, np.random.Generator):
            if id(gen) not in fresh:
                fresh[id(gen)] = np.random.default_rng([int(gen.integers(2**63)), k])
            sub.rng = fresh[id(gen)]
    return new
