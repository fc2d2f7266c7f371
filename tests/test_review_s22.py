"""Findings of the twenty-second session's reviews, each a test that failed before its fix."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.schedules import ReduceLROnPlateau


@pytest.mark.parametrize("make", [
    lambda: bp.ExponentialLR(1e-7, 1.01),
    lambda: bp.StepLR(1e-7, 1, gamma=1.01),
    lambda: bp.MultiStepLR(1e-7, range(72000), gamma=1.01),
])
def test_growing_schedules_reach_rates_whose_power_alone_overflows(make):
    # 1.01 ** 72000 is past float's range (a bare OverflowError before); the rate is not:
    # PyTorch's step-by-step products reach 1.3769e+304
    by_logs = math.exp(math.log(1e-7) + 72000 * math.log(1.01))
    assert make()(72000) == pytest.approx(by_logs, rel=1e-9)
    assert make()(72000) == pytest.approx(1.3769315e304, rel=1e-6)


def test_growing_schedules_give_inf_past_float_range_and_zero_from_zero():
    assert bp.ExponentialLR(1.0, 10.0)(400) == math.inf
    assert bp.ExponentialLR(0.0, 2.0)(5000) == 0.0
    assert bp.ExponentialLR(0.1, 0.5)(5000) == 0.0  # underflow stays 0, as before
    assert bp.StepLR(0.1, 3, gamma=0.5)(7) == 0.1 * 0.5 ** 2


def test_clip_grad_norm_of_an_inf_gradient_is_quiet():
    m = bp.Sequential([bp.Dense(3, 2, rng=0)])
    m.flat_grads[...] = 1.0
    m.flat_grads[0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's "invalid value in multiply" before
        norm = bp.clip_grad_norm(m.parameters(), 1.0)
    assert norm == math.inf
    assert np.isnan(m.flat_grads[0]) and not m.flat_grads[1:].any()  # PyTorch's values


def test_plateau_rule_reads_numbers_as_pytorch_and_names_itself_otherwise():
    rule = ReduceLROnPlateau(patience=0, factor=0.5)
    assert rule.step("0.5", 0.1) == 0.1  # PyTorch's float(metrics)
    assert rule.best == 0.5
    assert rule.step(np.array([0.4]), 0.1) == 0.1 and rule.best == 0.4
    assert rule.step(np.float32(0.45), 0.1) == 0.05
    for bad, why in ((None, "as a number, got None"), ("x", "got 'x'"),
                     (np.zeros(2), "one number, got an array of shape (2,)")):
        with pytest.raises(TypeError, match=r"ReduceLROnPlateau: expected the monitored "
                           r"value .*" + why.replace("(", r"\(").replace(")", r"\)")):
            rule.step(bad, 0.1)


@pytest.mark.parametrize("fails", ["metric", "backward"])
def test_an_error_before_the_first_update_leaves_buffers_and_state_as_they_were(fails):
    # a metric that passes fit's 2-sample check and fails on a real batch (scikit-learn's
    # accuracy_score on logits, say): the training forward had moved BatchNorm's running
    # statistics and a stateful LSTM's state, and nothing put them back
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((40, 3, 4)) * 5 + 3).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = bp.Sequential([bp.LSTM(4, 8, stateful=True, return_sequences=False, rng=0),
                           bp.BatchNorm(8), bp.Dense(8, 3, rng=1)])
    model.forward(x[:8])  # the stateful layer carries a state from here
    lstm = model.layers[0]
    before = (model.flat_params.copy(), {k: v.copy() for k, v in model.buffers.items()},
              [s.copy() for s in lstm.state])

    def metric(y_true, out):
        if len(y_true) > 2:
            raise ValueError("metric bug")
        return 0.0

    if fails == "backward":
        dense = model.layers[2]
        dense.backward = lambda dy: (_ for _ in ()).throw(ValueError("backward bug"))
    with pytest.raises(ValueError, match=f"{fails} bug"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(),
                  lr=0.1), batch_size=8, shuffle=False, progress=False,
                  metrics=[metric] if fails == "metric" else None)
    assert np.array_equal(model.flat_params, before[0])
    for k, v in model.buffers.items():
        assert np.array_equal(v, before[1][k]), k
    assert all(np.array_equal(a, b) for a, b in zip(lstm.state, before[2], strict=True))


@pytest.mark.parametrize("make, shape", [
    (lambda: bp.PixelShuffle(1), (2, 4, 3, 3)), (lambda: bp.PixelUnshuffle(1), (2, 4, 3, 3)),
    (lambda: bp.PixelShuffle(2), (2, 4, 1, 1)), (lambda: bp.PixelUnshuffle(2), (2, 1, 2, 2)),
    (lambda: bp.ChannelShuffle(1), (2, 4, 3, 3)), (lambda: bp.PixelShuffle(2), (2, 8, 3, 3)),
])
def test_shuffles_return_new_arrays_as_pytorch(make, shape):
    # a shuffle that moves nothing came back as a view: writing into y changed x
    layer = make()
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    y = layer.forward(x, training=True)
    dy = np.ones_like(y)
    dx = layer.backward(dy)
    assert not np.shares_memory(y, x) and not np.shares_memory(dx, dy)
    y += 100
    assert np.array_equal(x.ravel(), np.arange(x.size))
