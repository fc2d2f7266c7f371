"""Session 37 review (masks): a nested Sequential ending a padding mask in Permute,
check_gradients(stack=True) of a model that starts with Masking, masks of fractions or
NaN, and Keras' GlobalMaxPooling1D and TimeDistributed names."""

import numpy as np
import pytest

import backprop as bp


def test_a_nested_sequential_ending_a_mask_in_permute_must_be_the_last_layer():
    """A nested Sequential whose last layer is Permute((2, 1)) ended the padding mask, and
    the outer model's next layers took the padded steps as real (a padded row's output
    moved by 0.17 when padding was appended); it is refused as a top-level Permute is."""
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)

    def model(inner):
        return bp.Sequential([bp.Masking(), inner, bp.Conv1D(3, 3, 1, rng=1),
                              bp.Permute((2, 1)),
                              bp.LSTM(3, 2, return_sequences=False, rng=2)])

    for inner in (bp.Sequential([bp.Dense(3, 3, rng=0), bp.Permute((2, 1))]),
                  bp.Sequential([bp.Sequential([bp.Permute((2, 1))])])):  # deeper too
        with pytest.raises(ValueError, match=r"Permute\(\(2, 1\)\) \(the last layer of layer "
                                             r"1, a Sequential\): expected to be the model's "
                                             r"last layer.*got layer 2 Conv1D"):
            model(inner).forward(x)
    # as the outer model's last layer it may end the mask (per-position logits)
    last = bp.Sequential([bp.Masking(), bp.Sequential([bp.Dense(3, 5, rng=0),
                                                       bp.Permute((2, 1))])])
    padded = np.concatenate([x, np.zeros((2, 3, 3), np.float32)], axis=1)
    assert last.forward(padded).shape == (2, 5, 7) and last.output_mask is None
    # a nested model whose mask ended used (LSTM) before its last Permute is not refused
    used = bp.Sequential([bp.Masking(), bp.Sequential([
        bp.LSTM(3, 4, return_sequences=False, rng=0), bp.Reshape((4, 1)),
        bp.Permute((2, 1))]), bp.Conv1D(1, 2, 1, rng=1)])
    assert used.forward(padded).shape == (2, 2, 4)


def test_check_gradients_stack_passes_a_correct_model_that_starts_with_masking():
    """stack=True put Tanh below the model: the finite-difference steps at padded x then
    made real steps of them (Masking read tanh(x)), so every correct Masking model failed,
    while stack=False passed; a leading Masking now reads x as given."""
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    x[0, 3:] = 0.0
    model = bp.Sequential([bp.Masking(dtype=np.float64),
                           bp.LSTM(3, 4, dtype=np.float64, rng=0),
                           bp.Dense(4, 2, dtype=np.float64, rng=1)])
    for stack in (False, True):
        result = bp.check_gradients(model, x, stack=stack)
        assert result.passed, result
        assert any("held at a zero gradient by rule" in n for n in result.notes)
    assert any("layer -> Tanh" in n and "Tanh -> layer" not in n for n in result.notes)

    class Leaky(bp.Masking):  # a gradient at padded steps, where the rule says 0
        def backward(self, dy):
            dx = super().backward(dy)
            return dx + 0.5 * (dx == 0)

    leaky = bp.Sequential([Leaky(dtype=np.float64), bp.LSTM(3, 4, dtype=np.float64, rng=0)])
    assert not bp.check_gradients(leaky, x, stack=True).passed
    # a model without Masking keeps the full stack
    plain = bp.check_gradients(bp.Dense(3, 2, dtype=np.float64, rng=0), x, stack=True)
    assert plain.passed and any("Tanh -> layer -> Tanh" in n for n in plain.notes)


@pytest.mark.parametrize("bad,got", [(0.5, "such as 0.5"), (np.nan, "such as nan")])
def test_a_float_mask_of_fractions_or_nan_is_a_value_error(bad, got):
    """A float mask of 0.5s or NaN raised TypeError ("got dtype float64"), though its dtype
    is fine and its values are not; 0/1 masks of other values were already ValueErrors."""
    x = np.ones((2, 4, 3), np.float32)
    mask = np.ones((2, 4))
    mask[0, 2] = bad
    callers = [lambda: bp.Sequential([bp.Dense(3, 2, rng=0)]).forward(x, mask=mask),
               lambda: bp.LSTM(3, 2, rng=0)(x, mask=mask),
               lambda: bp.GlobalAvgPool(channels_last=True)(x, mask=mask)]
    for call in callers:
        with pytest.raises(ValueError, match=rf"expected mask as booleans \(or 0s and 1s\), "
                                             rf"got 1 float64 values other than 0 and 1, {got}"):
            call()
    mask[0, 2] = 0.0  # whole floats still pass
    assert bp.LSTM(3, 2, rng=0)(x, mask=mask).shape == (2, 4, 2)


def test_keras_global_max_pooling_and_time_distributed_say_what_to_use():
    with pytest.raises(AttributeError, match=r"no global max pool: AdaptiveMaxPool1D\(1\) "
                                             r"then Flatten\(\).*Permute\(\(2, 1\)\) first"):
        bp.GlobalMaxPooling1D  # noqa: B018
    with pytest.raises(AttributeError, match=r"AdaptiveMaxPool2D\(1\) then Flatten"):
        bp.layers.GlobalMaxPooling2D  # noqa: B018
    with pytest.raises(AttributeError, match=r"TimeDistributed\(Dense\(units\)\) is "
                                             r"Dense\(F, units\)"):
        bp.TimeDistributed  # noqa: B018
    # what the hints say holds: the max over the steps, and Dense on each step alone
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    pool = bp.Sequential([bp.Permute((2, 1)), bp.AdaptiveMaxPool1D(1), bp.Flatten()])
    np.testing.assert_array_equal(pool.forward(x), x.max(axis=1))
    dense = bp.Dense(5, 4, rng=0)
    np.testing.assert_allclose(dense(x)[1, 2], dense(x[1, 2][None])[0], rtol=1e-6)
