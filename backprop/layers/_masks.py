"""Padding masks of batches of sequences: which steps of ``(N, T, ...)`` are real.

A mask is a boolean ``(N, T)`` array, True at a real step and False at padding (Keras'
convention). The recurrent layers take one at call time (``lstm(x, mask=m)``, or
PyTorch's ``lengths``, turned into one here); in a :class:`~backprop.Sequential` a mask
is made by ``Embedding(..., mask_zero=True)`` or :class:`~backprop.layers.Masking` and
handed from layer to layer (:meth:`Layer.forward_masked`): layers that work on each step
alone pass it on, the recurrent and attention layers apply it (a recurrent layer with
``return_sequences=False`` ends it), a Permute that moves the steps off axis 1 ends it,
the rest refuse it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import numpy as np

from .._validate import as_array, whole_numbers


def check_mask(who: Any, mask: Any, n: int, steps: int, what: str = "mask") -> np.ndarray:
    """``mask`` as a C-ordered boolean ``(N, T)`` array (True: a real step), or a named
    error: it must be an array (or nested list) of that shape, boolean or of 0s and 1s
    (numbers of other values, fractions and NaN too: a ValueError)."""
    if isinstance(mask, (list, tuple)):
        mask = as_array(mask, who, what)  # ragged lists: named (NumPy's error named neither)
    shape = getattr(mask, "shape", None)
    if shape is None or not hasattr(mask, "dtype"):
        raise TypeError(f"{who}: expected {what} as a boolean (N, T) array (True: a real "
                        f"step), got {type(mask).__name__}")
    if tuple(shape) != (n, steps):
        raise ValueError(f"{who}: expected {what} of shape (N, T) = {(n, steps)} to match the "
                         f"input, got {tuple(shape)}")
    a = np.asarray(mask)
    if a.dtype != bool:
        if a.dtype.kind not in "iuf":
            raise TypeError(f"{who}: expected {what} as booleans (or 0s and 1s), got dtype "
                            f"{a.dtype}")
        if a.dtype.kind == "f" and not whole_numbers(a):  # the dtype fits, the values do not
            odd = a[~(np.isfinite(a) & (a == np.round(a)))]
            raise ValueError(f"{who}: expected {what} as booleans (or 0s and 1s), got "
                             f"{odd.size} {a.dtype} values other than 0 and 1, such as "
                             f"{odd.flat[0]} (a step is real or padding: round them, or "
                             f"pass {what} > 0.5)")
        if a.size and (a.min() < 0 or a.max() > 1):  # the dtype fits, the values do not
            raise ValueError(f"{who}: expected {what} as booleans (or 0s and 1s), got "
                             f"{a.dtype} values from {a.min()} to {a.max()}")
        a = a != 0
    return np.ascontiguousarray(a)


def lengths_mask(who: Any, lengths: Any, n: int, steps: int) -> np.ndarray:
    """The mask of PyTorch's ``lengths`` (``pack_padded_sequence``'s): row ``i`` real for
    its first ``lengths[i]`` steps, ``0 <= lengths[i] <= T``."""
    a = as_array(lengths, who, "lengths")
    if not (a.dtype.kind in "iu" or whole_numbers(a)):  # (whole floats compare as they are)
        raise TypeError(f"{who}: expected lengths as integers (one per sequence), got "
                        f"{type(lengths).__name__} of dtype {a.dtype}")
    if a.shape != (n,):
        raise ValueError(f"{who}: expected lengths of shape (N,) = ({n},), one per sequence, "
                         f"got {a.shape}")
    if n and (a.min() < 0 or a.max() > steps):
        raise ValueError(f"{who}: expected lengths in [0, T] = [0, {steps}], got values from "
                         f"{a.min()} to {a.max()}")
    return np.arange(steps) < a[:, None]


def call_mask(who: Any, mask: Any, lengths: Any, n: int, steps: int) -> np.ndarray | None:
    """The mask of a call given ``mask=`` or ``lengths=`` (not both), None for neither or
    for one that marks every step real (nothing to do)."""
    if mask is not None and lengths is not None:
        raise ValueError(f"{who}: expected mask or lengths, got both (lengths is the mask "
                         f"np.arange(T) < lengths[:, None])")
    if mask is None and lengths is None:
        return None
    m = (check_mask(who, mask, n, steps) if lengths is None
         else lengths_mask(who, lengths, n, steps))
    return None if m.all() else m


def refuse_mask(layer: Any) -> None:
    """The error of a layer that cannot apply a padding mask handed to it in a Sequential."""
    raise ValueError(
        f"{layer!r}: got a padding mask (N, T) from an earlier layer (Embedding(mask_zero="
        f"True) or Masking) or the call, and this layer does not work on each step alone, so the "
        f"padded steps would leak into the real ones: put it after a layer that ends the "
        f"mask (a recurrent layer with return_sequences=False, GlobalAvgPool(channels_last="
        f"True)), or drop mask_zero/Masking and pad by hand (the recurrent layers also take "
        f"lengths=)")


def model_mask(x: Any, mask: Any, src_key_padding_mask: Any, indices: bool,
               lengths: Any = None) -> np.ndarray:
    """A Sequential's padding mask from ``mask`` (True at real steps, Keras'),
    ``src_key_padding_mask`` (True at padding, PyTorch's) or ``lengths`` (PyTorch's
    ``pack_padded_sequence``'s), checked against ``x``: features ``(N, T, F, ...)``, or
    ``indices`` ``(N, T)`` for a model that starts with an Embedding."""
    given = [name for name, v in (("mask", mask), ("src_key_padding_mask",
             src_key_padding_mask), ("lengths", lengths)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"Sequential: expected one of mask (True at real steps), "
                         f"src_key_padding_mask (True at padding) or lengths, got "
                         f"{' and '.join(given)}")
    if np.ndim(x) < (2 if indices else 3):
        want = "indices (N, T)" if indices else "sequences (N, T, F, ...)"
        raise ValueError(f"Sequential: a padding mask (N, T) needs input of {want}, got "
                         f"shape {np.shape(x)}")
    n, steps = np.shape(x)[:2]
    if mask is not None:
        return check_mask("Sequential", mask, n, steps)
    if lengths is not None:
        return lengths_mask("Sequential", lengths, n, steps)
    pad = np.asarray(src_key_padding_mask) if hasattr(src_key_padding_mask, "dtype") else None
    if pad is not None and pad.dtype.kind == "f":  # PyTorch's float mask: added to scores
        raise TypeError(f"Sequential: expected src_key_padding_mask as booleans (True at "
                        f"padding), got dtype {pad.dtype}: PyTorch adds a float mask to the "
                        f"attention scores; pass pad != 0, or call the MultiheadAttention "
                        f"layer itself with key_padding_mask= for one added to its scores")
    return ~check_mask("Sequential", src_key_padding_mask, n, steps, "src_key_padding_mask")


def refuse_call(others: tuple[Any, ...], options: dict[str, Any]) -> None:
    """The TypeError of ``model(x, more, ...)``: a Sequential takes one input and a mask
    (``mask=``, PyTorch's attention mask in ``TransformerEncoder(x, mask=...)``, too)."""
    key = None if others else next(iter(options))
    got = f"{1 + len(others)} inputs" if others else f"the keyword argument {key!r}"
    meant = (" (PyTorch's attention mask in its transformer blocks; Keras' padding mask, "
             "True at real steps, is model.forward(x, mask=m))" if key == "mask" else "")
    raise TypeError(f"Sequential: expected one input x (and src_key_padding_mask= or "
                    f"lengths=), got "
                    f"{got}{meant}; a causal mask is built in (MultiheadAttention(E, H, "
                    f"causal=True), TransformerEncoderLayer(..., causal=True)); a padding "
                    f"mask (N, T) is src_key_padding_mask= (True at padding, PyTorch's) or "
                    f"lengths= (N,), or "
                    f"made by Embedding(..., mask_zero=True) or Masking(); a recurrent "
                    f"layer's initial state goes to that layer called by itself: "
                    f"lstm(x, (h0, c0))")


# The model whose last forward ended a padding mask unused at its last layer (set by
# masked_forward for the model that holds it: a nested Sequential ending in Permute).
_ENDED_UNUSED: ContextVar[Any] = ContextVar("backprop_mask_ended_unused", default=None)


def masked_forward(model: Any, layer: Any, x: Any, mask: np.ndarray | None,
                   training: bool) -> tuple[Any, np.ndarray | None]:
    """``layer.forward_masked`` in ``model``'s loop. A layer that ends a padding mask
    without using it (``Permute`` moving the time axis: ``ends_mask_unused``, or a nested
    Sequential whose last layer did so) may do so only as the last layer (the ``(N, C, T)``
    logits of a per-position loss): a layer after it got no mask, so nothing refused it,
    and the padded steps leaked in as real (Permute -> Conv1D -> Permute -> LSTM changed a
    padded row's output by 1.7e-2)."""
    _ENDED_UNUSED.set(None)
    y, out = layer.forward_masked(x, mask, training=training)
    nested = _ENDED_UNUSED.get() is layer  # (set by this function for layer's last layer)
    _ENDED_UNUSED.set(None)
    if mask is not None and out is None and (nested or getattr(layer, "ends_mask_unused",
                                                                False)):
        i = next(k for k, lay in enumerate(model.layers) if lay is layer)
        if i + 1 < len(model.layers):
            last = layer
            while nested and getattr(last, "layers", None):
                last = last.layers[-1]
            where = f" (the last layer of layer {i}, a Sequential)" if nested else ""
            raise ValueError(
                f"{last!r}{where}: expected to be the model's last layer where it moves the "
                f"time axis of a padded sequence (it ends the padding mask: the (N, C, T) "
                f"logits of a per-position loss), got layer {i + 1} {model.layers[i + 1]!r} "
                f"after it, which would take the padded steps as real; work on each step in "
                f"(N, T, F) instead (Dense, LayerNorm and the activations take the mask)")
        _ENDED_UNUSED.set(model)  # a model holding this one refuses a layer after it
    return y, out
