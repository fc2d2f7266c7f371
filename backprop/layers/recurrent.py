"""Recurrent layers over batch-first sequences ``(N, T, D)``: LSTM here, GRU and the Elman
RNN in :mod:`.gru` and :mod:`.rnn`, each PyTorch's single layer (``batch_first=True``), from
a zero initial state or a given one (``layer(x, initial_state)``), the final state kept as
``layer.state``, padded sequences by ``lengths=`` or ``mask=``.

The input's share of every gate is one GEMM over all ``N·T`` rows before the loop; each
step adds only ``h_{t-1} @ U``. Inside, sequences are time-major ``(T, N, ·)`` (see
:mod:`._recurrent`). Backward walks the steps in reverse, writing each step's gate deltas
into one ``(T, N, G·H)`` array, and forms ``dW``, ``dU``, the bias sums and
``dx`` from it after the loop, one GEMM each (:class:`._recurrent.Recurrent`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._recurrent import Recurrent, add_product, carry, sigmoid_
from .gru import GRU
from .rnn import RNN

__all__ = ["LSTM", "GRU", "RNN"]


class LSTM(Recurrent):
    """Long short-term memory (PyTorch's ``nn.LSTM(D, H, batch_first=True)``).

    ::

        Forward:   a_t = x_t @ W + b + h_{t-1} @ U + b_h   x (N, T, D), W (D, 4H), U (H, 4H)
                   i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)   (the 4H columns in order)
                   c_t = f ⊙ c_{t-1} + i ⊙ g    h_t = o ⊙ tanh(c_t)   h_{-1}, c_{-1}: h0, c0 or 0
                   y = h (N, T, H), or h_{T-1} (N, H) with return_sequences=False
        Backward:  dh = dy_t + dh_t (from step t+1)     do = dh ⊙ tanh(c_t)
                   dc = dc_t (from step t+1) + dh ⊙ o ⊙ (1 - tanh²(c_t))
                   di, df, dg = dc ⊙ g, dc ⊙ c_{t-1}, dc ⊙ i    dc_{t-1} = dc ⊙ f
                   dG_t = [di·i(1-i), df·f(1-f), dg·(1-g²), do·o(1-o)]   (N, 4H)
                   dh_{t-1} = dG_t @ U.T;  after the loop, over all N·T rows at once:
                   dW = X.T @ dG   dU = Hprev.T @ dG   db = db_h = dG.sum(0)   dx = dG @ W.T

    A training forward keeps the input, gates, ``c``, ``tanh(c)`` and ``h`` of every step,
    so backward recomputes nothing (``layer.cache['gates']`` shows them ``(N, T, 4H)``:
    batch-first views of the time-major arrays the loops use). Keras' ``LSTM(units)`` is
    ``LSTM(input_size, units, return_sequences=False)`` (Keras' default); its weights are
    initialised differently and it has one bias (here ``b + b_h``).

    Args:
        input_size: ``D``, the features of each step.
        hidden_size: ``H``, the units of the state.
        bias: Learn ``b`` and ``b_h`` (default True).
        return_sequences: Output every step's ``h`` (N, T, H) (default, PyTorch's
            ``output``); False: the last step's (N, H) (PyTorch's ``h_n[-1]``), to put a
            ``Dense`` after: ``Embedding -> LSTM(return_sequences=False) -> Dense``.
        stateful: Each forward starts from the last one's final state (Keras' option,
            for one long sequence fed in consecutive pieces of a fixed batch size; no
            gradient flows into the earlier piece); ``reset_state()`` starts from 0. The
            kept state is saved with the model (a resumed ``fit`` goes on bit for bit);
            ``fit``'s validation runs each batch from 0 and leaves it. Train with
            ``fit(..., shuffle=False)`` and batches that divide the data (checked).
        dtype: Parameter dtype (default float32).
        rng: Generator or seed for the initial weights.
        batch_first, num_layers, bidirectional, dropout, proj_size: PyTorch's options,
            accepted only at one batch-first, one-directional layer (``True, 1, False,
            0, 0``); stack layers in a ``Sequential``, both ways: ``Bidirectional``.

    State: ``lstm(x, (h0, c0))`` (``forward(x, initial_state=(h0, c0))``; PyTorch's call,
    arrays ``(N, H)`` or its ``(1, N, H)``) starts from ``(h0, c0)`` instead of zeros; the
    output is still ``y`` alone, and ``lstm.state`` is the final ``(h_{T-1}, c_{T-1})``
    after every forward. ``backward(dy, d_state=(dh, dc))`` adds a loss on the final
    state (a decoder reading it); with an initial state, backward leaves
    ``lstm.d_initial_state = (∂L/∂h0, ∂L/∂c0)``.

    Padded sequences: ``lstm(x, lengths=l)`` (PyTorch's ``pack_padded_sequence``: the first
    ``l[i]`` steps of row ``i`` are real) or ``lstm(x, mask=m)`` (Keras': a boolean
    ``(N, T)``, True at real steps, anywhere); in a Sequential, the mask of an
    ``Embedding(mask_zero=True)`` or ``Masking``. A padded step keeps ``(h, c)``, reads no
    input, outputs 0 and gets no gradient; ``lstm.state`` and ``return_sequences=False``
    give each row's state after its last real step (PyTorch's ``h_n``). Backward: a padded
    step's gate deltas are 0 and ``dh``, ``dc`` pass it unchanged.

    Raises:
        ValueError: a size < 1, another PyTorch option (the message says what to do);
            in forward an input not ``(N, T, D)`` or with ``T = 0``, a state not
            ``(N, H)``, a stateful layer's kept state of another batch size.
        TypeError: an input or state of another dtype than the layer's; a ``mask``
            neither boolean nor numbers, ``lengths`` not integers. (ValueError: either
            of another shape than ``(N, T)`` / ``(N,)``, a mask of numbers other than 0
            and 1, lengths outside ``[0, T]``, both.)
    """

    gates = 4
    _state_parts = ("h", "c")
    _cache_attrs = ("_x", "_y", "_gates", "_c", "_tanh_c", "_h0", "_c0", "_mask")

    def forward(self, x: np.ndarray, *, training: bool = False, initial_state: Any = None,
                mask: Any = None, lengths: Any = None) -> np.ndarray:
        n, steps, mask = self._steps(x, mask, lengths)
        h0, c0 = self._initial(initial_state, n)
        h, u = self.hidden_size, self.params["U"]
        bias = self.params["b"] + self.params["b_h"] if self.bias else None
        xt, gates = self._project(x, bias, mask)  # pre-activations, then gates in place
        skips = self._skips(mask, steps)
        y, c, tanh_c = (np.empty_like(gates[..., :h]) for _ in range(3))  # (T, N, H)
        tanh_g = np.empty_like(gates[0, :, :h])
        with np.errstate(over="ignore"):  # exp(-a) -> inf: σ = 0, the limit
            for t in range(steps):
                a = gates[t]
                h_prev, c_prev = (y[t - 1], c[t - 1]) if t else (h0, c0)
                if h_prev is not None:  # None: h_{-1} = c_{-1} = 0
                    add_product(h_prev, u, a)
                np.tanh(a[:, 2 * h:3 * h], out=tanh_g)  # g aside, then σ over the whole
                sigmoid_(a)  # contiguous row block: half the time of σ on i|f and on o
                a[:, 2 * h:3 * h] = tanh_g  # (strided slices), the same bits
                i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
                np.multiply(i, g, out=c[t])
                if c_prev is not None:
                    c[t] += np.multiply(f, c_prev, out=tanh_c[t])  # tanh_c[t] as scratch
                np.tanh(c[t], out=tanh_c[t])
                np.multiply(o, tanh_c[t], out=y[t])
                carry(y[t], h_prev, skips[t])  # padded rows keep h_{t-1}, c_{t-1}
                carry(c[t], c_prev, skips[t])
        if training:
            self._x, self._y, self._gates, self._c, self._tanh_c = xt, y, gates, c, tanh_c
            self._h0, self._c0, self._mask = h0, c0, mask
        self._final(y[-1], c[-1])
        return self._output(y, mask)

    def _backward(self, dy: np.ndarray, need_dx: bool, d_state: Any) -> np.ndarray | None:
        dh_last, dc_last = self._state_grads(d_state)
        xt, y, gates, c, tanh_c = self._pop("_x", "_y", "_gates", "_c", "_tanh_c")
        steps, n = xt.shape[:2]
        h, u_t = self.hidden_size, self.params["U"].T
        dh, dyt, skips = self._dh_start(dy, n, steps)  # ∂L/∂h_t from the steps after t (and dy)
        h0, c0 = self._take_initial()
        if dh_last is not None:
            dh += dh_last
        # ∂L/∂c_t from the steps after t (and d_state)
        dc = np.zeros_like(dh) if dc_last is None else dc_last.copy()
        # every step's gate slopes at once, in d_gates (each step then multiplies its deltas
        # in): σ' = σ(1 - σ) for all four, then g's 1 - g²
        d_gates = np.subtract(1.0, gates, out=np.empty_like(gates))
        d_gates *= gates
        sg, g_all = d_gates[..., 2 * h:3 * h], gates[..., 2 * h:3 * h]
        np.multiply(g_all, g_all, out=sg)
        np.subtract(1.0, sg, out=sg)
        tmp, d = np.empty_like(dh), np.empty_like(gates[0])  # d: a step's ∂L/∂(gate values)
        through_c = np.multiply(tanh_c, tanh_c, out=np.empty_like(tanh_c))  # ∂h_t/∂c_t for all
        np.subtract(1.0, through_c, out=through_c)  # steps: (1 - tanh²(c_t)) ⊙ o_t
        through_c *= gates[..., 3 * h:]
        for t in reversed(range(steps)):
            if dyt is not None:
                dh += dyt[t]
            skip = skips[t]  # padded rows: no gate deltas, dh and dc pass to t - 1 as they are
            kept = None if skip is None else (dh[skip], dc[skip])
            a, slopes = gates[t], d_gates[t]
            i, f, g = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h]
            di, df, dg, do = d[:, :h], d[:, h:2 * h], d[:, 2 * h:3 * h], d[:, 3 * h:]
            np.multiply(dh, tanh_c[t], out=do)
            dc += np.multiply(through_c[t], dh, out=tmp)  # dc += dh ⊙ o ⊙ (1 - tanh²(c_t))
            np.multiply(dc, g, out=di)
            c_prev = c[t - 1] if t else c0
            if c_prev is not None:
                np.multiply(dc, c_prev, out=df)
            else:
                df.fill(0.0)  # c_{-1} = 0
            np.multiply(dc, i, out=dg)
            dc *= f
            np.multiply(d, slopes, out=slopes)  # the gate deltas of step t
            if kept is not None:
                slopes[skip] = 0.0
            if t or h0 is not None:
                np.matmul(slopes, u_t, out=dh)
            if kept is not None:
                dh[skip], dc[skip] = kept
        self.d_initial_state = None if h0 is None else (dh, dc)  # dc: dc_0 ⊙ f_0
        return self._finish(xt, y, d_gates, d_gates, need_dx, h0)


