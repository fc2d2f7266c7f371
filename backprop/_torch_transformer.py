"""PyTorch's ``nn.TransformerEncoderLayer`` in :func:`backprop.from_torch`: its modules
in the order of backprop's layers.

Its state dict lists ``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2`` (the
order they are created in), while a :func:`~backprop.TransformerEncoderLayer` runs them
as ``self_attn, norm1, linear1, linear2, norm2`` (post-norm) or ``norm1, self_attn,
norm2, linear1, linear2`` (pre-norm). ``from_torch`` pairs modules by order, so each
such group is put in the order whose kinds match the backprop layers at its place.
"""

from __future__ import annotations

from typing import Any

_PARTS = ("self_attn", "linear1", "linear2", "norm1", "norm2")  # PyTorch's order
_KINDS = {"self_attn": "MultiheadAttention", "linear1": "Dense", "linear2": "Dense",
          "norm1": "LayerNorm", "norm2": "LayerNorm"}
_ORDERS = (("self_attn", "norm1", "linear1", "linear2", "norm2"),  # norm_first=False
           ("norm1", "self_attn", "norm2", "linear1", "linear2"),  # norm_first=True
           _PARTS)


def encoder_layers_in_order(theirs: dict[str, dict[str, Any]], kinds: list[str]
                            ) -> dict[str, dict[str, Any]]:
    """``theirs`` (module prefix -> entries, in PyTorch's order, attention merged) with
    each encoder layer's five modules in the order whose kinds (``MultiheadAttention``,
    ``Dense``, ``LayerNorm``) are those of ``kinds``, backprop's layers with weights at
    the same places; a group that matches none is left as it is (and refused by the
    pairing, which names the first pair that differs)."""
    items = list(theirs.items())
    out: list[tuple[str, dict[str, Any]]] = []
    i = 0
    while i < len(items):
        head = items[i][0].removesuffix("self_attn")
        names = [prefix for prefix, _ in items[i:i + len(_PARTS)]]
        if names != [head + part for part in _PARTS] or head[-1:] not in ("", "."):
            out.append(items[i])
            i += 1
            continue
        here = kinds[len(out):len(out) + len(_PARTS)]
        order = next((o for o in _ORDERS if [_KINDS[p] for p in o] == here), _PARTS)
        out += [(head + part, theirs[head + part]) for part in order]
        i += len(_PARTS)
    return dict(out)

