"""How the elementwise activations compute: each shortcut against the plain formula it
stands for (bit for bit where it claims to be exact, in ulp where it is not), on wide
grids with NaN, ±inf, ±0 and the floats next to each kink, and against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import backend
from backprop.layers._sums import channel_sum
from backprop.layers.activations import _select
from backprop.layers.piecewise import _hardswish_slope

DTYPES = [np.float32, np.float64]
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])


def grid(dtype, n=20000) -> np.ndarray:
    """Magnitudes from the smallest subnormal to the largest float, both signs, a dense
    stretch of [-30, 30], the kinks used here with two floats either side, and specials."""
    f = np.finfo(dtype)
    mags = np.geomspace(float(f.smallest_subnormal), float(f.max) / 4, n).astype(dtype)
    kinks = np.array([0.0, 3.0, -3.0, 20.0, -20.0, 1.0, -1.0, 0.5, 88.7, -88.7, -103.9, -17.0],
                     dtype)
    near = [np.nextafter(np.nextafter(kinks, dtype(d)), dtype(d)) for d in (np.inf, -np.inf)]
    near += [np.nextafter(kinks, dtype(d)) for d in (np.inf, -np.inf)]
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, f.max, -f.max], dtype)
    x = np.concatenate([special, kinks, *near, mags, -mags,
                        np.linspace(-30, 30, 4 * n + 1).astype(dtype)])
    return x[:x.size - x.size % 16].reshape(-1, 16)


def same_bits(a, b) -> None:
    """Equal values, NaN where NaN, and the same sign on every zero."""
    np.testing.assert_array_equal(a, b)
    zero = np.asarray(b) == 0
    np.testing.assert_array_equal(np.signbit(a[zero]), np.signbit(b[zero]))


def ulps(got: np.ndarray, want64: np.ndarray) -> np.ndarray:
    """|got - want| in units of the float32 spacing at want (0 where want is not finite)."""
    finite = np.isfinite(want64)
    with np.errstate(all="ignore"):  # inf spacing past the float32 max: 0 ulp there
        spacing = np.spacing(np.abs(want64.astype(np.float32))).astype(np.float64)
        return np.where(finite, np.abs(got.astype(np.float64) - want64) / spacing, 0.0)


KEEPS_DERIVATIVE = [
    lambda dt: bp.LeakyReLU(dtype=dt), lambda dt: bp.LeakyReLU(-0.3, dtype=dt),
    lambda dt: bp.ELU(dtype=dt), lambda dt: bp.ELU(0.3, dtype=dt),
    lambda dt: bp.Softplus(dtype=dt), lambda dt: bp.Softplus(2.0, 5.0, dtype=dt),
    lambda dt: bp.Hardswish(dtype=dt), lambda dt: bp.Hardsigmoid(dtype=dt),
    lambda dt: bp.SELU(dtype=dt), lambda dt: bp.CELU(0.5, dtype=dt), lambda dt: bp.Mish(dtype=dt),
    lambda dt: bp.Softsign(dtype=dt), lambda dt: bp.LogSigmoid(dtype=dt),
    lambda dt: bp.Tanhshrink(dtype=dt), lambda dt: bp.Softshrink(dtype=dt),
    lambda dt: bp.Hardshrink(dtype=dt), lambda dt: bp.Threshold(0.1, 2.0, dtype=dt),
]
ALL_ELEMENTWISE = KEEPS_DERIVATIVE + [
    lambda dt: bp.ELU(-1.5, dtype=dt), lambda dt: bp.GELU(dtype=dt),
    lambda dt: bp.GELU("tanh", dtype=dt), lambda dt: bp.SiLU(dtype=dt),
    lambda dt: bp.Sigmoid(dtype=dt), lambda dt: bp.Tanh(dtype=dt),
    lambda dt: bp.PReLU(dtype=dt), lambda dt: bp.CELU(-2.0, dtype=dt),
    lambda dt: bp.Softplus(0.5, -3.0, dtype=dt),
]


@pytest.mark.parametrize("make", KEEPS_DERIVATIVE)
@dtypes
def test_backward_writes_dx_into_the_cached_derivative_and_leaves_dy_alone(make, dtype):
    x = grid(dtype, 500)
    dy = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    dy_before = dy.copy()
    layer = make(dtype)
    with np.errstate(all="ignore"):
        layer.forward(x, training=True)
        d = layer.cache["d"]
        want = d * dy
        dx = layer.backward(dy)
    assert dx is d and dx.dtype == dtype
    same_bits(dx, want)
    same_bits(dy, dy_before)
    assert not layer.has_cache


@pytest.mark.parametrize("make", ALL_ELEMENTWISE)
@dtypes
def test_a_strided_input_gives_the_bits_of_its_contiguous_copy(make, dtype):
    """Buffers reused in place (in-place erf, GELU's and Mish's scratch) and row tricks
    must not depend on the input's layout."""
    base = grid(dtype, 500)
    x = base.reshape(-1, 4, 4)[:, ::-1, :].transpose(0, 2, 1)  # a non-contiguous (N, 4, 4)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    results = []
    for xi in (x, np.ascontiguousarray(x)):
        layer = make(dtype)
        with np.errstate(all="ignore"):
            y = layer.forward(xi, training=True)
            results.append((y, layer.backward(dy)))
    for a, b in zip(*results, strict=True):
        same_bits(a, b)


@dtypes
def test_hardswish_is_pytorchs_select_bit_for_bit(dtype):
    """f′ from trunc(clip(x, -3, 3) / 3), y in its scratch array: PyTorch's formulas."""
    x = grid(dtype)
    with np.errstate(all="ignore"):
        want_y = x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
        want_d = np.where(x <= -3.0, 0.0, np.where(x < 3.0, x / 3.0 + 0.5, 1.0)).astype(dtype)
        want_d[np.isnan(x)] = np.nan  # as PyTorch's vectorised loop
        layer = bp.Hardswish(dtype=dtype)
        y = layer.forward(x, training=True)
        same_bits(layer.forward(x), want_y)
    d = layer.cache["d"].copy()
    same_bits(y, want_y)
    same_bits(d, want_d)
    same_bits(_hardswish_slope(x)[0], want_d)


SELECT_CASES = [(1.0, 0.01), (1.0, -0.3), (1.0, 2.29655446429944), (1.7580993408473766, 1.0507),
                (0.5, 1.0), (-0.0, 1.0), (1.0, 0.0)]


@pytest.mark.parametrize(("a", "b"), SELECT_CASES)
@dtypes
def test_select_is_np_where_bit_for_bit(a, b, dtype):
    t = np.dtype(dtype).type
    mask = np.random.default_rng(2).random((64, 33)) < 0.5
    got = _select(mask.copy(), a, b, dtype)
    assert got.dtype == dtype
    same_bits(got, np.where(mask, t(a), t(b)))


def test_select_cases_take_each_of_its_three_routes():
    t = np.float32
    routes = set()
    for a, b in SELECT_CASES:
        first = t(a - b) + t(b) == t(a)
        second = t(b - a) + t(a) == t(b)
        routes.add("first" if first else "second" if second else "where")
    assert routes == {"first", "second", "where"}


@pytest.mark.parametrize("alpha", [1.0, 0.3, -1.5, 0.0])
@dtypes
def test_elu_matches_torch_on_zeros_nan_and_below_exp_underflow(alpha, dtype):
    """A negative alpha: f′ = alpha·exp(x) is -0.0 where exp(x) is 0, as PyTorch's (it was
    +0.0); NaN passes dy (PyTorch's scalar loop), and -0.0 gives +0.0 as before."""
    torch = pytest.importorskip("torch")
    x = np.array([[-800.0, -200.0, -1e4, -1.0, 0.5, 2.0, -0.0, 0.0]], dtype)
    dy = np.array([[1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0]], dtype)
    layer = bp.ELU(alpha, dtype=dtype)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.elu(xt, alpha)
    yt.backward(torch.tensor(dy))
    tol = dict(rtol=2e-6, atol=0) if dtype == np.float32 else dict(rtol=1e-14, atol=0)
    np.testing.assert_allclose(y[:, :6], yt.detach().numpy()[:, :6], **tol)
    same_bits(y[:, 6:], np.zeros((1, 2), dtype))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    same_bits(dx[dx == 0], xt.grad.numpy()[dx == 0])
    layer.forward(np.array([[np.nan, -np.inf]], dtype), training=True)
    same_bits(layer.backward(np.array([[2.0, 3.0]], dtype)), np.array([[2.0, 3.0 * alpha * 0.0]],
                                                                     dtype))


def test_log1p_residual_makes_log_as_accurate_as_log1p():
    """With an exact log, log(u) + c is log1p(z) to within rounding (float32 and float64);
    with NumPy's float32 log it is within that log's 3.1 ulp."""
    z32 = np.concatenate([[0.0, 1e-45, 1e-30, 6e-8], np.geomspace(1e-12, 4.9e8, 200_000),
                          np.linspace(0, 2, 100_001)]).astype(np.float32)
    u32 = z32 + np.float32(1)
    c32 = backend.log1p_residual(z32, u32)
    want = np.log1p(z32.astype(np.float64))
    exact_log = (np.log(u32.astype(np.float64)) + c32.astype(np.float64)).astype(np.float32)
    assert ulps(exact_log, want).max() <= 1.0
    assert ulps(np.log(u32) + c32, want).max() <= 3.5
    # the reference, for scale: NumPy's own float32 log1p, within 1 ulp on AVX2 machines,
    # 1.83 ulp where NumPy dispatches its AVX-512 loops (a Zen 5 machine)
    assert ulps(np.log1p(z32) - 0 * c32, want).max() <= 2.0
    z64 = np.geomspace(1e-300, 1e15, 100_000)
    c64 = backend.log1p_residual(z64, z64 + 1.0)
    np.testing.assert_allclose(np.log(z64 + 1.0) + c64, np.log1p(z64), rtol=4e-16)


SOFTPLUS_LIKE = [(lambda: bp.Softplus(), lambda x: np.where(x > 20, x, np.log1p(np.exp(x)))),
                 (lambda: bp.Softplus(2.0, 20.0), lambda x: np.where(
                     2 * x > 20, x, np.log1p(np.exp(2 * x)) / 2)),
                 (lambda: bp.Softplus(0.5, 5.0), lambda x: np.where(
                     x * 0.5 > 5, x, np.log1p(np.exp(x * 0.5)) / 0.5)),
                 (lambda: bp.LogSigmoid(), lambda x: -np.logaddexp(0.0, -x))]


@pytest.mark.parametrize(("make", "exact"), SOFTPLUS_LIKE)
def test_float32_softplus_and_logsigmoid_stay_within_5_ulp(make, exact):
    """log1p through log(1 + e) + residual: 4.7 ulp at most (NumPy's log1p: 2.8), against
    softplus in float64 of the same float32 inputs; the derivative keeps its bits."""
    x = grid(np.float32, 100_000)
    layer = make()
    with np.errstate(all="ignore"):
        y = layer.forward(x, training=True)
        want = exact(x.astype(np.float64))
    err = ulps(y, want)
    assert err.max() <= 4.7, (err.max(), x.flat[err.argmax()])
    same_bits(np.isnan(y), np.isnan(want))
    assert np.isinf(y[np.isinf(want)]).all()


@pytest.mark.parametrize("make", [lambda: bp.Softplus(), lambda: bp.Softplus(2.0, 5.0),
                                  lambda: bp.LogSigmoid()])
def test_float32_softplus_and_logsigmoid_derivatives_keep_their_formula(make):
    """sigmoid(β x) = e / (1 + e) with e = exp(min(β x, threshold)) and 1 past the threshold;
    LogSigmoid's where(x < 0, 1, z) / (1 + z), z = exp(-|x|), bit for bit."""
    x = grid(np.float32)
    layer = make()
    with np.errstate(all="ignore"):
        layer.forward(x, training=True)
        if isinstance(layer, bp.LogSigmoid):
            z = np.exp(-np.abs(x))
            want = (z * (x >= 0) + (x < 0)) / (z + np.float32(1))
        else:
            bx = x * np.float32(layer.beta)
            e = np.exp(np.minimum(bx, np.float32(layer.threshold)))
            want = np.where(bx > layer.threshold, np.float32(1), e / (e + np.float32(1)))
    same_bits(layer.cache["d"], want)


@pytest.mark.parametrize("size", [100, 3 * (1 << 17) + 5])
@dtypes
def test_erf_writes_into_out_even_when_out_is_its_input(size, dtype):
    x = (np.random.default_rng(3).standard_normal(size) * 3).astype(dtype)
    x[:4] = [np.nan, np.inf, -np.inf, -0.0]
    want = backend.erf(x)
    out = np.empty_like(x)
    assert backend.erf(x, out=out) is out
    same_bits(out, want)
    y = x.copy()
    assert backend.erf(y, out=y) is y
    same_bits(y, want)
    strided = np.empty(2 * size, dtype)[::2]
    assert backend.erf(x, out=strided) is strided
    same_bits(strided, want)


@pytest.mark.parametrize(("rate", "shape", "layer"), [
    (0.3, (7, 5, 6), bp.Dropout), (0.0, (7, 5, 6), bp.Dropout), (1.0, (7, 5, 6), bp.Dropout),
    (0.4, (3, 5, 4, 4), bp.Dropout2D), (0.4, (3, 5, 1, 1), bp.Dropout2D),
    (0.5, (3, 5, 8), bp.Dropout1D)])
def test_dropout_masks_and_gradients_are_the_drawn_mask(rate, shape, layer):
    """The mask is (u >= rate) / (1 - rate) of the layer's generator, as before; dx is
    dy times it, written into the mask where it is one draw per element."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    drop = layer(rate, rng=9)
    y = drop.forward(x, training=True)
    draw_shape = shape if layer is bp.Dropout else shape[:2] + (1,) * (len(shape) - 2)
    u = np.random.default_rng(9).random(draw_shape, dtype=np.float32)
    mask = np.multiply(u >= rate, 1 / (1 - rate) if rate < 1 else 0.0, dtype=np.float32)
    same_bits(y, x * mask)
    same_bits(drop.backward(dy), dy * mask)
    assert not drop.has_cache


def prelu_reference(x, dy, alpha, per_channel):
    a = alpha.reshape((-1,) + (1,) * (x.ndim - 2)) if per_channel else alpha.reshape(())
    with np.errstate(invalid="ignore", over="ignore"):
        dx = np.where(x > 0, dy, dy * a)
        t = np.where(x > 0, 0, x * dy)
    grad = channel_sum(t) if per_channel else np.array([t.sum()], x.dtype)
    return dx, grad


@pytest.mark.parametrize("per_channel", [False, True])
@dtypes
def test_prelu_gradients_are_the_selects_bit_for_bit(per_channel, dtype):
    """dx and dalpha as np.where gave them: a slope of -0.0, NaN and ±inf inputs, a channel
    with only x > 0 and dy < 0 (dalpha +0.0, not -0.0), inf and NaN dy where x > 0."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4, 5, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    x[:, 1] = np.abs(x[:, 1]) + 1
    dy[:, 1] = -np.abs(dy[:, 1]) - 1
    x.flat[:6] = [np.nan, -np.inf, np.inf, -0.0, 0.0, -1e-30]
    for bad_dy in (False, True):
        if bad_dy:
            dy[0, 1, 0, :2] = [np.inf, np.nan]
        layer = bp.PReLU(4 if per_channel else 1, dtype=dtype)
        layer.params["alpha"][...] = [-0.0, 0.25, -0.7, 0.0] if per_channel else [-0.0]
        with np.errstate(all="ignore"):
            y = layer.forward(x, training=True)
            dx = layer.backward(dy)
        want_dx, want_grad = prelu_reference(x, dy, layer.params["alpha"], per_channel)
        same_bits(dx, want_dx)
        same_bits(layer.grads["alpha"], want_grad)
        a = layer._slope(x)
        with np.errstate(all="ignore"):
            same_bits(y, np.maximum(x, 0) + a * np.minimum(x, 0))
    if per_channel:
        assert layer.grads["alpha"][1] == 0 and not np.signbit(layer.grads["alpha"][1])


@pytest.mark.parametrize("num_parameters", [1, 3])
@dtypes
def test_prelu_slope_gradient_is_plus_zero_when_no_x_is_negative(num_parameters, dtype):
    """Every term 0 (x > 0): +0.0 as the select gave, and PyTorch, even where dy < 0 makes
    each min(x, 0)·dy a -0.0."""
    torch = pytest.importorskip("torch")
    x = np.full((4, 3, 10), 2.0, dtype)
    dy = np.full(x.shape, -1.0, dtype)
    layer = bp.PReLU(num_parameters, dtype=dtype)
    layer.forward(x, training=True)
    layer.backward(dy)
    theirs = torch.nn.PReLU(num_parameters).to(getattr(torch, np.dtype(dtype).name))
    theirs(torch.tensor(x)).backward(torch.tensor(dy))
    same_bits(layer.grads["alpha"], theirs.weight.grad.numpy())
    assert not np.signbit(layer.grads["alpha"]).any()


def test_prelu_with_a_nan_slope_passes_dy_where_x_is_positive():
    """A NaN slope gives NaN only where x <= 0: 0 · NaN must not reach x > 0 (PyTorch's
    select passes dy there)."""
    layer = bp.PReLU()
    layer.params["alpha"][...] = np.nan
    x = np.array([[1.0, -1.0, 0.0]], np.float32)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(x))
    assert dx.dtype == np.float32
    assert dx[0, 0] == 1.0 and np.isnan(dx[0, 1]) and np.isnan(dx[0, 2])
