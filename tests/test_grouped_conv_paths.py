"""The route of grouped convolutions without im2col (:mod:`backprop.layers._grouped`:
per-offset products over phase planes, or for depthwise layers per-channel
multiply-adds, :mod:`backprop.layers._depthwise`), against the im2col route and
PyTorch, and its fallback to im2col where an inf or NaN would meet its zeros."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from table import LAYERS

import backprop as bp
from backprop import _openblas
from backprop.layers import _depthwise, _grouped

torch = pytest.importorskip("torch")

CLS = {1: bp.Conv1D, 2: bp.Conv2D, 3: bp.Conv3D}
TORCH = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
         3: torch.nn.functional.conv3d}

# (C_in, C_out, groups, kernel, stride, padding, dilation, size, padding_mode)
CASES = [
    (4, 4, 4, 3, 1, 1, 1, (7, 6), "zeros"),                # depthwise, stride 1
    (4, 4, 4, 3, 2, 1, 1, (9, 8), "zeros"),                # depthwise, stride 2
    (3, 3, 3, (2, 3), (1, 2), (1, 0), (2, 1), (8, 9), "zeros"),
    (3, 3, 3, (3, 2), (2, 1), (0, 2), (1, 2), (9, 7), "zeros"),
    (2, 2, 2, 4, (3, 2), "valid", 1, (11, 10), "zeros"),
    (3, 3, 3, (2, 4), 1, "same", (2, 1), (5, 8), "zeros"),  # 'same', even kernel
    (4, 4, 4, 3, 1, 2, 1, (6, 40), "zeros"),               # wide: several blocks
    (4, 4, 4, 5, 2, 2, 1, (7, 75), "zeros"),               # wide and strided
    (4, 4, 4, 3, 1, 1, 1, (6, 6), "reflect"),
    (4, 4, 4, 3, 2, 1, 1, (7, 6), "circular"),
    (4, 8, 4, 3, 1, 1, 1, (6, 7), "zeros"),                # depthwise x2: _grouped
    (4, 6, 2, 3, 1, 1, 1, (6, 7), "zeros"),                # grouped, stride 1
    (4, 6, 2, 3, 2, 1, 1, (9, 8), "zeros"),                # grouped, stride 2
    (6, 4, 2, (2, 3), (2, 1), (1, 0), (1, 2), (9, 8), "zeros"),
    (6, 9, 3, 3, (1, 3), 2, 2, (8, 13), "replicate"),
    (8, 8, 4, 1, 1, 0, 1, (4, 5), "zeros"),                # 1x1
    (4, 6, 2, 2, 1, "same", 1, (5, 6), "zeros"),
    (4, 4, 4, 3, 1, 1, 1, (9,), "zeros"),                  # 1-D
    (4, 4, 4, 4, 3, 2, 2, (20,), "zeros"),
    (4, 6, 2, 3, 2, 1, 1, (13,), "reflect"),
    (3, 3, 3, (2, 3, 2), (1, 2, 1), 1, 1, (4, 5, 6), "zeros"),   # 3-D
    (3, 3, 3, 3, (2, 1, 1), 1, 1, (5, 5, 4), "zeros"),     # depth stride: _grouped
    (4, 6, 2, (2, 3, 2), (2, 1, 2), (1, 0, 1), (1, 1, 2), (5, 4, 6), "zeros"),
]


def _layer(case, dtype, bias=True, seed=0):
    c_in, c_out, g, k, s, p, d, size, mode = case
    layer = CLS[len(size)](c_in, c_out, k, s, p, d, g, bias=bias, padding_mode=mode,
                           dtype=dtype, rng=seed)
    if bias:
        layer.params["b"][...] = np.random.default_rng(seed + 1).standard_normal(c_out)
    return layer


def _step(layer, x, dy=None):
    """``(y, dx, grads, dy)`` of one training step (``dy`` drawn when not given)."""
    y = layer.forward(x, training=True)
    if dy is None:
        dy = np.random.default_rng(5).standard_normal(y.shape).astype(y.dtype)
    dx = layer.backward(dy)
    return y, dx, {k: v.copy() for k, v in layer.grads.items()}, dy


def _x_padded(layer, x):
    """``x`` as a padding mode pads it for the machinery."""
    from backprop.layers._padding import pad_input
    return pad_input(layer, x)


@pytest.fixture(autouse=True)
def every_size(monkeypatch):
    """The test layers are small: take the route at every size (see _grouped._SMALL)."""
    monkeypatch.setattr(_grouped, "_SMALL", 0)


@pytest.fixture
def im2col_only(monkeypatch):
    """Every grouped layer on the im2col route (the reference)."""
    def force():
        monkeypatch.setattr(_grouped, "usable", lambda layer, geo: False)
    return force


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_direct_routes_match_torch_and_the_im2col_route(case, bias, im2col_only):
    c_in, c_out, g, k, s, p, d, size, mode = case
    x = np.random.default_rng(3).standard_normal((3, c_in, *size))
    layer = _layer(case, np.float64, bias)
    y, dx, grads, dy = _step(layer, x)
    assert layer.cache["cols"] is None  # taken by the backward
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["W"], requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True) if bias else None
    if mode == "zeros":
        with warnings.catch_warnings():  # torch's note on 'same' with even kernels
            warnings.simplefilter("ignore", UserWarning)
            yt = TORCH[len(size)](xt, wt, bt, stride=s, padding=p, dilation=d, groups=g)
    else:
        pads = layer._border[0]
        xpad = torch.nn.functional.pad(xt, [q for z in reversed(pads) for q in (z, z)], mode=mode)
        yt = TORCH[len(size)](xpad, wt, bt, stride=s, dilation=d, groups=g)
    yt.backward(torch.tensor(dy))
    want = [yt.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()] + (
        [bt.grad.numpy()] if bias else [])
    for got, ref in zip([y, dx, grads["W"]] + ([grads["b"]] if bias else []), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # float32: the same as the im2col route within rounding, and float32 throughout
    x32, dy32 = x.astype(np.float32), dy.astype(np.float32)
    y, dx, grads, _ = _step(_layer(case, np.float32, bias), x32, dy32)
    im2col_only()
    y_ref, dx_ref, grads_ref, _ = _step(_layer(case, np.float32, bias), x32, dy32)
    for got, ref in ((y, y_ref), (dx, dx_ref), *((grads[n], grads_ref[n]) for n in grads)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_route_caches_the_input_as_phase_planes(case):
    layer = _layer(case, np.float32)
    c_in, size = case[0], case[7]
    x = np.random.default_rng(0).standard_normal((2, c_in, *size)).astype(np.float32)
    layer.forward(x, training=True)
    cache, x_shape = layer.cache["cols"], layer.cache["x_shape"]
    geo = layer._geometry(x_shape)  # the input the machinery saw (padded by a mode)
    assert cache.shape == (int(np.prod(layer._s)), c_in, x.shape[0] * int(np.prod(geo.phases)))
    np.testing.assert_array_equal(_grouped.unpadded(layer, cache, geo).swapaxes(0, 1),
                                  x if case[-1] == "zeros" else _x_padded(layer, x))


@pytest.mark.parametrize("per_call", [0, 10**12])  # BLAS adds by group / stacked + add
@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("case", [c for c in CASES if c[0] != c[2] or c[1] != c[2]], ids=str)
def test_both_ways_of_adding_the_products_agree(case, per_call, blas, monkeypatch):
    c_in, size = case[0], case[7]
    x = np.random.default_rng(8).standard_normal((2, c_in, *size))
    want = _step(_layer(case, np.float64), x)
    monkeypatch.setattr(_grouped, "_PER_CALL", per_call)
    if not blas:  # NumPy builds without OpenBLAS's cblas: always stacked
        monkeypatch.setattr(_openblas, "matmul_add", lambda dtype: None)
    elif _openblas.matmul_add(np.float64) is None:
        pytest.skip("NumPy's BLAS here has no cblas_?gemm")
    layer = _layer(case, np.float64)
    assert _grouped.usable(layer, layer._geometry(x.shape))
    got = _step(_layer(case, np.float64), x, want[3])
    for a, b in zip(got[:2] + (got[2]["W"],), want[:2] + (want[2]["W"],), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_small_grouped_layers_keep_im2col_and_depthwise_ones_do_not(monkeypatch):
    monkeypatch.setattr(_grouped, "_SMALL", 2 * 4 * 36)  # N·prod(out)·C_in of a 2x4x6x6 input
    x = np.ones((2, 4, 6, 6), np.float32)
    for layer, small_ndim in ((bp.Conv2D(4, 6, 3, padding=1, groups=2), 2),
                              (bp.Conv2D(4, 4, 3, padding=1, groups=4), 3)):
        layer.forward(x[:1], training=True)
        assert layer.cache["cols"].ndim == small_ndim  # im2col's columns / the planes
        layer.forward(x, training=True)
        assert layer.cache["cols"].ndim == 3
        assert layer.backward(np.ones((2, layer.out_channels, 6, 6), np.float32)).shape == x.shape


def test_channel_blocks_of_the_depthwise_loops_agree_with_one_block(monkeypatch):
    case = (6, 6, 6, 3, 1, 1, 1, (5, 7), "zeros")
    x = np.random.default_rng(2).standard_normal((2, 6, 5, 7))
    want = _step(_layer(case, np.float64), x)
    monkeypatch.setattr(_depthwise, "_BLOCK_BYTES", 8 * 100)  # 1 channel (span 2·49 - 11)
    assert _depthwise._blocks(6, 87, 8) == range(0, 6, 1)
    got = _step(_layer(case, np.float64), x, want[3])
    for a, b in zip(got[:2] + (got[2]["W"], got[2]["b"]), want[:2] + (want[2]["W"], want[2]["b"]),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_stride_1_depthwise_sums_are_those_of_the_route_it_replaced():
    """Forward and dx add the taps in the kernel's order from a first product, as the
    direct route before did (its y and dx to the bit, float32; dW adds in another order)."""
    rng = np.random.default_rng(3)
    layer = bp.Conv2D(3, 3, 3, padding=1, groups=3, rng=0)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    w = layer.params["W"][:, 0]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y_ref = xp[:, :, 0:6, 0:5] * w[:, 0, 0, None, None]
    dxp = np.zeros_like(xp)
    for ki in range(3):
        for kj in range(3):
            if ki or kj:
                y_ref += xp[:, :, ki:ki + 6, kj:kj + 5] * w[:, ki, kj, None, None]
            dxp[:, :, ki:ki + 6, kj:kj + 5] += dy * w[:, ki, kj, None, None]
    np.testing.assert_array_equal(y, y_ref + layer.params["b"][:, None, None])
    np.testing.assert_array_equal(dx, dxp[:, :, 1:-1, 1:-1])


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[11], CASES[12]], ids=str)
@pytest.mark.parametrize("where", ["x", "dy", "W"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_non_finite_values_give_what_the_im2col_route_gives(case, where, value, im2col_only):
    """A junk position's zero times an inf would be NaN where the windows' own sums are
    not: such backward steps take the im2col route (for dx when W is not finite, for
    both when dW is not), whose results they then equal; the forward's sums are the
    windows' own."""
    rng = np.random.default_rng(4)
    c_in, size = case[0], case[7]
    x = rng.standard_normal((2, c_in, *size)).astype(np.float32)
    layer = _layer(case, np.float32)
    dy = rng.standard_normal(layer.forward(x).shape).astype(np.float32)
    # at the last column: its products meet the junk positions' zeros (past each row)
    if where == "x":
        x[1, 0, 2, -1] = value
    elif where == "dy":
        dy[0, -1, 1, 1] = value
    else:
        layer.params["W"][0, 0, 1, -1] = value
    with np.errstate(all="ignore"):
        got = _step(layer, x, dy)
        im2col_only()
        ref = _layer(case, np.float32)
        ref.params["W"][...] = layer.params["W"]
        want = _step(ref, x, dy)
    for a, b in zip(got[:2] + (got[2]["W"], got[2]["b"]), want[:2] + (want[2]["W"], want[2]["b"]),
                    strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_non_contiguous_input_and_float64_on_both_routes(im2col_only):
    rng = np.random.default_rng(6)
    for case in (CASES[1], CASES[12]):
        c_in, size = case[0], case[7]
        base = rng.standard_normal((2, *size, c_in))
        x = np.moveaxis(base, -1, 1)  # channels last in memory
        assert not x.flags.c_contiguous
        got = _step(_layer(case, np.float64), x)
        want = _step(_layer(case, np.float64), np.ascontiguousarray(x), got[3])
        for a, b in zip(got[:2], want[:2], strict=True):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def _recorded_products(monkeypatch, layer, x, input_grad):
    """Every matrix product one training step of ``layer`` runs, as ``(m, k, n)``: the
    stacked ``np.matmul`` calls and BLAS's in-place ``out += a @ b``."""
    seen: list[tuple[int, int, int]] = []
    matmul, matmul_add = np.matmul, _openblas.matmul_add

    def recording(a, b, *args, **kwargs):
        batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])))
        seen.extend([(a.shape[-2], a.shape[-1], b.shape[-1])] * batch)
        return matmul(a, b, *args, **kwargs)

    def recording_add(dtype):
        run = matmul_add(dtype)

        def add(a, b, out):
            seen.append((a.shape[0], a.shape[1], b.shape[1]))
            run(a, b, out)
        return add

    y = layer.forward(x, training=True)
    dy = np.ones_like(y)
    with monkeypatch.context() as m:
        m.setattr(np, "matmul", recording)
        m.setattr(_openblas, "matmul_add", recording_add)
        layer.forward(x, training=True)
        layer.backward(dy) if input_grad else layer.backward_params(dy)
    return seen


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("case", [CASES[0], CASES[7], CASES[12], CASES[14], CASES[20]], ids=str)
def test_gemm_shapes_are_the_products_the_step_runs(monkeypatch, case, input_grad):
    layer = _layer(case, np.float32)
    c_in, size = case[0], case[7]
    x = np.random.default_rng(0).standard_normal((2, c_in, *size)).astype(np.float32)
    seen = _recorded_products(monkeypatch, layer, x, input_grad)
    assert Counter(layer.gemm_shapes(x.shape, input_grad)) == Counter(seen)


GROUPED_TABLE = [c for c in LAYERS if c.name.startswith("Conv") and "Transpose" not in c.name
                 and ("grouped" in c.name or "depthwise" in c.name)]


@pytest.mark.parametrize("stack", [False, True])
@pytest.mark.parametrize("case", GROUPED_TABLE, ids=[c.name for c in GROUPED_TABLE])
def test_the_table_grouped_convolutions_pass_the_gradient_check_on_this_route(case, stack):
    """tests/table.py's grouped rows are small enough to keep im2col there; here (every
    size, see ``every_size``) they take this route."""
    layer = case.make(np.float64)
    x = case.draw(np.random.default_rng(0), case.in_shape).astype(np.float64)
    layer.forward(x, training=True)
    assert layer.cache["cols"].ndim == 3  # the phase planes
    result = bp.check_gradients(case.make(np.float64), x, stack=stack)
    assert result.passed, str(result)
