"""The backward cache of layers and losses: written by a training forward, taken by backward."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any, ClassVar

from .._quiet import quiet_methods
from ._blame import FORWARD_COUNT, numpy_float


class Cached:
    """Backward-cache helpers shared by layers and losses.

    A subclass lists its cache attributes in ``_cache_attrs``; forward sets them
    only when training, and backward takes them with :meth:`_pop`.
    """

    _cache_attrs: ClassVar[tuple[str, ...]] = ()
    _needs: ClassVar[str] = ("a preceding training forward; got none (inference forwards "
                             "keep no cache, and each forward serves one backward: a layer "
                             "keeps one cache, so a second training forward replaces the "
                             "first's, and two inputs need a forward and backward each)")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "backward_params"):  # a Layer (a Loss's forward takes a target)
            _check_forward(cls)
        quiet_methods(cls)  # no NumPy floating-point warnings, as PyTorch (see _quiet)
        overrides = "children" in cls.__dict__ and any("children" in vars(base)
                                                       for base in cls.__mro__[1:])
        if overrides and not hasattr(cls, "_merged"):  # a Layer's own children(): not a Container
            raise TypeError(
                f"{cls.__name__}: a layer made of layers (it defines children()) subclasses "
                f"bp.Container, not bp.Layer: a Layer's params, grads, state_dict and saving "
                f"hold its own arrays only, so its layers' weights would be left out there")

    def __setattr__(self, name: str, value: Any) -> None:
        if type(self.__dict__.get(name)) is float and numpy_float(value):
            value = float(value)  # a setting stays a Python float: an np.float64 would
        object.__setattr__(self, name, value)  # make float32 outputs float64 (NEP 50)

    def _pop(self, *names: str) -> Any:
        """Take the cached arrays ``names`` and clear them, in one step.

        Raises:
            RuntimeError: backward came without a ``forward(..., training=True)``
                before it (or came twice for one forward).
        """
        if len(names) == 1:  # most layers cache one array: no tuple, no generator
            value = self.__dict__.get(names[0])
            if value is None:
                raise RuntimeError(f"{self!r}: backward() needs {self._needs}")
            self.__dict__[names[0]] = None
            return value
        values = tuple(self.__dict__.get(n) for n in names)
        if any(v is None for v in values):
            raise RuntimeError(f"{self!r}: backward() needs {self._needs}")
        for n in names:
            self.__dict__[n] = None
        return values[0] if len(values) == 1 else values

    @property
    def cache(self) -> dict[str, Any]:
        """What a training forward kept for backward, by name without the underscore
        (``{"x": ..., "mask": ...}``; each value None before a training forward and once
        backward has taken it). The arrays
        themselves, to look at: changing one changes the backward, and a backward may
        reuse one as scratch for ``dx`` (LeakyReLU's ``d``, BatchNorm's ``xc``, Dropout's
        ``mask``): ``.copy()`` what you keep past it. A container's holds
        its layers' by name too (``model.cache["0"]["x"]``, as ``model[0].cache["x"]``)."""
        own = {n.lstrip("_"): getattr(self, n, None) for n in self._cache_attrs}
        children = getattr(self, "children", None)
        return own if children is None else {**own, **{k: c.cache for k, c in children()}}

    @property
    def has_cache(self) -> bool:
        """True while a forward's cache waits for its backward."""
        return any(self.__dict__.get(n) is not None for n in self._cache_attrs)

    def clear_cache(self) -> None:
        """Drop any cached arrays (after an aborted step, or forwards that no backward
        follows: a model's count of them is reset too, see ``warn_forwards``)."""
        for n in self._cache_attrs:
            self.__dict__[n] = None
        for name in FORWARD_COUNT:  # a Sequential's count of forwards (see _blame)
            self.__dict__.pop(name, None)

    @contextlib.contextmanager
    def _cache_kept(self) -> Iterator[None]:
        """Run forwards whose cache must not outlive the block: afterwards the cache is
        what it was before, so a pending backward (an explicit step's loss, between its
        forward and backward while ``evaluate`` scores with the same object) still works."""
        saved = {n: self.__dict__.get(n) for n in self._cache_attrs}
        try:
            yield
        finally:
            self.__dict__.update(saved)


def _check_forward(cls: type) -> None:
    """A TypeError, when the class is defined, for a layer's ``forward`` that takes no
    ``training`` keyword (PyTorch's ``forward(self, x)``): every model passes it."""
    forward = cls.__dict__.get("forward")
    try:
        params = inspect.signature(forward).parameters if callable(forward) else None
    except (TypeError, ValueError):  # no signature to read (a builtin): trusted
        return
    if params is None or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    if "training" not in params or params["training"].kind is inspect.Parameter.POSITIONAL_ONLY:
        raise TypeError(f"{cls.__name__}.forward: expected forward(self, x, *, training=False) "
                        f"(models pass training=, True when backward follows: cache then), "
                        f"got forward{inspect.signature(forward)}")
