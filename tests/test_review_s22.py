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


# -- the speed review's slow paths, now fast: the same values -------------------------------
SPECIAL = [np.nan, -np.nan, -0.0, 0.0, np.inf, -np.inf, 0.1, -5.0, 5.0, 1e30, -1e-30]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold, value", [(0.1, 20.0), (-1.0, 0.0), (0.0, -0.0),
                                              (-0.5, 3.0), (1e30, -1e30)])
def test_threshold_by_bits_equals_where_to_the_bit(dtype, threshold, value):
    rng = np.random.default_rng(0)
    x = rng.choice(np.array(SPECIAL, dtype), size=(8, 40))[:, ::2]  # strided, too
    y = bp.Threshold(threshold, value, dtype=dtype).forward(x)
    want = np.where(x <= threshold, dtype(value), x)
    assert y.dtype == dtype and y.flags.c_contiguous
    assert np.array_equal(y.view(f"u{y.itemsize}"), want.view(f"u{y.itemsize}"))


@pytest.mark.parametrize("p", [2, 3, 4, 5, 6, 3.0, 1.5])
def test_lppool_whole_powers_of_negative_inputs(p):
    # products (p <= 4) and |x|**p with x's sign (odd p): NumPy's power of a negative
    # base took libm's slow path; the values are x**p's. An inf and a -inf in one window
    # give NaN quietly, as PyTorch (AvgPool warned)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 7))
    x[0, 0, 0, :3] = [-0.0, np.inf, -np.inf]
    layer = bp.LPPool2D(p, 3, 2, dtype=np.float64)
    y = layer.forward(x, training=True)
    with np.errstate(invalid="ignore"):
        s = bp.AvgPool2D(3, 2, dtype=np.float64).forward(x**p) * 9
        want = s ** (1 / p)
    np.testing.assert_allclose(y, want, rtol=1e-13, equal_nan=True)
    assert bp.check_gradients(bp.LPPool2D(p, 3, 2, dtype=np.float64),
                              np.abs(rng.standard_normal((2, 3, 7, 7))) + 0.5).passed


@pytest.mark.parametrize("n, m", [(28, 5), (13, 6), (5, 7), (10, 3)])
def test_adaptive_average_by_matrices_equals_the_sums(n, m):
    # finite inputs take one matrix product per axis; an inf takes the sums, which keep
    # it inside its own windows (a matrix's zeros would spread NaN everywhere)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, n, n))
    layer = bp.AdaptiveAvgPool2D(m, dtype=np.float64)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    idx = [np.arange(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]
    want = np.array([[x[:, :, a][:, :, :, b].mean(axis=(2, 3)) for b in idx] for a in idx])
    np.testing.assert_allclose(y, want.transpose(2, 3, 0, 1), rtol=1e-12)
    want_dx = np.zeros_like(x)
    for i, a in enumerate(idx):
        for j, b in enumerate(idx):
            want_dx[:, :, a[:, None], b] += (dy[:, :, i, j] / (len(a) * len(b)))[..., None, None]
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12)
    x[0, 0, 0, 0] = np.inf
    y = layer.forward(x, training=True)
    assert np.isinf(y[0, 0, 0, 0]) and np.isfinite(y[1]).all() and np.isfinite(y[0, 1:]).all()
    assert np.isfinite(y[0, 0, -1, -1])  # the windows without it stay finite
    dy[1, 1, 0, 0] = np.inf
    dx = layer.backward(dy)
    assert np.isfinite(dx[0]).all() and np.isinf(dx[1, 1, 0, 0]) and np.isfinite(dx[1, 0]).all()
    assert np.isfinite(dx[1, 1, -1, -1])


def test_smooth_l1_of_a_huge_difference_is_quiet_and_pytorch_exact():
    out = np.array([[3e38, -3e38, 0.25, 2.0, np.inf]], np.float32)
    loss = bp.SmoothL1Loss(beta=0.5, reduction="none")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # d / beta overflowed on the way to its clip before
        values = loss.forward(out, np.zeros_like(out))
        grad = loss.backward(np.ones_like(out))
    np.testing.assert_array_equal(grad, [[1, -1, 0.5, 1, 1]])
    big = np.float32(3e38) - np.float32(0.25)  # float32's |d| - beta/2, as PyTorch's
    np.testing.assert_array_equal(values, np.array([[big, big, 0.0625, 1.75, np.inf]],
                                                   np.float32))


# -- a fuzz of bad inputs across the API ------------------------------------------------------
@pytest.mark.parametrize("make", [bp.ReLU, bp.Sigmoid, bp.GELU, bp.Hardswish,
                                  lambda: bp.Threshold(0.1, 2.0), lambda: bp.Dense(4, 3)])
def test_layers_name_a_pandas_series_or_a_masked_array(make):
    # they have a shape and a dtype, so they got past the check: AttributeErrors inside,
    # a Series back, or a masked array's hidden values used
    pd = pytest.importorskip("pandas")
    x = np.ones((2, 4), np.float32)
    series = pd.Series(np.ones(4, np.float32))
    with pytest.raises(TypeError, match=r"expected input as a NumPy array of dtype float32, "
                       r"got a pandas\.Series .*to_numpy\(\)"):
        make().forward(series)
    masked = np.ma.masked_array(x, mask=np.eye(2, 4, dtype=bool))
    with pytest.raises(TypeError, match=r"expected input as a plain ndarray, got a masked "
                       r"array .*filled"):
        make().forward(masked)
    layer = make()  # a refused dy leaves the cache for the corrected call
    y = layer.forward(x, training=True)
    with pytest.raises(TypeError, match="expected dy as a plain ndarray"):
        layer.backward(np.ma.masked_array(np.ones_like(y)))
    assert layer.backward(np.ones_like(y)).shape == x.shape


def test_memmaps_still_pass_and_sequential_reads_pandas_as_arrays(tmp_path):
    pd = pytest.importorskip("pandas")
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=(2, 4))
    mm[:] = 1.0
    assert type(bp.Dense(4, 3, rng=0).forward(mm)) is np.ndarray
    model = bp.Sequential([bp.Dense(4, 2, rng=0), bp.ReLU()])
    want = model.forward(np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(model.forward(pd.DataFrame(np.ones((3, 4)))), want)
    y = bp.Sequential([bp.ReLU()]).forward(pd.Series(np.ones(4, np.float32)))
    assert type(y) is np.ndarray


def test_embedding_refuses_masked_indices_and_losses_name_a_torch_output():
    with pytest.raises(ValueError, match="Embedding.*without masked entries"):
        bp.Embedding(5, 3).forward(np.ma.masked_array([[0, 1]], mask=[[1, 0]]))
    assert bp.Embedding(5, 3).forward(np.ma.masked_array([[0, 1]])).shape == (1, 2, 3)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"MeanSquaredError\(\): expected output as a NumPy "
                       r"array, got a torch\.Tensor .*detach\(\)\.cpu\(\)\.numpy\(\)"):
        bp.MeanSquaredError().forward(torch.zeros(2, 3), np.zeros((2, 3), np.float32))


def test_metrics_refuse_labels_past_the_score_columns_complex_scores_and_a_nan_threshold():
    scores = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(ValueError, match=r"confusion_matrix: expected labels in \[0, 3\)"):
        bp.metrics.confusion_matrix(np.array([5, 6, 7, 6]), scores)  # an 8x8 matrix before
    with pytest.raises(TypeError, match="confusion_matrix: expected output as numbers"):
        bp.metrics.confusion_matrix(np.array([0, 1, 2, 1]), scores + 1j)
    assert bp.metrics.confusion_matrix(np.array([0, 1, 2, 1]), scores).shape == (3, 3)
    assert bp.metrics.confusion_matrix([0, 1, 3], [0, 1, 1]).shape == (4, 4)  # labels: 1 + max
    one = np.ones((2, 1))
    for f in (bp.metrics.accuracy, bp.metrics.binary_accuracy, bp.metrics.confusion_matrix):
        with pytest.raises(ValueError, match=f"{f.__name__}: expected threshold .*got NaN"):
            f(np.array([0, 1]), one, threshold=float("nan"))  # 0.5 before: every sample 0
    with pytest.raises(ValueError, match="predicted_labels: expected threshold"):
        bp.metrics.predicted_labels(one, float("nan"))


def test_api_arguments_of_the_wrong_kind_are_named(tmp_path):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    with pytest.raises(TypeError, match="save: expected optimizer as an optimizer or its "
                       "state_dict"):
        bp.save(model, tmp_path / "m.npz", optimizer="adam")  # saved, then read back as 'adam'
    with pytest.raises(TypeError, match="save: expected training_state as a dict, got int"):
        bp.save(model, tmp_path / "m.npz", training_state=3)
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(TypeError, match="register_layer: expected name as a non-empty str"):
        bp.register_layer(name=3)
    with pytest.raises(TypeError, match="LearningRateScheduler: expected schedule.*takes no "
                       "positional argument"):
        bp.callbacks.LearningRateScheduler(lambda: 0.1)  # a bare TypeError inside fit before
    with pytest.raises(ValueError, match=r"Upsample: expected mode .*got \['nearest'\]"):
        bp.Upsample(scale_factor=2, mode=["nearest"])  # unhashable type: 'list'
    with pytest.raises(ValueError, match=r"ReplicationPad1D.*expected an entry to repeat"):
        bp.ReplicationPad1D(1).forward(np.zeros((2, 2, 0), np.float32))  # NumPy's pad error
    for make in (lambda: bp.MaxPool1D(10**12), lambda: bp.AvgPool2D((10**5, 10**5))):
        with pytest.raises(ValueError, match=r"Pool.D: expected a kernel of at most 2\*\*24 "
                           "positions"):
            make()  # an empty MemoryError (or a minute of listing offsets first)
    for make, name in ((lambda: bp.BatchNorm(10**12), "'gamma'"),
                       (lambda: bp.BatchNorm(10**12, affine=False), "'running_mean'"),
                       (lambda: bp.LayerNorm(10**12), "'gamma'"),
                       (lambda: bp.PReLU(10**12), "'alpha'"),
                       (lambda: bp.Conv2D(2, 3, 10**12), "'W'")):  # NumPy's own errors
        with pytest.raises(MemoryError, match=f"cannot allocate {name} of shape"):
            make()


def test_plot_activation_histograms_names_a_bad_layer_as_a_value_error():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    model = bp.Sequential([bp.Dense(2, 2, rng=0), bp.ReLU()])
    with bp.trace(model, keep_arrays=True) as t:
        model.forward(np.ones((3, 2), np.float32))
    for bad, why in ((["bogus"], "expected one of the traced layers"),
                     ([10], r"expected a layer index in \[-2, 2\)")):
        with pytest.raises(ValueError, match="plot_activation_histograms: layers: " + why):
            bp.plot_activation_histograms(t, layers=bad)


# -- a review of the checker, the tracer and the monitor ---------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_check_gradients_passes_a_blank_sample_through_relus_of_zero_bias(seed):
    # the blank sample feeds several ReLU kinks at once: its one-sided slopes can both lie
    # on one side of backward's subgradient, so it was judged smooth and failed, without
    # the retry near x the docstring promises
    model = bp.Sequential([bp.Dense(3, 8, rng=0), bp.ReLU()])
    x = np.random.default_rng(0).standard_normal((4, 3))
    x[0] = 0.0
    result = bp.check_gradients(model, x, rng=seed)
    assert result.passed, str(result)
    assert any("exactly on kinks" in note for note in result.notes)


def test_check_gradients_still_fails_a_wrong_backward_at_a_blank_sample():
    class Off(bp.ReLU):
        def backward(self, dy):
            return super().backward(dy) * 1.01

    model = bp.Sequential([bp.Dense(3, 8, rng=0, dtype=np.float64), Off(dtype=np.float64)])
    x = np.random.default_rng(0).standard_normal((4, 3))
    x[0] = 0.0
    assert not bp.check_gradients(model, x, rng=1).passed


def _monitored_fit(model, x, y, **options):
    opt = bp.SGD(model.parameters(), lr=0.1, clip_norm=options.pop("clip_norm", None))
    return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=1,
                     batch_size=32, progress=False, seed=0,
                     callbacks=[bp.GradientFlowMonitor(**options)])


@pytest.mark.parametrize("first", [lambda: bp.LSTM(4, 3, return_sequences=False, rng=0),
                                   lambda: bp.GRU(4, 3, return_sequences=False, rng=0)])
def test_gradient_flow_monitor_skips_a_recurrent_layers_gate_bias(first):
    # its b has 4H (3H) gate entries, not the ReLU's H units: fit raised an IndexError
    rng = np.random.default_rng(0)
    model = bp.Sequential([first(), bp.ReLU(), bp.Dense(3, 2, rng=1)])
    history = _monitored_fit(model, rng.standard_normal((64, 5, 4)).astype(np.float32),
                             rng.integers(0, 2, 64))
    assert not any(k.startswith("dead_relu") for k in history.history)


def test_gradient_flow_monitor_counts_a_convolutions_dead_channels_by_its_bias():
    # a Dense after Conv1D -> ReLU reads the length axis: its W rows were taken for channels
    rng = np.random.default_rng(0)
    conv = bp.Conv1D(2, 8, 3, rng=0)
    conv.params["b"][:4] = -100.0  # channels 0-3 dead
    model = bp.Sequential([conv, bp.ReLU(), bp.Dense(8, 3, rng=1)])
    history = model.fit(rng.standard_normal((32, 2, 10)).astype(np.float32),
                        rng.standard_normal((32, 8, 3)).astype(np.float32),
                        loss=bp.MeanSquaredError(), optimizer=bp.SGD(model.parameters(),
                        lr=0.01), epochs=1, progress=False, seed=0,
                        callbacks=[bp.GradientFlowMonitor(warn=False)])
    assert history.history["dead_relu/1"] == [0.5]  # 0.0 before


def test_gradient_flow_monitor_records_norms_before_clipping():
    # clip_norm scaled the gradients before the monitor read them: an explosion the
    # clipping cured went unseen (the explode_threshold never fired)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((256, 16)).astype(np.float32), rng.integers(0, 3, 256)
    norms = []
    for clip in (None, 1e-4):
        model = bp.Sequential([bp.Dense(16, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)])
        with pytest.warns(bp.GradientFlowWarning, match="exploding"):
            history = _monitored_fit(model, x, y, clip_norm=clip, explode_threshold=1e-2)
        norms.append(history.history["grad_norm/0"][0])
    assert norms[1] > 0.1 and norms[1] == pytest.approx(norms[0], rel=0.5)


def test_plot_gradient_flow_draws_a_dead_network():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(5, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, bias=False, rng=1)])
    model.layers[0].params["b"][...] = -100.0  # every ReLU dead: every norm 0
    history = _monitored_fit(model, rng.standard_normal((64, 5)).astype(np.float32),
                             rng.integers(0, 3, 64), warn=False)
    assert history.history["grad_norm/0"] == [0.0]
    fig = bp.plot_gradient_flow(history)  # matplotlib's log-scale ValueError before
    assert "every norm is 0" in fig.axes[0].get_title()


# -- a second read of the session's diff --------------------------------------------------------
def test_adaptive_average_keeps_the_sums_for_large_axes():
    # the matrix route took 4-17 s and 7.9 GB for 40,000 -> 39,999 (an (m, n) matrix)
    x = np.random.default_rng(0).standard_normal((1, 1, 40000)).astype(np.float32)
    y = bp.AdaptiveAvgPool1D(39999).forward(x)
    np.testing.assert_allclose(y[0, 0, :3], [(x[0, 0, 0] + x[0, 0, 1]) / 2,
                                             (x[0, 0, 1] + x[0, 0, 2]) / 2,
                                             (x[0, 0, 2] + x[0, 0, 3]) / 2], rtol=1e-6)


def test_smooth_l1_with_a_beta_below_float32_is_l1_as_pytorch():
    loss = bp.SmoothL1Loss(beta=1e-46, reduction="none")
    out = np.array([[0.5, -2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(loss.forward(out, np.zeros_like(out)), np.abs(out))  # NaN
    np.testing.assert_array_equal(loss.backward(np.ones_like(out)), [[1, -1, 1]])


def test_thresholds_take_inf_0d_arrays_and_one_per_column():
    y, s = np.array([0, 1]), np.array([-1.0, 2.0])
    assert bp.metrics.accuracy(y, s, threshold=np.inf) == 0.5  # roc_curve's first threshold
    assert bp.metrics.accuracy(y, s, threshold=np.array(0.3)) == 1.0
    per_column = bp.metrics.precision.multi_label.at_threshold(np.array([0.1, 0.5, 0.5]))
    scores = np.array([[0.2, 0.6, 0.4], [0.05, 0.7, 0.9]])
    assert per_column(np.array([[1, 1, 0], [0, 1, 1]]), scores) == pytest.approx(1.0)
    with pytest.raises(TypeError, match="accuracy: expected threshold as one number"):
        bp.metrics.accuracy(y, s, threshold="0.5")


def test_second_read_messages():
    with pytest.raises(TypeError, match="expected integer class labels"):
        bp.metrics.confusion_matrix([0, 1], np.array(["cat", "dog"]))  # named the output
    with pytest.raises(MemoryError, match=r"BatchNorm: cannot allocate 'gamma' .*about 2\*\*"):
        bp.BatchNorm(10**400)  # an OverflowError while the message was built
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError, match=r"got DataFrame \(pass x\.to_numpy\(\)\)"):
        bp.Dense(3, 2).forward(pd.DataFrame(np.ones((2, 3), np.float32)))


def test_avgpool_overflows_to_inf_quietly_and_plateau_reads_a_torch_scalar():
    x = np.full((1, 1, 2, 2), 3e38, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = bp.AvgPool2D(2).forward(x)
    assert np.isinf(y).all()  # PyTorch's too
    torch = pytest.importorskip("torch")
    rule = ReduceLROnPlateau()
    assert rule.step(torch.tensor(0.5, requires_grad=True) * 2, 0.1) == 0.1 and rule.best == 1.0
    with pytest.raises(TypeError, match="ReduceLROnPlateau: expected the monitored value"):
        rule.step(torch.zeros(2), 0.1)


def test_softmax_of_a_fully_masked_row_is_nan_quietly_as_pytorch():
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, 2.0], [0.0, np.inf, 1.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "invalid value encountered in subtract" before
        y = bp.Softmax().forward(x)
        value = bp.SoftmaxCrossEntropy(reduction="none").forward(x, np.array([0, 1, 2]))
    assert np.isnan(y[0]).all() and np.isnan(y[2]).all()
    np.testing.assert_allclose(y[1].sum(), 1.0, rtol=1e-6)
    assert np.isnan(value[0]) and np.isfinite(value[1])


def test_bench_names_a_layer_of_ones_own_that_lists_no_products():
    class Scale(bp.Layer):
        def __init__(self, n):
            super().__init__()
            self.add_param("a", np.ones(n, np.float32))

        def forward(self, x, *, training=False):
            if training:
                self._x = x
            return x * self.params["a"]

        def backward(self, dy):
            self.grads["a"][...] = (dy * self._x).sum(0)
            return dy * self.params["a"]

    model = bp.Sequential([bp.Dense(4, 8), Scale(8), bp.BatchNorm(8), bp.Dense(8, 2)])
    notes = bp.bench(model, (4,), 8, steps=2, repeats=1).notes
    assert any("layer 1 (Scale) lists no matrix products" in n for n in notes)
    assert not any("BatchNorm" in n for n in notes)  # backprop's own: none to list
    assert not any("lists no matrix" in n for n in
                   bp.bench(bp.Sequential([bp.Dense(4, 8)]), (4,), 8, steps=2, repeats=1).notes)


@pytest.mark.parametrize("make", [bp.GELU, lambda: bp.GELU(approximate="tanh"), bp.SiLU])
def test_gelu_and_silu_at_infinities_are_quiet(make):
    # -inf · 0 warned "invalid value in multiply" where PyTorch is silent (both NaN)
    x = np.array([[-np.inf, np.inf, 0.0, -3.0]], np.float32)
    layer = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer.forward(x, training=True)
        layer.backward(np.ones_like(y))
    assert np.isnan(y[0, 0]) and y[0, 1] == np.inf and y[0, 2] == 0.0


# -- a last read of the session's newest commits -------------------------------------------------
def test_gradient_flow_monitor_undoes_clipping_only_on_the_optimizers_layers():
    # fine-tuning the head with clip_norm: the frozen layer's norm was divided by the
    # head's clip scale too (27 for a true 0.55)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4))
    y = (x[:, 0] > 0).astype(np.int64)
    norms = []
    for clip in (None, 0.01):
        model = bp.Sequential([bp.Dense(4, 16, rng=0), bp.ReLU(), bp.Dense(16, 2, rng=1)])
        opt = bp.SGD(model.layers[2].parameters(), lr=0.01, clip_norm=clip)
        history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=1,
                            batch_size=16, progress=False, seed=0,
                            callbacks=[bp.GradientFlowMonitor(warn=False)])
        norms.append(history.history["grad_norm/0"][0])
    assert norms[1] == pytest.approx(norms[0], rel=0.05)


def test_adaptive_average_after_an_overflowing_sum_stays_inf_quietly():
    # W's tiled sums overflowed to inf, then H's matrix made every output NaN (and warned)
    x = np.full((1, 1, 7, 8), 3e38, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = bp.AdaptiveAvgPool2D((5, 4)).forward(x)
    assert np.isposinf(y).all()  # PyTorch's too


def test_a_threshold_array_is_one_per_column_only_where_columns_are_scored():
    with pytest.raises(TypeError, match="accuracy: expected threshold as one number"):
        bp.metrics.accuracy(np.array([0, 1, 1]), np.array([0.1, 0.5, 0.9]),
                            threshold=[0.1, 0.2, 0.3])  # NumPy's broadcasting error before
