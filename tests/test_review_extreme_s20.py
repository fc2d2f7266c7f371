"""Findings of a differential review against PyTorch at extreme values (twentieth
session); the suite runs with warnings as errors, so a leaked NumPy warning fails here."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_a_row_spanning_more_than_the_dtype_warns_nothing(dtype):
    big = np.finfo(dtype).max / 2 * 1.5
    x = np.array([[big, -big, 0.0], [1.0, 2.0, 3.0]], dtype)
    y = bp.Softmax(dtype=dtype).forward(x)  # x - max overflowed to -inf (a warning), exp gives 0
    np.testing.assert_array_equal(y[0], [1.0, 0.0, 0.0])
    e = np.exp(x[1] - 3.0)
    np.testing.assert_allclose(y[1], e / e.sum(), rtol=1e-6)


def test_poisson_nll_of_a_large_log_rate_is_inf_without_a_warning():
    loss = bp.PoissonNLLLoss()  # log_input: exp(89) is past float32
    assert loss.forward(np.array([89.0, 1.0], np.float32), np.ones(2, np.float32)) == np.inf
    grad = loss.backward()
    assert grad[0] == np.inf and np.isfinite(grad[1])
