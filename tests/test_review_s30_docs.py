"""The notebook user's view: each layer's Forward/Backward block and its named caches
against what the code computes and keeps."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

_BASES = {"Layer", "Container", "Loss"}


def _public(kind):
    return [n for n in bp.__all__ if n not in _BASES and inspect.isclass(getattr(bp, n))
            and issubclass(getattr(bp, n), kind)]


@pytest.mark.parametrize("name", _public(bp.Layer) + _public(bp.Loss))
def test_every_public_layer_and_loss_shows_forward_and_backward_math(name):
    lines = bp.formulas(name).splitlines()
    assert lines and lines[0].startswith("Forward:"), name
    assert any(line.lstrip().startswith("Backward:") for line in lines), name


@pytest.mark.parametrize("name", _public(bp.Layer))
def test_cache_names_a_docstring_mentions_are_cached(name):
    cls = getattr(bp, name)
    doc = inspect.getdoc(cls) or ""
    named = set(re.findall(r"cache\[['\"](\w+)['\"]\]", doc)) | set(
        re.findall(r"layer\._(\w+)", doc))
    assert named <= {a.lstrip("_") for a in cls._cache_attrs}, (name, named)


def _im2col(x, k, p):
    """The formulas' cols, (C_in·prod(k), N·prod(out)), stride 1, dilation 1."""
    xp = np.pad(x, ((0, 0), (0, 0), *((q, q) for q in p)))
    out = [xp.shape[2 + i] - k[i] + 1 for i in range(len(k))]
    rows = [xp[(slice(None), c, *(slice(o[i], o[i] + out[i]) for i in range(len(k))))]
            .reshape(x.shape[0], -1) for c in range(x.shape[1]) for o in np.ndindex(*k)]
    return np.stack(rows).reshape(len(rows), -1)


@pytest.mark.parametrize("c_in, c_out, hw, n, layout", [
    (2, 3, 5, 2, "by sample"), (8, 64, 6, 2, "packed"), (32, 64, 14, 2, "packed")])
def test_conv2d_cols_cache_is_in_a_documented_layout(c_in, c_out, hw, n, layout):
    layer = bp.Conv2D(c_in, c_out, 3, padding=1, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((n, c_in, hw, hw))
    layer.forward(x, training=True)
    c, cols = layer.cache["cols"], _im2col(x, (3, 3), (1, 1))
    k = cols.shape[0]
    if layout == "by sample":  # (N, K + 1, Ho·Wo)
        np.testing.assert_array_equal(c[:, :k].transpose(1, 0, 2).reshape(k, -1), cols)
    else:  # (K + 1, span): the images back to back, junk columns between the outputs
        assert c.ndim == 2 and c.shape[0] == k + 1 and c.shape[1] > cols.shape[1]
        assert "(K + 1, span)" in inspect.getdoc(bp.Conv2D)
        np.testing.assert_array_equal(c[k], 1)  # the row of ones that adds the bias


def test_maxpool2d_arg_is_the_row_major_kernel_offset():
    x = np.random.default_rng(1).permutation(2 * 2 * 7 * 8).reshape(2, 2, 7, 8) * 1.0
    layer = bp.MaxPool2D(3, 2, 1, 2, dtype=np.float64)
    y = layer.forward(x, training=True)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    for i, j in np.ndindex(*y.shape[2:]):
        win = np.stack([xp[:, :, 2 * i + 2 * p, 2 * j + 2 * q]
                        for p in range(3) for q in range(3)], -1)
        np.testing.assert_array_equal(layer.cache["arg"][:, :, i, j], win.argmax(-1))


def test_lstm_and_attention_caches_hold_what_their_docstrings_say():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 6))
    lstm = bp.LSTM(6, 2, dtype=np.float64, rng=0)
    lstm.forward(x, training=True)
    p, h, c, gates = lstm.params, np.zeros((3, 2)), np.zeros((3, 2)), []
    for t in range(4):
        a = x[:, t] @ p["W"] + p["b"] + h @ p["U"] + p["b_h"]
        s = 1 / (1 + np.exp(-a))
        i, f, g, o = s[:, :2], s[:, 2:4], np.tanh(a[:, 4:6]), s[:, 6:]
        c = f * c + i * g
        h = o * np.tanh(c)
        gates.append(np.concatenate([i, f, g, o], 1))
    np.testing.assert_allclose(lstm.cache["gates"], np.stack(gates, 1), atol=1e-14)
    attn = bp.MultiheadAttention(6, 2, causal=True, dtype=np.float64, rng=0)
    attn.forward(x, training=True)
    q, k, _ = (m.reshape(3, 4, 2, 3).transpose(0, 2, 1, 3)
               for m in np.split(x @ attn.params["W_in"] + attn.params["b_in"], 3, -1))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(3) + np.triu(np.full((4, 4), -np.inf), 1)
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(attn.cache["p"], e / e.sum(-1, keepdims=True), atol=1e-14)


_SIG = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
_ELEMENTWISE = [  # (layer, the docstring's f′(x)), the Backward line dx = dy * f′(x)
    (bp.LeakyReLU(0.1), lambda x: np.where(x > 0, 1, 0.1)),
    (bp.ELU(0.7), lambda x: np.where(x > 0, 1, 0.7 * np.exp(x))),
    (bp.SiLU(), lambda x: _SIG(x) * (1 + x * (1 - _SIG(x)))),
    (bp.Softplus(2.0, 1.0), lambda x: np.where(2 * x <= 1, _SIG(2 * x), 1)),
    (bp.Hardswish(), lambda x: np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1))),
    (bp.CELU(0.5), lambda x: np.where(x > 0, 1, np.exp(x / 0.5))),
    (bp.Mish(), lambda x: (lambda t: t + x * _SIG(x) * (1 - t * t))(
        np.tanh(np.logaddexp(0, x)))),
    (bp.Softsign(), lambda x: 1 / (1 + np.abs(x)) ** 2),
    (bp.LogSigmoid(), lambda x: _SIG(-x)),
    (bp.Tanhshrink(), lambda x: np.tanh(x) ** 2),
    (bp.SELU(), lambda x: bp.SELU.scale * np.where(x > 0, 1, bp.SELU.alpha * np.exp(x))),
]


@pytest.mark.parametrize("layer, fprime", _ELEMENTWISE, ids=lambda v: type(v).__name__)
def test_activation_backward_and_cached_d_match_the_docstring(layer, fprime):
    layer = layer.astype(np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 6)) * 3
    layer.forward(x, training=True)
    d = layer.cache["d"].copy()  # backward may reuse it as scratch (see Layer.cache)
    np.testing.assert_allclose(d, fprime(x), rtol=1e-12, atol=1e-15)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * fprime(x), rtol=1e-12, atol=1e-15)


def test_a_cached_array_backward_reuses_is_documented_as_needing_a_copy():
    layer = bp.Dropout(0.5, rng=0, dtype=np.float64)
    layer.forward(np.ones((4, 5)), training=True)
    kept, copied = layer.cache["mask"], layer.cache["mask"].copy()
    dx = layer.backward(np.full((4, 5), 3.0))
    np.testing.assert_array_equal(dx, 3 * copied)
    if not np.array_equal(kept, copied):  # backward wrote dx into the cached mask
        assert ".copy()" in type(layer).cache.__doc__
        readme = Path(__file__).resolve().parents[1] / "README.md"
        assert ".copy()" in readme.read_text(encoding="utf-8")
