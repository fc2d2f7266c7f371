"""Extreme inputs give finite, correct values and gradients — with warnings as errors."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_with_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    loss = bp.SoftmaxCrossEntropy()
    value = loss.forward(logits, np.array([0, 0]))
    # sample 0 is right with certainty (0); sample 1 puts log 2 - 2e4 on class 0... ≈ 2e4
    assert value == pytest.approx((0.0 + 2e4 + np.log(2)) / 2, rel=1e-6)
    grad = loss.backward()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0, 0, 0], [-0.5, 0.25, 0.25]], atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_at_plus_minus_1000(dtype):
    layer = bp.Sigmoid(dtype=dtype)
    y = layer.forward(np.array([[-1000.0, 1000.0, 0.0]], dtype=dtype), training=True)
    np.testing.assert_array_equal(y, [[0.0, 1.0, 0.5]])
    dx = layer.backward(np.ones((1, 3), dtype=dtype))
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 0.25]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_at_plus_minus_1e4(dtype):
    loss = bp.BinaryCrossEntropyWithLogits()
    z = np.array([[1e4], [-1e4], [1e4], [-1e4]], dtype=dtype)
    t = np.array([[1.0], [0.0], [0.0], [1.0]])
    value = loss.forward(z, t)
    assert value == pytest.approx((0 + 0 + 1e4 + 1e4) / 4, rel=1e-6)
    np.testing.assert_allclose(loss.backward(), [[0.0], [0.0], [0.25], [-0.25]], atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_layer_with_huge_logits(dtype):
    layer = bp.Softmax(dtype=dtype)
    y = layer.forward(np.array([[1e4, 0.0, -1e4]], dtype=dtype), training=True)
    np.testing.assert_allclose(y, [[1.0, 0.0, 0.0]])
    assert np.all(np.isfinite(layer.backward(np.ones((1, 3), dtype=dtype))))


@pytest.mark.parametrize("layer", [bp.ELU(), bp.GELU(), bp.GELU("tanh"), bp.Tanh(),
                                   bp.LeakyReLU(), bp.ReLU()], ids=repr)
def test_activations_stay_finite_at_extremes(layer):
    x = np.array([[-3e38, -1e20, -1e4, -100.0, 0.0, 100.0, 1e4, 1e20, 3e38]], dtype=np.float32)
    y = layer.forward(x, training=True)
    assert np.all(np.isfinite(y))
    assert np.all(np.isfinite(layer.backward(np.ones_like(x))))


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_softmax_cross_entropy_matches_torch_on_soft_targets_that_do_not_sum_to_one(smoothing):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    z, q = rng.standard_normal((5, 4)), rng.uniform(0, 1, (5, 4))
    q[0] = 0.5  # a row summing to 2
    loss = bp.SoftmaxCrossEntropy(smoothing)
    value = loss.forward(z, q)
    grad = loss.backward()
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(q), label_smoothing=smoothing)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: bp.LeakyReLU(-0.3, dtype=np.float64), lambda f, x: f.leaky_relu(x, -0.3)),
    (lambda: bp.LeakyReLU(2.5, dtype=np.float64), lambda f, x: f.leaky_relu(x, 2.5)),
    (lambda: bp.ELU(-1.2, dtype=np.float64), lambda f, x: f.elu(x, -1.2)),
    (lambda: bp.Dropout(1.0, rng=0, dtype=np.float64), lambda f, x: f.dropout(x, 1.0)),
    (lambda: bp.GELU("tanh", dtype=np.float64), lambda f, x: f.gelu(x, approximate="tanh")),
])
def test_settings_pytorch_allows_match_it(ours, theirs):
    # negative slopes and alphas, and dropping everything: accepted as torch accepts them
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((5, 7)) * 3
    dy = np.random.default_rng(1).standard_normal((5, 7))
    layer = ours()
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(torch.nn.functional, xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=0)


def test_label_smoothing_one_matches_pytorch():
    torch = pytest.importorskip("torch")
    z = np.random.default_rng(0).standard_normal((6, 4)) * 2
    labels = np.array([0, 1, 2, 3, 1, 0])
    loss = bp.SoftmaxCrossEntropy(label_smoothing=1.0)
    value, grad = loss.forward(z, labels), loss.backward()
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(labels), label_smoothing=1.0)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axis", [1, 2, -1, -2])
def test_softmax_over_any_axis_but_the_batch_matches_torch(axis):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)) * 4
    dy = np.random.default_rng(1).standard_normal(x.shape)
    layer = bp.Softmax(axis, dtype=np.float64)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.softmax(xt, axis)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    for bad in (-4, 4):  # the batch axis, or no axis of a 4-D input
        with pytest.raises(ValueError, match=rf"expected an axis after the batch axis of input "
                                             rf"of shape \(2, 3, 4, 5\), got axis {bad}"):
            bp.Softmax(bad, dtype=np.float64).forward(x)
    with pytest.raises(ValueError, match="after the batch axis 0 .* got axis 0"):
        bp.Softmax(0)  # known at construction


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [1.0, 0.5, -1.2])
def test_elu_gradient_keeps_its_relative_precision_far_below_zero(dtype, alpha):
    """f'(x) = alpha·exp(x) for x <= 0: formed as e + alpha it cancelled (float32 at -17
    was 44% off and 0 below), where the exponential itself is exact to rounding."""
    x = np.array([[-80.0, -45.0, -20.0, -17.0, -12.0, -1.0, -1e-6, 0.0, 1e-6, 3.0]], dtype)
    layer = bp.ELU(alpha, dtype=dtype)
    layer.forward(x, training=True)
    got = layer.backward(np.ones_like(x))
    want = np.where(x > 0, 1.0, alpha * np.exp(x.astype(np.float64)))
    tiny = np.finfo(dtype).tiny  # below it float32 flushes to (signed) zero
    np.testing.assert_allclose(got[np.abs(want) > tiny], want[np.abs(want) > tiny],
                               rtol=2 * np.finfo(dtype).eps)
    assert got.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_leaky_relu_passes_positive_inputs_exactly_and_scales_the_rest_by_the_slope(dtype):
    """Its slope factor was (x > 0)·(1 - s) + s, which rounds to 0.99999994 for s = -0.3 in
    float32 (1 - 1e-16 for s = -0.043 in float64): PyTorch passes x > 0 exactly."""
    slopes = [-0.3, -0.043, 0.01, 0.2, 3.7, -1.0, 0.0,
              *np.random.default_rng(0).uniform(-5, 5, 200)]
    x = np.array([[1.0, 1e6, 3.3, -1.0, -2.5, 0.0]], dtype=dtype)
    for s in slopes:
        layer = bp.LeakyReLU(float(s), dtype=dtype)
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(x))
        slope = dtype(s)
        np.testing.assert_array_equal(y[0, :3], x[0, :3], err_msg=f"slope {s}")
        np.testing.assert_array_equal(y[0, 3:], x[0, 3:] * slope, err_msg=f"slope {s}")
        np.testing.assert_array_equal(dx[0], [1, 1, 1, slope, slope, slope], err_msg=f"slope {s}")


def test_float32_elu_stays_within_a_few_ulp_of_float64_everywhere():
    """Its expm1 is tanh(v/2)·(exp(v) + 1) in float32 (NumPy's float32 expm1 is slow)."""
    x = -np.concatenate([np.logspace(-30, 2, 20000), [0.0, np.inf]]).astype(np.float32)
    layer = bp.ELU(1.7)
    y = layer.forward(x[None], training=True)[0]
    want = 1.7 * np.expm1(x.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(y - want) <= 4 * np.maximum(ulp, 1e-45))
    dx = layer.backward(np.ones((1, x.size), np.float32))[0]
    np.testing.assert_allclose(dx, 1.7 * np.exp(x.astype(np.float64)), rtol=2e-7, atol=2e-38)


def test_prelu_slope_gradient_ignores_an_infinite_dy_where_x_is_positive():
    """PyTorch's dalpha sums dy·x over x <= 0 only: an inf or NaN dy at x > 0 gave NaN."""
    layer = bp.PReLU(2, dtype=np.float64)
    layer.forward(np.array([[1.0, -2.0], [3.0, -1.0]]), training=True)
    layer.backward(np.array([[np.inf, 1.0], [np.nan, 1.0]]))
    np.testing.assert_array_equal(layer.grads["alpha"], [0.0, -3.0])


@pytest.mark.parametrize("slope", [0.01, 2.29655446429944, -0.3])  # each of _slopes' three
# ways in float32: (x > 0)(1 - s) + s, (not x > 0)(s - 1) + 1, np.where
def test_leaky_relu_sends_a_nan_inputs_gradient_through_the_slope_as_pytorch(slope):
    layer = bp.LeakyReLU(slope)
    layer.forward(np.array([[np.nan, 1.0]], np.float32), training=True)
    dx = layer.backward(np.array([[2.0, 2.0]], np.float32))
    np.testing.assert_allclose(dx, [[2 * slope, 2.0]], rtol=1e-7)
