"""PositionalEmbedding: x + W[:T], its gradients (PyTorch's nn.Embedding of the positions),
what it lets a causal attention model learn, errors, hints and loading from PyTorch. The
gradient check and the Layer contract run on it from tests/table.py."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("steps", [1, 4, 6])
def test_values_and_gradients_are_torchs_embedding_of_the_positions(steps):
    torch = pytest.importorskip("torch")
    layer = bp.PositionalEmbedding(6, 3, dtype=np.float64, rng=0)
    pos = torch.nn.Embedding(6, 3).double()
    with torch.no_grad():
        pos.weight.copy_(torch.tensor(layer.params["W"]))
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((2, steps, 3)), rng.standard_normal((2, steps, 3))
    xt = torch.tensor(x, requires_grad=True)
    yt = xt + pos(torch.arange(steps))
    yt.backward(torch.tensor(dy))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    np.testing.assert_allclose(layer.grads["W"], pos.weight.grad.numpy(), rtol=0, atol=1e-15)
    assert not layer.grads["W"][steps:].any()


def test_float32_stays_float32_and_inference_keeps_no_cache():
    layer = bp.PositionalEmbedding(4, 2, rng=0)
    x = np.ones((3, 4, 2), np.float32)
    assert layer.forward(x).dtype == np.float32 and not layer.has_cache
    with pytest.raises(RuntimeError):
        layer.backward(x)


def _copy_task(n, seed, steps=6, vocab=8):
    """Each position's target is the token before it (the first: itself)."""
    x = np.random.default_rng(seed).integers(0, vocab, (n, steps))
    y = np.roll(x, 1, axis=1)
    y[:, 0] = x[:, 0]
    return x, y


def _model(positions, e=16, vocab=8, steps=6):
    layers = [bp.Embedding(vocab, e, rng=0)]
    if positions:
        layers.append(bp.PositionalEmbedding(steps, e, rng=1))
    layers += [bp.Residual(bp.Sequential([bp.LayerNorm(e),
                                          bp.MultiheadAttention(e, 2, causal=True, rng=2)])),
               bp.LayerNorm(e), bp.Dense(e, vocab, rng=3), bp.Permute((2, 1))]
    return bp.Sequential(layers)


def test_positions_let_causal_attention_find_the_previous_token():
    """Without positions causal attention sees a set of earlier tokens, not their order,
    and cannot tell which one came last; with them it learns the task."""
    x, y = _copy_task(2000, 0)
    xt, yt = _copy_task(500, 1)
    accuracy = {}
    for positions in (True, False):
        model = _model(positions)
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters(),
                  lr=1e-2), epochs=15, batch_size=64, progress=False, seed=0)
        accuracy[positions] = (model.predict(xt).argmax(1)[:, 1:] == yt[:, 1:]).mean()
    assert accuracy[True] > 0.95 and accuracy[False] < 0.8, accuracy


def test_errors_name_the_layer_and_what_was_expected():
    layer = bp.PositionalEmbedding(4, 3)
    with pytest.raises(ValueError, match=r"PositionalEmbedding\(4, 3\): expected at most "
                                         r"max_length=4 positions, got input of shape "
                                         r"\(2, 5, 3\) \(build the layer with max_length >= 5\)"):
        layer.forward(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"PositionalEmbedding\(4, 3\): expected input of shape "
                                         r"\(N, T, 3\), got \(2, 4, 2\)"):
        layer.forward(np.zeros((2, 4, 2), np.float32))
    with pytest.raises(TypeError, match=r"PositionalEmbedding\(4, 3\): .*float32.*float64"):
        layer.forward(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"PositionalEmbedding: expected max_length"):
        bp.PositionalEmbedding(0, 3)
    layer.forward(np.zeros((2, 3, 3), np.float32), training=True)
    with pytest.raises(ValueError, match=r"dy"):
        layer.backward(np.zeros((2, 4, 3), np.float32))
    assert layer.backward(np.ones((2, 3, 3), np.float32)).shape == (2, 3, 3)  # cache kept
    with pytest.raises(TypeError, match=r"sequence_length.*backprop calls it max_length"):
        bp.PositionalEmbedding(sequence_length=4, embed_dim=3)
    with pytest.raises(AttributeError, match=r"backprop calls it PositionalEmbedding"):
        bp.PositionEmbedding  # noqa: B018  (Keras-NLP's name)


def test_from_torch_loads_an_embedding_of_positions_and_save_load_round_trips(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"tok.weight": torch.randn(8, 4), "pos.weight": torch.randn(6, 4),
             "head.weight": torch.randn(3, 4), "head.bias": torch.randn(3)}
    model = bp.Sequential([bp.Embedding(8, 4), bp.PositionalEmbedding(6, 4), bp.Dense(4, 3)])
    model.load_state_dict(bp.from_torch(model, state))
    np.testing.assert_array_equal(model[1].params["W"], state["pos.weight"].numpy())
    x = np.random.default_rng(0).integers(0, 8, (2, 5))
    want = (state["tok.weight"][x] + state["pos.weight"][:5]) @ state["head.weight"].T \
        + state["head.bias"]
    np.testing.assert_allclose(model.predict(x), want.numpy(), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
