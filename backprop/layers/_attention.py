"""What MultiheadAttention needs beside its forward and backward: the stable softmax over
the keys with the causal mask, and the refusals of PyTorch's options and call arguments
that the layer does not take, each saying what is supported."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import xp


def masked_softmax_(s: np.ndarray, causal: bool) -> np.ndarray:
    """``softmax(s)`` over the last axis (the keys), in place; ``causal``: position ``j``
    of query ``i`` set to -inf first where ``j > i``, so it gets probability 0.

    The row max is subtracted before ``exp`` so it never overflows; a causal row keeps
    its diagonal, so its max is finite and ``exp(-inf - max) = 0`` exactly.
    """
    if causal:
        steps = s.shape[-1]
        module = xp(s)
        s[..., module.triu(module.ones((steps, steps), dtype=bool), 1)] = -np.inf
    s -= s.max(axis=-1, keepdims=True)
    xp(s).exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


def refuse_torch_options(embed_dim: int, kdim: Any, vdim: Any, batch_first: Any,
                         add_bias_kv: Any, add_zero_attn: Any) -> None:
    """PyTorch's constructor options beyond batch-first self-attention: a ValueError that
    says what is supported."""
    who = "MultiheadAttention"
    for name, value in (("kdim", kdim), ("vdim", vdim)):
        if value is not None and value != embed_dim:
            raise ValueError(f"{who}: expected {name}=None (keys and values are the input "
                             f"itself, of embed_dim={embed_dim} features: self-attention), "
                             f"got {name}={value!r}")
    if not (isinstance(batch_first, (bool, np.bool_)) and batch_first):
        raise ValueError(f"{who}: expected batch_first=True (input (N, T, E), the only layout "
                         f"here), got batch_first={batch_first!r}; a sequence-first array "
                         f"x (T, N, E) becomes batch-first with x.transpose(1, 0, 2)")
    if add_bias_kv:
        raise ValueError(f"{who}: expected add_bias_kv=False (no learnt extra key and value), "
                         f"got {add_bias_kv!r}")
    if add_zero_attn:
        raise ValueError(f"{who}: expected add_zero_attn=False (no extra zero key and value), "
                         f"got {add_zero_attn!r}")


_CALL_HINTS = {
    "key_padding_mask": "there are no padding masks: give every sequence of a batch the same "
                        "length T",
    "need_weights": "forward returns y only (PyTorch's need_weights=False); after a training "
                    "forward, layer.cache['p'] holds the attention weights (N, H, T, T)",
    "average_attn_weights": "forward returns y only (PyTorch's need_weights=False); after a "
                            "training forward, layer.cache['p'] holds the weights per head",
    "attn_mask": "the one mask is the causal one, set at construction: "
                 "MultiheadAttention(E, H, causal=True)",
    "is_causal": "the causal mask is set at construction: MultiheadAttention(E, H, causal=True)",
    "use_causal_mask": "backprop calls it causal, set at construction: "
                       "MultiheadAttention(E, H, causal=True)",
    "return_attention_scores": "forward returns y only; after a training forward, "
                               "layer.cache['p'] holds the attention scores (N, H, T, T)",
    **dict.fromkeys(("attention_mask", "query_mask", "key_mask", "value_mask"),
                    "there are no masks but the causal one, set at construction: "
                    "MultiheadAttention(E, H, causal=True)"),
    **dict.fromkeys(("query", "key", "value"),
                    "it attends x to itself: layer(x), one input (N, T, E)"),
}


def refuse_call(who: str, others: tuple[Any, ...], options: dict[str, Any]) -> None:
    """A TypeError for PyTorch's ``mha(query, key, value, ...)`` call: separate inputs or
    keyword arguments that this self-attention layer does not take."""
    if len(others) == 1 and isinstance(others[0], bool):
        raise TypeError(f"{who}: expected training as a keyword, forward(x, training="
                        f"{others[0]}), got it as a second input")
    if others:
        raise TypeError(f"{who}: expected one input x (N, T, E), attended to itself (PyTorch's "
                        f"mha(x, x, x)), got {1 + len(others)} inputs; separate query, key and "
                        f"value inputs are not supported: call forward(x)")
    name = next(iter(options))
    hint = _CALL_HINTS.get(name)
    if hint is None:
        raise TypeError(f"{who}: forward() got an unexpected keyword argument {name!r}")
    raise TypeError(f"{who}: forward() got an unexpected keyword argument {name!r}; {hint}")
