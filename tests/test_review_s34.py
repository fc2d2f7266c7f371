"""Session 34's reviews: bad inputs, dtypes, real datasets, docs (fixes to the library)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import backprop as bp


# -- a float64 input beyond float32's range is refused at the model's cast ------------------
def test_forward_refuses_finite_float64_values_beyond_float32_instead_of_nan():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    with pytest.raises(ValueError, match=r"Sequential: expected input within the float32 "
                                         r"range .* 1 finite value\(s\) beyond it"):
        model(np.array([[1e39, 0.0, 0.0], [1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="expected input within the float32 range"):
        model.forward(np.full((2, 3), -1e300), training=True)


def test_forward_keeps_given_nan_and_inf_and_casts_in_range_float64():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    x = np.array([[np.nan, 1.0, 1.0], [np.inf, 1.0, 1.0], [1e30, 1.0, 1.0]])
    y = model(x)
    assert y.dtype == np.float32
    assert np.isnan(y[0]).all() and not np.isfinite(y[1]).any() and np.isfinite(y[2]).all()
    np.testing.assert_array_equal(y[2], model(x[2:].astype(np.float32))[0])


def test_backward_refuses_a_float64_dy_beyond_float32():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    model.forward(np.ones((2, 3), np.float32), training=True)
    with pytest.raises(ValueError, match="expected dy within the float32 range"):
        model.backward(np.full((2, 2), 1e40))


def test_backward_refuses_a_non_boolean_input_grad_as_forward_refuses_training():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    model.forward(np.ones((2, 3), np.float32), training=True)
    with pytest.raises(TypeError, match="Sequential.backward: expected input_grad to be "
                                        "True or False, got int 0"):
        model.backward(np.ones((2, 2), np.float32), input_grad=0)
    assert model.backward(np.ones((2, 2), np.float32), input_grad=np.bool_(False)) is None


# -- a setting assigned later as a NumPy float stays a Python float (NEP 50) ----------------
SETTINGS = [
    (lambda: bp.BatchNorm(3), "eps", (4, 3)),
    (lambda: bp.InstanceNorm1D(3, track_running_stats=True), "eps", (2, 3, 5)),
    (lambda: bp.Hardtanh(), "max_val", (4, 3)),
    (lambda: bp.ReLU6(), "max_val", (4, 3)),
    (lambda: bp.Softshrink(), "lambd", (4, 3)),
    (lambda: bp.Softplus(beta=2.0), "beta", (4, 3)),
    (lambda: bp.LocalResponseNorm(2), "alpha", (2, 3, 4, 4)),
    (lambda: bp.RMSNorm(3), "eps", (4, 3)),
]


@pytest.mark.parametrize("make, name, shape", SETTINGS,
                         ids=[f"{make().__class__.__name__}.{n}" for make, n, _ in SETTINGS])
@pytest.mark.parametrize("value", [np.float64(1e-3), np.array(1e-3)], ids=["scalar", "0-d"])
def test_a_numpy_float_setting_keeps_a_float32_layer_float32(make, name, shape, value):
    layer = make()
    setattr(layer, name, value)  # (RMSNorm's eps starts as None: its forward reads float())
    assert type(getattr(layer, name)) is float or isinstance(layer, bp.RMSNorm)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert (y.dtype, dx.dtype, layer.forward(x).dtype) == (np.float32,) * 3


def test_a_numpy_float_setting_of_a_loss_keeps_its_gradient_float32():
    loss = bp.PoissonNLLLoss(log_input=False)
    loss.eps = np.float64(1e-6)
    out = np.abs(np.random.default_rng(0).standard_normal((4, 3))).astype(np.float32)
    loss.forward(out, np.ones((4, 3), np.float32))
    assert type(loss.eps) is float and loss.backward().dtype == np.float32
    margin = bp.MultiMarginLoss(reduction="none")
    margin.margin = np.float64(0.5)
    assert margin.forward(out, np.array([0, 1, 2, 0])).dtype == np.float32


def test_only_float_settings_are_turned_into_python_floats():
    layer = bp.Dense(3, 2, rng=0)
    layer.note = np.float32(0.5)  # an attribute of one's own that was never a float
    assert type(layer.note) is np.float32


# -- losses keep the caller's np.seterr(all="raise"), as layers do -------------------------
def test_losses_keep_a_raise_setting_and_stay_quiet_by_default():
    out = np.full((2, 3), 100.0, np.float32)
    target = np.ones((2, 3), np.float32)
    with np.errstate(all="raise"), pytest.raises(FloatingPointError, match="overflow"):
        bp.PoissonNLLLoss().forward(out, target)
    with np.errstate(all="raise"), pytest.raises(FloatingPointError, match="overflow"):
        bp.MeanSquaredError().forward(np.full((2, 3), 1e30, np.float32), target)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bp.PoissonNLLLoss().forward(out, target) == np.inf


# -- scikit-learn's and Keras' data and metric names get ours ------------------------------
@pytest.mark.parametrize("where, name, ours", [
    (bp.data, "StandardScaler", "bp.data.Standardizer()"),
    (bp, "StandardScaler", "bp.data.standardize(x_train, x_test)"),
    (bp.data, "to_categorical", "bp.data.one_hot(y, num_classes)"),
    (bp, "one_hot", "bp.data.one_hot"),
    (bp, "train_test_split", "bp.data.train_test_split(x, y"),
    (bp.datasets, "train_test_split", "bp.data.train_test_split"),
    (bp.datasets, "load_digits", "bp.datasets.digits()"),
    (bp.metrics, "f1_score", "bp.metrics.f1 (fit(metrics=['f1']))"),
    (bp.metrics, "r2_score", "bp.metrics.r2"),
    (bp.metrics, "accuracy_score", "bp.metrics.accuracy"),
    (bp, "to_torch", "bp.from_torch("),
])
def test_data_and_metric_names_of_other_libraries_name_ours(where, name, ours):
    with pytest.raises(AttributeError, match=f"has no attribute '{name}'") as info:
        getattr(where, name)
    assert ours in str(info.value)


def test_the_named_helpers_exist_as_the_hints_say():
    x = np.random.default_rng(0).standard_normal((10, 3))
    y = np.arange(10) % 2
    a, b = bp.data.standardize(x[:6], x[6:])
    assert abs(a.mean(0)).max() < 1e-6 and b.shape == (4, 3)
    assert bp.data.one_hot(y, 2).shape == (10, 2)
    parts = bp.data.train_test_split(x, y, test_size=0.2, stratify=True, rng=0)
    assert [p.shape[0] for p in parts] == [8, 2, 8, 2]
    assert bp.metrics.f1(y, np.eye(2)[y]) == 1.0
    assert callable(bp.datasets.digits)
    z = bp.data.Standardizer().fit(x[:6]).transform(x[6:])
    np.testing.assert_allclose(z, b)


def test_losses_that_clamp_or_mask_log_zero_do_not_raise_under_a_raise_setting():
    # a saturated float32 sigmoid gives exactly 0 or 1; a one-hot target has zeros: the loss
    # is finite (PyTorch: log clamped at -100; xlogy's 0 · log 0 = 0), so nothing to raise
    with np.errstate(all="raise"):
        bce = bp.BCELoss().forward(np.array([[0.0, 1.0, 0.5]], np.float32),
                                   np.array([[1.0, 0.0, 0.0]], np.float32))
        kl = bp.KLDivLoss(reduction="batchmean").forward(
            np.log(np.full((1, 5), 0.2, np.float32)), np.eye(5, dtype=np.float32)[:1])
    assert bce == pytest.approx((100 + 100 + np.log(2)) / 3, rel=1e-6)
    assert kl == pytest.approx(np.log(5), rel=1e-6)
