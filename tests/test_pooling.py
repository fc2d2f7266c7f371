"""Pooling, Flatten and Reshape: against PyTorch, gradient routing, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

import backprop as bp


def _distinct(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)


def _against_torch(layer, torch_fn, x):
    torch = pytest.importorskip("torch")
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_fn(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)


POOL2D = [  # (kernel, stride, (H, W))
    (2, None, (6, 8)), (2, None, (7, 9)), (3, 2, (7, 8)), ((2, 3), (1, 2), (7, 8)),
    (3, 1, (5, 5)), ((1, 2), None, (3, 6)),
]


@pytest.mark.parametrize("k,s,hw", POOL2D)
def test_maxpool2d_matches_torch(k, s, hw):
    F = pytest.importorskip("torch.nn.functional")
    _against_torch(bp.MaxPool2D(k, s, dtype=np.float64), lambda t: F.max_pool2d(t, k, s),
                   _distinct((2, 3, *hw)))


@pytest.mark.parametrize("k,s,hw", POOL2D)
def test_avgpool2d_matches_torch(k, s, hw):
    F = pytest.importorskip("torch.nn.functional")
    x = np.random.default_rng(0).standard_normal((2, 3, *hw))
    _against_torch(bp.AvgPool2D(k, s, dtype=np.float64), lambda t: F.avg_pool2d(t, k, s), x)


@pytest.mark.parametrize("k,s,length", [(2, None, 9), (3, 2, 9), (3, 1, 6), (4, None, 8)])
def test_pool1d_matches_torch(k, s, length):
    F = pytest.importorskip("torch.nn.functional")
    x = _distinct((2, 3, length))
    _against_torch(bp.MaxPool1D(k, s, dtype=np.float64), lambda t: F.max_pool1d(t, k, s), x)
    _against_torch(bp.AvgPool1D(k, s, dtype=np.float64), lambda t: F.avg_pool1d(t, k, s), x)


PADDED = [  # (kernel, stride, padding, (H, W))
    (3, 2, 1, (7, 8)), (3, 1, 1, (5, 5)), (2, None, 1, (6, 7)), ((3, 5), (2, 1), (1, 2), (6, 9)),
    (4, 3, 2, (7, 7)), ((2, 3), 1, (0, 1), (4, 5)),
]


@pytest.mark.parametrize("k,s,p,hw", PADDED)
def test_padded_pool2d_matches_torch(k, s, p, hw):
    F = pytest.importorskip("torch.nn.functional")
    x = _distinct((2, 3, *hw)) - 40.0   # all-negative windows too: padding must never win
    _against_torch(bp.MaxPool2D(k, s, p, dtype=np.float64),
                   lambda t: F.max_pool2d(t, k, s, p), x)
    _against_torch(bp.AvgPool2D(k, s, p, dtype=np.float64),
                   lambda t: F.avg_pool2d(t, k, s, p), x)


@pytest.mark.parametrize("k,s,p,length", [(3, 2, 1, 9), (2, None, 1, 7), (5, 1, 2, 6)])
def test_padded_pool1d_matches_torch(k, s, p, length):
    F = pytest.importorskip("torch.nn.functional")
    x = _distinct((2, 3, length)) - 20.0
    _against_torch(bp.MaxPool1D(k, s, p, dtype=np.float64),
                   lambda t: F.max_pool1d(t, k, s, p), x)
    _against_torch(bp.AvgPool1D(k, s, p, dtype=np.float64),
                   lambda t: F.avg_pool1d(t, k, s, p), x)


def test_padded_maxpool_by_hand_never_picks_the_padding():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)   # every value negative
    pool = bp.MaxPool2D(3, 2, padding=1, dtype=np.float64)
    y = pool.forward(x, training=True)
    # window (i, j) covers real rows/cols 2i-1..2i+1: its largest (least negative) entry
    np.testing.assert_array_equal(y[0, 0], [[-1.0, -2.0], [-4.0, -5.0]])
    dx = pool.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    assert dx.flags.c_contiguous and dx.shape == x.shape


def test_padded_avgpool_counts_the_padding_in_the_mean():
    x = np.ones((1, 1, 2, 2))
    y = bp.AvgPool2D(2, 2, padding=1, dtype=np.float64).forward(x)
    np.testing.assert_array_equal(y[0, 0], np.full((2, 2), 0.25))   # 1 real of 4


@pytest.mark.parametrize("make", [lambda: bp.MaxPool2D(2, padding=2),
                                  lambda: bp.AvgPool2D(3, padding=(1, 2)),
                                  lambda: bp.MaxPool1D(3, padding=2)])
def test_pool_padding_over_half_the_kernel_is_refused_like_torch(make):
    with pytest.raises(ValueError, match="at most half the kernel"):
        make()


def test_pool_negative_padding_is_refused():
    with pytest.raises(ValueError, match="padding >= 0"):
        bp.MaxPool2D(2, padding=-1)


def test_padded_pool_survives_save_and_load(tmp_path):
    model = bp.Sequential([bp.Conv2D(1, 2, 3, padding=1, rng=0), bp.MaxPool2D(3, 2, 1),
                           bp.AvgPool2D(2, padding=1), bp.Flatten()])
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    bp.save(model, tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    assert repr(again) == repr(model)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5), (2, 3, 2, 4, 3)])
def test_global_avg_pool_matches_torch_mean(shape):
    pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape)
    axes = tuple(range(2, len(shape)))
    _against_torch(bp.GlobalAvgPool(dtype=np.float64), lambda t: t.mean(axes), x)


def test_maxpool_routes_gradient_to_the_argmax_only():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 9.0, 8.0]]]], dtype=np.float32)
    pool = bp.MaxPool2D(2)
    np.testing.assert_array_equal(pool.forward(x, training=True), [[[[5.0, 9.0]]]])
    dx = pool.backward(np.array([[[[10.0, 20.0]]]], dtype=np.float32))
    np.testing.assert_array_equal(dx, [[[[0, 10, 0, 0], [0, 0, 20, 0]]]])


def test_maxpool_ties_go_to_the_first_maximum_like_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[[[2.0, 2.0, 1.0], [2.0, 2.0, 2.0], [0.0, 2.0, 2.0]]]])
    pool = bp.MaxPool2D(2, 1, dtype=np.float64)
    pool.forward(x, training=True)
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2, 1).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_overlapping_maxpool_accumulates_gradient_of_shared_maxima():
    x = np.zeros((1, 1, 3, 3), dtype=np.float32)
    x[0, 0, 1, 1] = 1.0  # the centre is the maximum of all four 2x2 windows
    pool = bp.MaxPool2D(2, 1)
    pool.forward(x, training=True)
    dx = pool.backward(np.ones((1, 1, 2, 2), dtype=np.float32))
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_pool_stride_defaults_to_kernel_and_repr_shows_it():
    assert bp.MaxPool2D(2).forward(np.zeros((1, 1, 6, 6), np.float32)).shape == (1, 1, 3, 3)
    assert repr(bp.MaxPool2D(2)) == "MaxPool2D(2)"
    assert repr(bp.AvgPool2D((2, 3), 1)) == "AvgPool2D((2, 3), stride=1)"
    assert bp.MaxPool1D(3, 2).get_config() == {"kernel_size": 3, "stride": 2, "padding": 0,
                                               "dilation": 1, "ceil_mode": False,
                                               "dtype": "float32"}
    assert repr(bp.MaxPool2D(3, 2, 1)) == "MaxPool2D(3, stride=2, padding=1)"


@pytest.mark.parametrize("layer,shape,need", [
    (bp.MaxPool2D(3), (2, 1, 2, 5), r"\(3, 3\)"),
    (bp.AvgPool2D((2, 4)), (2, 1, 5, 3), r"\(2, 4\)"),
    (bp.MaxPool1D(4), (2, 1, 3), r"\(4,\)"),
])
def test_pool_too_small_input_names_expected_and_received(layer, shape, need):
    with pytest.raises(ValueError, match=rf"expected input spatial size of at least {need}.*"
                                         rf"got input of shape {re_shape(shape)}"):
        layer.forward(np.zeros(shape, np.float32))


def re_shape(shape):
    return "\\(" + ", ".join(map(str, shape)) + "\\)"


@pytest.mark.parametrize("shape", [(2, 3), (1, 2, 3, 4, 5, 6)])
def test_global_avg_pool_rejects_other_ranks(shape):
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, L\), \(N, C, H, W\) or "
                                         r"\(N, C, D, H, W\), got \(" + ", ".join(map(str, shape))):
        bp.GlobalAvgPool().forward(np.zeros(shape, np.float32))


def test_maxpool_inference_keeps_float32_and_no_argmax():
    pool = bp.MaxPool2D(2)
    y = pool.forward(np.ones((2, 3, 4, 4), np.float32))
    assert y.dtype == np.float32 and not pool.has_cache


def test_flatten_and_reshape_round_trip_and_views():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    flat = bp.Flatten()
    y = flat.forward(x, training=True)
    assert y.shape == (2, 12) and np.shares_memory(y, x)
    assert flat.backward(y).shape == (2, 3, 4)
    img = bp.Reshape((1, 2, -1))
    z = img.forward(y, training=True)
    assert z.shape == (2, 1, 2, 6)
    np.testing.assert_array_equal(img.backward(z), y)


def test_reshape_rejects_bad_shapes_with_clear_messages():
    with pytest.raises(ValueError, match="at most one -1"):
        bp.Reshape((-1, -1))
    with pytest.raises(ValueError, match=r"sizes >= 1"):
        bp.Reshape((0, 4))
    with pytest.raises(TypeError, match="tuple of ints"):
        bp.Reshape((2.0, 4))
    with pytest.raises(ValueError, match=r"Reshape\(\(4, 4\)\): expected input with per-sample "
                                         r"size 16, got input of shape \(3, 15\)"):
        bp.Reshape((4, 4)).forward(np.zeros((3, 15), np.float32))
    with pytest.raises(ValueError, match=r"a multiple of 4, got input of shape \(3, 10\)"):
        bp.Reshape((4, -1)).forward(np.zeros((3, 10), np.float32))


def test_flatten_needs_a_batch_axis_and_more():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, \?\), got \(5,\)"):
        bp.Flatten().forward(np.zeros(5, np.float32))


@pytest.mark.parametrize("size,kernel,stride", [(7, 2, 2), (9, 2, 3), (8, 3, 3), (8, 2, 2),
                                                (8, 3, 2), (10, 2, 4)])
def test_maxpool2d_backward_covers_gaps_and_remainders_like_torch(size, kernel, stride):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, size, size))
    pool = bp.MaxPool2D(kernel, stride, dtype=np.float64)
    y = pool.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, kernel, stride).backward(torch.tensor(dy))
    np.testing.assert_allclose(pool.backward(dy), tx.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 1)])
def test_maxpool2d_routes_nan_and_all_minus_inf_windows_like_torch(k, s, p):
    """NaN takes the gradient (PyTorch's kernel moves on when a value is greater *or*
    NaN); a window whose real inputs are all -inf gives it to its first real input,
    never to the padding."""
    torch = pytest.importorskip("torch")
    x = _distinct((2, 3, 7, 6))
    x[0, 0, 1, 1] = x[0, 2, 3, 2] = x[0, 2, 3, 3] = np.nan
    x[1, 2, 4, 4] = -np.inf
    x[1, 1, :3, :3] = -np.inf
    layer = bp.MaxPool2D(k, s, p, dtype=np.float64)
    y = layer.forward(x, training=True)
    dy = np.arange(1.0, y.size + 1).reshape(y.shape)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, k, s, p)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())  # NaN == NaN here
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_maxpool1d_nan_and_minus_inf_by_hand():
    pool = bp.MaxPool1D(2, dtype=np.float64)
    pool.forward(np.array([[[1.0, np.nan, 0.5, 2.0]]]), training=True)
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 2))), [[[0, 1, 0, 1]]])
    pool = bp.MaxPool1D(3, 1, 1, dtype=np.float64)
    pool.forward(np.array([[[-np.inf, -np.inf, -np.inf, 3.0]]]), training=True)
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 4))), [[[2, 0, 0, 2]]])


def test_global_avg_pool_refuses_an_empty_spatial_size():
    with pytest.raises(ValueError, match=r"GlobalAvgPool\(\): expected at least one position "
                                         r"to average over, got input of shape \(2, 3, 0\)"):
        bp.GlobalAvgPool().forward(np.zeros((2, 3, 0), np.float32))


@pytest.mark.parametrize("make,shape", [
    (lambda: bp.MaxPool2D(2), (3, 4, 6, 8)), (lambda: bp.MaxPool2D((2, 3)), (2, 3, 4, 9)),
    (lambda: bp.MaxPool2D(3), (2, 2, 9, 6)), (lambda: bp.MaxPool1D(4), (3, 2, 12)),
    (lambda: bp.MaxPool2D(2, dtype=np.float64), (2, 3, 4, 4)),
    (lambda: bp.MaxPool2D(2, padding=1), (2, 3, 6, 6))])
def test_maxpool_contiguous_planes_route_gives_the_strided_routes_bits(make, shape):
    """Windows that tile the input exactly are regrouped by offset into contiguous planes
    first; outputs, argmax and gradients must be exactly those of the strided views,
    ties (many, from rounding to halves) and float32/float64 included."""
    pool = make()
    x = np.round(np.random.default_rng(0).standard_normal(shape) * 2) / 2
    x = x.astype(pool.dtype)
    padded, out, _ = pool._windows(x)
    assert pool._planes(padded, out)  # this case takes the planes route
    y = pool.forward(x, training=True)
    dx = pool.backward(np.ones_like(y))
    strided = make()
    strided._planes = lambda x, out: []
    np.testing.assert_array_equal(y, strided.forward(x, training=True))
    np.testing.assert_array_equal(dx, strided.backward(np.ones_like(y)))
    np.testing.assert_array_equal(y, strided.forward(x))  # inference too


def test_maxpool_planes_route_only_for_exact_tilings():
    x = np.zeros((1, 1, 6, 6), np.float32)
    assert bp.MaxPool2D(2)._planes(x, (3, 3))
    assert not bp.MaxPool2D(2, 1)._planes(x, (5, 5))                    # overlapping
    assert not bp.MaxPool2D(2)._planes(np.zeros((1, 1, 7, 6), np.float32), (3, 3))  # remainder
    assert bp.MaxPool2D(2, padding=1)._planes(np.zeros((1, 1, 8, 8), np.float32), (4, 4))
    assert not bp.MaxPool2D(2)._planes(np.zeros((1, 1, 6, 12), np.float32)[..., ::2], (3, 3))


def _direct_pool(x, k, s, p, ceil, kind, count_pad=True):
    """1-D pooling written out window by window, the way PyTorch defines ceil_mode and
    count_include_pad (x (N, C, L))."""
    n = x.shape[-1]
    size = (n + 2 * p - k) / s + 1
    out = int(np.ceil(size - 1)) + 1 if ceil else int(np.floor(size - 1)) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    ys = []
    for i in range(out):
        start = i * s - p  # in input coordinates
        real = range(max(start, 0), min(start + k, n))
        window = x[..., list(real)]
        if kind == "max":
            ys.append(window.max(axis=-1))
        else:
            count = len(real) if not count_pad else min(start + k, n + p) - start
            ys.append(window.sum(axis=-1) / count)
    return np.stack(ys, axis=-1)


@pytest.mark.parametrize("k,s,p,n", [(2, 2, 0, 5), (3, 2, 1, 6), (3, 2, 0, 8), (4, 3, 2, 7),
                                     (2, 1, 1, 4), (3, 3, 1, 10)])
@pytest.mark.parametrize("kind,count_pad", [("max", True), ("avg", True), ("avg", False)])
def test_ceil_mode_and_count_include_pad_match_windows_written_out(k, s, p, n, kind, count_pad):
    x = np.random.default_rng(0).standard_normal((2, 3, n))
    for ceil in (False, True):
        layer = (bp.MaxPool1D(k, s, p, ceil_mode=ceil, dtype=np.float64) if kind == "max" else
                 bp.AvgPool1D(k, s, p, ceil_mode=ceil, count_include_pad=count_pad,
                              dtype=np.float64))
        np.testing.assert_allclose(layer.forward(x), _direct_pool(x, k, s, p, ceil, kind,
                                                                  count_pad), rtol=1e-13)
        assert bp.check_gradients(layer, x).passed
    # the 2-D layers: a (k, 1) window pools each column on its own, like the 1-D one
    layer2 = (bp.MaxPool2D((k, 1), (s, 1), (p, 0), ceil_mode=True, dtype=np.float64)
              if kind == "max" else
              bp.AvgPool2D((k, 1), (s, 1), (p, 0), ceil_mode=True, count_include_pad=count_pad,
                           dtype=np.float64))
    x2 = np.random.default_rng(1).standard_normal((2, 1, n, 4))
    want = np.stack([_direct_pool(x2[..., j], k, s, p, True, kind, count_pad)
                     for j in range(4)], axis=-1)
    np.testing.assert_allclose(layer2.forward(x2), want, rtol=1e-13)


def test_ceil_mode_gives_an_input_shorter_than_the_kernel_its_one_window():
    """PyTorch's rule needs only that the last window starts in the input or the left
    padding; a window may then run past both ends."""
    x = np.array([[[3.0]], [[-2.0]]])  # (N=2, C=1, L=1), kernel 2
    for layer in (bp.MaxPool1D(2, ceil_mode=True, dtype=np.float64),
                  bp.AvgPool1D(2, ceil_mode=True, dtype=np.float64)):
        y = layer.forward(x, training=True)
        np.testing.assert_array_equal(y, x)  # the one real input (avg: counted once)
        np.testing.assert_array_equal(layer.backward(np.ones_like(y)), np.ones_like(x))
    y = bp.AvgPool2D(4, padding=1, ceil_mode=True, dtype=np.float64).forward(
        np.full((1, 1, 1, 1), 6.0))
    assert y.shape == (1, 1, 1, 1) and y.item() == pytest.approx(6.0 / 9)  # 3x3 padded
    with pytest.raises(ValueError, match=r"expected input spatial size of at least"):
        bp.MaxPool1D(3, ceil_mode=False).forward(np.zeros((1, 1, 2), np.float32))


def test_pool_options_show_in_repr_and_survive_save(tmp_path):
    model = bp.Sequential([bp.MaxPool2D(3, 2, ceil_mode=True),
                           bp.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False)])
    assert repr(model[0]) == "MaxPool2D(3, stride=2, ceil_mode=True)"
    assert repr(model[1]) == "AvgPool2D(3, stride=2, padding=1, ceil_mode=True, " \
                             "count_include_pad=False)"
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    assert model[0].forward(x).shape == (2, 1, 4, 4)  # floor mode: 3x3
    bp.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz").forward(x), model.forward(x))
    for bad in ("yes", 1):
        with pytest.raises(TypeError, match="AvgPool1D: expected count_include_pad"):
            bp.AvgPool1D(2, count_include_pad=bad)
        with pytest.raises(TypeError, match="MaxPool1D: expected ceil_mode"):
            bp.MaxPool1D(2, ceil_mode=bad)


@pytest.mark.parametrize("d", [1, 2])
def test_ceil_mode_and_count_include_pad_match_torch(d):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for k, s, p, n in [(2, 2, 0, 5), (3, 2, 1, 6), (3, 2, 1, 8), (4, 3, 2, 7), (3, 3, 1, 10)]:
        x = rng.standard_normal((2, 3, n) if d == 1 else (2, 3, n, n + 1))
        cases = [(getattr(bp, f"MaxPool{d}D")(k, s, p, ceil_mode=True, dtype=np.float64),
                  getattr(torch.nn.functional, f"max_pool{d}d"), {"ceil_mode": True})]
        for cip in (True, False):
            cases.append((getattr(bp, f"AvgPool{d}D")(k, s, p, ceil_mode=True,
                                                      count_include_pad=cip, dtype=np.float64),
                          getattr(torch.nn.functional, f"avg_pool{d}d"),
                          {"ceil_mode": True, "count_include_pad": cip}))
        for layer, f, kwargs in cases:
            y = layer.forward(x, training=True)
            dy = rng.standard_normal(y.shape)
            dx = layer.backward(dy)
            xt = torch.tensor(x, requires_grad=True)
            yt = f(xt, k, s, p, **kwargs)
            yt.backward(torch.tensor(dy))
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-13, atol=1e-15)


def _dilated_grid(d):
    """(kernel, stride, padding, dilation) cases for d-D pools, non-square ones for 2-D."""
    grid = [(k, s, p, dil) for k in (2, 3) for s in (None, 1, 2, 3) for p in range(k // 2 + 1)
            for dil in (1, 2, 3)]
    if d == 2:
        grid += [((2, 3), (1, 2), (1, 1), (3, 1)), ((3, 1), 2, (1, 0), (2, 3)),
                 ((3, 2), None, 0, (1, 2))]
    return grid


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("values", ["distinct", "ties", "nan-inf"])
def test_dilated_maxpool_matches_torch_ties_nan_and_ceil_mode_included(d, values):
    """Integer inputs tie often (the first maximum must win, as in PyTorch) and integer
    dy keeps every sum exact, so outputs and gradients must agree bit for bit."""
    torch = pytest.importorskip("torch")
    f = getattr(torch.nn.functional, f"max_pool{d}d")
    shape = (2, 3, 9) if d == 1 else (2, 3, 9, 8)
    rng = np.random.default_rng(3)
    for k, s, p, dil in _dilated_grid(d):
        for ceil in (False, True):
            x = _distinct(shape) - 20.0 if values == "distinct" else rng.integers(-3, 3, shape)
            x = x.astype(np.float64)
            if values == "nan-inf":
                x.flat[rng.choice(x.size, 12, replace=False)] = np.nan
                x.flat[rng.choice(x.size, 12, replace=False)] = -np.inf
                x[1, 1, :5] = -np.inf  # windows whose real inputs are all -inf
            layer = getattr(bp, f"MaxPool{d}D")(k, s, p, dil, ceil_mode=ceil, dtype=np.float64)
            y = layer.forward(x, training=True)
            dy = rng.integers(1, 9, y.shape).astype(np.float64)
            dx = layer.backward(dy)
            xt = torch.tensor(x, requires_grad=True)
            yt = f(xt, k, s, p, dil, ceil_mode=ceil)
            yt.backward(torch.tensor(dy))
            case = f"kernel {k}, stride {s}, padding {p}, dilation {dil}, ceil_mode {ceil}"
            np.testing.assert_array_equal(y, yt.detach().numpy(), err_msg=case)
            np.testing.assert_array_equal(dx, xt.grad.numpy(), err_msg=case)


@pytest.mark.parametrize("d", [1, 2])
def test_dilated_maxpool_output_size_and_too_small_error_match_torch(d):
    """Sizes around the dilated span d·(k - 1) + 1: one output when the input (padded)
    just holds it, the "at least" error one below (ceil_mode: whenever PyTorch's last
    window would start past the input and the left padding)."""
    torch = pytest.importorskip("torch")
    f = getattr(torch.nn.functional, f"max_pool{d}d")
    for k, s, p, dil in [(3, 1, 0, 2), (3, 2, 1, 3), (2, 3, 1, 4), (4, 1, 2, 2)]:
        span = dil * (k - 1) + 1
        for n, ceil in [(n, c) for n in range(1, span + 3) for c in (False, True)]:
            layer = getattr(bp, f"MaxPool{d}D")(k, s, p, dil, ceil_mode=ceil, dtype=np.float64)
            x = np.zeros((1, 1, *(n,) * d))
            try:
                want = f(torch.tensor(x), k, s, p, dil, ceil_mode=ceil).shape
            except RuntimeError:
                need, dils = (re.escape(str((v,) * d)) for v in (max(span - 2 * p, 1), dil))
                with pytest.raises(ValueError, match=rf"expected input spatial size of at "
                                                     rf"least {need} \(kernel .*, dilation "
                                                     rf"{dils}\), got input of shape "
                                                     rf"{re_shape(x.shape)}"):
                    layer.forward(x)
                continue
            assert layer.forward(x).shape == want, (k, s, p, dil, n, ceil)
            if n == span - 2 * p:  # just big enough: one window
                assert want[2:] == (1,) * d


def test_dilated_maxpool_input_just_big_enough_gives_one_window():
    x = np.array([[[3.0, 9.0, 5.0, 8.0, 1.0]]])  # kernel 3, dilation 2: taps 0, 2, 4
    pool = bp.MaxPool1D(3, dilation=2, dtype=np.float64)
    np.testing.assert_array_equal(pool.forward(x, training=True), [[[5.0]]])
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1))), [[[0, 0, 1, 0, 0]]])
    with pytest.raises(ValueError, match=r"MaxPool1D\(3, dilation=2, dtype='float64'\): "
                                         r"expected input spatial size of at least \(5,\) "
                                         r"\(kernel \(3,\), dilation \(2,\)\), got input of "
                                         r"shape \(1, 1, 4\)"):
        pool.forward(x[..., :4])


@pytest.mark.parametrize("d", [1, 2])
def test_dilated_maxpool_padding_limit_is_torchs_half_the_kernel_not_the_span(d):
    torch = pytest.importorskip("torch")
    f = getattr(torch.nn.functional, f"max_pool{d}d")
    for k, dil, p in [(k, dil, p) for k in (1, 2, 3, 4, 5) for dil in (1, 2, 3) for p in range(5)]:
        try:
            f(torch.zeros((1, 1, *(40,) * d)), k, 1, p, dil)
        except RuntimeError:
            why = "every window must hold an input" if dil == 1 else f"dilation {dil}"
            with pytest.raises(ValueError, match=rf"MaxPool{d}D: expected padding of at most "
                                                 rf"half the kernel size {k} \(.*{why}\), "
                                                 rf"got padding {p}$"):
                getattr(bp, f"MaxPool{d}D")(k, 1, p, dil)
        else:
            getattr(bp, f"MaxPool{d}D")(k, 1, p, dil)
    with pytest.raises(ValueError, match=r"MaxPool2D: expected dilation >= 1, got \(2, 0\)"):
        bp.MaxPool2D(2, dilation=(2, 0))
    with pytest.raises(ValueError, match=r"expected dilation as an int or 2 ints, got \(2,\)"):
        bp.MaxPool2D(2, dilation=(2,))


def test_dilated_maxpool_repr_config_summary_and_save(tmp_path):
    assert repr(bp.MaxPool2D(3, 2, 1, 2)) == "MaxPool2D(3, stride=2, padding=1, dilation=2)"
    assert repr(bp.MaxPool2D(2, dilation=(2, 1))) == "MaxPool2D(2, dilation=(2, 1))"
    assert repr(bp.MaxPool2D(2, dilation=(1, 1))) == "MaxPool2D(2)"  # the default: omitted
    assert repr(bp.MaxPool1D(3, dilation=1)) == "MaxPool1D(3)"
    assert bp.MaxPool1D(3, dilation=2).get_config()["dilation"] == 2
    model = bp.Sequential([bp.MaxPool2D(3, 1, 1, (2, 1), ceil_mode=True),
                           bp.MaxPool2D(2, dilation=2), bp.Flatten()])
    rows = model.summary((3, 9, 8)).rows  # spans (5, 3), then 3: (9, 8) -> (7, 8) -> (3, 3)
    assert [shape for _, shape, _ in rows] == ["(N, 3, 7, 8)", "(N, 3, 3, 3)", "(N, 27)"]
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(np.float32)
    bp.save(model, tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    assert repr(again) == repr(model) and again[0].dilation == (2, 1)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    pool1d = bp.Sequential([bp.MaxPool1D(3, 1, 1, 3)])
    bp.save(pool1d, tmp_path / "p.npz")
    assert repr(bp.load(tmp_path / "p.npz")) == repr(pool1d)


def test_dilated_maxpool_window_outside_the_input_gets_no_gradient():
    """Dilation 5 over 4 inputs with padding 1: the one window reads the two padding
    positions only. Its maximum is -inf and its gradient goes nowhere (PyTorch sends it
    past the window, to the next channel's first input)."""
    x = np.arange(8.0).reshape(1, 2, 4)
    pool = bp.MaxPool1D(2, 1, 1, 5, dtype=np.float64)
    np.testing.assert_array_equal(pool.forward(x, training=True), np.full((1, 2, 1), -np.inf))
    np.testing.assert_array_equal(pool.backward(np.ones((1, 2, 1))), np.zeros_like(x))
