"""The pools' fast paths give the general paths' bits, and PyTorch's picks.

Max pooling with overlapping windows runs on the input's phases (``_polyphase``);
the adaptive pools reduce over strided views or the whole contiguous spatial axes
when the windows tile the input. Each is checked against the general code (forced)
and against PyTorch, with many ties, NaN, inf and -0.0.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop as bp
from backprop.layers._polyphase import Layout
from backprop.layers._runs import along, run_sum, transposed


def _bits(a):
    """Bytes to compare exactly, every NaN read as one (its sign and payload come from
    the machine's loops, not from the layer)."""
    return np.where(np.isnan(a), np.nan, a).tobytes() + str((a.shape, a.dtype)).encode()


def _ties(shape, dtype, rng, specials=True):
    """Small integers (many ties), some -0.0 and, with ``specials``, NaN and +-inf."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.2] *= -1  # -0.0 among the zeros
    if specials:
        x[rng.random(shape) < 0.05] = np.nan
        x[rng.random(shape) < 0.08] = -np.inf
        x[rng.random(shape) < 0.03] = np.inf
    return x


def _dy(shape, dtype, rng):
    dy = rng.standard_normal(shape).astype(dtype)
    dy[rng.random(shape) < 0.2] = 0.0
    dy[rng.random(shape) < 0.2] *= -1  # -0.0 too
    return dy


def _run(layer, x, dy):
    y = layer.forward(x, training=True)
    return y, layer.backward(dy), layer.forward(x)


# -- max pooling on phases -------------------------------------------------------------------
OVERLAPPING = [  # (class, kernel, stride, padding, dilation, ceil_mode, input spatial size)
    ("MaxPool2D", 3, 2, 1, 1, False, (28, 28)), ("MaxPool2D", 3, 2, 1, 1, False, (9, 7)),
    ("MaxPool2D", 3, 2, 0, 1, True, (8, 9)), ("MaxPool2D", 3, 1, 1, 1, False, (6, 5)),
    ("MaxPool2D", (3, 2), (2, 1), (1, 0), 1, False, (7, 6)),
    ("MaxPool2D", 2, 1, 0, 1, False, (5, 6)),
    ("MaxPool2D", 5, 3, 2, 1, True, (11, 10)), ("MaxPool2D", 3, 2, 1, 2, False, (10, 9)),
    ("MaxPool2D", 4, 3, 2, 1, False, (7, 7)), ("MaxPool1D", 3, 2, 1, 1, False, (17,)),
    ("MaxPool1D", 5, 2, 2, 1, True, (12,)), ("MaxPool1D", 3, 1, 0, 2, False, (9,)),
    ("MaxPool3D", 3, 2, 1, 1, False, (5, 6, 7)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,k,s,p,d,ceil,size", OVERLAPPING)
def test_maxpool_phases_give_the_strided_views_bits(cls, k, s, p, d, ceil, size, dtype):
    rng = np.random.default_rng(0)
    make = lambda: getattr(bp, cls)(k, s, p, d, ceil_mode=ceil, dtype=dtype)  # noqa: E731
    for specials, contiguous in [(False, True), (True, True), (True, False)]:
        x = _ties((2, 3, *size), dtype, rng, specials)
        if not contiguous:
            x = np.asfortranarray(x)
        pool, strided = make(), make()
        assert pool._phases(x.shape, pool._checked(x)) is not None  # the phases route
        strided._phases = lambda x_shape, out: None
        dy = _dy(pool.forward(x).shape, dtype, rng)
        y, dx, y_inference = _run(pool, x, dy)
        want = _run(strided, x, dy)
        assert y.dtype == dx.dtype == dtype and dx.shape == x.shape
        for got, expected in zip((y, dx, y_inference), want, strict=True):
            assert _bits(got) == _bits(expected)


@pytest.mark.parametrize("cls,k,s,p,d,ceil,size", OVERLAPPING)
def test_maxpool_phases_match_torch_on_ties_nan_and_inf(cls, k, s, p, d, ceil, size):
    torch = pytest.importorskip("torch")
    fn = {"MaxPool1D": torch.nn.functional.max_pool1d, "MaxPool2D": torch.nn.functional.max_pool2d,
          "MaxPool3D": torch.nn.functional.max_pool3d}[cls]
    rng = np.random.default_rng(1)
    x = _ties((2, 3, *size), np.float32, rng)
    x[0, 0] = -np.inf  # a whole plane of -inf: its first real input, never the padding
    pool = getattr(bp, cls)(k, s, p, d, ceil_mode=ceil)
    y = pool.forward(x, training=True)
    dy = np.arange(1.0, y.size + 1, dtype=np.float32).reshape(y.shape)
    dx = pool.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = fn(xt, k, s, p, d, ceil_mode=ceil)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_array_equal(dx, xt.grad.numpy())  # integer sums: exact


@pytest.mark.parametrize("make,shape", [
    (lambda: bp.MaxPool2D(2), (2, 3, 28, 28)),            # tiles: the contiguous planes
    (lambda: bp.MaxPool2D(2), (2, 3, 7, 7)),              # windows apart (a remainder)
    (lambda: bp.MaxPool2D(2, 3), (2, 3, 8, 8)),           # windows apart (gaps)
    (lambda: bp.MaxPool2D(7, 1), (2, 3, 8, 256)),         # long rows, 4.1x the work
    (lambda: bp.MaxPool2D(3, 1, 1, 4), (2, 3, 9, 9)),     # 13x the work
])
def test_maxpool_phases_only_where_they_pay(make, shape):
    pool = make()
    assert pool._phases(shape, pool._out(shape)) is None
    assert bp.MaxPool2D(3, 2, 1)._phases((2, 3, 112, 112), (56, 56)) is not None


def test_phase_layout_moves_every_input_there_and_back():
    rng = np.random.default_rng(2)
    for size, taps, stride, pad, out in [((9, 7), [(0, 0), (0, 2), (2, 1)], (2, 2), (1, 1), (5, 4)),
                                         ((8,), [(0,), (1,), (2,)], (3,), (0,), (2,))]:
        x = rng.standard_normal((2, 3, *size))
        layout = Layout(x.shape, taps, stride, pad, out)
        phases = layout.split(x, -np.inf)
        back = layout.merge(phases)
        held = back != 0  # inputs no window reads come back as zeros
        np.testing.assert_array_equal(back[held], x[held])
        assert layout.complete == held.all()
        # a tap reads, at each output, the padded input at o·s + t
        xp = np.pad(x, [(0, 0)] * 2 + [(p, p + s) for p, s in zip(pad, stride, strict=True)],
                    constant_values=-np.inf)
        for tap, read in zip(taps, layout.taps(phases), strict=True):
            want = xp[(slice(None), slice(None), *(slice(t, t + s * o, s) for t, s, o in zip(
                tap, stride, out, strict=True)))]
            np.testing.assert_array_equal(layout.crop(read), want)
    assert not Layout((1, 1, 8), [(0,), (1,), (2,)], (3,), (0,), (2,)).complete  # 6, 7 unread


# -- adaptive pools on tiling windows ----------------------------------------------------------
TILING = [((28, 28), 1), ((28, 28), 7), ((28, 28), (14, 4)), ((6, 9), (None, 3)), ((5, 7), 1),
          ((12,), 1), ((12,), 4), ((12,), 12), ((8, 6), (1, 3)), ((1, 1), 1)]


def _general_avg(x, win):
    """The general path's forward (run_sum per axis) for windows ``win``."""
    y = x
    for axis, _, start, count in win:
        y = run_sum(y, axis, start, count) / along(count.astype(y.dtype), axis)
    return y


def _general_avg_backward(dy, win):
    """The general path's backward (the forward's transpose, run sums) for ``win``."""
    dx = dy
    for axis, n, start, count in reversed(win):
        p = np.arange(n)
        inside = (start[:, None] <= p) & (p < (start + count)[:, None])
        dx = run_sum(dx, axis, *transposed(inside / count[:, None].astype(dx.dtype)))
    return dx


def _make(kind, size, out, dtype):
    return getattr(bp, f"Adaptive{kind}Pool{len(size)}D")(out, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size,out", TILING)
def test_adaptive_avg_on_tiling_windows_gives_the_general_paths_bits(size, out, dtype):
    rng = np.random.default_rng(3)
    for specials in (False, True):
        x = _ties((2, 3, *size), dtype, rng, specials)
        layer = _make("Avg", size, out, dtype)
        win = layer._windows(x)
        y = layer.forward(x, training=True)
        dy = _dy(y.shape, dtype, rng)
        dx = layer.backward(dy)
        assert _bits(dx) == _bits(_general_avg_backward(dy, win))
        with np.errstate(invalid="ignore"):
            general = _general_avg(x, win)
        if all(len(start) == 1 for _, _, start, _ in win):  # one mean: rounding may differ
            np.testing.assert_allclose(y, general, rtol=4e-7 if dtype == np.float32 else 1e-15,
                                       atol=1e-6 if dtype == np.float32 else 1e-15)
            assert not np.signbit(y[y == 0]).any()  # a sum of -0.0 is 0.0, as run_sum's
        else:
            assert _bits(y) == _bits(general)
        assert _bits(layer.forward(x)) == _bits(y)
        assert y.dtype == dx.dtype == dtype


def _window_by_window_max(x, out):
    """y, the flat index in H·W of each pick and dx's routing, one window at a time:
    PyTorch's pick is the last NaN of the window, else its first maximum (row-major)."""
    size = x.shape[2:]
    out = tuple(n if o is None else o for n, o in zip(size, out, strict=True))
    arg = np.zeros((*x.shape[:2], *out), np.int64)
    for n, c, *o in np.ndindex(arg.shape):
        box = [range(i * s // m, -(-(i + 1) * s // m)) for i, s, m in zip(o, size, out,
                                                                        strict=True)]
        flat = [np.ravel_multi_index(p, size) for p in itertools.product(*box)]
        v = x[n, c].reshape(-1)[flat]
        pick = len(v) - 1 - np.isnan(v[::-1]).argmax() if np.isnan(v).any() else v.argmax()
        arg[(n, c, *o)] = flat[pick]
    return np.take_along_axis(x.reshape(*x.shape[:2], -1), arg.reshape(*x.shape[:2], -1),
                              axis=-1).reshape(arg.shape), arg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size,out", [*TILING, ((5, 7), (3, 4)), ((3, 5), (4, 6)),
                                      ((7, 6), (3, None)), ((10,), 4), ((3,), 5)])
def test_adaptive_max_picks_what_a_window_by_window_loop_picks(size, out, dtype):
    """Tiling windows (strided views, output size 1: one argmax) and the others (gathered
    copies): first maximum, last NaN, a window of -inf its first input; bit for bit."""
    rng = np.random.default_rng(4)
    for specials, contiguous in [(False, True), (True, True), (True, False)]:
        x = _ties((2, 3, *size), dtype, rng, specials)
        x[0, 0] = -np.inf
        if not contiguous:
            x = np.asfortranarray(x)
        layer = _make("Max", size, out, dtype)
        y = layer.forward(x, training=True)
        want_y, want_arg = _window_by_window_max(
            x, out if isinstance(out, tuple) else (out,) * len(size))
        assert np.array_equal(layer._arg, want_arg)
        dy = _dy(y.shape, dtype, rng)
        dx = layer.backward(dy)
        assert y.tobytes() == want_y.tobytes() == layer.forward(x).tobytes()
        assert dx.dtype == dtype and dx.tobytes() == _bincount_dx(want_arg, x.shape, dy).tobytes()


def _bincount_dx(arg, x_shape, dy):
    """The general backward: dy added up at each maximum's flat index, in float64."""
    n_c, size = int(np.prod(x_shape[:2])), int(np.prod(x_shape[2:]))
    index = arg.reshape(n_c, -1) + (np.arange(n_c) * size)[:, None]
    dx = np.bincount(index.ravel(), weights=dy.ravel(), minlength=n_c * size)
    return dx.reshape(x_shape).astype(dy.dtype)


@pytest.mark.parametrize("size,out", TILING)
def test_adaptive_pools_on_tiling_windows_match_torch(size, out):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    d = len(size)
    for kind in ("Avg", "Max"):
        module = getattr(torch.nn, f"Adaptive{kind}Pool{d}d")(out)
        x = _ties((2, 3, *size), np.float32, rng, specials=kind == "Max")
        if kind == "Avg":
            x += rng.standard_normal(x.shape).astype(np.float32)
        layer = _make(kind, size, out, np.float32)
        y = layer.forward(x, training=True)
        dy = np.arange(1.0, y.size + 1, dtype=np.float32).reshape(y.shape)
        dx = layer.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        yt = module(xt)
        yt.backward(torch.tensor(dy))
        if kind == "Max":  # the same picks: exact
            np.testing.assert_array_equal(y, yt.detach().numpy())
            np.testing.assert_array_equal(dx, xt.grad.numpy())
        else:
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=2e-6, atol=2e-6)
            np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=2e-6, atol=0)


def test_global_max_takes_the_first_maximum_or_the_last_nan():
    x = np.array([[[[1.0, 3.0], [3.0, -0.0]], [[np.nan, 2.0], [np.nan, 5.0]],
                   [[-np.inf, -np.inf], [-np.inf, -np.inf]], [[0.0, -0.0], [0.0, -0.0]]]])
    layer = bp.AdaptiveMaxPool2D(1, dtype=np.float64)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(layer._arg.ravel(), [1, 2, 0, 0])
    np.testing.assert_array_equal(y.ravel(), [3.0, np.nan, -np.inf, 0.0])
    assert not np.signbit(y.ravel()[3])  # the first of the tied zeros: +0.0
    dx = layer.backward(np.array([-0.0, 2.0, 3.0, 4.0]).reshape(y.shape))
    assert dx[0, 0, 0, 1] == 0 and not np.signbit(dx).any()  # -0.0 there reads 0.0


def test_global_avg_backward_spreads_dy_over_every_position():
    layer = bp.AdaptiveAvgPool2D(1, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(layer.forward(x, training=True)[..., 0, 0], x.mean(axis=(2, 3)),
                               rtol=1e-15)
    dy = np.arange(6.0).reshape(2, 3, 1, 1)
    # times 1/H, then 1/W: the general path's rounding (PyTorch's dy / (H·W) to an ulp)
    np.testing.assert_array_equal(layer.backward(dy), np.broadcast_to(dy * 0.25 * 0.2, x.shape))


def test_tiling_paths_take_every_combination_of_whole_and_split_axes():
    rng = np.random.default_rng(7)
    for out in itertools.product([1, 2, 6], [1, 3, 9]):
        x = _ties((2, 2, 6, 9), np.float64, rng, specials=False)
        for kind in ("Avg", "Max"):
            layer = _make(kind, (6, 9), out, np.float64)
            y = layer.forward(x, training=True)
            want = x.reshape(2, 2, out[0], 6 // out[0], out[1], 9 // out[1])
            want = want.mean(axis=(3, 5)) if kind == "Avg" else want.max(axis=(3, 5))
            np.testing.assert_allclose(y, want, rtol=1e-15, atol=1e-15)
            assert layer.backward(np.ones_like(y)).sum() == pytest.approx(y.size)


@pytest.mark.parametrize("make", [lambda: bp.AdaptiveAvgPool2D(1), lambda: bp.AdaptiveMaxPool2D(1),
                                  lambda: bp.AdaptiveAvgPool1D(1), lambda: bp.AdaptiveMaxPool1D(1)])
@pytest.mark.parametrize("lead", [(0, 3), (2, 0)])
def test_global_pools_of_an_empty_batch_or_no_channels_are_empty(make, lead):
    """Output size 1 on N = 0 or C = 0: an empty output, and an empty dx (a reshape
    with -1 cannot infer an axis of an empty array)."""
    layer = make()
    x = np.zeros((*lead, *(4,) * (layer.__class__.__name__.endswith("2D") + 1)), np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (*lead, *(1,) * (x.ndim - 2))
    assert layer.backward(np.zeros_like(y)).shape == x.shape
