"""One flat buffer for all parameters and one for all gradients, with per-layer views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._validate import as_array
from . import _members
from ._state import adopt, check_arrays, rebind

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .base import Layer


def flatten_parameters(layer: Layer) -> tuple[np.ndarray, np.ndarray] | None:
    """Move every parameter and gradient of ``layer`` into two flat buffers.

    Each leaf's ``params[k]`` / ``grads[k]`` is rebound, once, to a view of one
    contiguous 1-D array, so an optimizer updates all parameters in one
    vectorised pass, gradient clipping takes one norm, and a future data-parallel
    all-reduce is one call. Values are preserved. Returns ``(params, grads)``, or
    None when the layer has no parameters.

    The arrays a layer held before are made read-only: they are dead copies, and
    anything still holding them (an optimizer built before the model was
    assembled, ``W = layer.params["W"]`` kept from earlier) fails loudly on its next
    write instead of training a copy nobody uses (optimizers check before each step).
    """
    for lay in {id(lay): lay for _, lay, _ in layer.named_slots()}.values():
        adopt(lay)  # a user layer's plain dicts become ArrayDicts: assignment writes in place
    for lay in (layer, *(lay for _, lay in layer.named_layers())):
        if not hasattr(lay, "_merged"):  # a Container's dicts are its layers'
            check_arrays(lay)  # a list or a missing gradient named here, not deep inside
            _members.joined(lay, layer)  # add_param refuses from now on (see there)
    slots = list(layer.named_slots())
    if not slots:
        return None
    total = sum(lay.params[k].size for _, lay, k in slots)
    flat_p = np.empty(total, dtype=layer.dtype)
    flat_g = np.zeros(total, dtype=layer.dtype)
    offset = 0
    for _, lay, k in slots:
        shape, n = lay.params[k].shape, lay.params[k].size
        view = flat_p[offset:offset + n].reshape(shape)
        view[...] = lay.params[k]
        old = lay.params[k], lay.grads[k]
        rebind(lay.params, k, view)
        rebind(lay.grads, k, flat_g[offset:offset + n].reshape(shape))
        for a in old:
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        offset += n
    return flat_p, flat_g


def flat_base(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The contiguous 1-D buffer that ``arrays`` tile exactly, in order, or None.

    It is a view of the memory the arrays already share (after
    :func:`flatten_parameters`, for a whole model or for any run of its layers, such
    as an inner Sequential), so writing to it writes the arrays. Lets an optimizer
    run one vectorised update (and falls back to per-array updates otherwise).
    """
    if not arrays:
        return None
    base = arrays[0].base  # an np.memmap's is the mmap object itself
    if not isinstance(base, np.ndarray) or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    origin = base.__array_interface__["data"][0]
    start = (arrays[0].__array_interface__["data"][0] - origin) // base.itemsize
    offset = start
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.dtype != base.dtype:
            return None
        if a.__array_interface__["data"][0] != origin + offset * base.itemsize:
            return None
        offset += a.size
    return base if start == 0 and offset == base.size else base[start:offset]


def copy_flat_views(memo: dict[int, Any], arrays: list[np.ndarray], *,
                    part: bool = False) -> None:
    """Put into ``copy.deepcopy``'s ``memo`` a copy of the flat buffer that ``arrays``
    tile and, for each array, the view of that copy at its place: a deep copy of a
    model and of the optimizer built on it (``copy.deepcopy((model, opt))``, in either
    order) then shares one new buffer, as the originals share theirs. Arrays that tile
    only part of a buffer, or lie apart in it, do so when it is in ``memo`` already, or
    with ``part`` (an optimizer over some parameters, which copies the whole buffer, so
    that the model copied after it finds its other arrays there: an optimizer copied alone
    holds a copy of the whole buffer); otherwise nothing is done (a nested model copied
    alone gets a buffer of its own, see ``Sequential.__setstate__``)."""
    root = arrays[0].base if arrays else None
    if not isinstance(root, np.ndarray) or root.ndim != 1 or not root.flags.c_contiguous or any(
            a.base is not root or not a.flags.c_contiguous for a in arrays):
        return
    new = memo.get(id(root))
    if new is None:
        if flat_base(arrays) is not root and not part:
            return
        new = memo[id(root)] = root.copy()
    origin = root.__array_interface__["data"][0]
    for a in arrays:
        if id(a) not in memo:
            start = (a.__array_interface__["data"][0] - origin) // root.itemsize
            memo[id(a)] = new[start:start + a.size].reshape(a.shape)


def set_flat(flat: np.ndarray | None, values: Any, who: str) -> None:
    """Copy ``values`` into a model's flat parameter buffer ``flat`` (None: it has none)."""
    if flat is None:
        raise ValueError(f"{who}: expected a model with parameters, got one without any")
    a = as_array(values, who, "the new values")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected real numbers, got dtype {a.dtype}")
    if a.shape != flat.shape:
        raise ValueError(f"{who}: expected {flat.size} values of shape {flat.shape} (one "
                         f"per parameter, as model.flat_params gives), got shape {a.shape}")
    flat[...] = a


def check_distinct(model: Layer, who: str) -> None:
    """Refuse a layer object that sits at two places in the model (or holds the model).

    A layer keeps one forward's cache for its backward, so a reused ``ReLU()``
    would lose the first position's cache, and a shared ``Dense`` would get two
    gradient slots in the flat buffer. PyTorch allows reuse through autograd;
    here each position needs its own instance.
    """
    seen: dict[int, str] = {id(model): "the top (the model itself)"}
    for where, child in _checked_layers(model, "", who):  # lazy: stops at the first repeat
        if id(child) in seen:
            raise ValueError(
                f"{who}: expected each layer object once, got the same "
                f"{type(child).__name__} object at {seen[id(child)]} and at layer {where} "
                "(a layer keeps one forward's cache for its backward: create a new "
                f"{type(child).__name__}(...) for each position)")
        seen[id(child)] = f"layer {where}"


def _checked_layers(layer: Layer, prefix: str, who: str) -> Iterator[tuple[str, Layer]]:
    """``layer.named_layers(prefix)``, each ``children()`` checked to be ``(name, layer)``
    pairs first (a list of layers alone failed as "cannot unpack non-iterable Dense")."""
    from .base import Layer  # (a cycle at import time)

    kids = layer.children()
    if not isinstance(kids, (list, tuple)):
        raise TypeError(f"{who}: expected {type(layer).__name__}.children() to return a list "
                        f"of (name, layer) pairs, as [('a', self.a)], got a "
                        f"{type(kids).__name__}")
    for item in kids:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], Layer)):
            raise TypeError(f"{who}: expected {type(layer).__name__}.children() to return "
                            f"(name, layer) pairs, as [('a', self.a), ('b', self.b)], got "
                            f"{item!r:.80} in it")
    _check_listed(layer, kids, who)
    for name, child in kids:
        yield prefix + name, child
        yield from _checked_layers(child, f"{prefix}{name}.", who)


def _check_listed(layer: Layer, kids: list[tuple[str, Layer]] | tuple, who: str) -> None:
    """A layer of one's own that holds a layer with parameters or buffers in an attribute
    (or a list, tuple or dict of them) must list it in ``children()``: in PyTorch an
    assignment registers it; here one left out would be neither trained nor saved."""
    from .base import Layer  # (a cycle at import time)

    if type(layer).__module__.startswith("backprop."):
        return
    listed = {id(la) for _, child in kids for la in (child, *dict(child.named_layers()).values())}
    for attr, value in vars(layer).items():
        items = (value.items() if isinstance(value, dict) else enumerate(value)
                 if isinstance(value, (list, tuple)) else [(None, value)])
        for key, item in items:
            if (isinstance(item, Layer) and id(item) not in listed
                    and (item.params or item.buffers)):
                where, name = ((attr, attr) if key is None
                               else (f"{attr}[{key!r}]", f"{attr}.{key}"))
                raise ValueError(f"{who}: expected {type(layer).__name__}.{where}, a "
                                 f"{item!r} with parameters, among {type(layer).__name__}"
                                 f".children() (one left out is neither trained nor saved: "
                                 f"list it there, as ('{name}', self.{where}))")


def stateless(layer: Layer) -> bool:
    """A layer of backprop's own without parameters or buffers (in it or inside it): its
    dtype only sets what input it checks for (a model of another dtype takes it as it is)."""
    return (type(layer).__module__.startswith("backprop.") and not layer.params
            and not layer.buffers and all(stateless(c) for _, c in layer.children()))
