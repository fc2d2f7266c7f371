"""GRU: PyTorch's gated recurrent unit over batch-first sequences (see :mod:`.recurrent`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import negate
from ._recurrent import Recurrent, carry, sigmoid_


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
    ``backward(dy, d_state=dh)``, ``gru.d_initial_state``. Padded sequences as LSTM's:
    ``gru(x, lengths=l)`` or ``mask=m``.

    Raises:
        ValueError: a size < 1, another PyTorch option; in forward an input not
            ``(N, T, D)`` or with ``T = 0``, a state not ``(N, H)``.
        TypeError: an input or state of another dtype than the layer's; a ``mask``
            neither boolean nor numbers, ``lengths`` not integers. (ValueError: either
            of another shape than ``(N, T)`` / ``(N,)``, a mask of numbers other than 0
            and 1, lengths outside ``[0, T]``, both.)
    """

    gates = 3
    _cache_attrs = ("_x", "_y", "_gates", "_ah_n", "_h0", "_mask")

    def forward(self, x: np.ndarray, *, training: bool = False, initial_state: Any = None,
                mask: Any = None, lengths: Any = None) -> np.ndarray:
        n, steps, mask = self._steps(x, mask, lengths)
        (h0,) = self._initial(initial_state, n)
        h, u = self.hidden_size, self.params["U"]
        bias = None
        if self.bias:  # b, and b_h's r and z parts (its n part sits inside r ⊙ (...))
            bias = self.params["b"].copy()
            bias[:2 * h] += self.params["b_h"][:2 * h]
        xt, gates = self._project(x, bias, mask)  # ax (+ b_h's r, z), then r, z, n in place
        skips = self._skips(mask, steps)
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
                carry(y[t], h_prev, skips[t])  # padded rows keep h_{t-1}
        if training:
            self._x, self._y, self._gates, self._ah_n, self._h0 = xt, y, gates, ah_n, h0
            self._mask = mask
        self._final(y[-1])
        return self._output(y, mask)

    def _backward(self, dy: np.ndarray, need_dx: bool, d_state: Any) -> np.ndarray | None:
        (dh_last,) = self._state_grads(d_state)
        xt, y, gates, ah_n = self._pop("_x", "_y", "_gates", "_ah_n")
        steps, n = xt.shape[:2]
        h, u_t = self.hidden_size, self.params["U"].T
        dh, dyt, skips = self._dh_start(dy, n, steps)
        (h0,) = self._take_initial()
        if dh_last is not None:
            dh += dh_last
        tmp = np.empty_like(dh)
        # every step's slopes at once, in dgx (each step multiplies its deltas in):
        # σ'(r) = r(1 - r), σ'(z) = z(1 - z), then n's 1 - n²
        dgx = np.subtract(1.0, gates, out=np.empty_like(gates))
        dgx[..., :2 * h] *= gates[..., :2 * h]
        slope_n, new_all = dgx[..., 2 * h:], gates[..., 2 * h:]
        np.multiply(new_all, new_all, out=slope_n)
        np.subtract(1.0, slope_n, out=slope_n)
        dgh = np.empty_like(gates)
        for t in reversed(range(steps)):
            if dyt is not None:
                dh += dyt[t]
            skip = skips[t]  # padded rows: no gate deltas, dh passes to t - 1 as it is
            kept = None if skip is None else dh[skip]
            r, z, new = gates[t, :, :h], gates[t, :, h:2 * h], gates[t, :, 2 * h:]
            d = dgx[t]
            dr, dz, dn = d[:, :h], d[:, h:2 * h], d[:, 2 * h:]
            np.subtract(1.0, z, out=tmp)  # dn = dh ⊙ (1 - z) ⊙ (1 - n²)
            tmp *= dh
            dn *= tmp
            h_prev = y[t - 1] if t else h0
            if h_prev is not None:  # dz = (h_{t-1} - n) ⊙ dh ⊙ σ'(z)
                np.subtract(h_prev, new, out=tmp)
            else:
                negate(new, out=tmp)  # h_{-1} = 0
            tmp *= dh
            dz *= tmp
            dr *= np.multiply(dn, ah_n[t], out=tmp)  # dr = dn ⊙ (U_n h_{t-1} + b_hn) ⊙ σ'(r)
            dgh[t, :, :2 * h] = d[:, :2 * h]
            np.multiply(dn, r, out=dgh[t, :, 2 * h:])
            if kept is not None:
                d[skip] = 0.0
                dgh[t, skip] = 0.0
            if t or h0 is not None:
                dh *= z
                dh += np.matmul(dgh[t], u_t, out=tmp)
            if kept is not None:
                dh[skip] = kept
        self.d_initial_state = None if h0 is None else dh
        return self._finish(xt, y, dgx, dgh, need_dx, h0)
