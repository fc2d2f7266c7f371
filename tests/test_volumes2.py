"""Dropout3D, InstanceNorm3D, the 3-D padding layers and RMSNorm against PyTorch 2.13."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")

TOL = {np.float64: 1e-12, np.float32: 2e-6}
PAD_FAMILIES = {"ZeroPad": (), "ConstantPad": (-0.75,), "ReflectionPad": (),
                "ReplicationPad": (), "CircularPad": ()}
SHAPE = (2, 3, 3, 4, 5)  # odd sizes, all different: (N, C, D, H, W)
PADS = [1, (0, 0, 0, 0, 0, 0), (1, 2, 0, 1, 2, 0), (4, 4, 3, 3, 2, 2),  # reflect's limit
        (-1, 2, 1, -1, 0, 1), (0, 0, -2, 2, -1, -1), (2, -3, 0, 0, 1, -2), (-2, -2, -1, -1, 0, 0),
        (0, 0, 0, 0, -2, 2), (3, 1, -1, 3, 2, 1)]


def _run_torch(module, x: np.ndarray, dy: np.ndarray):
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy()


def _close(ours: np.ndarray, theirs: np.ndarray, dtype) -> None:
    assert ours.dtype == dtype and ours.shape == theirs.shape
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL[dtype] * scale)


def _pad_out(padding, shape):
    p = (padding,) * 6 if isinstance(padding, int) else padding
    pairs = [(p[4], p[5]), (p[2], p[3]), (p[0], p[1])]
    return (*shape[:2], *(n + b + a for n, (b, a) in zip(shape[2:], pairs, strict=True)))


def _wraps_twice(padding, shape):
    p = (padding,) * 6 if isinstance(padding, int) else padding
    pairs = [(p[4], p[5]), (p[2], p[3]), (p[0], p[1])]
    return any(max(b, a) > n - max(-b, 0) - max(-a, 0)
               for n, (b, a) in zip(shape[2:], pairs, strict=True))


# -- padding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("padding", PADS, ids=str)
@pytest.mark.parametrize("family", list(PAD_FAMILIES))
def test_3d_padding_matches_torch_forward_and_backward(family, padding, dtype):
    extra = PAD_FAMILIES[family]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(dtype)
    dy = rng.standard_normal(_pad_out(padding, SHAPE)).astype(dtype)
    theirs = getattr(torch.nn, f"{family}3d")(padding, *extra)
    if family == "CircularPad" and _wraps_twice(padding, SHAPE):  # refused: see CircularPad2D
        with pytest.raises(ValueError, match=r"CircularPad3D\(.*at most the input size left"):
            bp.CircularPad3D(padding, dtype=dtype).forward(x)
        return
    try:
        y_t, dx_t = _run_torch(theirs, x, dy)
    except RuntimeError:
        with pytest.raises(ValueError, match=rf"{family}3D\(.*expected .*got padding"):
            getattr(bp, f"{family}3D")(padding, *extra, dtype=dtype).forward(x)
        return
    layer = getattr(bp, f"{family}3D")(padding, *extra, dtype=dtype)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, y_t)  # copies: exact
    _close(layer.backward(dy), dx_t, dtype)


@pytest.mark.parametrize("padding", [(5, 0, 0, 0, 0, 0), (0, 0, 0, 4, 0, 0),
                                     (0, 0, 0, 0, 3, 0), (0, 6, 0, 0, 0, 0), 9])
def test_reflection_pad_3d_past_its_limit_is_refused_as_torch_refuses_it(padding):
    x = np.zeros(SHAPE)  # D 3, H 4, W 5: each pad must be below the axis size
    layer = bp.ReflectionPad3D(padding, dtype=np.float64)
    with pytest.raises(RuntimeError):
        torch.nn.ReflectionPad3d(padding)(torch.tensor(x))
    with pytest.raises(ValueError, match=r"ReflectionPad3D\(.*expected each padding smaller "
                                         r"than the input size .*\(2, 3, 3, 4, 5\)"):
        layer.forward(x)


def test_reflection_pad_3d_at_its_limit_mirrors_every_axis_whole():
    x = np.arange(2 * 3 * 4, dtype=np.float64).reshape(1, 1, 2, 3, 4)
    y = bp.ReflectionPad3D((3, 3, 2, 2, 1, 1), dtype=np.float64).forward(x)
    np.testing.assert_array_equal(
        y, torch.nn.ReflectionPad3d((3, 3, 2, 2, 1, 1))(torch.tensor(x)).numpy())
    assert y.shape == (1, 1, 4, 7, 10)


def test_3d_padding_takes_torchs_6_tuple_order_and_an_int():
    layer = bp.ZeroPad3D((1, 2, 3, 4, 5, 6), dtype=np.float64)  # W: 1, 2; H: 3, 4; D: 5, 6
    assert layer.forward(np.ones((1, 1, 1, 1, 1))).shape == (1, 1, 12, 8, 4)
    assert bp.ConstantPad3D(2, 1.5).forward(np.ones((1, 1, 1, 1, 1), np.float32)).shape \
        == (1, 1, 5, 5, 5)
    with pytest.raises(TypeError, match=r"ZeroPad3D: expected padding as an int or 6 ints "
                                        r"\(left, right, top, bottom, front, back\)"):
        bp.ZeroPad3D((1, 2, 3, 4))


# -- bad inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: bp.ZeroPad3D(1), lambda: bp.ConstantPad3D(1, 0.0), lambda: bp.ReflectionPad3D(1),
    lambda: bp.ReplicationPad3D(1), lambda: bp.CircularPad3D(1), lambda: bp.Dropout3D(0.5),
    lambda: bp.InstanceNorm3D(3)], ids=lambda f: type(f()).__name__)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 4, 5, 6, 7)])
def test_3d_layers_refuse_another_rank_naming_expected_and_received_shape(make, shape):
    layer = make()
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name}\(.*expected (input|a batch) of shape \(N, "
                                         rf"(C|3), D, H, W\), got (unbatched input of shape )?"
                                         rf"{re.escape(str(shape))}"):
        layer.forward(np.zeros(shape, np.float32), training=True)


def test_dropout3d_on_4d_input_points_to_dropout2d():
    with pytest.raises(ValueError, match=r"for \(N, C, H, W\) use Dropout2D"):
        bp.Dropout3D(0.5).forward(np.zeros((2, 3, 4, 5), np.float32), training=True)


def test_rms_norm_refuses_a_wrong_trailing_shape():
    with pytest.raises(ValueError, match=r"RMSNorm\(\(3, 4\)\): expected input of shape "
                                         r"\(N, 3, 4\), got \(2, 4, 3\)"):
        bp.RMSNorm((3, 4)).forward(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"RMSNorm\(4\): expected input of shape \(N, 4\), "
                                         r"got \(4,\)"):
        bp.RMSNorm(4).forward(np.zeros(4, np.float32))


# -- Dropout3D -------------------------------------------------------------------------------
def test_dropout3d_zeros_whole_channels_at_the_rate_and_scales_the_rest():
    rate, x = 0.3, np.ones((200, 50, 2, 3, 2), np.float32)
    layer = bp.Dropout3D(rate, rng=0)
    y = layer.forward(x, training=True)
    per_channel = y.reshape(200, 50, -1)
    assert (per_channel == per_channel[..., :1]).all()  # each channel all kept or all dropped
    kept = per_channel[..., 0] != 0
    assert set(np.unique(per_channel)) == {0.0, np.float32(1 / (1 - rate))}
    assert abs((1 - kept.mean()) - rate) < 0.01  # 10,000 draws: sd 0.0046
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dy), dy * (y / x))
    assert layer.forward(x) is x  # inference: the identity, as torch's eval()


def test_dropout3d_matches_torch_at_rates_0_and_1_and_in_inference():
    x = np.random.default_rng(2).standard_normal((2, 3, 2, 2, 2))
    for rate in (0.0, 1.0):
        torch.manual_seed(0)
        theirs = torch.nn.Dropout3d(rate)(torch.tensor(x)).numpy()
        np.testing.assert_array_equal(
            bp.Dropout3D(rate, rng=0, dtype=np.float64).forward(x, training=True), theirs)
    theirs = torch.nn.Dropout3d(0.5).eval()(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(bp.Dropout3D(0.5, dtype=np.float64).forward(x), theirs)


def test_dropout3d_masks_repeat_by_seed():
    x = np.ones((4, 6, 2, 2, 2), np.float32)
    a, b = bp.Dropout3D(0.5, rng=3), bp.Dropout3D(0.5, rng=3)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


# -- InstanceNorm3D --------------------------------------------------------------------------
def _instance_pair(affine, running, momentum, dtype, c=3):
    ours = bp.InstanceNorm3D(c, eps=1e-4, momentum=momentum, affine=affine,
                             track_running_stats=running, dtype=dtype)
    theirs = torch.nn.InstanceNorm3d(c, eps=1e-4, momentum=momentum, affine=affine,
                                     track_running_stats=running,
                                     dtype=torch.float64 if dtype == np.float64 else torch.float32)
    if affine:
        rng = np.random.default_rng(4)
        gamma, beta = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
        ours.params["gamma"][...], ours.params["beta"][...] = gamma, beta
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(gamma))
            theirs.bias.copy_(torch.tensor(beta))
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("affine", "running", "momentum"),
                         list(itertools.product([False, True], [False, True], [0.1, None])))
def test_instance_norm_3d_matches_torch_over_training_and_eval_steps(affine, running, momentum,
                                                                     dtype):
    ours, theirs = _instance_pair(affine, running, momentum, dtype)
    rng = np.random.default_rng(5)
    for _ in range(4):  # training steps: outputs, gradients, running statistics
        x = (rng.standard_normal((3, 3, 3, 4, 5)) * 2 + 1).astype(dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        theirs.train()
        theirs.zero_grad()
        y_t, dx_t = _run_torch(theirs, x, dy)
        _close(ours.forward(x, training=True), y_t, dtype)
        _close(ours.backward(dy), dx_t, dtype)
        if affine:
            _close(ours.grads["gamma"], theirs.weight.grad.numpy(), dtype)
            _close(ours.grads["beta"], theirs.bias.grad.numpy(), dtype)
        if running:
            _close(ours.buffers["running_mean"], theirs.running_mean.numpy(), dtype)
            _close(ours.buffers["running_var"], theirs.running_var.numpy(), dtype)
    theirs.eval()
    x = rng.standard_normal((2, 3, 2, 3, 3)).astype(dtype)
    with torch.no_grad():
        _close(ours.forward(x), theirs(torch.tensor(x)).numpy(), dtype)


def test_instance_norm_3d_from_torch_loads_affine_and_running_statistics():
    theirs = torch.nn.InstanceNorm3d(3, affine=True, track_running_stats=True).double()
    rng = np.random.default_rng(6)
    for _ in range(2):
        theirs(torch.tensor(rng.standard_normal((2, 3, 2, 3, 4))))
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.normal_()
    ours = bp.InstanceNorm3D(3, affine=True, track_running_stats=True, dtype=np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    x = rng.standard_normal((2, 3, 2, 3, 4))
    with torch.no_grad():
        _close(ours.forward(x), theirs.eval()(torch.tensor(x)).numpy(), np.float64)


# -- RMSNorm ---------------------------------------------------------------------------------
RMS_CASES = [(5, (4, 5)), ((3, 4), (2, 3, 4)), ((2, 3, 5), (3, 2, 3, 5)), (7, (2, 3, 4, 7)),
             ((1,), (3, 1))]


def _rms_pair(normalized, eps, affine, dtype):
    ours = bp.RMSNorm(normalized, eps=eps, elementwise_affine=affine, dtype=dtype)
    theirs = torch.nn.RMSNorm(normalized, eps=eps, elementwise_affine=affine,
                              dtype=torch.float64 if dtype == np.float64 else torch.float32)
    if affine:
        gamma = np.random.default_rng(7).uniform(0.5, 1.5, theirs.weight.shape)
        ours.params["gamma"][...] = gamma
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(gamma))
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("eps", [None, 1e-3])
@pytest.mark.parametrize(("normalized", "shape"), RMS_CASES, ids=str)
def test_rms_norm_matches_torch_forward_and_backward(normalized, shape, eps, affine, dtype):
    ours, theirs = _rms_pair(normalized, eps, affine, dtype)
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(shape) * 3 + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y_t, dx_t = _run_torch(theirs, x, dy)
    _close(ours.forward(x, training=True), y_t, dtype)
    _close(ours.backward(dy), dx_t, dtype)
    if affine:
        _close(ours.grads["gamma"], theirs.weight.grad.numpy(), dtype)
    assert not ours.has_cache


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rms_norm_default_eps_is_the_dtypes_machine_epsilon_as_torchs(dtype):
    # rows whose mean square is about eps: the default eps changes the output by ~half
    eps = np.finfo(dtype).eps
    x = (np.random.default_rng(9).standard_normal((4, 6)) * np.sqrt(eps)).astype(dtype)
    ours, theirs = _rms_pair(6, None, True, dtype)
    y_t, _ = _run_torch(theirs, x, np.ones_like(x))
    y = ours.forward(x)
    _close(y, y_t, dtype)
    assert not np.allclose(y, bp.RMSNorm(6, eps=1e-30, dtype=dtype).forward(x) *
                           ours.params["gamma"], rtol=0.1)


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1.0, 1e10, 1e15, 1e18])
def test_rms_norm_float32_extremes_match_torch_without_overflow(scale):
    x = (np.random.default_rng(10).standard_normal((3, 16)) * scale).astype(np.float32)
    dy = np.random.default_rng(11).standard_normal(x.shape).astype(np.float32)
    ours, theirs = _rms_pair(16, None, True, np.float32)
    y_t, dx_t = _run_torch(theirs, x, dy)
    y, dx = ours.forward(x, training=True), ours.backward(dy)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    np.testing.assert_allclose(y, y_t, rtol=1e-5, atol=1e-6 * np.abs(y_t).max())
    # the exact dx: float64 with float32's eps (torch's float32 dx goes through r³, which
    # underflows past ~1e15: 14% off at 1e18)
    exact = torch.nn.RMSNorm(16, eps=float(np.finfo(np.float32).eps), dtype=torch.float64)
    with torch.no_grad():
        exact.weight.copy_(theirs.weight.double())
    _, dx_exact = _run_torch(exact, x.astype(np.float64), dy.astype(np.float64))
    np.testing.assert_allclose(dx, dx_exact, rtol=1e-4, atol=1e-5 * np.abs(dx_exact).max())
    if scale <= 1e10:
        np.testing.assert_allclose(dx, dx_t, rtol=1e-4, atol=1e-5 * np.abs(dx_t).max())


@pytest.mark.parametrize("scale", [1e20, 1e30, 3e38])
def test_rms_norm_float32_past_the_square_range_normalises_where_torch_gives_zeros(scale):
    # torch's mean of squares overflows to inf there, so its y is 0; ours rescales the row
    x = (np.random.default_rng(12).standard_normal((2, 8)) / 3 * scale).astype(np.float32)
    x[:, 0] = scale / 2
    y = bp.RMSNorm(8, elementwise_affine=False).forward(x)  # no overflow warning (errors here)
    want = x.astype(np.float64) / np.sqrt((x.astype(np.float64) ** 2).mean(1, keepdims=True))
    np.testing.assert_allclose(y, want, rtol=1e-6)
    assert y.dtype == np.float32
    dy = np.ones_like(x)
    layer = bp.RMSNorm(8)
    layer.forward(x, training=True)
    assert np.isfinite(layer.backward(dy)).all() and np.isfinite(layer.grads["gamma"]).all()


def test_rms_norm_keeps_float32_and_loads_torchs_weight():
    theirs = torch.nn.RMSNorm((2, 3), eps=1e-6)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
    model = bp.Sequential([bp.Dense(4, 6, rng=0), bp.Reshape((2, 3)), bp.RMSNorm((2, 3), 1e-6)])
    torch_model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Unflatten(1, (2, 3)),
                                      theirs)
    model.load_state_dict(bp.from_torch(model, torch_model.state_dict()))
    assert model.params["2.gamma"].dtype == np.float32
    x = np.random.default_rng(13).standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad():
        y_t = torch_model(torch.tensor(x)).numpy()
    y = model.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, y_t, rtol=1e-5, atol=1e-6)


def test_rms_norm_from_torch_names_elementwise_affine_on_a_mismatch():
    with pytest.raises(ValueError, match=r"RMSNorm\(3, elementwise_affine=False\) has no "
                                         r"weights"):
        bp.from_torch(bp.Sequential([bp.Dense(2, 3), bp.RMSNorm(3, elementwise_affine=False)]),
                      torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.RMSNorm(3)).state_dict())


def test_rms_norm_repr_and_config():
    assert repr(bp.RMSNorm(4)) == "RMSNorm(4)"
    assert repr(bp.RMSNorm((2, 3), eps=1e-6, elementwise_affine=False)) == \
        "RMSNorm((2, 3), eps=1e-06, elementwise_affine=False)"
    assert bp.RMSNorm(4).params["gamma"].dtype == np.float32
    with pytest.raises(ValueError, match="RMSNorm: expected a non-empty normalized_shape"):
        bp.RMSNorm(())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rms_norm_rows_holding_inf_give_torchs_zeros(dtype):
    """A row holding ±inf went through the overflow rescaling (inf / inf): NaN across the
    row, where torch's 1/rms is 0 (0 but at the inf); a review at extreme values found it."""
    x = np.array([[1, 2, np.inf, 3], [-np.inf, np.inf, 1, 1], [np.nan, 1, 2, 3],
                  [1, 2, 3, 4]], dtype)
    ours, theirs = _rms_pair(4, None, True, dtype)
    with np.errstate(invalid="ignore"):  # inf · 0 at the inf: NaN, as torch's
        y = ours.forward(x)
    y_t = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_t))
    _close(np.nan_to_num(y), np.nan_to_num(y_t), dtype)
    assert (y[0, [0, 1, 3]] == 0).all()
