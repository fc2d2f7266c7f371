"""TransformerEncoderLayer and TransformerEncoder: PyTorch's values and gradients (weights
loaded with from_torch), training steps, dropout, saving, learning and errors. The
gradient check and the Layer contract run on the Sequential it builds from
tests/table.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop as bp

E, H, F = 8, 2, 16  # d_model, nhead, dim_feedforward
OPTIONS = list(itertools.product(["relu", "gelu"], [False, True], [True, False], [False, True]))


def _ids(options):
    act, norm_first, bias, causal = options
    return (f"{act}-{'pre' if norm_first else 'post'}-{'bias' if bias else 'nobias'}"
            f"{'-causal' if causal else ''}")


def _torch_layer(torch, dtype, act="relu", norm_first=False, bias=True, seed=0):
    """PyTorch's layer (dropout 0) with every weight moved off its initial value, so that
    gamma 1, beta 0 and the zero attention biases cannot hide a mix-up."""
    torch.manual_seed(seed)
    layer = torch.nn.TransformerEncoderLayer(E, H, F, dropout=0.0, activation=act,
                                             norm_first=norm_first, bias=bias, batch_first=True,
                                             dtype=dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return layer


def _ours_from(theirs, dtype=np.float64, **kwargs):
    model = bp.TransformerEncoderLayer(E, H, F, dropout=0.0, dtype=dtype, rng=5, **kwargs)
    model.load_state_dict(bp.from_torch(model, theirs.state_dict()))
    return model


def _torch_run(torch, module, x, r, causal):
    """``module(x)`` in training mode (dropout 0: the general path) and the gradients of
    ``sum(y * r)``: (y, dx, {name: grad})."""
    xt = torch.tensor(x, requires_grad=True)
    mask = (torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=xt.dtype)
            if causal else None)
    module.train()
    y = module(xt, mask, is_causal=True) if causal else module(xt)
    (y * torch.tensor(r)).sum().backward()
    grads = {k: p.grad for k, p in module.named_parameters()}
    return y.detach().numpy(), xt.grad.numpy(), grads


@pytest.mark.parametrize("options", OPTIONS, ids=_ids)
def test_outputs_dx_and_every_gradient_match_torch_in_float64(options):
    torch = pytest.importorskip("torch")
    act, norm_first, bias, causal = options
    theirs = _torch_layer(torch, torch.float64, act, norm_first, bias)
    ours = _ours_from(theirs, activation=act, norm_first=norm_first, bias=bias, causal=causal)
    rng = np.random.default_rng(1)
    x, r = rng.standard_normal((3, 5, E)), rng.standard_normal((3, 5, E))
    y_t, dx_t, grads_t = _torch_run(torch, theirs, x, r, causal)
    y = ours.forward(x, training=True)
    dx = ours.backward(r)
    np.testing.assert_allclose(y, y_t, rtol=0, atol=1e-13)
    np.testing.assert_allclose(dx, dx_t, rtol=0, atol=1e-13)
    want = bp.from_torch(ours, grads_t)  # torch's gradients under our names and layouts
    assert set(want) == set(ours.grads)
    for k, g in ours.grads.items():
        np.testing.assert_allclose(g, want[k], rtol=0, atol=1e-12, err_msg=k)
    theirs.eval()  # torch's inference (its fast path where it applies) vs our inference
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    with torch.no_grad():
        y_eval = (theirs(torch.tensor(x), mask, is_causal=True) if causal
                  else theirs(torch.tensor(x))).numpy()
    np.testing.assert_allclose(ours(x), y_eval, rtol=0, atol=1e-13)


@pytest.mark.parametrize("norm_first", [False, True])
def test_float32_is_within_torchs_float32_error(norm_first):
    """Against PyTorch in float64: our float32 error is of the size of PyTorch's own."""
    torch = pytest.importorskip("torch")
    exact = _torch_layer(torch, torch.float64, "gelu", norm_first)
    single = _torch_layer(torch, torch.float32, "gelu", norm_first)
    single.load_state_dict({k: v.float() for k, v in exact.state_dict().items()})
    ours = _ours_from(exact, np.float32, activation="gelu", norm_first=norm_first, causal=True)
    rng = np.random.default_rng(2)
    x, r = rng.standard_normal((4, 6, E)), rng.standard_normal((4, 6, E))
    y64, dx64, _ = _torch_run(torch, exact, x, r, True)
    y32, dx32, _ = _torch_run(torch, single, x.astype(np.float32), r.astype(np.float32), True)
    y = ours.forward(x.astype(np.float32), training=True)
    dx = ours.backward(r.astype(np.float32))
    assert y.dtype == dx.dtype == np.float32
    for a, torch32, exact64 in ((y, y32, y64), (dx, dx32, dx64)):
        torch_error = np.abs(torch32 - exact64).max()
        assert np.abs(a - exact64).max() <= max(4 * torch_error, 1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_with_a_final_norm_matches_torch(norm_first):
    """nn.TransformerEncoder(layer, 3, norm=LayerNorm): its state dict (layers.0.self_attn,
    ..., norm) loads into TransformerEncoder(TransformerEncoderLayer(...), 3, LayerNorm)."""
    torch = pytest.importorskip("torch")
    layer = _torch_layer(torch, torch.float64, "gelu", norm_first)
    theirs = torch.nn.TransformerEncoder(layer, 3, norm=torch.nn.LayerNorm(E).double(),
                                         enable_nested_tensor=False)
    with torch.no_grad():  # each copy its own weights
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = bp.TransformerEncoder(bp.TransformerEncoderLayer(
        E, H, F, dropout=0.0, activation="gelu", norm_first=norm_first, causal=True,
        dtype=np.float64, rng=0), 3, norm=bp.LayerNorm(E, dtype=np.float64))
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    rng = np.random.default_rng(3)
    x, r = rng.standard_normal((2, 5, E)), rng.standard_normal((2, 5, E))
    y_t, dx_t, grads_t = _torch_run(torch, theirs, x, r, True)
    np.testing.assert_allclose(ours.forward(x, training=True), y_t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.backward(r), dx_t, rtol=0, atol=1e-12)
    want = bp.from_torch(ours, grads_t)
    for k, g in ours.grads.items():
        np.testing.assert_allclose(g, want[k], rtol=0, atol=1e-11, err_msg=k)


def _twins(torch, norm_first):
    """Embedding -> encoder layer -> Flatten -> Dense, in both (weights: torch's)."""
    f64 = np.float64
    torch.manual_seed(4)
    theirs = torch.nn.Sequential(
        torch.nn.Embedding(7, E),
        torch.nn.TransformerEncoderLayer(E, H, F, dropout=0.0, norm_first=norm_first,
                                         batch_first=True),
        torch.nn.Flatten(), torch.nn.Linear(4 * E, 3)).double()
    ours = bp.Sequential([bp.Embedding(7, E, dtype=f64, rng=0),
                          bp.TransformerEncoderLayer(E, H, F, dropout=0.0, norm_first=norm_first,
                                                     dtype=f64, rng=1),
                          bp.Flatten(dtype=f64), bp.Dense(4 * E, 3, dtype=f64, rng=2)])
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    return ours, theirs


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("opt_name, settings", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.001})])
def test_training_steps_follow_torchs_trajectory(opt_name, settings, norm_first):
    torch = pytest.importorskip("torch")
    ours, theirs = _twins(torch, norm_first)
    opt = getattr(bp, opt_name)(ours.parameters(), **settings)
    topt = getattr(torch.optim, opt_name)(theirs.parameters(), **settings)
    loss, tloss = bp.SoftmaxCrossEntropy(dtype=np.float64), torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(8)
    for _ in range(5):
        x, y = rng.integers(0, 7, (6, 4)), rng.integers(0, 3, 6)
        value = loss.forward(ours.forward(x, training=True), y)
        ours.backward(loss.backward(), input_grad=False)
        opt.step()
        topt.zero_grad()
        t_value = tloss(theirs(torch.tensor(x)), torch.tensor(y))
        t_value.backward()
        topt.step()
        assert value == pytest.approx(t_value.item(), abs=1e-12)
    want = bp.from_torch(ours, theirs.state_dict())
    for k, v in ours.state_dict().items():
        if k.endswith("b_in"):  # the key bias: gradient 0 up to rounding, which Adam
            v, want[k] = np.delete(v, np.s_[E:2 * E]), np.delete(want[k], np.s_[E:2 * E])
        np.testing.assert_allclose(v, want[k], rtol=0, atol=1e-10, err_msg=k)  # scales to lr


def test_defaults_are_torchs_and_init_draws_as_torchs():
    torch = pytest.importorskip("torch")
    ours = bp.TransformerEncoderLayer(64, 4, rng=0)
    theirs = torch.nn.TransformerEncoderLayer(64, 4, batch_first=True)
    assert ours.num_params == sum(p.numel() for p in theirs.parameters())
    assert ours.dtype == np.float32
    attention, norm1, ff, norm2 = ours[0].block[0], ours[1], ours[2].block, ours[3]
    assert (attention.dropout, ours[0].block[1].rate, ff[2].rate, ff[4].rate) == (0.1,) * 4
    assert isinstance(ff[1], bp.ReLU) and norm1.eps == norm2.eps == 1e-5
    for dense, fan_in in ((ff[0], 64), (ff[3], 2048)):  # nn.Linear: U(±1/sqrt(fan_in)), both
        bound = 1 / np.sqrt(fan_in)
        for k in ("W", "b"):
            assert np.abs(dense.params[k]).max() <= bound
            assert np.abs(dense.params[k]).max() > 0.9 * bound
    assert not attention.params["b_in"].any() and not attention.params["b_out"].any()
    assert (norm1.params["gamma"] == 1).all() and not norm2.params["beta"].any()
    x = np.random.default_rng(0).standard_normal((2, 3, 64)).astype(np.float32)
    assert ours(x).shape == (2, 3, 64) and ours(x).dtype == np.float32


def test_dropout_changes_training_outputs_and_never_inference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, E)).astype(np.float32)
    model = bp.TransformerEncoderLayer(E, H, F, dropout=0.5, rng=0)
    plain = bp.TransformerEncoderLayer(E, H, F, dropout=0.0, rng=0)  # the same weights
    np.testing.assert_array_equal(model(x), plain(x))
    np.testing.assert_array_equal(model(x), model(x))
    a, b = model.forward(x, training=True), model.forward(x, training=True)
    assert not np.allclose(a, model(x)) and not np.allclose(a, b)
    assert model[0].block[0].cache["mask"] is not None  # the attention weights dropped too
    again = bp.TransformerEncoderLayer(E, H, F, dropout=0.5, rng=0)
    np.testing.assert_array_equal(again.forward(x, training=True), a)  # masks by seed


def test_encoder_copies_start_equal_own_their_weights_and_draw_their_own_masks():
    layer = bp.TransformerEncoderLayer(E, H, F, dropout=0.3, rng=0)
    model = bp.TransformerEncoder(layer, 2)
    first, second = model[0], model[1]
    assert first is not layer and second is not layer
    for k, v in layer.params.items():
        np.testing.assert_array_equal(first.params[k], v)
        np.testing.assert_array_equal(second.params[k], v)
        assert not np.shares_memory(first.params[k], second.params[k])
    assert first[0].block[0].rng is not second[0].block[0].rng
    x = np.random.default_rng(1).standard_normal((2, 4, E)).astype(np.float32)
    first.forward(x, training=True)
    second.forward(x, training=True)
    assert not np.array_equal(first[0].block[0].cache["mask"], second[0].block[0].cache["mask"])


def test_save_and_load_round_trip(tmp_path):
    model = bp.Sequential([
        bp.Embedding(7, E, rng=0), bp.PositionalEmbedding(6, E, rng=1),
        bp.TransformerEncoder(bp.TransformerEncoderLayer(E, H, F, dropout=0.2, norm_first=True,
                                                         activation="gelu", rng=2), 2,
                              norm=bp.LayerNorm(E)),
        bp.Dense(E, 7, rng=3)])
    x = np.random.default_rng(0).integers(0, 7, (3, 5))
    model.forward(x, training=True)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.forward(x, training=True),  # the dropout masks
                                  model.forward(x, training=True))  # go on as they would


def test_learns_the_readmes_previous_token_task():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (2000, 6))
    y = np.roll(x, 1, axis=1)
    y[:, 0] = x[:, 0]
    model = bp.Sequential([
        bp.Embedding(8, 16, rng=0), bp.PositionalEmbedding(6, 16, rng=1),
        bp.TransformerEncoderLayer(16, 2, 32, dropout=0.0, norm_first=True, causal=True, rng=2),
        bp.LayerNorm(16), bp.Dense(16, 8, rng=3), bp.Permute((2, 1))])
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters(), lr=1e-2),
              epochs=10, batch_size=64, seed=0, progress=False)
    x_new = rng.integers(0, 8, (500, 6))
    accuracy = (model.predict(x_new).argmax(1)[:, 1:] == x_new[:, :-1]).mean()
    assert accuracy > 0.95


def test_trace_bench_summary_and_the_gradient_check_see_every_layer():
    model = bp.TransformerEncoderLayer(E, H, F, dropout=0.0, activation="gelu", causal=True,
                                       dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 4, E))
    assert bp.check_gradients(model, x).passed
    with bp.trace(model, keep_arrays=True) as tr:
        y = model.forward(x, training=True)
        model.backward(np.ones_like(y))
    attention = model[0].block[0]
    record = next(r for r in tr if r.layer is attention)
    np.testing.assert_array_equal(record.grads[0]["W_in"], attention.grads["W_in"])
    assert "MultiheadAttention(8, 2, causal=True" in str(model.summary((4, E)))
    net = bp.Sequential([bp.Embedding(9, E, rng=0), bp.TransformerEncoderLayer(E, H, F, rng=1),
                         bp.Flatten(), bp.Dense(5 * E, 3, rng=2)])
    result = bp.bench(net, (5,), batch_size=4, steps=1, repeats=1, warmup=0, breakdown=False)
    assert result.gemm_time > 0 and result.step_times


def test_a_padding_mask_goes_through_the_sequential_and_other_masks_are_refused():
    """PyTorch's src_key_padding_mask (True at padding) and forward's mask= (Keras', True at
    real steps) reach the attention as key_padding_mask; block(x, src_mask), block(x,
    mask=...) (PyTorch's attention mask) and unknown keywords are TypeErrors that say where
    masks go."""
    model = bp.TransformerEncoderLayer(E, H, F, rng=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, E))
    pad = np.array([[False, False, True], [False, False, False]])
    want = model(x, src_key_padding_mask=pad)
    np.testing.assert_array_equal(model.forward(x, mask=~pad), want)
    assert not np.allclose(want[0], model(x)[0])  # the padded key changed row 0
    np.testing.assert_allclose(want[0, :2], model(x[:1, :2])[0], rtol=1e-12, atol=1e-12)
    hint = r"a causal mask is built in .*causal=True.*src_key_padding_mask="
    with pytest.raises(TypeError, match=r"^Sequential: expected one input x \(and "
                                        r"src_key_padding_mask= or lengths=\), got the "
                                        r"keyword argument "
                                        r"'src_mask'; .*" + hint):
        model(x, src_mask=np.zeros((3, 3), bool))
    with pytest.raises(TypeError, match=r"^Sequential: expected one input x .*got 2 inputs"):
        model(x, np.zeros((3, 3), bool))
    causal = np.triu(np.ones((3, 3), bool), 1)  # PyTorch's encoder(x, mask=causal)
    with pytest.raises(TypeError, match=r"got the keyword argument 'mask' \(PyTorch's "
                                        r"attention mask .*model.forward\(x, mask=m\)\)"):
        model(x, mask=causal)
    with pytest.raises(ValueError, match=r"src_key_padding_mask of shape \(N, T\) = \(2, 3\)"):
        model(x, src_key_padding_mask=pad[:, :2])
    with pytest.raises(TypeError, match="booleans"):
        model(x, src_key_padding_mask=np.where(pad, -np.inf, 0.0))  # PyTorch's float mask


def test_encoder_copies_do_not_replay_a_shared_generators_draws():
    """Copy 0 of the stack had the original Generator's state: a Dropout sharing that
    Generator drew the same mask as the first block's attention."""
    g = np.random.default_rng(0)
    drop = bp.Dropout(0.5, rng=g, dtype=np.float64)
    enc = bp.TransformerEncoder(bp.TransformerEncoderLayer(8, 2, 16, dropout=0.5, rng=g,
                                                           dtype=np.float64), 2)
    assert all(sub.rng is not g and sub.rng.bit_generator.state != g.bit_generator.state
               for block in enc for _, sub in block.named_layers()
               if isinstance(getattr(sub, "rng", None), np.random.Generator))
    drop.forward(np.ones((1, 2, 8)), training=True)
    mask = drop.cache["mask"]
    enc.forward(np.ones((1, 2, 8)), training=True)
    attention = enc[0][0].block[0]
    assert not np.array_equal(attention.cache["mask"].reshape(-1)[:mask.size] != 0,
                              mask.reshape(-1) != 0)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"nhead": 3}, ValueError, r"d_model divisible by nhead.*d_model=8 and nhead=3"),
    ({"nhead": 0}, ValueError, r"nhead"),
    ({"dim_feedforward": 0}, ValueError, r"dim_feedforward"),
    ({"activation": "tanh"}, ValueError, r"activation 'relu' or 'gelu'.*'tanh'"),
    ({"activation": np.tanh}, TypeError, r"activation 'relu', 'gelu' or a backprop Layer"),
    ({"dropout": 1.0}, ValueError, r"dropout in \[0.0, 1.0\)"),
    ({"dropout": -0.1}, ValueError, r"dropout in \[0.0, 1.0\)"),
    ({"layer_norm_eps": -1e-5}, ValueError, r"layer_norm_eps in \[0.0, inf\)"),
    ({"batch_first": False}, ValueError, r"batch_first=True.*x\.transpose\(1, 0, 2\)"),
    ({"norm_first": "yes"}, TypeError, r"norm_first to be True or False"),
    ({"dtype": np.int32}, TypeError, r"float"),
])
def test_constructor_errors_name_the_layer_and_what_was_expected(kwargs, error, message):
    args = {"d_model": E, "nhead": H, **kwargs}
    with pytest.raises(error, match=rf"TransformerEncoderLayer: expected.*{message}"):
        bp.TransformerEncoderLayer(**args)


def test_encoder_errors_name_it():
    layer = bp.TransformerEncoderLayer(E, H, F, rng=0)
    with pytest.raises(ValueError, match="TransformerEncoder: expected num_layers"):
        bp.TransformerEncoder(layer, 0)
    with pytest.raises(TypeError, match="TransformerEncoder: expected encoder_layer"):
        bp.TransformerEncoder("layer", 2)
    with pytest.raises(TypeError, match="TransformerEncoder: expected norm"):
        bp.TransformerEncoder(layer, 2, norm=np.ones(E))


def test_pytorch_names_without_a_twin_point_at_ours():
    for name, ours in [("TransformerDecoderLayer", "TransformerEncoderLayer"),
                       ("Transformer", "TransformerEncoder"),
                       ("TransformerDecoder", "TransformerEncoder")]:
        with pytest.raises(AttributeError, match=rf"backprop calls it {ours}\b.*cross-attention"):
            getattr(bp, name)
