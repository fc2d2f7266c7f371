"""Upsample's bicubic, trilinear and 3-D nearest modes against PyTorch 2.13 (CPU)."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

import backprop as bp

# measured against torch 2.13: float64 ~2e-15, float32 forward 2.1e-7 and dx 1.9e-6 (bicubic;
# its backward rounds the cubic weights its own way), as a share of the largest |value|
TOL = {np.float64: (1e-12, 1e-12), np.float32: (5e-7, 4e-6)}


def _against_torch(x, size=None, scale=None, mode="bicubic", align=None, *, exact_dx=True):
    """Forward and dx (from a random dy) of Upsample and ``F.interpolate`` on ``x``."""
    torch = pytest.importorskip("torch")
    layer = bp.Upsample(size, scale, mode=mode, align_corners=align, dtype=x.dtype)
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, size, scale, mode=mode, align_corners=align)
    yt.backward(torch.tensor(dy))
    assert y.dtype == dx.dtype == x.dtype and y.shape == yt.shape
    tol_y, tol_dx = TOL[x.dtype.type]
    want = yt.detach().numpy()
    np.testing.assert_allclose(y, want, rtol=0, atol=tol_y * np.abs(want).max(), err_msg=mode)
    if exact_dx:
        want = xt.grad.numpy()
        np.testing.assert_allclose(dx, want, rtol=0, atol=tol_dx * np.abs(want).max())
    return y, dx, xt.grad.numpy()


def _x(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _sizes(spatial, scale):
    scales = scale if isinstance(scale, tuple) else (scale,) * len(spatial)
    return [math.floor(n * s) for n, s in zip(spatial, scales, strict=True)]


SHAPES_2D = [(1, 1), (1, 3), (2, 2), (4, 5), (7, 2), (9, 13)]
SCALES_2D = [2, 3, 1.5, 0.5, 2.5, 0.75, 1.7, 0.6, (1.7, 0.6), (0.6, 2.3), 1.1]
SHAPES_3D = [(1, 1, 1), (1, 3, 2), (3, 4, 5), (5, 2, 4)]
SCALES_3D = [2, 1.5, 0.5, 1.7, 0.6, (1.7, 0.6, 2.3), (1.0, 2.5, 0.75), (2.2, 1.1, 2)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("align", [None, True])
def test_bicubic_matches_torch_over_scale_factors_and_sizes(align, dtype):
    for hw, scale in itertools.product(SHAPES_2D, SCALES_2D):
        m = _sizes(hw, scale)
        if min(m) >= 1:  # torch's backward copies dy when the shape is kept: see below
            _against_torch(_x((2, 3, *hw), dtype), None, scale, align=align,
                           exact_dx=tuple(m) != hw)
    for hw, size in itertools.product(SHAPES_2D[:5], [(1, 1), (5, 3), (2, 9), (1, 7), (4, 5)]):
        _against_torch(_x((2, 3, *hw), dtype), size, align=align)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode,align", [("trilinear", None), ("trilinear", True),
                                        ("nearest", None), ("nearest-exact", None)])
def test_3d_modes_match_torch_over_scale_factors_and_sizes(mode, align, dtype):
    for dhw, scale in itertools.product(SHAPES_3D, SCALES_3D):
        m = _sizes(dhw, scale)
        # torch's 3-D 'nearest' backward copies or halves wherever m == n or 2n
        shortcut = mode == "nearest" and any(k in (n, 2 * n) for n, k in zip(dhw, m,
                                                                              strict=True))
        if min(m) >= 1:
            _against_torch(_x((2, 3, *dhw), dtype), None, scale, mode, align,
                           exact_dx=not shortcut)
    for dhw, size in itertools.product(SHAPES_3D, [(1, 1, 1), (4, 3, 7), (2, 9, 1), 6]):
        _against_torch(_x((2, 2, *dhw), dtype), size, mode=mode, align=align)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_3d_nearest_indices_match_torch_exactly_on_every_axis(mode, dtype):
    # PyTorch's 3-D kernel is its generic one (as 1-D): x's dtype, no m == n / 2n shortcut;
    # ties such as o · (1 / 2.3) = 30 at o = 69 and 2.2 on 2 (floor(o / 2.2), not o // 2)
    torch = pytest.importorskip("torch")
    for n, scale, axis in itertools.product([2, 7, 31, 32], [2.3, 2.7, 1.1, 0.3, 2 / 3, 2.2],
                                            [2, 3, 4]):
        if n * scale < 1:
            continue
        shape = [2, 2, 1, 1, 1]
        shape[axis] = n
        x = np.broadcast_to(np.arange(n, dtype=dtype).reshape([-1] + [1] * (4 - axis)), shape)
        scales = tuple(scale if a == axis else 1.0 for a in (2, 3, 4))
        ours = bp.Upsample(scale_factor=scales, mode=mode, dtype=dtype).forward(x)
        theirs = torch.nn.Upsample(scale_factor=scales, mode=mode)(torch.tensor(x.copy()))
        np.testing.assert_array_equal(ours, theirs.numpy(), err_msg=f"{n} {scale} {axis}")


def test_3d_nearest_backward_is_its_forward_s_gradient_where_torch_s_is_not():
    # 2.2 on 2 depths: both forwards read depths [0, 0, 0, 1]; torch's backward halves (m == 2n)
    x = np.array([1.0, 2.0]).reshape(1, 1, 2, 1, 1)
    layer = bp.Upsample(scale_factor=(2.2, 1, 1), dtype=np.float64)
    y, dx, theirs = _against_torch(x, None, (2.2, 1.0, 1.0), "nearest", exact_dx=False)
    np.testing.assert_array_equal(y.ravel(), [1.0, 1.0, 1.0, 2.0])
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 4, 1, 1))).ravel(), [3.0, 1.0])
    assert bp.check_gradients(layer, x).passed
    assert not np.allclose(dx, theirs)


def test_bicubic_backward_is_its_forward_s_gradient_where_torch_copies_dy():
    # 1.1 keeps (7, 2): both forwards resample by 1 / 1.1; torch's backward returns dy
    x = _x((2, 3, 7, 2))
    y, dx, theirs = _against_torch(x, None, 1.1, exact_dx=False)
    assert not np.allclose(y, x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_array_equal(theirs, dy)
    assert not np.allclose(dx, dy)
    assert bp.check_gradients(bp.Upsample(scale_factor=1.1, mode="bicubic", dtype=np.float64),
                              x[:1, :2]).passed


def test_bicubic_reads_before_the_first_pixel_unclamped_and_same_size_is_x():
    # (0 + 0.5) / 2 - 0.5 = -0.25: floor -1, λ = 0.75, taps x[0] x[0] x[0] x[1] (clamped);
    # a source clamped at 0 (as linear's) would give x[0] = 0, not the undershoot K(1.25)
    x = np.array([[[[0.0, 1.0, 0.0]]]])
    y = bp.Upsample(size=(1, 6), mode="bicubic", dtype=np.float64).forward(x)
    a, d = -0.75, 1.25
    np.testing.assert_allclose(y[0, 0, 0, 0], ((a * d - 5 * a) * d + 8 * a) * d - 4 * a,
                               rtol=1e-15)
    assert y[0, 0, 0, 0] < 0
    np.testing.assert_array_equal(bp.Upsample(size=(1, 3), mode="bicubic",
                                              dtype=np.float64).forward(x), x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode,spatial,scale", [
    ("bicubic", (4, 5), (1.5, 2)), ("bicubic", (4, 5), 1.0), ("bicubic", (4, 5), (0.6, 1.7)),
    ("bilinear", (4, 5), 1.0), ("linear", (5,), 1.0), ("trilinear", (3, 4, 5), (1.0, 1.7, 0.6)),
    ("trilinear", (3, 4, 5), 1.0), ("nearest", (3, 4, 5), (1.5, 2, 0.6)),
])
def test_non_finite_values_spread_where_torch_spreads_them(mode, spatial, scale, dtype):
    # m == n is x·1 + x·0 (linear) or 0·x[o-1] + 1·x[o] + ... (bicubic): inf turns into NaN
    torch = pytest.importorskip("torch")
    x = _x((1, 2, *spatial), dtype)
    flat = x.reshape(2, -1)
    flat[0, 2], flat[1, 1], flat[1, -1] = np.inf, np.nan, -np.inf
    ours = bp.Upsample(scale_factor=scale, mode=mode, dtype=dtype).forward(x)
    theirs = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=scale,
                                             mode=mode).numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=1e-5)
    if scale == 1.0:  # channel 0 holds no NaN, only an inf
        assert np.isnan(theirs[0, 0]).any()


@pytest.mark.parametrize("layer,shape", [
    (bp.Upsample(scale_factor=(1.7, 0.6), mode="bicubic", dtype=np.float64), (2, 2, 4, 7)),
    (bp.Upsample(size=(5, 2), mode="bicubic", align_corners=True, dtype=np.float64),
     (1, 2, 3, 4)),
    (bp.Upsample(size=(1, 2), mode="bicubic", dtype=np.float64), (1, 2, 1, 5)),
    (bp.Upsample(scale_factor=(1.5, 0.6, 2), mode="trilinear", dtype=np.float64),
     (2, 2, 2, 5, 3)),
    (bp.Upsample(size=(3, 1, 4), mode="trilinear", align_corners=True, dtype=np.float64),
     (1, 2, 2, 3, 3)),
    (bp.Upsample(scale_factor=(2.2, 1.1, 0.7), dtype=np.float64), (1, 2, 2, 3, 5)),
    (bp.Upsample(size=(3, 4, 2), mode="nearest-exact", dtype=np.float64), (1, 2, 5, 2, 3)),
], ids=repr)
def test_gradients_match_central_differences(layer, shape):
    x = np.random.default_rng(0).permutation(int(np.prod(shape))).reshape(shape) / 10
    assert bp.check_gradients(layer, x.astype(np.float64)).passed


@pytest.mark.parametrize("layer,shape,match", [
    (bp.Upsample(scale_factor=2, mode="bicubic"), (2, 3, 4),
     r"expected input of shape \(N, C, H, W\), got \(2, 3, 4\)"),
    (bp.Upsample(scale_factor=2, mode="bicubic"), (2, 3, 4, 4, 4),
     r"expected input of shape \(N, C, H, W\), got \(2, 3, 4, 4, 4\)"),
    (bp.Upsample(scale_factor=2, mode="trilinear"), (2, 3, 4, 4),
     r"expected input of shape \(N, C, D, H, W\), got \(2, 3, 4, 4\)"),
    (bp.Upsample(size=(2, 3, 4)), (2, 3, 4, 4), r"expected input of shape \(N, C, D, H, W\)"),
    (bp.Upsample(scale_factor=0.2, mode="trilinear"), (2, 3, 4, 9, 9),
     r"expected input and output sizes of at least 1, got input of shape \(2, 3, 4, 9, 9\) "
     r"and output size 0 on axis 2"),
])
def test_new_modes_refuse_inputs_of_another_rank(layer, shape, match):
    with pytest.raises(ValueError, match=re.escape(repr(layer)) + ": " + match):
        layer.forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("kwargs,match", [
    ({"scale_factor": (2, 2, 2), "mode": "bicubic"}, r"scale_factor as one value or 2 "
                                                     r"\(one per spatial axis of mode 'bicubic'\)"),
    ({"size": (2, 2), "mode": "trilinear"}, r"size as one value or 3 .* mode 'trilinear'"),
    ({"scale_factor": 2, "mode": "nearest", "align_corners": False},
     r"align_corners=None with mode 'nearest' \(it applies to 'linear', 'bilinear', "
     r"'bicubic' and 'trilinear' only\)"),
])
def test_new_modes_refuse_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match="^Upsample: expected " + match):
        bp.Upsample(**kwargs)


def test_new_modes_keep_their_arguments_through_repr_and_saving(tmp_path):
    layer = bp.Upsample(scale_factor=(1.5, 2, 0.5), mode="trilinear", align_corners=True)
    assert repr(layer) == ("Upsample(scale_factor=(1.5, 2.0, 0.5), mode='trilinear', "
                           "align_corners=True)")
    model = bp.Sequential([bp.Upsample(size=(5, 3), mode="bicubic", align_corners=False),
                           bp.Flatten()])
    model.save(tmp_path / "m.npz")
    x = _x((2, 3, 4, 4), np.float32)
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz").forward(x), model.forward(x))
    with pytest.raises(AttributeError, match=r"backprop calls it Upsample .*UpSampling3D\(size=k"
                                             r"\) is Upsample\(scale_factor=k\)"):
        bp.UpSampling3D  # noqa: B018
