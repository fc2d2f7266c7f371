"""Session 37, GELU's and Softmax's speed: float32 GELU (erf form) takes Φ from one
rational function with ``1/√2`` and ``1/2`` folded in, over blocks of values, and its
backward writes dx into the cached Φ (layers/_gelu.py); Softmax's backward takes its
row dots from ``np.vecdot`` (BLAS's dot) rather than ``einsum``."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

EDGES = [1e4, -1e4, 3e38, -3e38, np.inf, -np.inf, np.nan, -0.0, 0.0, 1e-45, -1e-45, 1e-40,
         -1e-40, 5.65, -5.65, 5.66, -5.66, 4.0, -4.0]


def _run(x, training=True, dy=None):
    layer = bp.GELU(dtype=x.dtype)
    y = layer.forward(x, training=training)
    if not training:
        return [y]
    cdf = layer.cache["cdf"].copy()
    return [y, cdf, layer.backward(np.ones_like(x) if dy is None else dy)]


def test_float32_gelu_phi_is_within_2_2e_7_of_the_exact_one():
    """Folding 1/√2 and 1/2 into the coefficients loses nothing: on this grid, against
    float64, Φ within 2.08e-7, y within 1.23e-6 and 2.96 ulp for x > 0, dx within 2.45e-7
    (x / √2, erf, + 1, · 1/2 gave 2.27e-7 at x = 4.54, 1.37e-6, 3.69 ulp, 2.71e-7)."""
    special = pytest.importorskip("scipy.special")
    x = np.concatenate([np.linspace(-6, 6, 1_200_001, dtype=np.float32),
                        np.random.default_rng(0).standard_normal(1_200_001).astype(np.float32)
                        * 3]).reshape(2, -1)
    y, cdf, dx = _run(x)
    assert y.dtype == cdf.dtype == dx.dtype == np.float32
    x64 = x.astype(np.float64)
    phi = special.ndtr(x64)
    assert np.abs(cdf - phi).max() <= 2.2e-7
    assert cdf.min() >= 0 and cdf.max() <= 1
    assert np.abs(y - x64 * phi).max() <= 1.3e-6
    pos = x > 0.01  # where y has no cancellation
    assert (np.abs(y - x64 * phi) / np.spacing(y))[pos].max() <= 3.2
    want_dx = phi + x64 * np.exp(-x64 * x64 / 2) / np.sqrt(2 * np.pi)
    assert np.abs(dx - want_dx).max() <= 2.6e-7


def test_gelu_backward_writes_dx_into_the_cached_phi():
    x = np.random.default_rng(1).standard_normal((8, 300)).astype(np.float32)
    layer = bp.GELU()
    layer.forward(x, training=True)
    cdf = layer.cache["cdf"]
    dx = layer.backward(np.ones_like(x))
    assert dx is cdf and not layer.has_cache


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_over_blocks_gives_the_bits_of_one_block(monkeypatch, dtype):
    from backprop.layers import _gelu

    rng = np.random.default_rng(2)
    base = np.concatenate([EDGES, rng.standard_normal(5000) * 4]).astype(dtype)
    base = base[:base.size // 16 * 16]
    x = base.reshape(-1, 4, 4)[:, ::-1, :].transpose(0, 2, 1)  # strided (N, 4, 4)
    dy = rng.standard_normal(x.shape).astype(dtype)
    whole = _run(x, dy=dy) + _run(x, False)
    monkeypatch.setattr(_gelu, "_BLOCK", 1000)  # 5 full blocks and a short one
    for xi in (x, np.ascontiguousarray(x)):
        for a, b in zip(_run(xi, dy=dy) + _run(xi, False), whole, strict=True):
            assert a.shape == b.shape and a.dtype == dtype
            assert np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


def test_float32_gelu_edges_match_torch_and_keep_their_infinities():
    torch = pytest.importorskip("torch")
    x = np.float32(EDGES).reshape(1, -1)
    y, cdf, dx = _run(x)
    yt = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    exact = [0, 1, 7, 8, 9, 10, 11, 12]  # ±1e4, ±0 and subnormals: torch's bits, signs too
    assert np.array_equal(y[0, exact].view(np.uint32), yt[0, exact].view(np.uint32))
    assert y[0, 4] == np.inf and np.isnan(y[0, 5]) and np.isnan(y[0, 6])  # inf, -inf · 0, NaN
    assert y[0, 2] == np.float32(3e38) and y[0, 3] == 0  # past 5.66: Φ = 1 and 0
    assert np.array_equal(cdf[0, :4], [1, 0, 1, 0]) and np.all(cdf[0, 7:13] == 0.5)
    assert np.all(dx[0, 7:13] == 0.5) and np.isnan(dx[0, 4:7]).all()


def test_float64_gelu_is_torchs_to_1e_12():
    torch = pytest.importorskip("torch")
    x = np.concatenate([np.linspace(-12, 12, 20_001), [0.0, -0.0, 1e-300]]).reshape(1, -1)
    dy = np.random.default_rng(3).standard_normal(x.shape)
    y, _, dx = _run(x, dy=dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_softmax_backward_row_dots_are_as_close_as_blas_dot():
    """dx = y (dy - Σ dy y) against float64 on the same y: the row dots from np.vecdot
    (BLAS's dot, several vector accumulators) are closer than einsum's (on rows of 1,000:
    max 6.5e-7, mean 4.6e-8 of the scale below; vecdot 2.8e-7, 2.3e-8). NumPy 1.x has no
    vecdot: einsum's bound there."""
    bound = (4.5e-7, 3.5e-8) if hasattr(np, "vecdot") else (8e-7, 6e-8)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((512, 1000)) * 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = bp.Softmax()
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    assert dx.dtype == np.float32
    y64, d64 = y.astype(np.float64), dy.astype(np.float64)
    want = y64 * (d64 - np.sum(d64 * y64, -1, keepdims=True))
    scale = y64 * (np.abs(d64) + np.sum(np.abs(d64) * y64, -1, keepdims=True))
    err = np.abs(dx - want) / scale
    assert err.max() <= bound[0] and err.mean() <= bound[1]
