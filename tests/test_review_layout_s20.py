"""Findings of a review of array layouts and representations (twentieth session): results
that must not depend on how the same values are held."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import backprop as bp


def _matrix(a):
    with warnings.catch_warnings():  # NumPy's PendingDeprecationWarning for np.matrix
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


@pytest.mark.parametrize("loss, target", [
    (bp.NLLLoss(), np.array([0, 1, 2])),               # take_along_axis failed
    (bp.SoftmaxCrossEntropy(), np.array([0, 1, 2])),   # matrix.max(keepdims=) failed
    (bp.Huber(), np.zeros((3, 4))),                    # * multiplied as matrices
    (bp.KLDivLoss(), np.full((3, 4), 0.25)),
    (bp.MeanSquaredError(), np.zeros((3, 4))),         # returned an np.matrix gradient
])
def test_losses_read_an_np_matrix_output_as_its_values(loss, target):
    out = np.log(np.random.default_rng(0).uniform(0.1, 1.0, (3, 4)))
    want, want_grad = loss.forward(out, target), loss.backward()
    got = loss.forward(_matrix(out), target)
    grad = loss.backward()
    assert got == want and type(grad) is np.ndarray
    np.testing.assert_array_equal(grad, want_grad)


@pytest.mark.parametrize("options", [{}, {"scale_grad_by_freq": True}, {"max_norm": 1.0},
                                     {"padding_idx": 2}])
def test_embedding_reads_np_matrix_indices_as_their_values(options):
    """scale_grad_by_freq's bincount failed on matrix rows ("object too deep")."""
    idx = np.array([[1, 2], [2, 3]])
    layers = [bp.Embedding(7, 4, rng=0, **options) for _ in range(2)]
    for layer, x in zip(layers, (idx, _matrix(idx)), strict=True):
        y = layer.forward(x, training=True)
        layer.backward(np.arange(y.size, dtype=np.float32).reshape(y.shape))
        assert type(y) is np.ndarray
    np.testing.assert_array_equal(layers[0].grads["W"], layers[1].grads["W"])
    np.testing.assert_array_equal(layers[0].params["W"], layers[1].params["W"])
