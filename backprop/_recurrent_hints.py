"""Keras' keyword arguments of LSTM, GRU and SimpleRNN, and what backprop's recurrent
layers take instead: the recurrent part of :data:`backprop._other_names.KEYWORD_HINTS`."""

from __future__ import annotations

_RECURRENT = {  # Keras' arguments of LSTM, GRU and SimpleRNN ({0}: the class)
    "units": "{0}(input_size, hidden_size) takes both sizes (Keras' units is hidden_size)",
    "return_state": ("{0} returns the output only; after each forward layer.state holds "
                     "the final state (LSTM: (h, c)), and layer(x, initial_state) starts "
                     "from one"),
    "go_backwards": "reverse the time axis yourself: x[:, ::-1] (input (N, T, D))",
    "time_major": "{0} takes batch-first input (N, T, D): x.transpose(1, 0, 2)",
    "activation": ("RNN's is nonlinearity ('tanh' or 'relu'); LSTM and GRU use tanh and "
                   "sigmoid, as PyTorch's"),
    "recurrent_activation": "LSTM and GRU use sigmoid gates, as PyTorch's",
    "use_bias": "backprop calls it bias",
    "recurrent_dropout": "{0} has no dropout inside the loop; put Dropout layers between layers",
}


def recurrent_keyword_hints() -> dict[str, dict[str, str]]:
    """The hints for ``LSTM``, ``GRU`` and ``RNN``: class name -> {keyword: hint}."""
    hints = {name: {k: v.format(name) for k, v in _RECURRENT.items()}
             for name in ("LSTM", "GRU", "RNN")}
    hints["GRU"]["reset_after"] = ("GRU is PyTorch's: r multiplies h @ U + b_h (Keras' "
                                   "reset_after=True)")
    return hints
