from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import initializers as init


@pytest.mark.parametrize("name,expected_std", [
    ("glorot_uniform", np.sqrt(2 / (300 + 200))), ("glorot_normal", np.sqrt(2 / 500)),
    ("he_uniform", np.sqrt(2 / 300)), ("he_normal", np.sqrt(2 / 300)),
    ("lecun_normal", np.sqrt(1 / 300)), ("lecun_uniform", np.sqrt(1 / 300)),
])
def test_initializer_scales(name, expected_std):
    w = init.get(name)((300, 200), np.random.default_rng(0), np.float32)
    assert w.dtype == np.float32 and w.shape == (300, 200)
    assert w.std() == pytest.approx(expected_std, rel=0.03)
    assert abs(w.mean()) < 0.01 * 3 * expected_std


def test_conv_fans_use_receptive_field():
    assert init.fans((32, 16, 3, 3)) == (16 * 9, 32 * 9)


def test_same_seed_same_weights_and_no_global_state():
    np.random.seed(1)  # noqa: NPY002 - proves the global state is not used
    a = bp.Dense(5, 4, rng=3).params["W"]
    np.random.seed(2)  # noqa: NPY002
    b = bp.Dense(5, 4, rng=3).params["W"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, bp.Dense(5, 4, rng=4).params["W"])


def test_layers_accept_a_callable_initializer():
    layer = bp.Dense(2, 3, init=lambda shape, rng, dtype: np.full(shape, 0.5, dtype))
    np.testing.assert_array_equal(layer.params["W"], np.full((2, 3), 0.5))


def test_zeros_and_ones():
    assert np.all(init.zeros((2, 2)) == 0) and np.all(init.ones((2,), dtype=np.float64) == 1)


@pytest.mark.parametrize(("make", "fan_in"), [
    (lambda b: bp.Dense(300, 200, init="torch_uniform", bias_init=b, rng=0), 300),
    (lambda b: bp.Conv2D(8, 200, 3, groups=2, init="torch_uniform", bias_init=b, rng=0),
     4 * 9),
    (lambda b: bp.Conv1D(5, 200, 4, init="torch_uniform", bias_init=b, rng=0), 5 * 4),
])
def test_torch_uniform_bias_is_bounded_by_the_weights_fan_in_as_pytorchs(make, fan_in):
    """PyTorch draws a Linear/Conv bias from U(±1/sqrt(fan_in)), fan_in the weight's: not
    the bias's own length (Dense(300, 200): 1/sqrt(300) = 0.058, not 1/sqrt(200) = 0.071)."""
    from backprop.initializers import torch_uniform

    layer = make("torch_uniform")
    b, bound = layer.params["b"], 1 / np.sqrt(fan_in)
    assert b.shape == (200,) and b.dtype == np.float32
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.95 * bound
    assert np.abs(layer.params["W"]).max() <= bound
    # the old recipe, a callable given the weight's fan_in, draws the same
    by_hand = make(lambda s, r, d: torch_uniform((fan_in, s[0]), r, d)[0])
    np.testing.assert_array_equal(by_hand.params["b"], b)


@pytest.mark.parametrize("name", ["he_uniform", "glorot_normal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_draws_are_the_whole_draw_bit_for_bit(name, dtype, monkeypatch):
    """Weights are drawn 2**20 float64 values at a time (a float32 Dense(4096, 4096) no
    longer holds a 128 MiB float64 draw); the Generator's stream makes that the same
    values as one draw, which the seeded results of every earlier version depend on."""
    shape = (37, 5, 3)
    fan_in, fan_out = init.fans(shape)
    rng = np.random.default_rng(4)
    whole = (rng.uniform(-np.sqrt(6 / fan_in), np.sqrt(6 / fan_in), size=shape)
             if name == "he_uniform" else
             rng.standard_normal(size=shape) * np.sqrt(2 / (fan_in + fan_out)))
    monkeypatch.setattr(init, "_CHUNK", 7)  # 555 values: 80 chunks, the last one short
    got = getattr(init, name)(shape, np.random.default_rng(4), dtype)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(got, whole.astype(dtype))
