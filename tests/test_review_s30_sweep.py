"""Defects found by the session-30 automated bad-input sweep over the public API: each bad
value is refused with a ValueError/TypeError naming the callee and what it expected."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

# a string option given an array: NumPy's "truth value of an array is ambiguous" named
# neither the class nor the option
STRING_OPTIONS = [
    ("ReduceLROnPlateau", lambda v: bp.schedules.ReduceLROnPlateau(mode=v)),
    ("ReduceLROnPlateau", lambda v: bp.schedules.ReduceLROnPlateau(threshold_mode=v)),
    ("ReduceLROnPlateau", lambda v: bp.ReduceLROnPlateau(mode=v)),
    ("EarlyStopping", lambda v: bp.EarlyStopping(mode=v)),
    ("ModelCheckpoint", lambda v: bp.ModelCheckpoint("m.npz", mode=v)),
    ("CyclicLR", lambda v: bp.CyclicLR(0.01, 0.1, mode=v)),
    ("CyclicLR", lambda v: bp.CyclicLR(0.01, 0.1, scale_mode=v)),
    ("OneCycleLR", lambda v: bp.OneCycleLR(0.1, 20, anneal_strategy=v)),
]


@pytest.mark.parametrize("bad", [np.array([1, 2]), np.zeros(0), np.zeros((2, 2))],
                         ids=["ints", "empty", "2d"])
@pytest.mark.parametrize(("who", "make"), STRING_OPTIONS)
def test_string_option_given_an_array_is_refused_by_name(who, make, bad):
    with pytest.raises(ValueError, match=f"^{who}: expected"):
        make(bad)


@pytest.mark.parametrize("bad", ["abc", -3, 1.5, True, [1]])
def test_bidirectional_names_itself_for_a_bad_rng(bad):
    with pytest.raises((TypeError, ValueError), match="^Bidirectional: expected rng"):
        bp.Bidirectional(bp.LSTM(3, 2, rng=0), rng=bad)


def test_bidirectional_rng_seed_still_draws_the_backward_layer_as_before():
    layer = bp.Bidirectional(bp.GRU(3, 2, rng=0), rng=5)
    same = bp.GRU(3, 2, rng=5)
    for k, v in same.params.items():
        np.testing.assert_array_equal(layer.backward_layer.params[k], v)


# initializers: NumPy's "Cannot interpret '0' as a data type" and "Maximum allowed
# dimension exceeded" named nothing, and dtype=None gave float64 weights
INITS = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal",
         "lecun_uniform", "torch_uniform", "standard_normal", "uniform", "zeros", "ones"]


@pytest.mark.parametrize("name", INITS)
def test_initializer_dtype_none_is_float32_not_float64(name):
    w = getattr(bp.initializers, name)((3, 4), np.random.default_rng(0), None)
    assert w.dtype == np.float32


@pytest.mark.parametrize("bad", [0, "abc", np.array([1]), np.int64, [[1, 2], [3]], True])
@pytest.mark.parametrize("name", ["he_normal", "uniform", "zeros"])
def test_initializer_bad_dtype_is_refused_by_name(name, bad):
    with pytest.raises(TypeError, match="^initializers: expected dtype as a floating dtype"):
        getattr(bp.initializers, name)((3, 4), np.random.default_rng(0), bad)


@pytest.mark.parametrize("name", ["glorot_uniform", "standard_normal", "zeros", "ones"])
def test_initializer_shape_beyond_memory_is_a_named_memory_error(name):
    with pytest.raises(MemoryError, match="^initializers: expected arguments that fit"):
        getattr(bp.initializers, name)((10**30,), np.random.default_rng(0))


def test_initializers_keep_their_draws():
    rng = np.random.default_rng(3)
    w = bp.initializers.he_normal((3, 4), np.random.default_rng(3), np.float64)
    np.testing.assert_array_equal(w, rng.standard_normal(12).reshape(3, 4) * np.sqrt(2 / 3))


@pytest.mark.parametrize("shape", [10**30, (10**5, 10**5, 10**3)])
def test_summary_of_an_input_shape_beyond_memory_is_named(shape):
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    with pytest.raises(MemoryError, match="^Sequential.summary: expected arguments that fit"):
        model.summary(input_shape=shape)


# ragged nested lists: NumPy's "setting an array element with a sequence" named no callee
def test_train_test_split_ragged_test_size_is_refused_by_name():
    x, y = np.zeros((10, 2), np.float32), np.arange(10) % 2
    with pytest.raises(TypeError, match="^train_test_split: expected test_size to be a number"):
        bp.data.train_test_split(x, y, test_size=[[1, 2], [3]])
    with pytest.raises(TypeError, match=r"got an array of shape \(1,\) \(arrays"):
        bp.data.train_test_split(x, y, test_size=np.array([0.2]))


def test_stratified_split_ragged_labels_are_refused_by_name():
    with pytest.raises(TypeError, match="^stratified_split: expected labels as a numeric"):
        bp.datasets.stratified_split([[1, 2], [3]], 0.2, np.random.default_rng(0))
    train, test = bp.datasets.stratified_split(np.array(["a", "b"] * 5), 0.4,
                                               np.random.default_rng(0))
    assert len(train) == 6 and len(test) == 4  # labels of any kind still split


def test_predicted_labels_ragged_threshold_is_refused_by_name():
    with pytest.raises(TypeError, match="^predicted_labels: expected threshold"):
        bp.metrics.predicted_labels(np.zeros((4, 1), np.float32), threshold=[[1, 2], [3]])


def test_minibatches_of_a_count_beyond_memory_names_minibatches():
    with pytest.raises(MemoryError, match="^minibatches: expected arguments that fit"):
        bp.data.minibatches(10**30, 8)  # named batch_indices, which the user never called
    assert len(list(bp.data.minibatches(10, 3, rng=0))) == 4
