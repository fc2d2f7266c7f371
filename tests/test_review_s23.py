"""Session 23: findings of this session's reviews and fixes, each with a test that failed before."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

X4 = np.ones((2, 3, 8, 8), np.float32)

HUGE = {
    "AdaptiveAvgPool2D": lambda: bp.AdaptiveAvgPool2D(10**12)(X4),
    "AdaptiveMaxPool1D": lambda: bp.AdaptiveMaxPool1D(10**12)(X4[:, :, 0]),
    "ZeroPad2D": lambda: bp.ZeroPad2D(10**12)(X4),
    "ReplicationPad1D": lambda: bp.ReplicationPad1D(10**12)(X4[:, :, 0]),
    "Upsample": lambda: bp.Upsample(scale_factor=1e30)(X4),
    "Upsample(size": lambda: bp.Upsample(size=10**12)(X4),
    "ConvTranspose2D": lambda: bp.ConvTranspose2D(3, 4, 3, stride=10**12)(X4),
    "Conv2D(3, 4, 3, padding=": lambda: bp.Conv2D(3, 4, 3, padding=10**12)(X4),
    "Conv3D": lambda: bp.Conv3D(3, 4, 3, padding=10**12)(X4[:, :, None]),
    "padding_mode='replicate'": lambda: bp.Conv2D(3, 4, 3, padding=10**12,
                                                  padding_mode="replicate")(X4),
    "groups=3": lambda: bp.Conv2D(3, 3, 3, padding=10**12, groups=3)(X4),
    "Unfold": lambda: bp.Unfold(2, padding=10**12)(X4),
}


@pytest.mark.parametrize("named", sorted(HUGE))
def test_arguments_that_ask_for_terabytes_at_forward_are_a_memory_error_naming_the_layer(named):
    """A padding, output size, scale or stride typed wrong: NumPy's MemoryError or its
    'array is too big' / 'Maximum allowed size exceeded' ValueError named no layer."""
    with pytest.raises(MemoryError, match="fit this machine's memory") as err:
        HUGE[named]()
    assert named in str(err.value) and "input of shape (2, 3, " in str(err.value)


def test_sequential_forward_takes_src_key_padding_mask_as_the_call_does():
    rng = np.random.default_rng(0)
    block = bp.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, rng=0)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    pad = np.zeros((3, 5), bool)
    pad[0, 3:] = pad[2, 1:] = True
    y = block.forward(x, src_key_padding_mask=pad)
    np.testing.assert_array_equal(y, block(x, src_key_padding_mask=pad))
    np.testing.assert_array_equal(y, block.forward(x, mask=~pad))
    assert not np.array_equal(y, block.forward(x))  # the mask is used
    with pytest.raises(ValueError, match="one of mask .* got mask and src_key_padding_mask"):
        block.forward(x, mask=~pad, src_key_padding_mask=pad)


@pytest.mark.parametrize("kind", ["LayerNorm", "GroupNorm"])
def test_row_norms_of_float32_values_whose_squares_overflow_are_right(kind):
    """|x| ~ 1e37 in float32: Σ (x - mu)² overflowed, inv_std was 0 and the output zeros
    (PyTorch's float32 gives NaN); the overflowed rows' statistics now come from float64,
    and the backward forms inv_std·g_xc·inv_std so that inv_std² does not underflow."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 8, 2)) * 1e37).astype(np.float32)
    x[1] /= 1e37  # an ordinary sample beside it
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = bp.LayerNorm((8, 2)) if kind == "LayerNorm" else bp.GroupNorm(2, 8)
    y = layer.forward(x, training=True)  # quietly: warnings are errors in the tests
    dx = layer.backward(dy)
    t = torch.tensor(x.astype(np.float64), requires_grad=True)
    ref = (torch.nn.functional.layer_norm(t, (8, 2)) if kind == "LayerNorm"
           else torch.nn.functional.group_norm(t, 2))
    ref.backward(torch.tensor(dy.astype(np.float64)))
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    for n in range(2):  # each sample's dx on its own scale (1e-37 against 1)
        np.testing.assert_allclose(dx[n], t.grad.numpy()[n], rtol=1e-4,
                                   atol=1e-5 * np.abs(t.grad.numpy()[n]).max())


def test_layer_norm_of_a_row_with_inf_is_nan_quietly_as_pytorch():
    x = np.ones((2, 8), np.float32)
    x[0, 0] = np.inf
    y = bp.LayerNorm(8)(x)
    assert np.isnan(y[0]).all() and np.array_equal(y[1], np.zeros(8, np.float32))


# -- saving and loading (a review of checkpoints) ------------------------------------------
@pytest.mark.skipif(not __import__("os").path.exists("/dev/null"), reason="no /dev/null")
def test_save_into_dev_null_writes_into_the_device():
    """zipfile seeks back into what it wrote, and /dev/null's offsets broke it: a bare
    struct.error, which the CLI's fallback save (OSError only) let through, losing the model."""
    bp.save(bp.Sequential([bp.Dense(3, 2)]), "/dev/null")
    assert __import__("os").path.exists("/dev/null")


def test_save_and_load_take_nothing_from_the_manual_seed_sequence(tmp_path):
    path = tmp_path / "m.npz"

    def next_weights(action):
        bp.manual_seed(0)
        model = bp.Sequential([bp.Dense(3, 2), bp.Dropout(0.5)])
        if action == "save":
            bp.save(model, path)
        elif action == "load":
            bp.load(path)
        return bp.Dense(3, 2).params["W"].copy()

    try:
        plain = next_weights(None)
        assert np.array_equal(plain, next_weights("save"))
        assert np.array_equal(plain, next_weights("load"))
    finally:
        bp.manual_seed(None)


def _shift_class():
    class Shift(bp.Layer):  # keeps its argument under another name
        def __init__(self, amount=0.0, *, dtype=np.float32):
            super().__init__(dtype=dtype)
            self._amount = amount

        def forward(self, x, *, training=False):
            return x + self._amount

        def backward(self, dy):
            return dy
    return Shift


def test_save_refuses_a_layer_whose_argument_load_would_rebuild_with_its_default(tmp_path):
    shift = bp.register_layer(_shift_class(), name="ReviewShift")
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=r"Shift \(1\) otherwise: .* 'amount' .* _amount"):
        bp.save(bp.Sequential([bp.Dense(2, 2), shift(5.0)]), path)
    assert not path.exists()
    bp.save(bp.Sequential([bp.Dense(2, 2), shift()]), path)  # the default: nothing lost


def test_a_model_built_before_its_class_was_defined_again_saves_under_its_name(tmp_path):
    """A notebook cell re-run: save said the class was not registered (it is)."""
    def define():
        class ReviewScale(bp.Layer):
            def __init__(self, n, *, dtype=np.float32):
                super().__init__(dtype=dtype)
                self.n = n
                self.add_param("s", np.full(n, 2.0, self.dtype))

            def forward(self, x, *, training=False):
                return x * self.params["s"]

            def backward(self, dy):
                return dy * self.params["s"]
        return bp.register_layer(ReviewScale)

    model = bp.Sequential([define()(3)])
    define()  # the cell again
    bp.save(model, tmp_path / "m.npz")
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz").predict(x), model.predict(x))


def test_file_paths_empty_or_ending_in_a_separator_are_named(tmp_path):
    model = bp.Sequential([bp.Dense(2, 2)])
    with pytest.raises(ValueError, match="load: expected a file path, got an empty one"):
        bp.load("")
    with pytest.raises(IsADirectoryError, match="ends in a folder separator"):
        bp.save(model, str(tmp_path / "out") + "/")  # a file named 'out' was written
    assert not (tmp_path / "out").exists()


# -- sequence layers (a review against PyTorch: values and gradients all matched) ---------
def test_ragged_nested_list_masks_and_lengths_are_named():
    x = np.zeros((2, 3, 4), np.float32)
    ragged = [[True, True], [True, True, True]]
    for call, named in ((lambda: bp.LSTM(4, 2)(x, mask=ragged), r"LSTM\(4, 2\): expected mask"),
                        (lambda: bp.GRU(4, 2)(x, lengths=[[1], [2, 3]]),
                         r"GRU\(4, 2\): expected lengths"),
                        (lambda: bp.Sequential([bp.LSTM(4, 2)])(x, src_key_padding_mask=ragged),
                         "Sequential: expected src_key_padding_mask")):
        with pytest.raises(TypeError, match=named + ".*that NumPy cannot read as one"):
            call()


def test_from_torch_names_a_recurrent_layer_of_another_kind():
    torch = pytest.importorskip("torch")
    for theirs, ours, got in ((torch.nn.LSTM(3, 4), bp.GRU(3, 4), "an LSTM"),
                              (torch.nn.GRU(3, 4), bp.RNN(3, 4), "a GRU"),
                              (torch.nn.RNN(3, 4), bp.LSTM(3, 4), "an RNN"),
                              (torch.nn.LSTM(3, 3), bp.GRU(3, 4), "an LSTM")):  # 12 rows
        with pytest.raises(ValueError, match=f"got those of {got} "):
            bp.from_torch(ours, theirs.state_dict())
    bp.from_torch(bp.LSTM(3, 4), torch.nn.LSTM(3, 4).state_dict())  # the same kind: fine


# -- the command line (a review as a user) ---------------------------------------------------
def _cli():
    from backprop.__main__ import main
    return main


def _npz(path, rng=0):
    r = np.random.default_rng(rng)
    x = r.standard_normal((60, 5))
    y = (x[:, 0] > 0).astype(int)
    np.savez(path, x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])


def test_cli_output_expands_home_and_never_replaces_the_data_given_with_home(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    _npz(tmp_path / "g.npz")
    before = (tmp_path / "g.npz").read_bytes()
    assert _cli()(["train", "--no-progress", "--epochs", "1", "--data=~/g.npz",
                   "--output", "g.npz"]) == 1  # was 0, with the data replaced by the model
    assert "expected a path other than --data's" in capsys.readouterr().err
    assert (tmp_path / "g.npz").read_bytes() == before
    assert _cli()(["train", "--no-progress", "--epochs", "1", "--data=~/g.npz",
                   "--output=~/m.npz"]) == 0  # "there is no folder '~'" before
    assert isinstance(bp.load(tmp_path / "m.npz"), bp.Sequential)


def test_cli_evaluate_scores_a_model_ending_in_softmax_and_one_starting_with_dropout(
        tmp_path, capsys):
    _npz(tmp_path / "g.npz")
    data = ["--data", str(tmp_path / "g.npz")]
    for i, model in enumerate((bp.Sequential([bp.Dense(5, 2, rng=0), bp.Softmax()]),
                               bp.Sequential([bp.Dropout(0.2), bp.Dense(5, 2, rng=0)]))):
        model.save(tmp_path / f"m{i}.npz")
        assert _cli()(["evaluate", str(tmp_path / f"m{i}.npz"), *data]) == 0
        text = capsys.readouterr().out
        x = np.load(tmp_path / "g.npz")["x_test"].astype(np.float32)
        y = np.load(tmp_path / "g.npz")["y_test"]
        out = model.predict(x)
        p = out if i == 0 else np.exp(out - out.max(1, keepdims=True))
        p = p / p.sum(1, keepdims=True)
        expected = -np.mean(np.log(p[np.arange(len(y)), y]))  # was softmax of probabilities
        assert f"(loss {expected:.4f})" in text


def test_evaluate_warns_of_a_softmax_before_softmax_cross_entropy_as_fit_does():
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.Softmax()])
    with pytest.warns(UserWarning, match="evaluate: the model ends in Softmax"):
        model.evaluate(np.ones((4, 3), np.float32), np.zeros(4, int),
                       loss=bp.SoftmaxCrossEntropy())


def test_cli_a_diverging_run_names_lr_and_threads_past_the_cores_are_noted(capsys):
    assert _cli()(["train", "--no-progress", "--epochs", "2", "--optimizer", "sgd",
                   "--lr", "1e6"]) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "lower --lr" in err and "clip_norm" not in err
    os = __import__("os")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from backprop.__main__ import blas_threads
    with blas_threads(cores + 1):
        pass
    assert f"--threads {cores + 1} is more than the {cores} cores" in capsys.readouterr().err


def test_cli_ctrl_c_before_training_is_one_line_and_exit_130(monkeypatch, capsys):
    import backprop.__main__ as cli

    def interrupted(spec):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "load_data", interrupted)
    assert cli.main(["train", "--no-progress"]) == 130
    assert capsys.readouterr().err == "backprop train: interrupted, nothing was saved\n"


def test_a_containers_cache_holds_its_layers_caches_by_name():
    """model.cache was {} while model.has_cache was True (the layers hold the caches)."""
    model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.ReLU(),
                           bp.Residual(bp.Sequential([bp.Dense(4, 4, rng=1)]))])
    x = np.ones((2, 3), np.float32)
    y1 = model[0].forward(x)
    model.forward(x, training=True)
    cache = model.cache
    assert model.has_cache and list(cache) == ["0", "1", "2"]
    np.testing.assert_array_equal(cache["0"]["x"], x)
    np.testing.assert_array_equal(cache["1"]["y"], np.maximum(y1, 0))
    assert cache["2"]["block"]["0"]["x"] is model[2].block[0].cache["x"]


def test_sequential_append_points_at_add():
    with pytest.raises(AttributeError, match=r"no attribute 'append'; model.add\(layer\)"):
        bp.Sequential([bp.Dense(2, 2)]).append(bp.ReLU())


# -- speed side by side (a review of end-to-end workloads) -----------------------------------
def test_load_rebuilds_without_drawing_initial_weights(tmp_path):
    """bp.load drew every initial weight and then overwrote it (a 38M-parameter MLP's
    draws were 40 % of its load, which took 2.5-2.9x PyTorch's)."""
    drawn = []

    class Probe(bp.Dense):
        def __init__(self, in_features, out_features, **kw):
            super().__init__(in_features, out_features, **kw)
            rng = np.random.default_rng(0)
            drawn.append(bool(bp.initializers.glorot_uniform((3, 3), rng).any()))

    bp.register_layer(Probe, name="ReviewProbe")
    model = bp.Sequential([Probe(4, 3, rng=0)])
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert drawn == [True, False, False]  # built; save's rebuild check; load's rebuild
    np.testing.assert_array_equal(loaded[0].params["W"], model[0].params["W"])
    assert bp.initializers.glorot_uniform((3, 3), np.random.default_rng(0)).any()  # afterwards


def test_the_layer_named_in_input_errors_is_formatted_only_when_raising(monkeypatch):
    """Embedding formatted its repr (inspect.signature, ~36 us) on every call for an
    error it rarely raised: single-sample inference 4x PyTorch's latency."""
    model = bp.Sequential([bp.Embedding(10, 2), bp.Flatten(), bp.Dense(4, 2)])
    loss = bp.MeanSquaredError(reduction="none")
    calls = []  # counted once built (a constructor may name itself to check its arguments)
    for cls in (bp.Layer, bp.Loss):
        plain = cls.__repr__
        monkeypatch.setattr(cls, "__repr__", lambda self, plain=plain: calls.append(1) or
                            plain(self))
    out = model.forward(np.array([[1, 2]]), training=True)
    loss.forward(out, np.zeros((1, 2)), sample_weight=np.ones(1))
    model.backward(loss.backward(np.ones((1, 2))))
    model.predict(np.array([[3, 4]]))
    assert calls == []  # no repr without an error
    emb = bp.Embedding(10, 2)
    with pytest.raises(ValueError, match=r"Embedding\(10, 2\): expected indices without masked"):
        emb(np.ma.masked_array([[1, 2]], mask=[[0, 1]]))
    loss = bp.MeanSquaredError()
    with pytest.raises(ValueError, match=r"MeanSquaredError\(\): expected sample_weight"):
        loss.forward(np.ones((3, 1)), np.ones((3, 1)), sample_weight=np.ones(2))


def test_a_parameter_group_label_is_refused_with_why():
    model = bp.Sequential([bp.Dense(2, 2)])
    with pytest.raises(ValueError, match=r"got \['name'\] \(PyTorch keeps any other key"):
        bp.SGD([{"params": model.parameters(), "name": "head"}], lr=0.1)


def test_optimizer_state_dict_copy_false_gives_the_live_arrays_for_save_to_write(tmp_path):
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.ReLU(), bp.Dense(2, 2, rng=1)])
    for opt in (bp.Adam(model.parameters()),
                bp.Adam([{"params": model[0].parameters(), "lr": 0.1},
                         {"params": model[2].parameters()}])):
        live, copied = opt.state_dict(copy=False), opt.state_dict()
        assert live["state"]["0.W"]["exp_avg"] is opt.state[0]["exp_avg"]
        assert copied["state"]["0.W"]["exp_avg"] is not opt.state[0]["exp_avg"]
        np.testing.assert_array_equal(live["state"]["0.W"]["exp_avg"],
                                      copied["state"]["0.W"]["exp_avg"])
        assert ("groups" in live) == ("groups" in copied)
    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=2, progress=False)
    seen = []
    plain = bp.Optimizer.state_dict

    def spy(self, *, copy=True):
        seen.append(copy)
        return plain(self, copy=copy)
    bp.Optimizer.state_dict = spy
    try:
        bp.save(model, tmp_path / "m.npz", optimizer=opt)  # a spy: not an override, so ...
    finally:
        bp.Optimizer.state_dict = plain
    assert seen == [False]  # ... the live arrays, no copies
    saved, now = bp.load_checkpoint(tmp_path / "m.npz").optimizer_state, opt.state_dict()
    assert list(saved["state"]) == list(now["state"]) and saved["steps"] == now["steps"] == 2
    for name, arrays in now["state"].items():
        for key, a in arrays.items():
            np.testing.assert_array_equal(saved["state"][name][key], a)


# -- a fuzz of the public API (86,374 calls; what still escaped) -----------------------------
def test_fuzz_escapes_are_named_errors_or_work():
    r = np.random.default_rng(0)
    shuffle = bp.ChannelShuffle(2)  # no channels: backward divided by C / g = 0
    shuffle.forward(np.zeros((2, 0, 3), np.float32), training=True)
    assert shuffle.backward(np.zeros((2, 0, 3), np.float32)).shape == (2, 0, 3)
    with pytest.raises(ValueError, match=r"f1: expected y_true of shape \(4,\)"):  # IndexError
        bp.metrics.f1(np.zeros((4, 0)), np.zeros((4, 3), np.float32))
    for make in (lambda: bp.Conv1D(2, 3, 3, stride=2**63), lambda: bp.AvgPool1D(2, stride=2**63)):
        with pytest.raises(ValueError, match="expected stride below 2"):  # OverflowError
            make()
    init = bp.initializers
    with pytest.raises(TypeError, match="initializers: expected rng to be a numpy Generator"):
        init.glorot_uniform((3, 4), True)  # AttributeError
    assert init.glorot_uniform((0, 0), r).shape == (0, 0)  # ZeroDivisionError
    for shape, error in (("", TypeError), ({"a": 1}, TypeError), ((2, -1), ValueError),
                         (True, TypeError)):
        with pytest.raises(error, match="initializers: expected shape"):
            init.glorot_uniform(shape, r)
    with pytest.raises(ValueError, match="torch_uniform: expected fan_in as a positive"):
        init.torch_uniform((3,), r, fan_in=-np.inf)
    for zero_d in (lambda: bp.Sequential(np.array(2)), lambda: bp.MultiStepLR(0.1, np.array(2)),
                   lambda: bp.SequentialLR(np.array(2), [3])):
        with pytest.raises(TypeError, match="expected .* lists?"):  # iteration over a 0-d array
            zero_d()
    with pytest.raises(ValueError, match=r"ConvTranspose1D\(.*expected output_size as one int"):
        bp.ConvTranspose1D(2, 3, 3, stride=2).forward(np.zeros((1, 2, 4), np.float32),
                                                       np.array(9))
    assert bp.datasets.moons(noise=-0.0)[0].shape == (200, 2)  # NumPy: scale < 0
    with pytest.raises(MemoryError, match="xor: expected arguments that fit"):
        bp.datasets.xor(n_samples=10**18)
    with pytest.raises(MemoryError, match="TransformerEncoder: expected arguments that fit"):
        bp.TransformerEncoder(bp.TransformerEncoderLayer(4, 2, 8), 10**18)  # copied forever
    with pytest.raises(ValueError, match="save: expected a path without NUL"):
        bp.save(bp.Sequential([bp.Dense(2, 2)]), "a\x00b.npz")


@pytest.mark.parametrize("make", [bp.Softmax, bp.LogSoftmax, bp.Softmin])
def test_softmaxes_over_an_empty_class_axis_give_empty_arrays_as_pytorch(make):
    layer = make()
    x = np.zeros((2, 0), np.float32)
    assert layer.forward(x, training=True).shape == (2, 0)  # NumPy's zero-size max before
    assert layer.backward(np.zeros((2, 0), np.float32)).shape == (2, 0)


def test_local_response_norm_window_past_the_channels_adds_nothing_more():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    for size in (7, 10**18):  # 10**18: NumPy's 'array is too big' allocating its padding
        layer = bp.LocalResponseNorm(size, dtype=np.float64)
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(x))
        t = torch.tensor(x, requires_grad=True)
        ref = torch.nn.functional.local_response_norm(t, min(size, 99))  # 99: as unbounded
        ref.sum().backward()
        if size == 7:
            np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-12)
            np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-10, atol=1e-14)
        else:  # q = k + alpha · S / size = 1 to the last bit: y = x, dx = dy
            np.testing.assert_allclose(y, x, rtol=1e-15)
            np.testing.assert_allclose(dx, np.ones_like(x), rtol=1e-15)


# -- a read of this session's diff -----------------------------------------------------------
def test_a_layer_built_in_another_thread_during_a_load_draws_its_weights(tmp_path):
    """rebuilding() flipped module-wide flags: 300 of 300 Dense layers built in a thread
    beside a load came out all zeros."""
    import threading
    path = tmp_path / "m.npz"
    bp.save(bp.Sequential([bp.Dense(64, 64, rng=i) for i in range(50)]), path)
    done = threading.Event()

    def loading():
        while not done.is_set():
            bp.load(path)
    thread = threading.Thread(target=loading)
    thread.start()
    try:
        zeros = sum(not bp.Dense(8, 8, rng=i).params["W"].any() for i in range(200))
    finally:
        done.set()
        thread.join()
    assert zeros == 0


def test_save_of_layers_of_ones_own_that_load_rebuilds_alike(tmp_path):
    class Tupled(bp.Layer):  # a tuple of arrays: NumPy's ambiguous truth value in the check
        def __init__(self, n=2, *, dtype=np.float32):
            super().__init__(dtype=dtype)
            self.n, self.pair = n, (np.zeros(n), np.ones(n))

        def forward(self, x, *, training=False):
            return x

        def backward(self, dy):
            return dy

    class Counted(bp.Dense):  # an argument used once, and a counter of its own
        def __init__(self, in_features, out_features, init_scale=1.0, **kw):
            super().__init__(in_features, out_features, **kw)
            self.params["W"][...] *= init_scale
            self.calls = 0

        def forward(self, x, *, training=False):
            self.calls += 1
            return super().forward(x, training=training)

    bp.register_layer(Tupled, name="ReviewTupled")
    bp.register_layer(Counted, name="ReviewCounted")
    bp.save(bp.Sequential([Tupled()]), tmp_path / "a.npz")
    model = bp.Sequential([Counted(2, 2, init_scale=0.5, rng=0)])
    model.forward(np.ones((1, 2), np.float32))
    bp.save(model, tmp_path / "b.npz")  # refused, after a forward, before
    np.testing.assert_array_equal(bp.load(tmp_path / "b.npz")[0].params["W"],
                                  model[0].params["W"])


def test_save_calls_an_optimizers_own_state_dict_override_as_it_is(tmp_path):
    class Logged(bp.SGD):
        def state_dict(self):
            return super().state_dict()
    model = bp.Sequential([bp.Dense(2, 2)])
    bp.save(model, tmp_path / "m.npz", optimizer=Logged(model.parameters(), lr=0.1))
    assert bp.load_checkpoint(tmp_path / "m.npz").optimizer_state["type"] == "Logged"


def test_cli_ctrl_c_while_scoring_says_where_the_model_is(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.npz"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(bp.Sequential, "evaluate", interrupted)
    assert _cli()(["train", "--no-progress", "--epochs", "1", "--output", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted while scoring the test set; the model is saved to {out}" in err
    assert isinstance(bp.load(out), bp.Sequential)  # "nothing was saved" before


# -- fit against a hand-written loop (25,000 randomized configurations matched) ---------------
@pytest.mark.parametrize("metric", ["f1", "auc", "accuracy"])
def test_fit_checks_a_batch_finite_before_its_metrics_score_it(metric):
    """The metrics ran before the finiteness check: NaN outputs made f1/auc raise their own
    ValueError, so on_nonfinite='skip' crashed and 'raise' lost fit's RuntimeError."""
    import itertools
    x = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32)
    probe = bp.Sequential([bp.Dense(4, 6, rng=1), bp.ReLU(), bp.Dense(6, 3, rng=3)])
    for signs in itertools.product([-1, 1, 0], repeat=4):  # a finite sample giving NaN
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isnan(probe.forward(np.array([signs], np.float32) * 3e38)).any():
                x[0] = np.array(signs, np.float32) * 3e38
                break
    else:
        pytest.fail("no finite sample gives NaN outputs")
    y = np.arange(12) % 3

    def fitted(mode):
        m = bp.Sequential([bp.Dense(4, 6, rng=1), bp.ReLU(), bp.Dense(6, 3, rng=3)])
        return m.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(m.parameters(),
                     lr=0.01), epochs=2, batch_size=4, seed=0, progress=False,
                     on_nonfinite=mode, metrics=[metric])
    with np.errstate(over="ignore", invalid="ignore"):
        assert fitted("skip").skipped_batches == 2  # the sample's batch, in each epoch
    with pytest.raises(RuntimeError, match="fit: expected a finite loss"):
        fitted("raise")


# -- a randomized round trip of every layer (save/load, deepcopy, astype, summary) -----------
def test_summary_leaves_max_norm_rows_and_takes_batch_norms_without_running_statistics():
    model = bp.Sequential([bp.Embedding(10, 3, max_norm=0.5, rng=0), bp.Flatten(),
                           bp.Dense(6, 4, rng=1), bp.BatchNorm(4, track_running_stats=False)])
    before = model.state_dict()
    text = str(model.summary((2,)))  # a BatchNorm refused one sample per channel
    for k, v in model.state_dict().items():  # the forward on zeros renormalised row 0
        np.testing.assert_array_equal(v, before[k])
    assert "(N, 4)" in text


# -- writing layers of one's own by the docs -------------------------------------------------
def test_a_layer_of_layers_must_be_a_container():
    """A bp.Layer with children() trained them, but its params, state_dict and save left
    their weights out (and save failed to rebuild it)."""
    with pytest.raises(TypeError, match="Pair: a layer made of layers .* subclasses bp.Container"):
        class Pair(bp.Layer):
            def children(self):
                return []

    class Pair2(bp.Container):  # the documented way
        def __init__(self, a, b, *, dtype=np.float32):
            super().__init__(dtype=dtype)
            self.a, self.b = a, b

        def children(self):
            return [("a", self.a), ("b", self.b)]

    assert list(Pair2(bp.Dense(2, 2), bp.Dense(2, 2)).state_dict()) == ["a.W", "a.b", "b.W",
                                                                        "b.b"]


def test_train_test_split_returns_dataframes_and_series_as_scikit_learn_does():
    """Session 24 (left from a review): a DataFrame came back as arrays, so a Standardizer
    fitted on the split had no column names to check."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20) * 3},
                      index=[f"r{i}" for i in range(20)])
    target = pd.Series(np.arange(20) % 2, index=df.index, name="t")
    x_tr, x_te, y_tr, y_te = bp.data.train_test_split(df, target, 0.25, stratify=True, rng=3)
    assert isinstance(x_tr, pd.DataFrame) and isinstance(x_te, pd.DataFrame)
    assert isinstance(y_tr, pd.Series) and y_te.name == "t"
    assert list(x_tr.columns) == ["a", "b"] and x_tr["b"].dtype == df["b"].dtype
    assert (x_tr.index == y_tr.index).all() and len(x_te) == 5
    arrays = bp.data.train_test_split(df.to_numpy(), target.to_numpy(), 0.25, stratify=True,
                                      rng=3)
    for frame, array in zip((x_tr, x_te, y_tr, y_te), arrays, strict=True):
        np.testing.assert_array_equal(frame.to_numpy(), array)  # the same rows, same order
    scaler = bp.data.Standardizer().fit(x_tr)
    with pytest.raises(ValueError, match="column"):
        scaler.transform(x_te[["b", "a"]])


def test_other_framework_names_are_pointed_at_in_any_case():
    """Session 24: bp.BatchNorm2D (backprop's own capital-D style, as Conv2D) and
    bp.conv2d got no pointer to BatchNorm / Conv2D; PyTorch's exact names did."""
    for name, ours in (("BatchNorm2D", "BatchNorm"), ("batchnorm1d", "BatchNorm"),
                       ("conv2d", "Conv2D"), ("LINEAR", "Dense"), ("BatchNorm3d", "BatchNorm")):
        with pytest.raises(AttributeError, match=f"'{name}'; backprop calls it {ours}"):
            getattr(bp, name)
    with pytest.raises(AttributeError, match=r"no attribute 'Nothing'$"):
        bp.Nothing  # noqa: B018


class _Scale(bp.Layer):
    """y = x·s with a parameter s: a layer of one's own, as the docs show."""

    _cache_attrs = ("_x",)

    def __init__(self, cache_in_inference=False, unlisted=False):
        super().__init__(dtype=np.float64)
        self.add_param("s", np.full(3, 2.0))
        self.cache_in_inference, self.unlisted = cache_in_inference, unlisted
        self._x = None

    def forward(self, x, *, training=False):
        if training or self.cache_in_inference:
            self._x = x
            if self.unlisted:
                self.seen = x * 1.0  # an array backward reads, not in _cache_attrs
        return x * self.params["s"]

    def backward(self, dy):
        x = self._pop("_x")
        self.grads["s"][...] = (dy * x).sum(axis=0)
        return dy * self.params["s"]


def test_check_gradients_notes_a_cache_kept_in_inference_or_outside_cache_attrs():
    """Session 24 (left from a review of writing layers by the docs): the checker passed
    such layers without a word, though layer.cache and clear_cache() miss their arrays."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    for layer, said in ((_Scale(), None),
                        (_Scale(cache_in_inference=True), "an inference forward"),
                        (_Scale(unlisted=True), "set arrays ['seen'] that _cache_attrs")):
        for stack in (False, True):
            result = bp.check_gradients(layer, x, stack=stack)
            assert result.passed  # the gradients are right: notes, not failures
            notes = [n for n in result.notes if "_Scale" in n]
            assert (notes == []) if said is None else any(said in n for n in notes), notes
    assert not any("_cache_attrs" in n or "inference forward" in n  # backprop's own
                   for n in bp.check_gradients(bp.Dense(3, 2, dtype=np.float64), x).notes)


def test_instance_norm_running_mean_of_rows_whose_float32_sums_overflow():
    """Final read, session 24: the float64 path for overflowing rows mended their xc and
    inv_std but left the mean (an InstanceNorm's running_mean) at inf."""
    x = np.full((2, 3, 4, 4), 3e37, np.float32)
    x[0, 0, 0, 0] = -3e37
    layer = bp.InstanceNorm2D(3, track_running_stats=True)
    layer.forward(x, training=True)
    mean = x.astype(np.float64).mean(axis=(2, 3)).mean(axis=0) * 0.1
    np.testing.assert_allclose(layer.buffers["running_mean"], mean, rtol=1e-6)
