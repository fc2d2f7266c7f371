"""Bidirectional: parity with PyTorch's bidirectional=True, the merge modes by hand, a task
that needs the future, saving, copies, from_torch and the errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import backprop as bp

KINDS = {"LSTM": ("LSTM", {}), "GRU": ("GRU", {}), "RNN": ("RNN", {}),
         "RNN-relu": ("RNN", {"nonlinearity": "relu"})}
# backprop's name -> (PyTorch's name, transposed); the backward layer's carry "_reverse"
TORCH_NAMES = {"W": ("weight_ih_l0", True), "U": ("weight_hh_l0", True),
               "b": ("bias_ih_l0", False), "b_h": ("bias_hh_l0", False)}
TOL = {np.float64: 1e-11, np.float32: 2e-5}


def _torch_twin(torch, kind, d, h, bias, dtype):
    cls, extra = KINDS[kind]
    torch.manual_seed(0)
    module = getattr(torch.nn, cls)(d, h, bias=bias, batch_first=True, bidirectional=True,
                                    **extra)
    return module.double() if dtype == np.float64 else module.float()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (2, 1, 3, 1)], ids=["NTDH", "T1-H1"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_pytorch_bidirectional_output_dx_and_every_gradient(kind, shape, sequences,
                                                                    bias, dtype):
    torch = pytest.importorskip("torch")
    n, steps, d, h = shape
    twin = _torch_twin(torch, kind, d, h, bias, dtype)
    cls, extra = KINDS[kind]
    layer = bp.Bidirectional(getattr(bp, cls)(d, h, bias=bias, return_sequences=sequences,
                                              dtype=dtype, rng=0, **extra), rng=1)
    layer.load_state_dict(bp.from_torch(layer, twin.state_dict()))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, steps, d)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    out, h_n = twin(xt)
    h_n = h_n[0] if cls == "LSTM" else h_n
    want = out if sequences else torch.cat([h_n[-2], h_n[-1]], 1)
    y = layer.forward(x, training=True)
    assert y.shape == tuple(want.shape) and y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    (want * torch.tensor(dy)).sum().backward()
    dx = layer.backward(dy)
    tol = TOL[dtype]
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=0, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=tol)
    grads = dict(twin.named_parameters())
    for child, suffix in (("forward_layer", ""), ("backward_layer", "_reverse")):
        for ours, (theirs, transposed) in TORCH_NAMES.items():
            if not bias and ours.startswith("b"):
                assert f"{child}.{ours}" not in layer.grads
                continue
            g = grads[theirs + suffix].grad.numpy()
            np.testing.assert_allclose(layer.grads[f"{child}.{ours}"], g.T if transposed else g,
                                       rtol=0, atol=tol, err_msg=f"{child}.{ours}")


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("sequences", [True, False])
def test_merge_modes_match_a_hand_computation_from_the_two_children(mode, sequences):
    layer = bp.Bidirectional(bp.GRU(3, 4, return_sequences=sequences, dtype=np.float64, rng=0),
                             merge_mode=mode, rng=1)
    fwd, bwd = copy.deepcopy(layer.forward_layer), copy.deepcopy(layer.backward_layer)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    y_f = fwd.forward(x, training=True)
    y_b = bwd.forward(x[:, ::-1], training=True)
    if sequences:
        y_b = y_b[:, ::-1]
    want = {"concat": np.concatenate([y_f, y_b], -1), "sum": y_f + y_b, "mul": y_f * y_b,
            "ave": (y_f + y_b) / 2}[mode]
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-15)
    dy = rng.standard_normal(y.shape)
    dy_f, dy_b = {"concat": lambda: (dy[..., :4], dy[..., 4:]), "sum": lambda: (dy, dy),
                  "mul": lambda: (dy * y_b, dy * y_f), "ave": lambda: (dy / 2, dy / 2)}[mode]()
    if sequences:
        dy_b = dy_b[:, ::-1]
    want_dx = fwd.backward(dy_f) + bwd.backward(dy_b)[:, ::-1]
    np.testing.assert_allclose(layer.backward(dy), want_dx, rtol=0, atol=1e-14)
    for name, child in (("forward_layer", fwd), ("backward_layer", bwd)):
        for k, g in child.grads.items():
            np.testing.assert_allclose(layer.grads[f"{name}.{k}"], g, rtol=0, atol=1e-14)
    assert not layer.has_cache


def test_each_direction_keeps_its_final_state():
    layer = bp.Bidirectional(bp.LSTM(3, 4, rng=0), rng=1)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    y = layer(x)
    h_f, _ = layer.forward_layer.state
    h_b, _ = layer.backward_layer.state  # it ends at t = 0
    np.testing.assert_array_equal(h_f, y[:, -1, :4])
    np.testing.assert_array_equal(h_b, y[:, 0, 4:])
    last = bp.Bidirectional(bp.LSTM(3, 4, return_sequences=False, rng=0), rng=1)(x)
    np.testing.assert_allclose(last, np.concatenate([h_f, h_b], 1), rtol=0, atol=1e-6)


def _next_token_accuracy(bidirectional: bool) -> float:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (512, 5))
    y = np.roll(x, -1, axis=1)  # the next token (the last position: its own)
    y[:, -1] = x[:, -1]
    rnn = bp.LSTM(8, 8, rng=1)
    model = bp.Sequential([bp.Embedding(4, 8, rng=0),
                           bp.Bidirectional(rnn, rng=2) if bidirectional else rnn,
                           bp.Dense(16 if bidirectional else 8, 4, rng=3), bp.Permute((2, 1))])
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters(), lr=3e-2),
              epochs=6, batch_size=32, seed=0, progress=False)
    x_new = rng.integers(0, 4, (300, 5))
    return float((model.predict(x_new).argmax(1)[:, :-1] == x_new[:, 1:]).mean())


def test_bidirectional_lstm_learns_the_next_token_that_a_forward_lstm_cannot_see():
    assert _next_token_accuracy(bidirectional=False) < 0.4  # chance: 1/4
    assert _next_token_accuracy(bidirectional=True) > 0.95


def test_save_and_load_round_trip_keeps_both_children(tmp_path):
    layer = bp.Bidirectional(bp.GRU(3, 4, rng=0), merge_mode="mul",
                             backward_layer=bp.GRU(3, 4, bias=False, rng=1))
    model = bp.Sequential([layer, bp.Dense(4, 2, rng=2)])
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    assert "backward_layer=GRU(3, 4, bias=False)" in repr(loaded[0])
    assert sorted(loaded.params) == sorted(model.params)
    assert "0.backward_layer.W" in model.params and "0.backward_layer.b" not in model.params
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_deepcopy_is_an_independent_equal_layer():
    layer = bp.Bidirectional(bp.RNN(3, 4, rng=0), merge_mode="sum", rng=1)
    twin = copy.deepcopy(layer)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(twin(x), layer(x))
    assert twin.backward_layer is not layer.backward_layer
    twin.params["backward_layer.W"][...] = 0.0
    assert layer.params["backward_layer.W"].any()
    assert repr(twin) == repr(layer) == "Bidirectional(RNN(3, 4), merge_mode='sum')"


def test_the_default_backward_layer_has_its_own_weights_from_rng():
    a = bp.Bidirectional(bp.LSTM(3, 4, rng=0), rng=5)
    b = bp.Bidirectional(bp.LSTM(3, 4, rng=0), rng=5)
    np.testing.assert_array_equal(a.params["backward_layer.U"], b.params["backward_layer.U"])
    assert not np.array_equal(a.params["forward_layer.U"], a.params["backward_layer.U"])
    assert a.num_params == 2 * bp.LSTM(3, 4).num_params


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_from_torch_loads_a_bidirectional_module_into_stacked_bidirectional_layers(kind,
                                                                                   num_layers):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    twin = getattr(torch.nn, kind)(4, 5, num_layers=num_layers, batch_first=True,
                                   bidirectional=True).double()
    head = torch.nn.Linear(10, 2).double()
    state = {**{f"0.{k}": v for k, v in twin.state_dict().items()},
             **{f"1.{k}": v for k, v in head.state_dict().items()}}
    cls = getattr(bp, kind)
    model = bp.Sequential([
        *(bp.Bidirectional(cls(4 if i == 0 else 10, 5, dtype=np.float64, rng=i))
          for i in range(num_layers)),
        bp.Dense(10, 2, dtype=np.float64, rng=9)])
    model.load_state_dict(bp.from_torch(model, state))
    x = np.random.default_rng(0).standard_normal((3, 6, 4))
    with torch.no_grad():
        want = head(twin(torch.tensor(x))[0]).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=1e-12)


def test_from_torch_refuses_a_bidirectional_module_for_one_direction_layers():
    torch = pytest.importorskip("torch")
    state = torch.nn.LSTM(4, 6, batch_first=True, bidirectional=True).state_dict()
    with pytest.raises(ValueError, match=r"expected 1 PyTorch modules .* got 2: .*_reverse\]"
                                         r".*Bidirectional\(LSTM\(D, H\)\)"):
        bp.from_torch(bp.LSTM(4, 6), state)
    two = bp.Sequential([bp.LSTM(4, 6), bp.LSTM(4, 6)])  # as many layers: still refused
    with pytest.raises(ValueError, match=r"the reverse direction of a bidirectional module .* "
                                         r"Bidirectional\(LSTM\(4, 6\)\)"):
        bp.from_torch(two, state)


def test_the_recurrent_layers_point_bidirectional_true_at_the_wrapper():
    with pytest.raises(ValueError, match=r"^LSTM: expected bidirectional=False .* got True; "
                                         r".*Bidirectional\(LSTM\(D, H\)\)"):
        bp.LSTM(3, 4, bidirectional=True)


@pytest.mark.parametrize("make, error, message", [
    (lambda: bp.Bidirectional(bp.Dense(3, 4)), TypeError,
     r"^Bidirectional: expected forward_layer to be an LSTM, GRU or RNN, got Dense\(3, 4\)"),
    (lambda: bp.Bidirectional(bp.LSTM), TypeError, r"^Bidirectional: .*got the class LSTM"),
    (lambda: bp.Bidirectional(bp.LSTM(3, 4), merge_mode="avg"), ValueError,
     r"^Bidirectional: expected merge_mode in \('concat', 'sum', 'mul', 'ave'\), got 'avg'"),
    (lambda: bp.Bidirectional(bp.LSTM(3, 4), merge_mode=None), ValueError,
     r"expected merge_mode in .* got None"),
    (lambda: bp.Bidirectional(bp.LSTM(3, 4), backward_layer=bp.GRU(3, 4)), TypeError,
     r"^Bidirectional: expected a backward_layer of the forward layer's class LSTM, got "
     r"GRU\(3, 4\)"),
    (lambda: bp.Bidirectional(bp.LSTM(3, 4), backward_layer=bp.LSTM(3, 5)), ValueError,
     r"^Bidirectional: expected a backward_layer with the forward layer's hidden_size=4 "
     r"\(LSTM\(3, 4\)\), got LSTM\(3, 5\)"),
    (lambda: bp.Bidirectional(bp.LSTM(3, 4), backward_layer=bp.LSTM(2, 4)), ValueError,
     r"forward layer's input_size=3 .* got LSTM\(2, 4\)"),
    (lambda: bp.Bidirectional(bp.GRU(3, 4), backward_layer=bp.GRU(
        3, 4, return_sequences=False)), ValueError, r"forward layer's return_sequences=True"),
    (lambda: bp.Bidirectional(bp.RNN(3, 4), backward_layer=bp.RNN(3, 4, dtype=np.float64)),
     TypeError, r"backward_layer in the forward layer's float32, got .* in float64"),
    (lambda: bp.Bidirectional(bp.RNN(3, 4), dtype=np.float64), TypeError,
     r"^Bidirectional: expected a forward_layer in float64, got RNN\(3, 4\) in float32"),
    (lambda: bp.Bidirectional(bp.LSTM(3, 4, stateful=True)), ValueError,
     r"^Bidirectional: expected forward_layer with stateful=False, got .*stateful=True"),
    (lambda: bp.Bidirectional(bp.LSTM(3, 4), backward_layer=bp.LSTM(3, 4, stateful=True)),
     ValueError, r"expected backward_layer with stateful=False"),
])
def test_construction_errors_name_bidirectional_expected_and_received(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_the_forward_layer_cannot_be_its_own_backward_layer():
    lstm = bp.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"backward_layer other than the forward layer"):
        bp.Bidirectional(lstm, backward_layer=lstm)


def test_input_errors_come_from_the_children_and_leave_no_cache():
    layer = bp.Bidirectional(bp.LSTM(3, 4), rng=0)
    with pytest.raises(ValueError, match=r"LSTM\(3, 4\): expected input of shape \(N, T, 3\), "
                                         r"got \(2, 5, 2\)"):
        layer.forward(np.zeros((2, 5, 2), np.float32), training=True)
    with pytest.raises(TypeError, match=r"expected input of dtype float32, got float64"):
        layer.forward(np.zeros((2, 5, 3)), training=True)
    assert not layer.has_cache


def test_backward_params_fills_the_gradients_of_backward():
    layer = bp.Bidirectional(bp.GRU(3, 4, dtype=np.float64, rng=0), merge_mode="mul", rng=1)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    dy = np.random.default_rng(1).standard_normal((2, 5, 4))
    layer.forward(x, training=True)
    layer.backward(dy)
    want = {k: g.copy() for k, g in layer.grads.items()}
    layer.forward(x, training=True)
    assert layer.backward_params(dy) is None
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(g, want[k], err_msg=k)
    assert not layer.has_cache
    assert layer.gemm_shapes((2, 5, 3)) == 2 * layer.forward_layer.gemm_shapes((2, 5, 3))


def test_from_torch_refuses_a_stacked_one_direction_module_in_a_bidirectional():
    """A one-direction torch LSTM of num_layers=2 has two modules' worth of weights, as
    many as a Bidirectional: its second layer must not load as the reverse direction."""
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(4, 4, num_layers=2, batch_first=True)
    with pytest.raises(ValueError, match=r"expected the reverse direction .* got \[l1\], the "
                                         r"next stacked layer"):
        bp.from_torch(bp.Bidirectional(bp.LSTM(4, 4)), module.state_dict())
    projected = torch.nn.LSTM(3, 4, proj_size=2, bidirectional=True, batch_first=True)
    with pytest.raises(ValueError, match=r"proj_size \(weight_hr keys\) is refused"):
        bp.from_torch(bp.Bidirectional(bp.LSTM(3, 4)), projected.state_dict())


def test_a_second_input_is_an_initial_state_checked_by_name():
    layer = bp.Bidirectional(bp.GRU(3, 4, rng=0), rng=1)
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"Bidirectional\(GRU\(3, 4\)\): expected "
                                         r"initial_state in PyTorch's form, a \(2, N, H\) "
                                         r"array .* got ndarray of shape \(2, 4\)"):
        layer(x, np.zeros((2, 4), np.float32))  # arrays of the wrong shape: a ValueError
    layer(x, training=True)
    with pytest.raises(ValueError, match=r"expected d_state in PyTorch's form"):
        layer.backward(np.ones((2, 5, 8), np.float32), d_state=np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"expected initial_state in PyTorch's form.* got str$"):
        layer(x, "h0")  # no array at all: a TypeError
