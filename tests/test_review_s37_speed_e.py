"""s37 speed review (e): per-step overhead of the batch-32 MLP step, same bits."""

import numpy as np
import pytest

import backprop as bp
from backprop.layers import _sums


def test_dense_bias_gradient_makes_no_ones_vector_per_step(monkeypatch):
    # the column sum of dy reuses a kept vector of ones (a new one was 0.8 us a call)
    rng = np.random.default_rng(0)
    layer = bp.Dense(6, 5, rng=0)
    x = rng.standard_normal((7, 6), dtype=np.float32)
    dy = rng.standard_normal((7, 5), dtype=np.float32)
    layer.forward(x, training=True)
    layer.backward(dy)  # the first call at this batch size may make it

    def refuse(*args, **kwargs):
        raise AssertionError("np.ones called on the hot path")

    monkeypatch.setattr(_sums.np, "ones", refuse)
    layer.forward(x, training=True)
    layer.backward(dy)
    monkeypatch.undo()
    np.testing.assert_array_equal(layer.grads["b"], np.ones(7, np.float32) @ dy)
    ones = _sums._ones(7, np.dtype(np.float32))
    assert not ones.flags.writeable and ones is _sums._ones(7, np.dtype(np.float32))


def _reference(logits, labels, eps=0.0):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n, c = logits.shape
    q = np.full((n, c), eps / c)
    q[np.arange(n), labels] += 1.0 - eps
    return -(q * logp).sum() / n, (np.exp(logp) - q) / n


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.uint64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_label_picks_any_label_dtype_and_layout(dtype, order, eps):
    # the labels' logits are taken and their gradients set through flat indices: any
    # integer dtype, F-ordered logits (their gradient is not C-ordered) and smoothing
    rng = np.random.default_rng(1)
    logits = np.asarray(rng.standard_normal((9, 4), dtype=np.float32), order=order)
    labels = rng.integers(0, 4, 9).astype(dtype)
    loss = bp.SoftmaxCrossEntropy(label_smoothing=eps)
    value = loss.forward(logits, labels)
    grad = loss.backward()
    want_value, want_grad = _reference(logits, labels, eps)
    assert value == pytest.approx(want_value, rel=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)
    c_loss = bp.SoftmaxCrossEntropy(label_smoothing=eps)  # the same bits in either layout
    assert c_loss.forward(np.ascontiguousarray(logits), labels.astype(np.int64)) == value
    np.testing.assert_array_equal(c_loss.backward(), grad)


def test_cross_entropy_ignored_labels_keep_their_rows_out():
    logits = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    loss = bp.SoftmaxCrossEntropy(ignore_index=-100)
    value = loss.forward(logits, np.array([2, -100, 0, -100]))
    grad = loss.backward()
    kept = bp.SoftmaxCrossEntropy()
    assert value == kept.forward(logits[[0, 2]], np.array([2, 0]))
    np.testing.assert_array_equal(grad[[1, 3]], 0.0)
    np.testing.assert_array_equal(grad[[0, 2]], kept.backward())


def test_pop_of_one_cached_array_takes_it_once():
    layer = bp.ReLU()
    x = np.array([[1.0, -2.0]], np.float32)
    y = layer.forward(x, training=True)
    assert layer._pop("_y") is y and layer._y is None
    with pytest.raises(RuntimeError, match="backward"):
        layer._pop("_y")
