"""A layer's arrays by name: ``params``/``grads``/``buffers`` as :class:`ArrayDict`, and
``state_dict`` / ``load_state_dict`` of any layer or model, as in PyTorch."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .._tensors import tensor_values
from . import _members


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` left out: names the layer has that the
    state lacks, and names in the state the layer does not have."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class ArrayDict(dict):  # type: ignore[type-arg]
    """A layer's ``params``, ``grads`` or ``buffers``: a dict of arrays in which assigning
    to a name it already has writes the new values *into* the existing array.

    ``layer.params["W"] = new`` therefore does what users mean: the model's flat
    buffer, optimizers built earlier and the layer keep sharing one array, where
    rebinding the name would leave an optimizer training a copy nobody uses. The
    values must have the array's shape and real numbers that cast to its dtype within
    their kind (float64 into float32), else ValueError/TypeError and nothing changes
    (``update`` and ``|=`` check every value before writing any). New names are added
    as given (a model's merged dict refuses them: its arrays are its layers'; so does a
    built-in layer's ``params``, whose names its math fixes: KeyError, and neither
    loses a name: TypeError); a new array in the ``params`` of a layer of your own gets
    its gradient buffer in ``grads`` too, as with ``add_param``. The library rebinds
    with :meth:`rebind` (``add_param``, flattening, ``astype``).

    It holds the owner's class name, not the layer (no reference cycle: a dropped
    model is freed at once). Copies of a model's merged dict are plain dicts.
    """

    def __init__(self, items: Any = (), *, who: str = "layer", kind: str = "params",
                 fixed: bool = False, grads: ArrayDict | None = None,
                 closed: bool = False) -> None:
        super().__init__(items)
        self._who, self._kind, self._fixed = who, kind, fixed
        self._grads = grads  # a layer's params: where a new parameter's gradient goes
        # a built-in layer's params: its math names them, so a new name is a typo that
        # would leave the real array alone (and a model's flat buffer short of it)
        self._closed = closed

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """As dict's, but existing names are written into their arrays; every name and
        value is checked before any is written."""
        new = dict(*args, **kwargs)
        where = f"{getattr(self, '_who', 'layer')}: {getattr(self, '_kind', 'params')}"
        unknown = [k for k in new if k not in self]
        if unknown and getattr(self, "_fixed", False):
            raise KeyError(f"{where} has no {unknown[0]!r}; a model's arrays are its layers' "
                           f"(add them to a layer with add_param), got the names {list(self)}")
        if unknown and getattr(self, "_closed", False):
            raise KeyError(f"{where} has no {unknown[0]!r}: its parameters are {list(self)} "
                           "(a new one would be used by nothing; a layer of your own adds "
                           "parameters with add_param)")
        sources = {k: _source(v, self[k], k, where) for k, v in new.items() if k in self}
        grads = getattr(self, "_grads", None)
        for k, v in new.items():
            if k in sources:
                np.copyto(self[k], sources[k], casting="same_kind")
            else:
                check_new(v, k, where)  # not a list or a float: used as an array
                if getattr(self, "_grads", None) is not None:  # a layer's params
                    _members.refuse_new_key(self, k)
                super().__setitem__(k, v)
                if grads is not None and k not in grads and isinstance(v, np.ndarray):
                    grads.rebind(k, np.zeros_like(v))  # self.params["a"] = ...: add_param's

    def _refuse_removal(self, key: Any) -> None:
        if getattr(self, "_closed", False) or getattr(self, "_fixed", False):
            raise TypeError(f"{self._who}: {self._kind} cannot lose {key!r}: the layer's "
                            f"math uses every one of {list(self)}")

    def __delitem__(self, key: Any) -> None:
        self._refuse_removal(key)
        super().__delitem__(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            self._refuse_removal(key)
        return super().pop(key, *default)

    def popitem(self) -> Any:
        self._refuse_removal(next(reversed(self), None))
        return super().popitem()

    def clear(self) -> None:
        if self:
            self._refuse_removal(next(iter(self)))
        super().clear()

    def __ior__(self, other: Any) -> ArrayDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        # dict's C update (no per-name checks: the copy is new), as fast as a plain dict's
        items = ((k, copy.deepcopy(v, memo)) for k, v in self.items())
        if getattr(self, "_fixed", False):  # a model's merged view: copies are plain dicts
            return dict(items)
        grads = getattr(self, "_grads", None)
        new = ArrayDict(who=self._who, kind=self._kind,
                        grads=None if grads is None else copy.deepcopy(grads, memo),
                        closed=getattr(self, "_closed", False))
        memo[id(self)] = new
        dict.update(new, items)
        return new

    def __reduce_ex__(self, protocol: Any) -> Any:
        if getattr(self, "_fixed", False):  # a model's merged view: copies are plain dicts
            return dict, (dict(self),)
        return super().__reduce_ex__(protocol)

    def rebind(self, key: str, value: np.ndarray) -> None:
        """Point ``key`` at ``value`` itself (the library's own re-homing of arrays)."""
        super().__setitem__(key, value)


def adopt(layer: Any) -> None:
    """Make a layer's plain ``params``/``grads``/``buffers`` dicts (a user's layer may set
    ``self.params = {...}``) ArrayDicts with the same items."""
    for kind in ("grads", "params", "buffers"):  # grads first: params name them
        store = getattr(layer, kind, None)
        if type(store) is dict:
            grads = getattr(layer, "grads", None) if kind == "params" else None
            setattr(layer, kind, ArrayDict(store, who=type(layer).__name__, kind=kind,
                                           grads=grads if isinstance(grads, ArrayDict)
                                           else None))


def check_new(value: Any, key: str, where: str) -> None:
    """A TypeError (``where``: the layer and what it is adding) unless ``value`` is a NumPy
    array or scalar of real numbers: a list or a Python float would fail deep inside."""
    if not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(f"{where}: expected {key!r} as a NumPy array of real numbers, got "
                        f"{type(value).__name__} (np.asarray(value, dtype=self.dtype) makes "
                        f"one)")
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected {key!r} as a NumPy array of real numbers, got "
                        f"dtype {value.dtype}")


def param_value(value: Any, key: str, where: str, dtype: Any) -> np.ndarray:
    """``value`` as a parameter of a layer of ``dtype`` (None: any float): a float array of
    another precision becomes a copy in ``dtype`` (``np.random.randn`` gives float64, and a
    float32 layer must stay float32, alone as in a model, whose cast did it quietly);
    integers and booleans are a TypeError (a weight and its gradient buffer are floats:
    an integer buffer truncated the gradient), as is what :func:`check_new` refuses."""
    check_new(value, key, where)
    if value.dtype.kind != "f":
        raise TypeError(f"{where}: expected {key!r} as an array of floats (a weight and its "
                        f"gradient are floats), got dtype {value.dtype} "
                        f"(np.asarray(value, dtype=self.dtype) makes one)")
    return value if dtype is None or value.dtype == dtype else np.asarray(value, dtype=dtype)


def check_arrays(layer: Any) -> None:
    """Refuse what a layer of one's own put in its dicts that a model cannot hold: a
    parameter or buffer that is no array, or a parameter without its gradient buffer."""
    who = type(layer).__name__
    for kind in ("params", "buffers"):
        for k, v in getattr(layer, kind, {}).items():
            check_new(v, k, f"{who}: {kind}")
    for k in layer.params:
        if not isinstance(layer.grads.get(k), np.ndarray):
            raise ValueError(f"{who}: expected a gradient buffer grads[{k!r}] for params[{k!r}] "
                             f"(self.add_param(name, value) makes both), got "
                             f"{type(layer.grads.get(k)).__name__}; grads has {list(layer.grads)}")


def rebind(store: dict[str, np.ndarray], key: str, value: np.ndarray) -> None:
    """Point ``store[key]`` at ``value`` itself, in an :class:`ArrayDict` or a plain dict
    (a user's layer may set ``self.params = {...}``)."""
    if isinstance(store, ArrayDict):
        store.rebind(key, value)
    else:
        store[key] = value


def generators(layer: Any) -> list[tuple[str, np.random.Generator]]:
    """The numpy Generators ``layer`` holds in its instance attributes, by attribute name
    (``rng``, as the library's layers, or ``_rng``, ``gen``: a layer of one's own)."""
    return [(k, v) for k, v in vars(layer).items() if isinstance(v, np.random.Generator)]


def name_of(layer: Any) -> str:
    """The layer's repr when short and on one line, else its class name (a model)."""
    name = repr(layer)
    return type(layer).__name__ if "\n" in name or len(name) > 60 else name


def state_dict(layer: Any) -> dict[str, np.ndarray]:
    """Copies of the parameters and buffers, by their dotted names."""
    return {k: v.copy() for k, v in (*layer.params.items(), *layer.buffers.items())}


def load_state_dict(layer: Any, state: Any, strict: Any) -> IncompatibleKeys:
    """Copy ``state`` into the layer's own arrays; all checked before any is written."""
    who = f"{name_of(layer)}.load_state_dict"
    if not isinstance(state, Mapping):
        raise TypeError(f"{who}: expected a mapping of names to arrays (from state_dict()), "
                        f"got {type(state).__name__}")
    if not isinstance(strict, bool | np.bool_):
        raise TypeError(f"{who}: expected strict to be True or False, got {strict!r}")
    target = {**layer.params, **layer.buffers}
    missing = [k for k in target if k not in state]
    unexpected = sorted((k for k in state if k not in target), key=str)
    if strict and (missing or unexpected):
        from ..interop import is_torch_name  # (interop imports the layers)

        torch_names = unexpected and all(is_torch_name(k) for k in unexpected)
        also = (": a PyTorch state_dict? bp.from_torch(model, state_dict) converts its "
                "names and layouts" if torch_names else " (strict=False loads the names "
                "that match)")
        raise ValueError(f"{who}: expected the names {list(target)}; missing {missing}, "
                         f"unexpected {unexpected}{also}")
    sources = {k: _source(state[k], dst, k, who) for k, dst in target.items() if k in state}
    owners = {"": layer, **dict(layer.named_layers())}
    for k, src in sources.items():
        if k in layer.buffers:  # the owning layer knows what its buffers may hold
            owner, name = owner_of(owners, k)
            owner._check_buffer(name, src, k, who)
    for k, src in sources.items():
        np.copyto(target[k], src, casting="same_kind")  # in place: optimizers keep their views
    return IncompatibleKeys(missing, unexpected)


def owner_of(owners: dict[str, Any], key: str) -> tuple[Any, str]:
    """``(layer, name)`` for a model's dotted ``key`` (``"1.run.mean"``): the layer of
    the longest path in ``owners`` (path -> layer) that prefixes it, and the name its
    layer calls it (a layer's own name may hold dots)."""
    path = key
    while path:
        path = path.rpartition(".")[0]
        if path in owners:
            return owners[path], key[len(path) + 1:] if path else key
    return owners[""], key


def _source(value: Any, dst: np.ndarray, key: str, who: str) -> np.ndarray:
    """``value`` as an array ``dst`` may take: the same shape, a real number dtype that
    casts to ``dst.dtype`` within its kind (float64 into float32, as PyTorch's copy)."""
    value = tensor_values(value, who, key)  # a tensor's data (its own errors name the key)
    try:  # a copy: the state may hold this model's own arrays (say, two layers swapped)
        src = np.array(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who}: expected an array for {key!r}, got {type(value).__name__} "
                        f"({err})") from None
    if src.dtype.kind not in "biuf" or not np.can_cast(src.dtype, dst.dtype, "same_kind"):
        raise TypeError(f"{who}: expected {key!r} as real numbers castable to {dst.dtype}, "
                        f"got dtype {src.dtype}")
    if src.shape == () and dst.shape == (1,):  # a scalar for a one-element buffer (as
        src = src.reshape(1)  # PyTorch's 0-d num_batches_tracked for BatchNorm's (1,))
    if src.shape != dst.shape:
        raise ValueError(f"{who}: expected {key!r} of shape {dst.shape}, got {src.shape}")
    if src.dtype.kind == "f" and src.dtype.itemsize > dst.dtype.itemsize:
        with np.errstate(over="ignore"):  # 1e39 would become inf in float32, silently
            over = np.isfinite(src) & ~np.isfinite(src.astype(dst.dtype))
        if over.any():
            raise ValueError(f"{who}: expected {key!r} within the range of {dst.dtype}, got "
                             f"{int(over.sum())} value(s) that overflow it (largest "
                             f"{np.abs(src[over]).max():.3g})")
    return src
