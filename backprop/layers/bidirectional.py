"""Bidirectional: a recurrent layer run over the sequence both ways, the two outputs merged
(Keras' ``Bidirectional``, PyTorch's ``bidirectional=True``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import boolean
from ..initializers import make_rng
from ._as_layer import as_layer
from ._recurrent import Recurrent
from .base import Container, Layer

MERGE_MODES = ("concat", "sum", "mul", "ave")


class Bidirectional(Container):
    """An LSTM, GRU or RNN read forwards and a second one read backwards in time, merged.

    ::

        Forward:   y_f = fwd(x)    y_b = bwd(x[:, ::-1])[:, ::-1]    x (N, T, D), y_f, y_b (N, T, H)
                   y = [y_f, y_b] (N, T, 2H) 'concat' | y_f + y_b 'sum' | y_f ⊙ y_b 'mul'
                       | (y_f + y_b) / 2 'ave'
                   return_sequences=False: y_f, y_b (N, H) are each direction's own last step,
                   fwd's h at t = T-1 and bwd's at t = 0 (it reads the sequence from the end)
        Backward:  dy_f, dy_b = dy[..., :H], dy[..., H:] | dy, dy | dy ⊙ y_b, dy ⊙ y_f
                       | dy / 2, dy / 2
                   dx = fwd.backward(dy_f) + bwd.backward(dy_b[:, ::-1])[:, ::-1]

    Each step's output then sees the whole sequence: the past through ``fwd``, the future
    through ``bwd``. ``'concat'`` is PyTorch's layout (the forward's ``H`` features, then the
    backward's); with ``return_sequences=False`` it is PyTorch's
    ``torch.cat([h_n[-2], h_n[-1]], 1)`` and Keras' output. The children are
    ``[("forward_layer", fwd), ("backward_layer", bwd)]`` (Keras' attribute names), so their
    parameters appear here as ``"forward_layer.W"``, ``"backward_layer.W"``...; PyTorch's
    ``weight_ih_l0_reverse`` and the other ``_reverse`` arrays are the backward layer's
    (``from_torch`` loads them there). Saving rebuilds both children; ``get_config()``
    holds ``merge_mode`` and the dtype.

    Each forward starts both directions from zero states, or from ``layer(x, initial_state)``
    in PyTorch's layout (``h0 (2, N, H)``, forward then backward; LSTM ``(h0, c0)``; or
    Keras' list ``[h_f, h_b]``, LSTM ``[h_f, c_f, h_b, c_b]``); after it ``layer.state`` is
    PyTorch's ``h_n`` (``(2, N, H)``, LSTM ``(h_n, c_n)``), each direction's own in
    ``layer.forward_layer.state`` and ``layer.backward_layer.state``; ``backward(dy,
    d_state=...)`` takes a loss on it, and ``layer.d_initial_state`` is then the initial
    state's gradient. ``stateful=True`` children are refused: the backward direction reads each
    piece from its end, so a state carried over from the previous piece would join the
    wrong ends. Padded sequences: ``layer(x, lengths=l)`` or ``mask=m`` (or a mask from
    ``Embedding(mask_zero=True)`` in a Sequential): the backward direction reads the mask
    reversed too, so it starts at each row's last real step, as PyTorch's packed sequences.

    Args:
        forward_layer: The :class:`LSTM`, :class:`GRU` or :class:`RNN` run forwards in time
            (Keras' ``layer``, passed first).
        merge_mode: ``'concat'`` (default), ``'sum'``, ``'mul'`` or ``'ave'`` (Keras' modes).
        backward_layer: The layer run backwards; default a new layer of the forward's class
            and config with weights of its own (drawn from ``rng``). Given: of the same
            class, sizes, ``return_sequences`` and dtype.
        rng: Generator or seed for the default backward layer's weights.
        dtype: Must equal the layers' dtype (the default).

    Raises:
        TypeError: a layer that is no LSTM, GRU or RNN, a backward layer of another class,
            a dtype that differs.
        ValueError: an unknown ``merge_mode``; a backward layer of other sizes or
            ``return_sequences``, or the forward layer itself; a ``stateful`` layer. Input
            checks (in forward) are the children's.
    """

    _cache_attrs = ("_y_shape", "_y_f", "_y_b")

    def __init__(self, forward_layer: Layer, *, merge_mode: str = "concat",
                 backward_layer: Layer | None = None,
                 rng: np.random.Generator | int | None = None, dtype: Any = None) -> None:
        _recurrent(forward_layer, "forward_layer")
        super().__init__(dtype=forward_layer.dtype if dtype is None else dtype)
        if forward_layer.dtype != self.dtype:
            raise TypeError(f"Bidirectional: expected a forward_layer in {self.dtype}, got "
                            f"{forward_layer!r} in {forward_layer.dtype}")
        if not isinstance(merge_mode, str) or merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: expected merge_mode in {MERGE_MODES}, got "
                             f"{merge_mode!r}")
        if rng is not None:  # named here, not by the backward layer built from it
            rng = make_rng(rng, "Bidirectional")
        if backward_layer is None:
            backward_layer = type(forward_layer)(**forward_layer.get_config(), rng=rng)
        else:
            _check_backward(forward_layer, backward_layer)
        self.forward_layer, self.backward_layer = forward_layer, backward_layer
        self.merge_mode = merge_mode
        self._y_shape: tuple[int, ...] | None = None
        self._y_f: np.ndarray | None = None  # 'mul' only: each factor's share of dy
        self._y_b: np.ndarray | None = None

    @property
    def return_sequences(self) -> bool:
        """Whether the output has every step ``(N, T, ·)`` or one vector ``(N, ·)`` (the
        children's setting)."""
        return bool(self.forward_layer.return_sequences)

    def __call__(self, x: np.ndarray, initial_state: Any = None, *, training: bool = False,
                 mask: Any = None, lengths: Any = None) -> np.ndarray:
        """``layer(x)``, ``layer(x, initial_state)`` (PyTorch's ``lstm(x, (h0, c0))`` with
        ``(2, N, H)`` arrays), ``layer(x, lengths=l)`` or ``mask=m`` (padded sequences)."""
        return self.forward(x, training=training, initial_state=initial_state, mask=mask,
                            lengths=lengths)

    # -- the state of both directions, in PyTorch's layout ----------------------------
    @property
    def state(self) -> Any:
        """Both directions' final states after a forward, PyTorch's ``h_n``: ``(2, N, H)``,
        forward then backward (LSTM: the pair ``(h_n, c_n)``); None before a forward."""
        return _stacked(self.forward_layer.state, self.backward_layer.state)

    @property
    def d_initial_state(self) -> Any:
        """After a backward from a given initial state: its gradient, in its layout."""
        return _stacked(self.forward_layer.d_initial_state,
                        self.backward_layer.d_initial_state)

    def _halves(self, value: Any, what: str) -> tuple[Any, Any]:
        """``value`` for both directions -> (forward's, backward's): PyTorch's ``(2, N, H)``
        array (LSTM: a pair of them), or Keras' list, the forward's parts then the
        backward's (``[h_f, h_b]``, LSTM ``[h_f, c_f, h_b, c_b]``)."""
        if value is None:
            return None, None
        k = len(self.forward_layer._state_parts)  # 1, LSTM 2
        parts = list(value) if isinstance(value, (tuple, list)) else [value]
        if len(parts) == 2 * k:  # Keras: the forward's, then the backward's
            return (tuple(parts[:k]) if k > 1 else parts[0],
                    tuple(parts[k:]) if k > 1 else parts[1])
        if len(parts) == k and all(getattr(p, "ndim", 0) == 3 and p.shape[0] == 2 or p is None
                                   for p in parts):
            fwd = [None if p is None else p[0] for p in parts]
            bwd = [None if p is None else p[1] for p in parts]
            return (tuple(fwd), tuple(bwd)) if k > 1 else (fwd[0], bwd[0])
        torch_form = "a pair (h, c) of (2, N, H) arrays" if k > 1 else "a (2, N, H) array"
        keras_form = "[h_f, c_f, h_b, c_b]" if k > 1 else "[h_f, h_b]"
        # arrays in the right number, of the wrong shape: a ValueError; anything else a TypeError
        shaped = len(parts) in (k, 2 * k) and all(hasattr(p, "shape") for p in parts)
        raise (ValueError if shaped else TypeError)(
            f"{self!r}: expected {what} in PyTorch's form, {torch_form} (forward, then "
            f"backward), or as Keras' list {keras_form} of (N, H) arrays, got "
            f"{_describe(value)}")

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward`` with a padding mask; returns ``(y, the mask of y)`` (see
        :meth:`Layer.forward_masked`)."""
        y = self.forward(x, training=training, mask=mask)
        return y, mask if self.return_sequences else None

    def children(self) -> list[tuple[str, Layer]]:
        return [("forward_layer", self.forward_layer), ("backward_layer", self.backward_layer)]

    def forward(self, x: np.ndarray, *, training: bool = False, initial_state: Any = None,
                mask: Any = None, lengths: Any = None) -> np.ndarray:
        """Both directions over ``x``; ``initial_state``: PyTorch's ``h0`` ``(2, N, H)``
        (LSTM ``(h0, c0)``), forward then backward (see :meth:`_halves`); ``lengths`` or
        ``mask`` (see the recurrent layers): padded sequences, each direction skipping the
        padded steps (the backward one starts at each row's last real step, as PyTorch's
        packed sequences)."""
        if type(training) is not bool:  # "False", a str, would train the children
            training = boolean(training, "training", repr(self))
        init_f, init_b = self._halves(initial_state, "initial_state")
        if mask is not None or lengths is not None:
            mask = self.forward_layer._steps(x, mask, lengths)[2]
        y_f = self.forward_layer.forward(x, training=training, initial_state=init_f,
                                         mask=mask)  # checks x
        try:
            y_b = self.backward_layer.forward(
                x[:, ::-1], training=training, initial_state=init_b,
                mask=None if mask is None else mask[:, ::-1])
        except BaseException:
            self.forward_layer.clear_cache()
            raise
        if self.return_sequences:
            y_b = y_b[:, ::-1]  # back in x's time order
        mode = self.merge_mode
        if mode == "concat":
            y = np.concatenate([y_f, y_b], axis=-1)
        elif mode == "mul":
            y = y_f * y_b
        else:
            y = y_f + y_b
            if mode == "ave":
                y *= 0.5
        if training:
            self._y_shape = y.shape
            if mode == "mul":
                self._y_f, self._y_b = y_f, y_b
        return y

    def backward(self, dy: np.ndarray, *, d_state: Any = None) -> np.ndarray:
        """``dx`` from ``dy``; ``d_state``: ``∂L/∂`` of the final states (``state``'s layout,
        a decoder reading them), either part of an LSTM's pair may be None."""
        ds_f, ds_b = self._halves(d_state, "d_state")
        self.forward_layer._state_grads(ds_f)  # both checked before either cache is taken
        self.backward_layer._state_grads(ds_b)
        dy_f, dy_b = self._split(dy)
        dx = self.forward_layer.backward(dy_f, d_state=ds_f)
        dx += self.backward_layer.backward(dy_b, d_state=ds_b)[:, ::-1]  # in x's order
        return dx

    def backward_params(self, dy: np.ndarray) -> None:
        dy_f, dy_b = self._split(dy)  # the first layer: no dx from either direction
        self.forward_layer.backward_params(dy_f)
        self.backward_layer.backward_params(dy_b)

    def _split(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Check ``dy``; return ``(dy_f, dy_b)``, each direction's share of it, ``dy_b`` in
        the backward layer's own (reversed) time order."""
        mode = self.merge_mode
        if mode == "mul":
            shape, y_f, y_b = self._pop("_y_shape", "_y_f", "_y_b")
        else:
            shape = self._pop("_y_shape")
        self._check_dy(dy, shape)
        if mode == "concat":
            h = self.forward_layer.hidden_size
            dy_f, dy_b = dy[..., :h], dy[..., h:]
        elif mode == "mul":
            dy_f, dy_b = dy * y_b, dy * y_f
        else:
            dy_f = dy_b = dy * 0.5 if mode == "ave" else dy
        return dy_f, dy_b[:, ::-1] if self.return_sequences else dy_b

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        return (self.forward_layer.gemm_shapes(x_shape, input_grad)
                + self.backward_layer.gemm_shapes(x_shape, input_grad))

    def get_config(self) -> dict[str, Any]:
        return {"merge_mode": self.merge_mode, "dtype": str(self.dtype)}

    def __repr__(self) -> str:
        parts = [repr(self.forward_layer)]
        if self.merge_mode != "concat":
            parts.append(f"merge_mode={self.merge_mode!r}")
        if repr(self.backward_layer) != parts[0]:
            parts.append(f"backward_layer={self.backward_layer!r}")
        return f"Bidirectional({', '.join(parts)})"


def _recurrent(layer: Any, what: str) -> None:
    """Refuse anything but a non-stateful LSTM, GRU or RNN."""
    as_layer(layer, "Bidirectional", what)
    if not isinstance(layer, Recurrent):
        raise TypeError(f"Bidirectional: expected {what} to be an LSTM, GRU or RNN, got "
                        f"{layer!r}")
    if layer.stateful:
        raise ValueError(f"Bidirectional: expected {what} with stateful=False, got {layer!r} "
                         f"with stateful=True (the backward direction reads each piece from "
                         f"its end: a state carried from the last piece would join the "
                         f"wrong ends)")


def _check_backward(fwd: Recurrent, bwd: Any) -> None:
    """Refuse a ``backward_layer`` that cannot stand beside ``fwd``."""
    _recurrent(bwd, "backward_layer")
    if type(bwd) is not type(fwd):
        raise TypeError(f"Bidirectional: expected a backward_layer of the forward layer's "
                        f"class {type(fwd).__name__}, got {bwd!r}")
    if bwd is fwd:
        raise ValueError(f"Bidirectional: expected a backward_layer other than the forward "
                         f"layer, got the same {fwd!r} (one set of weights, whose gradients "
                         f"the second backward would overwrite); leave backward_layer out "
                         f"for a new one")
    for name in ("input_size", "hidden_size", "return_sequences"):
        if getattr(bwd, name) != getattr(fwd, name):
            raise ValueError(f"Bidirectional: expected a backward_layer with the forward "
                             f"layer's {name}={getattr(fwd, name)!r} ({fwd!r}), got "
                             f"{bwd!r}")
    if bwd.dtype != fwd.dtype:
        raise TypeError(f"Bidirectional: expected a backward_layer in the forward layer's "
                        f"{fwd.dtype}, got {bwd!r} in {bwd.dtype}")


def _stacked(fwd: Any, bwd: Any) -> Any:
    """Two directions' states (arrays, or LSTM pairs) as PyTorch's ``(2, N, H)`` arrays."""
    if fwd is None or bwd is None:
        return None
    if isinstance(fwd, tuple):
        return tuple(np.stack([f, b]) for f, b in zip(fwd, bwd, strict=True))
    return np.stack([fwd, bwd])


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        inner = ", ".join(str(getattr(v, "shape", type(v).__name__)) for v in value)
        return f"a {type(value).__name__} of {len(value)} ({inner})"
    shape = getattr(value, "shape", None)
    return type(value).__name__ + ("" if shape is None else f" of shape {shape}")
