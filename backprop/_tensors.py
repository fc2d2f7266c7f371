"""PyTorch tensors read as NumPy arrays, for ``from_torch`` and ``load_state_dict``: dense
data only (sparse and ``meta`` tensors are refused by name), bfloat16 (which NumPy lacks)
exactly as float32."""

from __future__ import annotations

from typing import Any


def tensor_values(value: Any, who: str, key: str) -> Any:
    """``value``'s data as a NumPy array when it is a tensor; anything else as it is."""
    if not (hasattr(value, "detach") and hasattr(value, "layout")):
        return value
    t = value.detach()
    if str(t.layout) != "torch.strided":
        raise TypeError(f"{who}: expected dense tensors, got {key!r} with layout {t.layout} "
                        f"(pass it as tensor.to_dense())")
    if t.device.type == "meta":
        raise ValueError(f"{who}: expected tensors holding values, got {key!r} on PyTorch's "
                         f"'meta' device, which has none (load or materialize the module's "
                         f"weights first)")
    t = t.cpu().resolve_conj().resolve_neg()
    if str(t.dtype) == "torch.bfloat16":
        t = t.float()  # every bfloat16 is a float32: exact
    try:
        return t.numpy()
    except (TypeError, RuntimeError) as err:  # float8 and other types NumPy lacks
        raise TypeError(f"{who}: expected {key!r} as a tensor of a type NumPy has, got "
                        f"{t.dtype} ({err}); convert it, e.g. with .float() (.dequantize() for a "
                        f"quantized one)") from None
