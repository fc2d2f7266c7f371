"""Recurrent layers over batch-first sequences ``(N, T, D)``: LSTM, GRU and the Elman RNN,
each PyTorch's single layer (``batch_first=True``), from a zero initial state or a given
one (``layer(x, initial_state)``), the final state kept as ``layer.state``.

The input's share of every gate is one GEMM over all ``N·T`` rows before the loop; each
step adds only ``h_{t-1} @ U``. Inside, sequences are time-major ``(T, N, ·)`` (see
:mod:`._recurrent`). Backward walks the steps in reverse, writing each step's gate deltas
into one ``(T, N, G·H)`` array, and forms ``dW``, ``dU``, the bias sums and
``dx`` from it after the loop, one GEMM each (:class:`._recurrent.Recurrent`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._openblas import matmul_add
from ..backend import negate
from ._recurrent import Recurrent, sigmoid_


def _add_product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
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

    Raises:
        ValueError: a size < 1, another PyTorch option (the message says what to do);
            in forward an input not ``(N, T, D)`` or with ``T = 0``, a state not
            ``(N, H)``, a stateful layer's kept state of another batch size.
        TypeError: an input or state of another dtype than the layer's.
    """

    gates = 4
    _state_parts = ("h", "c")
    _cache_attrs = ("_x", "_y", "_gates", "_c", "_tanh_c", "_h0", "_c0")

    def forward(self, x: np.ndarray, *, training: bool = False,
                initial_state: Any = None) -> np.ndarray:
        n, steps = self._check_sequence(x, self.input_size)
        h0, c0 = self._initial(initial_state, n)
        h, u = self.hidden_size, self.params["U"]
        bias = self.params["b"] + self.params["b_h"] if self.bias else None
        xt, gates = self._project(x, bias)  # pre-activations, then gates in place
        y, c, tanh_c = (np.empty_like(gates[..., :h]) for _ in range(3))  # (T, N, H)
        with np.errstate(over="ignore"):  # exp(-a) -> inf: σ = 0, the limit
            for t in range(steps):
                a = gates[t]
                h_prev, c_prev = (y[t - 1], c[t - 1]) if t else (h0, c0)
                if h_prev is not None:  # None: h_{-1} = c_{-1} = 0
                    _add_product(h_prev, u, a)
                sigmoid_(a[:, :2 * h])
                np.tanh(a[:, 2 * h:3 * h], out=a[:, 2 * h:3 * h])
                sigmoid_(a[:, 3 * h:])
                i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
                np.multiply(i, g, out=c[t])
                if c_prev is not None:
                    c[t] += np.multiply(f, c_prev, out=tanh_c[t])  # tanh_c[t] as scratch
                np.tanh(c[t], out=tanh_c[t])
                np.multiply(o, tanh_c[t], out=y[t])
        if training:
            self._x, self._y, self._gates, self._c, self._tanh_c = xt, y, gates, c, tanh_c
            self._h0, self._c0 = h0, c0
        self._final(y[-1], c[-1])
        return self._output(y)

    def _backward(self, dy: np.ndarray, need_dx: bool, d_state: Any) -> np.ndarray | None:
        dh_last, dc_last = self._state_grads(d_state)
        xt, y, gates, c, tanh_c = self._pop("_x", "_y", "_gates", "_c", "_tanh_c")
        steps, n = xt.shape[:2]
        h, u_t = self.hidden_size, self.params["U"].T
        dh, dyt = self._dh_start(dy, n, steps)  # ∂L/∂h_t from the steps after t (and dy)
        h0, c0 = self._take_initial()
        if dh_last is not None:
            dh += dh_last
        # ∂L/∂c_t from the steps after t (and d_state)
        dc = np.zeros_like(dh) if dc_last is None else dc_last.copy()
        tmp, slopes = np.empty_like(dh), np.empty_like(gates[0])
        d_gates = np.empty_like(gates)
        for t in reversed(range(steps)):
            if dyt is not None:
                dh += dyt[t]
            a, d = gates[t], d_gates[t]
            i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
            di, df, dg, do = d[:, :h], d[:, h:2 * h], d[:, 2 * h:3 * h], d[:, 3 * h:]
            np.multiply(dh, tanh_c[t], out=do)
            np.multiply(tanh_c[t], tanh_c[t], out=tmp)  # dc += dh ⊙ o ⊙ (1 - tanh²(c_t))
            np.subtract(1.0, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp
            np.multiply(dc, g, out=di)
            c_prev = c[t - 1] if t else c0
            if c_prev is not None:
                np.multiply(dc, c_prev, out=df)
            else:
                df.fill(0.0)  # c_{-1} = 0
            np.multiply(dc, i, out=dg)
            dc *= f
            np.subtract(1.0, a, out=slopes)  # σ' = σ(1 - σ) for all four, then g's 1 - g²
            slopes *= a
            sg = slopes[:, 2 * h:3 * h]
            np.multiply(g, g, out=sg)
            np.subtract(1.0, sg, out=sg)
            d *= slopes
            if t or h0 is not None:
                np.matmul(d, u_t, out=dh)
        self.d_initial_state = None if h0 is None else (dh, dc)  # dc: dc_0 ⊙ f_0
        return self._finish(xt, y, d_gates, d_gates, need_dx, h0)


class GRU(Recurrent):
    """Gated recurrent unit, exactly PyTorch's (``nn.GRU(D, H, batch_first=True)``).

    ::

        Forward:   ax_t = x_t @ W + b    ah_t = h_{t-1} @ U + b_h    (N, 3H): r, z, n columns
                   r = σ(ax_r + ah_r)    z = σ(ax_z + ah_z)    n = tanh(ax_n + r ⊙ ah_n)
                   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}                 h_{-1} = h0 or 0
                   y = h (N, T, H), or h_{T-1} (N, H) with return_sequences=False
        Backward:  dh = dy_t + dh_t (from step t+1)
                   dn = dh ⊙ (1 - z) ⊙ (1 - n²)   dz = dh ⊙ (h_{t-1} - n) ⊙ z(1 - z)
                   dr = dn ⊙ ah_n ⊙ r(1 - r)
                   dGx_t = [dr, dz, dn]    dGh_t = [dr, dz, dn ⊙ r]          (N, 3H)
                   dh_{t-1} = dh ⊙ z + dGh_t @ U.T;  after the loop, over all N·T rows:
                   dW = X.T @ dGx   dU = Hprev.T @ dGh   db = dGx.sum(0)   db_h = dGh.sum(0)
                   dx = dGx @ W.T

    ``b_h``'s ``n`` part sits inside ``r ⊙ (...)``, as in PyTorch (and Keras'
    ``reset_after=True``), so the two biases are not one. A training forward keeps
    the input, gates, ``ah_n`` and ``h`` of every step (``layer.cache``, batch-first).

    Args:
        input_size: ``D``, the features of each step.
        hidden_size: ``H``, the units of the state.
        bias: Learn ``b`` and ``b_h`` (default True).
        return_sequences: Output every step's ``h`` (N, T, H) (default); False: the
            last step's (N, H).
        stateful: Each forward starts from the last one's final state (as LSTM's).
        dtype: Parameter dtype (default float32).
        rng: Generator or seed for the initial weights.
        batch_first, num_layers, bidirectional, dropout, proj_size: PyTorch's options,
            accepted only at one batch-first, one-directional layer.

    State as LSTM's, with ``h`` alone: ``gru(x, h0)``, ``gru.state`` (``h_{T-1}``),
    ``backward(dy, d_state=dh)``, ``gru.d_initial_state``.

    Raises:
        ValueError: a size < 1, another PyTorch option; in forward an input not
            ``(N, T, D)`` or with ``T = 0``, a state not ``(N, H)``.
        TypeError: an input or state of another dtype than the layer's.
    """

    gates = 3
    _cache_attrs = ("_x", "_y", "_gates", "_ah_n", "_h0")

    def forward(self, x: np.ndarray, *, training: bool = False,
                initial_state: Any = None) -> np.ndarray:
        n, steps = self._check_sequence(x, self.input_size)
        (h0,) = self._initial(initial_state, n)
        h, u = self.hidden_size, self.params["U"]
        bias = None
        if self.bias:  # b, and b_h's r and z parts (its n part sits inside r ⊙ (...))
            bias = self.params["b"].copy()
            bias[:2 * h] += self.params["b_h"][:2 * h]
        xt, gates = self._project(x, bias)  # ax (+ b_h's r, z), then r, z, n in place
        y, ah_n = np.empty_like(gates[..., :h]), np.empty_like(gates[..., :h])  # (T, N, H)
        ah = np.empty_like(gates[0])
        with np.errstate(over="ignore"):  # exp(-a) -> inf: σ = 0, the limit
            for t in range(steps):
                a = gates[t]
                h_prev = y[t - 1] if t else h0
                if h_prev is not None:  # None: h_{-1} = 0
                    np.matmul(h_prev, u, out=ah)
                    a[:, :2 * h] += ah[:, :2 * h]
                    ah_n[t] = ah[:, 2 * h:]
                else:
                    ah_n[t] = 0.0
                if self.bias:
                    ah_n[t] += self.params["b_h"][2 * h:]
                sigmoid_(a[:, :2 * h])
                r, z, new = a[:, :h], a[:, h:2 * h], a[:, 2 * h:]
                new += np.multiply(r, ah_n[t], out=y[t])  # y[t] as scratch
                np.tanh(new, out=new)
                if h_prev is not None:  # h_t = n + z ⊙ (h_{t-1} - n)
                    np.subtract(h_prev, new, out=y[t])
                    y[t] *= z
                    y[t] += new
                else:
                    np.subtract(1.0, z, out=y[t])
                    y[t] *= new
        if training:
            self._x, self._y, self._gates, self._ah_n, self._h0 = xt, y, gates, ah_n, h0
        self._final(y[-1])
        return self._output(y)

    def _backward(self, dy: np.ndarray, need_dx: bool, d_state: Any) -> np.ndarray | None:
        (dh_last,) = self._state_grads(d_state)
        xt, y, gates, ah_n = self._pop("_x", "_y", "_gates", "_ah_n")
        steps, n = xt.shape[:2]
        h, u_t = self.hidden_size, self.params["U"].T
        dh, dyt = self._dh_start(dy, n, steps)
        (h0,) = self._take_initial()
        if dh_last is not None:
            dh += dh_last
        tmp = np.empty_like(dh)
        dgx, dgh = np.empty_like(gates), np.empty_like(gates)
        for t in reversed(range(steps)):
            if dyt is not None:
                dh += dyt[t]
            r, z, new = gates[t, :, :h], gates[t, :, h:2 * h], gates[t, :, 2 * h:]
            d = dgx[t]
            dr, dz, dn = d[:, :h], d[:, h:2 * h], d[:, 2 * h:]
            np.subtract(1.0, z, out=dn)  # dn = dh ⊙ (1 - z) ⊙ (1 - n²)
            dn *= dh
            np.multiply(new, new, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            dn *= tmp
            h_prev = y[t - 1] if t else h0
            if h_prev is not None:
                np.subtract(h_prev, new, out=dz)
            else:
                negate(new, out=dz)  # h_{-1} = 0
            dz *= dh
            np.subtract(1.0, z, out=tmp)  # σ'(z) = z(1 - z)
            tmp *= z
            dz *= tmp
            np.multiply(dn, ah_n[t], out=dr)
            np.subtract(1.0, r, out=tmp)
            tmp *= r
            dr *= tmp
            dgh[t, :, :2 * h] = d[:, :2 * h]
            np.multiply(dn, r, out=dgh[t, :, 2 * h:])
            if t or h0 is not None:
                dh *= z
                dh += np.matmul(dgh[t], u_t, out=tmp)
        self.d_initial_state = None if h0 is None else dh
        return self._finish(xt, y, dgx, dgh, need_dx, h0)


class RNN(Recurrent):
    """Elman recurrent layer (PyTorch's ``nn.RNN(D, H, nonlinearity=..., batch_first=True)``).

    ::

        Forward:   h_t = f(x_t @ W + b + h_{t-1} @ U + b_h)     x (N, T, D), W (D, H), U (H, H)
                   f = tanh or relu;  h_{-1} = h0 or 0;  y = h (N, T, H), or h_{T-1} (N, H)
        Backward:  dG_t = (dy_t + dh_t) ⊙ f'(h_t)      tanh' = 1 - h², relu' = (h > 0)
                   dh_{t-1} = dG_t @ U.T;  after the loop, over all N·T rows at once:
                   dW = X.T @ dG   dU = Hprev.T @ dG   db = db_h = dG.sum(0)   dx = dG @ W.T

    A training forward keeps the input and every step's ``h`` (``layer.cache``).
    Keras' ``SimpleRNN(units)`` is ``RNN(input_size, units, return_sequences=False)``.

    Args:
        input_size: ``D``, the features of each step.
        hidden_size: ``H``, the units of the state.
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.
        bias: Learn ``b`` and ``b_h`` (default True).
        return_sequences: Output every step's ``h`` (N, T, H) (default); False: the
            last step's (N, H).
        stateful: Each forward starts from the last one's final state (as LSTM's).
        dtype: Parameter dtype (default float32).
        rng: Generator or seed for the initial weights.
        batch_first, num_layers, bidirectional, dropout, proj_size: PyTorch's options,
            accepted only at one batch-first, one-directional layer.

    State as LSTM's, with ``h`` alone: ``rnn(x, h0)``, ``rnn.state`` (``h_{T-1}``),
    ``backward(dy, d_state=dh)``, ``rnn.d_initial_state``.

    Raises:
        ValueError: a size < 1, an unknown ``nonlinearity``, another PyTorch option;
            in forward an input not ``(N, T, D)`` or with ``T = 0``, a state not
            ``(N, H)``.
        TypeError: an input or state of another dtype than the layer's.
    """

    _cache_attrs = ("_x", "_y", "_h0")

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 bias: bool = True, return_sequences: bool = True, stateful: bool = False,
                 dtype: Any = np.float32, rng: np.random.Generator | int | None = None,
                 batch_first: bool = True, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, proj_size: int = 0) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: expected nonlinearity 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias=bias, return_sequences=return_sequences,
                         stateful=stateful, dtype=dtype, rng=rng, batch_first=batch_first,
                         num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                         proj_size=proj_size)

    def forward(self, x: np.ndarray, *, training: bool = False,
                initial_state: Any = None) -> np.ndarray:
        n, steps = self._check_sequence(x, self.input_size)
        (h0,) = self._initial(initial_state, n)
        u = self.params["U"]
        bias = self.params["b"] + self.params["b_h"] if self.bias else None
        xt, y = self._project(x, bias)  # pre-activations, then h in place
        for t in range(steps):
            a = y[t]
            h_prev = y[t - 1] if t else h0
            if h_prev is not None:  # None: h_{-1} = 0
                _add_product(h_prev, u, a)
            if self.nonlinearity == "tanh":
                np.tanh(a, out=a)
            else:
                np.maximum(a, 0.0, out=a)
        if training:
            self._x, self._y, self._h0 = xt, y, h0
        self._final(y[-1])
        return self._output(y)

    def _backward(self, dy: np.ndarray, need_dx: bool, d_state: Any) -> np.ndarray | None:
        (dh_last,) = self._state_grads(d_state)
        xt, y = self._pop("_x", "_y")
        steps, n = xt.shape[:2]
        u_t = self.params["U"].T
        dh, dyt = self._dh_start(dy, n, steps)
        (h0,) = self._take_initial()
        if dh_last is not None:
            dh += dh_last
        dg = np.empty_like(y)
        for t in reversed(range(steps)):
            if dyt is not None:
                dh += dyt[t]
            d = dg[t]
            if self.nonlinearity == "tanh":
                np.multiply(y[t], y[t], out=d)
                np.subtract(1.0, d, out=d)
            else:
                np.not_equal(y[t], 0.0, out=d, casting="unsafe")  # y >= 0: y > 0
            d *= dh
            if t or h0 is not None:
                np.matmul(d, u_t, out=dh)
        self.d_initial_state = None if h0 is None else dh
        return self._finish(xt, y, dg, dg, need_dx, h0)
