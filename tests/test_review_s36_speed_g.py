"""Review s36 (speed, g): a grouped convolution's weight gradient summed over blocks of
the span (:func:`backprop.layers._grouped._weight_grads`), so that each block's rows of
``dy`` and ``x`` are read once for all kernel offsets: the same gradients as PyTorch's,
whether the span is a multiple of the block, longer or shorter than one block."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

import backprop as bp
from backprop.layers import _grouped

torch = pytest.importorskip("torch")

TORCH = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}

# (layer class, input shape, C_out, kwargs); the spans are 258, 54 (stride 2: 4 phase
# planes) and 158
CASES = [
    (bp.Conv2D, (2, 4, 9, 11), 4, dict(kernel_size=3, padding=1, groups=2)),
    (bp.Conv2D, (2, 6, 9, 8), 9, dict(kernel_size=3, stride=2, padding=1, groups=3)),
    (bp.Conv1D, (3, 4, 50), 6, dict(kernel_size=3, padding=2, dilation=2, groups=2)),
]


@pytest.fixture(autouse=True)
def every_size(monkeypatch):
    """The test layers are small: take the grouped route at every size."""
    monkeypatch.setattr(_grouped, "_SMALL", 0)


def _check_against_torch(cls, shape, c_out, kw, dtype=np.float64, rtol=1e-12):
    rng = np.random.default_rng(0)
    layer = cls(shape[1], c_out, dtype=dtype, rng=1, **kw)
    layer.params["b"][...] = rng.standard_normal(c_out)
    x = rng.standard_normal(shape)
    assert _grouped.usable(layer, layer._geometry(shape))
    y = layer.forward(x.astype(dtype), training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy.astype(dtype))
    assert layer.cache["cols"] is None  # the grouped route's backward ran (no fallback)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["W"].astype(np.float64), requires_grad=True)
    bt = torch.tensor(layer.params["b"].astype(np.float64), requires_grad=True)
    conv = TORCH[len(shape) - 2]
    yt = conv(xt, wt, bt, stride=kw.get("stride", 1), padding=kw["padding"],
              dilation=kw.get("dilation", 1), groups=kw["groups"])
    yt.backward(torch.tensor(dy))
    for got, ref in ((y, yt), (dx, xt.grad), (layer.grads["W"], wt.grad),
                     (layer.grads["b"], bt.grad)):
        assert got.dtype == dtype
        ref = ref.detach().numpy()
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


@pytest.mark.parametrize("block", [1, 7, 50, 54, 1000])  # 1000: span shorter than a block
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].__name__}{c[1]}")
def test_weight_gradient_by_blocks_of_the_span_matches_torch(case, block, monkeypatch):
    cls, shape, c_out, kw = case
    rows = shape[1] + c_out  # the rows of x and dy a block reads
    monkeypatch.setattr(_grouped, "_BLOCK_BYTES", block * rows * 8)
    span = cls(shape[1], c_out, **kw)._geometry(shape).phase_span
    starts = _grouped._blocks(rows, span, 8)
    assert starts.step == block and len(starts) == math.ceil(span / block)
    _check_against_torch(*case)


def test_the_default_blocks_match_torch_float64_and_float32():
    """32 + 32 channels: 4,096 float64 columns (8,192 float32) a block, span 8,578 (not
    a multiple); float32 gradients stay float32 and within rounding of PyTorch's."""
    case = (bp.Conv2D, (2, 32, 64, 64), 32, dict(kernel_size=3, padding=1, groups=4))
    span = bp.Conv2D(32, 32, **case[3])._geometry(case[1]).phase_span
    assert span == 8578 and len(_grouped._blocks(64, span, 8)) == 3
    assert len(_grouped._blocks(64, span, 4)) == 2
    _check_against_torch(*case)
    _check_against_torch(*case, dtype=np.float32, rtol=2e-5)


def test_an_empty_batch_has_a_zero_weight_gradient():
    layer = bp.Conv2D(4, 4, 3, padding=1, groups=2)
    layer.grads["W"][...] = 1
    y = layer.forward(np.zeros((0, 4, 5, 5), np.float32), training=True)
    assert layer.backward(np.zeros(y.shape, np.float32)).shape == (0, 4, 5, 5)
    np.testing.assert_array_equal(layer.grads["W"], 0)


def test_gemm_shapes_list_the_blocked_products_the_step_runs(monkeypatch):
    layer = bp.Conv2D(4, 4, 3, padding=1, groups=2)
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 11)).astype(np.float32)
    monkeypatch.setattr(_grouped, "_BLOCK_BYTES", 100 * 8 * 4)  # 100 columns, span 258
    monkeypatch.setattr(_grouped, "_PER_CALL", 10**12)  # every product through np.matmul
    seen, matmul = [], np.matmul

    def recording(a, b, *args, **kwargs):
        batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])))
        seen.extend([(a.shape[-2], a.shape[-1], b.shape[-1])] * batch)
        return matmul(a, b, *args, **kwargs)

    y = layer.forward(x, training=True)
    with monkeypatch.context() as m:
        m.setattr(np, "matmul", recording)
        layer.forward(x, training=True)
        layer.backward(np.ones_like(y))
    shapes = layer.gemm_shapes(x.shape)
    assert Counter(shapes) == Counter(seen)
    assert Counter(s for s in shapes if s[0] == 2 and s[2] == 2 and s[1] != 2) == {
        (2, 100, 2): 2 * 2 * 9, (2, 58, 2): 2 * 9}
