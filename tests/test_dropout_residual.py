"""Dropout (seeded masks, scale, inference identity) and Residual (sum of paths, errors)."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_dropout_mask_is_reproducible_from_the_seed():
    x = np.ones((50, 40), dtype=np.float32)
    a, b, c = bp.Dropout(0.3, rng=7), bp.Dropout(0.3, rng=7), bp.Dropout(0.3, rng=8)
    ya, yb, yc = (d.forward(x, training=True) for d in (a, b, c))
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    assert not np.array_equal(a.forward(x, training=True), ya)  # a new mask each step


def test_dropout_accepts_a_generator_and_never_touches_global_random_state():
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    gen = np.random.default_rng(3)
    drop = bp.Dropout(0.5, rng=gen)
    assert drop.rng is gen
    drop.forward(np.ones((10, 10), np.float32), training=True)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_dropout_scales_kept_units_and_preserves_the_mean():
    rate = 0.25
    drop = bp.Dropout(rate, rng=0)
    x = np.full((400, 500), 2.0, dtype=np.float32)
    y = drop.forward(x, training=True)
    assert y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2.0 / (1 - rate), rtol=1e-6)
    assert abs((~kept).mean() - rate) < 0.005
    assert abs(y.mean() - 2.0) < 0.02
    dx = drop.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx != 0, kept)
    np.testing.assert_allclose(dx[kept], 1 / (1 - rate), rtol=1e-6)


def test_dropout_is_the_identity_in_inference():
    drop = bp.Dropout(0.9, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float32)
    assert drop.forward(x) is x and not drop.has_cache


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_dropout_rate_must_be_in_zero_one(rate):
    with pytest.raises(ValueError, match=r"Dropout: expected rate in \[0.0, 1.0\]"):
        bp.Dropout(rate)


def test_dropout_rate_one_drops_everything_as_in_pytorch():
    x = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    drop = bp.Dropout(1.0, rng=0)
    y = drop.forward(x, training=True)
    assert np.array_equal(y, np.zeros_like(x)) and not np.isnan(y).any()
    assert np.array_equal(drop.backward(np.ones_like(x)), np.zeros_like(x))
    assert drop.forward(x) is x  # inference: the identity, at any rate


def test_dropout_rate_zero_keeps_everything():
    x = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    np.testing.assert_array_equal(bp.Dropout(0.0, rng=0).forward(x, training=True), x)


def test_residual_output_is_input_plus_block_and_gradients_add():
    rng = np.random.default_rng(0)
    dense = bp.Dense(4, 4, dtype=np.float64, rng=0)
    res = bp.Residual(dense)
    x, dy = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y = res.forward(x, training=True)
    np.testing.assert_allclose(y, x + x @ dense.params["W"] + dense.params["b"])
    dx = res.backward(dy)
    np.testing.assert_allclose(dx, dy + dy @ dense.params["W"].T)
    np.testing.assert_allclose(res.grads["block.W"], x.T @ dy)


def test_residual_shape_mismatch_names_both_shapes():
    res = bp.Residual(bp.Dense(4, 3, rng=0))
    with pytest.raises(ValueError, match=r"Residual\(Dense\(4, 3\)\): expected block output of "
                                         r"the input's shape \(2, 4\), got \(2, 3\)"):
        res.forward(np.zeros((2, 4), np.float32), training=True)
    assert not res.has_cache


def test_residual_params_are_prefixed_and_live_in_the_model_flat_buffer():
    block = bp.Sequential([bp.Dense(3, 3, rng=0), bp.Tanh(), bp.Dense(3, 3, rng=1)])
    model = bp.Sequential([bp.Dense(2, 3, rng=2), bp.Residual(block), bp.Dense(3, 1, rng=3)])
    names = [p.name for p in model.parameters()]
    assert names == ["0.W", "0.b", "1.block.0.W", "1.block.0.b", "1.block.2.W", "1.block.2.b",
                     "2.W", "2.b"]
    assert model.flat_params.size == sum(p.value.size for p in model.parameters())
    assert np.shares_memory(model[1].params["block.0.W"], model.flat_params)
    assert np.shares_memory(model[1].grads["block.2.b"], model.flat_grads)


def test_residual_config_holds_only_dtype_and_repr_shows_the_block():
    res = bp.Residual(bp.Sequential([bp.Dense(3, 3), bp.ReLU()]))
    assert res.get_config() == {"dtype": "float32"}
    assert repr(res).startswith("Residual(Sequential([") and "Dense(3, 3)" in repr(res)
    assert res.children()[0][0] == "block"


def test_residual_rejects_non_layers_and_mismatched_dtypes():
    with pytest.raises(TypeError, match="expected block to be a backprop Layer"):
        bp.Residual(lambda x: x)
    with pytest.raises(TypeError, match="expected a block in float64"):
        bp.Residual(bp.Dense(3, 3), dtype=np.float64)


def test_model_with_every_new_layer_survives_save_and_load(tmp_path):
    if not hasattr(bp, "save"):
        pytest.skip("serialization not available")
    model = bp.Sequential([
        bp.Conv2D(1, 4, 3, padding=1, rng=0), bp.BatchNorm(4), bp.ReLU(), bp.MaxPool2D(2),
        bp.Residual(bp.Sequential([bp.Conv2D(4, 4, 3, padding=1, rng=1), bp.ReLU()])),
        bp.Dropout(0.2, rng=5), bp.AvgPool2D(2), bp.Flatten(), bp.LayerNorm(16),
        bp.Dense(16, 3, rng=2),
    ])
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    model.forward(x, training=True)  # moves the running statistics and the dropout rng
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    loaded = getattr(loaded, "model", loaded)
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    np.testing.assert_array_equal(loaded.forward(x, training=True),
                                  model.forward(x, training=True))  # same next dropout mask


def test_nested_containers_repr_with_each_level_indented():
    model = bp.Sequential([bp.Dense(3, 3, rng=0),
                           bp.Residual(bp.Sequential([bp.Dense(3, 3, rng=1), bp.ReLU()]))])
    assert repr(model) == ("Sequential([\n"
                           "  (0) Dense(3, 3),\n"
                           "  (1) Residual(Sequential([\n"
                           "    (0) Dense(3, 3),\n"
                           "    (1) ReLU()\n"
                           "  ]))\n"
                           "])")


@pytest.mark.parametrize("make", [lambda: bp.Dropout(0.0, rng=0),
                                  lambda: bp.Dropout2D(0.0, rng=0)])
def test_rate_zero_is_the_identity_and_draws_nothing(make):
    """PyTorch's dropout(p=0) returns its input and draws no numbers (a transformer block's
    dropout=0 switch): ours too, where it drew a whole mask of ones and multiplied by it."""
    layer = make()
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    state = layer.rng.bit_generator.state
    y = layer.forward(x, training=True)
    assert y is x and layer.rng.bit_generator.state == state
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, dy)
    assert dx is not dy and not layer.has_cache
