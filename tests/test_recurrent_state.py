"""The recurrent layers' state: an initial state (PyTorch's ``lstm(x, (h0, c0))``, Keras'
``initial_state``), the final state (``layer.state``), gradients through both
(``backward(dy, d_state=...)``, ``layer.d_initial_state``) and Keras' ``stateful=True``."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from tests.test_recurrent import KINDS, TORCH_NAMES, _twin

SIZES = [(3, 5, 4, 6), (2, 1, 3, 1), (1, 4, 2, 3)]  # (N, T, D, H)


def _state_of(kind, n, h, rng, dtype=np.float64):
    parts = 2 if kind == "LSTM" else 1
    arrays = [rng.standard_normal((n, h)).astype(dtype) for _ in range(parts)]
    return tuple(arrays) if parts == 2 else arrays[0]


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "N{}-T{}-D{}-H{}".format(*s))
@pytest.mark.parametrize("sequences", [True, False])
def test_initial_and_final_state_and_their_gradients_match_torch(kind, size, sequences):
    """From an initial state, with a loss on the output and on the final state (a
    decoder reading it): output, final state, dx, every parameter's gradient and the
    initial state's gradient all equal PyTorch's (float64)."""
    torch = pytest.importorskip("torch")
    n, steps, d, h = size
    rng = np.random.default_rng(5)
    layer = KINDS[kind][0](d, h, return_sequences=sequences, dtype=np.float64, rng=3)
    module = _twin(torch, kind, layer)
    x = rng.standard_normal((n, steps, d))
    state0 = _state_of(kind, n, h, rng)
    dy = rng.standard_normal((n, steps, h) if sequences else (n, h))
    d_state = _state_of(kind, n, h, rng)

    y = layer.forward(x, training=True, initial_state=state0)
    final = _as_tuple(layer.state)
    dx = layer.backward(dy, d_state=d_state)
    d_initial = _as_tuple(layer.d_initial_state)

    xt = torch.tensor(x, requires_grad=True)
    s0 = [torch.tensor(s[None], requires_grad=True) for s in _as_tuple(state0)]
    out, t_final = module(xt, tuple(s0) if kind == "LSTM" else s0[0])
    t_final = t_final if kind == "LSTM" else (t_final,)
    ty = out if sequences else out[:, -1]
    loss = (ty * torch.tensor(dy)).sum() + sum(
        (f[0] * torch.tensor(g)).sum()
        for f, g in zip(t_final, _as_tuple(d_state), strict=True))
    loss.backward()

    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=0, atol=1e-12)
    for ours, theirs in zip(final, t_final, strict=True):
        np.testing.assert_allclose(ours, theirs[0].detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-11)
    for ours, theirs in zip(d_initial, s0, strict=True):
        np.testing.assert_allclose(ours, theirs.grad[0].numpy(), rtol=0, atol=1e-11)
    for k, g in layer.grads.items():
        want = getattr(module, TORCH_NAMES[k]).grad.numpy()
        np.testing.assert_allclose(g, want.T if g.ndim == 2 else want, rtol=0, atol=1e-11)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_gradient_by_central_differences(kind):
    """``d_initial_state`` against central differences of the same objective (float64),
    without PyTorch: L = <y, dy> + <final state, d_state>."""
    n, steps, d, h = 2, 3, 3, 4
    rng = np.random.default_rng(11)
    layer = KINDS[kind][0](d, h, dtype=np.float64, rng=2)
    x = rng.standard_normal((n, steps, d))
    state0 = _as_tuple(_state_of(kind, n, h, rng))
    dy = rng.standard_normal((n, steps, h))
    d_state = _as_tuple(_state_of(kind, n, h, rng))

    def objective(state):
        y = layer.forward(x, initial_state=state if kind == "LSTM" else state[0])
        return float((y * dy).sum() + sum((f * g).sum() for f, g in
                                           zip(_as_tuple(layer.state), d_state, strict=True)))

    layer.forward(x, training=True, initial_state=state0 if kind == "LSTM" else state0[0])
    layer.backward(dy, d_state=d_state if kind == "LSTM" else d_state[0])
    analytic = _as_tuple(layer.d_initial_state)
    eps = 1e-6
    for which, part in enumerate(state0):
        numeric = np.zeros_like(part)
        for idx in np.ndindex(part.shape):
            plus = [s.copy() for s in state0]
            minus = [s.copy() for s in state0]
            plus[which][idx] += eps
            minus[which][idx] -= eps
            numeric[idx] = (objective(tuple(plus)) - objective(tuple(minus))) / (2 * eps)
        np.testing.assert_allclose(analytic[which], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_no_initial_state_is_the_zero_state(kind):
    """Without one, forward starts from zeros (PyTorch's default) and no initial-state
    gradient is formed; an explicit zero state gives the same numbers."""
    n, steps, d, h = 3, 4, 2, 5
    layer = KINDS[kind][0](d, h, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((n, steps, d))
    dy = np.random.default_rng(2).standard_normal((n, steps, h))
    y0 = layer.forward(x, training=True)
    dx0 = layer.backward(dy)
    grads0 = {k: g.copy() for k, g in layer.grads.items()}
    assert layer.d_initial_state is None
    zeros = _state_of(kind, n, h, np.random.default_rng(0))
    zeros = tuple(np.zeros_like(z) for z in zeros) if kind == "LSTM" else np.zeros_like(zeros)
    y1 = layer.forward(x, training=True, initial_state=zeros)
    dx1 = layer.backward(dy)
    np.testing.assert_allclose(y1, y0, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx1, dx0, rtol=1e-13, atol=1e-15)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, grads0[k], rtol=1e-13, atol=1e-15)
    assert all(g.shape == (n, h) for g in _as_tuple(layer.d_initial_state))


@pytest.mark.parametrize("kind", KINDS)
def test_final_state_is_the_last_step(kind):
    layer = KINDS[kind][0](2, 3, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 5, 2)).astype(np.float32)
    y = layer(x)
    h = layer.state[0] if kind == "LSTM" else layer.state
    np.testing.assert_array_equal(h, y[:, -1])
    if kind == "LSTM":
        assert layer.state[1].shape == (4, 3) and layer.state[1].dtype == np.float32
    h[...] = 7.0  # a copy: the output is not changed through it
    assert not np.any(y == 7.0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [False, True])
def test_stateful_halves_equal_the_whole_sequence(kind, training):
    """Keras' ``stateful=True``: each forward starts from the last one's final state, so
    a sequence fed in two pieces gives the outputs of the whole; ``reset_state()``
    starts again from zeros."""
    n, d, h = 3, 2, 4
    x = np.random.default_rng(3).standard_normal((n, 7, d))
    whole = KINDS[kind][0](d, h, dtype=np.float64, rng=5)(x)
    layer = KINDS[kind][0](d, h, stateful=True, dtype=np.float64, rng=5)
    first = layer.forward(x[:, :4], training=training)
    if training:
        layer.backward(np.ones_like(first))  # truncated BPTT: the state carries, no gradient
    second = layer.forward(x[:, 4:], training=training)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole,
                               rtol=1e-13, atol=1e-15)
    layer.reset_state()
    np.testing.assert_array_equal(layer(x[:, :4]), first)
    with pytest.raises(ValueError, match=r"stateful=True carries the last batch's state, 3 "
                                         r"sequences, into this batch of 2.*reset_state"):
        layer(x[:2, :4])
    layer.reset_state()
    assert layer(x[:2, :4]).shape == (2, 4, h)


@pytest.mark.parametrize("kind", KINDS)
def test_stateless_layer_starts_every_forward_from_zeros(kind):
    layer = KINDS[kind][0](2, 3, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(layer(x), layer(x))


def test_initial_state_in_pytorch_and_keras_spellings():
    """``lstm(x, (h0, c0))`` with PyTorch's ``(1, N, H)`` arrays, Keras' list ``[h0, c0]``
    and ``initial_state=`` all start from the same state; GRU takes ``h0`` or ``[h0]``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    h0, c0 = (rng.standard_normal((2, 5)).astype(np.float32) for _ in range(2))
    lstm = bp.LSTM(4, 5, rng=0)
    want = lstm.forward(x, initial_state=(h0, c0))
    for got in (lstm(x, (h0[None], c0[None])), lstm(x, [h0, c0]),
                lstm(x, initial_state=(h0, c0))):
        np.testing.assert_array_equal(got, want)
    gru = bp.GRU(4, 5, rng=0)
    want = gru(x, h0)
    np.testing.assert_array_equal(gru(x, [h0]), want)
    np.testing.assert_array_equal(gru(x, h0[None]), want)
    np.testing.assert_array_equal(gru(x, np.asfortranarray(h0)), want)


def test_bad_states_get_clear_errors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    h0 = rng.standard_normal((2, 5)).astype(np.float32)
    lstm, gru = bp.LSTM(4, 5, rng=0), bp.GRU(4, 5, rng=0)
    with pytest.raises(TypeError, match=r"LSTM\(4, 5\).*expected initial_state as a pair "
                                        r"\(h0, c0\) of \(N, H\) arrays, got ndarray"):
        lstm(x, h0)
    with pytest.raises(ValueError, match=r"GRU\(4, 5\).*initial_state's h0.*\(2, 5\)"):
        gru(x, h0[:1])
    with pytest.raises(TypeError, match=r"initial_state's c0.*float32.*float64"):
        lstm(x, (h0, h0.astype(np.float64)))
    with pytest.raises(TypeError, match=r"initial_state's h0 as an array, got list"):
        gru(x, [[0.0] * 5] * 2)
    y = lstm.forward(x, training=True, initial_state=(h0, h0))
    with pytest.raises(ValueError, match=r"d_state's dc"):
        lstm.backward(np.ones_like(y), d_state=(None, h0[:1]))
    with pytest.raises(TypeError, match=r"expected d_state as a pair \(dh, dc\)"):
        lstm.backward(np.ones_like(y), d_state=(h0,))
    with pytest.raises(ValueError, match=r"dy"):
        lstm.backward(np.ones((2, 3, 4), np.float32))
    lstm.backward(np.ones_like(y), d_state=(h0, None))  # the refused calls kept the cache
    assert len(lstm.d_initial_state) == 2
    with pytest.raises(TypeError, match=r"expected stateful to be True or False"):
        bp.RNN(4, 5, stateful="yes")


def test_refused_dy_keeps_the_initial_state_for_the_corrected_call():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    h0 = rng.standard_normal((2, 5))
    dy = rng.standard_normal((2, 3, 5))
    layer = bp.RNN(4, 5, dtype=np.float64, rng=0)
    layer.forward(x, training=True, initial_state=h0)
    want = layer.backward(dy), layer.d_initial_state.copy()
    layer.forward(x, training=True, initial_state=h0)
    with pytest.raises(ValueError):
        layer.backward(dy[:, :2])
    got = layer.backward(dy), layer.d_initial_state
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_stateful_is_saved_in_the_config(tmp_path):
    model = bp.Sequential([bp.GRU(3, 4, stateful=True, return_sequences=False, rng=0),
                           bp.Dense(4, 2, rng=1)])
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = bp.load(path)
    assert loaded[0].stateful is True and loaded[0].state is None


def test_model_reset_state_reaches_every_stateful_layer():
    """``model.reset_state()`` (Keras' ``reset_states``) zeroes the kept state of the
    recurrent layers inside, nested ones included."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    model = bp.Sequential([bp.LSTM(4, 5, stateful=True, rng=0),
                           bp.Residual(bp.Sequential([bp.GRU(5, 5, stateful=True, rng=1)])),
                           bp.Dense(5, 2, rng=2)])
    first = model.predict(x)
    assert not np.allclose(model.predict(x), first)  # carried on from the first call
    assert model[0].state is not None and model[1].block[0].state is not None
    model.reset_state()
    assert model[0].state is None and model[1].block[0].state is None
    np.testing.assert_array_equal(model.predict(x), first)
    with pytest.raises(AttributeError, match=r"calls it reset_state\(\)"):
        model.reset_states()


def _stateful_model(dtype=np.float64):
    return bp.Sequential([bp.GRU(3, 4, stateful=True, return_sequences=False, dtype=dtype,
                                 rng=1), bp.Dense(4, 2, dtype=dtype, rng=2)])


def test_fit_of_a_stateful_model_starts_from_zeros_at_its_batch_size():
    """fit's checks run forwards of their own (on two samples): they must not move the
    state the first batch starts from (they did: batch_size 4 crashed on the kept state
    of 2 sequences, and batch_size 2 trained from a state that was not the data's)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 6, 3)), rng.standard_normal((8, 2))
    for batch in (4, 2):
        model, hand = _stateful_model(), _stateful_model()
        model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.SGD(model, lr=0.1),
                  batch_size=batch, shuffle=False, progress=False)
        loss, opt = bp.MeanSquaredError(), bp.SGD(hand, lr=0.1)
        for s in range(0, 8, batch):
            loss.forward(hand.forward(x[s:s + batch], training=True), y[s:s + batch])
            hand.backward(loss.backward(), input_grad=False)
            opt.step()
        for k, v in hand.params.items():
            np.testing.assert_array_equal(model.params[k], v)
    fresh = _stateful_model()
    want = float(((fresh.predict(x[:4]) - y[:4]) ** 2).mean())
    fresh.reset_state()
    assert fresh.evaluate(x[:4], y[:4], loss=bp.MeanSquaredError(),
                          batch_size=4)["loss"] == pytest.approx(want, rel=1e-14)


def test_summary_and_gemm_shapes_leave_the_state_alone():
    model = _stateful_model()
    model.predict(np.ones((2, 5, 3)))
    kept = model[0].state.copy()
    model.summary(input_shape=(5, 3))
    model.gemm_shapes((2, 5, 3))
    bp.bench(model, (5, 3), batch_size=2, steps=2, warmup=1)
    np.testing.assert_array_equal(model[0].state, kept)



def test_errors_inside_kept_states_name_the_layer_as_built():
    """summary's forward runs with the states kept aside; a shape error there named the
    layer without stateful=True (the flag itself was switched off around the forwards)."""
    model = _stateful_model()
    with pytest.raises(ValueError, match=r"stateful=True, .*\): expected input"):
        model.summary(input_shape=(5, 7))
    assert model[0].stateful and "_states_paused" not in vars(model[0])

@pytest.mark.parametrize("make", [
    lambda: np.zeros(4, np.float32)[:, None],          # (N, 1) with a zero stride
    lambda: np.ones((4, 1), np.float32)[::-1],          # a negative stride
    lambda: np.ones((3, 9), np.float32)[:, 2:3],        # a column of a wider array
])
def test_initial_state_of_odd_strides(make):
    """States NumPy calls C-contiguous with strides BLAS refuses ((N, 1), N = 1) are copied
    into the layer's own layout; they crashed the h @ U product before."""
    x = np.random.default_rng(0).standard_normal((make().shape[0], 3, 2)).astype(np.float32)
    h0 = make()
    for layer in (bp.RNN(2, 1, rng=0), bp.GRU(2, 1, rng=0)):
        np.testing.assert_array_equal(layer(x, h0), layer(x, np.array(h0, order="C")))
    lstm = bp.LSTM(2, 1, rng=0)
    np.testing.assert_array_equal(lstm(x, (h0, h0)), lstm(x, (h0.copy(), h0.copy())))
    one = bp.LSTM(2, 3, rng=0)  # N = 1
    h1 = np.ones((3, 1), np.float32).T
    one(x[:1], (h1, h1))


def test_initial_state_as_a_memmap(tmp_path):
    """An ndarray subclass (a memmap of a saved state) gives the plain array's numbers."""
    h0 = np.memmap(tmp_path / "h0.dat", dtype=np.float32, mode="w+", shape=(4, 3))
    h0[:] = 0.5
    x = np.random.default_rng(0).standard_normal((4, 5, 2)).astype(np.float32)
    for layer in (bp.RNN(2, 3, rng=0), bp.GRU(2, 3, rng=0)):
        np.testing.assert_array_equal(layer(x, h0), layer(x, np.full((4, 3), 0.5, np.float32)))
    lstm = bp.LSTM(2, 3, rng=0)
    np.testing.assert_array_equal(lstm(x, (h0, h0)), lstm(x, (h0[:].copy(), h0[:].copy())))


def test_astype_carries_a_kept_state_into_the_new_dtype():
    layer = bp.LSTM(3, 4, stateful=True, dtype=np.float64, rng=1)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    layer(x)
    cast = layer.astype(np.float32)
    assert all(s.dtype == np.float32 for s in cast.state)
    np.testing.assert_allclose(cast(x.astype(np.float32)), layer(x), rtol=1e-5, atol=1e-6)


def test_d_state_in_every_spelling_initial_state_has():
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5))
    dh, dc = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    lstm = bp.LSTM(4, 5, dtype=np.float64, rng=0)
    results = []
    for d_state in ((dh, dc), [dh[None], dc[None]]):
        lstm.forward(x, training=True)
        results.append(lstm.backward(dy, d_state=d_state))
    np.testing.assert_array_equal(results[0], results[1])
    gru = bp.GRU(4, 5, dtype=np.float64, rng=0)
    results = []
    for d_state in (dh, [dh], dh[None]):
        gru.forward(x, training=True)
        results.append(gru.backward(dy, d_state=d_state))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    lstm.forward(x, training=True)
    with pytest.raises(TypeError, match=r"LSTM\(4, 5.*expected d_state as a pair \(dh, dc\) "
                                        r"of \(N, H\) arrays, got float"):
        lstm.backward(dy, d_state=1.0)
    with pytest.raises(TypeError, match=r"got ndarray"):  # a stacked (2, N, H) array
        lstm.backward(dy, d_state=np.stack([dh, dc]))
    lstm.backward(dy)  # the cache survived the refusals


def test_a_skipped_batch_leaves_the_state_it_found():
    """fit's skip of a non-finite batch puts back what that batch's forward changed:
    BatchNorm's statistics and a stateful layer's state (one bad batch poisoned every
    later batch of the epoch through the carried state: 9 of 10 skipped)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5, 3)), rng.standard_normal((40, 2))
    x[12:16] *= 1e300  # batch 3: a relu state of ~1e300, whose squared error overflows

    def model():
        return bp.Sequential([bp.RNN(3, 4, nonlinearity="relu", stateful=True,
                                     return_sequences=False, dtype=np.float64, rng=1),
                              bp.Dense(4, 2, dtype=np.float64, rng=2)])

    fitted = model()
    history = fitted.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.SGD(fitted, lr=0.01),
                         batch_size=4, shuffle=False, progress=False, on_nonfinite="skip")
    assert history.skipped_batches == 1
    hand = model()
    loss, opt = bp.MeanSquaredError(), bp.SGD(hand, lr=0.01)
    for s in range(0, 40, 4):
        if s == 12:
            continue
        loss.forward(hand.forward(x[s:s + 4], training=True), y[s:s + 4])
        hand.backward(loss.backward(), input_grad=False)
        opt.step()
    for k, v in hand.params.items():
        np.testing.assert_array_equal(fitted.params[k], v)


def test_save_load_and_resume_keep_a_stateful_layers_state(tmp_path):
    """The kept state travels with the model: load gives it back, and a run resumed from
    a checkpoint continues bit for bit (its next batch starts where the last ended)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5, 3)), rng.standard_normal((16, 2))

    def run(model, **kwargs):
        return model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.Adam(model, lr=0.01),
                         epochs=4, batch_size=4, shuffle=False, seed=0, progress=False,
                         callbacks=[bp.ModelCheckpoint(tmp_path / "ck-{epoch}.npz")], **kwargs)

    straight = _stateful_model()
    run(straight)
    loaded = bp.load(tmp_path / "ck-2.npz")
    assert loaded[0].state.shape == (4, 4) and loaded[0].state.dtype == np.float64
    resumed = _stateful_model()
    run(resumed, resume=tmp_path / "ck-2.npz")
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    np.testing.assert_array_equal(resumed[0].state, straight[0].state)
    straight.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz")[0].state, straight[0].state)


@pytest.mark.parametrize("kind", KINDS)
def test_the_output_of_one_sequence_is_not_the_cache(kind):
    """With N = 1 (or T = 1) the batch-first output of the time-major cache is contiguous
    as a view: it is copied anyway, so a caller writing into it cannot change backward."""
    x = np.random.default_rng(0).standard_normal((1, 4, 3))
    dy = np.random.default_rng(1).standard_normal((1, 4, 5))
    layer = KINDS[kind][0](3, 5, dtype=np.float64, rng=0)
    layer.forward(x, training=True)
    want = layer.backward(dy), {k: g.copy() for k, g in layer.grads.items()}
    y = layer.forward(x, training=True)
    y *= 0.0
    np.testing.assert_array_equal(layer.backward(dy), want[0])
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(g, want[1][k])


def test_fit_validates_a_stateful_model_from_zeros_without_moving_its_state():
    """fit's validation (in batches of its own size) starts each batch of a stateful model
    from zeros and leaves the training state: it crashed after the first epoch (a kept
    state of batch_size rows met a validation batch of 256), and would otherwise steer the
    next epoch's training."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((36, 5, 3)), rng.standard_normal((36, 2))
    plain, checked = _stateful_model(), _stateful_model()
    for model, split in ((plain, 0.0), (checked, 1 / 3)):
        n = 24  # both train on the first 24 samples
        args = dict(loss=bp.MeanSquaredError(), optimizer=bp.SGD(model, lr=0.05), epochs=3,
                    batch_size=4, shuffle=False, progress=False)
        if split:
            history = model.fit(x, y, validation_split=split, **args)
        else:
            history = model.fit(x[:n], y[:n], **args)
    np.testing.assert_array_equal(checked.flat_params, plain.flat_params)
    np.testing.assert_array_equal(checked[0].state, plain[0].state)
    fresh = _stateful_model()
    fresh.load_state_dict(checked.state_dict())
    want = float(((fresh.forward(x[24:]) - y[24:]) ** 2).mean())  # 12 from zeros at once
    assert history.history["val_loss"][-1] == pytest.approx(want, rel=1e-12)


def test_save_refuses_a_state_load_would_refuse(tmp_path):
    """The save-time rebuild check covers the kept state, also on a second save of the
    same model (its result was cached by layout, which did not see the state's dtype)."""
    model = _stateful_model(np.float32)
    model.predict(np.ones((2, 5, 3), np.float32))
    model.save(tmp_path / "ok.npz")
    model[0].state = model[0].state.astype(np.float64)
    with pytest.raises(ValueError, match=r"saved state's h0.*float32.*Nothing was written"):
        model.save(tmp_path / "bad.npz")
    model[0].state = np.float32(1.0) * np.ones((), np.float32)
    with pytest.raises(ValueError, match=r"saved state's h0.*Nothing was written"):
        model.save(tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_batches_a_stateful_layer_cannot_carry_are_refused_before_any_runs():
    """A short last batch, or batches of another size than the kept state's, were refused
    only when reached: fit had trained two batches, predict had moved the state."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 5, 3)), rng.standard_normal((10, 2))
    model = _stateful_model()
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match=r"^fit: expected 10 samples to split into equal "
                                         r"batches for GRU.*last batch of 2; use a batch_size "
                                         r"that divides 10"):
        model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.SGD(model, lr=0.1),
                  batch_size=4, shuffle=False, progress=False)
    np.testing.assert_array_equal(model.flat_params, before)
    assert model[0].state is None
    with pytest.raises(ValueError, match=r"^predict: expected 10 samples to split"):
        model.predict(x, batch_size=4)
    assert model[0].state is None
    model.predict(x[:8], batch_size=4)
    kept = model[0].state.copy()
    with pytest.raises(ValueError, match=r"^evaluate: expected batches of 4 sequences for "
                                         r"GRU.*kept state.*got batches of 8; call "
                                         r"reset_state\(\) first, or use batch_size=4"):
        model.evaluate(x[:8], y[:8], loss=bp.MeanSquaredError())
    np.testing.assert_array_equal(model[0].state, kept)
    model.reset_state()
    assert model.predict(x[:3]).shape == (3, 2)  # one batch, of any size, from zeros
