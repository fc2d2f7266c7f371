"""LSTM, GRU and RNN: PyTorch's values and gradients, training steps and weights, learning,
errors, saving and the tools (trace, bench, formulas). The gradient checks and the
Layer contract run on them from tests/table.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

import backprop as bp

KINDS = {  # name -> (backprop layer maker, torch module name, torch keyword arguments)
    "LSTM": (bp.LSTM, "LSTM", {}),
    "GRU": (bp.GRU, "GRU", {}),
    "RNN-tanh": (bp.RNN, "RNN", {}),
    "RNN-relu": (lambda *a, **k: bp.RNN(*a, nonlinearity="relu", **k), "RNN",
                 {"nonlinearity": "relu"}),
}
SIZES = [(3, 5, 4, 6), (2, 1, 3, 1), (1, 7, 2, 3), (4, 3, 5, 1)]  # (N, T, D, H)
TORCH_NAMES = {"W": "weight_ih_l0", "U": "weight_hh_l0", "b": "bias_ih_l0", "b_h": "bias_hh_l0"}


def _twin(torch, kind, layer):
    """The PyTorch module of ``layer``, with its weights copied in."""
    _, name, kwargs = KINDS[kind]
    module = getattr(torch.nn, name)(layer.input_size, layer.hidden_size, bias=layer.bias,
                                     batch_first=True, **kwargs)
    module.to(torch.float64 if layer.dtype == np.float64 else torch.float32)  # before the copy
    module.load_state_dict({TORCH_NAMES[k]: torch.tensor(v.T if v.ndim == 2 else v)
                            for k, v in layer.params.items()})
    return module


def _torch_run(torch, module, x, dy, sequences):
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt)[0]
    y = out if sequences else out[:, -1]
    y.backward(torch.tensor(dy))
    grads = {k: getattr(module, TORCH_NAMES[k]).grad.numpy() for k in TORCH_NAMES
             if hasattr(module, TORCH_NAMES[k]) and getattr(module, TORCH_NAMES[k]) is not None}
    return y.detach().numpy(), xt.grad.numpy(), grads


def _max_errors(torch, kind, layer, x, sequences):
    """Largest differences from PyTorch: output, dx, and each parameter's gradient."""
    module = _twin(torch, kind, layer)
    dy = np.random.default_rng(7).standard_normal(
        (*x.shape[:2], layer.hidden_size) if sequences else (x.shape[0], layer.hidden_size)
    ).astype(x.dtype)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    ty, tdx, tgrads = _torch_run(torch, module, x, dy, sequences)
    assert y.dtype == dx.dtype == x.dtype
    errors = {"y": np.abs(y - ty).max(), "dx": np.abs(dx - tdx).max()}
    assert set(layer.grads) == set(tgrads)
    for k, g in layer.grads.items():
        want = tgrads[k]
        errors[k] = np.abs(g - (want.T if g.ndim == 2 else want)).max()
    return errors


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "N{}-T{}-D{}-H{}".format(*s))
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_outputs_and_every_gradient_match_torch_in_float64(kind, size, sequences, bias):
    torch = pytest.importorskip("torch")
    n, steps, d, h = size
    layer = KINDS[kind][0](d, h, bias=bias, return_sequences=sequences, dtype=np.float64,
                           rng=3)
    x = np.random.default_rng(1).standard_normal((n, steps, d))
    errors = _max_errors(torch, kind, layer, x, sequences)
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_and_gradients_match_torch_in_float32(kind):
    torch = pytest.importorskip("torch")
    layer = KINDS[kind][0](6, 8, dtype=np.float32, rng=4)
    x = np.random.default_rng(2).standard_normal((5, 9, 6)).astype(np.float32)
    errors = _max_errors(torch, kind, layer, x, True)
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_one_unit_matches_torch_whatever_the_gate_strides(kind, dtype, steps):
    """H = 1 puts each gate in a column of stride 4 (LSTM: 16 bytes in float32, 32 in
    float64) or 3; NumPy 2.4's in-place ``negative`` wrote wrong values into views of
    stride 16 / 64 bytes, which gave wrong LSTM outputs at (float32, T = 1) and
    (float64, T = 2) before the sigmoid negated by a multiply."""
    torch = pytest.importorskip("torch")
    layer = KINDS[kind][0](4, 1, dtype=dtype, rng=78)
    x = np.random.default_rng(1).standard_normal((3, steps, 4)).astype(dtype)
    errors = _max_errors(torch, kind, layer, x, True)
    assert max(errors.values()) < (1e-5 if dtype == np.float32 else 1e-10), errors


def test_negate_is_right_on_views_of_every_stride():
    from backprop.backend import negate

    for dtype in (np.float32, np.float64):
        for stride in range(1, 18):
            base = np.arange(1, 3 * stride + 1, dtype=dtype)
            view, want = base[::stride], -base[::stride]
            negate(view, out=view)
            np.testing.assert_array_equal(view, want)
            out = np.zeros(3 * stride, dtype)[::stride]
            negate(want, out=out)
            np.testing.assert_array_equal(out, -want)
    r = negate(np.array([0.0, -0.0, np.nan], np.float32), out=np.empty(3, np.float32))
    assert np.signbit(r[:2]).tolist() == [True, False] and np.isnan(r[2])


@pytest.mark.parametrize("kind", KINDS)
def test_sgd_steps_give_torchs_weights(kind):
    """Five SGD steps (momentum, weight decay on both biases) of recurrent layer -> Dense
    with a cross-entropy: the same weights as torch.optim.SGD on the PyTorch twin."""
    torch = pytest.importorskip("torch")
    f64 = np.float64
    rnn = KINDS[kind][0](3, 5, return_sequences=False, dtype=f64, rng=5)
    model = bp.Sequential([rnn, bp.Dense(5, 4, dtype=f64, rng=6)])
    twin, head = _twin(torch, kind, rnn), torch.nn.Linear(5, 4).double()
    head.load_state_dict({"weight": torch.tensor(model[1].params["W"].T),
                          "bias": torch.tensor(model[1].params["b"])})
    settings = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}
    opt = bp.SGD(model.parameters(), **settings)
    topt = torch.optim.SGD([*twin.parameters(), *head.parameters()], **settings)
    loss, tloss = bp.SoftmaxCrossEntropy(dtype=f64), torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(8)
    for _ in range(5):
        x, y = rng.standard_normal((6, 4, 3)), rng.integers(0, 4, 6)
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        topt.zero_grad()
        tloss(head(twin(torch.tensor(x))[0][:, -1]), torch.tensor(y)).backward()
        topt.step()
    for k, v in rnn.params.items():
        want = getattr(twin, TORCH_NAMES[k]).detach().numpy()
        np.testing.assert_allclose(v, want.T if v.ndim == 2 else want, rtol=0, atol=1e-12,
                                   err_msg=k)
    np.testing.assert_allclose(model[1].params["W"], head.weight.detach().numpy().T, atol=1e-12)


def test_from_torch_loads_an_lstm_state_dict():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 6, batch_first=True))
    model = bp.Sequential([bp.Embedding(10, 4, rng=0), bp.LSTM(4, 6, rng=0)])
    model.load_state_dict(bp.from_torch(model, tmodel.state_dict()))
    x = np.random.default_rng(0).integers(0, 10, (3, 7))
    with torch.no_grad():
        want = tmodel[1](tmodel[0](torch.tensor(x)))[0].numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=1e-6)
    gru = torch.nn.GRU(4, 6, bias=False, batch_first=True).double()
    layer = bp.GRU(4, 6, bias=False, dtype=np.float64, rng=1)
    layer.load_state_dict(bp.from_torch(layer, gru.state_dict()))
    xs = np.random.default_rng(1).standard_normal((2, 5, 4))
    with torch.no_grad():
        np.testing.assert_allclose(layer.forward(xs), gru(torch.tensor(xs))[0].numpy(),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("options, keys", [({"proj_size": 2}, "weight_hr_l0"),
                                           ({"proj_size": 2, "bidirectional": True},
                                            "weight_hr_l0_reverse")])
def test_from_torch_refuses_projected_modules(options, keys):
    torch = pytest.importorskip("torch")  # (bidirectional ones: see test_bidirectional.py)
    state = torch.nn.LSTM(4, 6, batch_first=True, **options).state_dict()
    with pytest.raises(ValueError, match=rf"PyTorch module without a projection"
                                         rf" .*{keys}.*proj_size"):
        bp.from_torch(bp.LSTM(4, 6), state)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_from_torch_loads_a_module_of_several_layers_into_stacked_layers(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    twin = getattr(torch.nn, kind)(4, 6, num_layers=3, batch_first=True).double()
    head = torch.nn.Linear(6, 2).double()
    state = {**{f"0.{k}": v for k, v in twin.state_dict().items()},
             **{f"1.{k}": v for k, v in head.state_dict().items()}}
    layer = getattr(bp, kind)
    model = bp.Sequential([layer(4, 6, dtype=np.float64), layer(6, 6, dtype=np.float64),
                           layer(6, 6, dtype=np.float64), bp.Dense(6, 2, dtype=np.float64)])
    model.load_state_dict(bp.from_torch(model, state))
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    with torch.no_grad():
        want = head(twin(torch.tensor(x))[0]).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected 2 PyTorch modules with weights .*got 4: "
                                         r"\['0\[l0\]', '0\[l1\]', '0\[l2\]', '1'\].*"
                                         r"num_layers=k loads into k stacked layers"):
        bp.from_torch(bp.Sequential([layer(4, 6), bp.Dense(6, 2)]), state)


def test_from_torch_names_a_bias_difference():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"without 'bias_ih_l0'.*bias=True"):
        bp.from_torch(bp.RNN(4, 6, bias=False), torch.nn.RNN(4, 6).state_dict())


@pytest.mark.parametrize("cls", [bp.LSTM, bp.GRU])
def test_a_recurrent_classifier_learns_the_sign_of_a_sum(cls):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 12, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = bp.Sequential([cls(1, 16, return_sequences=False, rng=1), bp.Dense(16, 2, rng=2)])
    model.fit(x[:1000], y[:1000], loss=bp.SoftmaxCrossEntropy(),
              optimizer=bp.Adam(model.parameters(), lr=0.01), epochs=15, batch_size=32,
              seed=0, progress=False)
    accuracy = (model.predict(x[1000:]).argmax(axis=1) == y[1000:]).mean()
    assert accuracy >= 0.93, accuracy  # chance is 0.5; ~0.96 in 15 epochs


def test_embedding_lstm_dense_trains_on_indices():
    """Sequences of tokens: the class is whether token 1 occurs (anywhere)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, (600, 8))
    y = (x == 1).any(axis=1).astype(np.int64)
    model = bp.Sequential([bp.Embedding(6, 8, rng=0),
                           bp.LSTM(8, 12, return_sequences=False, rng=1), bp.Dense(12, 2, rng=2)])
    model.fit(x[:500], y[:500], loss=bp.SoftmaxCrossEntropy(),
              optimizer=bp.Adam(model.parameters(), lr=0.02), epochs=12, batch_size=25,
              seed=0, progress=False)
    assert (model.predict(x[500:]).argmax(axis=1) == y[500:]).mean() >= 0.95


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("make, name, out", [
    (lambda: bp.LSTM(8, 16), "LSTM(8, 16)", 16), (lambda: bp.GRU(8, 16), "GRU(8, 16)", 16),
    (lambda: bp.RNN(8, 16), "RNN(8, 16)", 16),
    (lambda: bp.MultiheadAttention(8, 2), "MultiheadAttention(8, 2)", 8)])
def test_sequence_input_errors_name_the_layer_and_what_was_expected(make, name, out):
    """The recurrent and attention layers share Layer._check_sequence and _check_dy."""
    layer = make()
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: expected input of shape "
                                         r"\(N, T, 8\), got \(4, 8\) \(one sample\? add the "
                                         r"batch axis: x\[None\]\)$"):
        layer.forward(np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, T, 8\), got \(4, 3, 7\)"):
        layer.forward(np.zeros((4, 3, 7), np.float32))
    with pytest.raises(ValueError, match=r"at least one time step, got \(4, 0, 8\)"):
        layer.forward(np.zeros((4, 0, 8), np.float32))
    with pytest.raises(TypeError, match=r"expected input of dtype float32, got float64"):
        layer.forward(np.zeros((4, 3, 8)))
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a preceding training forward"):
        layer.backward(np.zeros((4, 3, out), np.float32))
    layer.forward(np.zeros((4, 3, 8), np.float32), training=True)
    with pytest.raises(ValueError, match=rf"expected dy of shape \(4, 3, {out}\), got "
                                         rf"\(4, {out}\)"):
        layer.backward(np.zeros((4, out), np.float32))
    assert layer.backward(np.zeros((4, 3, out), np.float32)).shape == (4, 3, 8)


@pytest.mark.parametrize("cls", [bp.LSTM, bp.GRU, bp.RNN])
def test_last_step_output_refuses_a_sequence_dy(cls):
    last = cls(8, 16, return_sequences=False)
    last.forward(np.zeros((4, 3, 8), np.float32), training=True)
    with pytest.raises(ValueError, match=r"expected dy of shape \(4, 16\), got \(4, 3, 16\)"):
        last.backward(np.zeros((4, 3, 16), np.float32))


@pytest.mark.parametrize("options, message", [
    ({"batch_first": False}, r"expected batch_first=True .* x\.transpose\(1, 0, 2\)"),
    ({"num_layers": 2}, r"expected num_layers=1, got 2; stack layers instead: "
                        r"Sequential\(\[GRU\(D, H\), GRU\(H, H\)\]\)"),
    ({"bidirectional": True}, r"expected bidirectional=False .* Bidirectional\(GRU\(D, H\)\)"),
    ({"dropout": 0.3}, r"expected dropout=0, got 0\.3; .*Sequential\(\[GRU\(D, H\), "
                       r"Dropout\(0\.3\), GRU\(H, H\)\]\)"),
    ({"proj_size": 2}, r"expected proj_size=0 .* Dense\(H, 2\)"),
])
def test_pytorch_options_beyond_one_batch_first_layer_are_refused_with_what_to_do(options,
                                                                                   message):
    with pytest.raises(ValueError, match=rf"^GRU: {message}"):
        bp.GRU(4, 5, **options)
    bp.GRU(4, 5, batch_first=True, num_layers=1, bidirectional=False, dropout=0.0,
           proj_size=0)  # PyTorch's values for one batch-first layer are fine


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match=r"^RNN: expected nonlinearity 'tanh' or 'relu', got "
                                         r"'sigmoid'$"):
        bp.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"LSTM: expected hidden_size"):
        bp.LSTM(3, 0)
    with pytest.raises(TypeError, match=r"LSTM: expected return_sequences to be True or False"):
        bp.LSTM(3, 4, return_sequences="no")
    with pytest.raises(TypeError):  # PyTorch's third positional argument is num_layers
        bp.LSTM(3, 4, 2)


@pytest.mark.parametrize("keyword, hint", [
    ("units", r"LSTM\(input_size, hidden_size\) takes both sizes"),
    ("return_state", r"layer.state holds the final state"),
    ("go_backwards", r"x\[:, ::-1\]"),
    ("use_bias", r"backprop calls it bias"),
])
def test_keras_keywords_name_backprops_way(keyword, hint):
    with pytest.raises(TypeError, match=rf"LSTM\(\) got an unexpected keyword argument "
                                        rf"'{keyword}'; .*{hint}"):
        bp.LSTM(3, 4, **{keyword: 1})
    with pytest.raises(AttributeError, match=r"backprop calls it RNN"):
        bp.SimpleRNN  # noqa: B018


# -- contract details ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [bp.LSTM, bp.GRU, bp.RNN])
def test_float32_in_float32_out_and_inference_keeps_no_cache(cls):
    layer = cls(3, 4, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (2, 5, 4) and not layer.has_cache
    assert all(p.dtype == np.float32 for p in layer.params.values())
    layer.forward(x, training=True)
    assert layer.has_cache
    dx = layer.backward(np.ones((2, 5, 4), np.float32))
    assert dx.dtype == np.float32 and not layer.has_cache


@pytest.mark.parametrize("cls", [bp.LSTM, bp.GRU, bp.RNN])
def test_last_step_output_is_the_last_row_of_the_sequence_output(cls):
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    every = cls(2, 5, dtype=np.float64, rng=1).forward(x)
    last = cls(2, 5, return_sequences=False, dtype=np.float64, rng=1).forward(x)
    np.testing.assert_array_equal(last, every[:, -1])


@pytest.mark.parametrize("make, d, h", [
    (bp.LSTM, 2, 5), (bp.GRU, 2, 5), (bp.RNN, 2, 5),
    (lambda d, h, **kw: bp.MultiheadAttention(d, 3, **kw), 6, 6)])
def test_backward_params_gives_the_gradients_of_backward(make, d, h):
    """The first layer's backward (no dx) fills the same gradients (recurrent, attention)."""
    x = np.random.default_rng(0).standard_normal((3, 4, d))
    dy = np.random.default_rng(1).standard_normal((3, 4, h))
    a, b = make(d, h, dtype=np.float64, rng=1), make(d, h, dtype=np.float64, rng=1)
    a.forward(x, training=True)
    a.backward(dy)
    b.forward(x, training=True)
    assert b.backward_params(dy) is None and not b.has_cache
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def test_a_strided_input_gives_the_values_of_its_contiguous_copy():
    layer = bp.LSTM(3, 4, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 6, 3))[:, ::-2]  # reversed, every other
    dy = np.random.default_rng(1).standard_normal((2, 3, 4))
    y1, dx1 = layer.forward(x, training=True), layer.backward(dy)
    g1 = {k: g.copy() for k, g in layer.grads.items()}
    y2, dx2 = layer.forward(x.copy(), training=True), layer.backward(dy)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(dx1, dx2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], layer.grads[k])


@pytest.mark.parametrize("cls", [bp.LSTM, bp.GRU, bp.RNN])
def test_huge_inputs_saturate_without_warnings_or_nans(cls):
    layer = cls(2, 3, rng=0)  # filterwarnings=error: an overflow in exp would fail here
    x = np.array([[[1e4, -1e4], [-3e4, 2e4]]], np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in layer.grads.values())


def test_initial_weights_are_torchs_uniform_bound_and_seeded():
    layer = bp.LSTM(7, 25, rng=0)
    assert {k: v.shape for k, v in layer.params.items()} == {
        "W": (7, 100), "U": (25, 100), "b": (100,), "b_h": (100,)}
    for v in layer.params.values():
        assert np.abs(v).max() <= 1 / 5 and np.abs(v).max() > 0.19  # U(±1/sqrt(H)), H = 25
    np.testing.assert_array_equal(bp.LSTM(7, 25, rng=0).params["U"], layer.params["U"])
    assert not np.array_equal(bp.LSTM(7, 25, rng=1).params["U"], layer.params["U"])
    assert set(bp.GRU(3, 4, bias=False).params) == {"W", "U"}
    assert bp.GRU(3, 4).params["W"].shape == (3, 12) and bp.RNN(3, 4).params["U"].shape == (4, 4)


# -- saving and the tools ------------------------------------------------------------------
def _text_model(dtype=np.float32):
    return bp.Sequential([bp.Embedding(9, 4, dtype=dtype, rng=0),
                          bp.LSTM(4, 5, dtype=dtype, rng=1), bp.GRU(5, 5, bias=False, dtype=dtype,
                                                                    rng=2),
                          bp.RNN(5, 3, nonlinearity="relu", return_sequences=False, dtype=dtype,
                                 rng=3),
                          bp.Dense(3, 2, dtype=dtype, rng=4)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_and_load_round_trip(tmp_path, dtype):
    model = _text_model(dtype)
    x = np.random.default_rng(0).integers(0, 9, (4, 6))
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    assert "RNN(5, 3, nonlinearity='relu', return_sequences=False" in repr(loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for k, v in model.params.items():
        np.testing.assert_array_equal(loaded.params[k], v)


def test_trace_records_a_model_with_recurrent_layers():
    model = _text_model(np.float64)
    x, y = np.random.default_rng(0).integers(0, 9, (4, 6)), np.array([0, 1, 1, 0])
    loss = bp.SoftmaxCrossEntropy(dtype=np.float64)
    with bp.trace(model, keep_arrays=True) as tr:
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
    assert tr[1].y[0].shape == (4, 6, 5) and tr[3].y[0].shape == (4, 3)
    np.testing.assert_array_equal(tr[1].grads[0]["U"], model[1].grads["U"])
    assert tr[2].backward[0].dy_norm > 0


def test_gemm_shapes_and_bench_of_a_model_with_an_lstm():
    model = bp.Sequential([bp.LSTM(6, 8, return_sequences=False, rng=0), bp.Dense(8, 3, rng=1)])
    shapes = model[0].gemm_shapes((4, 5, 6))
    # x @ W once, h @ U and dG @ U.T per step after the first, dW, dU over the steps
    # after the first (h_{-1} = 0: tests/test_review_s37_bench.py), dx
    assert shapes == ([(20, 6, 32)] + [(4, 8, 32)] * 4 + [(4, 32, 8)] * 4
                      + [(6, 20, 32), (8, 16, 32), (20, 32, 6)])
    assert model[0].gemm_shapes((4, 5, 6), input_grad=False) == shapes[:-1]
    result = bp.bench(model, (5, 6), batch_size=4, steps=1, repeats=1, warmup=0,
                      breakdown=False)
    assert result.gemm_time > 0 and result.step_times


def test_formulas_show_the_forward_and_backward_math():
    for cls in (bp.LSTM, bp.GRU, bp.RNN):
        text = bp.formulas(cls)
        assert text.startswith("Forward:") and "Backward:" in text and "dU = Hprev.T @ dG" in text
    assert "c_t = f ⊙ c_{t-1} + i ⊙ g" in bp.formulas(bp.LSTM)
    assert "n = tanh(ax_n + r ⊙ ah_n)" in bp.formulas("GRU")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN-tanh"])
def test_cache_shows_every_step_batch_first(kind):
    """The loops keep their arrays time-major; ``layer.cache`` shows them as the layer's
    input and output are laid out, ``(N, T, ...)``: x itself, h equal to the output."""
    n, steps, d, h = 3, 4, 2, 5
    layer = KINDS[kind][0](d, h, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((n, steps, d))
    y = layer.forward(x, training=True)
    cache = layer.cache
    np.testing.assert_array_equal(cache["x"], x)
    np.testing.assert_array_equal(cache["y"], y)
    if "gates" in cache:
        assert cache["gates"].shape == (n, steps, layer.gates * h)
    if kind == "LSTM":  # h_t = o ⊙ tanh(c_t), read from the cache alone
        np.testing.assert_allclose(cache["gates"][..., 3 * h:] * np.tanh(cache["c"]), y,
                                   rtol=1e-14)
    layer.backward(np.ones_like(y))
    assert not layer.has_cache and all(v is None for v in layer.cache.values())
