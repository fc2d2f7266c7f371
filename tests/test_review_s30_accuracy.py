"""Float32 accuracy against the exact (float64) answer, compared with PyTorch's float32.

The bias gradients of Dense, the recurrent layers and MultiheadAttention are column sums
over every row of a batch (N, or N·T for sequences). ``np.sum(dy, axis=0)`` adds those
rows one after another, so its float32 error grows with the row count: over 2^18 rows of
positive deltas it was 1e-5 relative (PyTorch's 1e-7). They now use the blocked sums of
the norms (``_sums.column_sum``).
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _relative(got: np.ndarray, exact: np.ndarray) -> float:
    exact = np.asarray(exact, np.float64)
    return float(np.abs(got.astype(np.float64) - exact).max() / np.abs(exact).max())


def test_dense_bias_gradient_over_many_rows_is_accurate_in_float32():
    rng = np.random.default_rng(0)
    n = 1 << 18
    x = rng.standard_normal((n, 2)).astype(np.float32)
    dy = (rng.random((n, 4)) + 0.5).astype(np.float32)  # one sign: no luck from cancelling
    layer = bp.Dense(2, 4, rng=0)
    layer.forward(x, training=True)
    layer.backward(dy)
    assert layer.grads["b"].dtype == np.float32
    # np.sum(axis=0): 1.1e-5; blocked: 1.4e-7 (PyTorch's float32 sum: ~1e-7)
    assert _relative(layer.grads["b"], dy.astype(np.float64).sum(0)) < 1e-6


@pytest.mark.parametrize("make", [lambda: bp.RNN(2, 2, rng=0), lambda: bp.LSTM(2, 2, rng=0),
                                  lambda: bp.GRU(2, 2, rng=0)], ids=["RNN", "LSTM", "GRU"])
def test_recurrent_bias_gradients_over_many_steps_are_accurate_in_float32(make):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1 << 16, 8, 2)).astype(np.float32)  # T·N = 2^19 rows
    layer = make()
    exact = layer.astype(np.float64)
    y = layer.forward(x, training=True)
    dy = (rng.random(y.shape) + 0.5).astype(np.float32)
    layer.backward(dy)
    exact.forward(x.astype(np.float64), training=True)
    exact.backward(dy.astype(np.float64))
    for k in ("b", "b_h"):  # np.sum(axis=0): 7e-6 to 2e-5; blocked: 1e-7 to 6e-7
        assert _relative(layer.grads[k], exact.grads[k]) < 2e-6, k


def test_attention_output_bias_gradient_over_many_rows_is_accurate_in_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1 << 16, 2, 2)).astype(np.float32)  # N·T = 2^17 rows
    layer = bp.MultiheadAttention(2, 1, rng=0)
    exact = layer.astype(np.float64)
    dy = (rng.random(x.shape) + 0.5).astype(np.float32)
    layer.forward(x, training=True)
    layer.backward(dy)
    exact.forward(x.astype(np.float64), training=True)
    exact.backward(dy.astype(np.float64))
    # np.sum(axis=0): 3.3e-6; blocked: 3.7e-7
    assert _relative(layer.grads["b_out"], exact.grads["b_out"]) < 1e-6


def test_dense_bias_gradient_matches_torch_float32_accuracy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    dy = (rng.random((1 << 18, 3)) + 0.5).astype(np.float32)
    layer = bp.Dense(1, 3, rng=0)
    layer.forward(np.ones((dy.shape[0], 1), np.float32), training=True)
    layer.backward(dy)
    exact = dy.astype(np.float64).sum(0)
    ours = _relative(layer.grads["b"], exact)
    theirs = _relative(torch.from_numpy(dy).sum(0).numpy(), exact)
    assert ours < max(10 * theirs, 1e-6), (ours, theirs)
