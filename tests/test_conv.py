"""Conv1D and Conv2D: outputs and gradients against PyTorch, shapes, errors, config."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

CONV2D_CASES = [  # (C_in, C_out, kernel, stride, padding, (H, W))
    (3, 4, 3, 1, 1, (7, 9)),
    (2, 5, (2, 3), (2, 1), (1, 0), (8, 7)),
    (1, 2, 5, 3, 2, (11, 6)),
    (4, 3, 1, 1, 0, (5, 5)),
    (2, 3, (3, 1), (1, 2), (0, 2), (6, 5)),
    (2, 2, 4, 4, 0, (8, 8)),
]


def _rand(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("c_in,c_out,k,s,p,hw", CONV2D_CASES)
def test_conv2d_matches_torch_forward_and_backward(c_in, c_out, k, s, p, hw, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    conv = bp.Conv2D(c_in, c_out, k, s, p, dtype=dtype, rng=1)
    conv.params["b"][...] = rng.standard_normal(c_out)
    x = _rand(rng, 3, c_in, *hw, dtype=dtype)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape, dtype=dtype)
    dx = conv.backward(dy)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), rtol=tol, atol=tol * 10)
    assert y.dtype == dx.dtype == dtype and y.flags.c_contiguous and dx.flags.c_contiguous


@pytest.mark.parametrize("k,s,p,length", [(3, 1, 0, 10), (3, 2, 1, 10), (5, 3, 2, 9), (1, 1, 0, 4)])
def test_conv1d_matches_torch_forward_and_backward(k, s, p, length):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    conv = bp.Conv1D(3, 4, k, s, p, dtype=np.float64, rng=1)
    conv.params["b"][...] = rng.standard_normal(4)
    x = _rand(rng, 2, 3, length)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    yt = torch.nn.functional.conv1d(xt, wt, bt, stride=s, padding=p)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), atol=1e-12)


def test_conv2d_weight_layout_is_pytorch_and_conv1d_is_its_one_row_case():
    conv2 = bp.Conv2D(3, 4, (1, 3), padding=(0, 1), dtype=np.float64, rng=0)
    conv1 = bp.Conv1D(3, 4, 3, padding=1, dtype=np.float64, rng=0)
    assert conv2.params["W"].shape == (4, 3, 1, 3) and conv1.params["W"].shape == (4, 3, 3)
    conv1.params["W"][...] = conv2.params["W"][:, :, 0]
    x = np.random.default_rng(0).standard_normal((2, 3, 6))
    np.testing.assert_allclose(conv1.forward(x), conv2.forward(x[:, :, None])[:, :, 0])


def test_conv_backward_params_fills_the_same_grads_and_skips_dx():
    rng = np.random.default_rng(0)
    a = bp.Conv2D(2, 3, 3, stride=2, padding=1, rng=0)
    b = bp.Conv2D(2, 3, 3, stride=2, padding=1, rng=0)
    x = _rand(rng, 4, 2, 7, 7, dtype=np.float32)
    dy = _rand(rng, 4, 3, 4, 4, dtype=np.float32)
    a.forward(x, training=True)
    a.backward(dy)
    b.forward(x, training=True)
    b.backward_params(dy)
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])
    assert not b.has_cache


def test_conv_as_first_layer_gives_the_same_grads_without_input_grad():
    def cnn():
        dt = np.float64
        return bp.Sequential([bp.Conv2D(1, 2, 3, dtype=dt, rng=0), bp.Tanh(dtype=dt),
                              bp.Flatten(dtype=dt), bp.Dense(18, 3, dtype=dt, rng=1)])

    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5))
    lean, full = cnn(), cnn()
    lean.forward(x, training=True)
    assert lean.backward(np.ones((2, 3)), input_grad=False) is None
    full.forward(x, training=True)
    full.backward(np.ones((2, 3)))
    np.testing.assert_allclose(lean.flat_grads, full.flat_grads)


def test_small_cnn_gradients_match_central_differences():
    dt = np.float64
    model = bp.Sequential([
        bp.Conv2D(1, 3, 3, padding=1, dtype=dt, rng=0), bp.Tanh(dtype=dt),
        bp.MaxPool2D(2, dtype=dt), bp.Conv2D(3, 2, (2, 1), stride=(1, 2), dtype=dt, rng=1),
        bp.Flatten(dtype=dt), bp.Dense(2 * 2 * 1, 3, dtype=dt, rng=2),
    ])
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 4))
    result = bp.check_gradients(model, x)
    assert result.passed, str(result)


def test_conv2d_too_small_input_names_expected_and_received():
    conv = bp.Conv2D(1, 2, 5, padding=1)
    with pytest.raises(ValueError, match=r"Conv2D\(1, 2, 5, padding=1\): expected input spatial "
                       r"size of at least \(3, 3\).*got input of shape \(4, 1, 2, 8\)"):
        conv.forward(np.zeros((4, 1, 2, 8), np.float32))


def test_conv1d_too_short_input_names_expected_and_received():
    with pytest.raises(ValueError, match=r"expected input spatial size of at least \(4,\).*"
                                         r"\(2, 3, 3\)"):
        bp.Conv1D(3, 1, 4).forward(np.zeros((2, 3, 3), np.float32))


def test_conv_rejects_wrong_channels_and_rank():
    with pytest.raises(ValueError,
                       match=r"expected input of shape \(N, 3, H, W\), got \(2, 4, 5, 5\)"):
        bp.Conv2D(3, 1, 3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, L\), got \(2, 3\)"):
        bp.Conv1D(3, 1, 3).forward(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("kwargs,err", [
    (dict(kernel_size=0), ValueError), (dict(kernel_size=(3, 3, 3)), ValueError),
    (dict(kernel_size=2.5), TypeError), (dict(kernel_size=3, stride=0), ValueError),
    (dict(kernel_size=3, padding=-1), ValueError), (dict(kernel_size=3, padding=True), TypeError),
])
def test_conv2d_rejects_bad_hyperparameters(kwargs, err):
    with pytest.raises(err, match="Conv2D: expected"):
        bp.Conv2D(1, 1, **kwargs)


def test_conv_config_rebuilds_the_layer_and_repr_is_compact():
    conv = bp.Conv2D(2, 3, (3, 3), stride=(2, 1), padding=1, bias=False)
    assert repr(conv) == "Conv2D(2, 3, 3, stride=(2, 1), padding=1, bias=False)"
    config = conv.get_config()
    assert config == {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": (2, 1),
                      "padding": 1, "bias": False, "dtype": "float32"}
    assert repr(bp.Conv2D(**config)) == repr(conv)
    assert repr(bp.Conv1D(1, 8, 5, padding=2)) == "Conv1D(1, 8, 5, padding=2)"


def test_conv_default_init_is_he_uniform_and_bias_zero():
    conv = bp.Conv2D(16, 32, 3, rng=0)
    bound = np.sqrt(6 / (16 * 9))
    w = conv.params["W"]
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound and abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
    np.testing.assert_array_equal(conv.params["b"], 0)
    np.testing.assert_array_equal(bp.Conv2D(16, 32, 3, rng=0).params["W"], w)


def test_conv_gemm_shapes_are_the_three_products():
    conv = bp.Conv2D(32, 64, 3, padding=1)
    k, nl = 32 * 9, 64 * 14 * 14
    assert conv.gemm_shapes((64, 32, 14, 14)) == [(64, k, nl), (64, nl, k), (k, 64, nl)]
    assert conv.gemm_shapes((64, 32, 14, 14), input_grad=False) == [(64, k, nl), (64, nl, k)]


def test_conv_float32_keeps_float32_everywhere():
    conv = bp.Conv2D(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    y = conv.forward(x, training=True)
    dx = conv.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == conv.grads["W"].dtype == conv.grads["b"].dtype == np.float32
