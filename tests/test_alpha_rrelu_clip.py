"""AlphaDropout, FeatureAlphaDropout, RReLU and clip_grad_value: the formulas, PyTorch parity
(torch's own random draws recovered from its output and planted in ours), statistics,
seeding and refused arguments. The contract and gradient checks are in ``table.py``."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import backprop as bp
from backprop.layers.base import Parameter

ALPHA = -1.7580993408473766  # alpha' = -SELU.scale * SELU.alpha, PyTorch's kernel constant
DTYPES = [np.float32, np.float64]


def affine(rate: float) -> tuple[float, float]:
    """The paper's ``a`` and ``b``, written as the brief writes them."""
    a = ((1 - rate) * (1 + rate * ALPHA**2)) ** -0.5
    return a, -a * ALPHA * rate


class Planted:
    """A stand-in for a layer's Generator whose next ``random`` returns planted draws
    (``keep`` as 1.0 / 0.0 for dropout, which ``u >= rate`` turns back into ``keep``)."""

    def __init__(self, draws: np.ndarray) -> None:
        self.draws = draws

    def random(self, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        assert tuple(shape) == self.draws.shape, (shape, self.draws.shape)
        return self.draws.astype(dtype)


# -- AlphaDropout: the formula -------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("feature", [False, True])
def test_alpha_dropout_values_and_gradients_follow_the_formula(rate, feature):
    shape = (10, 6, 5, 2)
    x = np.random.default_rng(0).standard_normal(shape)
    dy = np.random.default_rng(1).standard_normal(shape)
    cls = bp.FeatureAlphaDropout if feature else bp.AlphaDropout
    layer = cls(rate, rng=7, dtype=np.float64)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    # the same seed gives the same uniform draws, one per element or per (sample, channel)
    u = np.random.default_rng(7).random((10, 6, 1, 1) if feature else shape)
    keep = np.broadcast_to(u >= rate, shape)
    a, b = affine(rate)
    np.testing.assert_allclose(y, a * np.where(keep, x, ALPHA) + b, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(dx, dy * a * keep, rtol=1e-14, atol=0)
    assert 0 < keep.mean() < 1  # both kinds of position were checked
    if feature:  # a whole channel is kept or dropped
        assert (keep == keep[:, :, :1, :1]).all()


def test_alpha_dropout_constant_is_minus_selu_scale_times_alpha():
    assert bp.AlphaDropout.alpha == -bp.SELU.scale * bp.SELU.alpha == ALPHA


@pytest.mark.parametrize("cls", [bp.AlphaDropout, bp.FeatureAlphaDropout])
@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_dropout_is_the_identity_at_inference_and_at_rate_0(cls, dtype):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(dtype)
    x[0, 0, 0] = -0.0
    assert cls(0.5, rng=0, dtype=dtype).forward(x) is x  # inference: no copy, no draw
    layer = cls(0.0, rng=0, dtype=dtype)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, x)
    assert np.signbit(y[0, 0, 0])  # nothing added: -0.0 stays -0.0, as torch returns x
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(layer.backward(dy), dy)


# -- AlphaDropout: PyTorch parity ----------------------------------------------------------

def _torch_alpha_dropout(torch, x, dy, rate, feature):
    """torch's output and input gradient, and its mask recovered from its output: dropped
    positions hold ``a·alpha' + b`` exactly (rounded as its kernel does)."""
    xt = torch.tensor(x, requires_grad=True)
    fn = torch.nn.functional.feature_alpha_dropout if feature else \
        torch.nn.functional.alpha_dropout
    yt = fn(xt, rate, training=True)
    yt.backward(torch.tensor(dy))
    y = yt.detach().numpy()
    t = np.dtype(x.dtype).type
    c = t(-ALPHA * 1.0 / math.sqrt((ALPHA * ALPHA * rate + 1) * (1 - rate)))  # |alpha'|·a
    dropped_value = -c + t(c * rate)
    keep = y != dropped_value
    return y, xt.grad.numpy(), keep


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("feature", [False, True])
def test_alpha_dropout_matches_torch_bit_for_bit_with_torchs_mask(dtype, rate, feature):
    torch = pytest.importorskip("torch")
    torch.manual_seed(int(rate * 10) + feature)
    shape = (6, 5, 4, 3)
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    dy = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    y_t, dx_t, keep = _torch_alpha_dropout(torch, x, dy, rate, feature)
    assert 0.05 < keep.mean() < 0.95  # both kinds of position occur
    if feature:
        assert (keep == keep[:, :, :1, :1]).all()  # torch's mask is per (sample, channel)
        keep = keep[:, :, :1, :1]
    layer = (bp.FeatureAlphaDropout if feature else bp.AlphaDropout)(rate, dtype=dtype)
    layer.rng = Planted(keep.astype(dtype))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(dx, dx_t)
    assert y.dtype == dx.dtype == dtype


@pytest.mark.parametrize("cls", [bp.AlphaDropout, bp.FeatureAlphaDropout])
def test_alpha_dropout_at_rate_1_gives_zeros_like_torch(cls):
    torch = pytest.importorskip("torch")
    x = np.array([[np.nan, np.inf, 1.5, -2.0]])
    fn = torch.nn.functional.feature_alpha_dropout if cls is bp.FeatureAlphaDropout else \
        torch.nn.functional.alpha_dropout
    xt = torch.tensor(x, requires_grad=True)
    yt = fn(xt, 1.0, training=True)
    yt.backward(torch.ones_like(xt))
    layer = cls(1.0, rng=0, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf · 0, as torch computes it
        y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())  # [nan, nan, 0, -0]
    np.testing.assert_array_equal(np.signbit(y), np.signbit(yt.detach().numpy()))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), xt.grad.numpy())


# -- AlphaDropout: statistics --------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_alpha_dropout_keeps_mean_0_and_variance_1_of_selu_normalised_inputs(rate):
    z = np.random.default_rng(0).standard_normal((400, 1000))
    x = bp.SELU(dtype=np.float64).forward(z)  # SELU's fixed point: mean 0, variance 1
    assert abs(x.mean()) < 0.01 and abs(x.var() - 1) < 0.01
    y = bp.AlphaDropout(rate, rng=1, dtype=np.float64).forward(x, training=True)
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02
    # the bounds have teeth: plain dropout keeps the mean but raises the variance
    plain = bp.Dropout(rate, rng=1, dtype=np.float64).forward(x, training=True)
    assert abs(plain.mean()) < 0.01 and not abs(plain.var() - 1) < 0.02


def test_feature_alpha_dropout_keeps_mean_0_and_variance_1_per_channel_draws():
    x = np.random.default_rng(0).standard_normal((400, 50, 20))
    y = bp.FeatureAlphaDropout(0.3, rng=1, dtype=np.float64).forward(x, training=True)
    assert abs(y.mean()) < 0.02 and abs(y.var() - 1) < 0.03
    plain = bp.Dropout1D(0.3, rng=1, dtype=np.float64).forward(x, training=True)
    assert not abs(plain.var() - 1) < 0.03


# -- AlphaDropout: seeding and arguments ---------------------------------------------------

@pytest.mark.parametrize("cls", [bp.AlphaDropout, bp.FeatureAlphaDropout])
def test_alpha_dropout_masks_are_seeded_and_copies_draw_the_same_next_mask(cls):
    x = np.random.default_rng(0).standard_normal((8, 6, 5)).astype(np.float32)
    one, two, other = cls(0.5, rng=3), cls(0.5, rng=3), cls(0.5, rng=4)
    first = one.forward(x, training=True)
    np.testing.assert_array_equal(first, two.forward(x, training=True))
    assert not np.array_equal(first, other.forward(x, training=True))
    copied = copy.deepcopy(one)
    second = one.forward(x, training=True)
    assert not np.array_equal(first, second)  # a new mask each call
    np.testing.assert_array_equal(second, copied.forward(x, training=True))


@pytest.mark.parametrize("cls", [bp.AlphaDropout, bp.FeatureAlphaDropout])
@pytest.mark.parametrize("rate,error", [(-0.1, ValueError), (1.1, ValueError),
                                        (float("nan"), ValueError), (float("inf"), ValueError),
                                        ("0.5", TypeError), (None, TypeError)])
def test_alpha_dropout_refuses_a_rate_outside_0_1(cls, rate, error):
    with pytest.raises(error, match=f"{cls.__name__}: expected rate"):
        cls(rate)


def test_alpha_dropout_refuses_bad_input_and_a_non_boolean_training():
    with pytest.raises(ValueError, match=r"FeatureAlphaDropout\(\): expected input of shape "
                                         r"\(N, C, \*\).*got \(5,\)"):
        bp.FeatureAlphaDropout().forward(np.ones(5, np.float32), training=True)
    with pytest.raises(TypeError, match="AlphaDropout.*expected training to be True or False"):
        bp.AlphaDropout().forward(np.ones((2, 3), np.float32), training="False")
    with pytest.raises(TypeError, match="AlphaDropout.*dtype float32, got float64"):
        bp.AlphaDropout().forward(np.ones((2, 3)), training=True)
    with pytest.raises(RuntimeError):
        bp.AlphaDropout().backward(np.ones((2, 3), np.float32))


def test_alpha_dropout_spells_pytorchs_p_as_rate():
    with pytest.raises(TypeError, match="backprop calls it rate"):
        bp.AlphaDropout(p=0.2)
    with pytest.raises(TypeError, match="backprop calls it rate"):
        bp.FeatureAlphaDropout(p=0.2)
    assert repr(bp.AlphaDropout(0.2)) == "AlphaDropout(rate=0.2)"


# -- RReLU ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bounds", [(1 / 8, 1 / 3), (0.1, 0.3), (-0.2, 1.5)])
def test_rrelu_inference_matches_torch_eval_bit_for_bit(dtype, bounds):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((5, 4, 3)).astype(dtype) * 3
    x.flat[:4] = [0.0, -0.0, np.inf, -np.inf]
    theirs = torch.nn.RReLU(*bounds).eval()(torch.tensor(x)).numpy()
    ours = bp.RReLU(*bounds, rng=0, dtype=dtype).forward(x)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rrelu_training_slopes_are_cached_in_lower_upper_and_backward_uses_them(dtype):
    lower, upper = 0.1, 0.4
    x = np.random.default_rng(0).standard_normal((50, 40)).astype(dtype)
    x[0, :2] = [0.0, -0.0]
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    layer = bp.RReLU(lower, upper, rng=5, dtype=dtype)
    y = layer.forward(x, training=True)
    slope = layer._d.copy()
    neg = x <= 0
    assert ((slope[neg] >= dtype(lower)) & (slope[neg] <= dtype(upper))).all()
    assert (slope[~neg] == 1).all()
    assert np.unique(slope[neg]).size > 0.9 * neg.sum()  # one draw per element
    np.testing.assert_array_equal(y, x * slope)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, dy * slope)
    assert (dx[x > 0] == dy[x > 0]).all()
    assert lower <= dx[0, 0] / dy[0, 0] <= upper  # at 0 the drawn (left) slope, as torch
    # the slopes are U[lower, upper): their mean is the inference slope
    assert abs(slope[neg].mean() - (lower + upper) / 2) < 0.01


def test_rrelu_derivative_at_zero_is_the_left_slope_as_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[0.0, -0.0, -1.0, 2.0]])
    for training in (True, False):  # lower == upper: torch's training slope is fixed too
        xt = torch.tensor(x, requires_grad=True)
        module = torch.nn.RReLU(0.2, 0.2).train(training)
        yt = module(xt)
        yt.backward(torch.ones_like(xt))
        layer = bp.RReLU(0.2, 0.2, rng=0, dtype=np.float64)
        y = layer.forward(x, training=training)  # inference: the mean slope, no cache
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(np.signbit(y), np.signbit(yt.detach().numpy()))
        if training:
            np.testing.assert_array_equal(layer.backward(np.ones_like(x)), xt.grad.numpy())
    # with a range, torch's gradient at 0 is one of its drawn slopes, never 1
    xt = torch.zeros(1000, dtype=torch.float64, requires_grad=True)
    torch.nn.RReLU(0.1, 0.3).train()(xt).sum().backward()
    assert ((xt.grad >= 0.1) & (xt.grad <= 0.3)).all()
    layer = bp.RReLU(0.1, 0.3, rng=0, dtype=np.float64)
    layer.forward(np.zeros((1, 1000)), training=True)
    dx = layer.backward(np.ones((1, 1000)))
    assert ((dx >= 0.1) & (dx <= 0.3)).all()


def test_rrelu_gradient_check_passes_with_a_fixed_rng_and_fails_for_the_mean_slope():
    x = np.random.default_rng(0).standard_normal((6, 5))
    x += np.sign(x) * 0.1
    assert bp.check_gradients(bp.RReLU(rng=3, dtype=np.float64), x).passed

    class MeanSlopeBackward(bp.RReLU):  # the classic slip: inference's slope in backward
        def backward(self, dy):
            d = self._pop("_d")
            return dy * np.where(d == 1, 1.0, (self.lower + self.upper) / 2)

    assert not bp.check_gradients(MeanSlopeBackward(rng=3, dtype=np.float64), x).passed


def test_rrelu_slopes_are_seeded_and_drawn_anew_each_call():
    x = -np.abs(np.random.default_rng(0).standard_normal((4, 5))).astype(np.float32) - 0.1
    one, two = bp.RReLU(rng=1), bp.RReLU(rng=1)
    first = one.forward(x, training=True)
    np.testing.assert_array_equal(first, two.forward(x, training=True))
    assert not np.array_equal(first, one.forward(x, training=True))
    assert not np.array_equal(first, bp.RReLU(rng=2).forward(x, training=True))


@pytest.mark.parametrize("lower,upper,error,match", [
    (0.3, 0.1, ValueError, "RReLU: expected lower <= upper, got lower=0.3 > upper=0.1"),
    (float("nan"), 0.2, ValueError, "RReLU: expected lower"),
    (0.1, float("inf"), ValueError, "RReLU: expected upper"),
    ("0.1", 0.2, TypeError, "RReLU: expected lower to be a number"),
    (0.1, True, TypeError, "RReLU: expected upper to be a number"),
])
def test_rrelu_refuses_bounds_torch_refuses(lower, upper, error, match):
    with pytest.raises(error, match=match):
        bp.RReLU(lower, upper)


def test_rrelu_takes_any_finite_ordered_bounds_as_torch():
    torch = pytest.importorskip("torch")
    for lower, upper in [(-1.0, -0.5), (0.1, 1.5), (0.2, 0.2)]:
        torch.nn.RReLU(lower, upper)(torch.randn(3))  # torch takes these
        layer = bp.RReLU(lower, upper, rng=0, dtype=np.float64)
        assert (layer.lower, layer.upper) == (lower, upper)
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal"):
        torch.nn.RReLU(0.3, 0.1)(torch.randn(3))
    with pytest.raises(TypeError, match="expected training to be True or False"):
        bp.RReLU().forward(np.ones((2, 2), np.float32), training=1)
    with pytest.raises(TypeError, match="RReLU.*inplace"):
        bp.RReLU(inplace=True)


# -- clip_grad_value -----------------------------------------------------------------------

def _torch_clipped(torch, grads, clip_value):
    tensors = [torch.zeros(g.shape, dtype=torch.float64 if g.dtype == np.float64
                           else torch.float32, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.tensor(g.copy())
    assert torch.nn.utils.clip_grad_value_(tensors, clip_value) is None
    return [t.grad.numpy() for t in tensors]


def _wild_grads(rng, shape, dtype):
    """Normal draws scaled by 3 (a third beyond ±1), with NaN, ±inf and -0.0 entries."""
    g = (rng.standard_normal(shape) * 3).astype(dtype)
    g.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    rng.shuffle(g.reshape(-1))
    return g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip_value", [1.0, 0.1, 0.0, 2])
def test_clip_grad_value_matches_torch_on_a_model_and_on_separate_parameters(dtype,
                                                                            clip_value):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(4, 6, dtype=dtype, rng=0), bp.Tanh(dtype=dtype),
                           bp.Dense(6, 3, dtype=dtype, rng=1)])
    for p in model.parameters():
        p.grad[...] = _wild_grads(rng, p.grad.shape, dtype)
    loose = [Parameter(f"p{i}", np.zeros(s, dtype), _wild_grads(rng, s, dtype))
             for i, s in enumerate([(3, 4), (5,)])]
    loose.append(Parameter("t", np.zeros((2, 3), dtype), _wild_grads(rng, (3, 2), dtype).T))
    for params in (model, loose):  # one flat buffer, then separate (one strided) arrays
        grads = [p.grad for p in (params.parameters() if params is model else params)]
        want = _torch_clipped(torch, grads, clip_value)
        assert bp.clip_grad_value(params, clip_value) is None
        for g, w in zip(grads, want, strict=True):
            assert g.dtype == dtype
            np.testing.assert_array_equal(g, w)  # NaN where torch keeps NaN
            np.testing.assert_array_equal(np.signbit(g), np.signbit(w))
        assert np.isnan(np.concatenate([g.ravel() for g in grads])).sum() >= 2
    assert all((p.value != 0).any() for p in model.parameters() if p.name.endswith("W"))


def test_clip_grad_value_takes_parameters_a_model_or_a_list_and_inf_clips_nothing():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    for arg in (model.parameters(), model, list(model.parameters()),
                iter(model.parameters())):
        model.flat_grads[...] = [3.0, -0.5, -4.0, 0.0, 4.0, 0.25]
        bp.clip_grad_value(arg, 1.0)
        np.testing.assert_array_equal(model.flat_grads, [1.0, -0.5, -1.0, 0.0, 1.0, 0.25])
    model.flat_grads[...] = [3.0, -0.5, -np.inf, np.nan, 4.0, 0.25]
    bp.clip_grad_value(model, math.inf)
    np.testing.assert_array_equal(model.flat_grads, [3.0, -0.5, -np.inf, np.nan, 4.0, 0.25])
    bp.clip_grad_value(model[0], np.float32(0.5))  # a layer, a NumPy number
    np.testing.assert_array_equal(model.flat_grads, [0.5, -0.5, -0.5, np.nan, 0.5, 0.25])


@pytest.mark.parametrize("clip_value,error,match", [
    (-1.0, ValueError, r"clip_grad_value: expected clip_value >= 0 \(math.inf clips nothing\)"),
    (float("nan"), ValueError, "clip_grad_value: expected clip_value"),
    (float("-inf"), ValueError, "clip_grad_value: expected clip_value"),
    ("1", TypeError, "clip_grad_value: expected clip_value to be a number"),
    (True, TypeError, "clip_grad_value: expected clip_value to be a number"),
    (None, TypeError, "clip_grad_value: expected clip_value to be a number"),
])
def test_clip_grad_value_refuses_a_clip_value_that_is_not_a_number_ge_0(clip_value, error,
                                                                        match):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    model.flat_grads[...] = [3.0, -0.5, -4.0, 0.0, 4.0, 0.25]
    with pytest.raises(error, match=match):
        bp.clip_grad_value(model, clip_value)
    np.testing.assert_array_equal(model.flat_grads, [3.0, -0.5, -4.0, 0.0, 4.0, 0.25])


def test_clip_grad_value_refuses_what_is_not_parameters():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    with pytest.raises(TypeError, match="clip_grad_value: expected model.parameters()"):
        bp.clip_grad_value(np.ones(3), 1.0)
    with pytest.raises(TypeError, match="clip_grad_value: expected model.parameters()"):
        bp.clip_grad_value([np.ones(3)], 1.0)
    twice = model.parameters() * 2
    with pytest.raises(ValueError, match="clip_grad_value: expected each parameter once"):
        bp.clip_grad_value(twice, 1.0)
