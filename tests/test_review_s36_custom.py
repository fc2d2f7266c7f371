"""Session 36: defects found by a review writing layers of one's own (``bp.Layer``
subclasses), each test failing before its fix."""

from __future__ import annotations

import numpy as np

import backprop as bp
from backprop.layers._stateful import states_kept


class Memory(bp.Layer):
    """y = x + decay * s, then s <- x.mean(0), kept across calls; reset() clears s."""

    _cache_attrs = ("_dummy",)

    def __init__(self, features, decay=0.5, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.features, self.decay = features, decay
        self.buffers["calls"] = np.zeros((), dtype=np.int64)
        self.reset()

    def reset(self):
        self._s = np.zeros(self.features, dtype=self.dtype)

    def forward(self, x, *, training=False):
        self._check_input(x, "N", self.features)
        y = x + self.decay * self._s
        self._s = x.mean(0).astype(self.dtype)
        self.buffers["calls"] += 1  # in place, in inference too
        if training:
            self._dummy = True
        return y

    def backward(self, dy):
        self._pop("_dummy")
        return dy.copy()


def _memory_model():
    return bp.Sequential([bp.Dense(3, 3, rng=0), Memory(3)])


def _xy(n=8):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, 3)).astype(np.float32) + 5,
            rng.standard_normal((n, 3)).astype(np.float32))


def test_hidden_forwards_leave_a_stateful_layer_of_ones_own_as_it_was():
    """evaluate's input check (a forward of 2 samples) and summary's forward on zeros
    moved a custom layer's kept state: evaluate from a reset state gave 11.36 where the
    forward by hand gives 5.543."""
    m, (x, y) = _memory_model(), _xy()
    loss = bp.MeanSquaredError()
    m[1].reset()
    manual = loss.forward(m.forward(x), y)
    m[1].reset()
    m[1].buffers["calls"][...] = 0
    assert m.evaluate(x, y, loss=loss, batch_size=8)["loss"] == manual
    assert m[1].buffers["calls"] == 1  # the check's forward left no count either
    s, calls = m[1]._s.copy(), m[1].buffers["calls"].copy()
    m.summary()
    np.testing.assert_array_equal(m[1]._s, s)
    assert m[1].buffers["calls"] == calls
    with states_kept(m):
        m.forward(x[:2])
        m[1].extra = 1
    np.testing.assert_array_equal(m[1]._s, s)
    assert "extra" not in m[1].__dict__


def test_validation_leaves_a_stateful_layer_of_ones_own_where_training_left_it():
    """As the built-in stateful LSTM's: fit's validation does not move the state the next
    training batch starts from (it moved it to the last validation batch's)."""
    (x, y), (xv, yv) = _xy(16), _xy(4)
    runs = []
    for val in (None, (xv * 3, yv)):
        m = _memory_model()
        m.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.SGD(m.parameters(), lr=0.01),
              epochs=3, batch_size=8, validation_data=val, progress=False, seed=0)
        runs.append((m[1]._s.copy(), m[0].params["W"].copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_states_kept_copies_nothing_of_built_in_layers():
    from backprop.layers._stateful import _own_leaves

    m = bp.Sequential([bp.Dense(3, 4, rng=0), bp.BatchNorm(4), bp.ReLU(), Memory(4)])
    assert _own_leaves([m, *(layer for _, layer in m.named_layers())]) == [m[3]]
