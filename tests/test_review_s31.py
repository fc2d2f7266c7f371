"""Review of session 31: items earlier reviews noticed and left."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("make", [
    lambda: bp.BCELoss(weight=True),
    lambda: bp.BCELoss(weight=np.array([True, False])),
    lambda: bp.BinaryCrossEntropyWithLogits(pos_weight=True),
    lambda: bp.BinaryCrossEntropyWithLogits(weight=[False, True]),
    lambda: bp.SoftmaxCrossEntropy(weight=[True, False]),
], ids=["BCE", "BCE-array", "BCEWithLogits-pos", "BCEWithLogits", "SoftmaxCE"])
def test_a_loss_refuses_bool_weights_as_pytorch_does(make):
    # weight=True was read as 1.0 (and False as 0.0: a loss of 0 that trains nothing);
    # PyTorch refuses a bool weight too
    with pytest.raises(TypeError, match=r"expected (pos_)?weight as real numbers, got .* of "
                                        r"dtype bool \(a 0/1 mask: mask.astype\(float\)\)"):
        make()


def test_a_loss_still_takes_int_and_float_weights():
    assert bp.BCELoss(weight=2).weight.tolist() == 2.0
    assert bp.SoftmaxCrossEntropy(weight=[1, 2.5]).weight.tolist() == [1.0, 2.5]


class _Adds(bp.Callback):
    def __init__(self, key):
        self.key = key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = 1.0 / (epoch + 1)


def _fit(callbacks):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    model = bp.Sequential(bp.Dense(4, 2, rng=0))
    return model.fit(x, (x[:, 0] > 0).astype(int), loss=bp.SoftmaxCrossEntropy(),
                     optimizer=bp.SGD(model.parameters()), epochs=3, progress=False,
                     callbacks=callbacks)


def test_a_monitor_no_callback_added_is_not_blamed_on_callback_order():
    # the user's callback comes first but adds another key: the old hint said to list
    # it before, which it already was
    with pytest.raises(ValueError, match=r"expected monitor to be one of \['loss', "
                                         r"'margin'\], got 'score' \(no callback before this "
                                         r"one added it to this epoch's logs\)"):
        _fit([_Adds("margin"), bp.EarlyStopping(monitor="score", mode="max")])
    with pytest.raises(ValueError, match=r"got 'score'; did you mean 'scor'\?"):  # a typo
        _fit([_Adds("scor"), bp.EarlyStopping(monitor="score", mode="max")])


def test_a_monitor_added_too_late_names_the_callback_after_it():
    with pytest.raises(ValueError, match=r"got 'score' \(a key your own callback adds must "
                                         r"be added by a callback listed before this one: "
                                         r"_Adds comes after it\)"):
        _fit([bp.EarlyStopping(monitor="score", mode="max"), _Adds("score")])
    history = _fit([_Adds("score"), bp.EarlyStopping(monitor="score", mode="max",
                                                      patience=1)])
    assert history.history["score"] == [1.0, 0.5]


class _Block(bp.Container):
    """A container of one's own without gemm_shapes: two layers, one after the other."""

    def __init__(self, a=None, b=None):
        super().__init__()
        self.a = a if a is not None else bp.Dense(16, 16, rng=0)
        self.b = b if b is not None else bp.Dense(16, 8, rng=1)

    def children(self):
        return [("a", self.a), ("b", self.b)]

    def forward(self, x, *, training=False):
        h = self.a.forward(x, training=training)
        return self.b.forward(h, training=training)

    def backward(self, dy):
        return self.a.backward(self.b.backward(dy))


def test_bench_counts_the_products_inside_a_container_of_ones_own():
    # its Dense layers' products were missed: the bound read ~0 and the fraction ~2 %
    block = _Block()
    plain = bp.Sequential([bp.Dense(16, 16, rng=0), bp.Dense(16, 8, rng=1), bp.ReLU(),
                           bp.Dense(8, 4, rng=2)])
    model = bp.Sequential([block, bp.ReLU(), bp.Dense(8, 4, rng=2)])
    for input_grad in (False, True):  # with dx of a: a container without backward_params
        ours = model.gemm_shapes((32, 16), input_grad)  # runs its backward (session 37)
        assert ours == plain.gemm_shapes((32, 16), True) and ours
    assert "forward" not in vars(block.a) and "forward" not in vars(block.b)  # unwrapped
    result = bp.bench(model, (16,), 32, steps=1, repeats=1, warmup=0, breakdown=False)
    assert result.flops == sum(2 * m * k * n for m, k, n in plain.gemm_shapes((32, 16), True))


def test_a_containers_walk_keeps_a_childs_own_forward_and_survives_a_failing_forward():
    block = _Block()
    own = block.a.forward
    block.a.forward = own  # an instance attribute (a trace's wrapper is one): kept as is
    assert len(block.gemm_shapes((4, 16))) == 6
    assert vars(block.a)["forward"] is own and "forward" not in vars(block.b)
    assert block.gemm_shapes((4, 15)) == []  # no forward runs on that shape: none known
    assert "forward" not in vars(block.b)


def test_a_container_that_starts_with_an_embedding_is_walked_on_indices():
    block = _Block(bp.Embedding(10, 16, rng=0), bp.Dense(16, 8, rng=1))
    assert block.gemm_shapes((4,)) == bp.Dense(16, 8).gemm_shapes((4, 16))


def test_sequential_of_an_ordered_dict_says_its_names_are_not_kept():
    from collections import OrderedDict

    layers = OrderedDict([("fc", bp.Dense(2, 2, rng=0)), ("act", bp.ReLU())])
    with pytest.raises(TypeError, match=r"expected a list of layers, got OrderedDict \(names "
                                        r"are not kept: list\(d.values\(\)\)\)"):
        bp.Sequential(layers)
    assert len(bp.Sequential(list(layers.values()))) == 2


def test_initializers_take_a_seed_or_none_as_every_rng_in_backprop_does():
    # he_normal(shape, 0) was refused ("expected rng as a numpy Generator"), while every
    # layer's rng= and fit's seed= take an int (DESIGN: "a Generator or seed")
    init = bp.initializers
    a = init.he_normal((3, 4), 0)
    np.testing.assert_array_equal(a, init.he_normal((3, 4), np.random.default_rng(0)))
    assert a.dtype == np.float32
    try:
        bp.manual_seed(7)
        first = init.glorot_uniform((2, 5), None)
        bp.manual_seed(7)
        np.testing.assert_array_equal(first, init.glorot_uniform((2, 5), None))
    finally:
        bp.manual_seed(None)
    with pytest.raises(ValueError, match=r"initializers: expected rng as a seed >= 0"):
        init.he_uniform((3, 4), -1)


def test_a_resumed_fit_keeps_the_gradient_monitors_baseline(tmp_path):
    # the growth rule measured a resumed run against the resumed run's first step
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 6)).astype(np.float32), np.arange(64) % 3

    def fit(epochs, monitor, resume=None):
        model = bp.Sequential([bp.Dense(6, 8, rng=1), bp.ReLU(), bp.Dense(8, 3, rng=2)])
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                  epochs=epochs, seed=0, batch_size=16, progress=False, resume=resume,
                  callbacks=[monitor, bp.ModelCheckpoint(tmp_path / "ck.npz")])

    whole = bp.GradientFlowMonitor()
    fit(3, whole)
    first = bp.GradientFlowMonitor()
    fit(1, first)
    resumed = bp.GradientFlowMonitor()
    fit(3, resumed, resume=tmp_path / "ck.npz")
    assert resumed.state_dict() == whole.state_dict() == first.state_dict()
    assert len(whole.state_dict()["first"]) == 2
    older = bp.GradientFlowMonitor()  # a checkpoint from before: nothing kept
    older.load_state_dict({})
    assert older.state_dict()["first"] == []


def test_positional_embedding_gradient_over_a_large_batch_is_accurate_in_float32():
    # dW summed the N rows with np.sum(axis=0), one after another: 6.4e-6 relative here
    n = 1 << 16
    layer = bp.PositionalEmbedding(4, 8)
    layer.forward(np.zeros((n, 2, 8), np.float32), training=True)
    dy = (np.random.default_rng(2).random((n, 2, 8)) + 0.5).astype(np.float32)
    layer.backward(dy)
    exact = dy.astype(np.float64).sum(0)
    assert np.abs(layer.grads["W"][:2] - exact).max() / np.abs(exact).max() < 2e-6
    assert not layer.grads["W"][2:].any()
    layer.forward(np.zeros((0, 2, 8), np.float32), training=True)  # an empty batch: zeros
    layer.backward(np.zeros((0, 2, 8), np.float32))
    assert not layer.grads["W"].any()


@pytest.mark.parametrize("shape", [(1, 3), (4, 3), (4, 1), (1, 1)])
def test_bce_with_logits_takes_a_pos_weight_broadcast_against_the_output(shape):
    # PyTorch broadcasts pos_weight with the target; a 2-D one was refused here
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))
    r = rng.uniform(0.5, 3.0, shape)
    loss = bp.BinaryCrossEntropyWithLogits(pos_weight=r)
    value, grad = loss.forward(z, t), loss.backward()
    full = np.broadcast_to(r, z.shape)
    sig = 1 / (1 + np.exp(-z))
    assert value == pytest.approx(np.mean(-(full * t * np.log(sig) + (1 - t) * np.log(1 - sig))),
                                  rel=1e-12)
    np.testing.assert_allclose(grad, ((1 - t) * sig - full * t * (1 - sig)) / z.size,
                               rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"expected outputs that pos_weight \(4, 3\) "
                                         r"broadcasts to, got shape \(2, 3\)"):
        bp.BinaryCrossEntropyWithLogits(pos_weight=np.ones((4, 3))).forward(z[:2], t[:2])


def test_resuming_from_a_damaged_optimizer_state_names_fit_and_resume(tmp_path):
    import io
    import zipfile

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)).astype(np.float32), np.arange(32) % 2

    def fit(resume=None):
        model = bp.Sequential([bp.Dense(4, 2, rng=0)])
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters()),
                  epochs=2 if resume is None else 3, progress=False, resume=resume,
                  callbacks=[bp.ModelCheckpoint(tmp_path / "ck.npz")])
        return model

    fit()
    bad = np.zeros((3, 3), np.float32)
    buf = io.BytesIO()
    np.save(buf, bad)
    with zipfile.ZipFile(tmp_path / "ck.npz") as z, \
            zipfile.ZipFile(tmp_path / "bad.npz", "w") as out:
        for name in z.namelist():
            out.writestr(name, buf.getvalue() if name.endswith("0.W/exp_avg.npy")
                         else z.read(name))
    # it read as the user's own optimizer refusing a state: "Adam: expected state ..."
    with pytest.raises(ValueError, match=r"fit: expected resume to hold an optimizer state "
                                         r"this Adam takes, got one it refuses \(Adam: "
                                         r"expected state 0.W.exp_avg of shape \(4, 2\), "
                                         r"got \(3, 3\)\)"):
        fit(resume=tmp_path / "bad.npz")
