"""Conv3D, MaxPool3D and AvgPool3D: the 2-D layers' code on three spatial axes, against
PyTorch's Conv3d, MaxPool3d and AvgPool3d (outputs and every gradient)."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

CONVS = [  # (C_in, C_out, kernel, stride, padding, dilation, groups, padding_mode)
    (2, 4, 3, 1, 1, 1, 1, "zeros"),            # stride 1: dx by per-offset products
    (2, 4, (3, 2, 1), (2, 1, 1), (1, 0, 0), 1, 1, "zeros"),  # strided: phase planes
    (4, 4, 3, 1, 1, 1, 4, "zeros"),            # depthwise: the direct route
    (2, 6, 2, 2, 0, 1, 2, "zeros"),            # groups
    (2, 3, 3, 1, 2, 2, 1, "zeros"),            # dilation
    (2, 3, 3, 1, 1, 1, 1, "reflect"),
    (2, 3, (2, 3, 3), 1, 1, 1, 1, "circular"),
    (1, 8, 3, 1, "same", 1, 1, "zeros"),       # small: columns by sample
    (3, 2, 1, 1, 0, 1, 1, "zeros"),            # 1x1x1: the pointwise route
    (16, 24, 3, 1, 1, 1, 1, "zeros"),          # large: one matrix of columns
]


@pytest.mark.parametrize("config", CONVS, ids=[str(c) for c in CONVS])
def test_conv3d_matches_torch(config):
    torch = pytest.importorskip("torch")
    c_in, c_out, k, s, p, d, g, mode = config
    theirs = torch.nn.Conv3d(c_in, c_out, k, s, p, d, g, True, mode).double()
    ours = bp.Conv3D(c_in, c_out, k, s, p, d, g, True, mode, dtype=np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, c_in, 5, 6, 4))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.forward(x, training=True), ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.grads["W"], theirs.weight.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(ours.grads["b"], theirs.bias.grad.numpy(), atol=1e-11)


@pytest.mark.parametrize(("args", "kwargs"), [
    ((2,), {}), ((3, 2, 1), {}), (((2, 3, 2), (1, 2, 1), (1, 1, 0)), {}),
    ((3, 2, 1), {"ceil_mode": True}), ((3, 1, 1, 2), {}),
])
def test_max_pool3d_matches_torch_with_ties(args, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, (2, 3, 7, 6, 5)).astype(np.float64)  # ties: the first maximum
    theirs, ours = torch.nn.MaxPool3d(*args, **kwargs), bp.MaxPool3D(*args, **kwargs,
                                                                      dtype=np.float64)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    dy = rng.integers(-3, 4, tuple(ty.shape)).astype(np.float64)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(ours.forward(x, training=True), ty.detach().numpy())
    np.testing.assert_array_equal(ours.backward(dy), tx.grad.numpy())


@pytest.mark.parametrize(("args", "kwargs"), [
    ((2,), {}), ((3, 2, 1), {}), ((3, 2, 1), {"count_include_pad": False}),
    ((3, 2, 1), {"ceil_mode": True}),
])
def test_avg_pool3d_matches_torch(args, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6, 5))
    theirs, ours = torch.nn.AvgPool3d(*args, **kwargs), bp.AvgPool3D(*args, **kwargs,
                                                                      dtype=np.float64)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.forward(x, training=True), ty.detach().numpy(), atol=1e-13)
    np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), atol=1e-13)


def test_volume_layers_check_rank_and_channels_and_save(tmp_path):
    with pytest.raises(ValueError, match=r"Conv3D\(2, 3, 3\): expected input of shape "
                                         r"\(N, 2, D, H, W\), got \(1, 2, 4, 4\)"):
        bp.Conv3D(2, 3, 3).forward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"channels last\? .*x\.transpose\(0, 4, 1, 2, 3\)"):
        bp.Conv3D(2, 3, 3).forward(np.zeros((1, 5, 5, 5, 2), np.float32))
    model = bp.Sequential([bp.Conv3D(1, 2, 3, padding=1, rng=0), bp.ReLU(),
                           bp.MaxPool3D(2), bp.AvgPool3D(1), bp.Flatten(), bp.Dense(16, 2, rng=1)])
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4, 4)).astype(np.float32)
    bp.save(model, tmp_path / "v.npz")
    loaded = bp.load(tmp_path / "v.npz")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    history = model.fit(x, np.arange(3) % 2, loss=bp.SoftmaxCrossEntropy(),
                        optimizer=bp.Adam(model.parameters(), lr=0.05), epochs=5, progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
