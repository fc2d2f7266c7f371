"""Sequential: a stack of layers run in order, and the model users train."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import serialization, training
from ._delegates import delegates
from ._fit_arrays import narrowed
from ._validate import as_array, boolean, check_unmasked, fits, float_dtype, sample_shape
from .display import Summary, summary_rows
from .layers import _as_layer, _blame, _flat, _gemm_walk
from .layers._blame import blame_dx, blame_output, check_output
from .layers._flat import check_distinct, copy_flat_views, flat_base, flatten_parameters, set_flat
from .layers._masks import masked_forward, model_mask, refuse_call
from .layers._stateful import recurrent_layers, states_kept
from .layers.base import Container, Layer
from .layers.embedding import index_layer


class Sequential(Container):
    """Layers applied in order; backward runs the delta recursion from the top.

    ::

        Forward:   y = f_L(... f_2(f_1(x)))
        Backward:  dx = f_1.backward(... f_L.backward(dy))      δ flows from the loss down

    On construction every parameter and gradient moves into one flat buffer each
    (``model.flat_params``, ``model.flat_grads``; the layers keep views of them), so
    optimizers update the whole model in one vectorised pass. A model nested in
    another (directly or in a Residual) then holds a slice of the outer buffers.
    Create optimizers after the outermost model is built.

    Args:
        layers: The layers, in order: a list, or the layers themselves as PyTorch's
            ``nn.Sequential`` takes them (not an OrderedDict: layers are numbered).
        dtype: Model dtype; by default that of the first layer with parameters or
            buffers (else the first layer's; with none and no ``dtype`` given, the first
            such layer ``add`` appends sets it). Layers with parameters or buffers must be
            in it; backprop's layers without any (activations, pooling, Flatten, ...)
            take it, in place, so ``Sequential([Dense(4, 2, dtype=np.float64), ReLU()])``
            is a float64 model (a layer object shared with a model of another dtype
            follows the last one built; give each model its own).
    """

    _forwards, _forward_input = 0, None  # training forwards since a backward: note_forward

    def __init__(self, layers: Iterable[Layer] | Layer = (), *more: Layer,
                 dtype: Any = None) -> None:
        if isinstance(layers, Layer) or (isinstance(layers, type)  # a class: as_layer says
                                         and issubclass(layers, Layer)):  # to create one
            # Sequential(Dense(...), ReLU()), as in PyTorch
            layers = (layers, *more)
        elif more:
            raise TypeError(f"Sequential: expected the layers as one list or as separate "
                            f"arguments, got a {type(layers).__name__} followed by "
                            f"{len(more)} more argument(s)")
        elif (not isinstance(layers, Iterable) or isinstance(layers, (str, bytes, dict))
              or getattr(layers, "ndim", 1) == 0):  # a 0-d array cannot be iterated
            hint = " (names are not kept: list(d.values()))" if isinstance(layers, dict) else ""
            raise TypeError(f"Sequential: expected a list of layers, got "
                            f"{type(layers).__name__}{hint}")
        self.layers: list[Layer] = [_as_layer.as_layer(layer, "Sequential", f"layer {i}")
                                    for i, layer in enumerate(layers)]
        stateful = [layer for layer in self.layers if not _flat.stateless(layer)]
        open_dtype = dtype is None and not stateful  # the first add() with parameters sets it
        if dtype is None:
            dtype = (stateful or self.layers)[0].dtype if self.layers else np.float32
        super().__init__(dtype=dtype)
        self._open_dtype = open_dtype
        for i, layer in enumerate(self.layers):  # all checked before any is recast
            if layer.dtype != self.dtype and not _flat.stateless(layer):
                raise TypeError(f"Sequential: expected every layer in {self.dtype}, got layer "
                                f"{i} {layer!r} in {layer.dtype} (build it with dtype=...)")
        check_distinct(self, "Sequential")
        self.output_mask: np.ndarray | None = None  # the last forward's padding mask
        for layer in self.layers:
            if layer.dtype != self.dtype:
                layer._cast(np.dtype(self.dtype))
        self._flatten()

    def _flatten(self) -> None:
        flatten_parameters(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Sequential:
        params = self.parameters()  # copied as views of one new buffer: no re-flattening,
        copy_flat_views(memo, [p.value for p in params])  # so an optimizer copied along
        copy_flat_views(memo, [p.grad for p in params])  # (in memo) trains the copy
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__dict__, memo))
        return new

    def __getstate__(self) -> dict[str, Any]:  # less the forward count (a weak reference)
        return _blame.without_count(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickle copies each array on its own (as would a deepcopy of a nested model
        # alone, whose views tile part of a buffer: see __deepcopy__), so such a copy's
        # parameters are no views of one flat buffer: flatten them (fit needs it). A
        # shallow copy shares the layers, still flat: re-homing them would strand the
        # original's optimizer.
        self.__dict__.update(_blame.without_count(state))
        values = [p.value for p in self.parameters()]
        if values and flat_base(values) is None:
            self._flatten()

    @property
    def flat_params(self) -> np.ndarray | None:
        """All parameters as one contiguous 1-D view (None if there are none)."""
        return flat_base([p.value for p in self.parameters()])

    @flat_params.setter
    def flat_params(self, values: Any) -> None:
        """Copy ``values`` into the parameters (``model.flat_params = saved``), never rebinding.

        Raises:
            ValueError: the model has no parameters, or ``values`` is not 1-D of num_params.
            TypeError: ``values`` is not an array of real numbers.
        """
        set_flat(self.flat_params, values, "Sequential.flat_params")

    @property
    def flat_grads(self) -> np.ndarray | None:
        """All gradient buffers as one contiguous 1-D view, parallel to ``flat_params``."""
        return flat_base([p.grad for p in self.parameters()])

    def add(self, layer: Layer) -> None:
        """Append a layer (Keras habit). Optimizers made before this must be remade."""
        _as_layer.as_layer(layer, "Sequential.add", "the layer")
        if layer.dtype != self.dtype and not _flat.stateless(layer):
            if not (self.__dict__.get("_open_dtype") and all(map(_flat.stateless, self.layers))):
                raise TypeError(f"Sequential.add: expected a layer in {self.dtype}, got "
                                f"{layer!r} in {layer.dtype} (Sequential(dtype=...) sets a "
                                f"model's)")
            self._cast(np.dtype(layer.dtype))  # no dtype given: the first with parameters'
        self.layers.append(layer)
        try:
            check_distinct(self, "Sequential.add")
        except ValueError:
            self.layers.pop()
            raise
        if layer.dtype != self.dtype:
            layer._cast(np.dtype(self.dtype))
        self._flatten()

    def children(self) -> list[tuple[str, Layer]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def reset_state(self) -> None:
        """Forget the kept state of every ``stateful`` recurrent layer inside (Keras'
        ``model.reset_states()``): between independent sequences, or epochs."""
        for layer in recurrent_layers(self):
            layer.reset_state()

    # -- the two passes -------------------------------------------------------------
    def __call__(self, x: Any, *others: Any, training: bool = False,
                 src_key_padding_mask: Any = None, lengths: Any = None,
                 **options: Any) -> np.ndarray:
        """``model(x)``; ``src_key_padding_mask`` (PyTorch's name in its transformer
        blocks): a padding mask ``(N, T)``, True at padding; or ``lengths`` ``(N,)``, the
        real steps of each row (``pack_padded_sequence``'s). (``mask=`` is refused: it is
        PyTorch's attention mask there; Keras' padding mask is ``forward(x, mask=m)``.)"""
        if others or options:  # PyTorch's block(x, src_mask), encoder(x, mask=causal)
            refuse_call(others, options)
        return self.forward(x, training=training, src_key_padding_mask=src_key_padding_mask,
                            lengths=lengths)

    def forward(self, x: Any, *, training: bool = False, mask: np.ndarray | None = None,
                lengths: Any = None, src_key_padding_mask: Any = None) -> np.ndarray:
        """Run every layer; ``x`` is cast once to the model dtype (no copy if it is).

        Real numbers of any dtype (ints, bools, other floats) are cast; anything else
        (complex, strings, objects) is refused with a TypeError. The indices of a first
        :class:`~backprop.layers.Embedding` are not cast: it checks them itself.

        A padding mask ``(N, T)`` (True: a real step), made by ``Embedding(...,
        mask_zero=True)`` or ``Masking`` or given as ``mask`` (or as ``lengths`` ``(N,)``:
        the first ``lengths[i]`` steps of row ``i`` are real; or as PyTorch's
        ``src_key_padding_mask``, True at padding: one of the three), goes from layer to layer
        (:meth:`Layer.forward_masked`); the last one is ``model.output_mask``.

        A training forward that fails part-way (a layer refuses its input) drops every
        layer's cache, so no backward runs on a mix of two batches' caches. Caches are the
        arrays themselves: leave ``x`` and ``y`` as they are until the backward (a ``y``
        a layer keeps, as ReLU's, is read-only)."""
        if type(training) is not bool:  # "False", a str, would train; np.bool_ is fine
            training = boolean(training, "training", "Sequential.forward")
        given = x  # (see note_forward)
        if type(x) is not np.ndarray:
            if isinstance(x, np.ndarray):  # np.matrix, memmap, a masked array
                check_unmasked(x, "Sequential", "input")
                x = np.asarray(x)
            elif type(x).__module__.split(".")[0] == "pandas":  # a Series or DataFrame
                x = as_array(x, "Sequential", "input")
        if getattr(x, "dtype", None) is None or x.dtype != self.dtype:  # (float64 == None is True)
            x = (self._as_model_dtype(x, "input") if index_layer(self) is None
                 else as_array(x, "Sequential", "input"))
        if mask is not None or lengths is not None or src_key_padding_mask is not None:
            mask = model_mask(x, mask, src_key_padding_mask, index_layer(self) is not None,
                              lengths)
        try:
            for layer in self.layers:
                if mask is None and not layer.makes_mask:
                    x = layer.forward(x, training=training)
                else:
                    x, mask = masked_forward(self, layer, x, mask, training)
        except BaseException as err:
            if training:  # else the layers below hold this batch's caches, those above
                self.clear_cache()  # an older one's: a backward would mix the two
            blame_output(self, layer, x, err)  # x: what the layer before handed on
            raise
        self.output_mask = mask
        x = check_output(self, x, training)  # a layer of one's own upcast: named
        if training:
            _blame.note_forward(self, given)
            return _blame.read_only_if_cached(self, x)  # y -= t would change dx silently
        return x

    @property
    def makes_mask(self) -> bool:  # type: ignore[override]
        """Whether a padding mask starts here (see :meth:`Layer.forward_masked`)."""
        return any(layer.makes_mask for layer in self.layers)

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward`` with a padding mask; returns ``(y, the mask of y)`` (see
        :meth:`Layer.forward_masked`)."""
        y = self.forward(x, training=training, mask=mask)
        return y, self.output_mask

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Propagate ``dy`` down the stack, filling every layer's grads.

        The gradients are overwritten, not added to (PyTorch accumulates until
        ``zero_grad``): to accumulate micro-batches, sum ``flat_grads`` copies yourself.

        Args:
            dy: ∂L/∂y for the model output (e.g. ``loss.backward()``); floats of
                another dtype are cast, ints and bools refused (TypeError).
            input_grad: Return ∂L/∂x (else None). Training passes False: the first layer
                with parameters then skips its ``dx`` product, and the layers below it
                (which have nothing to learn) only drop their caches.
        """
        if type(dy) is not np.ndarray and isinstance(dy, np.ndarray):  # np.matrix, memmap
            dy = np.asarray(dy)
        if type(input_grad) is not bool:  # as forward's training: "False" would be True
            input_grad = boolean(input_grad, "input_grad", "Sequential.backward")
        if getattr(dy, "dtype", None) is None or dy.dtype != self.dtype:  # (as forward)
            dy = self._as_model_dtype(dy, "dy", "f")  # a gradient of ints: labels, likely
        stop = 0 if input_grad else self._first_trainable()
        _blame.check_forwards(self)  # warns after two training forwards of different inputs
        if not self.layers:
            return dy if input_grad else None
        try:  # a refused dy that a layer of one's own returned: that layer is named
            for layer in reversed(self.layers[stop + 1:]):
                dy = layer.backward(dy)
            layer = self.layers[stop]
            dx = layer.backward(dy) if input_grad else layer.backward_params(dy)
        except (TypeError, ValueError, RuntimeError) as err:
            blame_dx(self, layer, dy, err)
            raise
        for layer in self.layers[:stop]:  # none when input_grad (stop is 0)
            layer.clear_cache()
        return dx if input_grad else None

    def _dummy(self, shape: tuple[int, ...]) -> np.ndarray:
        """Zeros to trace shapes with: indices for a model that starts with an Embedding."""
        return np.zeros(shape, dtype=np.intp if index_layer(self) else self.dtype)

    def _as_model_dtype(self, x: Any, what: str, kinds: str = "biuf") -> np.ndarray:
        a = as_array(x, "Sequential", what)
        if a.dtype.kind not in kinds:
            if a.dtype == object and not isinstance(x, (np.ndarray, list, tuple)):
                raise TypeError(f"Sequential: expected {what} as an array, got "
                                f"{type(x).__name__}")
            real = "floats" if kinds == "f" else "real numbers"
            raise TypeError(f"Sequential: expected {what} of {real} (cast to the model's "
                            f"{self.dtype}), got dtype {a.dtype}")
        return narrowed(a, self.dtype, "Sequential", what)

    def _first_trainable(self) -> int:
        return next((i for i, layer in enumerate(self.layers) if layer.params), 0)

    def gemm_shapes(self, x_shape, input_grad=True):
        return [s for shapes in self.layer_gemm_shapes(x_shape, input_grad) for s in shapes]

    def layer_gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                          ) -> list[list[tuple[int, int, int]]]:
        """:meth:`gemm_shapes` per top-level layer (one forward on zeros finds the shapes)."""
        out, x, runs_dx = [], self._dummy(x_shape), _gemm_walk.runs_dx
        first = self._first_trainable()
        with states_kept(self):
            for i, layer in enumerate(self.layers):  # (runs_dx: a first layer's dx may run)
                out.append(layer.gemm_shapes(x.shape, runs_dx(layer, input_grad or i > first)))
                x = layer.forward(x)
        return out

    # -- container protocol ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> Any:
        """The layer at ``index``, or for a slice a Sequential of the same layer objects
        (not copies: training it trains them in this model; its ``add()`` would move
        their arrays out of this model's buffers). A slice numbers its layers from 0:
        ``model[2:].state_dict()`` names the first ``"0.W"``, where PyTorch keeps
        ``"2.weight"``; load such a state into ``model[2:]``, not into ``model``."""
        if isinstance(index, slice):
            sub = Sequential.__new__(Sequential)  # shares layers; keeps their flat views
            sub.layers, sub.dtype = self.layers[index], self.dtype
            sub.output_mask = None  # as a built model's, before its first forward
            return sub
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential: expected an int index or a slice, got "
                            f"{type(index).__name__} {index!r}")
        if not -len(self.layers) <= index < len(self.layers):  # IndexError ends iteration
            raise IndexError(f"Sequential: expected a layer index in [{-len(self.layers)}, "
                             f"{len(self.layers)}), got {index}")
        return self.layers[index]

    def __repr__(self) -> str:
        if not self.layers:
            return "Sequential([])"
        lines = [f"  ({i}) " + repr(layer).replace("\n", "\n  ")  # nested ones indented
                 for i, layer in enumerate(self.layers)]
        dt = "" if self.dtype == np.float32 else f", dtype='{self.dtype}'"
        return "Sequential([\n" + ",\n".join(lines) + f"\n]{dt})"

    def get_config(self) -> dict[str, Any]:
        return {"dtype": str(self.dtype)}

    def _cast(self, dtype: np.dtype) -> None:
        super()._cast(dtype)
        self._flatten()

    def astype(self, dtype: Any) -> Sequential:
        """Return a copy of the model (weights included) in another float dtype."""
        return super().astype(float_dtype(dtype, "Sequential.astype"))  # type: ignore[return-value]

    # -- inspection -----------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...] | None = None) -> Summary:
        """Table of layers, output shapes and parameter counts.

        Args:
            input_shape: Shape of one sample (no batch axis; an int ``n`` is ``(n,)``, a
                list a tuple).
                Guessed from a first Dense layer when omitted (``(in_features,)``; when
                the model does not take that, as a token model ending in a Permute or a
                model whose sizes do not match, output shapes show as "?", with a line
                saying why under the table, as they do with no Dense first).
        """
        if input_shape is not None:
            shape = sample_shape(input_shape, "Sequential.summary", index_layer(self) is not None)
            fits("Sequential.summary", (2, *shape), self.dtype, None, "a traced batch")
            return Summary(self._summary_rows(shape), self.num_params)
        first = self.layers[0] if self.layers else None
        while isinstance(first, Sequential) and first.layers:  # a nested model's first
            first = first.layers[0]
        note = ""
        if hasattr(first, "in_features"):
            try:
                return Summary(self._summary_rows((first.in_features,)), self.num_params)
            except ValueError as err:  # the guess does not fit: no shapes, as without one
                note = (f"Output shapes: an input (N, {first.in_features}), the in_features "
                        f"of {first!r}, failed: {err.__cause__ or err}")
        return Summary(self._summary_rows(None), self.num_params, note)

    def _summary_rows(self, input_shape: tuple[int, ...] | None) -> list[tuple[str, str, int]]:
        # two samples: a BatchNorm without running statistics refuses one per channel
        x = None if input_shape is None else self._dummy((2, *input_shape))
        # its forwards on zeros move no recurrent layer's state (nor weights: summary_rows)
        return summary_rows(self.layers, x, input_shape, states_kept(self))

    # -- training and saving: the functions of training.py and serialization.py -----------
    # Each method takes that function's own signature and docstring (``model`` as
    # ``self``), so ``help(model.fit)`` and editors list every argument.
    @delegates(training.fit)
    def fit(self, x: Any, y: Any, **kwargs: Any) -> Any:
        return training.fit(self, x, y, **kwargs)

    @delegates(training.evaluate)
    def evaluate(self, x: Any, y: Any, **kwargs: Any) -> dict[str, float]:
        return training.evaluate(self, x, y, **kwargs)

    @delegates(training.predict)
    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        return training.predict(self, x, **kwargs)

    @delegates(serialization.save)
    def save(self, path: Any, **kwargs: Any) -> None:
        serialization.save(self, path, **kwargs)
