"""MultiheadAttention: PyTorch's values and gradients, weights both ways, training steps,
attention dropout, learning, errors, saving and the tools (trace, bench, formulas). The
gradient checks and the Layer contract run on it from tests/table.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp

SIZES = [(3, 5, 8, 2), (2, 1, 6, 3), (1, 7, 4, 1), (4, 3, 12, 4)]  # (N, T, E, heads)
TORCH_NAMES = {"W_in": "in_proj_weight", "b_in": "in_proj_bias", "W_out": "out_proj.weight",
               "b_out": "out_proj.bias"}


def _layer(e, heads, dtype=np.float64, *, bias=True, seed=3, **kwargs):
    """A layer with biases away from their zero initial values (so that their use shows)."""
    layer = bp.MultiheadAttention(e, heads, bias=bias, dtype=dtype, rng=seed, **kwargs)
    rng = np.random.default_rng(seed + 100)
    for k in ("b_in", "b_out"):
        if k in layer.params:
            layer.params[k][...] = rng.standard_normal(layer.params[k].shape) * 0.5
    return layer


def _twin(torch, layer):
    """The PyTorch module of ``layer``, with its weights copied in (ours -> torch)."""
    module = torch.nn.MultiheadAttention(layer.embed_dim, layer.num_heads, bias=layer.bias,
                                         batch_first=True)
    module.to(torch.float64 if layer.dtype == np.float64 else torch.float32)
    module.load_state_dict({TORCH_NAMES[k]: torch.tensor(v.T if v.ndim == 2 else v)
                            for k, v in layer.params.items()})
    return module


def _torch_attend(torch, module, xt, causal):
    """``mha(x, x, x)``: causal with PyTorch's causal attn_mask and the is_causal hint."""
    t = xt.shape[1]
    mask = (torch.nn.Transformer.generate_square_subsequent_mask(t, dtype=xt.dtype)
            if causal else None)
    return module(xt, xt, xt, need_weights=False, attn_mask=mask, is_causal=causal)[0]


def _max_errors(torch, layer, module, x):
    """Largest differences from PyTorch: output, dx, and each parameter's gradient."""
    dy = np.random.default_rng(7).standard_normal(x.shape).astype(x.dtype)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    _torch_attend(torch, module, xt, layer.causal).backward(torch.tensor(dy))
    assert y.dtype == dx.dtype == x.dtype
    with torch.no_grad():
        ty = _torch_attend(torch, module, torch.tensor(x), layer.causal).numpy()
    errors = {"y": np.abs(y - ty).max(), "dx": np.abs(dx - xt.grad.numpy()).max()}
    grads = dict(module.named_parameters())
    assert {TORCH_NAMES[k] for k in layer.grads} == set(grads)
    for k, g in layer.grads.items():
        want = grads[TORCH_NAMES[k]].grad.numpy()
        errors[k] = np.abs(g - (want.T if g.ndim == 2 else want)).max()
    return errors


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "N{}-T{}-E{}-H{}".format(*s))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_outputs_and_every_gradient_match_torch_in_float64(size, causal, bias):
    torch = pytest.importorskip("torch")
    n, t, e, heads = size
    layer = _layer(e, heads, bias=bias, causal=causal)
    x = np.random.default_rng(1).standard_normal((n, t, e))
    errors = _max_errors(torch, layer, _twin(torch, layer), x)
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("causal", [False, True])
def test_weights_from_torch_give_torchs_outputs_and_gradients(causal):
    """torch -> ours through from_torch, the module's own random weights and biases."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(8, 4, batch_first=True).double()
    with torch.no_grad():
        module.in_proj_bias.normal_()
        module.out_proj.bias.normal_()
    layer = bp.MultiheadAttention(8, 4, causal=causal, dtype=np.float64, rng=0)
    layer.load_state_dict(bp.from_torch(layer, module.state_dict()))
    x = np.random.default_rng(2).standard_normal((3, 6, 8))
    errors = _max_errors(torch, layer, module, x)
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("causal", [False, True])
def test_outputs_and_gradients_match_torch_in_float32(causal):
    torch = pytest.importorskip("torch")
    layer = _layer(16, 4, np.float32, causal=causal, seed=4)
    x = np.random.default_rng(2).standard_normal((5, 9, 16)).astype(np.float32)
    errors = _max_errors(torch, layer, _twin(torch, layer), x)
    assert max(errors.values()) < 1e-5, errors


def test_initial_weights_are_drawn_as_torchs():
    e = 64
    layer = bp.MultiheadAttention(e, 4, rng=0)
    w_in, w_out = layer.params["W_in"], layer.params["W_out"]
    # in_proj_weight (3E, E): xavier_uniform as one matrix, U(±sqrt(6 / (E + 3E)))
    bound = math.sqrt(6.0 / (4 * e))
    assert np.abs(w_in).max() <= bound and np.abs(w_in).max() > 0.99 * bound
    assert abs(w_in.std() - bound / math.sqrt(3.0)) < 0.02 * bound
    # out_proj: nn.Linear's default U(±1/sqrt(E)), then its bias zeroed
    assert np.abs(w_out).max() <= 1 / math.sqrt(e) and np.abs(w_out).max() > 0.99 / math.sqrt(e)
    assert not layer.params["b_in"].any() and not layer.params["b_out"].any()
    again = bp.MultiheadAttention(e, 4, rng=0)
    np.testing.assert_array_equal(again.params["W_in"], w_in)


def test_from_torch_loads_a_model_with_attention_inside():
    """A module holding nn.MultiheadAttention(batch_first=True) among others: its in_proj_*
    (prefix "1") and out_proj.* (prefix "1.out_proj") entries load into one layer."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    emb, mha = torch.nn.Embedding(10, 8).double(), torch.nn.MultiheadAttention(
        8, 2, batch_first=True).double()
    head = torch.nn.Linear(8, 3).double()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
    state = {f"{i}.{k}": v for i, m in enumerate([emb, mha, head])
             for k, v in m.state_dict().items()}
    assert "1.out_proj.weight" in state
    model = bp.Sequential([bp.Embedding(10, 8, dtype=np.float64),
                           bp.MultiheadAttention(8, 2, dtype=np.float64),
                           bp.Dense(8, 3, dtype=np.float64)])
    model.load_state_dict(bp.from_torch(model, state))
    x = np.random.default_rng(0).integers(0, 10, (3, 5))
    with torch.no_grad():
        e = emb(torch.tensor(x))
        want = head(mha(e, e, e, need_weights=False)[0]).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=1e-12)
    plain = torch.nn.MultiheadAttention(8, 2, bias=False)  # top level, no biases
    layer = bp.MultiheadAttention(8, 2, bias=False)
    layer.load_state_dict(bp.from_torch(layer, plain.state_dict()))
    np.testing.assert_array_equal(layer.params["W_out"], plain.out_proj.weight.detach().numpy().T)


@pytest.mark.parametrize("options, keys", [({"kdim": 4, "vdim": 4}, "q_proj_weight"),
                                           ({"add_bias_kv": True}, "bias_k")])
def test_from_torch_refuses_other_keys_and_values(options, keys):
    torch = pytest.importorskip("torch")
    state = torch.nn.MultiheadAttention(8, 2, batch_first=True, **options).state_dict()
    with pytest.raises(ValueError, match=rf"self-attention module .*{keys}.*\(kdim/vdim or "
                                         r"add_bias_kv\)"):
        bp.from_torch(bp.MultiheadAttention(8, 2), state)


def test_from_torch_names_a_bias_difference():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"without 'in_proj_bias'.*bias=True"):
        bp.from_torch(bp.MultiheadAttention(8, 2, bias=False),
                      torch.nn.MultiheadAttention(8, 2).state_dict())


@pytest.mark.parametrize("opt_name, settings", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.001})])
def test_training_steps_give_torchs_weights(opt_name, settings):
    """Five steps of Embedding -> attention -> Flatten -> Dense with a cross-entropy: the
    same weights as torch.optim on the PyTorch twin."""
    torch = pytest.importorskip("torch")
    f64, t = np.float64, 4
    model = bp.Sequential([bp.Embedding(7, 6, dtype=f64, rng=0),
                           bp.MultiheadAttention(6, 2, causal=True, dtype=f64, rng=1),
                           bp.Flatten(dtype=f64), bp.Dense(t * 6, 3, dtype=f64, rng=2)])
    emb, mha = torch.nn.Embedding(7, 6).double(), _twin(torch, model[1])
    head = torch.nn.Linear(t * 6, 3).double()
    emb.load_state_dict({"weight": torch.tensor(model[0].params["W"])})
    head.load_state_dict({"weight": torch.tensor(model[3].params["W"].T),
                          "bias": torch.tensor(model[3].params["b"])})
    opt = getattr(bp, opt_name)(model.parameters(), **settings)
    modules = [emb, mha, head]
    topt = getattr(torch.optim, opt_name)([p for m in modules for p in m.parameters()],
                                          **settings)
    loss, tloss = bp.SoftmaxCrossEntropy(dtype=f64), torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(8)
    for _ in range(5):
        x, y = rng.integers(0, 7, (5, t)), rng.integers(0, 3, 5)
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        topt.zero_grad()
        e = emb(torch.tensor(x))
        tloss(head(_torch_attend(torch, mha, e, True).flatten(1)), torch.tensor(y)).backward()
        topt.step()
    for k, v in model[1].params.items():
        want = mha.state_dict()[TORCH_NAMES[k]].numpy()
        if k == "b_in":  # the key bias: its gradient is 0 up to rounding (see below), which
            v, want = np.delete(v, _KEYS), np.delete(want, _KEYS)  # Adam scales up to ±lr
        np.testing.assert_allclose(v, want.T if v.ndim == 2 else want, rtol=0, atol=1e-10,
                                   err_msg=k)
    np.testing.assert_allclose(model[0].params["W"], emb.weight.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(model[3].params["W"], head.weight.detach().numpy().T, atol=1e-10)


_KEYS = slice(6, 12)  # the key bias's entries of b_in at E = 6


def test_the_key_bias_gets_no_gradient():
    """``b_k`` adds ``q · b_k`` to every score of a row, which the softmax ignores: its
    gradient is 0 but for rounding (so Adam's trajectories of it are rounding noise)."""
    layer = _layer(6, 2, causal=True)
    x = np.random.default_rng(0).standard_normal((3, 5, 6))
    layer.forward(x, training=True)
    layer.backward(np.random.default_rng(1).standard_normal(x.shape))
    assert np.abs(layer.grads["b_in"][_KEYS]).max() < 1e-14
    assert np.abs(layer.grads["b_in"][:6]).min() > 1e-6 < np.abs(layer.grads["b_in"][12:]).min()


# -- attention dropout ------------------------------------------------------------------------
def _torch_reference(torch, layer, x, dy, mask):
    """The forward of the docstring written out in PyTorch with the layer's cached mask, and
    its autograd gradients: the oracle for the dropout path."""
    n, t, e = x.shape
    h, d = layer.num_heads, e // layer.num_heads
    params = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    qkv = xt @ params["W_in"] + params["b_in"]
    q, k, v = qkv.reshape(n, t, 3, h, d).permute(2, 0, 3, 1, 4)
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    if layer.causal:
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    o = (torch.softmax(s, -1) * torch.tensor(mask)) @ v
    y = o.transpose(1, 2).reshape(n, t, e) @ params["W_out"] + params["b_out"]
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy(), {k: p.grad.numpy() for k, p in params.items()}


@pytest.mark.parametrize("causal", [False, True])
def test_dropout_drops_attention_weights_with_the_cached_mask(causal):
    torch = pytest.importorskip("torch")
    layer = _layer(8, 2, dropout=0.4, causal=causal, seed=5)
    x = np.random.default_rng(3).standard_normal((4, 6, 8))
    dy = np.random.default_rng(4).standard_normal(x.shape)
    y = layer.forward(x, training=True)
    mask = layer.cache["mask"].copy()
    assert mask.shape == (4, 2, 6, 6)
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6} and 0.3 < (mask == 0).mean() < 0.5
    np.testing.assert_array_equal(layer.cache["dropped"], layer.cache["p"] * mask)
    dx = layer.backward(dy)
    want_y, want_dx, want_grads = _torch_reference(torch, layer, x, dy, mask)
    np.testing.assert_allclose(y, want_y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, want_dx, rtol=0, atol=1e-12)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, want_grads[k], rtol=0, atol=1e-12, err_msg=k)


def test_dropout_is_the_identity_in_inference_and_repeats_by_seed():
    x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
    plain, dropping = bp.MultiheadAttention(8, 2, rng=9), bp.MultiheadAttention(8, 2, dropout=0.5,
                                                                                rng=9)
    np.testing.assert_array_equal(dropping.forward(x), plain.forward(x))
    assert not dropping.has_cache
    first = dropping.forward(x, training=True)
    assert not np.allclose(first, plain.forward(x))
    assert not np.array_equal(dropping.forward(x, training=True), first)  # a new mask each call
    again = bp.MultiheadAttention(8, 2, dropout=0.5, rng=9)
    np.testing.assert_array_equal(again.forward(x, training=True), first)
    assert set(np.unique(again.cache["mask"]).tolist()) == {0.0, 2.0}


def test_no_dropout_mask_without_dropout():
    layer = bp.MultiheadAttention(4, 2, rng=0)
    layer.forward(np.ones((2, 3, 4), np.float32), training=True)
    assert layer.cache["mask"] is None and layer.cache["p"].shape == (2, 2, 3, 3)
    np.testing.assert_allclose(layer.cache["p"].sum(-1), 1.0, rtol=1e-6)


def test_causal_weights_are_zero_on_later_positions():
    layer = bp.MultiheadAttention(6, 3, causal=True, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 6)).astype(np.float32) * 30
    y = layer.forward(x, training=True)
    p = layer.cache["p"]
    assert (p[..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0).all()
    np.testing.assert_allclose(p[..., 0, 0], 1.0)
    changed = x.copy()
    changed[:, 3:] += 1.0  # later positions cannot change earlier outputs
    np.testing.assert_array_equal(layer.forward(changed)[:, :3], y[:, :3])


# -- learning -----------------------------------------------------------------------------
def _positions(n, v, t, seed):
    """Token sequences as one-hot tokens beside one-hot positions (N, T, V + T)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, v, (n, t))
    x = np.zeros((n, t, v + t), np.float32)
    x[np.arange(n)[:, None], np.arange(t), tokens] = 1.0
    x[:, np.arange(t), v + np.arange(t)] = 1.0
    return x, tokens


@pytest.mark.parametrize("task, causal, least, most", [("reverse", False, 0.97, 1.0),
                                                       ("shift", True, 0.97, 1.0),
                                                       ("reverse", True, 0.0, 0.7)])
def test_attention_learns_to_move_tokens_and_causal_hides_the_future(task, causal, least, most):
    """Each position's label is the token of another position: reversed (position t gets
    token T-1-t) or shifted (token t-1). Attention learns where to look; a causal layer
    cannot reverse, as half the positions need later tokens (~0.58: 3 of 6 right, the
    rest chance)."""
    v, t, e = 6, 6, 24
    x, tokens = _positions(1200, v, t, 0)
    y = tokens[:, ::-1].copy() if task == "reverse" else np.concatenate(
        [tokens[:, :1], tokens[:, :-1]], axis=1)
    model = bp.Sequential([bp.Dense(v + t, e, rng=0),
                           bp.MultiheadAttention(e, 2, causal=causal, rng=1),
                           bp.Dense(e, v, rng=2), bp.Permute((2, 1))])  # logits (N, V, T)
    model.fit(x[:1000], y[:1000], loss=bp.SoftmaxCrossEntropy(),
              optimizer=bp.Adam(model.parameters(), lr=0.01), epochs=10, batch_size=32,
              seed=0, progress=False)
    accuracy = (model.predict(x[1000:]).argmax(axis=1) == y[1000:]).mean()
    assert least <= accuracy <= most, accuracy


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"embed_dim": 10, "num_heads": 3}, ValueError,
     r"^MultiheadAttention: expected embed_dim divisible by num_heads .*got embed_dim=10 and "
     r"num_heads=3$"),
    ({"embed_dim": 0, "num_heads": 1}, ValueError, r"embed_dim"),
    ({"dropout": 1.0}, ValueError, r"expected dropout in \[0.0, 1.0\)"),
    ({"dropout": "0.1"}, TypeError, r"expected dropout to be a number"),
    ({"causal": "yes"}, TypeError, r"causal"),
    ({"kdim": 4}, ValueError, r"expected kdim=None .*self-attention.*got kdim=4"),
    ({"vdim": 4}, ValueError, r"expected vdim=None"),
    ({"batch_first": False}, ValueError, r"expected batch_first=True .*x\.transpose\(1, 0, 2\)"),
    ({"add_bias_kv": True}, ValueError, r"expected add_bias_kv=False"),
    ({"add_zero_attn": True}, ValueError, r"expected add_zero_attn=False"),
])
def test_constructor_refuses_what_it_does_not_take(kwargs, error, message):
    args = {"embed_dim": 8, "num_heads": 2, **kwargs}
    with pytest.raises(error, match=message):
        bp.MultiheadAttention(**args)


def test_torchs_options_at_their_self_attention_values_are_accepted():
    layer = bp.MultiheadAttention(8, 2, kdim=8, vdim=None, batch_first=True)
    assert repr(layer) == "MultiheadAttention(8, 2)"


@pytest.mark.parametrize("call, message", [
    (lambda m, x: m(x, x, x), r"expected one input x \(N, T, E\), attended to itself "
                              r"\(PyTorch's mha\(x, x, x\)\), got 3 inputs"),
    (lambda m, x: m.forward(x, x), r"got 2 inputs; separate query, key and value"),
    (lambda m, x: m(x, need_weights=False), r"'need_weights'; forward returns y only"),
    (lambda m, x: m(x, attention_mask=None), r"'attention_mask'; .*attn_mask=~attention_mask"),
    (lambda m, x: m(x, key_mask=None), r"'key_mask'; padding is PyTorch's key_padding_mask"),
    (lambda m, x: m(x, is_causal=True), r"'is_causal'; .*causal=True"),
    (lambda m, x: m(x, use_causal_mask=True), r"'use_causal_mask'; backprop calls it causal"),
    (lambda m, x: m(x, nope=1), r"^MultiheadAttention\(8, 2\): forward\(\) got an unexpected "
                                r"keyword argument 'nope'$"),
])
def test_torchs_call_arguments_say_what_is_supported(call, message):
    layer = bp.MultiheadAttention(8, 2)
    with pytest.raises(TypeError, match=message):
        call(layer, np.zeros((2, 3, 8), np.float32))


@pytest.mark.parametrize("keyword, hint", [
    ("key_dim", r"takes E; each head's size is E / H"), ("value_dim", r"E / H features"),
    ("use_causal_mask", r"backprop calls it causal"), ("output_shape", r"add a Dense"),
    ("attention_axes", r"axis 1 of x")])
def test_keras_arguments_point_at_ours(keyword, hint):
    with pytest.raises(TypeError, match=rf"^MultiheadAttention\(\) got an unexpected keyword "
                                        rf"argument '{keyword}'; .*{hint}"):
        bp.MultiheadAttention(8, 2, **{keyword: 1})
    with pytest.raises(AttributeError, match=r"backprop calls it MultiheadAttention "
                                             r"\(self-attention: Keras' MultiHeadAttention"):
        bp.MultiHeadAttention  # noqa: B018


# -- dtypes, saving, tools -----------------------------------------------------------------
def _block(dtype, e=8):
    """A pre-norm transformer block, as the docstring builds it."""
    return bp.Sequential([
        bp.Residual(bp.Sequential([bp.LayerNorm(e, dtype=dtype),
                                   bp.MultiheadAttention(e, 2, causal=True, dropout=0.1,
                                                         dtype=dtype, rng=0)])),
        bp.Residual(bp.Sequential([bp.LayerNorm(e, dtype=dtype),
                                   bp.Dense(e, 4 * e, dtype=dtype, rng=1), bp.GELU(dtype=dtype),
                                   bp.Dense(4 * e, e, dtype=dtype, rng=2)]))])


def test_float32_stays_float32_through_a_transformer_block():
    model = _block(np.float32)
    x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
    y = model.forward(x, training=True)
    dx = model.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.grads.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_and_load_round_trip(tmp_path, dtype):
    model = _block(dtype)
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(dtype)
    model.forward(x, training=True)  # a dropout mask drawn: the rng state moved on
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    assert "MultiheadAttention(8, 2, causal=True, dropout=0.1" in repr(loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # the next dropout mask too: the generator's state was saved
    np.testing.assert_array_equal(loaded.forward(x, training=True), model.forward(x, training=True))


def test_trace_records_a_model_with_attention():
    model = _block(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 6, 8))
    with bp.trace(model, keep_arrays=True) as tr:
        y = model.forward(x, training=True)
        model.backward(np.ones_like(y))
    attention = model[0].block[1]
    record = next(r for r in tr if r.layer is attention)
    assert record.y[0].shape == (4, 6, 8)
    np.testing.assert_array_equal(record.grads[0]["W_in"], attention.grads["W_in"])


def test_gemm_shapes_and_bench_of_a_model_with_attention():
    layer = bp.MultiheadAttention(8, 2, rng=0)
    shapes = layer.gemm_shapes((3, 5, 8))
    # projections over N·T = 15 rows; each (sample, head) product as one of N·H·T = 30 rows
    assert shapes == [(15, 8, 24), (30, 4, 5), (30, 5, 4), (15, 8, 8), (8, 15, 8), (15, 8, 8),
                      (30, 5, 4), (30, 4, 5), (30, 5, 4), (30, 5, 4), (8, 15, 24), (15, 24, 8)]
    assert layer.gemm_shapes((3, 5, 8), input_grad=False) == shapes[:-1]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    assert flops == 2 * (15 * 8 * 24 * 3 + 15 * 8 * 8 * 3 + 6 * 5 * 5 * 4 * 6)
    model = bp.Sequential([bp.Embedding(9, 8, rng=0), layer, bp.Flatten(), bp.Dense(40, 3)])
    result = bp.bench(model, (5,), batch_size=4, steps=1, repeats=1, warmup=0, breakdown=False)
    assert result.gemm_time > 0 and result.step_times


def test_formulas_show_the_forward_and_backward_math():
    text = bp.formulas(bp.MultiheadAttention)
    assert text.startswith("Forward:") and "Backward:" in text
    assert "S = q @ kᵀ / sqrt(d)" in text and "dS = P * (dP - rowsum(dP * P))" in text
    assert "dk = dSᵀ @ q / sqrt(d)" in bp.formulas("MultiheadAttention")


def test_keras_masks_separate_inputs_and_a_positional_training_are_told_what_to_do():
    layer = bp.MultiheadAttention(8, 2)
    x = np.zeros((2, 3, 8), np.float32)
    with pytest.raises(TypeError, match=r"MultiheadAttention\(8, 2\): .*'attention_mask'; "
                                        r"backprop takes PyTorch's attn_mask"):
        layer(x, attention_mask=None)
    for name in ("query_mask", "key_mask", "value_mask"):
        with pytest.raises(TypeError, match=rf"MultiheadAttention\(8, 2\): .*'{name}'; "
                                            r"padding is PyTorch's key_padding_mask"):
            layer(x, **{name: None})
    for name in ("query", "key", "value"):
        with pytest.raises(TypeError, match=rf"'{name}'; it attends x to itself: layer\(x\)"):
            layer(x, **{name: x})
    with pytest.raises(TypeError, match=r"MultiheadAttention\(8, 2\): expected training as a "
                                        r"keyword, forward\(x, training=True\)"):
        layer.forward(x, True)
    with pytest.raises(TypeError, match=r"MultiheadAttention\(8, 2\): forward\(\) got an "
                                        r"unexpected keyword argument 'foo'"):
        layer(x, foo=1)
    with pytest.raises(TypeError, match=r"'use_bias'; backprop calls it bias"):
        bp.MultiheadAttention(8, 2, use_bias=False)


def test_a_forward_without_dropout_drops_an_earlier_forwards_mask():
    """A training forward with dropout, no backward, then one without: backward must use
    no mask (it used the earlier forward's, with the new P)."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 4, 6))
    layer = bp.MultiheadAttention(6, 2, dropout=0.5, dtype=np.float64, rng=0)
    twin = bp.MultiheadAttention(6, 2, dtype=np.float64, rng=0)
    layer.forward(x, training=True)
    layer.dropout = 0.0
    layer.forward(x, training=True)
    twin.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(dy), twin.backward(dy))
