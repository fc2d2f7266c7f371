"""The Layer contract every layer follows, and the containers' shared plumbing.

A layer is two functions and two dicts:

* ``forward(x, *, training=False) -> y``: when ``training`` is true it keeps what
  its backward needs in private attributes named after their symbol (``_x``,
  ``_mask``, ``_y``, listed in ``_cache_attrs``; ``layer.cache`` shows them by name);
  in inference it keeps nothing.
* ``backward(dy) -> dx``: takes ``dy = ∂L/∂y``, overwrites ``grads`` in place,
  frees the cache (a ``dy`` it refuses leaves the cache for the corrected call; see
  :meth:`Layer._check_dy`) and returns ``dx = ∂L/∂x`` — one step of the delta recursion
  ``δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ f′(z⁽ˡ⁾)`` (textbook W, of shape (out, in); with
  Dense's ``W`` (in, out) and a batch of rows, ``(dy @ W.T) * f′(z)``).
* ``params`` and ``grads``: dicts with the same keys, shapes and dtype, made in
  ``__init__``. ``buffers`` holds saved state that is not trained (BatchNorm's
  running statistics). Assigning to a name they already have writes into its array
  (:class:`._state.ArrayDict`), so the flat buffer and optimizers keep that array.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import initializers
from .._validate import check_array, float_dtype
from . import _blame, _members, _state
from ._alloc import allocated
from ._cached import Cached
from ._gemm_walk import children_gemm_shapes
from ._masks import refuse_mask


class Parameter(NamedTuple):
    """One trainable array and the gradient buffer its layer's backward fills."""

    name: str
    value: np.ndarray
    grad: np.ndarray

    def __repr__(self) -> str:  # not both arrays in full (a 784x512 W prints 400k numbers)
        return (f"Parameter(name={self.name!r}, shape={self.value.shape}, "
                f"dtype={self.value.dtype})")


class Layer(Cached):
    """Base class of every layer (subclass it to write your own).

    A subclass calls ``super().__init__(dtype=dtype)``, registers its weights with
    :meth:`add_param` (a running statistic goes in ``self.buffers[name]``: saved and cast
    with them, but kept as given, unlike a parameter: make a float one in ``self.dtype``, as
    ``np.zeros(n, dtype=self.dtype)``, not NumPy's float64), stores each constructor argument
    under its own name (what :meth:`get_config`, ``repr`` and saving read; one it turns
    into private state, as a stride, goes in ``_set_once``, so that assigning it later is
    refused), lists its cache attributes in
    ``_cache_attrs``, and writes ``forward`` and ``backward``; a layer of layers subclasses
    :class:`Container`. Check it with :func:`backprop.check_gradients`. One that draws random
    numbers keeps a numpy Generator in an attribute, under any name (``self.rng =
    bp.initializers.make_rng(rng)``, which ``bp.manual_seed`` seeds when ``rng`` is None, as
    the library's layers): ``save`` and ``fit(resume=...)`` keep every such Generator's state.

    Neither pass writes into its arguments. What they return may share memory with them,
    as PyTorch's view operations do: ``Identity``, ``Flatten``, ``Unflatten``, ``Reshape``
    and ``Permute`` return views of ``x`` (and of ``dy``), ``PositionalEmbedding``'s
    backward returns ``dy`` itself, and the dropouts return ``x`` itself in inference
    (``Dropout`` and ``Dropout1D/2D/3D`` at rate 0 too; PyTorch's alpha dropouts also at
    rate 0); copy an output before writing into it. Sizes past this machine's memory (a
    parameter; at forward, a padding, output size or scale) are a MemoryError naming the layer.
    An inf, NaN or overflow gives PyTorch's inf and NaN without NumPy's RuntimeWarnings
    (the library's passes read ``"warn"`` settings as ``"ignore"``; ``"raise"`` is kept).
    """

    # Settings the constructor turns into private state (a geometry, which arrays exist):
    # set once. Assigned later they would show in repr and be saved, and change nothing.
    _set_once: ClassVar[frozenset[str]] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._set_once and hasattr(self, name):
            raise _blame.set_once_error(self, name, value)
        super().__setattr__(name, value)  # a NumPy float setting: see Cached.__setattr__

    def __init__(self, *, dtype: Any = np.float32) -> None:
        self.dtype = float_dtype(dtype, type(self).__name__, np.float32)  # None: default
        # dicts that write an assignment to an existing name into its array (see ArrayDict)
        who = type(self).__name__
        self.grads: dict[str, np.ndarray] = _state.ArrayDict(who=who, kind="grads")
        self.params: dict[str, np.ndarray] = _state.ArrayDict(
            who=who, kind="params", grads=self.grads,
            closed=type(self).__module__.startswith("backprop."))  # see ArrayDict
        self.buffers: dict[str, np.ndarray] = _state.ArrayDict(who=who, kind="buffers")

    # -- the contract -------------------------------------------------------------
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """Compute ``y`` from ``x``; cache what backward needs only if ``training``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Fill ``grads`` from ``dy = ∂L/∂y`` and return ``dx = ∂L/∂x``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def backward_params(self, dy: np.ndarray) -> None:
        """Fill ``grads`` only; the first layer of a model needs no ``dx``. Layers whose
        ``dx`` costs a matrix product (Dense, convolutions) override this to skip it; the
        default runs :meth:`backward` and drops ``dx``."""
        self.backward(dy)

    def __call__(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    # -- padding masks (Embedding(mask_zero=True), Masking: see layers/_masks.py) ----
    #: The layer works on each step of a sequence ``(N, T, ...)`` alone, so a padding mask
    #: from an earlier layer of a Sequential passes through it (Keras' supports_masking).
    mask_passes: ClassVar[bool] = False
    #: The layer makes a padding mask (Embedding(mask_zero=True), Masking).
    makes_mask: ClassVar[bool] = False

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward`` in a Sequential that carries a padding mask ``(N, T)`` (True: a real
        step; None: none yet); returns ``(y, the mask of y)``. By default the mask passes
        through a layer with ``mask_passes`` and is refused by any other. An override should
        compute ``y`` by calling ``self.forward``: :func:`backprop.trace` records that call."""
        if mask is not None and not self.mask_passes:
            refuse_mask(self)
        return self.forward(x, training=training), mask

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to do: every backward overwrites the gradients (a PyTorch habit, as is
        ``set_to_none``, taken and changing nothing)."""

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        """The matrix products ``(m, k, n)`` one training step of this layer runs.

        Forward and backward together, for an input of ``x_shape``; ``input_grad``
        False leaves out the product that only ``dx`` needs. ``bp.bench`` times
        exactly these to give the GEMM bound of a model. Default: none.
        """
        return []

    # -- parameters ---------------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray) -> None:
        """Register a trainable array and allocate its gradient buffer once (a float array
        of another precision is stored as a copy in the layer's ``dtype``; integers and
        booleans are refused: see :func:`._state.param_value`). In ``__init__`` (or on a
        layer in no model): a layer already in a Sequential refuses it (RuntimeError), as the
        model's flat buffer and its optimizers would never hold or train the new array."""
        _members.refuse_new_param(self, name, f"{type(self).__name__}.add_param")
        value = _state.param_value(value, name, f"{type(self).__name__}.add_param",
                                   self.__dict__.get("dtype"))
        _state.rebind(self.params, name, value)
        _state.rebind(self.grads, name, np.zeros_like(value))

    def init_param(self, name: str, init: Any, shape: tuple[int, ...],
                   rng: np.random.Generator, fan_in: int | None = None) -> None:
        """Draw a parameter with ``init`` (a name or a ``(shape, rng, dtype)`` callable).

        ``fan_in``: for a bias, its weight's fan-in, which ``torch_uniform`` then bounds
        by (``U(±1/sqrt(fan_in))``, PyTorch's bias init), not the bias's own length."""
        draw = initializers.get(init, repr(self), f"the initializer of {name!r}")
        if fan_in is not None and draw is initializers.torch_uniform:
            draw = functools.partial(draw, fan_in=fan_in)
        value = allocated(type(self).__name__, name, shape, self.dtype,
                          lambda: np.asarray(draw(shape, rng, self.dtype), dtype=self.dtype))
        if value.shape != tuple(shape):
            raise ValueError(f"{type(self).__name__}: expected the initializer of {name!r} to "
                             f"return an array of shape {tuple(shape)}, got {value.shape}")
        self.add_param(name, value)

    def children(self) -> list[tuple[str, Layer]]:
        """Named sub-layers (a :class:`Container` overrides this)."""
        return []

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """Yield ``(path, layer)`` for every sub-layer, depth first, each before its own
        sub-layers (``"0"``, ``"2"``, ``"2.block"``, ...); the layer itself is not included."""
        if not isinstance(prefix, str):  # (PyTorch's named_modules(memo, prefix) differs)
            raise TypeError(f"{type(self).__name__}.named_layers: expected prefix, a str put "
                            f"before each path, got {type(prefix).__name__}")
        for name, child in self.children():
            yield prefix + name, child
            yield from child.named_layers(f"{prefix}{name}.")

    def named_slots(self, prefix: str = "") -> Iterator[tuple[str, Layer, str]]:
        """Yield ``(full_name, leaf_layer, key)`` for every parameter, depth first."""
        for key in self.params:
            yield prefix + key, self, key
        for name, child in self.children():
            yield from child.named_slots(f"{prefix}{name}.")

    def frozen_entries(self, key: str) -> Any:
        """The index of the entries of parameter ``key`` whose gradient is 0 by rule, not
        by derivative (Embedding's ``padding_idx`` row), or None (the default): the
        gradient check holds them to that rule instead of central differences."""
        return None

    def parameters(self) -> list[Parameter]:
        """Every trainable array with its gradient buffer, in a stable order."""
        return [Parameter(n, lay.params[k], lay.grads[k]) for n, lay, k in self.named_slots()]

    @property
    def num_params(self) -> int:
        """Number of trainable scalars."""
        return sum(p.value.size for p in self.parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer by name (``"0.W"``, ``"1.running_mean"``),
        as PyTorch's ``state_dict`` (which shares memory instead): a snapshot to keep,
        e.g. the best weights so far, and to load with :meth:`load_state_dict`."""
        return _state.state_dict(self)

    def _check_buffer(self, name: str, value: np.ndarray, key: str, who: str) -> None:
        """Refuse a loaded buffer this layer cannot use (``name``: the layer's own, ``key``:
        the model's dotted name, for the message); none by default. Called for every
        buffer before any array is written."""

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True
                        ) -> _state.IncompatibleKeys:
        """Copy ``state`` (from :meth:`state_dict`) into this layer's own arrays, in place,
        so optimizers built on them stay valid.

        As in PyTorch: each array must have the stored shape and is cast to the layer's
        dtype (float64 into float32; not complex or text); ``strict`` (default) requires
        exactly the layer's names, ``strict=False`` loads those that match. Every array
        is checked before any is written. Returns ``(missing_keys, unexpected_keys)``.

        Raises:
            ValueError: names that do not match (``strict``), or a shape that does not.
            TypeError: ``state`` not a mapping, or a value that is not an array of real
                numbers.
        """
        return _state.load_state_dict(self, state, strict)

    # -- caches (see Cached) ------------------------------------------------------
    @property
    def has_cache(self) -> bool:
        """True while a training forward's cache waits for its backward."""
        return super().has_cache or any(c.has_cache for _, c in self.children())

    def clear_cache(self) -> None:
        """Drop any cached arrays, this layer's and its children's."""
        super().clear_cache()
        self.__dict__["_taken"] = None
        for _, child in self.children():
            child.clear_cache()

    # -- boundary checks ----------------------------------------------------------
    def _check_input(self, x: Any, *dims: int | str | None) -> None:
        check_array(x, self, dims, self.dtype, "input")

    def _check_batched(self, x: Any, min_ndim: int = 1) -> None:
        """Check a batch ``(N, ...)`` of any rank >= ``min_ndim`` in this layer's dtype."""
        self._check_input(x, "N", *(None,) * (max(getattr(x, "ndim", min_ndim), min_ndim) - 1))

    def _check_sequence(self, x: Any, features: int) -> tuple[int, int]:
        """Check a batch of sequences ``x (N, T, features)`` with T >= 1; return ``(N, T)``
        (the recurrent and attention layers)."""
        self._check_input(x, "N", "T", features)
        if x.shape[1] == 0:
            raise ValueError(f"{self!r}: expected input of shape (N, T, {features}) with at "
                             f"least one time step, got {x.shape}")
        return x.shape[0], x.shape[1]

    def _check_dy(self, dy: Any, shape: tuple[int, ...]) -> None:
        """Check ``dy`` against the cached ``shape``. A refused ``dy`` puts back what
        backward's :meth:`_pop` took, so the corrected call still finds the cache."""
        try:
            check_array(dy, self, shape, self.dtype, "dy")
        except (TypeError, ValueError):
            taken = self.__dict__.get("_taken")
            for n, v in zip(*taken, strict=True) if taken else ():
                if self.__dict__.get(n) is None:  # not refilled by a forward since
                    self.__dict__[n] = v
            raise
        finally:
            self.__dict__["_taken"] = None  # accepted: the cache is backward's to free

    def _pop(self, *names: str) -> Any:
        values = super()._pop(*names)
        self.__dict__["_taken"] = (names, values if len(names) > 1 else (values,))
        return values

    # -- configuration, copies, repr ----------------------------------------------
    _config_skip: ClassVar[tuple[str, ...]] = ("rng", "init", "bias_init")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (weights excluded)."""
        sig = inspect.signature(type(self).__init__)
        config = {}
        for name in list(sig.parameters)[1:]:
            if name in self._config_skip or not hasattr(self, name):
                continue
            value = getattr(self, name)
            config[name] = str(value) if isinstance(value, np.dtype) else value
        return config

    def astype(self, dtype: Any) -> Layer:
        """Return a copy of this layer (weights included) in another float dtype (its float
        arrays; an integer buffer, a count, stays as it is, as with PyTorch's ``.double()``)."""
        new = copy.deepcopy(self)
        new._cast(float_dtype(dtype, repr(self)))
        return new

    def _cast(self, dtype: np.dtype) -> None:
        self.clear_cache()
        self.dtype = dtype
        for store in (self.params, self.grads, self.buffers):
            for k in store:  # floats only, as PyTorch's .double(): a count stays an integer
                if store[k].dtype.kind == "f":
                    _state.rebind(store, k, store[k].astype(dtype))
        for _, child in self.children():
            child._cast(dtype)

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, value in self.get_config().items():
            p = sig.parameters[name]
            if name == "dtype":
                if value != "float32":
                    parts.append(f"dtype='{value}'")
            elif p.kind is p.VAR_POSITIONAL:  # Chain(*blocks): as the call that builds it
                parts.extend(map(repr, value))
            elif p.default is inspect.Parameter.empty:
                parts.append(repr(value))
            elif not _same(value, p.default):
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_html_(self) -> str:
        from ..display import layer_html

        return layer_html(self)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class Container(Layer):
    """A layer made of other layers: its params, grads and buffers are theirs.

    Keys are prefixed by the child's name (``"0.W"``). One of your own calls
    ``super().__init__(dtype=dtype)``, keeps its layers as arguments under their names
    (``self.a = a``; saving rebuilds ``cls(a=..., ...)``) or builds them from arguments it
    keeps (``self.width = width``; rebuilt as ``cls(width=...)``), lists them in ``children()``
    (``[("a", self.a), ...]``) and writes ``forward``/``backward`` calling theirs."""

    def __init__(self, *, dtype: Any = np.float32) -> None:
        self.dtype = float_dtype(dtype, type(self).__name__, np.float32)  # None: default

    def _merged(self, attr: str) -> dict[str, np.ndarray]:
        items = ((f"{name}.{k}", v) for name, child in self.children()
                 for k, v in getattr(child, attr).items())
        return _state.ArrayDict(items, who=type(self).__name__, kind=attr, fixed=True)

    @property
    def params(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        """The children's parameters by prefixed name (``"0.W"``), the arrays themselves:
        ``params["0.W"][...] = w`` writes into the layer; new names are refused."""
        return self._merged("params")

    @property
    def grads(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        """The children's gradients by :attr:`params`' names, filled by ``backward``."""
        return self._merged("grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        """The children's non-trained arrays (BatchNorm's running statistics) by name."""
        return self._merged("buffers")

    def gemm_shapes(self, x_shape, input_grad=True):  # type: ignore[no-untyped-def]
        return children_gemm_shapes(self, x_shape, input_grad)  # its children's: _gemm_walk

    def named_slots(self, prefix: str = "") -> Iterator[tuple[str, Layer, str]]:
        for name, child in self.children():
            yield from child.named_slots(f"{prefix}{name}.")

    def add_param(self, name: str, value: np.ndarray) -> None:
        raise TypeError(f"{type(self).__name__}.add_param: a container's params are its layers' "
                        f"(so {name!r} would be lost); hold it in a Layer of its own, listed in "
                        f"children()")

    def _cast(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        for _, child in self.children():
            child._cast(dtype)
