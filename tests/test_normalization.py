"""BatchNorm and LayerNorm against PyTorch: outputs, gradients, running statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import backprop as bp


def _torch_bn(torch, shape, bn):
    cls = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    tbn = cls(bn.num_features, eps=bn.eps, momentum=bn.momentum).double()
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(bn.params["gamma"]))
        tbn.bias.copy_(torch.tensor(bn.params["beta"]))
    return tbn


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (4, 3, 5, 6)])
@pytest.mark.parametrize("momentum", [0.2, None])  # None: PyTorch's cumulative average
def test_batchnorm_matches_torch_over_several_steps_and_in_eval(shape, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    bn = bp.BatchNorm(3, momentum=momentum, dtype=np.float64)
    bn.params["gamma"][...] = rng.uniform(0.5, 2, 3)
    bn.params["beta"][...] = rng.standard_normal(3)
    tbn = _torch_bn(torch, shape, bn)
    for _ in range(4):
        x = rng.standard_normal(shape) * 3 + 2
        dy = rng.standard_normal(shape)
        y = bn.forward(x, training=True)
        dx = bn.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        tbn.zero_grad()
        yt = tbn(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(bn.grads["gamma"], tbn.weight.grad.numpy(), atol=1e-11)
        np.testing.assert_allclose(bn.grads["beta"], tbn.bias.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(bn.buffers["running_mean"], tbn.running_mean.numpy(), atol=1e-13)
    np.testing.assert_allclose(bn.buffers["running_var"], tbn.running_var.numpy(), atol=1e-13)
    tbn.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(bn.forward(x), tbn(torch.tensor(x)).detach().numpy(), atol=1e-12)


def test_batchnorm_running_stats_follow_pytorch_momentum_convention():
    x = np.array([[1.0], [2.0], [3.0], [6.0]], dtype=np.float32)  # mean 3, unbiased var 14/3
    bn = bp.BatchNorm(1)
    bn.forward(x, training=True)
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.1 * 3.0], rtol=1e-6)
    np.testing.assert_allclose(bn.buffers["running_var"], [0.9 + 0.1 * 14 / 3], rtol=1e-6)
    assert bn.buffers["running_mean"].dtype == np.float32


def test_batchnorm_momentum_none_averages_every_batch_and_saves_its_count(tmp_path):
    bn = bp.BatchNorm(1, momentum=None, dtype=np.float64)
    batches = [np.array([[1.0], [3.0]]), np.array([[5.0], [9.0]]), np.array([[0.0], [4.0]])]
    for x in batches:
        bn.forward(x, training=True)
        bn.clear_cache()
    np.testing.assert_allclose(bn.buffers["running_mean"], [np.mean([2.0, 7.0, 2.0])])
    np.testing.assert_allclose(bn.buffers["running_var"], [np.mean([2.0, 8.0, 8.0])])
    assert bn.buffers["num_batches_tracked"][0] == 3
    bn.forward(batches[0])  # inference counts nothing
    assert bn.buffers["num_batches_tracked"][0] == 3
    model = bp.Sequential([bn])
    model.save(tmp_path / "bn.npz")
    loaded = bp.load(tmp_path / "bn.npz")
    assert repr(loaded) == repr(model) and loaded[0].buffers["num_batches_tracked"][0] == 3
    assert "num_batches_tracked" not in bp.BatchNorm(1).buffers  # only where it is used


def test_batchnorm_inference_uses_running_stats_and_changes_nothing():
    bn = bp.BatchNorm(2)
    bn.buffers["running_mean"][...] = [1.0, -1.0]
    bn.buffers["running_var"][...] = [4.0, 0.25]
    x = np.array([[3.0, 0.0], [1.0, -1.5]], dtype=np.float32)
    y = bn.forward(x)
    np.testing.assert_allclose(y, (x - [1, -1]) / np.sqrt(np.array([4, 0.25]) + 1e-5), rtol=1e-6)
    np.testing.assert_array_equal(bn.buffers["running_mean"], [1.0, -1.0])
    assert not bn.has_cache


def test_batchnorm_with_running_stats_in_training_is_an_affine_map():
    rng = np.random.default_rng(0)
    bn = bp.BatchNorm(3, use_running_stats=True, dtype=np.float64)
    bn.params["gamma"][...] = [0.5, 1.0, 2.0]
    bn.buffers["running_mean"][...] = [0.1, 0.2, 0.3]
    bn.buffers["running_var"][...] = [1.0, 2.0, 3.0]
    x = rng.standard_normal((5, 3, 4))
    y_train = bn.forward(x, training=True)
    np.testing.assert_array_equal(y_train, bn.forward(x))
    np.testing.assert_array_equal(bn.buffers["running_mean"], [0.1, 0.2, 0.3])
    dy = rng.standard_normal(x.shape)
    dx = bn.backward(dy)
    scale = np.array([0.5, 1.0, 2.0]) / np.sqrt(np.array([1.0, 2.0, 3.0]) + 1e-5)
    np.testing.assert_allclose(dx, dy * scale[:, None])
    assert repr(bn) == "BatchNorm(3, use_running_stats=True, dtype='float64')"


def test_batchnorm_buffers_are_saved_state_of_the_model():
    model = bp.Sequential([bp.Dense(4, 3, rng=0), bp.BatchNorm(3), bp.ReLU()])
    assert set(model.buffers) == {"1.running_mean", "1.running_var"}
    assert [p.name for p in model.parameters()] == ["0.W", "0.b", "1.gamma", "1.beta"]
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    model.forward(x, training=True)
    assert np.all(model.buffers["1.running_mean"] != 0)


def test_batchnorm_needs_more_than_one_value_per_channel_in_training():
    bn = bp.BatchNorm(3)
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel.*\(1, 3\)"):
        bn.forward(np.zeros((1, 3), np.float32), training=True)
    assert bn.forward(np.zeros((1, 3), np.float32)).shape == (1, 3)  # inference is fine


def test_batchnorm_rejects_wrong_channels_and_rank():
    with pytest.raises(ValueError,
                       match=r"expected input of shape \(N, 3, H, W\), got \(2, 4, 5, 5\)"):
        bp.BatchNorm(3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C\), \(N, C, L\), "
                                         r"\(N, C, H, W\) or \(N, C, D, H, W\), "
                                         r"got \(2, 3, 1, 1, 1, 1\)"):
        bp.BatchNorm(3).forward(np.zeros((2, 3, 1, 1, 1, 1), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        bp.BatchNorm(3, momentum=1.5)


@pytest.mark.parametrize("shape,normalized", [((4, 6), 6), ((2, 3, 4, 5), (4, 5)),
                                              ((2, 3, 5), (5,)), ((3, 2, 4), (2, 4))])
def test_layernorm_matches_torch(shape, normalized):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ln = bp.LayerNorm(normalized, dtype=np.float64)
    ln.params["gamma"][...] = rng.uniform(0.5, 2, ln.params["gamma"].shape)
    ln.params["beta"][...] = rng.standard_normal(ln.params["beta"].shape)
    x, dy = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape)
    y = ln.forward(x, training=True)
    dx = ln.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    g = torch.tensor(ln.params["gamma"], requires_grad=True)
    b = torch.tensor(ln.params["beta"], requires_grad=True)
    dims = (normalized,) if isinstance(normalized, int) else normalized
    yt = torch.nn.functional.layer_norm(xt, dims, g, b, 1e-5)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ln.grads["gamma"], g.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ln.grads["beta"], b.grad.numpy(), atol=1e-12)


def test_layernorm_float32_and_same_in_training_and_inference():
    ln = bp.LayerNorm(8)
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32) * 100
    y = ln.forward(x, training=True)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, ln.forward(x))
    np.testing.assert_allclose(y.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(1), 1, atol=1e-3)


def test_layernorm_rejects_wrong_trailing_shape():
    with pytest.raises(ValueError,
                       match=r"expected input of shape \(N, \?, 4, 5\), got \(2, 3, 5, 4\)"):
        bp.LayerNorm((4, 5)).forward(np.zeros((2, 3, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 8\), got \(8,\)"):
        bp.LayerNorm(8).forward(np.zeros(8, np.float32))
    assert repr(bp.LayerNorm((4, 5))) == "LayerNorm((4, 5))"
    assert repr(bp.LayerNorm(6, eps=1e-6)) == "LayerNorm(6, eps=1e-06)"


def test_a_keras_style_momentum_warns_and_says_what_it_means_here():
    with pytest.warns(UserWarning, match=r"BatchNorm: momentum=0.99 weighs each new batch by "
                                         r"0.99 .*Keras' momentum=0.99 is momentum=0.01 "
                                         r"here") as record:
        bp.BatchNorm(8, momentum=0.99)
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for momentum in (0.1, 0.5, 1.0, None):  # PyTorch's values: silent
            bp.BatchNorm(8, momentum=momentum)


def test_the_momentum_warning_is_not_repeated_when_a_model_is_loaded(tmp_path):
    with pytest.warns(UserWarning, match="momentum=0.9 weighs"):
        model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.BatchNorm(4, momentum=0.9)])
    model.save(tmp_path / "m.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bp.load(tmp_path / "m.npz")[1].momentum == 0.9


def test_batchnorm_reset_then_momentum_none_is_torchs_recompute_recipe():
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((6, 3)) * 2 + 1 for _ in range(8)]
    bn = bp.BatchNorm(3, dtype=np.float64)
    for x in batches[:5]:
        bn.forward(x, training=True)
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.buffers["running_mean"], 0.0)
    np.testing.assert_array_equal(bn.buffers["running_var"], 1.0)
    bn.momentum = None
    for x in batches[5:]:
        bn.forward(x, training=True)
    three = np.concatenate(batches[5:])
    np.testing.assert_allclose(bn.buffers["running_mean"],  # the plain average of the 3
                               np.mean([b.mean(0) for b in batches[5:]], axis=0), rtol=1e-12)
    assert bn.buffers["num_batches_tracked"][0] == 3 and three.shape == (18, 3)
    bn.reset_running_stats()
    assert bn.buffers["num_batches_tracked"][0] == 0
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm1d(3).double()
    for x in batches[:5]:
        theirs(torch.tensor(x))
    theirs.reset_running_stats()
    theirs.momentum = None
    ours = bp.BatchNorm(3, dtype=np.float64)
    for x in batches[:5]:
        ours.forward(x, training=True)
    ours.reset_running_stats()
    ours.momentum = None
    for x in batches[5:]:
        theirs(torch.tensor(x))
        ours.forward(x, training=True)
    np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean.numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(),
                               rtol=1e-12)


def test_batchnorm_momentum_set_later_keeps_the_layer_and_its_files_whole(tmp_path):
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    model = bp.Sequential([bp.BatchNorm(3)])
    model[0].momentum = None  # PyTorch's recipe: a plain average of the batches to come
    model[0].buffers["running_mean"][...] = 0.0
    model[0].buffers["running_var"][...] = 1.0
    model.forward(x, training=True)
    np.testing.assert_allclose(model[0].buffers["running_mean"], x.mean(axis=0), rtol=1e-5,
                               atol=1e-6)
    assert model[0].buffers["num_batches_tracked"][0] == 1
    model.save(tmp_path / "none.npz")
    assert bp.load(tmp_path / "none.npz")[0].momentum is None
    model[0].momentum = 0.2
    assert "num_batches_tracked" not in model[0].buffers
    model.save(tmp_path / "float.npz")
    assert bp.load(tmp_path / "float.npz")[0].momentum == 0.2
    with pytest.raises(ValueError, match=r"BatchNorm: expected momentum in \[0\.0, 1\.0\]"):
        model[0].momentum = 5.0
    assert model[0].momentum == 0.2


@pytest.mark.parametrize(("name", "value"), [("running_var", -1.0), ("running_var", np.inf),
                                              ("running_mean", np.nan)])
def test_load_refuses_running_statistics_no_batch_could_give(tmp_path, name, value):
    model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.BatchNorm(4)])
    state = model.state_dict()
    state[f"1.{name}"][1] = value
    with pytest.raises(ValueError, match=rf"expected '1\.{name}' as finite values"):
        model.load_state_dict(state)
    assert np.isfinite(model[1].buffers[name]).all()


@pytest.mark.parametrize(("shape", "groups"), [((4, 6, 5, 5), 3), ((3, 6, 7), 2),
                                               ((5, 8, 3, 4), 1), ((2, 4, 3), 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm_matches_torch(shape, groups, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    layer = bp.GroupNorm(groups, shape[1], dtype=dtype)
    layer.params["gamma"][...] = rng.standard_normal(shape[1])
    layer.params["beta"][...] = rng.standard_normal(shape[1])
    theirs = torch.nn.GroupNorm(groups, shape[1]).to(torch.float64 if dtype == np.float64
                                                     else torch.float32)
    theirs.load_state_dict({"weight": torch.tensor(layer.params["gamma"]),
                            "bias": torch.tensor(layer.params["beta"])})
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dx.dtype == layer.grads["gamma"].dtype == dtype
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.grads["gamma"], theirs.weight.grad.numpy(), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(layer.grads["beta"], theirs.bias.grad.numpy(), rtol=tol,
                               atol=tol)


def test_group_norm_checks_its_groups_and_input_and_loads_from_torch():
    with pytest.raises(ValueError, match=r"^GroupNorm: expected num_groups to divide "
                                         r"num_channels, got 3 groups for 4 channels$"):
        bp.GroupNorm(3, 4)
    layer = bp.GroupNorm(2, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4, \?\), got "
                                         r"\(2, 3, 4\)"):
        layer.forward(np.zeros((2, 3, 4), np.float32))
    torch = pytest.importorskip("torch")
    theirs = torch.nn.GroupNorm(2, 4)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.normal_()
    layer.load_state_dict(bp.from_torch(layer, theirs.state_dict()))
    x = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=2e-5, atol=2e-5)


def test_group_norm_of_an_empty_spatial_axis_is_empty_as_torchs():
    layer = bp.GroupNorm(2, 4)
    x = np.zeros((2, 4, 0), np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (2, 4, 0) and y.dtype == np.float32
    dx = layer.backward(np.zeros_like(y))
    assert dx.shape == x.shape and not layer.grads["gamma"].any()


@pytest.mark.parametrize("make", [lambda: bp.BatchNorm(2, momentum=1.0),
                                  lambda: bp.GroupNorm(1, 2), lambda: bp.LayerNorm((2, 512, 1024))])
def test_float32_norms_of_a_million_values_are_as_accurate_as_pytorchs(make):
    """Their sums ran as one einsum or BLAS product, adding ~2^20 values one after another:
    outputs 1.7e-4 off (PyTorch's float32: 4.7e-7), running variance 6e-5 relative. Each
    call now adds at most 2^14 values into a total."""
    rng = np.random.default_rng(0)
    layer = make()
    shape = (1, 2, 512, 1024)
    x = rng.standard_normal(shape).astype(np.float32) + 3
    dy = rng.standard_normal(shape).astype(np.float32)
    ref = layer.astype(np.float64)
    y, y64 = layer.forward(x, training=True), ref.forward(x.astype(np.float64), training=True)
    dx, dx64 = layer.backward(dy), ref.backward(dy.astype(np.float64))
    assert np.abs(y - y64).max() < 2e-6  # 1.7e-4 before
    assert np.abs(dx - dx64).max() < 2e-6 * np.abs(dx64).max()
    for name, g in layer.grads.items():
        g64 = ref.grads[name]
        assert np.abs(g - g64).max() < 2e-6 * np.abs(g64).max(), name
    for name, b in layer.buffers.items():
        np.testing.assert_allclose(b, ref.buffers[name], rtol=1e-6)


def test_the_norms_sums_stay_accurate_in_float32_along_every_long_axis():
    """Per channel over many samples (BatchNorm on (N, C)), along long rows (LayerNorm's
    features) and down long columns (LayerNorm's dgamma over many tokens)."""
    from backprop.layers import _sums

    rng = np.random.default_rng(0)
    a = rng.standard_normal((2**20, 2)).astype(np.float32) + 3
    b = rng.standard_normal(a.shape).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ab, a2 = np.abs(a64 * b64), a64.reshape(2, 2**20) ** 2
    for got, want, size in [  # size: the sum of the terms' magnitudes
        (_sums.channel_sum(a, b), (a64 * b64).sum(0), ab.sum(0)),  # (N, C): 2^20 samples
        (_sums.channel_sum(a.reshape(1, 2, 2**20), a.reshape(1, 2, 2**20)), a2.sum(1),
         a2.sum(1)),  # one long map per channel
        (_sums.row_sum(a.reshape(2, 2**20)), a64.reshape(2, 2**20).sum(1),
         np.abs(a64).reshape(2, 2**20).sum(1)),
        (_sums.row_sum(a.reshape(2, 2**20), a.reshape(2, 2**20)), a2.sum(1), a2.sum(1)),
        (_sums.column_sum(a * b, np.empty(2, np.float32)), (a64 * b64).sum(0), ab.sum(0)),
        (_sums.batch_sum(a[..., None], b[..., None]), (a64 * b64).sum(0), ab.sum(0)),
        (_sums.batch_sum(a.reshape(2**13, 2, 128)), a64.reshape(2**13, 2, 128).sum((0, 2)),
         np.abs(a64).reshape(2**13, 2, 128).sum((0, 2))),  # rows first, then 2^13 samples
        (_sums.batch_sum(a.reshape(1, 2, 2**20), a.reshape(1, 2, 2**20)), a2.sum(1),
         a2.sum(1)),
        (_sums.channel_rows(a.reshape(1, 2, 2**20)).ravel(), a64.reshape(2, 2**20).sum(1),
         np.abs(a64).reshape(2, 2**20).sum(1)),
    ]:  # einsum / BLAS in one call: up to 6e-5 of the size; float32 terms: ~6e-8
        assert np.all(np.abs(got - want) < 1e-6 * size), (got, want)


# -- PyTorch's options: affine, track_running_stats, elementwise_affine, bias, 5-D input --

_BN_CLASSES = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}


@pytest.mark.parametrize("ndim", [2, 3, 4, 5])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_options_match_torch_in_training_and_inference(ndim, affine, track, momentum):
    """Outputs, dx, dgamma/dbeta and running statistics over three train/eval rounds,
    the weights loaded from PyTorch's state dict through from_torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(ndim)
    shape = (4, 3, 5, 4, 3)[:ndim]
    theirs = getattr(torch.nn, _BN_CLASSES[ndim])(3, momentum=momentum, affine=affine,
                                                  track_running_stats=track).double()
    if affine:
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
    ours = bp.BatchNorm(3, momentum=momentum, affine=affine, track_running_stats=track,
                        dtype=np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    assert set(ours.params) == ({"gamma", "beta"} if affine else set())
    assert {"running_mean", "running_var"} <= set(ours.buffers) or not track
    assert not ours.buffers or track
    for _ in range(3):
        for training in (True, False):
            x = rng.standard_normal(shape) * 2 + 1
            dy = rng.standard_normal(shape)
            theirs.train(training)
            tx = torch.tensor(x, requires_grad=True)
            ty = theirs(tx)
            ty.backward(torch.tensor(dy))
            np.testing.assert_allclose(ours.forward(x, training=training),
                                       ty.detach().numpy(), atol=1e-12)
            if training:
                np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), atol=1e-12)
            if training and affine:
                np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(),
                                           atol=1e-12)
                np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(),
                                           atol=1e-12)
            if affine:
                theirs.weight.grad = theirs.bias.grad = None
            for name in ("running_mean", "running_var") if track else ():
                np.testing.assert_allclose(ours.buffers[name], getattr(theirs, name).numpy(),
                                           atol=1e-12)


@pytest.mark.parametrize("normalized", [5, (3, 4)])
@pytest.mark.parametrize(("elementwise_affine", "bias"),
                         [(True, True), (True, False), (False, True), (False, False)])
def test_layernorm_options_match_torch(normalized, elementwise_affine, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    shape = (2, 3, *((normalized,) if isinstance(normalized, int) else normalized))
    theirs = torch.nn.LayerNorm(normalized, elementwise_affine=elementwise_affine,
                                bias=bias).double()
    for p in theirs.parameters():
        with torch.no_grad():
            p.normal_()
    ours = bp.LayerNorm(normalized, elementwise_affine=elementwise_affine, bias=bias,
                        dtype=np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    names = {"gamma", "beta"} if bias else {"gamma"}
    assert set(ours.params) == (names if elementwise_affine else set())
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.forward(x, training=True), ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), atol=1e-12)
    for name, theirs_name in (("gamma", "weight"), ("beta", "bias")):
        if name in ours.grads:
            np.testing.assert_allclose(ours.grads[name],
                                       getattr(theirs, theirs_name).grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("spatial", [(), (5,), (3, 2)])
def test_groupnorm_without_affine_matches_torch(spatial):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    shape = (3, 4, *spatial)
    theirs = torch.nn.GroupNorm(2, 4, affine=False).double()
    ours = bp.GroupNorm(2, 4, affine=False, dtype=np.float64)
    assert not ours.params and not ours.grads
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.forward(x, training=True), ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: bp.BatchNorm(3, affine=False),
    lambda: bp.BatchNorm(3, affine=False, track_running_stats=False),
    lambda: bp.LayerNorm(3, elementwise_affine=False),
    lambda: bp.GroupNorm(1, 3, affine=False),
])
def test_a_norm_without_parameters_returns_an_output_apart_from_its_cache(make):
    """y is xhat there: a caller's change to y must not reach the backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    dy = rng.standard_normal((4, 3)).astype(np.float32)
    layer = make()
    layer.forward(x, training=True)
    want = layer.backward(dy)
    y = layer.forward(x, training=True)
    y *= 100.0
    np.testing.assert_array_equal(layer.backward(dy), want)


def test_batchnorm_without_running_stats_normalises_inference_by_the_batch():
    bn = bp.BatchNorm(2, track_running_stats=False, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((6, 2)) * 3 + 5
    y = bn.forward(x)  # inference: the batch's own statistics, nothing kept
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), 1, atol=1e-5)
    assert not bn.buffers and bn._xc is None
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel"):
        bn.forward(x[:1])  # PyTorch refuses it too: there are no running statistics
    bn.reset_running_stats()  # nothing to reset: no error
    with pytest.raises(ValueError, match=r"BatchNorm: expected use_running_stats=False with "
                                         r"track_running_stats=False"):
        bp.BatchNorm(2, track_running_stats=False, use_running_stats=True)
    bn.momentum = None  # no count is kept without statistics
    assert "num_batches_tracked" not in bn.buffers


@pytest.mark.parametrize(("ours", "theirs", "message"), [
    (lambda: bp.BatchNorm(3), lambda t: t.nn.BatchNorm1d(3, affine=False),
     r"BatchNorm\(3\) with 'weight', as the layer has 'gamma'; got one without it \(build "
     r"the layer with affine=False, or PyTorch's with affine=True\)"),
    (lambda: bp.BatchNorm(3, affine=False), lambda t: t.nn.BatchNorm1d(3),
     r"without 'weight', as the layer has no 'gamma' \(build the layer with affine=True"),
    (lambda: bp.BatchNorm(3), lambda t: t.nn.BatchNorm1d(3, track_running_stats=False),
     r"with 'running_mean'.*\(build the layer with track_running_stats=False"),
    (lambda: bp.LayerNorm(3, bias=False), lambda t: t.nn.LayerNorm(3),
     r"without 'bias', as the layer has no 'beta' \(build the layer with bias=True"),
    (lambda: bp.Dense(3, 2), lambda t: t.nn.Linear(3, 2, bias=False),
     r"Dense\(3, 2\) with 'bias', as the layer has 'b'; .* with bias=False"),
])
def test_from_torch_names_the_option_two_norms_differ_in(ours, theirs, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=message):
        bp.from_torch(ours(), theirs(torch).state_dict())


def test_norm_options_show_in_repr_and_survive_saving(tmp_path):
    layers = [bp.BatchNorm(3, affine=False, track_running_stats=False),
              bp.LayerNorm(4, elementwise_affine=False), bp.LayerNorm(4, bias=False),
              bp.GroupNorm(2, 4, affine=False)]
    assert [repr(la) for la in layers] == [
        "BatchNorm(3, affine=False, track_running_stats=False)",
        "LayerNorm(4, elementwise_affine=False)", "LayerNorm(4, bias=False)",
        "GroupNorm(2, 4, affine=False)"]
    for i, layer in enumerate(layers):
        bp.save(bp.Sequential([layer]), tmp_path / f"{i}.npz")
        loaded = bp.load(tmp_path / f"{i}.npz")
        assert repr(loaded[0]) == repr(layer)
        assert set(loaded[0].params) == set(layer.params)


def test_batchnorm_without_running_stats_in_fit_predict_and_validation():
    """Its inference normalises by the batch too: fit's up-front batch-size advice held,
    and a last inference batch of one sample joins the one before it (it has no variance)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((65, 3)).astype(np.float32)
    y = np.arange(65) % 2
    model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.BatchNorm(4, track_running_stats=False),
                           bp.ReLU(), bp.Dense(4, 2, rng=1)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"fit: expected training batches of 2 or more samples "
                                         r".*use batch_size=31 or batch_size=33"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, batch_size=32,
                  progress=False)
    out = model.predict(x, batch_size=32)  # batches of 32 and 33
    np.testing.assert_allclose(out[32:], model.predict(x[32:], batch_size=64), rtol=1e-6)
    history = model.fit(x[:64], y[:64], loss=bp.SoftmaxCrossEntropy(), optimizer=opt,
                        batch_size=32, validation_data=(np.tile(x, (4, 1))[:257],
                                                        np.tile(y, 4)[:257]), progress=False)
    assert np.isfinite(history.history["val_loss"]).all()
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel to normalise "
                                         r"with batch statistics, got input of shape \(1, 4\)"):
        model.predict(x[:1])


def test_use_running_stats_set_later_is_checked_as_the_constructor_checks_it():
    bn = bp.BatchNorm(3, track_running_stats=False)
    with pytest.raises(ValueError, match=r"expected use_running_stats=False with "
                                         r"track_running_stats=False"):
        bn.use_running_stats = True
    assert bn.use_running_stats is False
    bn = bp.BatchNorm(3)
    bn.use_running_stats = True
    assert repr(bn) == "BatchNorm(3, use_running_stats=True)"
    with pytest.raises(TypeError, match="use_running_stats"):
        bn.use_running_stats = "no"


def test_from_torch_names_a_norm_built_without_weights_when_the_counts_differ():
    torch = pytest.importorskip("torch")
    ours = bp.Sequential([bp.Dense(2, 3), bp.BatchNorm(3, affine=False,
                                                       track_running_stats=False)])
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match=r"expected 1 PyTorch modules with weights \(for "
                                         r"Dense\(2, 3\)\), got 2: \['0', '1'\]; BatchNorm\(3, "
                                         r"affine=False, track_running_stats=False\) has no "
                                         r"weights and is not counted"):
        bp.from_torch(ours, theirs.state_dict())
    with pytest.raises(ValueError, match=r"\(for none\), got 1: \[''\]; LayerNorm\(3, "
                                         r"elementwise_affine=False\) has no weights"):
        bp.from_torch(bp.LayerNorm(3, elementwise_affine=False),
                      torch.nn.LayerNorm(3).state_dict())
