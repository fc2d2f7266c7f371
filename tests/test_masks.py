"""Padded sequences: the recurrent layers' ``lengths``/``mask``, and the padding mask that
``Embedding(mask_zero=True)`` and ``Masking`` hand along a Sequential.

PyTorch's packed sequences are the oracle for suffix padding (``lengths``); for masks with
holes or padding at the front (Keras'), a masked row must equal the same layer run on that
row's real steps alone."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

KINDS = ("LSTM", "GRU", "RNN")
N, T, D, H = 5, 7, 3, 4
LENGTHS = np.array([7, 3, 5, 1, 7])


def _x(seed=0, shape=(N, T, D)):
    return np.random.default_rng(seed).standard_normal(shape)


def _torch_twin(torch, layer, bidirectional=False):
    """The PyTorch module with ``layer``'s weights (a Bidirectional's both directions)."""
    inner = layer.forward_layer if bidirectional else layer
    module = getattr(torch.nn, type(inner).__name__)(
        inner.input_size, inner.hidden_size, batch_first=True,
        bidirectional=bidirectional).double()
    parts = ([("", layer.forward_layer), ("_reverse", layer.backward_layer)] if bidirectional
             else [("", layer)])
    weights = {}
    for suffix, lay in parts:
        for ours, theirs in (("W", "weight_ih"), ("U", "weight_hh"), ("b", "bias_ih"),
                             ("b_h", "bias_hh")):
            value = lay.params[ours]
            weights[f"{theirs}_l0{suffix}"] = torch.tensor(value.T.copy() if value.ndim == 2
                                                           else value.copy())
    module.load_state_dict(weights)
    return module


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_lengths_match_torch_packed_sequences(kind, return_sequences, with_state):
    """Outputs (0 past each length), the final state at each row's last real step (h_n),
    dx (0 at padding), every weight gradient and the initial state's gradient, against
    pack_padded_sequence(enforce_sorted=False), float64."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    rng = np.random.default_rng(1)
    layer = getattr(bp, kind)(D, H, return_sequences=return_sequences, dtype=np.float64,
                              rng=2)
    module = _torch_twin(torch, layer)
    x = _x()
    h0 = rng.standard_normal((N, H)) if with_state else None
    c0 = rng.standard_normal((N, H)) if with_state and kind == "LSTM" else None
    state = None if not with_state else (h0, c0) if kind == "LSTM" else h0
    y = layer.forward(x, training=True, initial_state=state, lengths=LENGTHS)

    xt = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=True,
                                  enforce_sorted=False)
    t_state = None
    if with_state:
        th0 = torch.tensor(h0[None], requires_grad=True)
        tc0 = torch.tensor(c0[None], requires_grad=True) if kind == "LSTM" else None
        t_state = (th0, tc0) if kind == "LSTM" else th0
    out, hn = module(packed, t_state)
    hn_h = hn[0] if kind == "LSTM" else hn
    want = (pad_packed_sequence(out, batch_first=True, total_length=T)[0]
            if return_sequences else hn_h[0])
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-13)
    final = layer.state[0] if kind == "LSTM" else layer.state
    np.testing.assert_allclose(final, hn_h[0].detach().numpy(), rtol=1e-12, atol=1e-13)

    dy, dh = rng.standard_normal(y.shape), rng.standard_normal((N, H))
    loss = (want * torch.tensor(dy)).sum()
    if return_sequences:  # a loss on the final state too (a decoder reading it)
        loss = loss + (hn_h[0] * torch.tensor(dh)).sum()
    loss.backward()
    d_state = None if not return_sequences else (dh, None) if kind == "LSTM" else dh
    dx = layer.backward(dy, d_state=d_state)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-13)
    assert not dx[~(np.arange(T) < LENGTHS[:, None])].any()
    for ours, theirs in (("W", "weight_ih_l0"), ("U", "weight_hh_l0"), ("b", "bias_ih_l0"),
                         ("b_h", "bias_hh_l0")):
        got = layer.grads[ours]
        grad = getattr(module, theirs).grad.numpy()
        np.testing.assert_allclose(got, grad.T if got.ndim == 2 else grad, rtol=1e-11,
                                   atol=1e-13)
    if with_state:
        d0 = layer.d_initial_state
        np.testing.assert_allclose(d0[0] if kind == "LSTM" else d0, th0.grad.numpy()[0],
                                   rtol=1e-11, atol=1e-13)
        if kind == "LSTM":
            np.testing.assert_allclose(d0[1], tc0.grad.numpy()[0], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_lengths_match_torch(kind, return_sequences):
    """The backward direction starts at each row's last real step, as PyTorch's packed
    bidirectional module: outputs, dx and both directions' gradients."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    layer = bp.Bidirectional(getattr(bp, kind)(D, H, return_sequences=return_sequences,
                                               dtype=np.float64, rng=3), rng=4)
    module = _torch_twin(torch, layer, bidirectional=True)
    x = _x(5)
    y = layer(x, training=True, lengths=LENGTHS)
    xt = torch.tensor(x, requires_grad=True)
    out, hn = module(pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=True,
                                          enforce_sorted=False))
    hn = hn[0] if kind == "LSTM" else hn
    want = (pad_packed_sequence(out, batch_first=True, total_length=T)[0] if return_sequences
            else torch.cat([hn[0], hn[1]], 1))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-13)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    (want * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(layer.grads["backward_layer.U"],
                               module.weight_hh_l0_reverse.grad.numpy().T, rtol=1e-11,
                               atol=1e-13)
    np.testing.assert_allclose(layer.grads["forward_layer.W"],
                               module.weight_ih_l0.grad.numpy().T, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_a_masked_row_equals_its_real_steps_alone(kind):
    """Keras' masks may hold holes and padding in front: a masked row's outputs at its real
    steps, its final state, dx and its weight gradients equal those of the layer run on
    the real steps alone; outputs and dx are 0 at the masked steps."""
    mask = np.array([[1, 1, 0, 1, 0, 1, 1], [0, 0, 0, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0, 0],
                     [1, 1, 1, 1, 1, 1, 1]], bool)
    layer = getattr(bp, kind)(D, H, dtype=np.float64, rng=0)
    x = _x(1, (4, T, D))
    dy = np.random.default_rng(2).standard_normal((4, T, H))
    y = layer(x, training=True, mask=mask)
    dx = layer.backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    final = layer.state[0] if kind == "LSTM" else layer.state
    assert not y[~mask].any() and not dx[~mask].any()
    total = {k: np.zeros_like(g) for k, g in grads.items()}
    for i, row in enumerate(mask):
        yi = layer(x[i:i + 1, row], training=True)
        np.testing.assert_allclose(y[i, row], yi[0], rtol=1e-12, atol=1e-14)
        state = layer.state[0] if kind == "LSTM" else layer.state
        np.testing.assert_allclose(final[i], state[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dx[i, row], layer.backward(dy[i:i + 1, row])[0],
                                   rtol=1e-11, atol=1e-14)
        for k in total:
            total[k] += layer.grads[k]
    for k in total:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_an_all_padded_row_keeps_its_initial_state(kind):
    """lengths 0 (Keras: a row masked throughout): the state stays the initial one, the
    output is 0, nothing flows into the weights; the initial state's gradient is d_state."""
    layer = getattr(bp, kind)(D, H, return_sequences=False, dtype=np.float64, rng=0)
    h0 = np.random.default_rng(3).standard_normal((2, H))
    state = (h0, h0 * 2) if kind == "LSTM" else h0
    x = _x(0, (2, T, D))
    y = layer(x, state, training=True, lengths=[0, T])
    np.testing.assert_array_equal(y[0], h0[0])
    dy = np.zeros_like(y)
    dy[0] = 1.0
    layer.backward(dy)
    assert all(not g.any() for g in layer.grads.values())
    d0 = layer.d_initial_state[0] if kind == "LSTM" else layer.d_initial_state
    np.testing.assert_array_equal(d0[0], np.ones(H))


@pytest.mark.parametrize("kind", KINDS)
def test_a_mask_of_real_steps_only_changes_nothing(kind):
    layer = getattr(bp, kind)(D, H, dtype=np.float64, rng=0)
    x = _x()
    plain = layer(x)
    np.testing.assert_array_equal(layer(x, lengths=[T] * N), plain)
    np.testing.assert_array_equal(layer(x, mask=np.ones((N, T), bool)), plain)
    np.testing.assert_array_equal(layer(x, mask=np.ones((N, T), np.int64)), plain)


def test_the_cache_shows_the_mask_and_the_input_read_as_zero_at_padding():
    layer = bp.LSTM(D, H, dtype=np.float64, rng=0)
    layer(_x(), training=True, lengths=LENGTHS)
    mask = np.arange(T) < LENGTHS[:, None]
    np.testing.assert_array_equal(layer.cache["mask"], mask)
    assert not layer.cache["x"][~mask].any()
    np.testing.assert_array_equal(layer.cache["x"][mask], _x()[mask])


@pytest.mark.parametrize("call,error,match", [
    (lambda l, x: l(x, lengths=[1, 2, 3]), ValueError, r"lengths of shape \(N,\) = \(5,\)"),
    (lambda l, x: l(x, lengths=[8, 1, 1, 1, 1]), ValueError, r"lengths in \[0, T\] = \[0, 7\]"),
    (lambda l, x: l(x, lengths=[-1, 1, 1, 1, 1]), ValueError, "got values from -1"),
    (lambda l, x: l(x, lengths=[1.5, 1, 1, 1, 1]), TypeError, "lengths as integers"),
    (lambda l, x: l(x, lengths="abc"), TypeError, "lengths as integers"),
    (lambda l, x: l(x, mask=np.ones((N, T - 1), bool)), ValueError,
     r"mask of shape \(N, T\) = \(5, 7\)"),
    (lambda l, x: l(x, mask=np.full((N, T), 0.5)), ValueError, "other than 0 and 1"),
    (lambda l, x: l(x, mask="all"), TypeError, "boolean .N, T. array"),
    (lambda l, x: l(x, mask=np.ones((N, T), bool), lengths=LENGTHS), ValueError, "got both"),
])
def test_bad_masks_and_lengths_are_named_errors(call, error, match):
    layer = bp.GRU(D, H, dtype=np.float64, rng=0)
    with pytest.raises(error, match=match):
        call(layer, _x())
    with pytest.raises(error, match=match):
        call(bp.Bidirectional(bp.LSTM(D, H, dtype=np.float64, rng=0)), _x())


# -- the mask along a Sequential ---------------------------------------------------------
IDS = np.array([[3, 4, 5, 0, 0], [0, 0, 7, 8, 9], [1, 2, 3, 4, 5], [2, 0, 3, 0, 4]])


def _classifier(head=None, dtype=np.float64):
    head = head or (lambda dt: bp.LSTM(4, 5, return_sequences=False, dtype=dt, rng=1))
    return bp.Sequential([bp.Embedding(10, 4, mask_zero=True, dtype=dtype, rng=0), head(dtype),
                          bp.Dense(5, 3, dtype=dtype, rng=2)])


@pytest.mark.parametrize("head", [
    lambda dt: bp.LSTM(4, 5, return_sequences=False, dtype=dt, rng=1),
    lambda dt: bp.GRU(4, 5, return_sequences=False, dtype=dt, rng=1),
    lambda dt: bp.Sequential([bp.RNN(4, 6, dtype=dt, rng=1), bp.Dropout(0.0),
                              bp.LayerNorm(6, dtype=dt), bp.Dense(6, 4, dtype=dt, rng=3),
                              bp.Tanh(dtype=dt),
                              bp.LSTM(4, 5, return_sequences=False, dtype=dt, rng=4)]),
])
def test_embedding_mask_zero_makes_padding_invisible(head):
    """Each row's output equals that of its real steps alone, wherever the 0s are; the
    model's last mask is None once a return_sequences=False layer ended it."""
    model = _classifier(head)
    out = model(IDS)
    assert model.output_mask is None
    for i, row in enumerate(IDS):
        np.testing.assert_allclose(out[i], model(row[row != 0][None])[0], rtol=1e-12,
                                   atol=1e-14)
    np.testing.assert_allclose(model(np.pad(IDS, ((0, 0), (0, 3)))), out, rtol=1e-12,
                               atol=1e-14)


def test_the_mask_goes_on_through_return_sequences_and_attention():
    model = bp.Sequential([bp.Embedding(10, 4, mask_zero=True, rng=0),
                           bp.PositionalEmbedding(8, 4, rng=1),
                           bp.MultiheadAttention(4, 2, rng=2), bp.GELU(), bp.GRU(4, 3, rng=3)])
    y = model(IDS)
    np.testing.assert_array_equal(model.output_mask, IDS != 0)
    assert not y[IDS == 0].any()
    row = IDS[0, :3][None]  # post-padding: the real prefix is unchanged by the padded keys
    np.testing.assert_allclose(y[0, :3], model(row)[0], rtol=1e-5, atol=1e-6)


def test_fit_trains_a_padded_sequence_classifier():
    """The classic task: is the token 1 anywhere in a variable-length sequence? With the
    padding masked, a small LSTM learns it; the padded amount does not change a prediction."""
    rng = np.random.default_rng(0)
    n, steps = 512, 12
    ids = rng.integers(2, 8, (n, steps))
    lengths = rng.integers(1, steps + 1, n)
    has = rng.random(n) < 0.5
    where = (rng.random(n) * lengths).astype(int)
    ids[has, where[has]] = 1
    ids[np.arange(steps) >= lengths[:, None]] = 0
    y = has.astype(np.int64)
    model = bp.Sequential([bp.Embedding(8, 8, mask_zero=True, rng=0),
                           bp.LSTM(8, 16, return_sequences=False, rng=1), bp.Dense(16, 2, rng=2)])
    model.fit(ids, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model, lr=0.01),
              epochs=15, batch_size=32, progress=False)
    assert model.evaluate(ids, y, loss=bp.SoftmaxCrossEntropy(),
                          metrics=["accuracy"])["accuracy"] > 0.9
    np.testing.assert_allclose(model.predict(np.pad(ids, ((0, 0), (0, 5)))), model.predict(ids),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer,name", [
    (bp.Flatten(), "Flatten"), (bp.Conv1D(5, 4, 1), "Conv1D"), (bp.Softmax(1), "Softmax"),
    (bp.LayerNorm((5, 4)), "LayerNorm"), (bp.PReLU(5), "PReLU"), (bp.Dropout1D(0.5), "Dropout1D"),
    (bp.BatchNorm(5), "BatchNorm"), (bp.AdaptiveAvgPool1D(1), "AdaptiveAvgPool1D"),
])
def test_a_layer_that_would_mix_padded_steps_refuses_the_mask(layer, name):
    model = bp.Sequential([bp.Embedding(10, 4, mask_zero=True, rng=0), layer])
    with pytest.raises(ValueError, match=rf"^{name}\(.*got a padding mask \(N, T\) from an "
                                         rf"earlier layer"):
        model(IDS)


@pytest.mark.parametrize("layer", [bp.Dropout(0.3), bp.ReLU(), bp.Softmax(-1), bp.LayerNorm(4),
                                   bp.RMSNorm(4), bp.PReLU(), bp.GLU(), bp.Dense(4, 4),
                                   bp.Identity()])
def test_layers_that_work_on_each_step_pass_the_mask_on(layer):
    model = bp.Sequential([bp.Embedding(10, 4, mask_zero=True, rng=0), layer])
    model(IDS, training=True)
    np.testing.assert_array_equal(model.output_mask, IDS != 0)


def test_embedding_mask_zero_needs_sequences_of_indices():
    layer = bp.Embedding(10, 4, mask_zero=True)
    np.testing.assert_array_equal(layer.compute_mask(IDS), IDS != 0)
    assert bp.Embedding(10, 4).compute_mask(IDS) is None
    with pytest.raises(ValueError, match=r"mask_zero masks the steps of sequences: expected "
                                         r"indices of shape \(N, T\), got \(4, 5, 1\)"):
        bp.Sequential([layer])(IDS[..., None])
    y = layer(IDS)  # called alone: the vectors as without mask_zero
    np.testing.assert_array_equal(y, layer.params["W"][IDS])


def test_masking_marks_steps_of_mask_value_and_zeroes_them():
    x = _x(0, (2, 4, 3))
    x[0, 1:] = -1.0
    x[1, 0] = -1.0
    layer = bp.Masking(-1.0, dtype=np.float64)
    mask = np.array([[1, 0, 0, 0], [0, 1, 1, 1]], bool)
    np.testing.assert_array_equal(layer.compute_mask(x), mask)
    y = layer(x, training=True)
    np.testing.assert_array_equal(y[mask], x[mask])
    assert not y[~mask].any() and not np.signbit(y[~mask]).any()
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), mask[..., None] * dy)
    model = bp.Sequential([bp.Masking(-1.0, dtype=np.float64),
                           bp.LSTM(3, 2, return_sequences=False, dtype=np.float64, rng=0)])
    out = model(x)
    np.testing.assert_allclose(out[0], model(x[:1, :1])[0], rtol=1e-12)
    np.testing.assert_allclose(out[1], model(x[1:, 1:])[0], rtol=1e-12)
    with pytest.raises(ValueError, match=r"Masking\(mask_value=-1.0.*expected input of shape "
                                         r"\(N, T, F\)"):
        layer(x[0])
    with pytest.raises(ValueError, match="mask_value"):
        bp.Masking(float("nan"))


def test_a_traced_model_records_layers_run_with_the_mask():
    model = _classifier()
    with bp.trace(model) as tr:
        model(IDS, training=True)
    assert len(tr[1].forward) == 1 and len(tr[0].forward) == 1


def test_masking_models_save_and_load(tmp_path):
    model = bp.Sequential([bp.Embedding(10, 4, mask_zero=True, rng=0),
                           bp.Bidirectional(bp.GRU(4, 3, rng=1), rng=2), bp.Masking(),
                           bp.LSTM(6, 2, return_sequences=False, rng=3)])
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded[0].mask_zero and isinstance(loaded[2], bp.Masking)
    np.testing.assert_array_equal(loaded(IDS), model(IDS))


def test_permute_ends_the_mask_unless_axis_1_stays():
    """Permute((2, 1)) gives the (N, C, T) logits of a per-position loss: the steps leave
    axis 1, so the mask ends there (padded targets take ignore_index); Permute((1, 3, 2))
    keeps the steps on axis 1 and passes it on."""
    tagger = bp.Sequential([bp.Embedding(10, 4, mask_zero=True, rng=0), bp.LSTM(4, 3, rng=1),
                            bp.Dense(3, 5, rng=2), bp.Permute((2, 1))])
    logits = tagger(IDS)
    assert logits.shape == (4, 5, 5) and tagger.output_mask is None
    labels = np.where(IDS == 0, -100, IDS % 5)
    tagger.fit(IDS, labels, loss=bp.SoftmaxCrossEntropy(ignore_index=-100),
               optimizer=bp.SGD(tagger.parameters(), lr=0.1), epochs=2, batch_size=2,
               progress=False)
    keep = bp.Sequential([bp.Embedding(10, 4, mask_zero=True, rng=0), bp.Unflatten(2, (2, 2)),
                          bp.Permute((1, 3, 2))])
    keep.add(bp.Flatten(2))  # (N, T, 2, 2) and back: within each step, the mask passes
    assert keep(IDS).shape == (4, 5, 4)
    np.testing.assert_array_equal(keep.output_mask, IDS != 0)


def test_a_mask_from_outside_needs_sequences_and_takes_lists():
    model = bp.Sequential([bp.Dense(6, 3, rng=0)])
    with pytest.raises(ValueError, match=r"needs input of sequences \(N, T, F, \.\.\.\), got "
                                         r"shape \(4, 6\)"):
        model.forward(np.zeros((4, 6), np.float32), mask=np.ones((4, 6), bool))
    gru = bp.Sequential([bp.GRU(3, 2, dtype=np.float64, rng=0)])
    x = _x(0, (2, 3, 3))
    m = [[True, True, False], [True, False, False]]
    np.testing.assert_array_equal(gru.forward(x, mask=m), gru.forward(x, mask=np.array(m)))
    np.testing.assert_array_equal(gru.forward(x, mask=m), gru[0](x, lengths=[2, 1]))
    np.testing.assert_array_equal(gru(x, src_key_padding_mask=~np.array(m)), gru[0](x, mask=m))


# -- Bidirectional: PyTorch's (2, N, H) states in and out ---------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_initial_and_final_states_match_torch(kind, return_sequences):
    """layer(x, h0) with h0 (2, N, H) (LSTM (h0, c0)), layer.state as h_n, a loss on it
    through backward(dy, d_state=...), and layer.d_initial_state, with padded rows."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    rng = np.random.default_rng(8)
    layer = bp.Bidirectional(getattr(bp, kind)(D, H, return_sequences=return_sequences,
                                               dtype=np.float64, rng=3), rng=4)
    module = _torch_twin(torch, layer, bidirectional=True)
    x, h0, c0 = _x(9), rng.standard_normal((2, N, H)), rng.standard_normal((2, N, H))
    y = layer(x, (h0, c0) if kind == "LSTM" else h0, training=True, lengths=LENGTHS)
    xt, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    out, hn = module(pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=True,
                                          enforce_sorted=False),
                     (th0, tc0) if kind == "LSTM" else th0)
    hh = hn[0] if kind == "LSTM" else hn
    want = (pad_packed_sequence(out, batch_first=True, total_length=T)[0] if return_sequences
            else torch.cat([hh[0], hh[1]], 1))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-13)
    state = layer.state[0] if kind == "LSTM" else layer.state
    np.testing.assert_allclose(state, hh.detach().numpy(), rtol=1e-12, atol=1e-13)
    dy, dh = rng.standard_normal(y.shape), rng.standard_normal((2, N, H))
    ((want * torch.tensor(dy)).sum() + (hh * torch.tensor(dh)).sum()).backward()
    dx = layer.backward(dy, d_state=(dh, None) if kind == "LSTM" else dh)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-13)
    d0 = layer.d_initial_state
    np.testing.assert_allclose(d0[0] if kind == "LSTM" else d0, th0.grad.numpy(), rtol=1e-11,
                               atol=1e-13)
    if kind == "LSTM":
        np.testing.assert_allclose(d0[1], tc0.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_bidirectional_takes_keras_state_lists_and_names_bad_ones():
    layer = bp.Bidirectional(bp.LSTM(D, H, dtype=np.float64, rng=0))
    rng = np.random.default_rng(1)
    h0, c0 = rng.standard_normal((2, N, H)), rng.standard_normal((2, N, H))
    x = _x()
    torch_layout = layer(x, (h0, c0))
    np.testing.assert_array_equal(layer(x, [h0[0], c0[0], h0[1], c0[1]]), torch_layout)
    assert not np.allclose(layer(x), torch_layout)
    with pytest.raises(TypeError, match=r"expected initial_state in PyTorch's form, a pair "
                                        r"\(h, c\) "
                                        r"of \(2, N, H\) arrays .* got ndarray of shape"):
        layer(x, h0)
    with pytest.raises(ValueError, match=r"expected initial_state's h0 of shape \(5, 4\)"):
        layer(x, (h0[:, :2], c0[:, :2]))
    layer(x, training=True)
    with pytest.raises(TypeError, match="expected d_state in PyTorch's form"):
        layer.backward(np.ones((N, T, 2 * H)), d_state=h0)
    layer.backward(np.ones((N, T, 2 * H)))  # the refused d_state left both caches in place
    assert layer.d_initial_state is None


# -- GlobalAvgPool: Keras' GlobalAveragePooling1D over the real steps ---------------------
def test_global_avg_pool_averages_the_real_steps_of_channels_last_sequences():
    x = _x(3, (3, 4, 2))
    x[0, 2:] = np.nan  # padding is never read
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    pool = bp.GlobalAvgPool(channels_last=True, dtype=np.float64)
    y = pool(x, mask=mask, training=True)
    np.testing.assert_allclose(y[0], x[0, :2].mean(0), rtol=1e-15)
    np.testing.assert_allclose(y[1], x[1].mean(0), rtol=1e-15)
    np.testing.assert_array_equal(y[2], 0.0)  # no real step: 0 (Keras: NaN)
    dx = pool.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(dx, mask[..., None] / np.maximum(mask.sum(1), 1)[:, None, None]
                                  * np.ones((1, 1, 2)))
    np.testing.assert_allclose(pool(x[1:2]), x[1:2].mean(1), rtol=1e-15)
    model = bp.Sequential([bp.Embedding(10, 4, mask_zero=True, dtype=np.float64, rng=0),
                           bp.GlobalAvgPool(channels_last=True), bp.Dense(4, 2, rng=1,
                                                                          dtype=np.float64)])
    out = model(IDS)
    assert model.output_mask is None
    for i, row in enumerate(IDS):
        np.testing.assert_allclose(out[i], model(row[row != 0][None])[0], rtol=1e-12)


def test_global_avg_pool_refuses_a_mask_it_cannot_apply():
    with pytest.raises(ValueError, match=r"GlobalAvgPool\(\): a padding mask \(N, T\) needs "
                                         r"channels_last=True .* with channels first"):
        bp.GlobalAvgPool()(np.zeros((2, 3, 4), np.float32), mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="needs channels_last=True and sequences"):
        bp.GlobalAvgPool(channels_last=True)(np.zeros((2, 3, 4, 5), np.float32),
                                             mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, L, C\)"):
        bp.GlobalAvgPool(channels_last=True)(np.zeros((2, 3), np.float32))


def test_masking_is_traced_and_passes_no_gradient_to_padded_steps():
    """A Sequential runs Masking through forward_masked; bp.trace wraps forward: Masking's
    forward must go through it. A NaN in dy at a padded step is not passed on, and a
    mask_value beyond the input's dtype marks nothing (no overflow warning)."""
    model = bp.Sequential([bp.Masking(), bp.LSTM(3, 4, rng=0),
                           bp.GlobalAvgPool(channels_last=True), bp.Dense(4, 2, rng=1)])
    x = _x(0, (2, 5, 3)).astype(np.float32)
    x[0, 3:] = 0.0
    loss = bp.SoftmaxCrossEntropy()
    with bp.trace(model) as t:
        loss.forward(model.forward(x, training=True), np.array([0, 1]))
        model.backward(loss.backward())
    assert len(t[0].forward) == 1 and len(t[0].backward) == 1
    layer = bp.Masking(dtype=np.float64)
    layer(_x(0, (2, 5, 3)) * np.array([1, 1, 1, 0, 0])[None, :, None], training=True)
    dy = np.ones((2, 5, 3))
    dy[:, 3:] = np.nan
    assert np.isfinite(layer.backward(dy)).all()
    assert bp.Masking(1e40).compute_mask(x).all()


def test_residual_takes_a_mask_in_its_call():
    block = bp.Residual(bp.Sequential([bp.LayerNorm(4, dtype=np.float64),
                                       bp.MultiheadAttention(4, 2, dtype=np.float64, rng=0)]))
    x = _x(0, (2, 3, 4))
    m = np.array([[1, 1, 0], [1, 1, 1]], bool)
    y = block(x, mask=m)
    np.testing.assert_array_equal(block.output_mask, m)
    np.testing.assert_allclose(y[0, :2], block(x[:1, :2])[0], rtol=1e-12, atol=1e-12)


def test_summary_shows_a_stateful_layer_as_it_is():
    """summary's forwards run with stateful switched off (states_kept); its rows took the
    layers' reprs inside that block and showed LSTM(3, 4) for LSTM(3, 4, stateful=True)."""
    model = bp.Sequential([bp.LSTM(3, 4, stateful=True, rng=0), bp.Dense(4, 2, rng=1)])
    model(np.ones((2, 5, 3), np.float32))
    kept = model[0].state[0].copy()
    text = str(model.summary((5, 3)))
    assert "LSTM(3, 4, stateful=True)" in text and "(N, 5, 4)" in text
    np.testing.assert_array_equal(model[0].state[0], kept)


# -- per-step sample weights (Keras' temporal sample_weight): masking the loss --------------
def test_per_step_sample_weights_match_torch_weighted_losses():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    w = (rng.random((2, 4)) > 0.3).astype(np.float64)
    logits, labels = rng.standard_normal((2, 3, 4)), rng.integers(0, 3, (2, 4))
    loss = bp.SoftmaxCrossEntropy()
    value, grad = loss.forward(logits, labels, w), loss.backward()
    lt = torch.tensor(logits, requires_grad=True)
    want = (torch.nn.functional.cross_entropy(lt, torch.tensor(labels), reduction="none")
            * torch.tensor(w)).mean()
    want.backward()
    assert abs(value - want.item()) < 1e-14
    np.testing.assert_allclose(grad, lt.grad.numpy(), rtol=1e-12, atol=1e-15)
    out, target = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    mse = bp.MeanSquaredError(reduction="sum")
    value, grad = mse.forward(out, target, w), mse.backward()
    np.testing.assert_allclose(value, (w[..., None] * (out - target) ** 2).sum(), rtol=1e-14)
    np.testing.assert_allclose(grad, 2 * w[..., None] * (out - target), rtol=1e-14)
    with pytest.raises(ValueError, match=r"expected sample_weight of shape \(2,\), one per "
                                         r"sample, or per step \(2, 4\)"):
        mse.forward(out, target, np.ones((2, 3)))


def test_fit_with_per_step_weights_ignores_the_targets_of_padded_steps():
    """Per-step weights 0 at padding: the padded targets (any finite values) change nothing
    (bit for bit), in training, validation and evaluate."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 6, (64, 6))
    pad = np.arange(6) >= rng.integers(1, 7, 64)[:, None]
    ids[pad] = 0
    y = (np.cumsum(ids, axis=1) / 10).astype(np.float32)[..., None]
    runs = []
    for junk in (0.0, 1e3):
        y_junk = np.where(pad[..., None], junk, y).astype(np.float32)
        model = bp.Sequential([bp.Embedding(6, 4, mask_zero=True, rng=0),
                               bp.GRU(4, 8, rng=1), bp.Dense(8, 1, rng=2)])
        history = model.fit(ids, y_junk, loss=bp.MeanSquaredError(),
                            optimizer=bp.SGD(model.parameters(), lr=0.05), epochs=3,
                            batch_size=16, sample_weight=(~pad).astype(np.float32), seed=0,
                            validation_split=0.25, progress=False)
        runs.append((model.flat_params.copy(), history.history["val_loss"],
                     model.evaluate(ids, y_junk, loss=bp.MeanSquaredError(),
                                    sample_weight=~pad)["loss"]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]
    dense = bp.Sequential([bp.Dense(3, 2, rng=0)])
    with pytest.raises(ValueError, match=r"fit: sample_weight of shape \(4, 2\) does not fit "
                                         r"the loss .* one per sample, got \(4, 2\)"):
        dense.fit(np.ones((4, 3), np.float32), np.array([0, 1, 0, 1]),
                  loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(dense.parameters(), lr=0.1),
                  sample_weight=np.ones((4, 2)), class_weight={0: 2.0}, progress=False)


def test_an_infinite_target_at_a_zero_weight_step_is_the_named_error():
    """inf · 0 in the weighting raised NumPy's 'invalid' warning (an error under the
    tests' filter) before the loss's own check of its targets."""
    y = np.zeros((2, 3, 1))
    y[0, 2] = np.inf
    with pytest.raises(ValueError, match="expected finite targets, got NaN or infinite"):
        bp.MeanSquaredError()(np.ones((2, 3, 1)), y, [[1, 1, 0], [1, 1, 1]])
