"""Session 36, LayerNorm's speed: its forward and backward go over blocks of rows that stay
in the cache (_norms.normalize_rows, rows_backward); each row's values are those of one
pass over all rows, every special path included."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import backprop as bp
from backprop.layers import _norms


def _blocks_of_16(monkeypatch, d, itemsize=4):
    """Blocks of 16 rows of ``d`` values, so small inputs take several."""
    monkeypatch.setattr(_norms, "_BLOCK_BYTES", 16 * d * itemsize)


def _run(x, dy, make, training=True):
    layer = make()
    for k, p in layer.params.items():
        p[...] = np.linspace(0.5, 1.5, p.size).reshape(p.shape) if k == "gamma" else 0.25
    y = layer.forward(x, training=training)
    if not training:
        return [y]
    dx = layer.backward(dy)
    return [y, dx] + [layer.grads[k].copy() for k in ("gamma", "beta") if k in layer.grads]


def _one_pass(monkeypatch, x, dy, make, training=True):
    """The same layer with every row in one block: the passes as they were."""
    with monkeypatch.context() as m:
        m.setattr(_norms, "_BLOCK_BYTES", 1 << 62)
        return _run(x, dy, make, training)


def _reference(x, dy, gamma, beta, eps):
    """LayerNorm over the last axis in float64: y, dx, dgamma, dbeta."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    d = x.shape[-1]
    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    g = dy * gamma
    dx = (d * g - g.sum(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True))
    dx /= d * np.sqrt(x.var(-1, keepdims=True) + eps)
    lead = tuple(range(x.ndim - 1))
    return xhat * gamma + beta, dx, (dy * xhat).sum(lead), dy.sum(lead)


def test_layernorm_works_over_blocks_of_rows_and_builds_dx_in_the_cache(monkeypatch):
    """3000 rows of 512: blocks of 512 rows (1 MB each) and a last of 440; the backward
    allocated a whole (M, D) buffer for dx (6 MB here), now one block's."""
    calls = []
    center = _norms.center_rows
    monkeypatch.setattr(_norms, "center_rows",
                        lambda rows, *a, **k: calls.append(len(rows)) or center(rows, *a, **k))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 100, 512)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = bp.LayerNorm(512)
    layer.forward(x, training=True)
    assert calls == [512] * 5 + [440]
    tracemalloc.start()
    try:
        dx = layer.backward(dy)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert peak < x.nbytes / 2, peak


CASES = {
    "affine": lambda d, dt=np.float32: bp.LayerNorm(d, dtype=dt),
    "bias=False": lambda d, dt=np.float32: bp.LayerNorm(d, bias=False, dtype=dt),
    "elementwise_affine=False": lambda d, dt=np.float32: bp.LayerNorm(
        d, elementwise_affine=False, dtype=dt),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", [(1, 8), (3, 8), (16, 8), (5, 8, 8), (41, 64)],
                         ids=["1 row", "fewer rows than a block", "one whole block",
                              "40 rows: 2 blocks and 8", "41 rows: 2 blocks and 9"])
def test_blocked_layernorm_equals_one_pass_and_float64(monkeypatch, case, shape):
    """Blocks of 16 rows: y and dx are the one pass's bits (OpenBLAS's matrix-vector
    kernels give a row the same bits in a multiple of 16 rows), dgamma and dbeta (sums
    over the blocks) within float32 round-off, all within float32's of float64."""
    d = shape[-1]
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    make = lambda: CASES[case](d)  # noqa: E731
    before = _one_pass(monkeypatch, x, dy, make)
    _blocks_of_16(monkeypatch, d)
    ours = _run(x, dy, make)
    assert all(a.dtype == np.float32 for a in ours)
    np.testing.assert_array_equal(ours[0], before[0])
    np.testing.assert_array_equal(ours[1], before[1])
    gamma = np.linspace(0.5, 1.5, d) if case != "elementwise_affine=False" else 1.0
    beta = 0.25 if case == "affine" else 0.0
    ref = _reference(x, dy, gamma, beta, 1e-5)
    for a, b, r in zip(ours, before, ref, strict=False):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(r).max())
        np.testing.assert_allclose(a, r, rtol=0, atol=2e-6 * np.abs(r).max())


def _special(kind, rng):
    """40 rows of 8 with special rows in the first, second and last blocks of 16."""
    x = rng.standard_normal((40, 8))
    rows = [3, 20, 39]
    if kind == "far rows":  # centred twice (_recentred)
        x[rows] += 1e6
    elif kind == "eps=0 equal rows":  # variance 0: NaN, as PyTorch
        x[rows] = 0.1
    elif kind == "overflowing rows":  # squares past float32's range (_widened)
        x[rows] *= 3e20
    elif kind == "std near float32's max":  # the rescaled backward
        x[rows] *= 7.5e37
    return x.astype(np.float32), rows


@pytest.mark.parametrize("kind", ["far rows", "eps=0 equal rows", "overflowing rows",
                                  "std near float32's max"])
def test_blocked_layernorm_keeps_every_special_path(monkeypatch, kind):
    rng = np.random.default_rng(2)
    x, rows = _special(kind, rng)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    eps = 0.0 if kind == "eps=0 equal rows" else 1e-5
    make = lambda dt=np.float32: bp.LayerNorm(8, eps=eps, dtype=dt)  # noqa: E731
    before = _one_pass(monkeypatch, x, dy, make)
    _blocks_of_16(monkeypatch, 8)
    ours = _run(x, dy, make)
    for a, b in zip(ours[:2], before[:2], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ours[2:], before[2:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    ref = _run(x.astype(np.float64), dy.astype(np.float64), lambda: make(np.float64))
    if kind == "eps=0 equal rows":
        assert np.isnan(ours[0][rows]).all() and np.isnan(ours[1][rows]).all()
        keep = np.setdiff1d(np.arange(len(x)), rows)
        ours, ref = [a[keep] for a in ours[:2]], [a[keep] for a in ref[:2]]
    for a, r in zip(ours, ref, strict=True):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-5 * np.abs(r).max())


def test_blocked_layernorm_inference_writes_its_own_buffer(monkeypatch):
    """Inference builds y in a buffer of its own (xc's): not x, and a later call leaves
    an earlier output alone; y is training's."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 8, 8)).astype(np.float32)
    kept = x.copy()
    _blocks_of_16(monkeypatch, 8)
    layer = bp.LayerNorm(8)
    y = layer.forward(x)
    y_copy = y.copy()
    y2 = layer.forward(x * 2)
    assert not np.shares_memory(y, x) and not np.shares_memory(y, y2)
    np.testing.assert_array_equal(x, kept)
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(y, layer.forward(x, training=True))
    ref = _reference(x, x, 1.0, 0.0, 1e-5)[0]
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-6)
