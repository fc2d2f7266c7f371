"""Review of the training loop (session 19): resume, checkpoints, weights, torch parity.

Each test here failed before its fix, except two guards: the PyTorch parity check, and
that a refused resume puts back the optimizer setting the momentum fix turns on.
"""

import warnings

import numpy as np
import pytest

import backprop as bp


def _data(n=40, d=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, c, size=n)


def _mlp(dtype=np.float32):
    return bp.Sequential([bp.Dense(4, 8, rng=0, dtype=dtype), bp.ReLU(),
                          bp.Dense(8, 3, rng=1, dtype=dtype)])


class _Score(bp.Callback):
    """Logs a made-up "score" per epoch, so that "best" epochs are known in advance."""

    values = (5.0, 3.0, 4.0, 4.5, 2.0, 1.0, 0.5, 0.1)

    def on_epoch_end(self, epoch, logs):
        logs["score"] = self.values[epoch]


# -- two ModelCheckpoints: the state one saves holds the other's best of the same epoch --
def test_resume_from_last_checkpoint_never_overwrites_a_better_best_file(tmp_path):
    x, y = _data()
    last, best = tmp_path / "last.npz", tmp_path / "best.npz"

    def run(epochs, resume=None):
        model = _mlp()
        cbs = [_Score(), bp.ModelCheckpoint(last),
               bp.ModelCheckpoint(best, monitor="score", mode="min", save_best_only=True)]
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), 0.1),
                  epochs=epochs, batch_size=8, seed=1, callbacks=cbs, progress=False,
                  resume=resume)
        return cbs[2]

    run(2)  # scores 5, 3: best.npz holds epoch 1 (score 3); last.npz too
    saved = bp.load_checkpoint(last).training_state["callbacks"][2]["state"]
    assert saved["best"] == 3.0  # was 5.0: saved before the best checkpoint's own update
    cb = run(3, resume=last)  # epoch 2 scores 4: worse than 3, so best.npz stays
    assert cb.best == 3.0
    assert bp.load_checkpoint(best).training_state["epoch"] == 2


# -- a run that EarlyStopping ended: its resume ends there too ---------------------------
@pytest.mark.parametrize("restore_best", [False, True])
def test_resume_of_an_early_stopped_run_trains_no_further(tmp_path, restore_best):
    x, y = _data()
    path = tmp_path / "c.npz"

    def run(resume=None):
        model = _mlp()
        stop = bp.EarlyStopping("score", mode="min", patience=2, restore_best=restore_best)
        h = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                      optimizer=bp.SGD(model.parameters(), 0.1), epochs=8, batch_size=8,
                      seed=1, callbacks=[_Score(), stop, bp.ModelCheckpoint(path)],
                      progress=False, resume=resume)
        return model, h

    a, ha = run()
    assert ha.epoch == [0, 1, 2, 3]  # no improvement on 3 at epochs 2 and 3
    with pytest.warns(UserWarning, match="ended by a callback"):
        b, hb = run(resume=path)  # trained epochs 4-7 before (score 2 at epoch 4)
    assert hb.epoch == [0, 1, 2, 3]
    np.testing.assert_array_equal(b.flat_params, a.flat_params)


# -- sample and class weights beyond the model dtype: named, not NumPy's overflow ----------
def test_weights_beyond_float32_are_refused_by_name():
    x, y = _data()
    n = len(y)
    model = _mlp()
    before = model.flat_params.copy()

    def fit(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # was: RuntimeWarning "overflow encountered in cast"
            model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                      optimizer=bp.SGD(model.parameters(), 0.1), progress=False, **kw)

    with pytest.raises(ValueError, match="sample_weight within the float32 range"):
        fit(sample_weight=np.full(n, 1e300))
    with pytest.raises(ValueError, match="validation_data.*sample_weight within the float32"):
        fit(validation_data=(x, y, np.full(n, 1e300)))
    with pytest.raises(ValueError, match=r"class_weight\[0\]"):
        fit(class_weight={0: 1e300})
    with pytest.raises(ValueError, match="class_weight times sample_weight"):
        fit(class_weight={0: 1e30}, sample_weight=np.full(n, 1e30))
    with pytest.raises(ValueError, match="sample_weight within the float32 range"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bp.evaluate(model, x, y, loss=bp.SoftmaxCrossEntropy(),
                        sample_weight=np.full(n, 1e300))
    np.testing.assert_array_equal(model.flat_params, before)  # refused before any step


# -- a scheduled momentum on an optimizer built without one: resume loads its buffer ---------
@pytest.mark.parametrize("opt", ["SGD", "RMSprop", "groups"])
def test_resume_with_one_cycle_momentum_on_an_optimizer_built_without(tmp_path, opt):
    x, y = _data()
    path = tmp_path / "c.npz"

    def run(epochs, resume=None):
        model = _mlp()
        if opt == "groups":
            o = bp.SGD([{"params": model[0].parameters()},
                        {"params": model[2].parameters(), "lr": 0.005}], lr=0.01)
        else:
            o = getattr(bp, opt)(model.parameters(), lr=0.01)  # momentum 0, as in PyTorch
        cycle = bp.LearningRateScheduler(bp.OneCycleLR(0.1, epochs=4, steps_per_epoch=5))
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=o, epochs=epochs,
                  batch_size=8, seed=0, progress=False,
                  callbacks=[cycle, bp.ModelCheckpoint(path)], resume=resume)
        return model, o

    a, oa = run(4)
    run(2)
    b, ob = run(4, resume=path)  # was: ValueError "expected state without momentum_buffer"
    np.testing.assert_array_equal(b.flat_params, a.flat_params)
    assert ob.momentum == oa.momentum


def test_a_refused_resume_leaves_the_optimizer_as_built(tmp_path):
    x, y = _data()
    path = tmp_path / "c.npz"
    model = _mlp()
    cycle = bp.LearningRateScheduler(bp.OneCycleLR(0.1, epochs=4, steps_per_epoch=5))
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), 0.01),
              epochs=2, batch_size=8, seed=0, progress=False,
              callbacks=[cycle, bp.ModelCheckpoint(path)])
    ckpt = bp.load_checkpoint(path)
    ckpt.optimizer_state["steps"] = -1  # damaged: refused by the optimizer's own checks
    fresh = _mlp()
    opt = bp.SGD(fresh.parameters(), 0.01)
    cycle = bp.LearningRateScheduler(bp.OneCycleLR(0.1, epochs=4, steps_per_epoch=5))
    with pytest.raises(ValueError, match="steps"):
        fresh.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=4, batch_size=8,
                  progress=False, callbacks=[cycle, bp.ModelCheckpoint(path)], resume=ckpt)
    assert opt.momentum == 0.0 and opt.steps == 0
    assert "momentum_buffer" not in opt.state[0]


# -- PyTorch parity: a short fit against the same loop written in torch, float64 ---------
def test_fit_matches_a_torch_loop_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    n, bs = 37, 8  # a last batch of 5
    x, y = rng.normal(size=(n, 4)), rng.integers(0, 3, size=n)
    w = rng.uniform(0.1, 2.0, size=n)
    model = _mlp(np.float64)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net = net.double()
    with torch.no_grad():
        for i, j in ((0, 0), (2, 2)):
            net[j].weight.copy_(torch.tensor(model[i].params["W"].T))
            net[j].bias.copy_(torch.tensor(model[i].params["b"]))
    h = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), sample_weight=w, epochs=3, batch_size=bs,
                  shuffle=False, progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    xt, yt, wt = torch.tensor(x), torch.tensor(y), torch.tensor(w)
    losses = []
    for _ in range(3):
        total = 0.0
        for s in range(0, n, bs):  # Keras' weighted mean: sum(w * l) / batch size
            opt.zero_grad()
            per = torch.nn.functional.cross_entropy(net(xt[s:s + bs]), yt[s:s + bs],
                                                    reduction="none")
            loss = (per * wt[s:s + bs]).sum() / len(per)
            loss.backward()
            opt.step()
            total += loss.item() * len(per)
        losses.append(total / n)
    np.testing.assert_allclose(model[0].params["W"], net[0].weight.detach().numpy().T,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(model[2].params["b"], net[2].bias.detach().numpy(),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(h.history["loss"], losses, rtol=1e-12)


@pytest.mark.parametrize("n", [0, 1])
def test_train_test_split_of_fewer_than_two_samples_says_so(n):
    with pytest.raises(ValueError, match=rf"expected at least 2 samples .* got {n}$"):
        bp.data.train_test_split(np.zeros((n, 2)), np.zeros(n))
