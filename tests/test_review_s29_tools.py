"""Review of the inspection tools (session 29): check_gradients, bench and the plots."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


class _SumOfSquares(bp.Layer):
    """A layer of one's own whose forward returns a Python float, not an array."""

    _cache_attrs = ("_x",)

    def forward(self, x, *, training=False):
        if training:
            self._x = x
        return float((x * x).sum())

    def backward(self, dy):
        return 2 * self._pop("_x") * dy


class _IntScale(bp.Layer):
    """A layer of one's own that put an integer array in its dicts as its weight (past
    add_param, which refuses one since the thirty-fifth session)."""

    def __init__(self):
        super().__init__(dtype=np.float64)
        self.params["w"], self.grads["w"] = np.ones(3, np.int64), np.zeros(3, np.int64)

    def forward(self, x, *, training=False):
        return x * self.params["w"]

    def backward(self, dy):
        return dy * self.params["w"]


class _WrongDx(bp.Dense):
    """A Dense whose dx is 50% too large."""

    def backward(self, dy, **kwargs):
        dx = super().backward(dy, **kwargs)
        return None if dx is None else dx * 1.5


def test_check_gradients_names_a_forward_that_returns_no_float_array():
    with pytest.raises(TypeError, match=r"check_gradients: expected the forward of "
                                        r"_SumOfSquares.* numpy array of floats, got float"):
        bp.check_gradients(_SumOfSquares(dtype=np.float64), np.ones((2, 3)))


def test_check_gradients_names_an_integer_parameter():
    with pytest.raises(TypeError, match=r"check_gradients: expected every parameter as an "
                                        r"array of floats, got dtype int64 for 'w'"):
        bp.check_gradients(_IntScale(), np.ones((2, 3)))
    layer = _IntScale()
    with pytest.raises(TypeError, match=r"_IntScale\.add_param: expected 'v' as an array of "
                                        r"floats .*got dtype int64"):
        layer.add_param("v", np.ones(3, np.int64))


@pytest.mark.parametrize("scale", [1e10, 1e14])
def test_check_gradients_fails_a_wrong_dx_whose_slopes_are_lost_in_round_off(scale):
    x = np.random.default_rng(0).standard_normal((4, 3)) * scale
    wrong = bp.check_gradients(_WrongDx(3, 2, dtype=np.float64, rng=0), x)
    assert not wrong.passed and wrong.tensor == "x"
    right = bp.check_gradients(bp.Dense(3, 2, dtype=np.float64, rng=0), x)
    assert not right.passed  # nothing was measured: no verdict of "passed"
    assert any("no difference measured them" in n and "x (largest |gradient|" in n
               for n in right.notes), right.notes


def test_check_gradients_still_passes_a_dense_on_a_large_but_measurable_x():
    x = np.random.default_rng(0).standard_normal((4, 3)) * 1e6
    assert bp.check_gradients(bp.Dense(3, 2, dtype=np.float64, rng=0), x).passed
    assert not bp.check_gradients(_WrongDx(3, 2, dtype=np.float64, rng=0), x).passed


def test_bench_times_a_stateful_model_at_another_batch_size_and_keeps_its_state():
    model = bp.Sequential([bp.LSTM(6, 8, rng=0, stateful=True), bp.Dense(8, 2, rng=1)])
    model.forward(np.random.default_rng(0).standard_normal((2, 5, 6)).astype(np.float32))
    state = [s.copy() for s in model[0].state]
    result = bp.bench(model, (5, 6), 4, steps=1, repeats=1, warmup=0, breakdown=False)
    assert result.samples_per_s > 0
    assert all(np.array_equal(a, b) for a, b in zip(model[0].state, state, strict=True))


def _trace_with_arrays():
    model = bp.Sequential([bp.Dense(4, 3, rng=0), bp.ReLU()])
    with bp.trace(model, keep_arrays=True) as t:
        y = model.forward(np.ones((5, 4), np.float32), training=True)
        model.backward(np.ones_like(y))
    return t


@pytest.mark.parametrize("bins, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError)])
def test_plot_activation_histograms_names_bad_bins(bins, error):
    pytest.importorskip("matplotlib")
    with pytest.raises(error, match=r"plot_activation_histograms: expected bins"):
        bp.plot_activation_histograms(_trace_with_arrays(), bins=bins)


def test_plot_gradient_flow_names_an_ax_that_is_no_axes():
    pytest.importorskip("matplotlib")
    with pytest.raises(TypeError, match=r"plot_gradient_flow: expected ax as matplotlib "
                                        r"Axes or None, got 3"):
        bp.plot_gradient_flow(_trace_with_arrays(), ax=3)
