"""Upsample and the adaptive pools: against PyTorch, gradients, errors, saving, training."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import backprop as bp


def _against_torch(layer, module, x, *, exact_dx=True):
    """Forward and dx (from a random dy) of ``layer`` and the torch ``module`` on ``x``:
    float64 to 1e-12, float32 to float32 rounding. NaN must sit where torch has it."""
    torch = pytest.importorskip("torch")
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.tensor(dy))
    assert y.dtype == dx.dtype == x.dtype
    tol = 1e-12 if x.dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    if exact_dx:
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    return y, dx


def _x(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- Upsample against torch -------------------------------------------------------------------
SCALES = [2, 3, 1.5, 0.5, 2.5, 0.75]
MODES_1D = [("nearest", None), ("nearest-exact", None), ("linear", None), ("linear", True)]
MODES_2D = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode,corners", MODES_1D)
def test_upsample_1d_matches_torch_over_scale_factors_and_sizes(mode, corners, dtype):
    nn = pytest.importorskip("torch.nn")
    for n, scale in itertools.product([1, 2, 4, 5, 7], SCALES):
        if int(n * scale) >= 1:
            _against_torch(bp.Upsample(scale_factor=scale, mode=mode, align_corners=corners,
                                       dtype=dtype),
                           nn.Upsample(scale_factor=scale, mode=mode, align_corners=corners),
                           _x((2, 3, n), dtype))
    for n, m in itertools.product([1, 3, 6], [1, 2, 4, 5, 9, 13]):
        _against_torch(bp.Upsample(m, mode=mode, align_corners=corners, dtype=dtype),
                       nn.Upsample(m, mode=mode, align_corners=corners), _x((2, 3, n), dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode,corners", MODES_2D)
def test_upsample_2d_matches_torch_over_scale_factors_and_sizes(mode, corners, dtype):
    nn = pytest.importorskip("torch.nn")
    for (h, w), scale in itertools.product([(1, 3), (4, 5), (7, 2)], SCALES):
        if int(h * scale) >= 1 and int(w * scale) >= 1:
            _against_torch(bp.Upsample(scale_factor=scale, mode=mode, align_corners=corners,
                                       dtype=dtype),
                           nn.Upsample(scale_factor=scale, mode=mode, align_corners=corners),
                           _x((2, 3, h, w), dtype))
    for size, scale in [((5, 3), None), ((2, 9), None), (None, (1.5, 0.5)), (None, (3, 1))]:
        _against_torch(bp.Upsample(size, scale, mode=mode, align_corners=corners, dtype=dtype),
                       nn.Upsample(size, scale, mode=mode, align_corners=corners),
                       _x((2, 2, 4, 6), dtype))


def test_upsample_nearest_indices_match_torch_exactly_in_both_dtypes():
    # the nearest rule's float32 rounding (2-D) and the input's dtype (1-D) decide ties
    # such as o · (1 / 2.3) = 30 at o = 69
    torch = pytest.importorskip("torch")
    for dtype, mode, n, scale in itertools.product(
            [np.float64, np.float32], ["nearest", "nearest-exact"], [7, 31, 32],
            [2.3, 2.7, 1.1, 0.3, 2 / 3]):
        for x in (np.arange(n, dtype=dtype)[None, None], np.arange(n, dtype=dtype)[None, None, :,
                                                                                   None]):
            scales = scale if x.ndim == 3 else (scale, 1.0)
            ours = bp.Upsample(scale_factor=scales, mode=mode, dtype=dtype).forward(x)
            theirs = torch.nn.Upsample(scale_factor=scales, mode=mode)(torch.tensor(x))
            np.testing.assert_array_equal(ours, theirs.numpy(), err_msg=f"{mode} {n} {scale}")


def test_upsample_1d_nearest_backward_is_its_forward_s_gradient_where_torch_s_is_not():
    # PyTorch 2.13's 1-D nearest forward takes floor(o / 1.3) (2 -> 2 outputs: [0, 0]) but
    # its backward copies (m == n): that dx is not the gradient of its own forward
    torch = pytest.importorskip("torch")
    layer = bp.Upsample(scale_factor=1.3, dtype=np.float64)
    y, dx = _against_torch(layer, torch.nn.Upsample(scale_factor=1.3),
                           np.array([[[1.0, 2.0]]]), exact_dx=False)
    np.testing.assert_array_equal(y, [[[1.0, 1.0]]])
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(dx, [[[dy.sum(), 0.0]]])  # both outputs read input 0
    assert bp.check_gradients(layer, np.array([[[1.0, 2.0]]])).passed


def test_upsample_non_finite_values_stay_where_torch_puts_them():
    torch = pytest.importorskip("torch")
    x = _x((1, 2, 4, 5))
    x[0, 0, 1, 2], x[0, 1, 3, 0], x[0, 1, 0, 4] = np.inf, np.nan, -np.inf
    for mode, corners in MODES_2D:
        layer = bp.Upsample(scale_factor=(1.5, 2), mode=mode, align_corners=corners,
                            dtype=np.float64)
        ours = layer.forward(x)
        theirs = torch.nn.Upsample(scale_factor=(1.5, 2), mode=mode,
                                   align_corners=corners)(torch.tensor(x)).numpy()
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=mode)
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_upsample_backward_sums_dy_over_the_copies():
    layer = bp.Upsample(scale_factor=2, dtype=np.float64)
    x = _x((1, 1, 2, 3))
    np.testing.assert_array_equal(layer.forward(x, training=True), x.repeat(2, 2).repeat(2, 3))
    dy = _x((1, 1, 4, 6), seed=1)
    want = dy.reshape(1, 1, 2, 2, 3, 2).sum(axis=(3, 5))
    np.testing.assert_allclose(layer.backward(dy), want, rtol=1e-15)


# -- adaptive pools against torch -------------------------------------------------------------
SIZES_1D = [(8, 4), (7, 3), (5, 5), (3, 7), (4, 1), (1, 3), (10, 6), (6, 4)]  # (in, out)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adaptive_pools_1d_match_torch_including_out_larger_than_in(dtype):
    nn = pytest.importorskip("torch.nn")
    for n, m in SIZES_1D:
        x = _x((2, 3, n), dtype)
        _against_torch(bp.AdaptiveAvgPool1D(m, dtype=dtype), nn.AdaptiveAvgPool1d(m), x)
        _against_torch(bp.AdaptiveMaxPool1D(m, dtype=dtype), nn.AdaptiveMaxPool1d(m), x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adaptive_pools_2d_match_torch_including_none_entries(dtype):
    nn = pytest.importorskip("torch.nn")
    for (h, w), out in [((6, 8), (3, 4)), ((5, 7), (3, 4)), ((5, 7), 2), ((4, 3), (6, 5)),
                        ((5, 6), (None, 4)), ((5, 6), (3, None)), ((7, 7), 1), ((3, 4), (3, 4))]:
        x = _x((2, 3, h, w), dtype)
        _against_torch(bp.AdaptiveAvgPool2D(out, dtype=dtype), nn.AdaptiveAvgPool2d(out), x)
        _against_torch(bp.AdaptiveMaxPool2D(out, dtype=dtype), nn.AdaptiveMaxPool2d(out), x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adaptive_max_pool_ties_nan_and_inf_go_where_torch_sends_them(dtype):
    # ties: the first maximum in row-major order; NaN: the last NaN; all -inf: the first
    nn = pytest.importorskip("torch.nn")
    rng = np.random.default_rng(3)
    for (h, w), out in [((5, 7), (3, 4)), ((6, 6), 2), ((3, 5), (4, 6)), ((4, 4), (None, 3))]:
        x = rng.integers(0, 3, (2, 3, h, w)).astype(dtype)  # many ties
        x[rng.random(x.shape) < 0.15] = np.nan
        x[rng.random(x.shape) < 0.2] = -np.inf
        x[0, 0] = -np.inf  # a whole plane of -inf
        y, _ = _against_torch(bp.AdaptiveMaxPool2D(out, dtype=dtype), nn.AdaptiveMaxPool2d(out),
                              x)
        assert np.isnan(y).any() and np.isneginf(y).any()
        _against_torch(bp.AdaptiveMaxPool1D(4, dtype=dtype), nn.AdaptiveMaxPool1d(4), x[0])


def test_adaptive_avg_pool_keeps_inf_inside_its_windows():
    torch = pytest.importorskip("torch")
    x = _x((1, 1, 5))
    x[0, 0, 4] = np.inf  # read again past the end of the shorter windows: never as 0 · inf
    layer = bp.AdaptiveAvgPool1D(3, dtype=np.float64)
    want = torch.nn.AdaptiveAvgPool1d(3)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(layer.forward(x), want)
    assert np.isposinf(want[0, 0, 2]) and np.isfinite(want[0, 0, :2]).all()


def test_adaptive_windows_follow_floor_and_ceil():
    x = np.arange(5.0)[None, None]  # 5 -> 3: windows [0, 2), [1, 4), [3, 5)
    np.testing.assert_allclose(bp.AdaptiveAvgPool1D(3, dtype=np.float64).forward(x),
                               [[[0.5, 2.0, 3.5]]])
    np.testing.assert_array_equal(bp.AdaptiveMaxPool1D(3, dtype=np.float64).forward(x),
                                  [[[1.0, 3.0, 4.0]]])
    layer = bp.AdaptiveAvgPool1D(3, dtype=np.float64)
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.backward(np.ones((1, 1, 3))),
                               [[[1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2]]])


def test_adaptive_max_pool_routes_overlapping_windows_to_a_shared_maximum():
    layer = bp.AdaptiveMaxPool1D(4, dtype=np.float64)  # 3 -> 4: [0, 1) [0, 2) [1, 3) [2, 3)
    layer.forward(np.array([[[0.0, 5.0, 1.0]]]), training=True)
    np.testing.assert_array_equal(layer.backward(np.array([[[1.0, 2.0, 4.0, 8.0]]])),
                                  [[[1.0, 6.0, 8.0]]])


# -- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,shape", [
    (bp.Upsample(scale_factor=0.5, mode="bilinear", dtype=np.float64), (2, 2, 5, 7)),
    (bp.Upsample(scale_factor=3, mode="bilinear", align_corners=True, dtype=np.float64),
     (1, 2, 2, 3)),
    (bp.Upsample(size=9, mode="linear", align_corners=True, dtype=np.float64), (2, 2, 4)),
    (bp.Upsample(size=(4, 3), mode="nearest-exact", dtype=np.float64), (2, 2, 7, 5)),
    (bp.AdaptiveAvgPool2D((4, 6), dtype=np.float64), (2, 2, 3, 4)),
    (bp.AdaptiveMaxPool2D((2, None), dtype=np.float64), (2, 2, 7, 3)),
], ids=repr)
def test_gradients_match_central_differences(layer, shape):
    x = np.random.default_rng(0).permutation(int(np.prod(shape))).reshape(shape) / 10
    assert bp.check_gradients(layer, x.astype(np.float64)).passed


class _ForgetsTheOverlap(bp.AdaptiveAvgPool1D):
    """WRONG on purpose: each input gets the gradient of its first window only."""

    def backward(self, dy):
        x_shape, win = self._pop("_x_shape", "_win")
        (_, n, start, count), = win
        owner = np.searchsorted(start, np.arange(n), side="right") - 1
        return dy.take(owner, axis=-1) / count[owner]


def test_a_wrong_backward_fails_the_gradient_check():
    x = np.random.default_rng(0).standard_normal((2, 2, 5))
    assert bp.check_gradients(bp.AdaptiveAvgPool1D(3, dtype=np.float64), x).passed
    assert not bp.check_gradients(_ForgetsTheOverlap(3, dtype=np.float64), x).passed


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    ({"size": 3, "scale_factor": 2}, r"exactly one of size and scale_factor, got both"),
    ({}, r"exactly one of size and scale_factor, got neither"),
    ({"scale_factor": 2, "align_corners": True}, r"align_corners=None with mode 'nearest'"),
    ({"scale_factor": 2, "mode": "nearest-exact", "align_corners": False},
     r"align_corners=None with mode 'nearest-exact'"),
    ({"scale_factor": 2, "mode": "cubic"}, r"expected mode 'nearest', .* 'bicubic' or "
                                           r"'trilinear', got 'cubic'"),
    ({"scale_factor": 2, "mode": "area"}, r"mode 'area' is AdaptiveAvgPool1D/2D"),
    ({"size": 0}, r"expected size >= 1, got 0"),
    ({"size": (3, 0)}, r"expected size >= 1, got 0"),
    ({"scale_factor": 0.0}, r"expected scale_factor > 0, got 0.0"),
    ({"scale_factor": -2}, r"expected scale_factor > 0, got -2"),
    ({"size": (2, 3), "mode": "linear"}, r"size as one value or 1 .* mode 'linear'"),
    ({"scale_factor": (2, 2, 2, 2)}, r"scale_factor as one value or 1, 2 or 3"),
])
def test_upsample_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        bp.Upsample(**kwargs)
    assert str(err.value).startswith("Upsample: expected ")


def test_upsample_refuses_wrong_types():
    with pytest.raises(TypeError, match=r"expected size to be a positive int, got 2.5"):
        bp.Upsample(size=2.5)
    with pytest.raises(TypeError, match=r"expected scale_factor as a number .*got '2'"):
        bp.Upsample(scale_factor="2")
    with pytest.raises(TypeError, match=r"align_corners to be True or False"):
        bp.Upsample(scale_factor=2, mode="linear", align_corners="yes")


@pytest.mark.parametrize("layer,shape,match", [
    (bp.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4),
     r"expected input of shape \(N, C, H, W\), got \(2, 3, 4\)"),
    (bp.Upsample(scale_factor=2, mode="linear"), (2, 3, 4, 4),
     r"expected input of shape \(N, C, L\), got \(2, 3, 4, 4\)"),
    (bp.Upsample(scale_factor=2), (2, 3, 4, 4, 4, 4),
     r"expected input of shape \(N, C, L\), \(N, C, H, W\) or \(N, C, D, H, W\), got "
     r"\(2, 3, 4, 4, 4, 4\)"),
    (bp.Upsample(size=(3, 3)), (2, 3, 4), r"expected input of shape \(N, C, H, W\)"),
    (bp.Upsample(scale_factor=0.2), (2, 3, 4),
     r"expected input and output sizes of at least 1, got input of shape \(2, 3, 4\) and "
     r"output size 0 on axis 2"),
    (bp.AdaptiveAvgPool2D(2), (2, 3, 4), r"expected input of shape \(N, C, H, W\)"),
    (bp.AdaptiveMaxPool1D(2), (2, 3, 0), r"expected at least one position to pool over"),
])
def test_layers_refuse_inputs_they_cannot_take(layer, shape, match):
    with pytest.raises(ValueError, match=re.escape(repr(layer)) + ": " + match):
        layer.forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("cls", [bp.AdaptiveAvgPool1D, bp.AdaptiveMaxPool1D,
                                 bp.AdaptiveAvgPool2D, bp.AdaptiveMaxPool2D])
def test_adaptive_pools_refuse_bad_output_sizes(cls):
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"^{name}: expected output_size >= 1, got 0"):
        cls(0)  # PyTorch returns an empty array; an output of nothing is a mistake here
    with pytest.raises(TypeError, match=rf"^{name}: expected output_size to be a positive int"):
        cls(2.0)
    with pytest.raises(TypeError, match=rf"^{name}: expected output_size to be a positive int, "
                                        r"got None"):
        cls(None)  # None only as an entry of a pair
    with pytest.raises(ValueError, match=rf"^{name}: expected output_size as an int or"):
        cls((2, 2, 2))
    if name.endswith("1D"):
        with pytest.raises(TypeError, match="got None"):
            cls((None,))


# -- repr, config, saving, training --------------------------------------------------------------
def test_repr_shows_the_arguments_as_pytorch_s_does():
    assert repr(bp.Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0)"
    assert repr(bp.Upsample(size=(3, 4), mode="bilinear", align_corners=True)) == \
        "Upsample(size=(3, 4), mode='bilinear', align_corners=True)"
    assert repr(bp.Upsample(scale_factor=[1.5, 2], dtype=np.float64)) == \
        "Upsample(scale_factor=(1.5, 2.0), dtype='float64')"
    assert repr(bp.AdaptiveAvgPool2D((None, 3))) == "AdaptiveAvgPool2D((None, 3))"
    assert repr(bp.AdaptiveMaxPool2D(7)) == "AdaptiveMaxPool2D(7)"
    assert repr(bp.AdaptiveMaxPool1D(4)) == "AdaptiveMaxPool1D(4)"


def _model(dt=np.float32):
    return bp.Sequential([
        bp.Conv2D(1, 4, 3, padding=1, dtype=dt, rng=0), bp.ReLU(dtype=dt),
        bp.AdaptiveMaxPool2D(3, dtype=dt), bp.Upsample(scale_factor=2, mode="bilinear", dtype=dt),
        bp.AdaptiveAvgPool2D((2, None), dtype=dt), bp.Upsample(size=(3, 5), dtype=dt),
        bp.Flatten(dtype=dt), bp.Reshape((4, 15), dtype=dt),
        bp.Upsample(scale_factor=1.5, mode="linear", align_corners=True, dtype=dt),
        bp.AdaptiveAvgPool1D(6, dtype=dt), bp.AdaptiveMaxPool1D(4, dtype=dt),
        bp.Flatten(dtype=dt), bp.Dense(16, 4, dtype=dt, rng=1),
    ])


def _quadrants(n=96, seed=0):
    """6x6 noise with a bright 3x3 quadrant; the label says which."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.uniform(0, 0.5, (n, 1, 6, 6)).astype(np.float32)
    for q in range(4):
        x[y == q, 0, 3 * (q // 2):3 * (q // 2) + 3, 3 * (q % 2):3 * (q % 2) + 3] += 1.0
    return x, y


def test_save_and_load_give_the_same_model(tmp_path):
    model = _model()
    x, _ = _quadrants(8)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert bp.check_gradients(_model(np.float64), x[:2].astype(np.float64)).passed


def test_a_model_with_them_trains():
    x, y = _quadrants()
    model = _model()
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                        optimizer=bp.Adam(model.parameters(), lr=0.02), epochs=8,
                        batch_size=16, seed=0, progress=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0], losses


def test_exported_with_formulas_and_pytorch_s_names_point_at_them():
    names = ["Upsample", "AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveMaxPool1D",
             "AdaptiveMaxPool2D"]
    for name in names:
        assert name in bp.__all__ and name in bp.layers.__all__ and getattr(bp, name)
        assert bp.formulas(name).startswith("Forward:") and "Backward:" in bp.formulas(name)
    for theirs, ours in [("AdaptiveAvgPool2d", "AdaptiveAvgPool2D"),
                         ("AdaptiveMaxPool1d", "AdaptiveMaxPool1D"),
                         ("UpsamplingNearest2d", "Upsample"), ("UpSampling2D", "Upsample")]:
        with pytest.raises(AttributeError, match=f"backprop calls it {ours}"):
            getattr(bp, theirs)
    with pytest.raises(AttributeError, match=r"mode='bilinear', align_corners=True"):
        bp.UpsamplingBilinear2d  # noqa: B018
