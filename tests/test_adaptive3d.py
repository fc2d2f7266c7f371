"""AdaptiveAvgPool3D and AdaptiveMaxPool3D: PyTorch's windows and picks on (N, C, D, H, W).

The pools are AdaptiveAvgPool2D / AdaptiveMaxPool2D with a third axis: separable passes
W, then H, then D. Max pooling composes the three passes' positions into one flat index
in ``D·H·W`` (``_tiling.flat_index``: it once composed two passes at most).

Measured against torch 2.x (CPU): ``AdaptiveMaxPool3d``'s indices (``return_indices=True``)
are ours element for element, and its maxima and input gradients bit for bit, in
float32 and float64, with many ties, -0.0, NaN and +-inf: the pick is the first
maximum in (d, h, w) row-major order, or the last NaN of the window, and a window of
-inf picks its first input (torch's index there is a real one, not -1). The average
differs from torch's in the last bits (torch sums the box then divides; we take means
per axis): float64 within 1e-13, float32 within ~2e-7. Without torch the same picks
are checked against a window-by-window loop.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop as bp

SHAPES = [  # (input (N, C, D, H, W), output_size): what each exercises
    ((2, 3, 4, 6, 8), (2, 3, 4)),      # sizes that divide: strided views
    ((2, 3, 4, 6, 8), 2),              # one int for all three
    ((2, 2, 5, 7, 6), (3, 4, 5)),      # overlapping windows on every axis
    ((1, 2, 3, 2, 4), (5, 4, 7)),      # larger than the input: windows share inputs
    ((2, 2, 4, 5, 6), 1),              # global pooling
    ((2, 2, 5, 3, 7), (1, 1, 1)),      # global, as a triple
    ((2, 2, 4, 5, 6), (None, 2, None)),  # None keeps that axis
    ((2, 2, 6, 5, 7), (3, None, 1)),
    ((1, 3, 6, 5, 3), (4, 5, 6)),      # batch 1; overlap, keep, larger mixed
    ((2, 1, 1, 1, 1), (2, 1, 3)),
]


def _torch_pool(torch, kind, out, x, dy):
    """torch's y, dx (autograd) and, for max, its indices."""
    xt = torch.tensor(x, requires_grad=True)
    if kind == "Max":
        yt, index = torch.nn.AdaptiveMaxPool3d(out, return_indices=True)(xt)
    else:
        yt, index = torch.nn.AdaptiveAvgPool3d(out)(xt), None
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy(), None if index is None else index.numpy()


def _ours(kind, out, x, dy):
    layer = getattr(bp, f"Adaptive{kind}Pool3D")(out, dtype=x.dtype)
    y = layer.forward(x, training=True)
    arg = getattr(layer, "_arg", None)
    arg = None if arg is None else arg.copy()
    return y, layer.backward(dy), arg, layer.forward(x)


def _ties(shape, dtype, rng):
    """Small integers (many ties), -0.0, NaN, +-inf, and one window of -inf only."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.2] *= -1
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.08] = -np.inf
    x[rng.random(shape) < 0.03] = np.inf
    x[0, 0] = -np.inf
    return x


@pytest.mark.parametrize("kind", ["Avg", "Max"])
@pytest.mark.parametrize("shape,out", SHAPES)
def test_adaptive_3d_matches_torch_in_float64(kind, shape, out):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(_out_shape(shape, out))
    y, dx, arg, y_inference = _ours(kind, out, x, dy)
    want_y, want_dx, index = _torch_pool(torch, kind, out, x, dy)
    assert y.shape == want_y.shape and y.dtype == dx.dtype == np.float64
    np.testing.assert_array_equal(y_inference, y)
    if kind == "Max":
        np.testing.assert_array_equal(arg, index)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(dx, want_dx)
    else:
        np.testing.assert_allclose(y, want_y, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["Avg", "Max"])
@pytest.mark.parametrize("shape,out", SHAPES)
def test_adaptive_3d_matches_torch_in_float32(kind, shape, out):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(_out_shape(shape, out)).astype(np.float32)
    y, dx, arg, _ = _ours(kind, out, x, dy)
    want_y, want_dx, index = _torch_pool(torch, kind, out, x, dy)
    assert y.dtype == dx.dtype == np.float32
    if kind == "Max":
        np.testing.assert_array_equal(arg, index)
        np.testing.assert_array_equal(y, want_y)
    else:
        np.testing.assert_allclose(y, want_y, rtol=2e-6, atol=2e-6)
    # overlapping max windows add their shares in float64 (torch: float32)
    np.testing.assert_allclose(dx, want_dx, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,out", SHAPES)
def test_adaptive_max_3d_ties_nan_and_inf_pick_what_torch_picks(shape, out, dtype):
    torch = pytest.importorskip("torch")
    x = _ties(shape, dtype, np.random.default_rng(2))
    dy = np.arange(1, np.prod(_out_shape(shape, out)) + 1, dtype=dtype)  # exact sums
    dy = dy.reshape(_out_shape(shape, out))
    y, dx, arg, y_inference = _ours("Max", out, x, dy)
    want_y, want_dx, index = _torch_pool(torch, "Max", out, x, dy)
    np.testing.assert_array_equal(arg, index)
    assert y.tobytes() == want_y.tobytes() == y_inference.tobytes()  # -0.0 and NaN too
    assert dx.tobytes() == (want_dx + 0.0).tobytes()  # + 0.0: torch's zeros may be -0.0


@pytest.mark.parametrize("out", [(2, 3, 4), (3, 4, 5), 1, (None, 3, 9)])
def test_adaptive_avg_3d_propagates_nan_and_inf_as_torch(out):
    torch = pytest.importorskip("torch")
    x = _ties((2, 2, 4, 6, 8), np.float64, np.random.default_rng(3))
    y = bp.AdaptiveAvgPool3D(out, dtype=np.float64).forward(x)
    want = torch.nn.AdaptiveAvgPool3d(out)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_allclose(y[~np.isnan(y)], want[~np.isnan(want)], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["Avg", "Max"])
@pytest.mark.parametrize("out", [(5, 5, 3), (3, 4, 4), 1, (7, 11, 8)])
def test_adaptive_3d_reads_non_contiguous_input(kind, out):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 8, 10, 7, 9)).transpose(1, 0, 4, 2, 3)[:, :, ::2, :, 1:]
    assert not x.flags.c_contiguous and x.shape == (8, 3, 5, 10, 6)
    dy = rng.standard_normal(_out_shape(x.shape, out))
    y, dx, _, _ = _ours(kind, out, x, dy)
    want_y, want_dx, _ = _torch_pool(torch, kind, out, np.ascontiguousarray(x), dy)
    np.testing.assert_allclose(y, want_y, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-13, atol=1e-14)


def _window_by_window(x, out):
    """y (avg, max) and max's flat index in D·H·W, one window at a time: the last NaN
    of the window, else its first maximum in row-major order."""
    size = x.shape[2:]
    out = tuple(n if o is None else o for n, o in zip(size, _triple(out), strict=True))
    avg, top = np.zeros((*x.shape[:2], *out)), np.zeros((*x.shape[:2], *out))
    arg = np.zeros((*x.shape[:2], *out), np.int64)
    for n, c, *o in np.ndindex(arg.shape):
        box = [range(i * s // m, -(-(i + 1) * s // m)) for i, s, m in zip(o, size, out,
                                                                        strict=True)]
        flat = [np.ravel_multi_index(p, size) for p in itertools.product(*box)]
        v = x[n, c].reshape(-1)[flat]
        pick = len(v) - 1 - np.isnan(v[::-1]).argmax() if np.isnan(v).any() else v.argmax()
        avg[(n, c, *o)], top[(n, c, *o)], arg[(n, c, *o)] = v.mean(), v[pick], flat[pick]
    return avg, top, arg


@pytest.mark.parametrize("shape,out", SHAPES)
def test_adaptive_3d_matches_a_window_by_window_loop(shape, out):
    """The same checks without torch: every path (views, gathers, global) at d = 3."""
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, shape).astype(np.float64)  # ties
    x[rng.random(shape) < 0.05] = np.nan
    avg, top, arg = _window_by_window(x, out)
    np.testing.assert_allclose(bp.AdaptiveAvgPool3D(out, dtype=np.float64).forward(x), avg,
                               rtol=1e-14, atol=1e-14)
    layer = bp.AdaptiveMaxPool3D(out, dtype=np.float64)
    np.testing.assert_array_equal(layer.forward(x, training=True), top)
    np.testing.assert_array_equal(layer._arg, arg)
    dx = layer.backward(np.ones(arg.shape))
    counts = np.zeros(x.shape).reshape(*shape[:2], -1)
    for n, c in np.ndindex(shape[:2]):
        np.add.at(counts[n, c], arg[n, c].ravel(), 1.0)
    np.testing.assert_array_equal(dx, counts.reshape(shape))


@pytest.mark.parametrize("kind", ["Avg", "Max"])
@pytest.mark.parametrize("out", [(2, 3, 4), (3, 4, 5), 1, (None, 4, None)])
def test_adaptive_3d_passes_an_empty_batch_through(kind, out):
    layer = getattr(bp, f"Adaptive{kind}Pool3D")(out)
    y = layer.forward(np.zeros((0, 2, 4, 6, 8), np.float32), training=True)
    assert y.shape == (0, 2, *_out_shape((0, 2, 4, 6, 8), out)[2:]) and y.dtype == np.float32
    assert layer.backward(y).shape == (0, 2, 4, 6, 8)


@pytest.mark.parametrize("out", [1, (2, 1, 3)])
def test_adaptive_avg_3d_gradients_match_central_differences(out):
    x = np.random.default_rng(6).standard_normal((2, 2, 3, 2, 4))
    assert bp.check_gradients(bp.AdaptiveAvgPool3D(out, dtype=np.float64), x).passed


@pytest.mark.parametrize("cls", [bp.AdaptiveAvgPool3D, bp.AdaptiveMaxPool3D])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 4, 5, 6, 7), (3, 4, 5)])
def test_adaptive_3d_wrong_rank_names_the_layer_and_both_shapes(cls, shape):
    expected = rf"{cls.__name__}\(2\): expected input of shape \(N, C, D, H, W\), got " \
               + str(shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=expected):
        cls(2).forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("cls", [bp.AdaptiveAvgPool3D, bp.AdaptiveMaxPool3D])
def test_adaptive_3d_refuses_an_empty_spatial_axis(cls):
    with pytest.raises(ValueError, match=r"expected at least one position to pool over, got "
                                         r"input of shape \(2, 3, 4, 0, 6\)"):
        cls(2).forward(np.zeros((2, 3, 4, 0, 6), np.float32))


@pytest.mark.parametrize("cls", [bp.AdaptiveAvgPool3D, bp.AdaptiveMaxPool3D])
@pytest.mark.parametrize("output_size,error,message", [
    ((2, 3), ValueError, r"expected output_size as an int or 3 values, got \(2, 3\)"),
    ((2, 3, 4, 5), ValueError, r"expected output_size as an int or 3 values"),
    (0, ValueError, r"expected output_size >= 1, got 0"),
    ((1, -1, 2), ValueError, r"expected output_size >= 1, got -1"),
    (None, TypeError, r"expected output_size to be a positive int, got None"),
    (2.5, TypeError, r"expected output_size to be a positive int, got 2.5"),
    ((2, "a", 3), TypeError, r"expected output_size to be a positive int, got 'a'"),
])
def test_adaptive_3d_bad_output_size_says_what_it_expected(cls, output_size, error, message):
    with pytest.raises(error, match=rf"{cls.__name__}: {message}"):
        cls(output_size)


def test_adaptive_3d_repr_config_and_save_load(tmp_path):
    assert repr(bp.AdaptiveAvgPool3D((None, 2, 3))) == "AdaptiveAvgPool3D((None, 2, 3))"
    assert repr(bp.AdaptiveMaxPool3D(4)) == "AdaptiveMaxPool3D(4)"
    assert bp.AdaptiveMaxPool3D([2, None, 3]).output_size == (2, None, 3)
    model = bp.Sequential([bp.AdaptiveMaxPool3D((3, None, 2)), bp.AdaptiveAvgPool3D(1)])
    bp.save(model, tmp_path / "m.npz")
    x = np.random.default_rng(7).standard_normal((2, 2, 5, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz").forward(x), model.forward(x))


def test_torch_names_point_at_the_3d_pools():
    with pytest.raises(AttributeError, match="backprop calls it AdaptiveAvgPool3D"):
        _ = bp.AdaptiveAvgPool3d
    with pytest.raises(AttributeError, match="backprop calls it AdaptiveMaxPool3D"):
        _ = bp.AdaptiveMaxPool3d
    with pytest.raises(TypeError, match="return_indices.*forward returns the maxima only"):
        bp.AdaptiveMaxPool3D(2, return_indices=True)


def _triple(out):
    return out if isinstance(out, tuple) else (out,) * 3


def _out_shape(shape, out):
    return (*shape[:2], *(n if o is None else o for n, o in zip(shape[2:], _triple(out),
                                                                 strict=True)))
