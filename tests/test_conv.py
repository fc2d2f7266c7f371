"""Conv1D and Conv2D: outputs and gradients against PyTorch, shapes, errors, config."""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest

import backprop as bp

CONV2D_CASES = [  # (C_in, C_out, kernel, stride, padding, (H, W))
    (3, 4, 3, 1, 1, (7, 9)),
    (2, 5, (2, 3), (2, 1), (1, 0), (8, 7)),
    (1, 2, 5, 3, 2, (11, 6)),
    (4, 3, 1, 1, 0, (5, 5)),
    (2, 3, (3, 1), (1, 2), (0, 2), (6, 5)),
    (2, 2, 4, 4, 0, (8, 8)),
]


_TORCH_EVEN_SAME = "ignore:Using padding='same' with even kernel:UserWarning"  # torch's note


def _rand(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("c_in,c_out,k,s,p,hw", CONV2D_CASES)
def test_conv2d_matches_torch_forward_and_backward(c_in, c_out, k, s, p, hw, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    conv = bp.Conv2D(c_in, c_out, k, s, p, dtype=dtype, rng=1)
    conv.params["b"][...] = rng.standard_normal(c_out)
    x = _rand(rng, 3, c_in, *hw, dtype=dtype)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape, dtype=dtype)
    dx = conv.backward(dy)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), rtol=tol, atol=tol * 10)
    assert y.dtype == dx.dtype == dtype and y.flags.c_contiguous and dx.flags.c_contiguous


@pytest.mark.parametrize("k,s,p,length", [(3, 1, 0, 10), (3, 2, 1, 10), (5, 3, 2, 9), (1, 1, 0, 4)])
def test_conv1d_matches_torch_forward_and_backward(k, s, p, length):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    conv = bp.Conv1D(3, 4, k, s, p, dtype=np.float64, rng=1)
    conv.params["b"][...] = rng.standard_normal(4)
    x = _rand(rng, 2, 3, length)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    yt = torch.nn.functional.conv1d(xt, wt, bt, stride=s, padding=p)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), atol=1e-12)


def test_conv2d_weight_layout_is_pytorch_and_conv1d_is_its_one_row_case():
    conv2 = bp.Conv2D(3, 4, (1, 3), padding=(0, 1), dtype=np.float64, rng=0)
    conv1 = bp.Conv1D(3, 4, 3, padding=1, dtype=np.float64, rng=0)
    assert conv2.params["W"].shape == (4, 3, 1, 3) and conv1.params["W"].shape == (4, 3, 3)
    conv1.params["W"][...] = conv2.params["W"][:, :, 0]
    x = np.random.default_rng(0).standard_normal((2, 3, 6))
    np.testing.assert_allclose(conv1.forward(x), conv2.forward(x[:, :, None])[:, :, 0])


def test_conv_backward_params_fills_the_same_grads_and_skips_dx():
    rng = np.random.default_rng(0)
    a = bp.Conv2D(2, 3, 3, stride=2, padding=1, rng=0)
    b = bp.Conv2D(2, 3, 3, stride=2, padding=1, rng=0)
    x = _rand(rng, 4, 2, 7, 7, dtype=np.float32)
    dy = _rand(rng, 4, 3, 4, 4, dtype=np.float32)
    a.forward(x, training=True)
    a.backward(dy)
    b.forward(x, training=True)
    b.backward_params(dy)
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])
    assert not b.has_cache


def test_conv_as_first_layer_gives_the_same_grads_without_input_grad():
    def cnn():
        dt = np.float64
        return bp.Sequential([bp.Conv2D(1, 2, 3, dtype=dt, rng=0), bp.Tanh(dtype=dt),
                              bp.Flatten(dtype=dt), bp.Dense(18, 3, dtype=dt, rng=1)])

    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5))
    lean, full = cnn(), cnn()
    lean.forward(x, training=True)
    assert lean.backward(np.ones((2, 3)), input_grad=False) is None
    full.forward(x, training=True)
    full.backward(np.ones((2, 3)))
    np.testing.assert_allclose(lean.flat_grads, full.flat_grads)


def test_small_cnn_gradients_match_central_differences():
    dt = np.float64
    model = bp.Sequential([
        bp.Conv2D(1, 3, 3, padding=1, dtype=dt, rng=0), bp.Tanh(dtype=dt),
        bp.MaxPool2D(2, dtype=dt), bp.Conv2D(3, 2, (2, 1), stride=(1, 2), dtype=dt, rng=1),
        bp.Flatten(dtype=dt), bp.Dense(2 * 2 * 1, 3, dtype=dt, rng=2),
    ])
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 4))
    result = bp.check_gradients(model, x)
    assert result.passed, str(result)


def test_conv2d_too_small_input_names_expected_and_received():
    conv = bp.Conv2D(1, 2, 5, padding=1)
    with pytest.raises(ValueError, match=r"Conv2D\(1, 2, 5, padding=1\): expected input spatial "
                       r"size of at least \(3, 3\).*got input of shape \(4, 1, 2, 8\)"):
        conv.forward(np.zeros((4, 1, 2, 8), np.float32))


def test_conv1d_too_short_input_names_expected_and_received():
    with pytest.raises(ValueError, match=r"expected input spatial size of at least \(4,\).*"
                                         r"\(2, 3, 3\)"):
        bp.Conv1D(3, 1, 4).forward(np.zeros((2, 3, 3), np.float32))


def test_conv_rejects_wrong_channels_and_rank():
    with pytest.raises(ValueError,
                       match=r"expected input of shape \(N, 3, H, W\), got \(2, 4, 5, 5\)"):
        bp.Conv2D(3, 1, 3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, L\), got \(2, 3\)"):
        bp.Conv1D(3, 1, 3).forward(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("kwargs,err", [
    (dict(kernel_size=0), ValueError), (dict(kernel_size=(3, 3, 3)), ValueError),
    (dict(kernel_size=2.5), TypeError), (dict(kernel_size=3, stride=0), ValueError),
    (dict(kernel_size=3, padding=-1), ValueError), (dict(kernel_size=3, padding=True), TypeError),
])
def test_conv2d_rejects_bad_hyperparameters(kwargs, err):
    with pytest.raises(err, match="Conv2D: expected"):
        bp.Conv2D(1, 1, **kwargs)


def test_conv_config_rebuilds_the_layer_and_repr_is_compact():
    conv = bp.Conv2D(2, 3, (3, 3), stride=(2, 1), padding=1, bias=False)
    assert repr(conv) == "Conv2D(2, 3, 3, stride=(2, 1), padding=1, bias=False)"
    config = conv.get_config()
    assert config == {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": (2, 1),
                      "padding": 1, "dilation": 1, "groups": 1, "bias": False,
                      "padding_mode": "zeros", "dtype": "float32"}
    assert repr(bp.Conv2D(**config)) == repr(conv)
    assert repr(bp.Conv1D(1, 8, 5, padding=2)) == "Conv1D(1, 8, 5, padding=2)"


def test_conv_default_init_is_he_uniform_and_bias_zero():
    conv = bp.Conv2D(16, 32, 3, rng=0)
    bound = np.sqrt(6 / (16 * 9))
    w = conv.params["W"]
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound and abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
    np.testing.assert_array_equal(conv.params["b"], 0)
    np.testing.assert_array_equal(bp.Conv2D(16, 32, 3, rng=0).params["W"], w)


def test_conv_gemm_shapes_are_the_products_the_step_runs(dx_route, monkeypatch):
    from backprop.layers import _packed

    conv = bp.Conv2D(32, 64, 3, padding=1)
    k, kb = 32 * 9, 32 * 9 + 1
    # packed: 64 images of 15x15 (14 + one shared zero per axis), the last one's outputs
    span = 63 * 225 + 13 * 15 + 14
    packed = [(64, kb, span), (kb, span, 64)]
    assert conv.gemm_shapes((64, 32, 14, 14)) == [*packed, *[(32, 64, span)] * 9]
    assert conv.gemm_shapes((64, 32, 14, 14), input_grad=False) == packed
    monkeypatch.setattr(_packed, "_MAX_JUNK", 0)  # the im2col route
    nl = 64 * 14 * 14  # one column per sample and output position: no junk
    kb = k + 1  # the bias rides along as one more row of cols (and column of W_mat)
    if dx_route == "col2im":  # dcols = W_mat.T @ dy_mat
        dx = [(k, 64, nl)]
    else:  # W[:, :, ki, kj].T @ dy over xp's layout: 64 images of 16·16 + 2, less the tail
        dx = [(32, 64, 63 * 258 + 13 * 16 + 14)] * 9
    assert conv.gemm_shapes((64, 32, 14, 14)) == [(64, kb, nl), (kb, nl, 64), *dx]
    assert conv.gemm_shapes((64, 32, 14, 14), input_grad=False) == [(64, kb, nl), (kb, nl, 64)]
    no_bias = bp.Conv2D(32, 64, 3, padding=1, bias=False)
    assert no_bias.gemm_shapes((64, 32, 14, 14)) == [(64, k, nl), (k, nl, 64), *dx]
    strided = bp.Conv2D(32, 64, 3, stride=(1, 2), padding=1)
    # products: over 2 phase planes of 16x8, the outputs (14x7) at the start of each
    strided_dx = ([(k, 64, 64 * 14 * 7)] if dx_route == "col2im"
                  else [(32, 64, 63 * 128 + 13 * 8 + 7)] * 9)
    assert strided.gemm_shapes((64, 32, 14, 14)) == [
        (64, kb, 64 * 14 * 7), (kb, 64 * 14 * 7, 64), *strided_dx]


def test_conv_float32_keeps_float32_everywhere():
    conv = bp.Conv2D(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    y = conv.forward(x, training=True)
    dx = conv.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == conv.grads["W"].dtype == conv.grads["b"].dtype == np.float32


# -- the im2col layout and the workspaces, against a direct reference --------------------
def reference_conv2d(x, w, b, stride, padding, dy, dilation=(1, 1)):
    """Direct convolution (one einsum per kernel offset, no im2col): y, dx, dW, db."""
    (sh, sw), (ph, pw), (kh, kw), (dh, dw_) = stride, padding, w.shape[2:], dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[3] - dw_ * (kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], w.shape[0], ho, wo))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for ki in range(kh):
        for kj in range(kw):
            at = (slice(None), slice(None), slice(ki * dh, ki * dh + sh * (ho - 1) + 1, sh),
                  slice(kj * dw_, kj * dw_ + sw * (wo - 1) + 1, sw))
            y += np.einsum("oc,nchw->nohw", w[:, :, ki, kj], xp[at])
            if dy is not None:
                dw[:, :, ki, kj] = np.einsum("nohw,nchw->oc", dy, xp[at])
                dxp[at] += np.einsum("oc,nohw->nchw", w[:, :, ki, kj], dy)
    y += b[:, None, None]
    if dy is None:
        return y
    return y, dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dy.sum((0, 2, 3))


REFERENCE_CASES = [  # (N, C_in, C_out, kernel, stride, padding, (H, W))
    (3, 2, 4, 3, (1, 1), (1, 1), (6, 7)),  # padded
    (2, 3, 2, 3, (1, 1), (0, 0), (5, 8)),  # no padding
    (2, 2, 3, 3, (2, 1), (1, 1), (9, 6)),  # strided rows
    (2, 2, 3, 3, (1, 2), (1, 1), (6, 9)),  # strided columns
    (2, 2, 3, (2, 3), (2, 2), (0, 1), (7, 8)),  # both strided
    (1, 1, 3, 5, (1, 1), (2, 2), (9, 10)),  # one sample, one channel, kernel 5
    (2, 1, 2, (4, 2), (1, 3), (2, 0), (8, 11)),  # kernel > 3, stride 3 > kernel width
    (1, 3, 2, 1, (1, 1), (0, 0), (4, 4)),  # 1x1 kernel: each output row one merged run
]


@pytest.fixture(params=["products", "col2im"])
def dx_route(request, monkeypatch):
    """Conv's two routes to dx: per-offset products added in place by NumPy's OpenBLAS
    (when that BLAS is there; strided layers in phase planes), or the dcols product and
    col2im."""
    from backprop import _openblas
    from backprop.layers import _conv

    if request.param == "col2im":
        monkeypatch.setattr(_openblas, "matmul_add", lambda dtype: None)
    elif _openblas.matmul_add(np.float64) is None:
        pytest.skip("NumPy's BLAS here has no cblas_?gemm: the col2im route is used")
    else:  # the small test layers too
        monkeypatch.setattr(_conv, "_PHASES_FROM", 0)
    return request.param


@pytest.fixture(params=["by sample", "one matrix", "packed"])
def cols_layout(request, monkeypatch):
    """Conv's three layouts of the columns: (N, K + 1, Ho·Wo) with one product per sample
    (small layers), (K + 1, N·Ho·Wo) with one product for the batch, or, with stride 1,
    (K + 1, span) over the images packed with shared padding (:mod:`._packed`, junk
    columns between the outputs)."""
    from backprop.layers import _conv as conv
    from backprop.layers import _packed

    monkeypatch.setattr(conv, "_PER_SAMPLE", 10**9 if request.param == "by sample" else 0)
    monkeypatch.setattr(_packed, "_MAX_JUNK", np.inf if request.param == "packed" else 0)
    return request.param


@pytest.mark.parametrize("n,c_in,c_out,k,s,p,hw", REFERENCE_CASES)
def test_conv2d_matches_a_direct_convolution(n, c_in, c_out, k, s, p, hw, dx_route,
                                             cols_layout):
    rng = np.random.default_rng(1)
    conv = bp.Conv2D(c_in, c_out, k, s, p, dtype=np.float64, rng=0)
    conv.params["b"][...] = rng.standard_normal(c_out)
    x = _rand(rng, n, c_in, *hw)
    y = conv.forward(x, training=True)
    # the patches, plus the row of ones that carries the bias through the products
    kb, cells = c_in * np.prod(conv.params["W"].shape[2:]) + 1, y.shape[2] * y.shape[3]
    if conv._pointwise():  # 1x1: x itself is the columns, by sample, with no row of ones
        assert conv._cols.shape == (n, c_in, cells)
        assert np.shares_memory(conv._cols, x)
    elif cols_layout == "by sample":
        assert conv._cols.shape == (n, kb, cells)
        np.testing.assert_array_equal(conv._cols[:, -1], 1.0)
    elif cols_layout == "packed" and conv._geometry(x.shape).unit_stride:
        from backprop.layers._packed import _Layout

        span = _Layout.of(conv._geometry(x.shape)).span
        assert conv._cols.shape == (kb, span) and span >= n * cells
        np.testing.assert_array_equal(conv._cols[-1], 1.0)
    else:
        assert conv._cols.shape == (kb, n * cells)
        np.testing.assert_array_equal(conv._cols[-1], 1.0)
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)
    ref_y, ref_dx, ref_dw, ref_db = reference_conv2d(x, conv.params["W"], conv.params["b"],
                                                     s, p, dy)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], ref_dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["b"], ref_db, rtol=1e-12, atol=1e-12)


DILATED_CASES = [  # (N, C_in, C_out, kernel, stride, padding, dilation, (H, W))
    (2, 2, 3, 3, (1, 1), (2, 2), (2, 2), (6, 7)),  # padded: the size kept
    (2, 3, 2, (3, 2), (1, 1), (0, 1), (2, 3), (9, 8)),  # non-square dilation
    (1, 2, 3, 3, (2, 1), (1, 0), (3, 1), (10, 6)),  # strided rows (the col2im route)
    (2, 1, 2, 2, (1, 2), (0, 0), (1, 4), (5, 11)),  # dilation along one axis only
]


@pytest.mark.parametrize("n,c_in,c_out,k,s,p,d,hw", DILATED_CASES)
def test_dilated_conv2d_matches_a_direct_convolution(n, c_in, c_out, k, s, p, d, hw, dx_route,
                                                     cols_layout):
    rng = np.random.default_rng(4)
    conv = bp.Conv2D(c_in, c_out, k, s, p, d, dtype=np.float64, rng=0)
    conv.params["b"][...] = rng.standard_normal(c_out)
    x = _rand(rng, n, c_in, *hw)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    got = (y, conv.backward(dy), conv.grads["W"], conv.grads["b"])
    ref = reference_conv2d(x, conv.params["W"], conv.params["b"], s, p, dy, d)
    assert y.shape == ref[0].shape
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,s,p,d", [(3, 1, 2, 2), (2, 2, 1, 3), (3, 1, "same", 2)])
def test_dilated_conv1d_matches_the_direct_convolution_of_one_row(k, s, p, d, dx_route):
    rng = np.random.default_rng(5)
    conv = bp.Conv1D(2, 3, k, s, p, dilation=d, dtype=np.float64, rng=0)
    x = _rand(rng, 2, 2, 11)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)
    pad = d * (k - 1) // 2 if p == "same" else p  # odd k: the same zeros on both ends
    ref = reference_conv2d(x[:, :, None], conv.params["W"][:, :, None], conv.params["b"],
                           (1, s), (0, pad), dy[:, :, None], (1, d))
    for got, want in zip((y, dx, conv.grads["W"], conv.grads["b"]), ref, strict=True):
        np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-12, atol=1e-12)
    assert p != "same" or y.shape == x.shape[:1] + (3, 11)


@pytest.mark.filterwarnings(_TORCH_EVEN_SAME)
@pytest.mark.parametrize("k,s,p,d", [(3, 1, 2, 2), ((2, 3), (2, 1), (1, 0), (3, 2)),
                                     (2, 1, "same", 3), ((3, 4), 1, "same", (2, 1))])
def test_dilated_conv2d_matches_torch(k, s, p, d):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    conv = bp.Conv2D(2, 3, k, s, p, d, dtype=np.float64, rng=0)
    conv.params["b"][...] = rng.standard_normal(3)
    x = _rand(rng, 2, 2, 9, 10)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    wt, bt = (torch.tensor(conv.params[n], requires_grad=True) for n in ("W", "b"))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p, dilation=d)
    yt.backward(torch.tensor(dy))
    for got, want in zip((y, dx, conv.grads["W"], conv.grads["b"]),
                         (yt.detach(), xt.grad, wt.grad, bt.grad), strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


GROUPED_CASES = [  # (C_in, C_out, groups, kernel, stride, padding, dilation, (H, W))
    (4, 6, 2, 3, 1, 1, 1, (6, 7)),
    (3, 3, 3, 3, 1, 1, 1, (5, 6)),  # depthwise
    (4, 8, 4, (2, 3), (2, 1), (1, 0), (1, 2), (9, 8)),  # depthwise x2, strided, dilated
    (6, 4, 2, 1, 1, 0, 1, (4, 5)),  # 1x1: a grouped pointwise layer
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c_in,c_out,g,k,s,p,d,hw", GROUPED_CASES)
def test_grouped_conv2d_is_one_direct_convolution_per_block_of_channels(
        c_in, c_out, g, k, s, p, d, hw, dtype, dx_route):
    rng = np.random.default_rng(7)
    conv = bp.Conv2D(c_in, c_out, k, s, p, d, g, dtype=dtype, rng=0)
    assert conv.params["W"].shape[:2] == (c_out, c_in // g)
    conv.params["b"][...] = rng.standard_normal(c_out)
    x = _rand(rng, 3, c_in, *hw, dtype=dtype)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape, dtype=dtype)
    dx = conv.backward(dy)
    ci, co = c_in // g, c_out // g
    two = (lambda v: (v, v)) if np.isscalar(s) else (lambda v: v)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for j in range(g):
        w, b = conv.params["W"][j * co:(j + 1) * co], conv.params["b"][j * co:(j + 1) * co]
        ref = reference_conv2d(x[:, j * ci:(j + 1) * ci].astype(np.float64), w, b,
                               two(s), two(p), dy[:, j * co:(j + 1) * co], two(d))
        got = (y[:, j * co:(j + 1) * co], dx[:, j * ci:(j + 1) * ci],
               conv.grads["W"][j * co:(j + 1) * co], conv.grads["b"][j * co:(j + 1) * co])
        for a, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, r, rtol=tol, atol=tol)
    assert y.dtype == dx.dtype == conv.grads["W"].dtype == dtype


@pytest.mark.parametrize("c_in,c_out,g,k,s,p,d,hw", GROUPED_CASES)
def test_grouped_conv_matches_torch(c_in, c_out, g, k, s, p, d, hw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    for conv, f, shape in ((bp.Conv2D(c_in, c_out, k, s, p, d, g, dtype=np.float64, rng=0),
                            torch.nn.functional.conv2d, (2, c_in, *hw)),
                           (bp.Conv1D(c_in, c_out, 3, 1, 2, 2, g, dtype=np.float64, rng=0),
                            torch.nn.functional.conv1d, (2, c_in, hw[1]))):
        conv.params["b"][...] = rng.standard_normal(c_out)
        x = _rand(rng, *shape)
        y = conv.forward(x, training=True)
        dy = _rand(rng, *y.shape)
        dx = conv.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        wt, bt = (torch.tensor(conv.params[n], requires_grad=True) for n in ("W", "b"))
        yt = f(xt, wt, bt, stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
               groups=g)
        yt.backward(torch.tensor(dy))
        for got, want in zip((y, dx, conv.grads["W"], conv.grads["b"]),
                             (yt.detach(), xt.grad, wt.grad, bt.grad), strict=True):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


def test_groups_show_in_repr_config_and_products_and_refuse_indivisible_channels(
        tmp_path, monkeypatch):
    conv = bp.Conv2D(4, 6, 3, padding=1, groups=2, rng=0)
    assert repr(conv) == "Conv2D(4, 6, 3, padding=1, groups=2)"
    assert conv.get_config()["groups"] == 2 and conv.num_params == 6 * 2 * 9 + 6
    bp.save(bp.Sequential([conv]), tmp_path / "m.npz")
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz").forward(x), conv.forward(x))
    # one product per group and kernel offset over the padded 7x7 images' span (see
    # _grouped; a layer this small keeps im2col unless told): two images, the second's
    # last output at row 4, column 4
    from backprop.layers import _grouped
    monkeypatch.setattr(_grouped, "_SMALL", 0)
    span = 49 + 4 * 7 + 4 + 1
    fwd, dw = [(3, 2, span)] * 18, [(3, span, 2)] * 18
    assert conv.gemm_shapes(x.shape) == fwd + dw + [(2, 3, span)] * 18
    assert conv.gemm_shapes(x.shape, input_grad=False) == fwd + dw
    monkeypatch.setattr(_grouped, "_SMALL", 10**9)  # the im2col route
    nl = 2 * 25  # two groups of K/g = 18 rows and C_out/g = 3 outputs each
    assert conv.gemm_shapes(x.shape) == [(3, 18, nl)] * 2 + [(3, nl, 18)] * 2 + [(18, 3, nl)] * 2
    assert conv.gemm_shapes(x.shape, input_grad=False) == [(3, 18, nl)] * 2 + [(3, nl, 18)] * 2
    for c_in, c_out in ((3, 4), (4, 3)):
        with pytest.raises(ValueError, match=rf"Conv2D: expected in_channels and out_channels "
                                             rf"divisible by groups, got {c_in}, {c_out} and "
                                             rf"groups=2"):
            bp.Conv2D(c_in, c_out, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv1D: expected groups >= 1"):
        bp.Conv1D(2, 2, 3, groups=0)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4, H, W\), got "
                                         r"\(2, 2, 5, 5\)"):
        conv.forward(x[:, :2])


def test_dilation_shows_in_repr_and_config_and_names_itself_in_errors(tmp_path):
    conv = bp.Conv2D(2, 3, 3, dilation=(2, 1), rng=0)
    assert repr(conv) == "Conv2D(2, 3, 3, dilation=(2, 1))"
    assert conv.get_config()["dilation"] == (2, 1)
    assert repr(bp.Conv2D(**conv.get_config())) == repr(conv)
    model = bp.Sequential([conv])
    bp.save(model, tmp_path / "m.npz")
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 5)).astype(np.float32)
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz").forward(x), model.forward(x))
    with pytest.raises(ValueError, match=r"at least \(5, 3\) \(kernel \(3, 3\), dilation "
                                         r"\(2, 1\)\), got input of shape \(1, 2, 4, 5\)"):
        conv.forward(x[:, :, :4])
    for bad, err in ((0, ValueError), (1.5, TypeError), ((1, 2, 3), ValueError)):
        with pytest.raises(err, match="Conv2D: expected dilation"):
            bp.Conv2D(1, 1, 3, dilation=bad)
    assert bp.Conv1D(1, 1, 3, padding="same", dilation=4).forward(x[0, :1, None, :, 0]).shape \
        == (1, 1, 6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,s,p,hw,d", [
    ((3, 3), (1, 1), (1, 1), (6, 7), (1, 1)),  # the CNN's layers
    ((3, 3), (1, 2), (1, 1), (6, 9), (1, 1)),  # strided columns
    ((4, 2), (1, 3), (2, 0), (8, 11), (1, 1)),  # stride 3 > kernel width 2
    ((2, 5), (1, 1), (0, 2), (3, 20), (1, 1)),  # wide rows: the direct copy is the faster route
    ((3, 2), (1, 1), (2, 1), (7, 6), (2, 3)),  # dilated
])
def test_im2col_by_kernel_columns_matches_the_direct_copy(dtype, k, s, p, hw, d):
    """The two routes of im2col/col2im: the same columns bit for bit, and the same sums
    back (grouped differently, so to rounding)."""
    from backprop.layers._im2col import _by_rows, _Geometry, col2im, im2col
    from backprop.layers._spatial import out_size

    rng = np.random.default_rng(3)
    conv = bp.Conv2D(2, 1, k, s, p, d)
    shape = (3, 2, *hw)
    geo = _Geometry(shape, k, s, p, out_size(conv, shape, k, s, p, dilation=d), dilation=d)
    assert geo.by_rows
    xp = _rand(rng, *geo.xp_shape, dtype=dtype)
    direct, by_rows = (np.empty(geo.cols_shape, dtype) for _ in range(2))
    im2col(xp, geo, direct)  # (whichever route it picks; the direct one below is forced)
    geo.by_rows = False
    im2col(xp, geo, direct)
    _by_rows(xp, geo, by_rows, adjoint=False)
    np.testing.assert_array_equal(by_rows, direct)
    dcols = _rand(rng, *geo.cols_shape, dtype=dtype)
    summed, by_rows_sum = np.zeros(geo.xp_shape, dtype), np.zeros(geo.xp_shape, dtype)
    col2im(dcols, geo, summed)
    _by_rows(by_rows_sum, geo, dcols, adjoint=True)
    np.testing.assert_allclose(by_rows_sum, summed, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.count_nonzero(summed) > 0.5 * summed.size


@pytest.mark.parametrize("k,s,p,n", [(5, 1, 2, 1), (4, 1, 0, 2), (3, 2, 3, 1)])
def test_conv1d_matches_the_direct_convolution_of_one_row(k, s, p, n, dx_route, cols_layout):
    rng = np.random.default_rng(2)
    conv = bp.Conv1D(2, 3, k, s, p, dtype=np.float64, rng=0)
    conv.params["b"][...] = rng.standard_normal(3)
    x = _rand(rng, n, 2, 9)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)
    ref = reference_conv2d(x[:, :, None], conv.params["W"][:, :, None], conv.params["b"],
                           (1, s), (0, p), dy[:, :, None])
    for got, want in zip((y, dx, conv.grads["W"], conv.grads["b"]), ref, strict=True):
        np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,s,p,n,c_in", [
    (5, (1, 2), 2, 1, 1), ((4, 3), (2, 1), 0, 2, 2), (3, 1, 1, 1, 1)])
def test_conv2d_gradients_match_central_differences(k, s, p, n, c_in, cols_layout, dx_route):
    conv = bp.Conv2D(c_in, 2, k, s, p, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((n, c_in, 7, 8))
    result = bp.check_gradients(conv, x)
    assert result.passed, str(result)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_dx_routes_agree_and_products_keep_the_dtype(dtype, monkeypatch):
    from backprop import _openblas
    from backprop.layers import _conv

    if _openblas.matmul_add(dtype) is None:
        pytest.skip("NumPy's BLAS here has no cblas_?gemm")
    monkeypatch.setattr(_conv, "_PHASES_FROM", 0)  # phase planes for the small strided ones
    rng = np.random.default_rng(5)
    for conv, shape in ((bp.Conv2D(3, 5, 3, padding=1, dtype=dtype, rng=0), (4, 3, 9, 7)),
                        (bp.Conv2D(2, 3, (2, 4), padding=(2, 0), dtype=dtype, rng=0),
                         (2, 2, 5, 6)),
                        (bp.Conv1D(3, 2, 5, padding=2, dtype=dtype, rng=0), (3, 3, 11)),
                        # strided: in phase planes
                        (bp.Conv2D(3, 4, 3, stride=2, padding=1, dtype=dtype, rng=0),
                         (3, 3, 9, 8)),
                        (bp.Conv2D(2, 3, (2, 3), stride=(3, 2), padding=(1, 0), dilation=2,
                                   dtype=dtype, rng=0), (2, 2, 11, 10)),
                        (bp.Conv1D(3, 2, 4, stride=3, padding=1, dtype=dtype, rng=0),
                         (3, 3, 13))):
        x = _rand(rng, *shape, dtype=dtype)
        y = conv.forward(x, training=True)
        dy = _rand(rng, *y.shape, dtype=dtype)
        products = conv.backward(dy)
        with monkeypatch.context() as m:
            m.setattr(_openblas, "matmul_add", lambda dtype: None)
            conv.forward(x, training=True)
            via_col2im = conv.backward(dy)
        assert products.dtype == dtype and products.shape == x.shape
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(products, via_col2im, rtol=tol, atol=tol)


def test_conv_workspaces_are_remade_for_a_new_padded_size_of_the_same_length(dx_route):
    """14x14 and 6x30 images padded by 1 give padded buffers of one length (16·16 + 2 =
    8·32 + 2): the zeros of the padding must follow the new layout, not the old."""
    rng = np.random.default_rng(6)
    make = lambda: bp.Conv2D(1, 2, 3, padding=1, dtype=np.float64, rng=0)  # noqa: E731
    conv = make()
    first = _rand(rng, 2, 1, 14, 14)
    _step(conv, first, _rand(rng, 2, 2, 14, 14))
    x, dy = _rand(rng, 2, 1, 6, 30), _rand(rng, 2, 2, 6, 30)
    got, want = _step(conv, x, dy), _step(make(), x, dy)
    for a, b in zip(got[:2], want[:2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_strided_conv_phase_workspaces_follow_a_new_input_size(dx_route):
    """Two input sizes whose phase planes differ in shape, not length: the zeros of dy's
    layout must follow the new shape."""
    rng = np.random.default_rng(7)
    make = lambda: bp.Conv2D(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=0)  # noqa: E731
    conv = make()
    for hw in ((9, 9), (6, 16), (9, 9)):  # phase planes 6x6 and 4x9: the same length
        x = _rand(rng, 2, 2, *hw)
        dy = _rand(rng, *make().forward(x).shape)
        got, want = _step(conv, x, dy), _step(make(), x, dy)
        for a, b in zip(got[:2], want[:2], strict=True):
            np.testing.assert_array_equal(a, b)
        ref = reference_conv2d(x, conv.params["W"], conv.params["b"], (2, 2), (1, 1), dy)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, sizes", [
    # kernel 4, stride 2, padding 1 (DCGAN's): 512 and 511 give 256 and 255 outputs, both
    # in 257 phase positions
    (lambda: bp.Conv1D(2, 3, 4, stride=2, padding=1, dtype=np.float64, rng=0), (512, 511)),
    (lambda: bp.Conv1D(2, 3, 2, stride=2, dtype=np.float64, rng=0), (128, 127, 128)),
    (lambda: bp.Conv1D(2, 3, 3, stride=3, dilation=2, dtype=np.float64, rng=0), (30, 28)),
    (lambda: bp.Conv2D(2, 3, 2, stride=2, dtype=np.float64, rng=0), ((8, 8), (7, 8), (8, 7))),
])
def test_strided_conv_phase_workspaces_follow_fewer_outputs_in_the_same_planes(
        dx_route, make, sizes):
    """The outputs shrink while the phase planes keep their shape: the outputs no longer
    written held the last call's dy, which dx read (a silent wrong dx: a review found
    it on a DCGAN-style layer fed sequences of two lengths)."""
    rng = np.random.default_rng(8)
    conv = make()
    for size in sizes:
        x = _rand(rng, 2, 2, *np.atleast_1d(size))
        dy = _rand(rng, *make().forward(x).shape)
        got, want = _step(conv, x, dy), _step(make(), x, dy)
        for a, b in zip(got[:2], want[:2], strict=True):
            np.testing.assert_array_equal(a, b)


def _step(conv, x, dy):
    y = conv.forward(x, training=True)
    dx = conv.backward(dy)
    return y, dx, {k: g.copy() for k, g in conv.grads.items()}


@pytest.mark.parametrize("stride", [1, (1, 2)])
def test_conv2d_eval_forward_between_forward_and_backward_leaves_the_pending_step_intact(stride):
    rng = np.random.default_rng(3)
    make = lambda: bp.Conv2D(2, 3, 3, stride, padding=1, dtype=np.float64, rng=0)  # noqa: E731
    x, x_eval, dy = _rand(rng, 4, 2, 6, 6), _rand(rng, 4, 2, 6, 6), None
    conv, fresh = make(), make()
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    y_eval = conv.forward(x_eval)  # same shape: reuses every workspace
    conv.forward(_rand(rng, 1, 2, 5, 9))  # another shape: remakes them
    dx = conv.backward(dy)
    want_y, want_dx, want_grads = _step(fresh, x, dy)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dx, want_dx)
    for k in want_grads:
        np.testing.assert_array_equal(conv.grads[k], want_grads[k])
    np.testing.assert_array_equal(y_eval, make().forward(x_eval))


def test_conv2d_steps_reusing_workspaces_match_fresh_layers_and_return_new_arrays():
    rng = np.random.default_rng(4)
    make = lambda: bp.Conv2D(3, 4, 3, padding=1, dtype=np.float64, rng=0)  # noqa: E731
    conv = make()
    batches = [_rand(rng, 5, 3, 7, 6), _rand(rng, 5, 3, 7, 6), _rand(rng, 2, 3, 7, 6),
               _rand(rng, 5, 3, 7, 6)]
    kept = []
    for x in batches:
        dy = _rand(rng, x.shape[0], 4, 7, 6)
        got, want = _step(conv, x, dy), _step(make(), x, dy)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        for k in want[2]:
            np.testing.assert_array_equal(got[2][k], want[2][k])
        kept.append((got, [a.copy() for a in got[:2]]))
        if len(kept) == 2:  # the second step of the same shape reused the workspaces
            assert {name for _, name in conv._ws} >= {"xp", "dxp"}
            assert all(not np.shares_memory(a, w) for a in got[:2]
                       for w, _ in conv._ws.values())
    for (y, dx, _), (y0, dx0) in kept:  # later steps never wrote into returned arrays
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(dx, dx0)


def test_conv_workspaces_are_not_state_and_astype_float64_still_trains():
    rng = np.random.default_rng(5)
    conv = bp.Conv2D(2, 3, 3, padding=1, rng=0)
    x = _rand(rng, 2, 2, 5, 5)
    _step(conv, x.astype(np.float32), np.ones((2, 3, 5, 5), np.float32))
    assert conv._ws and [p.name for p in conv.parameters()] == ["W", "b"]
    assert "_ws" not in conv.get_config() and copy.deepcopy(conv)._ws == {}
    wide = conv.astype(np.float64)
    assert wide._ws == {} and wide.dtype == np.float64
    dy = _rand(rng, 2, 3, 5, 5)
    y, dx, grads = _step(wide, x, dy)
    ref = reference_conv2d(x, wide.params["W"], wide.params["b"], (1, 1), (1, 1), dy)
    assert y.dtype == dx.dtype == grads["W"].dtype == np.float64
    for got, want in zip((y, dx, grads["W"], grads["b"]), ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert all(w.dtype == np.float64 for w, _ in wide._ws.values())
    y32 = conv.forward(x.astype(np.float32))  # the float32 original is untouched
    np.testing.assert_allclose(y32, ref[0], rtol=1e-5, atol=1e-5)
    conv.clear_cache()
    assert conv._ws == {} and not conv.has_cache


@pytest.mark.filterwarnings(_TORCH_EVEN_SAME)
@pytest.mark.parametrize("k", [1, 3, 5, (3, 5), 2, 4, (2, 3), (4, 1)])  # even: one more after
def test_conv2d_padding_same_keeps_the_size_and_matches_torch(k, dx_route):
    torch = pytest.importorskip("torch")
    conv = bp.Conv2D(2, 3, k, padding="same", dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    y = conv.forward(x, training=True)
    assert y.shape == (2, 3, 7, 6)
    xt = torch.tensor(x, requires_grad=True)
    wt, bt = (torch.tensor(conv.params[n], requires_grad=True) for n in ("W", "b"))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding="same")
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(conv.backward(dy), xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), atol=1e-12)


@pytest.mark.filterwarnings(_TORCH_EVEN_SAME)
@pytest.mark.parametrize("k", [2, 4, 3])
def test_conv1d_padding_same_with_an_even_kernel_matches_torch_and_gradients(k):
    torch = pytest.importorskip("torch")
    conv = bp.Conv1D(2, 3, k, padding="same", dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 9))
    y = conv.forward(x, training=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.conv1d(xt, torch.tensor(conv.params["W"]),
                                    torch.tensor(conv.params["b"]), padding="same")
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(conv.backward(dy), xt.grad.numpy(), atol=1e-12)
    assert bp.check_gradients(conv, x).passed


def test_conv_padding_valid_and_same_strings_show_in_repr_and_survive_save(tmp_path):
    model = bp.Sequential([bp.Conv1D(1, 2, 3, padding="same", rng=0),
                           bp.Conv1D(2, 2, 3, padding="valid", rng=1)])
    assert "padding='same'" in repr(model) and "padding='valid'" in repr(model)
    x = np.random.default_rng(0).standard_normal((2, 1, 9)).astype(np.float32)
    assert model.forward(x).shape == (2, 2, 7)
    bp.save(model, tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    assert repr(again) == repr(model)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert bp.check_gradients(bp.Conv2D(1, 2, 3, padding="same", dtype=np.float64, rng=0),
                              np.random.default_rng(2).standard_normal((2, 1, 4, 5)))


@pytest.mark.parametrize("kwargs,match", [
    ({"kernel_size": 3, "stride": 2, "padding": "same"}, "stride 1"),
    ({"kernel_size": 3, "padding": "full"}, "'same' or 'valid'"),
])
def test_conv_padding_strings_refuse_what_they_cannot_do(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bp.Conv2D(1, 1, **kwargs)


@pytest.mark.parametrize("c_in,c_out", [(1, 8), (16, 80)])  # by sample / one matrix
def test_conv2d_weight_gradient_matches_torch_in_both_layouts(c_in, c_out):
    torch = pytest.importorskip("torch")
    conv = bp.Conv2D(c_in, c_out, 3, padding=1, dtype=np.float64, rng=0)
    from backprop.layers._conv import _PER_SAMPLE

    assert ((c_in * 9 + 1) * c_out <= _PER_SAMPLE) == (c_in == 1)  # +1: the bias row
    x = np.random.default_rng(0).standard_normal((3, c_in, 6, 5))
    y = conv.forward(x, training=True)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    conv.backward(dy)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    torch.nn.functional.conv2d(torch.tensor(x), wt, bt, padding=1).backward(torch.tensor(dy))
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("c_in,c_out", [(1, 8), (16, 80)])  # by sample / one matrix
def test_conv2d_without_bias_matches_the_direct_convolution_in_both_layouts(c_in, c_out):
    rng = np.random.default_rng(3)
    conv = bp.Conv2D(c_in, c_out, 3, padding=1, bias=False, dtype=np.float64, rng=0)
    x = _rand(rng, 3, c_in, 6, 5)
    y = conv.forward(x, training=True)
    k_axis = 1 if c_in == 1 else 0  # (N, K, Ho·Wo) by sample, (K, N·Ho·Wo) as one matrix
    assert conv._cols.shape[k_axis] == c_in * 9  # no row of ones without a bias
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)
    ref_y, ref_dx, ref_dw, _ = reference_conv2d(x, conv.params["W"], np.zeros(c_out),
                                                (1, 1), (1, 1), dy)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], ref_dw, rtol=1e-12, atol=1e-12)
    assert set(conv.grads) == {"W"}


@pytest.mark.parametrize("make,shape,cols_ndim", [
    (lambda: bp.Conv2D(1, 4, 3, padding=1), (0, 1, 6, 6), 3),   # columns by sample (small)
    (lambda: bp.Conv2D(16, 40, 3), (0, 16, 6, 6), 2),           # columns as one matrix
    (lambda: bp.Conv2D(4, 6, 3, groups=2), (0, 4, 6, 6), 2),    # groups (small: im2col)
    (lambda: bp.Conv2D(4, 4, 3, groups=4), (0, 4, 6, 6), 3),    # depthwise: the planes
    (lambda: bp.Conv1D(2, 3, 3), (0, 2, 8), 3),
])
def test_conv_on_an_empty_batch_gives_empty_outputs_and_zero_gradients(make, shape, cols_ndim):
    conv = make()
    y = conv.forward(np.zeros(shape, np.float32), training=True)
    assert y.shape[0] == 0 and conv._cols.ndim == cols_ndim
    dx = conv.backward(np.zeros_like(y))
    assert dx.shape == shape
    for g in conv.grads.values():
        np.testing.assert_array_equal(g, 0)


DEPTHWISE_CASES = [  # stride 1, groups = C_in = C_out: the per-channel taps of _depthwise
    (bp.Conv2D, 3, 1, (7, 6)), (bp.Conv2D, (2, 3), "same", (5, 8)),
    (bp.Conv2D, 3, (2, 0), (6, 6)), (bp.Conv1D, 5, 2, (9,)), (bp.Conv1D, 2, "same", (6,)),
]


@pytest.mark.parametrize("cls,k,p,size", DEPTHWISE_CASES)
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_direct_route_matches_torch(cls, k, p, size, dilation, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    conv = cls(4, 4, k, padding=p, dilation=dilation, groups=4, bias=bias, dtype=np.float64,
               rng=0)
    x = _rand(rng, 3, 4, *size)
    shapes = conv.gemm_shapes(x.shape)  # dW's dot products, per channel and tap (_depthwise)
    assert len(shapes) == 4 * int(np.prod(conv._k)) and all(m == n == 1 for m, _, n in shapes)
    y = conv.forward(x, training=True)
    conv.forward(_rand(rng, 2, 4, *size))  # an inference call between leaves the cache
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)
    f = torch.nn.functional.conv2d if cls is bp.Conv2D else torch.nn.functional.conv1d
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True) if bias else None
    with warnings.catch_warnings():  # torch's note on 'same' with even kernels
        warnings.simplefilter("ignore", UserWarning)
        yt = f(xt, wt, bt, padding=conv.padding, dilation=dilation, groups=4)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), rtol=1e-12, atol=1e-12)
    conv.forward(x, training=True)
    conv.grads["W"][...] = 0
    conv.backward_params(dy)  # the first layer's backward in fit: dW without dx
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_only_small_1x1_convolutions_take_the_by_sample_route():
    """N products and an (N, C_out, C_in) sum lost 20x to one product on a large layer
    over small maps (1024x256x1x1, 256 -> 256)."""
    small, large = bp.Conv2D(32, 64, 1), bp.Conv2D(256, 256, 1)
    assert small._pointwise() and not large._pointwise()
    assert not bp.Conv2D(32, 64, 1, stride=2)._pointwise()
    assert not bp.Conv2D(32, 64, 1, padding=1)._pointwise()
    assert not bp.Conv2D(32, 64, 1, groups=2)._pointwise()
    x = np.random.default_rng(0).standard_normal((3, 256, 2, 2)).astype(np.float32)
    y = large.forward(x, training=True)
    assert large._cols.shape == (257, 12)  # one matrix with the row of ones
    assert large.backward(np.ones_like(y)).shape == x.shape


# -- padding_mode: reflect, replicate, circular (PyTorch's) ------------------------------
PADDING_MODES = ["reflect", "replicate", "circular"]
PADDING_MODE_CASES = [  # (C_in, C_out, kernel, stride, padding, dilation, groups, size)
    (3, 4, 3, 1, 1, 1, 1, (7, 9)),
    (2, 5, (2, 3), (2, 1), (1, 2), 1, 1, (8, 7)),  # strided, non-square padding
    (2, 3, 3, 1, (2, 3), 1, 1, (3, 4)),  # the most reflect (size - 1) and circular (size) take
    (2, 3, 4, 1, "same", 1, 1, (6, 7)),  # even kernel: one more after
    (2, 3, 3, 1, "same", (2, 1), 1, (6, 7)),
    (4, 6, 3, (1, 2), (2, 1), 1, 2, (5, 6)),  # groups
    (4, 4, 3, 1, (1, 2), (1, 2), 4, (5, 7)),  # depthwise, stride 1: the direct route
    (4, 8, 3, 2, 1, 1, 4, (6, 6)),  # groups = C_in, strided: im2col
    (3, 5, 1, 1, (1, 2), 1, 1, (4, 5)),  # 1x1 with padding: the 1x1 route on the padded x
    (2, 3, 3, 2, 0, 1, 1, (6, 6)),  # no padding: the mode changes nothing
    (3, 4, 3, 1, 2, 1, 1, (9,)),  # Conv1D
    (3, 4, 4, 1, "same", 1, 1, (8,)),
    (3, 6, 3, 2, 3, 2, 3, (10,)),
    (4, 4, 3, 1, 2, 1, 4, (7,)),  # depthwise Conv1D
]


@pytest.mark.filterwarnings(_TORCH_EVEN_SAME)
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("c_in,c_out,k,s,p,d,g,size", PADDING_MODE_CASES)
def test_padding_modes_match_torch(c_in, c_out, k, s, p, d, g, size, mode, dx_route,
                                   cols_layout):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    cls, module = ((bp.Conv2D, torch.nn.Conv2d) if len(size) == 2
                   else (bp.Conv1D, torch.nn.Conv1d))
    conv = cls(c_in, c_out, k, s, p, d, g, padding_mode=mode, dtype=np.float64, rng=0)
    conv.params["b"][...] = rng.standard_normal(c_out)
    theirs = module(c_in, c_out, k, s, p, d, g, padding_mode=mode, dtype=torch.float64)
    theirs.load_state_dict({"weight": torch.tensor(conv.params["W"]),
                            "bias": torch.tensor(conv.params["b"])})
    x = _rand(rng, 3, c_in, *size)
    y = conv.forward(x, training=True)
    dy = _rand(rng, *y.shape)
    dx = conv.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    for got, want in zip((y, dx, conv.grads["W"], conv.grads["b"]),
                         (yt.detach(), xt.grad, theirs.weight.grad, theirs.bias.grad),
                         strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    conv.forward(x, training=True)
    conv.grads["W"][...] = 0
    conv.backward_params(dy)  # the first layer's backward in fit: dW without dx
    np.testing.assert_allclose(conv.grads["W"], theirs.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_padding_modes_list_the_products_of_the_zero_padding_layer(mode):
    x_shape = (64, 32, 14, 14)
    for kwargs in ({}, {"stride": (1, 2)}, {"groups": 4}):
        zeros = bp.Conv2D(32, 64, 3, padding=(1, 2), **kwargs)
        conv = bp.Conv2D(32, 64, 3, padding=(1, 2), padding_mode=mode, **kwargs)
        unpadded = bp.Conv2D(32, 64, 3, **kwargs)  # what runs: no padding on the padded x
        assert conv.gemm_shapes(x_shape) == unpadded.gemm_shapes((64, 32, 16, 18))
        if kwargs:  # stride 1 with zeros packs the images (1.07 positions per output),
            # the padded x does not (1.29: the im2col route)
            assert conv.gemm_shapes(x_shape) == zeros.gemm_shapes(x_shape)
            assert conv.gemm_shapes(x_shape, input_grad=False) \
                == zeros.gemm_shapes(x_shape, input_grad=False)
    x = np.zeros((2, 32, 14, 14), np.float32)
    conv = bp.Conv2D(32, 64, 3, padding=(1, 2), padding_mode=mode)
    conv.forward(x, training=True)
    # the padded x's columns, packed with the batch inside the rows (16x18 images image
    # after image would be 1.29 positions per output): 14 rows of the 2 images' 16
    # outputs 18 apart
    assert conv._cols.shape == (32 * 9 + 1, 13 * 2 * 18 + 18 + 16)


@pytest.mark.parametrize("mode,padding,fits,too_small,need,rule", [
    ("reflect", (1, 3), (5, 4), (5, 3), (2, 4), "smaller than"),
    ("reflect", "same", (2, 5), (1, 5), (2, 2), "smaller than"),  # kernel 3: padding 1
    ("circular", (1, 3), (5, 3), (5, 2), (1, 3), "at most"),
])
def test_padding_modes_refuse_inputs_too_small_for_them_as_torch_does(mode, padding, fits,
                                                                       too_small, need, rule):
    conv = bp.Conv2D(1, 1, 3, padding=padding, padding_mode=mode)
    assert conv.forward(np.zeros((1, 1, *fits), np.float32)).shape[2:] == (
        fits if padding == "same" else (fits[0], fits[1] + 4))
    with pytest.raises(ValueError, match=(
            rf"^Conv2D\(1, 1, 3, padding={re.escape(repr(padding))}, padding_mode='{mode}'\): "
            rf"expected input spatial size of at least {re.escape(str(need))} \(padding_mode="
            rf"'{mode}' needs each padding {rule} the input size; .*\), got input of shape "
            rf"{re.escape(str((1, 1, *too_small)))}$")):
        conv.forward(np.zeros((1, 1, *too_small), np.float32))
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Conv2d(1, 1, 3, padding=padding, padding_mode=mode)
    theirs(torch.zeros(1, 1, *fits))
    with pytest.raises(RuntimeError):
        theirs(torch.zeros(1, 1, *too_small))


def test_padding_modes_name_the_kernel_when_the_padded_input_is_still_too_small():
    conv = bp.Conv1D(1, 1, 5, padding=1, padding_mode="replicate")
    with pytest.raises(ValueError, match=r"at least \(3,\) \(kernel \(5,\), padding \(1,\)\), "
                                         r"got input of shape \(2, 1, 2\)$"):
        conv.forward(np.zeros((2, 1, 2), np.float32))  # the input as given, not padded


@pytest.mark.parametrize("cls", [bp.Conv1D, bp.Conv2D])
@pytest.mark.parametrize("mode,err,match", [
    ("mirror", ValueError, r"got 'mirror'$"),
    ("edge", ValueError, r"got 'edge' \(NumPy's 'edge' is 'replicate' here"),
    ("wrap", ValueError, r"got 'wrap' \(NumPy's 'wrap' is 'circular' here"),
    ("Reflect", ValueError, r"got 'Reflect'$"),  # as PyTorch: the exact name
    (None, TypeError, r"got NoneType None$"),
    (0, TypeError, r"got int 0$"),
])
def test_padding_mode_refuses_unknown_modes(cls, mode, err, match):
    with pytest.raises(err, match=rf"^{cls.__name__}: expected padding_mode 'zeros', "
                                  rf"'reflect', 'replicate' or 'circular', {match}"):
        cls(1, 1, 3, padding=1, padding_mode=mode)


def test_padding_mode_shows_in_repr_only_when_not_zeros_and_survives_save(tmp_path):
    assert repr(bp.Conv2D(2, 3, 3, padding=1)) == "Conv2D(2, 3, 3, padding=1)"
    assert repr(bp.Conv2D(2, 3, 3, padding=1, padding_mode="zeros")) == "Conv2D(2, 3, 3, padding=1)"
    assert bp.Conv2D(2, 3, 3).get_config()["padding_mode"] == "zeros"
    model = bp.Sequential([
        bp.Conv2D(2, 3, 3, padding=(1, 2), padding_mode="circular", rng=0),
        bp.Conv2D(3, 3, 2, padding="same", bias=False, padding_mode="reflect", rng=1),
        bp.Flatten(),
        bp.Dense(3 * 5 * 8, 2, rng=2)])
    assert repr(model[0]) == "Conv2D(2, 3, 3, padding=(1, 2), padding_mode='circular')"
    assert repr(model[1]) == "Conv2D(3, 3, 2, padding='same', bias=False, padding_mode='reflect')"
    assert repr(bp.Conv1D(1, 2, 3, padding=1, padding_mode="replicate")) \
        == "Conv1D(1, 2, 3, padding=1, padding_mode='replicate')"
    assert repr(bp.Conv2D(**model[0].get_config())) == repr(model[0])
    bp.save(model, tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    assert repr(again) == repr(model)
    assert [layer.get_config().get("padding_mode") for layer in again] == [
        "circular", "reflect", None, None]
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    zeros = bp.Sequential([bp.Conv2D(**{**model[0].get_config(), "padding_mode": "zeros"})])
    zeros.load_state_dict({"0.W": model[0].params["W"], "0.b": model[0].params["b"]})
    assert not np.allclose(zeros.forward(x), model[0].forward(x))  # the mode did something


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_from_torch_maps_a_conv_with_a_padding_mode(mode):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=(1, 2), padding_mode=mode),
                                 torch.nn.ReLU(),
                                 torch.nn.Conv2d(4, 3, 3, padding=2, padding_mode=mode)).double()
    model = bp.Sequential([bp.Conv2D(2, 4, 3, padding=(1, 2), padding_mode=mode,
                                     dtype=np.float64),
                           bp.ReLU(dtype=np.float64),
                           bp.Conv2D(4, 3, 3, padding=2, padding_mode=mode, dtype=np.float64)])
    model.load_state_dict(bp.from_torch(model, theirs.state_dict()))
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 6))
    np.testing.assert_allclose(model.forward(x), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_conv_takes_pytorch_s_positional_order_through_bias_and_padding_mode():
    """torch.nn.Conv2d(in, out, k, stride, padding, dilation, groups, bias, padding_mode):
    bias and padding_mode were keyword-only here, so PyTorch's positional call failed."""
    layer = bp.Conv2D(4, 6, 3, 2, 1, 1, 2, False, "reflect")
    assert (layer.stride, layer.padding, layer.dilation, layer.groups, layer.bias,
            layer.padding_mode) == (2, 1, 1, 2, False, "reflect") and "b" not in layer.params
    assert bp.Conv1D(2, 3, 3, 1, 0, 1, 1, True, "circular").padding_mode == "circular"
    with pytest.raises(TypeError, match="positional arguments"):
        bp.Conv2D(4, 6, 3, 1, 0, 1, 1, True, "zeros", "he_uniform")  # init stays keyword-only
