"""Session 36: defects found by a review writing layers of one's own (``bp.Layer``
subclasses), each test failing before its fix."""

from __future__ import annotations

import numpy as np
import pytest

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


@bp.register_layer
class S36GaussNoise(bp.Layer):
    """train: y = x + 0.3 eps, eps ~ N(0, 1) from a Generator kept as ``self._rng``."""

    def __init__(self, *, rng=None, dtype=np.float32):
        super().__init__(dtype=dtype)
        self._rng = bp.initializers.make_rng(rng)

    def forward(self, x, *, training=False):
        if not training:
            return x
        return x + 0.3 * self._rng.standard_normal(x.shape).astype(self.dtype)

    def backward(self, dy):
        return dy


def test_resume_restores_a_generator_kept_under_another_name(tmp_path):
    """fit(resume=) restored a layer's Generator only as ``self.rng``: one kept as
    ``self._rng`` left the resumed weights 0.027 off the uninterrupted run, silently."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)

    def build():
        m = bp.Sequential([bp.Dense(4, 8, rng=0), S36GaussNoise(rng=1), bp.ReLU(),
                           bp.Dense(8, 2, rng=2)])
        return m, bp.SGD(m.parameters(), lr=0.1)

    kw = dict(loss=bp.SoftmaxCrossEntropy(), batch_size=16, seed=0, progress=False)
    path = str(tmp_path / "ck.npz")
    a, oa = build()
    a.fit(x, y, optimizer=oa, epochs=4, **kw)
    b, ob = build()
    b.fit(x, y, optimizer=ob, epochs=2, callbacks=[bp.ModelCheckpoint(path)], **kw)
    c, oc = build()
    c.fit(x, y, optimizer=oc, epochs=4, resume=path, callbacks=[bp.ModelCheckpoint(path)], **kw)
    for key in ("0.W", "3.W"):
        np.testing.assert_array_equal(c.params[key], a.params[key])


def test_save_keeps_every_generator_attribute_and_their_sharing(tmp_path):
    g = np.random.default_rng(5)
    m = bp.Sequential([S36GaussNoise(rng=g), S36GaussNoise(rng=g), bp.Dropout(0.5, rng=3)])
    m[0]._rng.standard_normal(7)  # moved past the seed's state
    m.save(tmp_path / "m.npz")
    back = bp.load(tmp_path / "m.npz")
    assert back[0]._rng is back[1]._rng  # one Generator, as saved
    assert back[0]._rng.bit_generator.state == g.bit_generator.state
    assert back[2].rng.bit_generator.state == m[2].rng.bit_generator.state
    # a layer's ``rng`` stays where files before kept it, so that they load as they did
    from backprop._layer_tree import describe

    node = describe(m, "", {})
    assert "rngs" in node["children"][0] and "rng" in node["children"][2]
    assert "rngs" not in node["children"][2]


def test_manual_seed_reaches_a_generator_made_by_make_rng():
    try:
        draws = []
        for _ in range(2):
            bp.manual_seed(0)
            draws.append(S36GaussNoise()._rng.standard_normal(3))
        np.testing.assert_array_equal(*draws)
    finally:
        bp.manual_seed(None)


@bp.register_layer
class S36Stack(bp.Container):
    """Its layers as one list, kept as ``self.layers`` (Sequential(layers)'s habit)."""

    def __init__(self, layers, scale=1.0, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.layers, self.scale = list(layers), scale

    def children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def forward(self, x, *, training=False):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x * self.scale

    def backward(self, dy):
        dy = dy * self.scale
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy


def test_a_container_taking_its_layers_as_one_list_saves_and_loads(tmp_path):
    """save refused it ('missing 1 required positional argument: layers') although its
    message says a list is rebuilt."""
    m = bp.Sequential([S36Stack([bp.Dense(3, 4, rng=0), bp.ReLU(), bp.Dense(4, 4, rng=1)],
                                scale=0.5), bp.Dense(4, 2, rng=2)])
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    m.save(tmp_path / "stack.npz")
    back = bp.load(tmp_path / "stack.npz")
    assert isinstance(back[0], S36Stack) and back[0].scale == 0.5
    assert [type(layer) for layer in back[0].layers] == [bp.Dense, bp.ReLU, bp.Dense]
    np.testing.assert_array_equal(back.predict(x), m.predict(x))
    alone = S36Stack([bp.Dense(3, 2, rng=3, dtype=np.float64)], dtype=np.float64)  # alone
    bp.save(alone, tmp_path / "alone.npz")
    again = bp.load(tmp_path / "alone.npz")
    assert again.dtype == np.float64
    np.testing.assert_array_equal(again.forward(x.astype(np.float64)),
                                  alone.forward(x.astype(np.float64)))


class CountedCenter(bp.Layer):
    """train: y = x - mean(x), a running mean by a cumulative average over the batches."""

    def __init__(self, n, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.n = n
        self.buffers["num_batches"] = np.zeros((), dtype=np.int64)
        self.buffers["running_mean"] = np.zeros(n, dtype=self.dtype)

    def forward(self, x, *, training=False):
        if training:
            self.buffers["num_batches"] += 1
            k = self.buffers["num_batches"]
            self.buffers["running_mean"] += (x.mean(0) - self.buffers["running_mean"]) / k
            return x - x.mean(0)
        return x - self.buffers["running_mean"]

    def backward(self, dy):
        return dy - dy.mean(0)


def test_astype_casts_float_buffers_only():
    """astype(np.float64) made an int64 count float64, and the copy's state_dict then could
    not be loaded back (PyTorch's .double() casts floating-point tensors only)."""
    layer = CountedCenter(3)
    for _ in range(3):
        layer.forward(np.ones((4, 3), np.float32), training=True)
    l64 = layer.astype(np.float64)
    assert l64.buffers["num_batches"].dtype == np.int64 and l64.buffers["num_batches"] == 3
    assert l64.buffers["running_mean"].dtype == np.float64
    layer.load_state_dict(l64.state_dict())
    assert layer.buffers["num_batches"] == 3
    m = bp.Sequential([bp.Dense(3, 3, rng=0), CountedCenter(3)]).astype(np.float64)
    assert m.buffers["1.num_batches"].dtype == np.int64
    assert m.buffers["1.running_mean"].dtype == np.float64


class Lazy(bp.Layer):
    """Registers its weight at its first forward (PyTorch's LazyLinear habit)."""

    _cache_attrs = ("_x",)

    def forward(self, x, *, training=False):
        if "w" not in self.params:
            self.add_param("w", np.ones(x.shape[1], dtype=self.dtype))
        if training:
            self._x = x
        return x * self.params["w"]

    def backward(self, dy):
        x = self._pop("_x")
        self.grads["w"][...] = (dy * x).sum(0)
        return dy * self.params["w"]


def test_add_param_inside_a_model_is_refused_by_name():
    """A weight added at the first forward of a layer already in a Sequential was trained
    by no optimizer (an explicit loop, silently) and fit crashed: AttributeError:
    'NoneType' object has no attribute 'reshape'."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)).astype(np.float32), np.arange(16) % 2
    m = bp.Sequential([bp.Dense(3, 3, rng=0), Lazy(), bp.Dense(3, 2, rng=1)])
    with pytest.raises(RuntimeError, match=r"Lazy\.add_param: expected parameters registered "
                                           r"in __init__, got 'w' added to Lazy\(\) inside"):
        m.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(m.parameters(), lr=0.1),
              epochs=1, batch_size=8, progress=False, seed=0)
    with pytest.raises(RuntimeError, match="inside a model"):
        m.forward(x, training=True)
    assert "w" not in m[1].params
    alone = Lazy()  # in no model (and in __init__, as every layer): as before
    np.testing.assert_array_equal(alone.forward(x), x)
    assert alone.params["w"].dtype == np.float32 and alone.grads["w"].shape == (3,)
    assert bp.Sequential([alone]).num_params == 3  # registered before: it is in the model


def test_layer_docstrings_say_how_buffers_and_forward_masked_are_written():
    """A buffer is kept as given (``np.zeros(n)`` stays float64 in a float32 layer, where
    add_param casts), and an override of forward_masked that does not call self.forward
    gets no forward record in bp.trace: the Layer docstrings now say both."""
    layer = bp.Layer()
    layer.add_param("g", np.ones(3))
    layer.buffers["rm"] = np.zeros(3)
    assert layer.params["g"].dtype == np.float32 and layer.buffers["rm"].dtype == np.float64
    doc = " ".join(bp.Layer.__doc__.split())
    assert "kept as given" in doc and "np.zeros(n, dtype=self.dtype)" in doc
    masked = " ".join(bp.Layer.forward_masked.__doc__.split())
    assert "calling ``self.forward``" in masked and "trace" in masked
