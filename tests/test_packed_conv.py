"""The packed stride-1 convolution route (``layers/_packed.py``) and the run-by-run copy
(``_copy.py``) it and the im2col route use."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop._copy import copy
from backprop.layers import _packed

# -- copy: np.copyto, one raw element per contiguous row ---------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint16, np.complex64,
                                   np.bool_, np.float16])
def test_copy_moves_the_same_values_as_copyto(dtype):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((40, 31, 17)) * 50).astype(dtype)
    for src, dst in ((a[:, ::2, 1:15], np.zeros((40, 16, 14), dtype)),
                     (a[::-1, 3:, :].swapaxes(0, 1), np.zeros((28, 40, 20), dtype)[..., 2:19]),
                     (a[:, :, 2:3], np.zeros((40, 31, 1), dtype))):  # rows of one element
        want = dst.copy()
        np.copyto(want, src)
        copy(dst, src)
        np.testing.assert_array_equal(dst, want)


def test_copy_is_bit_exact_for_nan_infinity_and_signed_zeros():
    bits = np.array([0x7FC00001, 0xFFC00000, 0x80000000, 0x7F800000, 0xFF800000, 1],
                    np.uint32)
    src = np.tile(bits, 2000).view(np.float32).reshape(200, 60)[:, 3:45]
    dst = np.empty((200, 42), np.float32)
    copy(dst, src)
    np.testing.assert_array_equal(dst.view(np.uint32), src.view(np.uint32))


def test_copy_keeps_copyto_s_errors_and_broadcasting():
    src = np.ones((100, 40), np.float32)[:, :30]
    frozen = np.zeros((100, 30), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        copy(frozen, src)
    row = np.arange(30, dtype=np.float32)
    dst = np.zeros((100, 40), np.float32)[:, :30]
    copy(dst, row)  # broadcast: np.copyto's rule
    np.testing.assert_array_equal(dst, np.broadcast_to(row, (100, 30)))
    wide = np.zeros((100, 40), np.float64)[:, :30]
    copy(wide, src)  # another dtype: np.copyto's casting
    np.testing.assert_array_equal(wide, 1)
    with pytest.raises(TypeError, match="same_kind"):
        copy(np.zeros((100, 30), np.int64), src)


def test_copy_of_overlapping_arrays_lists_and_long_rows_is_copyto_s(monkeypatch):
    """From a review: as rows, an overlap with other strides was copied without NumPy's
    buffering (73 of 100 rows wrong), a list source raised AttributeError, and rows past
    NumPy's largest void (2 GiB) raised ValueError."""
    from backprop import _copy

    buf, ref = np.arange(6400.0), np.arange(6400.0)
    copy(buf.reshape(100, 64)[:, :32], buf[:4800].reshape(100, 48)[:, :32])
    np.copyto(ref.reshape(100, 64)[:, :32], ref[:4800].reshape(100, 48)[:, :32])
    np.testing.assert_array_equal(buf, ref)
    dst = np.zeros((100, 40))[:, :30]
    copy(dst, [list(range(30))] * 100)
    copy(dst[:50], 2.5)
    np.testing.assert_array_equal(dst[50:], np.broadcast_to(np.arange(30.0), (50, 30)))
    np.testing.assert_array_equal(dst[:50], 2.5)
    monkeypatch.setattr(_copy, "_MAX_ROW", 8 * 29)  # a row of 30 float64 is too long now
    src = np.arange(4000.0).reshape(100, 40)[:, 5:35]
    copy(dst, src)
    np.testing.assert_array_equal(dst, src)


# -- the packed route --------------------------------------------------------------------


def _batch_inside(monkeypatch):
    """Every packed layout with the batch inside the last axis (``inner``)."""
    def of(geo):
        before = tuple(sl.start for sl in geo.interior[2:])
        after = tuple(p - s - b for p, s, b in zip(geo.padded, geo.size, before, strict=True))
        return _packed._Layout(geo, before, after, inner=True)

    monkeypatch.setattr(_packed._Layout, "of", staticmethod(of))


@pytest.fixture(params=["image after image", "batch inside"])
def packed(request, monkeypatch):
    """Every stride-1 layer with one group on the packed route (small ones too), in
    either grid."""
    from backprop.layers import _conv

    monkeypatch.setattr(_conv, "_PER_SAMPLE", 0)
    monkeypatch.setattr(_packed, "_MAX_JUNK", np.inf)
    if request.param == "batch inside":
        _batch_inside(monkeypatch)


def _step(layer, x, dy, input_grad=True):
    y = layer.forward(x, training=True)
    if input_grad:
        dx = layer.backward(dy)
    else:
        layer.backward_params(dy)
        dx = None
    return y, dx, layer.grads["W"].copy(), (layer.grads["b"].copy() if layer.bias else None)


CASES = [  # (class, C_in, C_out, kernel, padding, dilation, input shape, padding_mode)
    (bp.Conv2D, 3, 4, 3, 1, 1, (5, 3, 7, 6), "zeros"),
    (bp.Conv2D, 2, 3, (2, 4), "same", 1, (3, 2, 6, 9), "zeros"),  # even kernel: 1 more after
    (bp.Conv2D, 2, 3, 3, (4, 0), (2, 1), (2, 2, 5, 8), "zeros"),  # padding past the kernel
    (bp.Conv2D, 2, 3, (3, 2), "same", (2, 3), (2, 2, 7, 9), "zeros"),
    (bp.Conv2D, 3, 2, 3, 0, 1, (3, 3, 6, 7), "zeros"),  # no padding
    (bp.Conv2D, 2, 3, 3, (1, 2), 1, (2, 2, 5, 6), "reflect"),
    (bp.Conv1D, 3, 5, 5, 2, 1, (4, 3, 11), "zeros"),
    (bp.Conv1D, 2, 3, 3, "same", 3, (3, 2, 13), "circular"),
    (bp.Conv3D, 2, 3, (3, 2, 3), (1, 0, 2), (1, 2, 1), (2, 2, 4, 5, 3), "zeros"),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cls,c_in,c_out,k,p,d,shape,mode", CASES)
def test_packed_route_matches_torch(packed, cls, c_in, c_out, k, p, d, shape, mode, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = cls(c_in, c_out, k, padding=p, dilation=d, padding_mode=mode, bias=bias,
                dtype=np.float64, rng=0)
    if bias:
        layer.params["b"][...] = rng.standard_normal(c_out)
    theirs = getattr(torch.nn, f"Conv{len(shape) - 2}d")(
        c_in, c_out, k, padding=p, dilation=d, padding_mode=mode, bias=bias).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(layer.params["W"]))
        if bias:
            theirs.bias.copy_(torch.from_numpy(layer.params["b"]))
    x = rng.standard_normal(shape)
    y = layer.forward(x, training=True)
    kb = c_in * int(np.prod(layer.params["W"].shape[2:])) + bias
    assert layer._cols.shape[0] == kb and layer._cols.shape[1] > y.size // c_out  # junk
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], theirs.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.grads["b"], theirs.bias.grad.numpy(), rtol=1e-12,
                                   atol=1e-12)
    layer.forward(x, training=True)
    layer.grads["W"][...] = 0
    layer.backward_params(dy)  # the first layer's backward in fit: dW without dx
    np.testing.assert_allclose(layer.grads["W"], theirs.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)


def _nan_equal(a, b, rtol=1e-12):
    """The same NaN, the same infinities, and the finite values close."""
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.array_equal(np.isposinf(a), np.isposinf(b))
    assert np.array_equal(np.isneginf(a), np.isneginf(b))
    finite = np.isfinite(a)
    np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("grid", ["image after image", "batch inside"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_packed_route_keeps_the_im2col_sums_around_non_finite_values(value, grid, monkeypatch):
    """Junk columns multiply zeros of dy with x (dW) and of dy with W (dx): an inf or NaN
    there must not reach a gradient that the real windows keep finite."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 6, 7))
    x[1, 2, 5, 0] = value  # read through a junk column: last row, first column
    x[0, 1, 0, 6] = value
    dy = rng.standard_normal((3, 8, 6, 7))

    torch = pytest.importorskip("torch")
    if grid == "batch inside":
        _batch_inside(monkeypatch)

    def run(route_packed, poison_w):
        with monkeypatch.context() as m:
            m.setattr("backprop.layers._conv._PER_SAMPLE", 0)
            m.setattr(_packed, "_MAX_JUNK", np.inf if route_packed else 0)
            layer = bp.Conv2D(4, 8, 3, padding=1, dtype=np.float64, rng=0)
            if poison_w:  # the im2col route's dx products met it too: NaN, fixed with this
                layer.params["W"][2, 1, 0, 2] = value
            with np.errstate(all="ignore"):
                return layer, _step(layer, np.nan_to_num(x) if poison_w else x, dy)

    for poison_w in (False, True):
        for route_packed in (True, False):
            layer, got = run(route_packed, poison_w)
            theirs = torch.nn.Conv2d(4, 8, 3, padding=1).double()
            with torch.no_grad():
                theirs.weight.copy_(torch.from_numpy(layer.params["W"]))
                theirs.bias.copy_(torch.from_numpy(layer.params["b"]))
            xt = torch.from_numpy(np.nan_to_num(x) if poison_w else x).requires_grad_(True)
            theirs(xt).backward(torch.from_numpy(dy))
            want = (theirs(xt).detach().numpy(), xt.grad.numpy(), theirs.weight.grad.numpy(),
                    theirs.bias.grad.numpy())
            for a, b in zip(got, want, strict=True):
                _nan_equal(a, b)
            dw = got[2] if not poison_w else got[1]
            assert np.isfinite(dw).any() and not np.isfinite(dw).all()


def test_packed_workspaces_follow_the_geometry(monkeypatch):
    """One layer on batches whose packed buffers differ (or whose route differs: few
    positions per output, then many): each result is a fresh layer's."""
    rng = np.random.default_rng(5)
    make = lambda: bp.Conv2D(8, 64, 3, padding=1, dtype=np.float64, rng=0)  # noqa: E731
    layer = make()
    for shape in ((4, 8, 14, 14), (4, 8, 6, 30), (2, 8, 4, 4), (4, 8, 14, 14), (3, 8, 14, 14)):
        x = rng.standard_normal(shape)
        dy = rng.standard_normal((shape[0], 64, *shape[2:]))
        for a, b in zip(_step(layer, x, dy), _step(make(), x, dy), strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_benchmark_cnn_s_second_convolution_takes_the_packed_route():
    layer = bp.Conv2D(32, 64, 3, padding=1, rng=0)
    x = np.random.default_rng(0).standard_normal((64, 32, 14, 14)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and layer._cols.dtype == np.float32
    assert layer._cols.shape == (32 * 9 + 1, 63 * 15 * 15 + 13 * 15 + 14)  # 15x15 apart
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and layer.grads["W"].dtype == np.float32
    small = bp.Conv2D(64, 128, 3, padding=1, rng=0)  # 7x7 images 8x8 apart: 1.30 per output
    small.forward(np.zeros((32, 64, 7, 7), np.float32), training=True)
    # so the batch goes inside the rows: 7 rows of the 32 images' 7 outputs 8 apart (1.14)
    assert small._cols.shape == (64 * 9 + 1, 6 * 32 * 8 + 31 * 8 + 7)
    tiny = bp.Conv2D(64, 128, 3, padding=1, rng=0)  # 4x4: 1.56, and inside the rows 1.25
    tiny.forward(np.zeros((32, 64, 4, 4), np.float32), training=True)
    assert tiny._cols.shape == (64 * 9 + 1, 32 * 16)  # im2col: the outputs alone


def test_packed_route_without_openblas_adds_by_numpy(packed, monkeypatch):
    from backprop import _openblas

    rng = np.random.default_rng(6)
    x, dy = rng.standard_normal((3, 4, 5, 6)), rng.standard_normal((3, 5, 5, 6))
    layer = bp.Conv2D(4, 5, 3, padding=1, dtype=np.float64, rng=0)
    want = _step(layer, x, dy)
    monkeypatch.setattr(_openblas, "matmul_add", lambda dtype: None)
    for a, b in zip(_step(layer, x, dy), want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_packed_route_agrees_with_im2col_on_random_geometries(monkeypatch):
    """120 random stride-1 layers, half of them packed with the batch inside the last
    axis (1-3 spatial axes, kernels, paddings with 'same' and
    'valid', dilations, batches down to one sample, with and without bias): the packed
    route's output and gradients are the im2col route's."""
    from backprop.layers import _conv

    rng = np.random.default_rng(11)
    monkeypatch.setattr(_conv, "_PER_SAMPLE", 0)
    calls, forward = [], _packed.forward
    monkeypatch.setattr(_packed, "forward", lambda *a: calls.append(1) or forward(*a))
    for trial in range(120):
        if trial == 60:
            _batch_inside(monkeypatch)  # the second half in the other grid
        d = int(rng.integers(1, 4))
        size = tuple(int(s) for s in rng.integers(1, 9, d))
        k = tuple(int(v) for v in rng.integers(1, 4, d))
        dil = tuple(int(v) for v in rng.integers(1, 3, d))
        kind = rng.integers(3)
        padding = ("same" if kind == 0 else "valid" if kind == 1
                   else tuple(int(v) for v in rng.integers(0, 4, d)))
        span = [di * (ki - 1) for di, ki in zip(dil, k, strict=True)]
        pads = [0] * d if padding == "valid" else span if padding == "same" else \
            [2 * p for p in padding]
        if any(s + p - e < 1 for s, p, e in zip(size, pads, span, strict=True)):
            continue  # no output
        if all(v == 1 for v in k):
            continue  # 1x1: the pointwise route
        c_in, c_out, n = (int(v) for v in rng.integers(1, 5, 3))
        bias = bool(rng.integers(2))
        cls = (bp.Conv1D, bp.Conv2D, bp.Conv3D)[d - 1]
        x = rng.standard_normal((n, c_in, *size))
        results = []
        for junk in (np.inf, 0):
            monkeypatch.setattr(_packed, "_MAX_JUNK", junk)
            layer = cls(c_in, c_out, k, padding=padding, dilation=dil, bias=bias,
                        dtype=np.float64, rng=1)
            if bias:
                layer.params["b"][...] = np.arange(c_out) - 1.5
            y = layer.forward(x, training=True)
            dy = np.random.default_rng(3).standard_normal(y.shape)
            results.append(_step(layer, x, dy))
        for a, b in zip(*results, strict=True):
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    assert len(calls) >= 60  # 2 forwards per layer on the packed route


def test_packed_workspaces_of_two_grids_with_one_shape_do_not_mix():
    """From a review: 16x4x15 images (the batch inside the rows: grid (5, 16, 16)) and
    5x15x15 ones (image after image: also (5, 16, 16)), with a (2, 3) kernel padded
    'same' (no zero before the rows), shared one xp workspace and its stale values."""
    rng = np.random.default_rng(8)
    layer = bp.Conv2D(32, 32, (2, 3), padding="same", dtype=np.float64, rng=0)
    fresh = lambda: bp.Conv2D(32, 32, (2, 3), padding="same", dtype=np.float64, rng=0)  # noqa: E731
    grids = []
    for shape in ((16, 32, 4, 15), (5, 32, 15, 15), (16, 32, 4, 15)):
        x = rng.standard_normal(shape)
        dy = rng.standard_normal(shape[:1] + (32,) + shape[2:])
        lay = _packed._Layout.of(layer._geometry(shape))
        grids.append((lay.inner, lay.grid))
        for a, b in zip(_step(layer, x, dy), _step(fresh(), x, dy), strict=True):
            np.testing.assert_array_equal(a, b)
    assert grids == [(True, (5, 16, 16)), (False, (5, 16, 16)), (True, (5, 16, 16))]
