"""Inputs with more axes than (N, D): Dense over (N, *, D), cross-entropy per position
(logits (N, C, *)), and Permute, against PyTorch where it has the same operation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop as bp


def _linear(layer: bp.Dense):
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(layer.params["W"].T))
        if layer.bias:
            lin.bias.copy_(torch.tensor(layer.params["b"]))
    return lin


@pytest.mark.parametrize("shape", [(3, 5, 6), (2, 3, 4, 6), (1, 1, 6)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_acts_on_the_last_axis_as_torch_linear(shape, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = bp.Dense(6, 4, bias=bias, dtype=np.float64, rng=0)
    x = rng.standard_normal(shape)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    lin = _linear(layer)
    xt = torch.tensor(x, requires_grad=True)
    yt = lin(xt)
    yt.backward(torch.tensor(dy))
    assert y.shape == (*shape[:-1], 4) and dx.shape == shape
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.grads["W"], lin.weight.grad.numpy().T, rtol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.grads["b"], lin.bias.grad.numpy(), rtol=1e-12)


def test_dense_over_tokens_equals_dense_over_the_flattened_rows():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    a, b = bp.Dense(5, 3, rng=2), bp.Dense(5, 3, rng=2)
    ya, yb = a.forward(x, training=True), b.forward(x.reshape(-1, 5), training=True)
    np.testing.assert_array_equal(ya.reshape(-1, 3), yb)
    dy = rng.standard_normal(ya.shape).astype(np.float32)
    np.testing.assert_array_equal(a.backward(dy).reshape(-1, 5), b.backward(dy.reshape(-1, 3)))
    np.testing.assert_array_equal(a.grads["W"], b.grads["W"])
    assert a.gemm_shapes((4, 7, 5)) == b.gemm_shapes((28, 5))


def test_dense_names_the_last_axis_and_checks_dy_against_its_output():
    layer = bp.Dense(4, 8)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4\) or \(N, \.\.\., 4\) "
                                         r"\(Dense acts on the last axis\), got \(2, 1, 8, 8\)"):
        layer.forward(np.zeros((2, 1, 8, 8), np.float32))
    layer.forward(np.zeros((2, 3, 4), np.float32), training=True)
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3, 8\), got \(6, 8\)"):
        layer.backward(np.zeros((6, 8), np.float32))


def test_a_token_model_summarises_trains_and_saves(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5, 6)).astype(np.float32)
    y = (x.sum(axis=-1) > 0).astype(int)  # one label per token
    model = bp.Sequential(bp.Dense(6, 16, rng=0), bp.GELU(), bp.LayerNorm(16),
                          bp.Dense(16, 2, rng=1), bp.Permute((2, 1)))
    assert "(N, 2, 5)" in str(model.summary((5, 6)))
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=30, batch_size=16,
                        optimizer=bp.Adam(model.parameters(), lr=1e-2), metrics=["accuracy"],
                        progress=False, seed=0)
    assert history.history["accuracy"][-1] > 0.95 > history.history["accuracy"][0]
    model.save(tmp_path / "tokens.npz")
    np.testing.assert_array_equal(bp.load(tmp_path / "tokens.npz").predict(x), model.predict(x))


# -- cross-entropy over (N, C, *) logits -----------------------------------------------------
def _cases():
    for shape, eps, weighted, ignore, soft in itertools.product(
            [(3, 4, 5), (2, 3, 4, 5), (2, 5, 1, 3, 2)], [0.0, 0.2], [False, True],
            [None, 1, -100], [False, True]):
        if not (soft and ignore is not None and ignore >= 0):  # torch refuses that pair too
            yield shape, eps, weighted, ignore, soft


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_per_position_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for shape, eps, weighted, ignore, soft in _cases():
        n, c, rest = shape[0], shape[1], shape[2:]
        z = rng.standard_normal(shape).astype(dtype)
        if soft:
            t = rng.random(shape).astype(dtype)
            t /= t.sum(axis=1, keepdims=True)
        else:
            t = rng.integers(0, c, (n, *rest))
        kw = {} if ignore is None else {"ignore_index": ignore}
        if weighted:
            kw["weight"] = rng.uniform(0.1, 2.0, c)
        loss = bp.SoftmaxCrossEntropy(eps, **kw)
        value, grad = loss.forward(z, t), loss.backward()
        zt = torch.tensor(z, requires_grad=True)
        tkw = {**kw, "label_smoothing": eps}
        if weighted:
            tkw["weight"] = torch.tensor(kw["weight"], dtype=zt.dtype)
        expected = torch.nn.functional.cross_entropy(zt, torch.tensor(t), **tkw)
        expected.backward()
        tol = 1e-12 if dtype == np.float64 else 2e-6
        where = (shape, eps, weighted, ignore, soft)
        assert value == pytest.approx(expected.item(), rel=tol, abs=tol), where
        assert grad.dtype == dtype and grad.shape == shape and grad.flags.c_contiguous
        np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=tol * 10, atol=tol,
                                   err_msg=str(where))


def test_cross_entropy_per_position_sample_weight_weighs_all_of_a_samples_positions():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z, t = rng.standard_normal((3, 4, 5)), rng.integers(0, 4, (3, 5))
    w = np.array([1.0, 0.0, 2.5])
    per = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(t), reduction="none")
    expected = (per.numpy().sum(axis=1) * w).sum() / t.size
    assert bp.SoftmaxCrossEntropy().forward(z, t, w) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_per_position_names_the_class_axis():
    loss = bp.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"expected 6 class indices of shape \(3, 2\) for "
                                         r"logits \(3, 5, 2\), got \(3, 5\) \(the classes go on "
                                         r"axis 1.*bp\.Permute\(\(2, 1\)\)"):
        loss.forward(np.zeros((3, 5, 2)), np.zeros((3, 5), int))
    with pytest.raises(ValueError, match=r"bp\.Permute\(\(3, 1, 2\)\)"):
        loss.forward(np.zeros((3, 4, 5, 2)), np.zeros((3, 4, 5), int))
    with pytest.raises(TypeError, match=r"expected integer class indices \(N, 5\), got dtype "
                                        r"float64"):
        loss.forward(np.zeros((3, 4, 5)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"expected logits of 3 classes \(one per weight\), got "
                                         r"shape \(2, 4, 5\) \(the classes are axis 1\)"):
        bp.SoftmaxCrossEntropy(weight=[1, 2, 3]).forward(np.zeros((2, 4, 5)),
                                                         np.zeros((2, 5), int))


def _segmentation(n=48):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1, 6, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 0] > 1)  # a class per pixel
    model = bp.Sequential(bp.Conv2D(1, 8, 3, padding=1, rng=0), bp.ReLU(),
                          bp.Conv2D(8, 3, 1, rng=1))
    return x, y, model


def test_fit_and_evaluate_score_each_pixel_the_loss_counts():
    x, y, model = _segmentation()
    y[:, 0, :] = -1  # the top row of every image is not labelled
    loss = bp.SoftmaxCrossEntropy(ignore_index=-1)
    history = model.fit(x, y, loss=loss, optimizer=bp.Adam(model.parameters(), lr=1e-2),
                        epochs=25, batch_size=16, metrics=["accuracy"], progress=False, seed=0)
    assert history.history["accuracy"][-1] > 0.9
    scores = model.evaluate(x, y, loss=loss, metrics=["accuracy"])
    pred = model.predict(x).argmax(axis=1)
    kept = y != -1
    assert scores["accuracy"] == pytest.approx((pred[kept] == y[kept]).mean())
    out = model.predict(x)
    assert scores["loss"] == pytest.approx(loss.forward(out, y), rel=1e-6)
    # the epoch's loss is the mean over every counted pixel, as one batch would give
    lr0 = bp.SGD(model.parameters(), lr=0.1)
    lr0.lr = 0.0  # a step that changes nothing
    h = model.fit(x, y, loss=loss, optimizer=lr0, epochs=1, batch_size=7, progress=False)
    assert h.history["loss"][0] == pytest.approx(scores["loss"], rel=1e-5)


def test_fit_refuses_class_weight_for_labels_per_position():
    x, y, model = _segmentation(8)
    with pytest.raises(ValueError, match=r"class_weight with one label per sample, got output "
                                         r"\(N, 3, 6, 6\) with targets \(8, 6, 6\).*"
                                         r"SoftmaxCrossEntropy\(weight="):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                  class_weight={0: 1.0, 1: 2.0}, progress=False)


# -- Permute --------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(2, 1), (3, 1, 2), (1, 3, 2), (2, 3, 1)])
def test_permute_is_torch_permute_after_the_batch_axis(dims):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)[:len(dims) + 1])
    layer = bp.Permute(dims, dtype=np.float64)
    y = layer.forward(x, training=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt.permute(0, *dims)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(layer.backward(dy), xt.grad.numpy())


def test_permute_refuses_torch_style_dims_and_non_permutations():
    with pytest.raises(ValueError, match=r"PyTorch's x\.permute\(0, 2, 1\) is Permute\(\(2, 1\)\)"):
        bp.Permute((0, 2, 1))
    with pytest.raises(ValueError, match=r"expected dims as a permutation of 1\.\.2"):
        bp.Permute((1, 1))
    with pytest.raises(TypeError, match=r"expected dims as a tuple of ints"):
        bp.Permute((2.0, 1))
    with pytest.raises(ValueError, match=r"expected dims of at least one axis"):
        bp.Permute(())
    with pytest.raises(ValueError, match=r"Permute\(\(2, 1\)\): expected input of shape "
                                         r"\(N, \?, \?\), got \(3, 4\)"):
        bp.Permute((2, 1)).forward(np.zeros((3, 4), np.float32))


def test_dense_backward_goes_through_an_overridden_backward_params():
    calls = []

    class Logged(bp.Dense):
        def backward_params(self, dy):
            calls.append(dy.shape)
            super().backward_params(dy)

    layer = Logged(3, 2, rng=0)
    layer.forward(np.ones((2, 4, 3), np.float32), training=True)
    dx = layer.backward(np.ones((2, 4, 2), np.float32))
    assert calls == [(8, 2)] and dx.shape == (2, 4, 3)  # the override sees dy as rows


def test_one_hot_targets_per_position_score_as_their_labels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5, 4)).astype(np.float32)
    y = rng.integers(0, 3, (40, 5))
    model = bp.Sequential([bp.Dense(4, 3, rng=0), bp.Permute((2, 1))])
    one_hot = np.eye(3, dtype=int)[y].transpose(0, 2, 1)  # (N, C, T)
    scores = dict(loss=bp.SoftmaxCrossEntropy(), metrics=["accuracy", "top_2_accuracy"])
    assert model.evaluate(x, one_hot, **scores) == model.evaluate(x, y, **scores)
    assert "?" in str(model.summary())  # the guessed (4,) does not fit: no shapes, no error
    assert "(N, 3, 5)" in str(model.summary((5, 4)))


def test_flatten_takes_pytorchs_start_and_end_dim():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    for start, end in [(1, -1), (2, -1), (1, 2), (2, 3), (3, 3), (1, -2), (2, -2)]:
        layer = bp.Flatten(start, end)
        y = layer.forward(x, training=True)
        np.testing.assert_array_equal(y, torch.nn.Flatten(start, end)(torch.from_numpy(x)))
        np.testing.assert_array_equal(layer.backward(y), x)
    with pytest.raises(ValueError, match=r"Flatten: expected start_dim >= 1 or negative \(the "
                                         r"batch axis 0 stays\), got 0"):
        bp.Flatten(0)
    for start, end in [(-3, -1), (-2, -1), (-3, -2), (-1, -1)]:  # PyTorch's negative start
        y = bp.Flatten(start, end).forward(x)
        np.testing.assert_array_equal(y, torch.nn.Flatten(start, end)(torch.from_numpy(x)))
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=-4\): expected axes after the "
                                         r"batch axis.*start_dim -3 or more"):
        bp.Flatten(-4).forward(x)
    with pytest.raises(TypeError, match="Flatten: expected end_dim to be an int, got 1.5"):
        bp.Flatten(1, 1.5)
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=3, end_dim=1\): expected "
                                         r"start_dim <= end_dim .* shape \(2, 3, 4, 5\)"):
        bp.Flatten(3, 1).forward(x)
    with pytest.raises(ValueError, match=r"got axes 4\.\.3 of an input of shape"):
        bp.Flatten(4).forward(x)
