"""LogSigmoid, Tanhshrink, Softshrink, Hardshrink, Threshold, Softmin and GLU: PyTorch's values
and gradients (kinks, NaN, ±inf, large inputs), configuration, errors and saving."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp

DTYPES = [np.float32, np.float64]
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])

# name, ours (dtype -> layer), theirs (torch.nn -> module)
CASES = [
    ("LogSigmoid", lambda dt: bp.LogSigmoid(dtype=dt), lambda nn: nn.LogSigmoid()),
    ("Tanhshrink", lambda dt: bp.Tanhshrink(dtype=dt), lambda nn: nn.Tanhshrink()),
    ("Softshrink", lambda dt: bp.Softshrink(dtype=dt), lambda nn: nn.Softshrink()),
    ("Softshrink(0.3)", lambda dt: bp.Softshrink(0.3, dtype=dt), lambda nn: nn.Softshrink(0.3)),
    ("Softshrink(0)", lambda dt: bp.Softshrink(0.0, dtype=dt), lambda nn: nn.Softshrink(0.0)),
    ("Hardshrink", lambda dt: bp.Hardshrink(dtype=dt), lambda nn: nn.Hardshrink()),
    ("Hardshrink(0.3)", lambda dt: bp.Hardshrink(0.3, dtype=dt), lambda nn: nn.Hardshrink(0.3)),
    ("Hardshrink(-1)", lambda dt: bp.Hardshrink(-1.0, dtype=dt), lambda nn: nn.Hardshrink(-1.0)),
    ("Threshold(0.3, -2)", lambda dt: bp.Threshold(0.3, -2.0, dtype=dt),
     lambda nn: nn.Threshold(0.3, -2.0)),
    ("Threshold(-1, 20)", lambda dt: bp.Threshold(-1.0, 20.0, dtype=dt),
     lambda nn: nn.Threshold(-1.0, 20.0)),
    ("Softmin", lambda dt: bp.Softmin(dtype=dt), lambda nn: nn.Softmin(-1)),
]
cases = pytest.mark.parametrize("name, ours, theirs", CASES, ids=[c[0] for c in CASES])
KINKS = [0.0, 0.5, -0.5, 0.3, -0.3, 1.0, -1.0]


def inputs(dtype, seed=0) -> np.ndarray:
    """Kinks exactly and one float either side, ±80, ±1e4, the float max, ±inf, NaN, ±0, then
    normal draws of scale 4: 4 x 64 values (PyTorch's vectorised loop on every element)."""
    big = np.finfo(dtype).max
    special = [-np.inf, -big, -1e4, -80.0, -20.0, 20.0, 80.0, 1e4, big, np.inf, np.nan, -0.0]
    for k in np.array(KINKS, dtype):
        special += [k, np.nextafter(k, dtype(-np.inf)), np.nextafter(k, dtype(np.inf))]
    x = np.random.default_rng(seed).standard_normal(256) * 4
    x[:len(special)] = special
    return x.astype(dtype).reshape(4, 64)


def forward_backward(layer, x, dy):
    y = layer.forward(x, training=True)
    return y, layer.backward(dy)


def torch_forward_backward(torch, module, x, dy):
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy()


def tol(dtype):
    return dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@cases
@dtypes
def test_values_and_gradients_match_torch_at_kinks_nan_inf_and_large_inputs(
        name, ours, theirs, dtype):
    torch = pytest.importorskip("torch")
    x = inputs(dtype)
    if name == "Softmin":  # one special value per row: a NaN or -inf makes the whole row NaN
        x = x.T.copy()
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    x_before = x.copy()
    y, dx = forward_backward(ours(dtype), x, dy)  # filterwarnings=error: no overflow
    y_t, dx_t = torch_forward_backward(torch, theirs(torch.nn), x, dy)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_allclose(y, y_t, **tol(dtype))  # NaN where torch has NaN, inf where inf
    np.testing.assert_allclose(dx, dx_t, **tol(dtype))
    zero = y_t == 0  # -0.0 where PyTorch gives -0.0
    np.testing.assert_array_equal(np.signbit(y[zero]), np.signbit(y_t[zero]))


@cases
@dtypes
def test_random_inputs_match_torch_in_any_shape(name, ours, theirs, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 3, 4, 8)) * 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, dx = forward_backward(ours(dtype), x, dy)
    y_t, dx_t = torch_forward_backward(torch, theirs(torch.nn), x, dy)
    np.testing.assert_allclose(y, y_t, **tol(dtype))
    np.testing.assert_allclose(dx, dx_t, **tol(dtype))


AXES = [1, 2, 3, -1, -2, -3]


@dtypes
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("cls", ["Softmin", "GLU"])
def test_softmin_and_glu_match_torch_over_any_axis(cls, axis, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 4, 6, 2)) * 5).astype(dtype)
    layer = getattr(bp, cls)(axis, dtype=dtype)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    y_t, dx_t = torch_forward_backward(torch, getattr(torch.nn, cls)(axis), x, dy)
    assert y.shape == y_t.shape and y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, y_t, **tol(dtype))
    np.testing.assert_allclose(dx, dx_t, **tol(dtype))


@dtypes
def test_softmin_and_glu_match_torch_on_nan_inf_and_huge_values(dtype):
    torch = pytest.importorskip("torch")
    big = np.finfo(dtype).max
    rows = [[np.nan, 0.0], [np.inf, 0.0], [-np.inf, 0.0], [np.inf, np.inf], [1e4, -1e4],
            [big, -big], [-0.0, 0.0], [80.0, -80.0]]
    x = np.random.default_rng(4).standard_normal((len(rows), 64)).astype(dtype)
    for i, row in enumerate(rows):
        x[i, :2] = row
        x[i, 32:34] = row[::-1]  # GLU: the same values as gates
    dy = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
    y, dx = forward_backward(bp.Softmin(dtype=dtype), x, dy)
    y_t, dx_t = torch_forward_backward(torch, torch.nn.Softmin(-1), x, dy)
    np.testing.assert_allclose(y, y_t, **tol(dtype))
    np.testing.assert_allclose(dx, dx_t, **tol(dtype))
    assert np.isnan(y[[0, 2]]).all() and y[1, 0] == y[3, 0] == 0 and np.isfinite(y[3:]).all()
    y, dx = forward_backward(bp.GLU(dtype=dtype), x, dy[:, :32])
    y_t, dx_t = torch_forward_backward(torch, torch.nn.GLU(), x, dy[:, :32])
    np.testing.assert_allclose(y, y_t, **tol(dtype))
    np.testing.assert_allclose(dx, dx_t, **tol(dtype))


# -- the same semantics, stated without PyTorch ----------------------------------------------

nan, inf = np.nan, np.inf
KINK_CASES = [
    # name, layer, x, y, f′: PyTorch's side at each breakpoint, NaN and ±inf
    ("Softshrink", bp.Softshrink, [0.5, -0.5, -0.3, 0.7, nan, -inf], [0, 0, 0, 0.2, nan, -inf],
     [0, 0, 0, 1, 0, 1]),
    ("Hardshrink", bp.Hardshrink, [0.5, -0.5, -0.3, 0.7, nan, -inf], [0, 0, 0, 0.7, nan, -inf],
     [0, 0, 0, 1, 0, 1]),
    ("Threshold", lambda dtype: bp.Threshold(0.5, -2.0, dtype=dtype),
     [0.5, 0.7, -0.0, nan, -inf, inf], [-2, 0.7, -2, nan, -2, inf], [0, 1, 0, 1, 0, 1]),
    ("LogSigmoid", bp.LogSigmoid, [0.0, -1e4, 1e4, nan, -inf, inf],
     [-math.log(2), -1e4, 0, nan, -inf, 0], [0.5, 1, 0, nan, 1, 0]),
    ("Tanhshrink", bp.Tanhshrink, [-0.0, 1e4, nan, -inf], [0, 1e4 - 1, nan, -inf],
     [0, 1, nan, 1]),
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
    np.testing.assert_array_equal(np.signbit(got_y[0][want == 0]), np.signbit(want[want == 0]))
    np.testing.assert_allclose(got_slope[0], np.array(slope, dtype), rtol=rtol)


@dtypes
def test_log_sigmoid_is_minus_softplus_of_minus_x_and_silent_for_large_inputs(dtype):
    x = np.array([[-1e4, -80.0, -1.0, 1.0, 80.0, 1e4]], dtype)
    layer = bp.LogSigmoid(dtype=dtype)
    y = layer.forward(x, training=True)
    want = [-1e4, -80.0, -math.log1p(math.e), -math.log1p(1 / math.e), -math.exp(-80), -0.0]
    np.testing.assert_allclose(y[0], want, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(layer.backward(np.ones_like(x))[0],
                               [1, 1, 1 / (1 + 1 / math.e), 1 / (1 + math.e), math.exp(-80), 0],
                               rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-37)


def test_glu_gradient_is_gate_and_gated_sigmoid_derivative():
    rng = np.random.default_rng(6)
    x, dy = rng.standard_normal((3, 8)), rng.standard_normal((3, 4))
    layer = bp.GLU(dtype=np.float64)
    a, b = x[:, :4], x[:, 4:]
    s = 1 / (1 + np.exp(-b))
    np.testing.assert_allclose(layer.forward(x, training=True), a * s, rtol=1e-14)
    np.testing.assert_allclose(layer.backward(dy), np.hstack([dy * s, dy * a * s * (1 - s)]),
                               rtol=1e-13)


# -- configuration and errors --------------------------------------------------------------


@pytest.mark.parametrize("layer, text, config", [
    (bp.LogSigmoid(), "LogSigmoid()", {"dtype": "float32"}),
    (bp.Tanhshrink(dtype=np.float64), "Tanhshrink(dtype='float64')", {"dtype": "float64"}),
    (bp.Softshrink(), "Softshrink()", {"lambd": 0.5, "dtype": "float32"}),
    (bp.Softshrink(1), "Softshrink(lambd=1.0)", {"lambd": 1.0, "dtype": "float32"}),
    (bp.Hardshrink(0.2), "Hardshrink(lambd=0.2)", {"lambd": 0.2, "dtype": "float32"}),
    (bp.Threshold(0.1, 20), "Threshold(0.1, 20.0)",
     {"threshold": 0.1, "value": 20.0, "dtype": "float32"}),
    (bp.Softmin(), "Softmin()", {"axis": -1, "dtype": "float32"}),
    (bp.Softmin(2, dtype=np.float64), "Softmin(axis=2, dtype='float64')",
     {"axis": 2, "dtype": "float64"}),
    (bp.GLU(1), "GLU(axis=1)", {"axis": 1, "dtype": "float32"}),
], ids=repr)
def test_repr_and_config_show_the_non_default_arguments(layer, text, config):
    assert repr(layer) == text
    assert layer.get_config() == config
    assert repr(type(layer)(**config)) == text
    assert not layer.params and bp.formulas(layer).startswith("Forward:")
    assert "Backward:" in bp.formulas(layer)


def test_defaults_are_pytorchs():
    assert bp.Softshrink().lambd == bp.Hardshrink().lambd == 0.5
    assert bp.Softmin().axis == bp.GLU().axis == -1
    with pytest.raises(TypeError, match="threshold"):
        bp.Threshold()  # both required, as in PyTorch


F32_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("make, error, match", [
    (lambda: bp.Softshrink(-0.1), ValueError, r"^Softshrink: expected lambd in \[0.0, 3.4"),
    (lambda: bp.Softshrink(math.inf), ValueError, r"^Softshrink: expected lambd in"),
    (lambda: bp.Softshrink("0.5"), TypeError, r"^Softshrink: expected lambd to be a number"),
    (lambda: bp.Hardshrink(math.nan), ValueError, r"^Hardshrink: expected lambd in"),
    (lambda: bp.Hardshrink(2 * F32_MAX), ValueError, r"^Hardshrink: expected lambd in"),
    (lambda: bp.Threshold(math.inf, 0.0), ValueError, r"^Threshold: expected threshold in"),
    (lambda: bp.Threshold(0.0, math.nan), ValueError, r"^Threshold: expected value in"),
    (lambda: bp.Threshold(0.0, None), TypeError, r"^Threshold: expected value to be a number"),
    (lambda: bp.GLU(0), ValueError, r"^GLU: expected an axis after the batch axis 0"),
    (lambda: bp.GLU(1.0), TypeError, r"^GLU: expected axis to be an int, got 1.0$"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("axis", [0, 1.0, True, "1", None, np.int64(0)])
def test_softmin_refuses_axes_as_softmax_does(axis):
    with pytest.raises((TypeError, ValueError)) as theirs:
        bp.Softmax(axis)
    with pytest.raises(theirs.type) as ours:
        bp.Softmin(axis)
    assert str(ours.value) == str(theirs.value).replace("Softmax", "Softmin", 1)


@pytest.mark.parametrize("axis, shape", [(2, (4, 3)), (-2, (4, 3)), (-1, (4,)), (4, (2, 3, 4))])
def test_softmin_and_glu_refuse_the_batch_axis_or_a_missing_one_in_forward(axis, shape):
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError) as theirs:
        bp.Softmax(axis).forward(x)
    for cls in (bp.Softmin, bp.GLU):
        with pytest.raises(ValueError) as ours:
            cls(axis).forward(x)
        assert str(ours.value) == str(theirs.value).replace("Softmax", cls.__name__, 1)


def test_glu_refuses_an_odd_size_as_torch_does():
    with pytest.raises(ValueError, match=r"^GLU\(axis=1\): expected an even size along axis 1 "
                                         r"\(it is halved\), got input of shape \(2, 5, 4\)$"):
        bp.GLU(1).forward(np.zeros((2, 5, 4), np.float32))


def test_threshold_takes_inplace_with_a_hint_and_softmin_glu_point_dim_at_axis():
    with pytest.raises(TypeError, match=r"^Threshold\(\) got an unexpected keyword argument "
                                        r"'inplace'; backprop's layers never overwrite"):
        bp.Threshold(0.1, 20.0, inplace=True)
    for cls in (bp.Softmin, bp.GLU):
        with pytest.raises(TypeError, match=r"'dim'; backprop calls it axis"):
            cls(dim=1)


# -- in models: summary, saving ----------------------------------------------------------------


def every_new_layer(dtype) -> bp.Sequential:
    return bp.Sequential([
        bp.Dense(4, 12, dtype=dtype, rng=0), bp.LogSigmoid(dtype=dtype),
        bp.Tanhshrink(dtype=dtype), bp.Softshrink(0.01, dtype=dtype),
        bp.Hardshrink(0.001, dtype=dtype), bp.Threshold(-0.2, 0.1, dtype=dtype),
        bp.GLU(dtype=dtype), bp.Reshape((2, 3), dtype=dtype), bp.Softmin(1, dtype=dtype),
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
    for name in ("LogSigmoid()", "Tanhshrink()", "Softshrink(lambd=0.01)",
                 "Hardshrink(lambd=0.001)", "Threshold(-0.2, 0.1)", "GLU()", "Softmin(axis=1)"):
        assert name in text


def test_a_model_of_them_trains_with_finite_gradients():
    model = every_new_layer(np.float64)
    x = np.random.default_rng(9).standard_normal((5, 4))
    loss = bp.MeanSquaredError()
    loss.forward(model.forward(x, training=True), np.full((5, 2, 3), 0.1))
    dx = model.backward(loss.backward())
    assert np.isfinite(dx).all() and all(np.isfinite(g).all() for g in model.grads.values())
    assert np.abs(dx).max() > 0
