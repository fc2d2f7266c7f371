"""Recurrent layers over batch-first sequences ``(N, T, D)``: LSTM, GRU and the Elman RNN,
each PyTorch's single layer (``batch_first=True``) with a zero initial state.

The input's share of every gate is one GEMM over all ``N·T`` rows before the loop; each
step adds only ``h_{t-1} @ U``. Backward walks the steps in reverse, writing each step's
gate deltas into one ``(N, T, G·H)`` array, and forms ``dW``, ``dU``, the bias sums and
``dx`` from it after the loop, one GEMM each (:class:`._recurrent.Recurrent`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import negate
from ._recurrent import Recurrent, sigmoid_


class LSTM(Recurrent):
    """Long short-term memory (PyTorch's ``nn.LSTM(D, H, batch_first=True)``).

    ::

        Forward:   a_t = x_t @ W + b + h_{t-1} @ U + b_h   x (N, T, D), W (D, 4H), U (H, 4H)
                   i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)   (the 4H columns in order)
                   c_t = f ⊙ c_{t-1} + i ⊙ g    h_t = o ⊙ tanh(c_t)   h_{-1} = c_{-1} = 0
                   y = h (N, T, H), or h_{T-1} (N, H) with return_sequences=False
        Backward:  dh = dy_t + dh_t (from step t+1)     do = dh ⊙ tanh(c_t)
                   dc = dc_t (from step t+1) + dh ⊙ o ⊙ (1 - tanh²(c_t))
                   di, df, dg = dc ⊙ g, dc ⊙ c_{t-1}, dc ⊙ i    dc_{t-1} = dc ⊙ f
                   dG_t = [di·i(1-i), df·f(1-f), dg·(1-g²), do·o(1-o)]   (N, 4H)
                   dh_{t-1} = dG_t @ U.T;  after the loop, over all N·T rows at once:
                   dW = X.T @ dG   dU = Hprev.T @ dG   db = db_h = dG.sum(0)   dx = dG @ W.T

    A training forward keeps the gates, ``c``, ``tanh(c)`` and ``h`` of every step, so
    backward recomputes nothing. Keras' ``LSTM(units)`` is ``LSTM(input_size, units,
    return_sequences=False)`` (Keras' default); its weights are initialised differently
    and it has one bias (here ``b + b_h``).

    Args:
        input_size: ``D``, the features of each step.
        hidden_size: ``H``, the units of the state.
        bias: Learn ``b`` and ``b_h`` (default True).
        return_sequences: Output every step's ``h`` (N, T, H) (default, PyTorch's
            ``output``); False: the last step's (N, H) (PyTorch's ``h_n[-1]``), to put a
            ``Dense`` after: ``Embedding -> LSTM(return_sequences=False) -> Dense``.
        dtype: Parameter dtype (default float32).
        rng: Generator or seed for the initial weights.
        batch_first, num_layers, bidirectional, dropout, proj_size: PyTorch's options,
            accepted only at one batch-first, one-directional layer (``True, 1, False,
            0, 0``); stack layers in a ``Sequential`` for more.

    Raises:
        ValueError: a size < 1, another PyTorch option (the message says what to do);
            in forward an input not ``(N, T, D)`` or with ``T = 0``.
        TypeError: an input of another dtype than the layer's.
    """

    gates = 4
    _cache_attrs = ("_x", "_y", "_gates", "_c", "_tanh_c")

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        n, steps = self._check_sequence(x, self.input_size)
        h, u = self.hidden_size, self.params["U"]
        gates = self._project(x, both_biases=True)  # pre-activations, then gates in place
        y, c = np.empty_like(gates[..., :h]), np.empty_like(gates[..., :h])
        tanh_c, hu = np.empty_like(c), np.empty_like(gates[:, 0])
        for t in range(steps):
            a = gates[:, t]
            if t:  # h_{-1} = 0
                a += np.matmul(y[:, t - 1], u, out=hu)
            sigmoid_(a[:, :2 * h])
            np.tanh(a[:, 2 * h:3 * h], out=a[:, 2 * h:3 * h])
            sigmoid_(a[:, 3 * h:])
            i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
            np.multiply(i, g, out=c[:, t])
            if t:
                c[:, t] += f * c[:, t - 1]
            np.tanh(c[:, t], out=tanh_c[:, t])
            np.multiply(o, tanh_c[:, t], out=y[:, t])
        if training:
            self._x, self._y, self._gates, self._c, self._tanh_c = x, y, gates, c, tanh_c
        return self._output(y)

    def _backward(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        x, y, gates, c, tanh_c = self._pop("_x", "_y", "_gates", "_c", "_tanh_c")
        n, steps = x.shape[:2]
        h, u = self.hidden_size, self.params["U"]
        dh = self._dh_start(dy, n, steps)  # ∂L/∂h_t from the steps after t (and dy)
        dc = np.zeros_like(dh)  # ∂L/∂c_t from the steps after t
        d_gates = np.empty_like(gates)
        for t in reversed(range(steps)):
            if self.return_sequences:
                dh += dy[:, t]
            i, f, g, o = (gates[:, t, k * h:(k + 1) * h] for k in range(4))
            d = d_gates[:, t]
            di, df, dg, do = d[:, :h], d[:, h:2 * h], d[:, 2 * h:3 * h], d[:, 3 * h:]
            np.multiply(dh, tanh_c[:, t], out=do)
            dc += dh * o * (1.0 - tanh_c[:, t] ** 2)
            np.multiply(dc, g, out=di)
            if t:
                np.multiply(dc, c[:, t - 1], out=df)
            else:
                df.fill(0.0)  # c_{-1} = 0
            np.multiply(dc, i, out=dg)
            dc *= f
            s = gates[:, t, :2 * h]  # σ' = σ(1 - σ) for i and f together, tanh' = 1 - g²
            d[:, :2 * h] *= s * (1.0 - s)
            dg *= 1.0 - g * g
            do *= o * (1.0 - o)
            if t:
                np.matmul(d, u.T, out=dh)
        return self._finish(x, y, d_gates, d_gates, need_dx)


class GRU(Recurrent):
    """Gated recurrent unit, exactly PyTorch's (``nn.GRU(D, H, batch_first=True)``).

    ::

        Forward:   ax_t = x_t @ W + b    ah_t = h_{t-1} @ U + b_h    (N, 3H): r, z, n columns
                   r = σ(ax_r + ah_r)    z = σ(ax_z + ah_z)    n = tanh(ax_n + r ⊙ ah_n)
                   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}                 h_{-1} = 0
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
    the gates, ``ah_n`` and ``h`` of every step.

    Args:
        input_size: ``D``, the features of each step.
        hidden_size: ``H``, the units of the state.
        bias: Learn ``b`` and ``b_h`` (default True).
        return_sequences: Output every step's ``h`` (N, T, H) (default); False: the
            last step's (N, H).
        dtype: Parameter dtype (default float32).
        rng: Generator or seed for the initial weights.
        batch_first, num_layers, bidirectional, dropout, proj_size: PyTorch's options,
            accepted only at one batch-first, one-directional layer.

    Raises:
        ValueError: a size < 1, another PyTorch option; in forward an input not
            ``(N, T, D)`` or with ``T = 0``.
        TypeError: an input of another dtype than the layer's.
    """

    gates = 3
    _cache_attrs = ("_x", "_y", "_gates", "_ah_n")

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        n, steps = self._check_sequence(x, self.input_size)
        h, u = self.hidden_size, self.params["U"]
        gates = self._project(x, both_biases=False)  # ax, then r, z, n in place
        y, ah_n, ah = np.empty_like(gates[..., :h]), np.empty_like(gates[..., :h]), \
            np.zeros_like(gates[:, 0])
        for t in range(steps):
            a = gates[:, t]
            if t:
                np.matmul(y[:, t - 1], u, out=ah)
            if self.bias:
                ah += self.params["b_h"]  # at t = 0 ah is b_h alone (h_{-1} = 0)
            a[:, :2 * h] += ah[:, :2 * h]
            sigmoid_(a[:, :2 * h])
            r, z, new = a[:, :h], a[:, h:2 * h], a[:, 2 * h:]
            ah_n[:, t] = ah[:, 2 * h:]
            new += r * ah_n[:, t]
            np.tanh(new, out=new)
            if t:  # h_t = n + z ⊙ (h_{t-1} - n)
                np.subtract(y[:, t - 1], new, out=y[:, t])
                y[:, t] *= z
                y[:, t] += new
            else:
                np.multiply(1.0 - z, new, out=y[:, t])
        if training:
            self._x, self._y, self._gates, self._ah_n = x, y, gates, ah_n
        return self._output(y)

    def _backward(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        x, y, gates, ah_n = self._pop("_x", "_y", "_gates", "_ah_n")
        n, steps = x.shape[:2]
        h, u = self.hidden_size, self.params["U"]
        dh = self._dh_start(dy, n, steps)
        dgx, dgh = np.empty_like(gates), np.empty_like(gates)
        for t in reversed(range(steps)):
            if self.return_sequences:
                dh += dy[:, t]
            r, z, new = gates[:, t, :h], gates[:, t, h:2 * h], gates[:, t, 2 * h:]
            d = dgx[:, t]
            dr, dz, dn = d[:, :h], d[:, h:2 * h], d[:, 2 * h:]
            np.multiply(dh, 1.0 - z, out=dn)
            dn *= 1.0 - new * new
            if t:
                np.subtract(y[:, t - 1], new, out=dz)
            else:
                negate(new, out=dz)  # h_{-1} = 0
            dz *= dh
            dz *= z * (1.0 - z)
            np.multiply(dn, ah_n[:, t], out=dr)
            dr *= r * (1.0 - r)
            dgh[:, t, :2 * h] = d[:, :2 * h]
            np.multiply(dn, r, out=dgh[:, t, 2 * h:])
            if t:
                dh *= z
                dh += dgh[:, t] @ u.T
        return self._finish(x, y, dgx, dgh, need_dx)


class RNN(Recurrent):
    """Elman recurrent layer (PyTorch's ``nn.RNN(D, H, nonlinearity=..., batch_first=True)``).

    ::

        Forward:   h_t = f(x_t @ W + b + h_{t-1} @ U + b_h)     x (N, T, D), W (D, H), U (H, H)
                   f = tanh or relu;  h_{-1} = 0;  y = h (N, T, H), or h_{T-1} (N, H)
        Backward:  dG_t = (dy_t + dh_t) ⊙ f'(h_t)      tanh' = 1 - h², relu' = (h > 0)
                   dh_{t-1} = dG_t @ U.T;  after the loop, over all N·T rows at once:
                   dW = X.T @ dG   dU = Hprev.T @ dG   db = db_h = dG.sum(0)   dx = dG @ W.T

    Keras' ``SimpleRNN(units)`` is ``RNN(input_size, units, return_sequences=False)``.

    Args:
        input_size: ``D``, the features of each step.
        hidden_size: ``H``, the units of the state.
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.
        bias: Learn ``b`` and ``b_h`` (default True).
        return_sequences: Output every step's ``h`` (N, T, H) (default); False: the
            last step's (N, H).
        dtype: Parameter dtype (default float32).
        rng: Generator or seed for the initial weights.
        batch_first, num_layers, bidirectional, dropout, proj_size: PyTorch's options,
            accepted only at one batch-first, one-directional layer.

    Raises:
        ValueError: a size < 1, an unknown ``nonlinearity``, another PyTorch option;
            in forward an input not ``(N, T, D)`` or with ``T = 0``.
        TypeError: an input of another dtype than the layer's.
    """

    _cache_attrs = ("_x", "_y")

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 bias: bool = True, return_sequences: bool = True, dtype: Any = np.float32,
                 rng: np.random.Generator | int | None = None, batch_first: bool = True,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 proj_size: int = 0) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: expected nonlinearity 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias=bias, return_sequences=return_sequences,
                         dtype=dtype, rng=rng, batch_first=batch_first, num_layers=num_layers,
                         bidirectional=bidirectional, dropout=dropout, proj_size=proj_size)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        n, steps = self._check_sequence(x, self.input_size)
        u = self.params["U"]
        y = self._project(x, both_biases=True)  # pre-activations, then h in place
        hu = np.empty_like(y[:, 0])
        for t in range(steps):
            a = y[:, t]
            if t:
                a += np.matmul(y[:, t - 1], u, out=hu)
            if self.nonlinearity == "tanh":
                np.tanh(a, out=a)
            else:
                np.maximum(a, 0.0, out=a)
        if training:
            self._x, self._y = x, y
        return self._output(y)

    def _backward(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        x, y = self._pop("_x", "_y")
        n, steps = x.shape[:2]
        u = self.params["U"]
        dh = self._dh_start(dy, n, steps)
        dg = np.empty_like(y)
        for t in reversed(range(steps)):
            if self.return_sequences:
                dh += dy[:, t]
            d = dg[:, t]
            if self.nonlinearity == "tanh":
                np.multiply(y[:, t], y[:, t], out=d)
                np.subtract(1.0, d, out=d)
            else:
                np.not_equal(y[:, t], 0.0, out=d, casting="unsafe")  # y >= 0: y > 0
            d *= dh
            if t:
                np.matmul(d, u.T, out=dh)
        return self._finish(x, y, dg, dg, need_dx)
