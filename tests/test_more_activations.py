"""ReLU6, Hardtanh, Hardsigmoid, Hardswish, SELU, CELU, Mish, Softsign and LogSoftmax: PyTorch's
values and gradients (kinks, NaN, ±inf, large inputs), configuration, errors and saving."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp

DTYPES = [np.float32, np.float64]

# name, ours (dtype -> layer), theirs (torch.nn -> module)
CASES = [
    ("ReLU6", lambda dt: bp.ReLU6(dtype=dt), lambda nn: nn.ReLU6()),
    ("Hardtanh", lambda dt: bp.Hardtanh(dtype=dt), lambda nn: nn.Hardtanh()),
    ("Hardtanh(-2, 0.5)", lambda dt: bp.Hardtanh(-2.0, 0.5, dtype=dt),
     lambda nn: nn.Hardtanh(-2.0, 0.5)),
    ("Hardtanh(-0.1, 0.3)", lambda dt: bp.Hardtanh(-0.1, 0.3, dtype=dt),  # ends not exact in
     lambda nn: nn.Hardtanh(-0.1, 0.3)),                                   # float32
    ("Hardsigmoid", lambda dt: bp.Hardsigmoid(dtype=dt), lambda nn: nn.Hardsigmoid()),
    ("Hardswish", lambda dt: bp.Hardswish(dtype=dt), lambda nn: nn.Hardswish()),
    ("SELU", lambda dt: bp.SELU(dtype=dt), lambda nn: nn.SELU()),
    ("CELU", lambda dt: bp.CELU(dtype=dt), lambda nn: nn.CELU()),
    ("CELU(0.5)", lambda dt: bp.CELU(0.5, dtype=dt), lambda nn: nn.CELU(0.5)),
    ("CELU(-1.5)", lambda dt: bp.CELU(-1.5, dtype=dt), lambda nn: nn.CELU(-1.5)),
    ("Mish", lambda dt: bp.Mish(dtype=dt), lambda nn: nn.Mish()),
    ("Softsign", lambda dt: bp.Softsign(dtype=dt), lambda nn: nn.Softsign()),
]
cases = pytest.mark.parametrize("name, ours, theirs", CASES, ids=[c[0] for c in CASES])
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])

KINKS = [0.0, 6.0, -1.0, 1.0, -2.0, 0.5, -0.1, 0.3, -3.0, 3.0]


def special_values(dtype) -> np.ndarray:
    """The breakpoints exactly and one float either side, large magnitudes, ±inf, NaN, ±0."""
    big = np.finfo(dtype).max
    values = [-np.inf, -big, -1e30, -1e4, -100.0, -80.0, -20.0, 20.0, 80.0, 100.0, 1e4, 1e30,
              big, np.inf, np.nan, -0.0, 0.0, 1e-30, -1e-30]
    for k in np.array(KINKS, dtype):
        values += [k, np.nextafter(k, dtype(-np.inf)), np.nextafter(k, dtype(np.inf))]
    return np.array(values, dtype)


def inputs(dtype, seed=0) -> np.ndarray:
    """The special values, then normal draws of scale 4: 4 x 64 values in all, a multiple of
    the vector width, so that PyTorch runs its vectorised loop on every element (the scalar
    loop of a tail treats NaN differently, see backprop.layers.piecewise)."""
    x = np.random.default_rng(seed).standard_normal(256) * 4
    special = special_values(dtype)
    x[:special.size] = special
    return x.astype(dtype).reshape(4, 64)


def ours_forward_backward(layer, x, dy):
    y = layer.forward(x, training=True)
    return y, layer.backward(dy)


def torch_forward_backward(torch, module, x, dy):
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy()


def tolerances(name, dtype):
    if dtype == np.float32:
        return dict(rtol=2e-6, atol=1e-6)
    if name == "Hardsigmoid":  # PyTorch's float64 backward multiplies by float32(1/6)
        return dict(rtol=1e-7, atol=1e-14)
    return dict(rtol=1e-12, atol=1e-14)


# -- against PyTorch -----------------------------------------------------------------------


@cases
@dtypes
def test_values_and_gradients_match_torch_at_kinks_nan_inf_and_large_inputs(
        name, ours, theirs, dtype):
    torch = pytest.importorskip("torch")
    x = inputs(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    x_before = x.copy()
    y, dx = ours_forward_backward(ours(dtype), x, dy)  # filterwarnings=error: no overflow
    y_t, dx_t = torch_forward_backward(torch, theirs(torch.nn), x, dy)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(x, x_before)
    tol = tolerances(name, dtype)
    np.testing.assert_allclose(y, y_t, **tol)  # NaN where torch has NaN, inf where inf
    np.testing.assert_allclose(dx, dx_t, **tol)
    zero = y_t == 0  # -0.0 where PyTorch gives -0.0
    np.testing.assert_array_equal(np.signbit(y[zero]), np.signbit(y_t[zero]))


@cases
@dtypes
def test_random_inputs_match_torch_in_any_shape(name, ours, theirs, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 3, 4, 8)) * 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, dx = ours_forward_backward(ours(dtype), x, dy)
    y_t, dx_t = torch_forward_backward(torch, theirs(torch.nn), x, dy)
    np.testing.assert_allclose(y, y_t, **tolerances(name, dtype))
    np.testing.assert_allclose(dx, dx_t, **tolerances(name, dtype))


def test_every_case_here_is_a_new_layer_with_a_torch_twin():
    assert {type(make(np.float32)).__name__ for _, make, _ in CASES} == {
        "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish", "SELU", "CELU", "Mish", "Softsign"}


AXES = [1, 2, 3, -1, -2, -3]


@dtypes
@pytest.mark.parametrize("axis", AXES)
def test_log_softmax_matches_torch_over_any_axis(axis, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3, 4, 5)) * 5).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, dx = ours_forward_backward(bp.LogSoftmax(axis, dtype=dtype), x, dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.LogSoftmax(dim=axis)(xt)
    yt.backward(torch.tensor(dy))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)


@dtypes
def test_log_softmax_matches_torch_on_rows_with_nan_inf_and_huge_logits(dtype):
    torch = pytest.importorskip("torch")
    big = np.finfo(dtype).max
    rows = [[np.nan, 0.0], [np.inf, 0.0], [np.inf, np.inf], [-np.inf, 0.0], [-np.inf, -np.inf],
            [1e4, -1e4], [big, -big], [-big, -big], [-0.0, 0.0]]
    x = np.random.default_rng(4).standard_normal((len(rows), 64)).astype(dtype)
    for i, row in enumerate(rows):
        x[i, :2] = row
    x[4] = -np.inf  # a row of -inf only
    dy = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
    y, dx = ours_forward_backward(bp.LogSoftmax(dtype=dtype), x, dy)
    y_t, dx_t = torch_forward_backward(torch, torch.nn.LogSoftmax(dim=-1), x, dy)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, y_t, **tol)
    np.testing.assert_allclose(dx, dx_t, **tol)
    assert np.isnan(y[[0, 1, 2, 4]]).all() and np.isfinite(y[[5, 8]]).all()
    assert y[3, 0] == -np.inf and dx[3, 0] == dy[3, 0]  # -inf passes dy, as PyTorch


# -- the same semantics, stated without PyTorch ----------------------------------------------

SELU_SLOPE_AT_0 = bp.SELU.scale * bp.SELU.alpha
# NumPy before 2.0 clips -0.0 to +0.0 (ReLU6 and Hardtanh clip): the same value, another sign
OLD_CLIP = np.lib.NumpyVersion(np.__version__) < "2.0.0"
nan, inf = np.nan, np.inf
KINK_CASES = [
    # name, layer, x, y, dy/dx (f′): PyTorch's side at each breakpoint, NaN and ±inf
    ("ReLU6", bp.ReLU6, [0.0, 6.0, -0.0, 3.0, nan, -inf, inf], [0, 6, -0.0, 3, nan, 0, 6],
     [0, 0, 0, 1, 0, 0, 0]),
    ("Hardtanh", bp.Hardtanh, [-1.0, 1.0, -0.0, 0.5, nan, -inf], [-1, 1, -0.0, 0.5, nan, -1],
     [0, 0, 1, 1, 0, 0]),
    ("Hardsigmoid", bp.Hardsigmoid, [-3.0, 3.0, 0.0, nan, -inf, inf], [0, 1, 0.5, nan, 0, 1],
     [0, 0, 1 / 6, 0, 0, 0]),
    ("Hardswish", bp.Hardswish, [-3.0, 3.0, -0.0, 1.5, nan, -inf, inf],
     [-0.0, 3, -0.0, 1.125, nan, nan, inf], [0, 1, 0.5, 1.0, nan, 0, 1]),
    ("SELU", bp.SELU, [0.0, -0.0, nan, -inf, inf], [0, -0.0, nan, -SELU_SLOPE_AT_0, inf],
     [SELU_SLOPE_AT_0, SELU_SLOPE_AT_0, nan, 0, bp.SELU.scale]),
    ("CELU", lambda dtype: bp.CELU(0.5, dtype=dtype), [0.0, -0.0, nan, -inf, inf],
     [0, -0.0, nan, -0.5, inf], [1, 1, nan, 0, 1]),
    ("Mish", bp.Mish, [0.0, -0.0, -1e4, 1e4, nan, -inf, inf], [0, -0.0, -0.0, 1e4, nan, nan, inf],
     [0.6, 0.6, 0, 1, nan, nan, nan]),
    ("Softsign", bp.Softsign, [0.0, -0.0, 1.0, nan, -inf, inf], [0, -0.0, 0.5, nan, nan, nan],
     [1, 1, 0.25, nan, nan, nan]),
]


@dtypes
@pytest.mark.parametrize("name, make, x, y, slope", KINK_CASES, ids=[c[0] for c in KINK_CASES])
def test_kinks_nan_and_inf_take_pytorchs_side(name, make, x, y, slope, dtype):
    layer = make(dtype=dtype)
    x = np.array([x], dtype)
    got_y = layer.forward(x, training=True)
    got_slope = layer.backward(np.ones_like(x))
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    want = np.array(y, dtype)
    np.testing.assert_allclose(got_y[0], want, rtol=rtol)
    if not (OLD_CLIP and name in ("ReLU6", "Hardtanh")):
        np.testing.assert_array_equal(np.signbit(got_y[0][want == 0]), np.signbit(want[want == 0]))
    np.testing.assert_allclose(got_slope[0], np.array(slope, dtype), rtol=rtol)


@dtypes
def test_exp_based_layers_stay_exact_and_silent_for_large_inputs(dtype):
    x = np.array([[-1e4, -80.0, 80.0, 1e4]], dtype)
    for layer, y, slope in [
        (bp.SELU(dtype=dtype), [-SELU_SLOPE_AT_0, -SELU_SLOPE_AT_0, 80 * bp.SELU.scale,
                                1e4 * bp.SELU.scale],
         [0, SELU_SLOPE_AT_0 * math.exp(-80), bp.SELU.scale, bp.SELU.scale]),
        (bp.CELU(2.0, dtype=dtype), [-2, 2 * math.expm1(-40), 80, 1e4],
         [0, math.exp(-40), 1, 1]),
        (bp.Mish(dtype=dtype), [-0.0, -80 * math.exp(-80), 80, 1e4],
         [0, math.exp(-80) * -79, 1, 1]),
        (bp.Softsign(dtype=dtype), [-1e4 / 10001, -80 / 81, 80 / 81, 1e4 / 10001],
         [10001.0**-2, 81.0**-2, 81.0**-2, 10001.0**-2]),  # exact, where torch's cancels
    ]:
        got = layer.forward(x, training=True)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got[0], y, rtol=rtol, err_msg=repr(layer))
        np.testing.assert_allclose(layer.backward(np.ones_like(x))[0], slope, rtol=rtol,
                                   atol=1e-37, err_msg=repr(layer))


def test_log_softmax_gradient_is_dy_minus_softmax_times_row_sum():
    x = np.random.default_rng(6).standard_normal((3, 5))
    dy = np.random.default_rng(7).standard_normal((3, 5))
    layer = bp.LogSoftmax(dtype=np.float64)
    y = layer.forward(x, training=True)
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    np.testing.assert_allclose(y, np.log(p), rtol=1e-13)
    np.testing.assert_allclose(layer.backward(dy), dy - p * dy.sum(1, keepdims=True),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.exp(bp.LogSoftmax(dtype=np.float64).forward(x)),
                               bp.Softmax(dtype=np.float64).forward(x), rtol=1e-13)


# -- configuration and errors --------------------------------------------------------------


@pytest.mark.parametrize("layer, text, config", [
    (bp.ReLU6(), "ReLU6()", {"dtype": "float32"}),
    (bp.Hardtanh(), "Hardtanh()", {"min_val": -1.0, "max_val": 1.0, "dtype": "float32"}),
    (bp.Hardtanh(-2, 0.5, dtype=np.float64), "Hardtanh(min_val=-2.0, max_val=0.5, "
     "dtype='float64')", {"min_val": -2.0, "max_val": 0.5, "dtype": "float64"}),
    (bp.Hardsigmoid(), "Hardsigmoid()", {"dtype": "float32"}),
    (bp.Hardswish(dtype=np.float64), "Hardswish(dtype='float64')", {"dtype": "float64"}),
    (bp.SELU(), "SELU()", {"dtype": "float32"}),
    (bp.CELU(), "CELU()", {"alpha": 1.0, "dtype": "float32"}),
    (bp.CELU(-1.5), "CELU(alpha=-1.5)", {"alpha": -1.5, "dtype": "float32"}),
    (bp.Mish(), "Mish()", {"dtype": "float32"}),
    (bp.Softsign(), "Softsign()", {"dtype": "float32"}),
    (bp.LogSoftmax(), "LogSoftmax()", {"axis": -1, "dtype": "float32"}),
    (bp.LogSoftmax(2, dtype=np.float64), "LogSoftmax(axis=2, dtype='float64')",
     {"axis": 2, "dtype": "float64"}),
], ids=repr)
def test_repr_and_config_show_the_non_default_arguments(layer, text, config):
    assert repr(layer) == text
    assert layer.get_config() == config
    assert repr(type(layer)(**config)) == text
    assert not layer.params and bp.formulas(layer).startswith("Forward:")
    assert "Backward:" in bp.formulas(layer)


def test_defaults_are_pytorchs():
    assert (bp.Hardtanh().min_val, bp.Hardtanh().max_val) == (-1.0, 1.0)
    assert (bp.ReLU6().min_val, bp.ReLU6().max_val) == (0.0, 6.0)
    assert bp.CELU().alpha == 1.0 and bp.LogSoftmax().axis == -1
    assert (bp.SELU.alpha, bp.SELU.scale) == (1.6732632423543772, 1.0507009873554805)
    assert isinstance(bp.ReLU6(), bp.Hardtanh)  # as in PyTorch


@pytest.mark.parametrize("make, error, match", [
    (lambda: bp.Hardtanh(1.0, 1.0), ValueError,
     r"^Hardtanh: expected max_val greater than min_val, got min_val=1.0, max_val=1.0$"),
    (lambda: bp.Hardtanh(2, 1), ValueError, "expected max_val greater than min_val"),
    (lambda: bp.Hardtanh(float("nan")), ValueError, r"Hardtanh: expected min_val in"),
    (lambda: bp.Hardtanh(max_val=math.inf), ValueError, r"Hardtanh: expected max_val in"),
    (lambda: bp.Hardtanh("-1"), TypeError, "Hardtanh: expected min_val to be a number"),
    (lambda: bp.CELU(0.0), ValueError, r"^CELU: expected a nonzero alpha"),
    (lambda: bp.CELU(math.inf), ValueError, r"CELU: expected alpha in"),
    (lambda: bp.CELU(None), TypeError, "CELU: expected alpha to be a number"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("cls", [bp.ReLU6, bp.Hardtanh, bp.Hardsigmoid, bp.Hardswish, bp.SELU,
                                 bp.CELU, bp.Mish])
def test_inplace_is_refused_with_a_hint(cls):
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\(\) got an unexpected keyword "
                                        r"argument 'inplace'; backprop's layers never overwrite"):
        cls(inplace=True)


@pytest.mark.parametrize("axis", [0, 1.0, True, "1", None, np.int64(0)])
def test_log_softmax_refuses_axes_as_softmax_does(axis):
    with pytest.raises((TypeError, ValueError)) as theirs:
        bp.Softmax(axis)
    with pytest.raises(theirs.type) as ours:
        bp.LogSoftmax(axis)
    assert str(ours.value) == str(theirs.value).replace("Softmax", "LogSoftmax", 1)


@pytest.mark.parametrize("axis, shape", [(2, (4, 3)), (-2, (4, 3)), (-1, (4,)), (4, (2, 3, 4))])
def test_log_softmax_refuses_the_batch_axis_or_a_missing_one_in_forward(axis, shape):
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError) as theirs:
        bp.Softmax(axis).forward(x)
    with pytest.raises(ValueError, match=r"^LogSoftmax\((axis=-?\d)?\): expected an axis "
                                         r"after the batch axis") as ours:
        bp.LogSoftmax(axis).forward(x)
    assert str(ours.value) == str(theirs.value).replace("Softmax", "LogSoftmax", 1)


def test_log_softmax_takes_numpy_integer_axes_and_checks_dtypes():
    assert bp.LogSoftmax(np.int64(1)).axis == 1 and type(bp.LogSoftmax(np.int64(1)).axis) is int
    with pytest.raises(TypeError, match="LogSoftmax"):
        bp.LogSoftmax().forward(np.zeros((2, 3), np.float64))


# -- in models: summary, saving ----------------------------------------------------------------


def every_new_layer(dtype) -> bp.Sequential:
    return bp.Sequential([
        bp.Dense(4, 6, dtype=dtype, rng=0), bp.ReLU6(dtype=dtype),
        bp.Hardtanh(-2.0, 0.5, dtype=dtype), bp.Hardsigmoid(dtype=dtype),
        bp.Dense(6, 6, dtype=dtype, rng=1), bp.Hardswish(dtype=dtype), bp.SELU(dtype=dtype),
        bp.CELU(-1.5, dtype=dtype), bp.Mish(dtype=dtype), bp.Softsign(dtype=dtype),
        bp.Reshape((2, 3), dtype=dtype), bp.LogSoftmax(1, dtype=dtype),
    ])


@dtypes
def test_save_load_round_trip_keeps_config_and_predictions(tmp_path, dtype):
    model = every_new_layer(dtype)
    x = np.random.default_rng(8).standard_normal((5, 4)).astype(dtype) * 3
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model) and loaded.dtype == model.dtype
    assert [type(a) for a in loaded] == [type(b) for b in model]
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_summary_lists_each_layer_with_its_arguments():
    text = str(every_new_layer(np.float32).summary())
    for name in ("ReLU6()", "Hardtanh(min_val=-2.0, max_val=0.5)", "Hardsigmoid()",
                 "Hardswish()", "SELU()", "CELU(alpha=-1.5)", "Mish()", "Softsign()",
                 "LogSoftmax(axis=1)"):
        assert name in text


def test_a_model_of_them_trains_with_finite_gradients():
    model = every_new_layer(np.float64)
    x = np.random.default_rng(9).standard_normal((5, 4))
    loss = bp.MeanSquaredError()
    loss.forward(model.forward(x, training=True), np.full((5, 2, 3), -1.0))
    dx = model.backward(loss.backward())
    assert np.isfinite(dx).all() and all(np.isfinite(g).all() for g in model.grads.values())


def test_log_softmax_points_torch_dim_at_axis():
    with pytest.raises(TypeError, match=r"LogSoftmax\(\) got an unexpected keyword argument "
                                        r"'dim'; backprop calls it axis"):
        bp.LogSoftmax(dim=1)
