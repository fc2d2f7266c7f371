"""What LSTM, GRU and RNN share: arguments, checks, the input projection, the weight
gradients as single GEMMs, and the in-place sigmoid of their gates.

Each layer runs its own time loop (:mod:`.recurrent`, :mod:`.gru`, :mod:`.rnn`);
everything that does not depend on the step is here, done once over all ``N·T`` rows.
Inside, every sequence is time-major, ``(T, N, ·)``: each step's rows are one contiguous
block, so the per-step passes run on contiguous arrays, and ``h_{t-1}`` for all steps is
``y[:-1]``, a view.
The input and ``dy`` are turned once on the way in, the output and ``dx`` on the way out
(the steps' passes on batch-first ``(N, T, ·)`` slices were strided, one row per sample:
LSTM(64, 128) on 64x50x64 float32 forward + backward 47 -> 41 ms with this layout).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import initializers
from .._openblas import matmul_add
from .._validate import boolean, check_array, in_range, nonneg_int, positive_int
from ..backend import negate, xp
from ._masks import call_mask
from ._sums import column_sum
from .base import Layer

_STACK = "stack layers instead: Sequential([{0}(D, H), {0}(H, H)])"


def add_product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out += a @ b``: one BLAS call with ``beta = 1`` where NumPy's OpenBLAS has it
    (no product array and no second pass over ``out``), else the product and an add (also
    for arrays it refuses, before doing anything: another array type, odd strides)."""
    add = matmul_add(out.dtype) if type(out) is np.ndarray and out.size else None
    try:
        if add is not None:
            add(a, b, out)
            return
    except ValueError:
        pass
    out += a @ b


def carry(out: np.ndarray, prev: np.ndarray | None, skip: np.ndarray | None) -> None:
    """A padded step keeps the state: rows ``skip`` (an index array, None: none) of ``out``
    become those of ``prev`` (the step before; None: the zero initial state)."""
    if skip is not None:
        out[skip] = 0.0 if prev is None else prev[skip]


def sigmoid_(a: np.ndarray) -> None:
    """``a = 1 / (1 + exp(-a))`` in place; where ``exp(-a)`` overflows the result is 0, the
    limit (see :func:`backend.expit`). The caller silences the overflow warning, once
    around its time loop (``np.errstate`` costs ~3 us a call)."""
    module = xp(a)
    negate(a, out=a)
    module.exp(a, out=a)
    a += 1.0
    module.reciprocal(a, out=a)


class Recurrent(Layer):
    """Base of the recurrent layers: ``G`` gates of ``H`` units each (LSTM 4, GRU 3, RNN 1).

    Parameters, in Dense's convention (``x @ W``), with PyTorch's gate order:
    ``W (D, G·H)`` (PyTorch's ``weight_ih_l0`` transposed), ``U (H, G·H)``
    (``weight_hh_l0`` transposed), ``b (G·H,)`` (``bias_ih_l0``), ``b_h (G·H,)``
    (``bias_hh_l0``); all drawn from U(±1/sqrt(H)), as PyTorch's.
    """

    _set_once = frozenset({"input_size", "hidden_size", "bias"})  # see Layer._set_once

    gates = 1
    _state_parts = ("h",)  # LSTM: ("h", "c")
    _states_paused = False  # True inside ``states_kept``: every forward starts from 0

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True,
                 return_sequences: bool = True, stateful: bool = False,
                 dtype: Any = np.float32, rng: np.random.Generator | int | None = None,
                 batch_first: bool = True, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, proj_size: int = 0) -> None:
        super().__init__(dtype=dtype)
        who = type(self).__name__
        self.input_size = positive_int(input_size, "input_size", who)
        self.hidden_size = positive_int(hidden_size, "hidden_size", who)
        self.bias = boolean(bias, "bias", who)
        self.return_sequences = boolean(return_sequences, "return_sequences", who)
        self.stateful = boolean(stateful, "stateful", who)
        self.state: Any = None  # the last forward's final state (see forward)
        self.d_initial_state: Any = None  # the last backward's dL/d(initial state)
        _refuse_torch_options(who, batch_first, num_layers, bidirectional, dropout, proj_size)
        rng = initializers.make_rng(rng, who)
        d, h, gh = self.input_size, self.hidden_size, self.gates * self.hidden_size
        shapes = {"W": (d, gh), "U": (h, gh)}
        if self.bias:
            shapes.update(b=(gh,), b_h=(gh,))
        for name, shape in shapes.items():  # PyTorch: every array U(±1/sqrt(hidden_size))
            self.init_param(name, "torch_uniform", shape, rng, fan_in=h)

    def __call__(self, x: np.ndarray, initial_state: Any = None, *, training: bool = False,
                 mask: Any = None, lengths: Any = None) -> np.ndarray:
        """``layer(x)``, ``layer(x, initial_state)`` (PyTorch's ``lstm(x, (h0, c0))``; the
        output only: the final state is then ``layer.state``), ``layer(x, lengths=l)`` or
        ``layer(x, mask=m)`` for padded sequences (see :meth:`_steps`)."""
        return self.forward(x, training=training, initial_state=initial_state, mask=mask,
                            lengths=lengths)

    def forward_masked(self, x: Any, mask: np.ndarray | None, *, training: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward`` with a padding mask; returns ``(y, the mask of y)`` (see
        :meth:`Layer.forward_masked`)."""
        y = self.forward(x, training=training, mask=mask)
        return y, mask if self.return_sequences else None

    # -- padded sequences ---------------------------------------------------------------
    def _steps(self, x: Any, mask: Any, lengths: Any) -> tuple[int, int, np.ndarray | None]:
        """Check ``x (N, T, D)`` and the call's padding mask; return ``(N, T, mask)``, the
        mask ``(N, T)`` (True: a real step) from ``mask`` or PyTorch's ``lengths`` (the
        first ``lengths[i]`` steps of row ``i``), None for none or all steps real.

        A padded step is skipped, as by PyTorch's packed sequences and Keras' masks: the
        state passes through it unchanged (``h_t = h_{t-1}``, ``c_t = c_{t-1}``), its
        input is read as 0 and gets no gradient, its output is 0 (PyTorch's padding);
        ``return_sequences=False`` and ``layer.state`` give each row's state after its
        last real step (PyTorch's ``h_n``). Steps may be masked anywhere (Keras' masks),
        not only at the end."""
        n, steps = self._check_sequence(x, self.input_size)
        return n, steps, call_mask(self, mask, lengths, n, steps)

    @staticmethod
    def _skips(mask: np.ndarray | None, steps: int) -> list[np.ndarray | None]:
        """Per step, the rows it skips (an index array), None where it skips none."""
        if mask is None:
            return [None] * steps
        return [None if col.all() else np.flatnonzero(~col) for col in mask.T]

    @property
    def cache(self) -> dict[str, Any]:
        """What a training forward kept, by name, batch-first ``(N, T, ...)`` as the
        layer's input and output: views of the time-major arrays the loops use (changing
        one changes the backward); ``h0`` (``c0``): the initial state, None for zeros."""
        return {name: v.swapaxes(0, 1) if v is not None and v.ndim == 3 else v
                for name, v in super().cache.items()}

    # -- state ----------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the kept state: the next forward of a ``stateful`` layer starts from 0."""
        self.state = None

    def _initial(self, initial_state: Any, n: int) -> list[np.ndarray | None]:
        """The initial ``[h0]`` (LSTM ``[h0, c0]``) of this forward, each ``(N, H)`` (own
        C-ordered copies), or ``None`` entries for PyTorch's zero state: ``initial_state``
        if given, else a stateful layer's last final state."""
        if initial_state is None:
            if not (self.stateful and self.state is not None) or self._states_paused:
                return [None] * len(self._state_parts)
            initial_state, what = self.state, "the kept state (stateful=True)"
            h_kept = initial_state[0] if isinstance(initial_state, tuple) else initial_state
            if h_kept.shape[0] != n:
                raise ValueError(f"{self!r}: stateful=True carries the last batch's state, "
                                 f"{h_kept.shape[0]} sequences, into this batch of {n}; "
                                 f"keep the batch size fixed, or call reset_state() first")
        else:
            what = "initial_state"
        return [a.copy(order="C") for a in self._state_arrays(initial_state, what, n)]

    def _state_arrays(self, value: Any, what: str, n: int,
                      optional: bool = False) -> list[Any]:
        """``value`` as ``[h]`` (LSTM ``[h, c]``), each checked as ``(N, H)`` in the layer's
        dtype: an array (LSTM a pair), PyTorch's ``(1, N, H)``, Keras' list; with
        ``optional`` an entry may be None (a state part the loss does not read)."""
        parts = self._state_parts
        labels = [f"d{p}" if optional else f"{p}0" for p in parts]  # dh, dc / h0, c0
        if len(parts) > 1:
            if not (isinstance(value, (tuple, list)) and len(value) == 2):
                raise TypeError(f"{self!r}: expected {what} as a pair ({', '.join(labels)}) "
                                f"of (N, H) arrays, got {type(value).__name__}")
            arrays = list(value)
        else:
            if isinstance(value, (tuple, list)) and len(value) == 1:
                value = value[0]  # Keras' [h0]
            arrays = [value]
        out = []
        for label, a in zip(labels, arrays, strict=True):
            if a is None and optional:
                out.append(None)
                continue
            shape = getattr(a, "shape", None)
            if shape is not None and len(shape) == 3 and shape[0] == 1:
                a = a[0]  # PyTorch's (num_layers = 1, N, H)
            check_array(a, self, (n, self.hidden_size), self.dtype, f"{what}'s {label}")
            out.append(a)
        return out

    def _final(self, *last: np.ndarray) -> None:
        """Keep the final state ``h_{T-1}`` (LSTM ``(h, c)``) as ``layer.state`` (copies)."""
        self._keep(a.copy() for a in last)

    def _keep(self, arrays: Iterator[np.ndarray]) -> None:
        """``layer.state`` from its parts: ``h`` itself, LSTM's a pair ``(h, c)``."""
        kept = tuple(arrays)
        self.state = kept if len(kept) > 1 else kept[0]

    def _take_initial(self) -> list[np.ndarray | None]:
        """Take the cached initial state (``[h0]``, LSTM ``[h0, c0]``; None for zeros), after
        ``dy`` passed its check (a refused ``dy`` leaves the whole cache in place)."""
        names = [f"_{part}0" for part in self._state_parts]
        taken = [self.__dict__.get(name) for name in names]
        for name in names:
            self.__dict__[name] = None
        return taken

    def _state_grads(self, d_state: Any) -> list[np.ndarray | None]:
        """``backward``'s ``d_state``, ``∂L/∂`` of the final state, as ``[dh]`` (LSTM
        ``[dh, dc]``), ``None`` where not given; checked before backward takes the cache."""
        x = self.__dict__.get("_x")
        if d_state is None or x is None:  # (no cache: backward's own error follows)
            return [None] * len(self._state_parts)
        return self._state_arrays(d_state, "d_state", x.shape[1], optional=True)

    def _cast(self, dtype: np.dtype) -> None:
        super()._cast(dtype)
        if self.state is not None:  # a stateful layer carries it on in the new dtype
            self._keep(a.astype(dtype) for a in as_tuple(self.state))
        self.d_initial_state = None

    # -- forward ------------------------------------------------------------------
    def _project(self, x: np.ndarray, bias: np.ndarray | None, mask: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(xt, a)``: the input time-major ``xt (T, N, D)`` (kept for ``dW``; 0 at padded
        steps) and ``a = xt @ W + bias`` for every step at once: one GEMM
        ``(T·N, D) @ (D, G·H)``, shaped ``(T, N, G·H)``."""
        n, steps = x.shape[:2]
        gh = self.gates * self.hidden_size
        if mask is None:
            xt = np.ascontiguousarray(x.transpose(1, 0, 2))
        else:  # copied, not multiplied by the mask: NaN or inf padding reads as 0 too
            xt = np.zeros_like(x, shape=(steps, n, self.input_size))
            np.copyto(xt, x.transpose(1, 0, 2), where=mask.T[..., None])
        a = (xt.reshape(steps * n, self.input_size) @ self.params["W"]).reshape(steps, n, gh)
        if bias is not None:
            a += bias
        return xt, a

    def _output(self, y: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Every step's ``h`` batch-first ``(N, T, H)`` from the time-major ``y`` (0 at padded
        steps), or the last one's ``(N, H)``; copies even where the transpose is contiguous
        (N = 1 or T = 1): the cache keeps ``y``, and the caller may write into the output."""
        if not self.return_sequences:
            return y[-1].copy()
        if mask is None:
            return y.transpose(1, 0, 2).copy(order="C")
        out = np.zeros_like(y, shape=(y.shape[1], y.shape[0], y.shape[2]))
        np.copyto(out, y.transpose(1, 0, 2), where=mask[..., None])
        return out

    # -- backward -----------------------------------------------------------------
    def _dh_start(self, dy: np.ndarray, n: int, steps: int
                  ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray | None]]:
        """Check ``dy`` and take the cached mask; return ``(dh, dyt, skips)``: ``∂L/∂h`` of
        the last step from beyond the sequence, 0 with ``return_sequences`` (each step adds
        its ``dyt[t]``, ``dy`` time-major, 0 at padded steps, whose output is the constant
        0) and else ``dy`` itself (``dyt`` None); each step's padded rows (:meth:`_skips`)."""
        h = self.hidden_size
        self._check_dy(dy, (n, steps, h) if self.return_sequences else (n, h))
        mask = self.__dict__.get("_mask")  # accepted dy: taken with the rest of the cache
        self._mask = None
        skips = self._skips(mask, steps)
        if not self.return_sequences:
            return dy.copy(), None, skips
        if mask is not None:  # copied, not multiplied: a NaN there is not read either
            dyt = np.zeros_like(dy, shape=(steps, n, h))
            np.copyto(dyt, dy.transpose(1, 0, 2), where=mask.T[..., None])
            return np.zeros_like(dy[:, 0]), dyt, skips
        return np.zeros_like(dy[:, 0]), np.ascontiguousarray(dy.transpose(1, 0, 2)), skips

    def _finish(self, xt: np.ndarray, y: np.ndarray, dgx: np.ndarray, dgh: np.ndarray,
                need_dx: bool, h0: np.ndarray | None) -> np.ndarray | None:
        """The gradients from the gate deltas of every step (time-major), each one GEMM over
        ``T·N`` rows: ``dW = X.T @ dGx``, ``dU = Hprev.T @ dGh`` (the steps from 1 against
        ``y[:-1]``, step 0 against ``h0`` unless it is 0), ``db``, ``db_h`` their sums, and
        ``dx = dGx @ W.T`` turned batch-first (``dGx``, ``dGh`` one array for LSTM, RNN)."""
        steps, n = xt.shape[:2]
        d, h, gh = self.input_size, self.hidden_size, self.gates * self.hidden_size
        gx = dgx.reshape(steps * n, gh)
        np.matmul(xt.reshape(steps * n, d).T, gx, out=self.grads["W"])
        np.matmul(y[:-1].reshape(-1, h).T, dgh[1:].reshape(-1, gh), out=self.grads["U"])
        if h0 is not None:
            self.grads["U"] += h0.T @ dgh[0]
        if self.bias:
            column_sum(gx, self.grads["b"])  # over T·N rows: blocked (np.sum adds them
            column_sum(dgh.reshape(steps * n, gh), self.grads["b_h"])  # one by one)
        if not need_dx:
            return None
        return np.ascontiguousarray((gx @ self.params["W"].T).reshape(steps, n, d)
                                    .transpose(1, 0, 2))

    def backward(self, dy: np.ndarray, *, d_state: Any = None) -> np.ndarray:
        """``dx`` from ``dy``; ``d_state``: ``∂L/∂`` of the final state as well (``dh``,
        LSTM ``(dh, dc)``, either may be None), where the state feeds something else (a
        decoder). With an initial state, ``layer.d_initial_state`` gets its gradient."""
        return self._backward(dy, True, d_state)  # type: ignore[return-value]

    def backward_params(self, dy: np.ndarray) -> None:
        self._backward(dy, False, None)  # the first layer: no dx, one GEMM fewer

    def _backward(self, dy: np.ndarray, need_dx: bool, d_state: Any) -> np.ndarray | None:
        raise NotImplementedError

    def gemm_shapes(self, x_shape: tuple[int, ...], input_grad: bool = True
                    ) -> list[tuple[int, int, int]]:
        n, steps, d = x_shape
        h, gh = self.hidden_size, self.gates * self.hidden_size
        kept = int(self.stateful)  # from the second batch on, h_{-1} is the kept state
        shapes = [(n * steps, d, gh)]  # x @ W, all steps at once
        shapes += [(n, h, gh)] * (steps - 1 + kept)  # h_{t-1} @ U per step (none for h_{-1} = 0)
        shapes += [(n, gh, h)] * (steps - 1 + kept)  # dh_{t-1} = dG_t @ U.T per step
        shapes += [(d, n * steps, gh)]  # dW
        shapes += [(h, n * (steps - 1), gh)] if steps > 1 else []  # dU: h_0 .. h_{T-2}
        shapes += [(h, n, gh)] if kept else []  # and dU's h_{-1} term (see _finish)
        return shapes + [(n * steps, gh, d)] if input_grad else shapes  # dx = dG @ W.T


def as_tuple(state: Any) -> tuple[np.ndarray, ...]:
    """A kept state as a tuple of its parts: ``(h,)``, LSTM's ``(h, c)``."""
    return state if isinstance(state, tuple) else (state,)


def _refuse_torch_options(who: str, batch_first: Any, num_layers: Any, bidirectional: Any,
                          dropout: Any, proj_size: Any) -> None:
    """PyTorch's options beyond one batch-first, one-directional layer: a ValueError that
    says what is supported and how to get the rest (a TypeError first for a value of the
    wrong kind, such as an array, which ``!= 1`` or ``if`` would not read as one value)."""
    if not (isinstance(batch_first, (bool, np.bool_)) and batch_first):
        raise ValueError(f"{who}: expected batch_first=True (input (N, T, D), the only layout "
                         f"here), got batch_first={batch_first!r}; a time-major array "
                         f"x (T, N, D) becomes batch-first with x.transpose(1, 0, 2)")
    num_layers = positive_int(num_layers, "num_layers", who)
    bidirectional = boolean(bidirectional, "bidirectional", who)
    dropout = in_range(dropout, "dropout", who, 0.0, 1.0)
    proj_size = nonneg_int(proj_size, "proj_size", who)
    if num_layers != 1:
        raise ValueError(f"{who}: expected num_layers=1, got {num_layers!r}; "
                         + _STACK.format(who))
    if bidirectional:
        raise ValueError(f"{who}: expected bidirectional=False (one layer is one direction), "
                         f"got {bidirectional!r}; wrap the layer for both directions: "
                         f"Bidirectional({who}(D, H))")
    if dropout != 0:
        raise ValueError(f"{who}: expected dropout=0, got {dropout!r}; put a Dropout layer "
                         f"where it should act: between stacked layers (PyTorch's dropout), "
                         f"Sequential([{who}(D, H), Dropout({dropout!r}), {who}(H, H)]), or "
                         f"before the layer (Keras' dropout, on its inputs)")
    if proj_size != 0:
        raise ValueError(f"{who}: expected proj_size=0 (no projection of h), got "
                         f"{proj_size!r}; add Dense(H, {proj_size!r}) after the layer "
                         f"(it projects the output, not the state fed back)")
