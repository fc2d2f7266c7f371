"""Session 37, GroupNorm's and InstanceNorm's speed: their passes run with NumPy's ufunc
buffers no longer than a row (_norms.unbuffered), where a per-row value broadcast over
rows shorter than the default 8192-value buffer was copied through buffers (about 2x a
plain product); the outputs and gradients keep their bits."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import backprop as bp
from backprop.layers import _norms, groupnorm

LAYERS = {
    "GroupNorm": lambda c, dt=np.float32: bp.GroupNorm(4, c, dtype=dt),
    "GroupNorm affine=False": lambda c, dt=np.float32: bp.GroupNorm(4, c, affine=False,
                                                                    dtype=dt),
    "InstanceNorm2D affine": lambda c, dt=np.float32: bp.InstanceNorm2D(c, affine=True,
                                                                        dtype=dt),
    "InstanceNorm2D": lambda c, dt=np.float32: bp.InstanceNorm2D(c, dtype=dt),
}


def _spy(monkeypatch, name):
    """Records np.getbufsize() while groupnorm's ``name`` runs."""
    seen = []
    fn = getattr(groupnorm, name)

    def spied(*args, **kwargs):
        seen.append(np.getbufsize())
        return fn(*args, **kwargs)

    monkeypatch.setattr(groupnorm, name, spied)
    return seen


def _run(make, x, dy):
    layer = make(x.shape[1], x.dtype)
    for k, p in layer.params.items():
        p[...] = np.linspace(0.5, 1.5, p.size) if k == "gamma" else np.linspace(-1, 1, p.size)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    return [y, dx] + [layer.grads[k].copy() for k in sorted(layer.grads)]


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_norms_of_long_rows_pass_with_buffers_no_longer_than_a_row(monkeypatch, make):
    """Rows of 28x28 = 784 positions: buffers of 512 values in the forward's and the
    backward's passes (they were NumPy's 8192), the default again after."""
    forward, backward = _spy(monkeypatch, "center_rows"), _spy(monkeypatch, "rows_dx")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 28, 28)).astype(np.float32)
    default = np.getbufsize()
    _run(make, x, x)
    assert forward == [512] and backward == [512]
    assert np.getbufsize() == default


def test_short_rows_keep_numpys_buffers(monkeypatch):
    """Rows shorter than 256 values run faster buffered: 5x5 positions keep the default."""
    seen = _spy(monkeypatch, "rows_dx")
    x = np.random.default_rng(1).standard_normal((2, 8, 5, 5)).astype(np.float32)
    _run(LAYERS["GroupNorm"], x, x)
    assert seen == [np.getbufsize()] == [8192]


@pytest.mark.parametrize("s, size", [(255, 8192), (256, 256), (784, 512), (1024, 1024),
                                     (8191, 4096), (8192, 8192), (1 << 20, 8192)])
def test_unbuffered_picks_a_power_of_two_no_longer_than_a_row_and_restores(s, size):
    before = np.getbufsize()
    with _norms.unbuffered(s):
        assert np.getbufsize() == size
    assert np.getbufsize() == before
    with pytest.raises(KeyError), _norms.unbuffered(s):
        raise KeyError("inside")
    assert np.getbufsize() == before


def test_unbuffered_restores_a_callers_own_buffer_size():
    before = np.setbufsize(4096)
    try:
        with _norms.unbuffered(1000):
            assert np.getbufsize() == 512
        assert np.getbufsize() == 4096
    finally:
        np.setbufsize(before)


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
@pytest.mark.parametrize("shape", [(3, 8, 28, 28), (1, 8, 16, 64), (2, 8, 40, 40)],
                         ids=["784 positions", "batch of 1, 1024", "1600"])
def test_unbuffered_norms_keep_their_bits_and_float64s(monkeypatch, make, shape):
    """y, dx, dgamma and dbeta are the buffered passes' bits, and within float32's
    round-off of float64."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    ours = _run(make, x, dy)
    with monkeypatch.context() as m:
        m.setattr(groupnorm, "unbuffered", lambda s: contextlib.nullcontext())
        before = _run(make, x, dy)
    ref = _run(make, x.astype(np.float64), dy.astype(np.float64))
    for a, b, r in zip(ours, before, ref, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-5 * np.abs(r).max())
