"""What MultiheadAttention needs beside its forward and backward: the stable softmax over
the keys with the causal mask, and the refusals of PyTorch's options and call arguments
that the layer does not take, each saying what is supported."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._tensors import tensor_values
from .._validate import boolean, positive_int
from ..backend import xp


def masked_softmax_(s: np.ndarray, causal: bool) -> np.ndarray:
    """``softmax(s)`` over the last axis (the keys), in place; ``causal``: position ``j``
    of query ``i`` set to -inf first where ``j > i``, so it gets probability 0.

    The row max is subtracted before ``exp`` so it never overflows; a causal row keeps
    its diagonal, so its max is finite and ``exp(-inf - max) = 0`` exactly. A row whose
    every key is masked (all -inf) gets weights 0, as PyTorch's ``need_weights=False``
    call (its safe softmax): that query's output is ``b_out``, and no gradient flows.
    """
    module = xp(s)
    if causal:
        steps = s.shape[-1]
        s[..., module.triu(module.ones((steps, steps), dtype=bool), 1)] = -np.inf
    top = s.max(axis=-1, keepdims=True)
    empty = module.isneginf(top)  # every key masked
    if empty.any():
        top[empty] = 0.0  # exp(-inf - 0) = 0 everywhere in the row, and no -inf - -inf
    s -= top
    module.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    if empty.any():
        total[empty] = 1.0  # 0 / 1: weights 0
    s /= total
    return s


def add_masks(layer: Any, s: np.ndarray, key_padding_mask: Any, attn_mask: Any) -> None:
    """Add PyTorch's call-time masks to the scores ``s (N, H, T, T)`` in place: a boolean
    mask's True is -inf (that key is not attended to), a float mask is added as it is.
    ``key_padding_mask (N, T)`` masks keys per sample, ``attn_mask (T, T)`` or
    ``(N·H, T, T)`` per (query, key) pair."""
    n, h, steps = s.shape[0], s.shape[1], s.shape[-1]
    with np.errstate(over="ignore"):  # finfo.min masks added twice, cast down: -inf, meant
        if key_padding_mask is not None:
            m = _additive(layer, key_padding_mask, "key_padding_mask", [(n, steps)], s.dtype)
            s += m[:, None, None, :]
        if attn_mask is not None:
            m = _additive(layer, attn_mask, "attn_mask",
                          [(steps, steps), (n * h, steps, steps)], s.dtype)
            s += m if m.ndim == 2 else m.reshape(s.shape)


def _additive(layer: Any, mask: Any, name: str, shapes: list[tuple[int, ...]],
              dtype: Any) -> np.ndarray:
    """``mask`` as scores to add: -inf where a boolean mask is True, 0 elsewhere; a float
    mask in the scores' dtype (a list or a PyTorch tensor is read as an array first).
    Refused: another shape or dtype, with what was expected."""
    mask = tensor_values(mask, repr(layer), name)
    given = type(mask).__name__  # a list's values are named as a list's, not an array's
    if isinstance(mask, (list, tuple)):
        try:
            mask = np.asarray(mask)
        except ValueError:  # rows of different lengths
            raise ValueError(f"{layer!r}: expected {name} of shape {' or '.join(map(str, shapes))}"
                             f", got a {given} of rows of different lengths") from None
    shape, kind = getattr(mask, "shape", None), getattr(getattr(mask, "dtype", None), "kind", "")
    if shape is None or kind not in "bf" or not kind:
        values = "str" if kind in "US" else mask.dtype.name if kind else ""
        of = "" if not kind else (f" of {values} values" if given != type(mask).__name__
                                  else f" of dtype {mask.dtype}")
        raise TypeError(f"{layer!r}: expected {name} as a boolean array (True: not attended "
                        f"to) or a float array (added to the scores), got {given}{of}")
    if tuple(shape) not in shapes:
        raise ValueError(f"{layer!r}: expected {name} of shape "
                         f"{' or '.join(map(str, shapes))}, got {tuple(shape)}")
    module = xp(mask)
    if kind == "b":
        return module.where(mask, module.asarray(-np.inf, dtype), module.asarray(0.0, dtype))
    return mask.astype(dtype, copy=False)


def refuse_torch_options(embed_dim: int, kdim: Any, vdim: Any, batch_first: Any,
                         add_bias_kv: Any, add_zero_attn: Any) -> None:
    """PyTorch's constructor options beyond batch-first self-attention: a ValueError that
    says what is supported (a TypeError for a value of the wrong kind, such as an array)."""
    who = "MultiheadAttention"
    for name, value in (("kdim", kdim), ("vdim", vdim)):
        size = None if value is None else positive_int(value, name, who)  # 3, not np.int64
        if size is not None and size != embed_dim:
            raise ValueError(f"{who}: expected {name}=None (keys and values are the input "
                             f"itself, of embed_dim={embed_dim} features: self-attention), "
                             f"got {name}={size}")
    if not (isinstance(batch_first, (bool, np.bool_)) and batch_first):
        raise ValueError(f"{who}: expected batch_first=True (input (N, T, E), the only layout "
                         f"here), got batch_first={batch_first!r}; a sequence-first array "
                         f"x (T, N, E) becomes batch-first with x.transpose(1, 0, 2)")
    if boolean(add_bias_kv, "add_bias_kv", who):
        raise ValueError(f"{who}: expected add_bias_kv=False (no learnt extra key and value), "
                         f"got {add_bias_kv!r}")
    if boolean(add_zero_attn, "add_zero_attn", who):
        raise ValueError(f"{who}: expected add_zero_attn=False (no extra zero key and value), "
                         f"got {add_zero_attn!r}")


_CALL_HINTS = {
    "need_weights": "forward returns y only (PyTorch's need_weights=False); after a training "
                    "forward, layer.cache['p'] holds the attention weights (N, H, T, T)",
    "average_attn_weights": "forward returns y only (PyTorch's need_weights=False); after a "
                            "training forward, layer.cache['p'] holds the weights per head",
    "is_causal": "the causal mask is set at construction: MultiheadAttention(E, H, causal=True)",
    "use_causal_mask": "backprop calls it causal, set at construction: "
                       "MultiheadAttention(E, H, causal=True)",
    "return_attention_scores": "forward returns y only; after a training forward, "
                               "layer.cache['p'] holds the attention scores (N, H, T, T)",
    "attention_mask": ("backprop takes PyTorch's attn_mask (T, T), whose True is the "
                       "opposite of Keras': not attended to (attn_mask=~attention_mask)"),
    **dict.fromkeys(("query_mask", "key_mask", "value_mask"),
                    "padding is PyTorch's key_padding_mask (N, T), True where a key is "
                    "padding (not attended to)"),
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
