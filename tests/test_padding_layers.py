"""Padding layers, Unflatten, PixelShuffle and PixelUnshuffle against PyTorch 2.13."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.layers import padding as padding_module

torch = pytest.importorskip("torch")

FAMILIES = {  # ours -> (torch's name, extra constructor args)
    "ZeroPad": ("ZeroPad", ()), "ConstantPad": ("ConstantPad", (-0.75,)),
    "ReflectionPad": ("ReflectionPad", ()), "ReplicationPad": ("ReplicationPad", ()),
    "CircularPad": ("CircularPad", ()),
}
# on inputs of spatial size 4 (1-D) and (3, 4) (2-D): asymmetric, negative, the limits
PADS_1D = [1, (0, 0), (2, 0), (1, 3), (3, 3), (4, 1), (5, 0), (-1, 2), (-2, 2), (-3, 2),
           (2, -3), (-1, 4), (-2, 3), (-3, -1), (-4, 2), (-4, 0), (-5, 3)]
PADS_2D = [1, (1, 2, 0, 1), (3, 0, 2, 2), (0, 0, 3, 0), (4, 4, 3, 3), (-1, 2, 1, -1),
           (0, 0, -1, 2), (0, 0, -2, 2), (2, -1, -2, 1), (0, 0, -3, 1), (-2, -2, 0, 0),
           (5, 0, 0, 0), (0, 0, 4, 0)]


def _torch_pad(family: str, rank: int, padding, x: np.ndarray, dy: np.ndarray):
    """torch's output and dx, or None where it raises or gives an empty output."""
    name, extra = FAMILIES[family]
    layer = getattr(torch.nn, f"{name}{rank}d")(padding, *extra)
    xt = torch.tensor(x, requires_grad=True)
    try:
        yt = layer(xt)
    except (RuntimeError, NotImplementedError):
        return None
    if yt.numel() == 0 or yt.shape != dy.shape:
        return None if yt.numel() == 0 else (yt.detach().numpy(), None)
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy()


def _ours(family: str, rank: int, padding, dtype):
    _, extra = FAMILIES[family]
    return getattr(bp, f"{family}{rank}D")(padding, *extra, dtype=dtype)


def _out_shape(x_shape, padding, rank):
    p = (padding,) * 2 * rank if isinstance(padding, int) else padding
    pairs = [(p[i], p[i + 1]) for i in range(2 * rank - 2, -1, -2)]
    return (*x_shape[:2], *(n + b + a for n, (b, a) in zip(x_shape[2:], pairs, strict=True)))


def _wraps_twice(x_shape, padding, rank):
    p = (padding,) * 2 * rank if isinstance(padding, int) else padding
    pairs = [(p[i], p[i + 1]) for i in range(2 * rank - 2, -1, -2)]
    return any(max(b, a) > n - max(-b, 0) - max(-a, 0)
               for n, (b, a) in zip(x_shape[2:], pairs, strict=True))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(("rank", "padding"), [(1, p) for p in PADS_1D] + [(2, p) for p in PADS_2D])
def test_padding_forward_and_dx_match_torch_or_both_refuse(family, rank, padding, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4) if rank == 1 else (2, 2, 3, 4)).astype(dtype)
    out = _out_shape(x.shape, padding, rank)
    dy = rng.standard_normal(out).astype(dtype) if min(out) > 0 else np.zeros(0, dtype)
    expected = _torch_pad(family, rank, padding, x, dy)
    layer, x0 = _ours(family, rank, padding, dtype), x.copy()
    if expected is None or (family == "CircularPad" and _wraps_twice(x.shape, padding, rank)):
        # torch refuses (or returns an empty output): so do we; circular padding past the
        # cropped input torch wraps more than once, or refuses, by memory layout: we refuse
        with pytest.raises(ValueError, match=rf"{family}{rank}D.*expected .*padding"):
            layer.forward(x, training=True)
        return
    y = layer.forward(x, training=True)
    assert y.dtype == dtype and y.shape == out
    np.testing.assert_array_equal(y, expected[0])
    dx = layer.backward(dy)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, expected[1], rtol=1e-6 if dtype == np.float32 else 1e-13,
                               atol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_array_equal(x, x0)


def test_the_grid_reaches_every_limit_and_both_outcomes():
    """The grid above holds refusals and successes of every mode (else it proves little)."""
    x = np.zeros((1, 1, 4))
    refused = {f: sum(_torch_pad(f, 1, p, x, np.zeros(_out_shape(x.shape, p, 1)))
                      is None for p in PADS_1D) for f in FAMILIES}
    assert all(0 < n < len(PADS_1D) for n in refused.values()), refused


def test_a_wrong_adjoint_fails_the_parity(monkeypatch):
    """The dx comparison can fail: an unpad that only crops (no fold) disagrees with torch."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 7))
    _, dx_torch = _torch_pad("ReflectionPad", 1, (2, 1), x, dy)
    monkeypatch.setattr(padding_module, "unpad",
                        lambda d, mode, pairs: d[..., pairs[-1][0]:d.shape[-1] - pairs[-1][1]])
    layer = bp.ReflectionPad1D((2, 1), dtype=np.float64)
    layer.forward(x, training=True)
    assert not np.allclose(layer.backward(dy), dx_torch)


@pytest.mark.parametrize(("family", "padding", "message"), [
    ("ReflectionPad1D", (4, 0), "smaller than the input size 4"),
    ("ReflectionPad1D", (0, 5), "smaller than the input size 4"),
    ("CircularPad1D", (5, 0), "at most the input size left after cropping, 4"),
    ("CircularPad1D", (-2, 3), "at most the input size left after cropping, 2"),
    ("ZeroPad1D", (-4, 0), "an output of at least 1 entry"),
    ("ZeroPad1D", (-5, 3), "crops no larger than the input"),
])
def test_size_limits_name_the_rule_and_the_shapes(family, padding, message):
    with pytest.raises(ValueError, match=rf"{family}.*{message}.*\(2, 3, 4\)"):
        getattr(bp, family)(padding)(np.zeros((2, 3, 4), np.float32))


@pytest.mark.parametrize("bad", [(1, 2, 3), 1.5, "same", (1, 2.0), True, None])
def test_padding_refuses_what_torch_order_cannot_read(bad):
    with pytest.raises(TypeError, match=r"ZeroPad1D: expected padding as an int or 2 ints"):
        bp.ZeroPad1D(bad)
    with pytest.raises(TypeError, match=r"ReflectionPad2D: expected padding as an int or 4"):
        bp.ReflectionPad2D(bad if bad != (1, 2, 3) else (1, 2))


def test_constant_pad_value_must_be_a_number_and_is_kept():
    with pytest.raises(TypeError, match=r"ConstantPad2D: expected value to be a number"):
        bp.ConstantPad2D(1, "0")
    layer = bp.ConstantPad1D(1, 2)
    assert layer.value == 2.0 and layer(np.zeros((1, 1, 1), np.float32)).tolist() == [[[2, 0, 2]]]


def test_padding_refuses_another_rank():
    with pytest.raises(ValueError, match=r"ZeroPad2D.*expected input of shape \(N, C, H, W\)"):
        bp.ZeroPad2D(1)(np.zeros((2, 3, 4), np.float32))


@pytest.mark.parametrize(("ours", "theirs"), [
    (bp.ZeroPad2D(2), "ZeroPad2D((2, 2, 2, 2))"),
    (bp.ConstantPad1D((1, -2), 3.5), "ConstantPad1D((1, -2), 3.5)"),
    (bp.ReflectionPad2D((1, 0, 2, 3), dtype=np.float64), "ReflectionPad2D((1, 0, 2, 3), "
                                                         "dtype='float64')"),
    (bp.Unflatten(-1, (2, -1)), "Unflatten(-1, (2, -1))"),
    (bp.PixelShuffle(3), "PixelShuffle(3)"), (bp.PixelUnshuffle(2), "PixelUnshuffle(2)"),
])
def test_repr_shows_the_constructor_call(ours, theirs):
    assert repr(ours) == theirs


def test_save_and_load_keep_every_new_layer(tmp_path):
    model = bp.Sequential([bp.ReflectionPad2D((1, -1, 2, -1)), bp.PixelUnshuffle(2),
                           bp.CircularPad2D(1), bp.PixelShuffle(2), bp.ConstantPad2D(-1, 0.5),
                           bp.Flatten(), bp.Unflatten(1, (4, -1)), bp.ReplicationPad1D((2, 1)),
                           bp.ZeroPad1D(-1)])
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 4)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("dim", "sizes", "shape"), [
    (1, (3, 4), (2, 12, 5)), (-1, (2, -1), (2, 3, 6)), (2, (-1, 1, 2), (2, 3, 4)),
    (-2, (1, 3), (2, 3, 4)),
])
def test_unflatten_matches_torch_and_flatten_undoes_it(dim, sizes, shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    layer = bp.Unflatten(dim, sizes, dtype=dtype)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, torch.nn.Unflatten(dim, sizes)(torch.tensor(x)).numpy())
    d = dim % len(shape)
    flat = bp.Flatten(d, d + len(sizes) - 1, dtype=dtype)
    np.testing.assert_array_equal(flat(y), x)
    np.testing.assert_array_equal(layer.backward(y), x)


@pytest.mark.parametrize(("args", "error", "message"), [
    ((0, (2, 3)), ValueError, "dim >= 1 or negative"),
    ((1.0, (2, 3)), TypeError, "dim to be an int"),
    ((1, ()), TypeError, "non-empty tuple of ints"),
    ((1, 6), TypeError, "non-empty tuple of ints"),
    ((1, (-1, -1)), ValueError, "at most one -1"),
    ((1, (0, 3)), ValueError, "sizes >= 1"),
])
def test_unflatten_refuses_bad_arguments(args, error, message):
    with pytest.raises(error, match=rf"Unflatten: expected .*{message}"):
        bp.Unflatten(*args)


def test_unflatten_refuses_sizes_that_do_not_fit_and_the_batch_axis():
    with pytest.raises(ValueError, match=r"axis 1 \(not the batch axis\) has the size 8"):
        bp.Unflatten(1, (2, 4))(np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"axis -2 \(not the batch axis\)"):
        bp.Unflatten(-2, (2, 3))(np.zeros((3, 6), np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("r", "shape"), [(1, (2, 3, 2, 2)), (2, (2, 8, 3, 2)), (3, (1, 9, 2, 3))])
def test_pixel_shuffle_and_unshuffle_match_torch_and_undo_each_other(r, shape, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    shuffle, unshuffle = bp.PixelShuffle(r, dtype=dtype), bp.PixelUnshuffle(r, dtype=dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.PixelShuffle(r)(xt)
    dy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(dy))
    y = shuffle.forward(x, training=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(shuffle.backward(dy), xt.grad.numpy())
    # PixelUnshuffle: torch's forward and dx, and the round trip
    yt2 = torch.nn.PixelUnshuffle(r)(xt2 := torch.tensor(y, requires_grad=True))
    yt2.backward(torch.tensor(x))
    back = unshuffle.forward(y, training=True)
    np.testing.assert_array_equal(back, yt2.detach().numpy())
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(unshuffle.backward(x), xt2.grad.numpy())
    assert y.dtype == back.dtype == dtype


def test_pixel_shuffle_is_no_plain_reshape():
    """The parity above can fail: a reshape alone puts the entries elsewhere."""
    x = np.arange(16.0).reshape(1, 4, 2, 2)
    y = bp.PixelShuffle(2, dtype=np.float64)(x)
    assert y[0, 0, 0].tolist() == [0, 4, 1, 5] and not np.array_equal(y, x.reshape(1, 1, 4, 4))


def test_pixel_shuffle_refuses_shapes_that_do_not_divide():
    with pytest.raises(ValueError, match=r"PixelShuffle\(2\): expected input channels a "
                                         r"multiple of 4"):
        bp.PixelShuffle(2)(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"PixelUnshuffle\(2\): expected input height and "
                                         r"width multiples of 2"):
        bp.PixelUnshuffle(2)(np.zeros((1, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"PixelShuffle: expected upscale_factor >= 1"):
        bp.PixelShuffle(0)
