"""The layer tree as JSON, and the registry of layer classes that can be rebuilt.

Used by :mod:`backprop.serialization`: :func:`describe` turns a model into a JSON
node (class name, constructor config, children, rng state) with any arrays moved
out to a dict; :func:`build` turns such a node back into fresh layers.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import numpy as np

from ._codec import decode, encode  # (serialization and checkpoint take them from here)
from ._validate import float_dtype
from .layers._state import generators
from .layers._stateful import restore_state
from .layers.base import Container, Layer

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_user_layers: dict[str, type[Layer]] = {}


# -- the layer registry ---------------------------------------------------------------
@functools.cache
def _builtin_layers() -> dict[str, type[Layer]]:
    """Every layer class exported by backprop.layers, plus Sequential (built once)."""
    from . import layers
    from .sequential import Sequential

    found = {n: getattr(layers, n) for n in getattr(layers, "__all__", dir(layers))}
    found = {n: c for n, c in found.items() if isinstance(c, type) and issubclass(c, Layer)}
    found.pop("Layer", None)
    found.pop("Container", None)
    return {**found, "Sequential": Sequential}  # callers only read it


def _registry() -> dict[str, type[Layer]]:
    return {**_builtin_layers(), **_user_layers}


def register_layer(cls: type[Layer] | None = None, *, name: str | None = None) -> Any:
    """Make a custom layer class loadable by :func:`load` (use directly or as a decorator).

    ``@bp.register_layer`` above ``class MyLayer(bp.Layer)``, or
    ``bp.register_layer(MyLayer)`` before saving and loading. Registering again
    under the same name replaces the earlier class (re-running a notebook cell).

    Args:
        cls: A subclass of :class:`backprop.Layer`.
        name: Name stored in files (default ``cls.__name__``).

    Returns:
        ``cls`` unchanged (or a decorator, when called with ``name`` only).

    Raises:
        TypeError: ``cls`` is not a Layer subclass, or ``name`` not a non-empty str.
        ValueError: ``name`` is already a built-in layer's name.
    """
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"register_layer: expected name as a non-empty str (or None: the "
                        f"class's name), got {name!r}")
    if cls is None:
        return lambda c: register_layer(c, name=name)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer: expected a subclass of backprop.Layer, got {cls!r}")
    key = name or cls.__name__
    builtin = _builtin_layers().get(key)
    if builtin is not None and builtin is not cls:
        raise ValueError(f"register_layer: expected a new name, got {key!r}, which is the "
                         f"built-in {builtin.__module__}.{key} (pass name='...')")
    if builtin is None:
        _user_layers[key] = cls
    return cls


def _name_of(layer: Layer, where: str) -> str:
    names = {cls: key for key, cls in _registry().items()}
    if type(layer) in names:
        return names[type(layer)]
    kind = type(layer).__name__
    for cls, key in names.items():  # the class defined again (a notebook cell re-run) after
        # the model was built: saved under its name, as load will rebuild it (save's
        # rebuild check refuses a definition that no longer fits)
        if (cls.__qualname__, cls.__module__) == (type(layer).__qualname__,
                                                  type(layer).__module__):
            return key
    raise TypeError(f"save: layer {where!r} is a {kind}, which is not registered, so it "
                    f"could not be loaded again; call bp.register_layer({kind}) first (or "
                    "decorate the class with @bp.register_layer)")


# -- the layer tree --------------------------------------------------------------------------
def describe(layer: Layer, where: str, arrays: dict[str, np.ndarray],
             rngs: dict[int, str] | None = None) -> dict[str, Any]:
    """The JSON node that rebuilds ``layer`` (weights excluded).

    A Generator shared by several layers (``Dropout(rng=g)`` twice) is stored once, with
    the first layer that holds it; the others store ``{"same_as": that layer's path}``.
    """
    rngs = {} if rngs is None else rngs  # id(Generator) -> the path that stores it
    config = {k: v for k, v in layer.get_config().items() if not _holds_layers(v)}
    node = {"class": _name_of(layer, where.rstrip(".") or "<model>"),
            "config": encode(config, f"config/{where}", arrays)}
    if "dtype" not in config:  # a constructor without dtype=, cast by astype
        node["dtype"] = np.dtype(layer.dtype).name
    children = layer.children()
    if isinstance(layer, Container):
        node["children"] = [{"name": n, **describe(c, f"{where}{n}.", arrays, rngs)}
                            for n, c in children]
    if getattr(layer, "stateful", False) is True and getattr(layer, "state", None) is not None:
        node["state"] = encode(layer.state, f"state/{where}", arrays)  # resumed bit for bit
    gens = {}  # every Generator attribute by name, each shared one stored once
    for attr, gen in generators(layer):
        if id(gen) in rngs:
            gens[attr] = {"same_as": rngs[id(gen)]}
        else:
            rngs[id(gen)] = ref = _ref(where, attr)
            gens[attr] = encode(gen.bit_generator.state, f"rng/{ref}", arrays)
    if "rng" in gens:  # where files before this one keep it
        node["rng"] = gens.pop("rng")
    return {**node, "rngs": gens} if gens else node


def _ref(where: str, attr: str) -> str:
    """Where a Generator is stored: the layer's path for ``rng`` (as files before), else the
    path and the attribute (``"1._rng"``; a path ends with ``.`` or is empty)."""
    return where if attr == "rng" else where + attr


def _holds_layers(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, Layer) for v in value)
    return isinstance(value, Layer)


def build(node: Any, where: str, arrays: dict[str, np.ndarray], who: str,
          rngs: dict[str, np.random.Generator] | None = None) -> Layer:
    """Rebuild the layer a :func:`describe` node describes (fresh weights)."""
    rngs = {} if rngs is None else rngs  # path -> the Generator rebuilt there
    at = where.rstrip(".") or "<model>"
    children = node.get("children", []) if isinstance(node, dict) else None
    if (not isinstance(node, dict) or not isinstance(node.get("class"), str)
            or not isinstance(children, list)
            or not all(isinstance(c, dict) for c in children)):
        raise ValueError(f"{who}: expected a layer description at {at}, got {node!r:.80}")
    cls = _registry().get(node["class"])
    if cls is None:
        raise ValueError(f"{who}: unknown layer class {node['class']!r} at {at}; define it "
                         f"and call bp.register_layer({node['class']}) before loading")
    config = decode(node.get("config", {}), arrays, who)
    way = _arrangement(cls, config, [c.get("name") for c in children], "children" in node)
    takes = _by_name(cls, config) if way == "own" else {}  # the children it takes, if any
    kids = [(c.get("name"), build(c, f"{where}{c.get('name')}.", arrays, who, rngs))
            for c in children if way != "own" or c.get("name") in takes]
    try:
        with warnings.catch_warnings():  # said when the model was built, not at each load
            warnings.filterwarnings("ignore", message=r"BatchNorm: momentum=",
                                    category=UserWarning)
            layer = _construct(cls, config, kids, way)
        if way == "own" or "dtype" in node:  # as astype left it (its constructor ignores
            # dtype, or takes none): before _adopt compares the children and restores state
            dtype = float_dtype(node["dtype"], who) if "dtype" in node else layer.dtype
            if {leaf.dtype for _, leaf in [("", layer), *layer.named_layers()]} - {dtype}:
                layer._cast(dtype)
        if way == "own":  # its constructor made the rest: check them, restore rng and state
            _adopt(layer, children, where, arrays, who, rngs, dict(kids))
        _restore_extras(layer, node, where, arrays, who, rngs)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"{who}: cannot rebuild {node['class']} at {at} from config "
                         f"{config!r:.200}: {err}") from err
    return layer


def _arrangement(cls: type[Layer], config: Any, names: list[Any], container: bool) -> str:
    """How a layer's children go back into its constructor: ``"none"`` (a layer, or a
    config that is no dict: refused by :func:`_construct`), ``"by name"``
    (``Residual(block=...)``), ``"spread"`` (``*args`` left: ``Chain(*blocks)``),
    ``"list"`` (one required argument left, which none of them is named after, as
    ``Stack(layers)`` keeping ``self.layers``: it takes them all as one list) or ``"own"``
    (no argument is left beyond the config and the children it takes by name, so it builds
    the rest itself: ``Block(width)``, ``Mixed(block, width)``, PyTorch's habit)."""
    if not container or not isinstance(config, dict):
        return "none"
    params, takes = inspect.signature(cls).parameters, _by_name(cls, config)
    if names and all(n in takes for n in names):
        return "by name"
    if any(p.kind is p.VAR_POSITIONAL and name not in config and name not in cls._config_skip
           for name, p in params.items()):
        return "spread"
    return "list" if _list_argument(cls, config, names) else "own"


def _list_argument(cls: type[Layer], config: dict[str, Any], names: list[Any]) -> str | None:
    """The one required argument left when none of the children is passed by name (the
    list ``Stack(layers)`` takes; a list is no config value: it holds layers), else None."""
    params, takes = inspect.signature(cls).parameters, _by_name(cls, config)
    left = [name for name in takes - {"dtype", *cls._config_skip}
            if params[name].default is params[name].empty
            and params[name].kind is not params[name].POSITIONAL_ONLY]
    return left[0] if len(left) == 1 and not takes & set(names) else None


def _by_name(cls: type[Layer], config: dict[str, Any]) -> set[str]:
    """The constructor arguments a child can be passed to by its name: not ``*args`` or
    ``**kwargs``, and not one the config gives already (``norm="layer"`` beside a child
    named ``norm``)."""
    return {name for name, p in inspect.signature(cls).parameters.items()
            if name not in config and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _adopt(layer: Layer, children: list[dict[str, Any]], where: str,
           arrays: dict[str, np.ndarray], who: str, rngs: dict[str, np.random.Generator],
           given: dict[str, Layer] | None = None) -> None:
    """Match the children ``layer``'s constructor built with the saved ones (names,
    classes and settings: one replaced or changed after construction cannot be rebuilt),
    and restore their Generators and states, depth first (except those it was ``given``,
    rebuilt from the file already)."""
    given = given or {}
    have = list(layer.children())
    saved = [c.get("name") for c in children]
    if [n for n, _ in have] != saved:
        raise ValueError(f"expected {type(layer).__name__}'s constructor to build the "
                         f"children {saved}, as saved, got {[n for n, _ in have]}")
    for (name, child), node in zip(have, children, strict=True):
        if name in given:  # rebuilt from the file and passed by name
            continue
        cls = _registry().get(node.get("class"))
        if cls is None or _class_key(type(child)) != _class_key(cls):
            raise ValueError(f"expected its child {name!r} to be a {node.get('class')}, as "
                             f"saved, got a {type(child).__name__} from its constructor")
        built = {k: v for k, v in child.get_config().items() if not _holds_layers(v)}
        saved_config = decode(node.get("config", {}), arrays, who)
        differ = sorted(k for k in {*built, *saved_config} - {"dtype"}  # (cast by build)
                        if not _equal(built.get(k, _MISSING), saved_config.get(k, _MISSING)))
        if differ:
            got = ", ".join(f"{k}={built.get(k)!r:.40} (saved {saved_config.get(k)!r:.40})"
                            for k in differ)
            raise ValueError(
                f"expected its child {name!r} to be built with the saved settings, got {got} "
                f"from its constructor: a child replaced or changed after construction "
                f"cannot be rebuilt by it (set it in the constructor, or take it as an "
                f"argument)")
        _adopt(child, node.get("children", []), f"{where}{name}.", arrays, who, rngs)
        _restore_extras(child, node, f"{where}{name}.", arrays, who, rngs)


_MISSING = object()


def _equal(a: Any, b: Any) -> bool:
    """Two config values read the same: arrays by shape and values, NaN equal to NaN."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _class_key(cls: type) -> tuple[str, str]:
    return cls.__qualname__, cls.__module__  # a class defined again (a notebook re-run)


def _restore_extras(layer: Layer, node: dict[str, Any], where: str,
                    arrays: dict[str, np.ndarray], who: str,
                    rngs: dict[str, np.random.Generator]) -> None:
    """Give a rebuilt layer its saved Generators (or those it shares) and its state."""
    saved = node.get("rngs", {})
    if not isinstance(saved, dict):
        raise ValueError(f"expected its Generators as a dict by attribute, got {saved!r:.80}")
    states = [(attr, decode(enc, arrays, who)) for attr, enc in
              (({"rng": node["rng"]} if "rng" in node else {}) | saved).items()]
    aliases = [(a, s) for a, s in states if isinstance(s, dict) and set(s) == {"same_as"}]
    for attr, state in states:  # the stored ones first: an alias may name one of this
        if all(attr != a for a, _ in aliases):  # layer's own
            _restore_rng(layer, attr, state)
            rngs[_ref(where, attr)] = getattr(layer, attr)
    for attr, state in aliases:
        if state["same_as"] not in rngs:
            raise ValueError(f"expected its Generator shared with an earlier layer or "
                             f"attribute, got {state['same_as']!r}, which stores none")
        setattr(layer, attr, rngs[state["same_as"]])
    if "state" in node:
        restore_state(layer, decode(node["state"], arrays, who))


def _construct(cls: type[Layer], config: dict[str, Any], kids: list[tuple[Any, Layer]],
               way: str) -> Layer:
    if not isinstance(config, dict):
        raise TypeError(f"expected a dict of constructor arguments, got {config!r:.80}")
    if way in ("none", "by name", "own"):
        return cls(**dict(kids), **config)  # kids: none, all or those it takes by name
    if way == "spread":  # Chain(width, *blocks): what comes before *args positionally
        params = list(inspect.signature(cls).parameters.values())
        lead = [p.name for p in params[:[p.kind for p in params].index(
            inspect.Parameter.VAR_POSITIONAL)] if p.name in config]
        rest = {k: v for k, v in config.items() if k not in lead}
        return cls(*[config[k] for k in lead], *[k for _, k in kids], **rest)
    name = _list_argument(cls, config, [n for n, _ in kids])  # Stack(layers=[...])
    return cls(**{name: [k for _, k in kids]}, **config)


def _restore_rng(layer: Layer, attr: str, state: dict[str, Any]) -> None:
    kind = state["bit_generator"]
    if kind not in _BIT_GENERATORS:
        raise ValueError(f"expected a bit generator in {_BIT_GENERATORS}, got {kind!r}")
    gen = getattr(layer, attr, None)
    if gen is not None and not isinstance(gen, np.random.Generator):
        raise ValueError(f"expected a Generator at {attr!r}, got {type(gen).__name__}")
    if gen is None or type(gen.bit_generator).__name__ != kind:
        setattr(layer, attr, gen := np.random.Generator(getattr(np.random, kind)()))
    gen.bit_generator.state = state


_PLAIN = (bool, int, float, str, tuple, type(None))


def _same(a: Any, b: Any) -> bool:
    """``a == b`` as one bool; values that do not compare so (tuples of arrays) count as
    the same (nothing to say about them)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return True


def unkept_arguments(layer: Layer) -> list[str]:
    """The constructor arguments of ``layer`` that it keeps no attribute of the same name
    for, so ``get_config`` cannot give them back (``rng``-like skipped ones aside)."""
    sig = inspect.signature(type(layer).__init__)
    return [k for k, p in list(sig.parameters.items())[1:]
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and k not in layer._config_skip and not hasattr(layer, k)]


def check_settings(model: Any, rebuilt: Any, who: str, rule: str) -> None:
    """A ValueError (ending in ``rule``) where a layer of one's own keeps a constructor
    argument under another name (``self._amount = amount``) and the layer ``save``
    rebuilt holds another value for that attribute, so ``load`` would rebuild it with
    the argument's default. Only arguments without an attribute of their name are
    suspected, and only the plain values (numbers, strings, tuples) of attributes named
    after them (``_amount``) compared, so an argument used once to make the weights
    (restored from the file anyway) and a counter of one's own pass."""
    pairs = [("", model, rebuilt)]
    pairs += [(name, a, b) for (name, a), (_, b) in zip(
        model.named_layers(), rebuilt.named_layers(), strict=False)]
    for name, ours, theirs in pairs:
        if type(ours).__module__.startswith("backprop."):
            continue
        missing = unkept_arguments(ours)
        changed = sorted(k for k, v in vars(ours).items() if k.lstrip("_") in missing
                         and isinstance(v, _PLAIN) and not _same(v, vars(theirs).get(k, v)))
        if changed:
            raise ValueError(
                f"{who}: load would rebuild {type(ours).__name__} ({name or 'the model'}) "
                f"otherwise: it keeps no attribute named {', '.join(map(repr, missing))} (a "
                f"constructor argument), and rebuilt from get_config() it holds other values "
                f"of {', '.join(changed)}. Nothing was written: {rule}")
