"""Regressions found by the session-16 review's differential fuzz against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_embedding_scale_grad_by_freq_with_unread_rows_warns_nothing():
    # indices 0 and 2 leave row 1 unread: its count 0 must not be inverted (1 / 0 warned,
    # an error under filterwarnings=error)
    emb = bp.Embedding(4, 3, scale_grad_by_freq=True, dtype=np.float64, rng=0)
    emb.forward(np.array([[0, 2, 2]]), training=True)
    emb.backward(np.ones((1, 3, 3)))
    np.testing.assert_array_equal(emb.grads["W"], [[1.0] * 3, [0.0] * 3, [1.0] * 3, [0.0] * 3])


def test_embedding_max_norm_norm_in_the_weights_dtype_as_torch():
    torch = pytest.importorskip("torch")
    # a float32 row renormed to max_norm=1e-3 reads back a float32 norm of
    # float32(1e-3) > 1e-3: PyTorch shrinks it again (by 1e-7 / 1e-3 = 1e-4 relative)
    w = np.array([[-2.3, -0.2, -1.2], [0.5, -1.0, 2.0]], np.float32)
    t = torch.nn.Embedding(2, 3, max_norm=1e-3)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(w))
    emb = bp.Embedding(2, 3, max_norm=1e-3, rng=0)
    emb.params["W"][...] = w
    idx = np.array([[0, 1]])
    for _ in range(3):
        y = emb.forward(idx)
        ty = t(torch.tensor(idx)).detach().numpy()
        np.testing.assert_allclose(y, ty, rtol=1e-6, atol=0)
        np.testing.assert_allclose(emb.params["W"], t.weight.detach().numpy(), rtol=1e-6,
                                   atol=0)
