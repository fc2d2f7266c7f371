"""MultiheadAttention's call-time masks, PyTorch's ``key_padding_mask`` and ``attn_mask``
(boolean: True is not attended to; float: added to the scores), alone, together and with
``causal``: outputs, dx and every gradient against ``nn.MultiheadAttention``."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from tests.test_attention import TORCH_NAMES, _layer, _twin


def _masks(rng, n, t, heads, kind):
    """(key_padding_mask, attn_mask) of one kind; every query keeps a key it may see."""
    pad = rng.random((n, t)) < 0.3
    pad[:, 0] = False  # key 0 is never padding, so no query loses every key
    pair = rng.random((t, t)) < 0.3
    np.fill_diagonal(pair, False)
    pair[:, 0] = False
    per_head = rng.random((n * heads, t, t)) < 0.3
    per_head[..., 0] = False
    if kind == "bool":
        return pad, pair
    if kind == "float":
        return rng.standard_normal((n, t)), rng.standard_normal((t, t))
    if kind == "per-head":
        return None, per_head
    return pad, None  # "padding"


def _run_torch(torch, module, x, dy, kpm, am, causal):
    xt = torch.tensor(x, requires_grad=True)
    t = x.shape[1]
    mask = None if am is None else torch.tensor(am)
    if causal:
        tri = torch.ones(t, t, dtype=torch.bool).triu(1)
        if mask is None:
            mask = tri
        elif mask.dtype == torch.bool:
            mask = mask | tri
        else:
            mask = mask.masked_fill(tri, float("-inf"))
    y = module(xt, xt, xt, need_weights=False, attn_mask=mask,
               key_padding_mask=None if kpm is None else torch.tensor(kpm))[0]
    y.backward(torch.tensor(dy))
    grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    return y.detach().numpy(), xt.grad.numpy(), grads


@pytest.mark.parametrize("kind", ["bool", "float", "per-head", "padding"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_masks_match_torch(kind, causal, dtype):
    torch = pytest.importorskip("torch")
    n, t, e, heads = 3, 5, 8, 2
    rng = np.random.default_rng(4)
    layer = _layer(e, heads, dtype, causal=causal)
    module = _twin(torch, layer)
    x = rng.standard_normal((n, t, e)).astype(dtype)
    dy = rng.standard_normal((n, t, e)).astype(dtype)
    kpm, am = _masks(rng, n, t, heads, kind)
    if kind == "float":
        kpm, am = kpm.astype(dtype), am.astype(dtype)
    y = layer.forward(x, training=True, key_padding_mask=kpm, attn_mask=am)
    dx = layer.backward(dy)
    ty, tdx, tgrads = _run_torch(torch, module, x, dy, kpm, am, causal)
    tol = 1e-11 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(y, ty, rtol=0, atol=tol)
    np.testing.assert_allclose(dx, tdx, rtol=0, atol=tol)
    for k, g in layer.grads.items():
        want = tgrads[TORCH_NAMES[k]]
        np.testing.assert_allclose(g, want.T if g.ndim == 2 else want, rtol=0, atol=tol * 10)


def test_padding_keys_change_nothing_they_should_not():
    """With the keys of padding masked, the real positions' outputs do not depend on what
    the padding holds: a short sequence padded with anything gives its own outputs."""
    rng = np.random.default_rng(0)
    layer = _layer(8, 2, np.float64)
    short = rng.standard_normal((1, 3, 8))
    alone = layer(short)
    for fill in (0.0, 1e3, -7.0):
        padded = np.concatenate([short, np.full((1, 2, 8), fill)], axis=1)
        mask = np.array([[False, False, False, True, True]])
        np.testing.assert_allclose(layer(padded, key_padding_mask=mask)[:, :3], alone,
                                   rtol=1e-13, atol=1e-14)


def test_a_query_with_every_key_masked_gets_weights_0_as_in_torch():
    """PyTorch's need_weights=False call (its safe softmax) gives such a query weights 0:
    the output is b_out, and no gradient comes back through it (not NaN everywhere)."""
    torch = pytest.importorskip("torch")
    layer = _layer(4, 1, np.float64)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    pad = np.array([[True, True, True], [False, True, False]])  # sample 0: all padding
    y = layer.forward(x, training=True, key_padding_mask=pad)
    dx = layer.backward(dy)
    ty, tdx, tgrads = _run_torch(torch, _twin(torch, layer), x, dy, pad, None, False)
    np.testing.assert_allclose(y, ty, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, tdx, rtol=0, atol=1e-12)
    for k, g in layer.grads.items():
        want = tgrads[TORCH_NAMES[k]]
        np.testing.assert_allclose(g, want.T if g.ndim == 2 else want, rtol=0, atol=1e-11)
    np.testing.assert_array_equal(y[0], np.broadcast_to(layer.params["b_out"], (3, 4)))
    assert not dx[0].any()


def test_bad_masks_get_clear_errors():
    layer = bp.MultiheadAttention(8, 2)
    x = np.zeros((2, 3, 8), np.float32)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(8, 2\): expected "
                                         r"key_padding_mask of shape \(2, 3\), got \(3, 2\)"):
        layer(x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match=r"expected attn_mask of shape \(3, 3\) or "
                                         r"\(4, 3, 3\), got \(2, 3, 3\)"):
        layer(x, attn_mask=np.zeros((2, 3, 3), bool))
    with pytest.raises(TypeError, match=r"expected attn_mask as a boolean array .* or a float "
                                        r"array .*, got ndarray of dtype int64"):
        layer(x, attn_mask=np.zeros((3, 3), np.int64))
    with pytest.raises(TypeError, match=r"expected key_padding_mask as a boolean array.*got "
                                        r"list of int64 values"):  # a list of 0/1, named a list
        layer(x, key_padding_mask=[[1, 0, 0]] * 2)
    y = layer.forward(x, training=True, attn_mask=np.zeros((3, 3), bool))
    np.testing.assert_array_equal(y, layer(x))  # an all-False mask changes nothing


def test_finite_min_masks_added_twice_give_no_warning():
    """Hugging Face's convention puts finfo(dtype).min at masked positions: masked by both
    masks, the sum overflows to -inf, which is what is meant (torch gives no warning)."""
    torch = pytest.importorskip("torch")
    layer = _layer(4, 1, np.float32)
    x = np.random.default_rng(0).standard_normal((1, 3, 4)).astype(np.float32)
    big = np.finfo(np.float32).min
    kpm = np.array([[0, 0, big]], np.float32)
    am = np.triu(np.full((3, 3), big, np.float32), 1)
    y = layer(x, key_padding_mask=kpm, attn_mask=am)  # warnings are errors in the suite
    module = _twin(torch, layer)
    xt = torch.tensor(x)
    with torch.no_grad():
        ty = module(xt, xt, xt, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(am),
                    need_weights=False)[0].numpy()
    np.testing.assert_allclose(y, ty, rtol=0, atol=1e-6)
