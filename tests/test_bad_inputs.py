"""Bad input gets a clear error that names who, what was expected and what was received."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_dense_wrong_width_names_expected_and_received():
    with pytest.raises(ValueError, match=r"Dense\(64, 128\): expected input of shape "
                                         r"\(N, 64\), got \(32, 63\)"):
        bp.Dense(64, 128).forward(np.zeros((32, 63), np.float32))


def test_dense_wrong_ndim():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4\), got \(4,\)"):
        bp.Dense(4, 2).forward(np.zeros(4, np.float32))


def test_dense_wrong_dtype():
    with pytest.raises(TypeError, match=r"Dense\(4, 2\): expected input of dtype float32, "
                                        r"got float64"):
        bp.Dense(4, 2).forward(np.zeros((3, 4)))


def test_layer_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected input as an array, got list"):
        bp.Dense(2, 2).forward([[1.0, 2.0]])


def test_dense_rejects_bad_sizes_and_initializers():
    with pytest.raises(ValueError, match="expected in_features >= 1, got 0"):
        bp.Dense(0, 3)
    with pytest.raises(TypeError, match="expected out_features to be a positive int"):
        bp.Dense(3, 2.5)
    with pytest.raises(ValueError, match="expected an initializer name"):
        bp.Dense(3, 2, init="nope")
    with pytest.raises(TypeError, match="expected a floating dtype"):
        bp.Dense(3, 2, dtype=np.int32)


def test_labels_out_of_range():
    loss = bp.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"expected class indices in \[0, 3\), got values "
                                         r"from 0 to 3"):
        loss.forward(np.zeros((2, 3), np.float32), np.array([0, 3]))


def test_negative_labels():
    with pytest.raises(ValueError, match="got values from -1 to 1"):
        bp.SoftmaxCrossEntropy().forward(np.zeros((2, 3), np.float32), np.array([-1, 1]))


def test_label_count_differs_from_batch():
    with pytest.raises(ValueError, match=r"expected 4 class indices of shape \(4,\) for "
                                         r"logits \(4, 3\), got \(3,\)"):
        bp.SoftmaxCrossEntropy().forward(np.zeros((4, 3), np.float32), np.array([0, 1, 2]))


def test_float_labels_are_a_type_error_with_a_hint():
    with pytest.raises(TypeError, match=r"expected integer class indices.*astype\(int\)"):
        bp.SoftmaxCrossEntropy().forward(np.zeros((2, 3), np.float32), np.array([0.0, 1.0]))


def test_regression_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"expected target of shape \(4, 2\), got \(4, 3\)"):
        bp.MeanSquaredError().forward(np.zeros((4, 2), np.float32), np.zeros((4, 3)))


def test_bce_targets_outside_unit_interval():
    with pytest.raises(ValueError, match=r"expected targets in \[0, 1\]"):
        bp.BinaryCrossEntropyWithLogits().forward(np.zeros((2, 1), np.float32),
                                                  np.array([[0.0], [2.0]]))


def test_loss_with_fixed_dtype_rejects_other_outputs():
    with pytest.raises(TypeError, match="expected output of dtype float64, got float32"):
        bp.MeanSquaredError(dtype=np.float64).forward(np.zeros((2, 1), np.float32),
                                                       np.zeros((2, 1)))


def test_bad_hyperparameters_name_the_value():
    with pytest.raises(ValueError, match=r"label_smoothing in \[0.0, 1.0\), got 1.0"):
        bp.SoftmaxCrossEntropy(label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"delta in \(0.0, inf\], got -1"):
        bp.Huber(-1)
    with pytest.raises(ValueError, match="negative_slope"):
        bp.LeakyReLU(-0.1)


def test_sequential_rejects_non_layers_and_mixed_dtypes():
    with pytest.raises(TypeError, match="expected layer 1 to be a backprop Layer, got function"):
        bp.Sequential([bp.Dense(2, 2), lambda x: x])
    with pytest.raises(TypeError, match="expected every layer in float32, got layer 1"):
        bp.Sequential([bp.Dense(2, 2), bp.Dense(2, 2, dtype=np.float64)])


def test_sequential_wrong_width_names_the_layer():
    model = bp.Sequential([bp.Dense(4, 3), bp.ReLU(), bp.Dense(3, 2)])
    with pytest.raises(ValueError, match=r"Dense\(4, 3\): expected input of shape \(N, 4\)"):
        model.forward(np.zeros((2, 5)))
