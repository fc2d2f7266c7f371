"""Embedding: integer indices in, PyTorch's semantics, through fit/evaluate/predict."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

CE = bp.SoftmaxCrossEntropy()


# (V, D, index shape): each of the three routes of dW (np.add.at for a few elements of
# dy, a sparse product over the whole table, or over the touched rows of a tall one)
ROUTES = [(7, 3, (4, 5)), (30, 16, (64, 20)), (100_000, 16, (64, 50))]


def test_the_cases_take_each_route():
    from backprop.layers.embedding import _FEW, _TALL

    sizes = [(v, d * int(np.prod(shape)), int(np.prod(shape))) for v, d, shape in ROUTES]
    assert sizes[0][1] <= _FEW
    assert sizes[1][1] > _FEW and sizes[1][0] <= _TALL * sizes[1][2]
    assert sizes[2][1] > _FEW and sizes[2][0] > _TALL * sizes[2][2]


@pytest.mark.parametrize("v,d,shape", ROUTES)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_on_every_gradient_route(v, d, shape, padding_idx, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.integers(0, min(v, 12), shape)  # few distinct indices: many repeats to sum
    x.flat[:2] = [2, v - 1]  # the padding rows appear
    layer = bp.Embedding(v, d, padding_idx=padding_idx, dtype=dtype, rng=0)
    theirs = torch.nn.Embedding(v, d, padding_idx=padding_idx).to(
        getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(layer.params["W"]))
    dy = rng.standard_normal((*shape, d)).astype(dtype)
    layer.forward(rng.integers(0, v, shape), training=True)  # an earlier step's rows:
    layer.backward(dy)  # the compared backward must overwrite them, not add to them
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    yt = theirs(torch.tensor(x))
    yt.backward(torch.tensor(dy))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(layer.grads["W"], theirs.weight.grad.numpy(), rtol=tol,
                               atol=tol)
    assert dx.shape == shape and not dx.any()  # indices have no gradient
    if padding_idx is not None:
        assert not layer.params["W"][padding_idx].any()
        assert not layer.grads["W"][padding_idx].any()


@pytest.mark.parametrize("route", ["add.at", "product", "touched rows"])
def test_every_route_gives_the_sum_per_row_without_torch(monkeypatch, route):
    import backprop.layers.embedding as module

    few, tall = {"add.at": (10 ** 9, 4), "product": (0, 10 ** 9), "touched rows": (0, 0)}[route]
    monkeypatch.setattr(module, "_FEW", few)
    monkeypatch.setattr(module, "_TALL", tall)
    rng = np.random.default_rng(1)
    layer = bp.Embedding(40, 5, padding_idx=3, dtype=np.float64, rng=0)
    for _ in range(2):  # the second backward must overwrite the first's rows
        x = rng.integers(0, 40 if _ == 0 else 12, (6, 7))
        dy = rng.standard_normal((6, 7, 5))
        layer.forward(x, training=True)
        layer.backward(dy)
    expected = np.zeros((40, 5))
    np.add.at(expected, x.ravel(), dy.reshape(-1, 5))
    expected[3] = 0
    np.testing.assert_allclose(layer.grads["W"], expected, rtol=1e-12, atol=1e-12)


def test_the_gradient_check_holds_the_padding_row_to_its_rule():
    x = np.array([[0, 2, 2], [1, 2, 4]])  # the padding row 2 is used: its derivative is not 0
    model = bp.Sequential([bp.Embedding(5, 3, padding_idx=2, rng=0), bp.Flatten(),
                           bp.Dense(9, 2, rng=1)])
    result = bp.check_gradients(model, x)
    assert result.passed, result
    assert any("0.W[2] is held at a zero gradient by rule" in n for n in result.notes)

    class Leaky(bp.Embedding):  # forgets to zero the padding row's gradient
        def backward(self, dy):
            idx = self._pop("_idx")
            self.grads["W"].fill(0)
            np.add.at(self.grads["W"], idx.reshape(-1), dy.reshape(-1, self.embedding_dim))
            return np.zeros(idx.shape, self.dtype)

    bad = bp.check_gradients(Leaky(5, 3, padding_idx=2, dtype=np.float64, rng=0), x)
    assert not bad.passed and bad.tensor == "W" and bad.index[0] == 2 and bad.numeric == 0.0


def test_backward_params_fills_the_same_gradient():
    x = np.array([[0, 3, 3], [1, 0, 3]])
    dy = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    a, b = bp.Embedding(5, 4, rng=0), bp.Embedding(5, 4, rng=0)
    a.forward(x, training=True)
    a.backward(dy)
    b.forward(x, training=True)
    assert b.backward_params(dy) is None
    np.testing.assert_array_equal(a.grads["W"], b.grads["W"])
    np.testing.assert_allclose(a.grads["W"][3], dy[0, 1] + dy[0, 2] + dy[1, 2], rtol=1e-6)


def test_default_weights_are_standard_normal_as_torchs_and_keras_uniform_is_offered():
    w = bp.Embedding(2000, 50, rng=0).params["W"]
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01
    u = bp.Embedding(2000, 50, init="uniform", rng=0).params["W"]
    assert u.min() >= -0.05 and u.max() <= 0.05 and u.std() == pytest.approx(0.1 / 12 ** 0.5,
                                                                                rel=0.01)


def test_a_bag_of_embeddings_learns_through_fit_with_integer_inputs():
    # the label is the sum of two tokens' classes: learnable only from their vectors
    rng = np.random.default_rng(0)
    x = rng.integers(0, 12, (600, 2))
    y = (x[:, 0] % 3 + x[:, 1] % 3) % 3
    model = bp.Sequential([bp.Embedding(12, 8, rng=0), bp.Flatten(), bp.Dense(16, 32, rng=1),
                           bp.ReLU(), bp.Dense(32, 3, rng=2)])
    history = bp.fit(model, x, y, loss=CE, optimizer=bp.Adam(model.parameters(), lr=0.02),
                     epochs=40, batch_size=32, seed=0, progress=False, metrics=["accuracy"],
                     validation_split=0.2)
    assert history.history["val_accuracy"][-1] > 0.95
    assert model.evaluate(x, y, loss=CE, metrics=["accuracy"])["accuracy"] > 0.95
    np.testing.assert_array_equal(model.predict(x[:5]), model.predict(x[:5].astype(float)))


def test_indices_are_not_cast_to_the_models_floats():
    # float32 holds whole numbers exactly only up to 2**24: a first Embedding takes the
    # integers themselves
    v = 2 ** 24 + 2
    model = bp.Sequential([bp.Embedding(v, 1, init="zeros")])
    model.params["0.W"][v - 1] = 1.0
    x = np.array([[v - 1], [v - 2]])
    np.testing.assert_array_equal(model.predict(x)[:, 0, 0], [1.0, 0.0])
    np.testing.assert_array_equal(model.forward(x)[:, 0, 0], [1.0, 0.0])


@pytest.mark.parametrize("x,error,match", [
    (np.array([[0, 7]]), ValueError, r"Embedding\(7, 3\): expected indices in \[0, 7\), got 7"),
    (np.array([[2 ** 64 - 1]], np.uint64), ValueError, r"got 18446744073709551615$"),
    (np.array([[1e30]]), ValueError, r"expected indices in \[0, 7\), got 1e\+30"),
    (np.array([[np.nan]]), ValueError, "expected whole-number indices, got nan"),
    (np.array([[True]]), TypeError, "expected integer indices, got dtype bool"),
    (np.array([[-1, 0]]), ValueError, r"expected indices in \[0, 7\), got -1"),
    (np.array([[0.5, 1.0]]), ValueError, "expected whole-number indices, got 0.5"),
    (np.array([[1 + 0j]]), TypeError, "expected integer indices, got dtype complex128"),
    (np.array(3), TypeError, "expected indices as an array \\(N, ...\\), got a 0-d array"),
    ([[1, 2]], TypeError, "expected indices as an array \\(N, ...\\), got list"),
])
def test_bad_indices_are_named(x, error, match):
    with pytest.raises(error, match=match):
        bp.Embedding(7, 3).forward(x)


def test_float_indices_of_a_table_taller_than_their_precision_are_refused():
    v = 2 ** 24 + 2
    model = bp.Sequential([bp.Identity(), bp.Embedding(v, 1, init="zeros")])
    with pytest.raises(ValueError, match=r"expected integer indices for a table of 16777218 "
                                         r"rows, got float32, which holds whole numbers "
                                         r"exactly only up to 2\*\*24: pass integer "
                                         r"indices \(an Embedding after other layers"):
        model.predict(np.array([[v - 1]]))


def test_int32_indices_through_trace_summary_bench_and_a_list():
    model = bp.Sequential([bp.Embedding(50_000, 4, rng=0), bp.Dense(4, 3, rng=1)])
    x = np.array([46341, 7], np.int32)  # 46341**2 overflows int32
    with bp.trace(model) as t:
        y = model.forward(x, training=True)
        model.backward(np.ones_like(y))
    assert t[0].forward[0].x_norm == pytest.approx(np.hypot(46341.0, 7.0))
    np.testing.assert_array_equal(model.forward(x.tolist()), y)
    assert model.summary(()).rows[0][1] == "(N, 4)"
    assert bp.bench(model, (), 8, steps=2).samples_per_s > 0


def test_fit_and_predict_check_every_index_before_any_step_naming_themselves():
    model = bp.Sequential([bp.Embedding(7, 3), bp.Flatten(), bp.Dense(6, 2)])
    before = model.flat_params.copy()
    x = np.zeros((40, 2), int)
    x[35, 1] = 9  # a bad index in a late batch: refused before any step
    with pytest.raises(ValueError, match=r"^fit: x: Embedding\(7, 3\): expected indices in "
                                         r"\[0, 7\), got 9"):
        bp.fit(model, x, np.zeros(40, int), loss=CE, optimizer=bp.SGD(model.parameters()),
               progress=False)
    np.testing.assert_array_equal(model.flat_params, before)
    with pytest.raises(ValueError, match=r"^predict: x: Embedding"):
        model.predict(x)


@pytest.mark.parametrize("make,error,match", [
    (lambda: bp.Embedding(0, 3), ValueError, "num_embeddings"),
    (lambda: bp.Embedding(5, 2.0), TypeError, "embedding_dim"),
    (lambda: bp.Embedding(5, 2, padding_idx=5), ValueError,
     r"expected padding_idx in \[-5, 5\), got 5"),
    (lambda: bp.Embedding(5, 2, padding_idx=1.0), TypeError, "padding_idx to be an int"),
    (lambda: bp.Embedding(input_dim=5, output_dim=2), TypeError, "num_embeddings"),
    (lambda: bp.Embedding(5, 2, mask_zero=1), TypeError, "mask_zero"),
    (lambda: bp.Embedding(5, 2, max_norm=0.0), ValueError, r"max_norm \(or None\) in \(0"),
    (lambda: bp.Embedding(5, 2, max_norm="1"), TypeError, "max_norm"),
    (lambda: bp.Embedding(5, 2, max_norm=1.0, norm_type=0), ValueError,
     r"norm_type > 0 \(inf allowed\), got 0"),
    (lambda: bp.Embedding(5, 2, norm_type=float("nan")), ValueError, "norm_type > 0"),
    (lambda: bp.Embedding(5, 2, norm_type=None), TypeError, "norm_type to be a number"),
    (lambda: bp.Embedding(5, 2, scale_grad_by_freq=1), TypeError, "scale_grad_by_freq"),
])
def test_bad_settings_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_padding_idx_counts_from_the_end_as_torch_and_the_config_rebuilds_it():
    layer = bp.Embedding(6, 2, padding_idx=-2)
    assert layer.padding_idx == 4 and not layer.params["W"][4].any()
    assert repr(layer) == "Embedding(6, 2, padding_idx=4)"
    assert bp.Embedding(**layer.get_config()).padding_idx == 4


def test_from_torch_bench_and_saving_take_an_embedding(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    theirs = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(12, 3)).double()
    ours = bp.Sequential([bp.Embedding(20, 4), bp.Flatten(), bp.Dense(12, 3)]
                         ).astype(np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    x = np.random.default_rng(0).integers(0, 20, (5, 3))
    np.testing.assert_allclose(ours.predict(x), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    ours.save(tmp_path / "e.npz")
    np.testing.assert_array_equal(bp.load(tmp_path / "e.npz").predict(x), ours.predict(x))
    result = bp.bench(ours, (3,), 8, steps=2)
    assert result.samples_per_s > 0
    assert [row.name for row in result.layers][0].startswith("(0) Embedding")


# -- max_norm, norm_type, scale_grad_by_freq -------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_norm_rescales_the_rows_read_in_place_as_torch(norm_type, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = bp.Embedding(10, 4, padding_idx=0, max_norm=1.0, norm_type=norm_type,
                         dtype=dtype, rng=0)
    theirs = torch.nn.Embedding(10, 4, padding_idx=0, max_norm=1.0, norm_type=norm_type
                                ).to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(layer.params["W"]))
    before = layer.params["W"].copy()
    tol = 1e-6 if dtype == np.float32 else 1e-14
    batches = [(True, rng.integers(0, 6, (3, 5))), (False, np.array([[7, 7, 0]]))]
    for training, x in batches:
        y = layer.forward(x, training=training)
        yt = theirs(torch.tensor(x))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.params["W"], theirs.weight.detach().numpy(),
                                   rtol=tol, atol=tol)
        if training:  # the backward is the plain lookup's
            dy = rng.standard_normal(y.shape).astype(dtype)
            layer.backward(dy)
            yt.backward(torch.tensor(dy))
            np.testing.assert_allclose(layer.grads["W"], theirs.weight.grad.numpy(),
                                       rtol=tol, atol=tol)
    read = np.unique(np.concatenate([x.reshape(-1) for _, x in batches]))
    unread = np.setdiff1d(np.arange(10), read)
    norms = np.linalg.norm(layer.params["W"].astype(np.float64), ord=norm_type, axis=1)
    was = np.linalg.norm(before.astype(np.float64), ord=norm_type, axis=1)
    assert (was[read] > 1.0).sum() >= 2  # the test renormalizes something
    assert (norms[read] <= 1.0 + 1e-6).all()  # every row read is within max_norm
    np.testing.assert_array_equal(layer.params["W"][unread], before[unread])


@pytest.mark.parametrize("padding_idx", [None, 1])
@pytest.mark.parametrize("route", [(7, 3, (4, 5)), (30, 16, (64, 20))])
def test_scale_grad_by_freq_divides_by_each_index_count_as_torch(padding_idx, route):
    torch = pytest.importorskip("torch")
    v, d, shape = route
    rng = np.random.default_rng(1)
    x = rng.integers(0, min(v, 6), shape)
    layer = bp.Embedding(v, d, padding_idx=padding_idx, scale_grad_by_freq=True,
                         dtype=np.float64, rng=0)
    theirs = torch.nn.Embedding(v, d, padding_idx=padding_idx, scale_grad_by_freq=True
                                ).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(layer.params["W"]))
    dy = rng.standard_normal((*shape, d))
    dy_before = dy.copy()
    layer.forward(x, training=True)
    layer.backward(dy)
    theirs(torch.tensor(x)).backward(torch.tensor(dy))
    np.testing.assert_allclose(layer.grads["W"], theirs.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(dy, dy_before)  # the caller's dy is not scaled in place
    counts = np.bincount(x.reshape(-1), minlength=v)
    plain = bp.Embedding(v, d, padding_idx=padding_idx, dtype=np.float64, rng=0)
    plain.forward(x, training=True)
    plain.backward(dy)
    hit = counts > 0
    np.testing.assert_allclose(layer.grads["W"][hit], plain.grads["W"][hit] / counts[hit, None],
                               rtol=1e-12, atol=1e-15)


def test_the_new_options_rebuild_from_the_config_and_survive_saving(tmp_path):
    layer = bp.Embedding(6, 2, max_norm=1.0, norm_type=float("inf"), scale_grad_by_freq=True)
    assert repr(layer) == ("Embedding(6, 2, max_norm=1.0, norm_type=inf, "
                           "scale_grad_by_freq=True)")
    again = bp.Embedding(**layer.get_config())
    assert (again.max_norm, again.norm_type, again.scale_grad_by_freq) == (1.0, np.inf, True)
    model = bp.Sequential([layer, bp.Flatten(), bp.Dense(4, 2)])
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")[0]
    assert (loaded.max_norm, loaded.norm_type, loaded.scale_grad_by_freq) == (1.0, np.inf, True)
