"""RNN: PyTorch's Elman recurrent layer over batch-first sequences (see :mod:`.recurrent`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._recurrent import Recurrent, add_product, carry


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
    ``backward(dy, d_state=dh)``, ``rnn.d_initial_state``. Padded sequences as LSTM's:
    ``rnn(x, lengths=l)`` or ``mask=m``.

    Raises:
        ValueError: a size < 1, an unknown ``nonlinearity``, another PyTorch option;
            in forward an input not ``(N, T, D)`` or with ``T = 0``, a state not
            ``(N, H)``.
        TypeError: an input or state of another dtype than the layer's; a ``mask``
            neither boolean nor numbers, ``lengths`` not integers. (ValueError: either
            of another shape than ``(N, T)`` / ``(N,)``, a mask of numbers other than 0
            and 1, lengths outside ``[0, T]``, both.)
    """

    _cache_attrs = ("_x", "_y", "_h0", "_mask")

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 bias: bool = True, return_sequences: bool = True, stateful: bool = False,
                 dtype: Any = np.float32, rng: np.random.Generator | int | None = None,
                 batch_first: bool = True, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, proj_size: int = 0) -> None:
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: expected nonlinearity 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias=bias, return_sequences=return_sequences,
                         stateful=stateful, dtype=dtype, rng=rng, batch_first=batch_first,
                         num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                         proj_size=proj_size)

    def forward(self, x: np.ndarray, *, training: bool = False, initial_state: Any = None,
                mask: Any = None, lengths: Any = None) -> np.ndarray:
        n, steps, mask = self._steps(x, mask, lengths)
        (h0,) = self._initial(initial_state, n)
        u = self.params["U"]
        bias = self.params["b"] + self.params["b_h"] if self.bias else None
        xt, y = self._project(x, bias, mask)  # pre-activations, then h in place
        skips = self._skips(mask, steps)
        for t in range(steps):
            a = y[t]
            h_prev = y[t - 1] if t else h0
            if h_prev is not None:  # None: h_{-1} = 0
                add_product(h_prev, u, a)
            if self.nonlinearity == "tanh":
                np.tanh(a, out=a)
            else:
                np.maximum(a, 0.0, out=a)
            carry(a, h_prev, skips[t])  # padded rows keep h_{t-1}
        if training:
            self._x, self._y, self._h0, self._mask = xt, y, h0, mask
        self._final(y[-1])
        return self._output(y, mask)

    def _backward(self, dy: np.ndarray, need_dx: bool, d_state: Any) -> np.ndarray | None:
        (dh_last,) = self._state_grads(d_state)
        xt, y = self._pop("_x", "_y")
        steps, n = xt.shape[:2]
        u_t = self.params["U"].T
        dh, dyt, skips = self._dh_start(dy, n, steps)
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
            skip = skips[t]  # padded rows: no delta, dh passes to t - 1 as it is
            if skip is not None:
                d[skip] = 0.0
                kept = dh[skip]
            if t or h0 is not None:
                np.matmul(d, u_t, out=dh)
            if skip is not None:
                dh[skip] = kept
        self.d_initial_state = None if h0 is None else dh
        return self._finish(xt, y, dg, dg, need_dx, h0)
