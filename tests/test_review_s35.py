"""Findings of the thirty-fifth session's reviews: composing models with PyTorch and Keras
habits (a custom layer's parameter dtype, from_torch on a layer of one's own, a layer put
into ``model.layers`` by hand, an empty model's dtype, a ``*args`` container's repr, a
summary whose guessed input fails) and the training loop's missing name hints."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import backprop as bp


class Scale(bp.Layer):
    """y = x ⊙ g: a custom layer registering its weight from a float64 or integer array."""

    def __init__(self, g: np.ndarray, *, dtype: object = None) -> None:
        super().__init__(dtype=dtype)
        self.add_param("g", g)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        if training:
            self._x = x
        return x * self.params["g"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        np.sum(dy * self._x, axis=0, out=self.grads["g"])
        return dy * self.params["g"]


class Chain(bp.Container):
    def __init__(self, *blocks: bp.Layer, dtype: object = None) -> None:
        super().__init__(dtype=dtype)
        self.blocks = blocks

    def children(self) -> list[tuple[str, bp.Layer]]:
        return [(str(i), b) for i, b in enumerate(self.blocks)]

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        for b in self.blocks:
            x = b.forward(x, training=training)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for b in reversed(self.blocks):
            dy = b.backward(dy)
        return dy


def test_add_param_stores_a_float64_array_in_the_layers_dtype():
    layer = Scale(np.ones(3))  # np.ones is float64; the layer is float32
    assert layer.params["g"].dtype == np.float32 and layer.grads["g"].dtype == np.float32
    x = np.full((2, 3), 0.5, np.float32)
    assert layer(x).dtype == np.float32  # alone, not only inside a model
    layer.forward(x, training=True)
    layer.backward(np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(layer.grads["g"], [1.0, 1.0, 1.0])
    assert Scale(np.ones(3, np.float32), dtype=np.float64).params["g"].dtype == np.float64
    same = np.ones(3, np.float32)
    assert Scale(same).params["g"] is same  # the layer's dtype already: the array itself


@pytest.mark.parametrize("value", [np.ones(3, np.int64), np.ones(3, bool)])
def test_add_param_refuses_integer_and_boolean_weights(value):
    # an integer gradient buffer truncated a gradient of 0.6 to 0
    with pytest.raises(TypeError, match=r"Scale\.add_param: expected 'g' as an array of "
                                        r"floats .*got dtype (int64|bool)"):
        Scale(value)


def test_from_torch_names_a_layer_of_ones_own():
    model = bp.Sequential([bp.Dense(4, 8), Scale(np.ones(8)), bp.Dense(8, 2)])
    state = {"0.weight": np.zeros((8, 4)), "0.bias": np.zeros(8),
             "1.g": np.ones(8), "1.b": np.zeros(8),
             "2.weight": np.zeros((2, 8)), "2.bias": np.zeros(2)}
    with pytest.raises(ValueError, match=r"from_torch: converts backprop's built-in layers "
                                         r"only, and 1 Scale\(.*\) is none of them .*"
                                         r"\['b', 'g'\].*load_state_dict\(state, strict=False\)"):
        bp.from_torch(model, state)


def test_fit_names_a_layer_put_into_model_layers_by_hand():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype(np.float32), np.zeros(16, int)
    model = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 2, rng=1)])
    model.layers[2] = bp.Dense(8, 3, rng=2)  # a plain list: the new head is in no buffer
    with pytest.raises(ValueError, match=r"fit: .*got 2 Dense\(8, 3\) put into model\.layers "
                                         r"directly .*model\.add\(layer\) appends"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)
    model.layers[1] = bp.Tanh()  # no weights: nothing to hold, fit trains (a notebook's demo)
    model = bp.Sequential(model.layers)
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1),
              progress=False)


def test_an_empty_model_takes_the_dtype_of_its_first_layer_with_parameters():
    model = bp.Sequential()  # Keras' pattern: build empty, then add
    model.add(bp.ReLU())
    model.add(bp.Dense(4, 8, dtype=np.float64))
    model.add(bp.Dense(8, 2, dtype=np.float64))
    assert model.dtype == np.float64 and model.flat_params.dtype == np.float64
    assert model(np.ones((2, 4))).dtype == np.float64
    assert pickle.loads(pickle.dumps(model)).dtype == np.float64
    with pytest.raises(TypeError, match=r"Sequential\.add: expected a layer in float64, got "
                                        r"Dense\(2, 2\) in float32 \(Sequential\(dtype=\.\.\.\)"):
        model.add(bp.Dense(2, 2))  # the model has parameters now: its dtype is set
    given = bp.Sequential(dtype=np.float32)  # a dtype given is kept
    with pytest.raises(TypeError, match="expected a layer in float32"):
        given.add(bp.Dense(4, 8, dtype=np.float64))


def test_a_star_args_containers_repr_is_the_call_that_builds_it():
    assert repr(Chain(bp.Dense(4, 4), bp.ReLU())) == "Chain(Dense(4, 4), ReLU())"


def test_summary_says_why_its_guessed_input_failed():
    model = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dense(7, 2)])
    table = model.summary()
    assert "(N, 8)" not in str(table)
    assert str(table).endswith("Output shapes: an input (N, 4), the in_features of "
                               "Dense(4, 8), failed: Dense(7, 2): expected input of shape "
                               "(N, 7), got (2, 8)")
    assert "Dense(7, 2): expected input" in table._repr_html_()
    assert "Output shapes" not in str(bp.Sequential([bp.Dense(4, 8)]).summary())


@pytest.mark.parametrize("name, ours", [("MultiplicativeLR", "LearningRateScheduler"),
                                        ("CosineDecay", "CosineAnnealingLR"),
                                        ("ExponentialDecay", "ExponentialLR"),
                                        ("ChainedScheduler", "SequentialLR")])
def test_schedule_names_of_pytorch_and_keras_name_ours(name, ours):
    with pytest.raises(AttributeError, match=ours):
        getattr(bp, name)


def test_keras_keywords_of_fit_evaluate_predict_name_ours():
    model = bp.Sequential([bp.Dense(2, 2)])
    x, y = np.ones((4, 2), np.float32), np.zeros(4, int)
    with pytest.raises(TypeError, match="weighted_metrics'; fit's metrics are unweighted"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), weighted_metrics=["accuracy"],
                  optimizer=bp.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="'steps'; evaluate scores every sample"):
        model.evaluate(x, y, loss=bp.SoftmaxCrossEntropy(), steps=2)
    with pytest.raises(TypeError, match="'steps'; predict runs every sample"):
        model.predict(x, steps=1)


def test_attention_mask_given_as_a_list_of_ints_is_named_a_list():
    layer = bp.MultiheadAttention(8, 2)
    with pytest.raises(TypeError, match=r"got list of int64 values$"):
        layer(np.ones((2, 3, 8), np.float32), key_padding_mask=[[0, 0, 1], [0, 0, 0]])


class _GuardedNorm(bp.Layer):
    """y = (x - mean) / sqrt(var + eps) over the last axis, whose backward has a classic
    0/0 guard bug: 0 for a row of zero variance, where the true gradient is
    (dy - mean(dy)) / sqrt(eps), far from 0 (the layer is smooth: no kink there)."""

    _cache_attrs = ("_xc", "_inv", "_var")

    def __init__(self, eps: float, *, dtype: object = np.float64) -> None:
        super().__init__(dtype=dtype)
        self.eps = eps

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        xc = x - x.mean(-1, keepdims=True)
        var = (xc * xc).mean(-1, keepdims=True)
        inv = 1.0 / np.sqrt(var + self.eps)
        if training:
            self._xc, self._inv, self._var = xc, inv, var
        return xc * inv

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xc, inv, var = self._pop("_xc", "_inv", "_var")
        xh = xc * inv
        dx = inv * (dy - dy.mean(-1, keepdims=True) - xh * (dy * xh).mean(-1, keepdims=True))
        return np.where(var == 0, 0.0, dx)


def test_check_gradients_does_not_excuse_a_steep_smooth_spot_as_a_kink():
    x = np.array([[2.0, 2.0, 2.0, 2.0], [0.3, -1.2, 0.5, 2.0]])  # a constant row: ties
    result = bp.check_gradients(_GuardedNorm(1e-10), x)  # it passed, judged at x + noise
    assert not result.passed and result.tensor == "x" and result.index[0] == 0
    assert not any("lies exactly on kinks" in n for n in result.notes)
    assert not any("still moves toward backward's value" in n for n in result.notes)
    assert not bp.check_gradients(_GuardedNorm(1e-5), x).passed  # (as it was)


def test_check_gradients_still_judges_a_relu_exactly_on_its_kink_nearby():
    x = np.array([[0.0, 1.0, -2.0], [0.0, 0.5, 3.0]])  # ReLU inputs of exactly 0
    result = bp.check_gradients(bp.ReLU(dtype=np.float64), x)
    assert result.passed and any("lies exactly on kinks" in n for n in result.notes)


def test_check_gradients_says_when_the_slope_still_moves_with_the_step():
    # SmoothL1 with a tiny beta is a bend sharper than any step: a correct gradient fails,
    # and the note says why (the numeric slope moves toward backward's as the step shrinks)
    result = bp.check_gradients(bp.SmoothL1Loss(beta=1e-8), np.array([[1e-9, 0.5]]),
                                np.zeros((1, 2)))
    assert not result.passed
    assert any("still moves toward backward's value as the step shrinks (1e-05: 5e-05, "
               "1e-06: 0.0005, 1e-07: 0.005)" in n for n in result.notes), result.notes


def test_check_gradients_keeps_a_float32_rmsnorms_own_eps_in_its_float64_copy():
    x = np.array([[0.0, 0.0, 0.0, 0.0], [0.3, -1.2, 0.5, 2.0]], np.float32)  # a zero row
    result = bp.check_gradients(bp.RMSNorm(4), x)  # failed: the copy used float64's eps
    assert result.passed, result
    assert any("eps=None is its dtype's machine epsilon; the float64 copy keeps float32's, "
               "1.19e-07" in n for n in result.notes)


@pytest.mark.parametrize("shape", [(8, 4), (4, 3, 5, 5)])
def test_batchnorm_widens_a_channel_whose_float32_squares_overflow(shape):
    # values past ~1e19: the float32 sum of squares is inf, inv_std 0 and the output was
    # all zeros (PyTorch's float32 kernel too); the other norms widen, now BatchNorm too
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, 1] *= np.float32(1e20)
    layer = bp.BatchNorm(shape[1])
    y = layer.forward(x, training=True)
    wide = x.astype(np.float64)
    axes = (0, *range(2, x.ndim))
    want = (wide - wide.mean(axes, keepdims=True)) / np.sqrt(wide.var(axes, keepdims=True)
                                                            + 1e-5)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-5)
    assert np.isinf(layer.buffers["running_var"][1])  # its true value is past float32's
    small = x.copy()
    small[:, 1] = rng.standard_normal(small[:, 1].shape)
    ref = bp.BatchNorm(shape[1]).forward(small, training=True)  # the normal path: unchanged
    np.testing.assert_allclose(ref[:, 0], y[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: bp.LayerNorm(1000), lambda: bp.InstanceNorm1D(4)])
def test_norms_of_rows_far_from_zero_keep_float32_precision(make):
    # rows of 1e6 + N(0, 1): the float32 mean's round-off shifted every centred value of a
    # row alike (0.155 off float64 for LayerNorm(1000); PyTorch's float32 kernel 0.10)
    rng = np.random.default_rng(0)
    layer = make()
    shape = (4, 1000) if isinstance(layer, bp.LayerNorm) else (2, 4, 1000)
    x = (1e6 + rng.standard_normal(shape)).astype(np.float32)
    wide = x.astype(np.float64)
    want = (wide - wide.mean(-1, keepdims=True)) / np.sqrt(wide.var(-1, keepdims=True) + 1e-5)
    y = layer.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-5)
    const = np.full(shape, 1e6 + 0.3, np.float32)  # a constant row: 0 (to round-off)
    np.testing.assert_allclose(make().forward(const), 0.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer, x", [
    (bp.Hardshrink(0.5, dtype=np.float64), [[0.5, -0.5, 1.0]]),
    (bp.Threshold(0.5, 0.0, dtype=np.float64), [[0.5, 1.0, 2.0]]),
    (bp.Softplus(beta=2, threshold=1, dtype=np.float64), [[0.5, 0.2, 1.0]]),
])
def test_check_gradients_judges_a_jump_at_x_nearby_as_before(layer, x):
    # a value that jumps at x (a threshold): the one-sided slopes' gap grows as 1/step,
    # which the first fix of 8969cfd read as round-off and failed correct layers for
    result = bp.check_gradients(layer, np.array(x))
    assert result.passed, result
    assert any("lies exactly on kinks" in n for n in result.notes)


def test_check_gradients_gives_no_step_note_to_a_backward_settled_short_of_it():
    class BadRMS(bp.RMSNorm):  # a 0.1 % bug: the slopes settle at the true value
        def backward(self, dy):
            return super().backward(dy) * 1.001

    result = bp.check_gradients(BadRMS(5), np.zeros((2, 5), np.float32))
    assert not result.passed
    assert not any("still moves toward" in n for n in result.notes), result.notes


def test_fit_names_only_the_leaf_put_into_a_nested_models_layers():
    inner = bp.Sequential([bp.Dense(4, 4, rng=0)])
    model = bp.Sequential([inner, bp.Dense(4, 2, rng=1)])
    inner.layers[0] = bp.Dense(4, 4, rng=2)
    with pytest.raises(ValueError, match=r"got 0\.0 Dense\(4, 4\) put into model\.layers"):
        model.fit(np.ones((4, 4), np.float32), np.zeros(4, int), loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)


def test_a_ragged_list_mask_is_named():
    layer = bp.MultiheadAttention(4, 2)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(4, 2\): expected "
                                         r"key_padding_mask of shape \(2, 3\), got a list of "
                                         r"rows of different lengths"):
        layer(np.ones((2, 3, 4), np.float32), key_padding_mask=[[False, True], [False] * 3])
