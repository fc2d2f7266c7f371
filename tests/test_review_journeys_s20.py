"""Findings of a review that wrote PyTorch and Keras users' programs (twentieth session)."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_regression_metrics_take_sequence_outputs():
    """mae, mse and r2 refused (N, T, F) outputs, so a sequence regressor's fit stopped at
    its first batch (Keras' take any shape)."""
    rng = np.random.default_rng(0)
    y, out = rng.standard_normal((2, 16, 5, 3))
    assert bp.metrics.mean_absolute_error(y, out) == pytest.approx(np.mean(np.abs(out - y)))
    assert bp.metrics.mean_squared_error(y, out) == pytest.approx(np.mean((out - y) ** 2))
    flat_y, flat_out = y.reshape(16, -1), out.reshape(16, -1)  # each of T·F a column
    ss_res = ((flat_out - flat_y) ** 2).sum(0)
    ss_tot = ((flat_y - flat_y.mean(0)) ** 2).sum(0)
    assert bp.metrics.r2(y, out) == pytest.approx(np.mean(1 - ss_res / ss_tot), rel=1e-12)
    model = bp.Sequential([bp.GRU(1, 4, rng=0), bp.Dense(4, 1, rng=1)])
    x = rng.standard_normal((12, 6, 1)).astype(np.float32)
    history = model.fit(x, x, loss=bp.MeanSquaredError(), optimizer=bp.SGD(model, lr=0.01),
                        metrics=["mae", "mse", "r2"], batch_size=12, progress=False)
    assert history.history["mse"][0] == pytest.approx(history.history["loss"][0], rel=1e-6)
    scores = model.evaluate(x, x, loss=bp.MeanSquaredError(), metrics=["mae", "r2"])
    pred = model.predict(x)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(pred - x)), rel=1e-6)
    assert scores["r2"] == pytest.approx(bp.metrics.r2(x, pred), rel=1e-9)
    with pytest.raises(ValueError, match=r"mean_absolute_error: expected output of shape "
                                         r"\(N, \.\.\.\) with N > 0 and no axis of length 0, "
                                         r"got \(0, 2\)"):
        bp.metrics.mean_absolute_error(np.zeros((0, 2)), np.zeros((0, 2)))


def test_a_sequential_takes_lengths_as_its_layers_do():
    """model(x, lengths=l) raised a bare TypeError: PyTorch users hold lengths."""
    rng = np.random.default_rng(1)
    model = bp.Sequential([bp.GRU(3, 4, rng=0), bp.LSTM(4, 2, return_sequences=False,
                                                            rng=1)])
    x = rng.standard_normal((5, 6, 3)).astype(np.float32)
    lengths = np.array([6, 3, 1, 0, 4])
    mask = np.arange(6) < lengths[:, None]
    want = model.forward(x, mask=mask)
    np.testing.assert_array_equal(model(x, lengths=lengths), want)
    np.testing.assert_array_equal(model.forward(x, lengths=lengths, training=True), want)
    by_hand = model[1](model[0](x, lengths=lengths), lengths=lengths)
    np.testing.assert_array_equal(by_hand, want)
    with pytest.raises(ValueError, match="got src_key_padding_mask and lengths"):
        model(x, lengths=lengths, src_key_padding_mask=~mask)
    with pytest.raises(ValueError, match="got mask and lengths"):
        model.forward(x, lengths=lengths, mask=mask)
    with pytest.raises(ValueError, match=r"Sequential: expected lengths in \[0, T\]"):
        model(x, lengths=lengths + 1)


def test_fit_drop_last_skips_the_short_batch_as_a_dataloader():
    """PyTorch's DataLoader(drop_last=True): a BatchNorm model on 65 samples in batches of
    32 was refused (a last batch of 1) with no such option in fit."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((65, 4)).astype(np.float32)
    y = rng.integers(0, 3, 65)

    def run(labels, **options):
        model = bp.Sequential([bp.Dense(4, 8, rng=0), bp.BatchNorm(8), bp.ReLU(),
                               bp.Dense(8, 3, rng=1)])
        opt = bp.SGD(model, lr=0.1, momentum=0.9)
        history = model.fit(x, labels, loss=bp.SoftmaxCrossEntropy(), optimizer=opt,
                            batch_size=32, epochs=2, progress=False, **options)
        return model, opt, history

    with pytest.raises(ValueError, match=r"last batch of 1; use batch_size=31 or "
                                         r"batch_size=33 \(or drop_last=True\)"):
        run(y)
    model, opt, history = run(y, drop_last=True, shuffle=False)
    assert opt.steps == 4 and history.params["steps"] == 2
    other = y.copy()
    other[64] = (y[64] + 1) % 3  # the sample the unshuffled epochs never reach
    twin, _, twin_history = run(other, drop_last=True, shuffle=False)
    np.testing.assert_array_equal(model.flat_params, twin.flat_params)
    assert twin_history.history == history.history
    _, opt, _ = run(y, drop_last=True, seed=3)
    assert opt.steps == 4
    stateful = bp.Sequential([bp.GRU(4, 3, stateful=True, return_sequences=False, rng=0)])
    seqs = rng.standard_normal((10, 5, 4)).astype(np.float32)
    stateful.fit(seqs, np.zeros((10, 3), np.float32), loss=bp.MeanSquaredError(),
                 optimizer=bp.SGD(stateful, lr=0.1), batch_size=4, drop_last=True,
                 shuffle=False, progress=False)
    assert stateful[0].state.shape == (4, 3)
    with pytest.raises(ValueError, match=r"fit: drop_last=True skips a last batch smaller "
                                         r"than batch_size=32, which here is every batch"):
        model.fit(x[:10], y[:10], loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model, lr=1),
                  batch_size=32, drop_last=True)
    with pytest.raises(TypeError, match="drop_last"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model, lr=1),
                  drop_last="yes")


def test_hints_for_pytorch_and_keras_habits():
    rng = np.random.default_rng(3)
    keras_like = bp.Sequential([bp.Embedding(10, 4), bp.GRU(4, 3), bp.Dense(3, 2)])
    with pytest.raises(ValueError, match=r"return_sequences=False, Keras' default, gives "
                                         r"the last one"):
        keras_like.fit(rng.integers(1, 10, (8, 5)), np.zeros(8, int),
                       loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(keras_like, lr=0.1))
    model = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dense(8, 3)])
    torch_state = {"0.weight": np.ones((8, 4)), "0.bias": np.ones(8),
                   "2.weight": np.ones((3, 8)), "2.bias": np.ones(3)}
    with pytest.raises(ValueError, match=r"a PyTorch state_dict\? bp.from_torch\(model, "
                                         r"state_dict\) converts"):
        model.load_state_dict(torch_state)
    with pytest.raises(ValueError, match=r"strict=False loads the names that match"):
        model.load_state_dict({"0.W": np.ones((4, 8))})
    lstm = bp.Sequential([bp.LSTM(3, 4)])  # a review: recurrent and attention names too
    for names in (["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0_reverse"],
                  ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]):
        with pytest.raises(ValueError, match=r"a PyTorch state_dict\?"):
            lstm.load_state_dict({k: np.ones(2) for k in names})

    class Module:  # what from_torch gets given a torch module itself
        def state_dict(self):
            return torch_state

    with pytest.raises(TypeError, match=r"got Module: pass the module's state_dict\(\)"):
        bp.from_torch(model, Module())
    with pytest.raises(ValueError, match=r"in a Sequential a layer bp.Permute\(\(2, 1\)\)"):
        bp.Sequential([bp.Conv1D(4, 3, 2)]).forward(np.zeros((2, 7, 4), np.float32))
    with pytest.raises(TypeError, match="train_test_split calls it rng"):
        bp.data.train_test_split(np.zeros((10, 2)), np.zeros(10), seed=0)


def test_loading_a_pytorch_file_says_so(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    with pytest.raises(ValueError, match=r"this is a PyTorch file \(torch.save\): torch.load "
                                         r"it and convert"):
        bp.load(path)


@pytest.mark.parametrize("target_shape", [(13, 3, 4), (13, 12)])
def test_targets_laid_out_otherwise_are_refused_not_reshaped(target_shape):
    """With (N, T, F) outputs now scored, a target of the same size in another layout was
    reshaped silently (a review of the change); only axes of size 1 may differ."""
    out = np.random.default_rng(4).standard_normal((13, 4, 3))
    y = np.zeros(target_shape)
    for score in (bp.metrics.mean_absolute_error, bp.metrics.mean_squared_error, bp.metrics.r2):
        with pytest.raises(ValueError, match=r"expected y_true of shape \(13, 4, 3\)"):
            score(y, out)
    for loss in (bp.MeanSquaredError(dtype=np.float64), bp.Huber(dtype=np.float64)):
        with pytest.raises(ValueError, match=r"expected target of shape \(13, 4, 3\)"):
            loss.forward(out, y)
    column = np.zeros((13, 1))
    assert bp.metrics.mean_absolute_error(np.zeros(13), column) == 0.0  # (N,) for (N, 1)
    assert bp.MeanSquaredError(dtype=np.float64).forward(column, np.zeros(13)) == 0.0
    assert bp.metrics.mean_squared_error(np.zeros((13, 4, 1, 3)), out) > 0


def test_resume_with_drop_last_goes_on_bit_for_bit_and_another_drop_last_warns(tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((30, 6)).astype(np.float32), rng.integers(0, 3, 30)
    path = tmp_path / "ckpt.npz"

    def fit(epochs, **kwargs):
        model = bp.Sequential([bp.Dense(6, 3, rng=0)])
        history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                            optimizer=bp.SGD(model, lr=0.1, momentum=0.9), epochs=epochs,
                            batch_size=8, seed=0, progress=False,
                            callbacks=[bp.ModelCheckpoint(path, monitor="loss")], **kwargs)
        return model, history

    whole, history = fit(3, drop_last=True)
    assert history.params["drop_last"] is True and history.params["steps"] == 3
    fit(2, drop_last=True)
    resumed, _ = fit(3, drop_last=True, resume=path)
    np.testing.assert_array_equal(resumed.flat_params, whole.flat_params)
    fit(2, drop_last=True)
    with pytest.warns(UserWarning, match=r"other settings than the checkpointed run "
                                         r"\(drop_last=True -> False\)"):
        fit(3, resume=path)
