"""Callbacks: hook protocol, early stopping, checkpoints, learning-rate control, resume."""

import warnings

import numpy as np
import pytest
from test_training import blobs, mlp, train

import backprop as bp


class Log(bp.Callback):
    def __init__(self):
        self.calls = []
        self.weights = []

    def on_train_begin(self, logs):
        self.calls.append("train_begin")

    def on_train_end(self, logs):
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")
        self.weights.append(self.model.flat_params.copy())

    def on_batch_begin(self, batch, logs):
        self.calls.append("b")

    def on_batch_end(self, batch, logs):
        self.calls.append("B")


def test_hooks_run_in_order_with_epoch_logs():
    log = Log()
    x, y = blobs(64)
    train(x=x, y=y, epochs=2, batch_size=32, callbacks=[log], validation_split=0.25)
    assert log.calls == [
        "train_begin",
        "epoch_begin 0", "b", "B", "b", "B", "epoch_end 0 ['loss', 'val_loss']",
        "epoch_begin 1", "b", "B", "b", "B", "epoch_end 1 ['loss', 'val_loss']",
        "train_end",
    ]


def test_callback_gets_model_optimizer_history_and_fit_state():
    class Check(bp.Callback):
        def on_train_begin(self, logs):
            self.seen = (self.model, self.optimizer, self.history, self.fit_state.epochs)

    cb = Check()
    model = mlp()
    opt = bp.SGD(model.parameters(), 0.1)
    _, h = train(model=model, optimizer=opt, epochs=2, callbacks=[cb])
    assert cb.seen == (model, opt, h, 2)


def test_fit_state_stop_ends_training_after_the_current_batch():
    class StopAt(bp.Callback):
        def on_batch_end(self, batch, logs):
            if self.fit_state.epoch == 1 and batch == 2:
                self.fit_state.stop = True

    _, h = train(epochs=5, callbacks=[StopAt()])
    assert h.epoch == [0, 1] and not h.interrupted  # the partial epoch is logged


# -- EarlyStopping ---------------------------------------------------------------------------
def test_early_stopping_stops_after_patience_and_restores_best_weights():
    log = Log()
    # the training loss falls every epoch, so in "max" mode epoch 0 stays the best
    stop = bp.EarlyStopping(monitor="loss", mode="max", patience=2)
    model, h = train(epochs=10, callbacks=[log, stop])
    assert h.epoch == [0, 1, 2] and stop.stopped_epoch == 2 and stop.best_epoch == 0
    np.testing.assert_array_equal(model.flat_params, log.weights[0])
    assert not np.array_equal(log.weights[0], log.weights[2])


def test_early_stopping_on_val_loss_restores_the_argmin_epoch():
    log = Log()
    x, y = blobs(90)
    y = np.where(np.arange(90) % 4 == 0, (y + 1) % 3, y)  # label noise: val loss turns up
    stop = bp.EarlyStopping(patience=3)
    model = bp.Sequential([bp.Dense(2, 64, rng=0), bp.ReLU(), bp.Dense(64, 3, rng=1)])
    _, h = train(model=model, x=x, y=y, epochs=200, batch_size=8, validation_split=0.3,
                 optimizer=bp.Adam(model.parameters(), lr=0.05), callbacks=[log, stop])
    best = int(np.argmin(h.history["val_loss"]))
    assert stop.stopped_epoch == best + 3 and len(h.epoch) < 200
    np.testing.assert_array_equal(model.flat_params, log.weights[best])


def test_early_stopping_without_restore_keeps_last_weights():
    log = Log()
    stop = bp.EarlyStopping(monitor="loss", mode="max", patience=1, restore_best=False)
    model, _ = train(epochs=10, callbacks=[log, stop])
    np.testing.assert_array_equal(model.flat_params, log.weights[-1])


def test_early_stopping_starts_afresh_in_each_fit():
    stop = bp.EarlyStopping(monitor="loss", mode="max", patience=1)
    _, h1 = train(epochs=10, callbacks=[stop])
    _, h2 = train(epochs=10, callbacks=[stop])
    assert h1.epoch == h2.epoch == [0, 1] and stop.best_epoch == 0


def test_early_stopping_min_delta_and_modes():
    assert bp.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert bp.EarlyStopping(monitor="val_loss").mode == "min"
    with pytest.raises(ValueError, match="expected mode 'auto', 'min' or 'max', got 'up'"):
        bp.EarlyStopping(mode="up")
    stop = bp.EarlyStopping(monitor="loss", min_delta=10.0)  # nothing improves by 10
    _, h = train(epochs=10, callbacks=[stop])
    assert h.epoch == [0, 1]


@pytest.mark.parametrize("monitor, mode", [
    ("val_top_5_accuracy", "max"), ("val_acc", "max"), ("val_f1_macro", "max"),
    ("auc", "max"), ("val_mae", "min"), ("mean_squared_error", "min"),
    ("val_dice_loss", "min"), ("val_error_rate", "min")])
def test_auto_mode_reads_the_direction_from_the_name(monitor, mode):
    """A callable f1 metric used to get 'min': EarlyStopping stopped while it rose."""
    assert bp.EarlyStopping(monitor=monitor).mode == mode
    assert bp.ModelCheckpoint("m.npz", monitor=monitor).mode == mode
    assert bp.ReduceLROnPlateau(monitor=monitor).plateau.mode == mode


def test_auto_mode_refuses_a_name_it_cannot_read():
    with pytest.raises(ValueError, match=r"EarlyStopping: cannot tell from its name whether "
                                         r"'val_brier' improves going up or down; pass "
                                         r"mode='max' .* or mode='min'"):
        bp.EarlyStopping(monitor="val_brier")
    assert bp.EarlyStopping(monitor="val_brier", mode="min").mode == "min"


def test_a_misspelt_monitor_gets_the_close_key_not_the_validation_hint():
    stop = bp.EarlyStopping(monitor="val_acc")
    with pytest.raises(ValueError, match=r"got 'val_acc'; did you mean 'val_accuracy'\?$"):
        train(epochs=1, callbacks=[stop], metrics=["accuracy"], validation_split=0.25)


# -- ModelCheckpoint -------------------------------------------------------------------------
def test_model_checkpoint_writes_each_epoch_with_formatted_names(tmp_path):
    ck = bp.ModelCheckpoint(tmp_path / "m-{epoch:02d}-{loss:.2f}.npz", monitor="loss")
    model, h = train(epochs=3, callbacks=[ck])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0].startswith("m-01-")
    last = bp.load_checkpoint(tmp_path / names[-1])
    np.testing.assert_array_equal(last.model.flat_params, model.flat_params)
    assert last.training_state["epoch"] == 3
    assert last.training_state["history"]["history"]["loss"] == h.history["loss"]
    assert last.optimizer_state["steps"] == 30


def test_model_checkpoint_save_best_only(tmp_path):
    ck = bp.ModelCheckpoint(tmp_path / "best-{epoch}.npz", monitor="loss", mode="max",
                            save_best_only=True)
    train(epochs=3, callbacks=[ck])
    assert [p.name for p in tmp_path.iterdir()] == ["best-1.npz"]


def test_model_checkpoint_path_must_be_a_str_or_pathlike():
    for bad in (None, 123, b"m.npz"):
        with pytest.raises(TypeError, match="ModelCheckpoint: expected path as a str or "
                                            "os.PathLike, got"):
            bp.ModelCheckpoint(bad)


@pytest.mark.parametrize("name, message", [
    ("m-{val_loss:.2f}.npz", r"expected path fields from \['epoch', 'loss'\], got "
                             r"\{val_loss\} in .*\(pass validation_data or validation_split\)"),
    ("m-{foo}-{epoch}-{bar.x}.npz", r"got \{foo\}, \{bar.x\} in"),
    ("m-{}.npz", r"expected path fields from .* got \{\} in"),
    ("m-{loss:d}.npz", "got ValueError: Unknown format code 'd'"),
    ("m-{epoch.npz", "got ValueError"),
    ("missing/m.npz", "expected path in an existing folder, got .*missing"),
    ("", "expected path to name a file, got .* which names the folder"),
])
def test_model_checkpoint_path_problems_fail_before_training(tmp_path, name, message):
    model = mlp()
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match="ModelCheckpoint: .*" + message):
        train(model=model, callbacks=[bp.ModelCheckpoint(str(tmp_path / name))])
    np.testing.assert_array_equal(model.flat_params, before)
    assert list(tmp_path.iterdir()) == []


def test_model_checkpoint_path_may_hold_keys_other_callbacks_log(tmp_path):
    class Logs(bp.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["noise"] = 0.5

    lr = bp.LearningRateScheduler(lambda epoch: 0.01)
    train(epochs=1, callbacks=[lr, Logs(), bp.ModelCheckpoint(
        tmp_path / "m-{epoch}-{lr:.2f}-{noise:.1f}-{val_accuracy:.1f}.npz")],
        validation_split=0.2, metrics=["accuracy"])
    assert [p.name for p in tmp_path.iterdir()][0].startswith("m-1-0.01-0.5-")


def test_model_checkpoint_names_a_field_another_callback_did_not_log(tmp_path):
    class Quiet(bp.Callback):  # from outside backprop, with an epoch hook: might log "foo"
        def on_epoch_end(self, epoch, logs):
            pass

    with pytest.raises(ValueError, match=r"expected path field \{foo\} among the logged keys "
                                         r"\['epoch', 'loss'\], got logs without it at epoch 0"):
        train(callbacks=[Quiet(), bp.ModelCheckpoint(tmp_path / "m-{foo}.npz")])

    class Mute(bp.Callback):  # no epoch hook: it cannot add keys, so the check comes first
        pass

    with pytest.raises(ValueError, match=r"ModelCheckpoint: expected path fields from "
                                         r"\['epoch', 'loss'\], got \{foo\}"):
        train(callbacks=[Mute(), bp.ModelCheckpoint(tmp_path / "m-{foo}.npz")])


# -- learning-rate control -------------------------------------------------------------------
def test_learning_rate_scheduler_sets_lr_each_epoch_and_logs_it():
    seen = []

    class Spy(bp.Callback):
        def on_batch_begin(self, batch, logs):
            if batch == 0:
                seen.append(self.optimizer.lr)

    sched = bp.StepLR(0.1, step_size=2, gamma=0.5)
    model = mlp()
    opt = bp.SGD(model.parameters(), lr=1.0)
    with pytest.warns(UserWarning, match=r"LearningRateScheduler: StepLR\(lr=0\.1, step_size=2, "
                                         r"gamma=0\.5\) starts from lr=0\.1, the optimizer from "
                                         r"lr=1; the schedule's rates are used"):
        _, h = train(model=model, optimizer=opt, epochs=5,
                     callbacks=[bp.LearningRateScheduler(sched), Spy()])
    expected = [0.1, 0.1, 0.05, 0.05, 0.025]
    assert seen == pytest.approx(expected) and h.history["lr"] == pytest.approx(expected)
    assert isinstance(opt.lr, float) and opt.lr == pytest.approx(0.025)
    seen.clear()  # the same lr in both: no warning (warnings are errors in this suite)
    opt = bp.SGD(model.parameters(), lr=0.1)
    train(model=model, optimizer=opt, epochs=2, callbacks=[bp.LearningRateScheduler(sched), Spy()])
    assert seen == pytest.approx([0.1, 0.1])
    seen.clear()  # continued with initial_epoch: the rate was the schedule's, no warning
    train(model=model, optimizer=opt, epochs=4, initial_epoch=2,
          callbacks=[bp.LearningRateScheduler(sched), Spy()])
    assert seen == pytest.approx([0.05, 0.05])


def test_learning_rate_scheduler_takes_keras_two_argument_schedules():
    # Keras calls schedule(epoch, lr) with the current rate; it used to fail with
    # Python's "missing 1 required positional argument: 'lr'"
    model = mlp()
    opt = bp.SGD(model.parameters(), lr=0.1)
    calls = []

    def halve(epoch, lr):
        calls.append((epoch, lr))
        return lr * 0.5

    _, h = train(model=model, optimizer=opt, epochs=3,
                 callbacks=[bp.LearningRateScheduler(halve)])
    assert calls == [(0, 0.1), (1, 0.05), (2, 0.025)]
    assert h.history["lr"] == pytest.approx([0.05, 0.025, 0.0125])
    with pytest.raises(ValueError, match=r"expected schedule\(0, 0\.0125\) to return"):
        train(model=model, optimizer=opt, callbacks=[
            bp.LearningRateScheduler(lambda epoch, lr: -lr)])


def _constant(value):
    """schedule(epoch) -> value (a default argument would take the rate, as in Keras)."""
    return lambda epoch: value


def test_learning_rate_scheduler_rejects_bad_rates():
    for bad in (-1.0, float("nan"), float("inf"), "0.1"):
        with pytest.raises(ValueError if isinstance(bad, float) else TypeError,
                           match=r"expected schedule\(0\) to return a finite number >= 0, got"):
            train(callbacks=[bp.LearningRateScheduler(_constant(bad))])
    with pytest.raises(TypeError, match="expected a callable schedule"):
        bp.LearningRateScheduler(0.1)


def test_cosine_schedule_runs_through_its_zero_as_in_pytorch():
    # CosineAnnealingLR(eta_min=0) gives exactly 0 at epoch T_max, then rises again, as
    # torch's does; an epoch at lr 0 trains nothing (it used to stop fit with an error)
    sched = bp.CosineAnnealingLR(0.1, T_max=2)
    seen = []

    class Spy(bp.Callback):
        def on_epoch_begin(self, epoch, logs):
            seen.append(self.model.flat_params.copy())

    model = mlp()
    _, h = train(model=model, optimizer=bp.SGD(model.parameters(), lr=0.1), epochs=4,
                 callbacks=[bp.LearningRateScheduler(sched), Spy()])
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.0, 0.05])
    assert h.history["lr"][2] == 0.0
    assert np.array_equal(seen[3], seen[2])  # epoch 2 (lr 0) left the weights alone
    assert not np.array_equal(seen[2], seen[1])


def test_reduce_lr_on_plateau_reduces_after_patience():
    model = mlp()
    opt = bp.SGD(model.parameters(), lr=0.1)
    cb = bp.ReduceLROnPlateau(monitor="loss", mode="max", factor=0.5, patience=0)
    _, h = train(model=model, optimizer=opt, epochs=4, callbacks=[cb])
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert opt.lr == pytest.approx(0.0125)


# -- resume ----------------------------------------------------------------------------------
def net(seed=0):
    return bp.Sequential([bp.Dense(2, 32, rng=seed), bp.BatchNorm(32), bp.ReLU(),
                          bp.Dropout(0.3, rng=seed + 10), bp.Dense(32, 3, rng=seed + 1)])


def fit6(model, path, **kwargs):
    x, y = blobs()
    args = dict(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters(), lr=0.01),
                epochs=6, batch_size=16, validation_split=0.2, metrics=["accuracy"], seed=0,
                progress=False, callbacks=[bp.EarlyStopping(patience=50),
                                           bp.ModelCheckpoint(path / "ck-{epoch}.npz")])
    return model.fit(x, y, **{**args, **kwargs})


def test_resume_from_checkpoint_continues_bit_for_bit(tmp_path):
    straight = net()
    h1 = fit6(straight, tmp_path)
    resumed = net(seed=99)  # different initial weights: all overwritten by the checkpoint
    h2 = fit6(resumed, tmp_path, resume=tmp_path / "ck-3.npz")
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    for k, v in straight.buffers.items():
        np.testing.assert_array_equal(resumed.buffers[k], v)
    assert h2.history == h1.history and h2.epoch == list(range(6)) and h2.seed == 0
    assert h2.params["initial_epoch"] == 3


def test_resume_restores_a_best_epoch_from_before_the_checkpoint(tmp_path):
    """The best weights travel in the checkpoint: mode="max" on a falling training loss
    makes epoch 0 the best, three epochs before the checkpoint the run resumes from."""
    def cbs():
        return [bp.EarlyStopping(monitor="loss", mode="max", patience=50),
                bp.ModelCheckpoint(tmp_path / "ck-{epoch}.npz")]

    straight = net()
    fit6(straight, tmp_path, callbacks=cbs())
    one = net()
    fit6(one, tmp_path / "unused", callbacks=[], epochs=1)
    np.testing.assert_array_equal(straight.flat_params, one.flat_params)  # epoch 0 restored
    resumed = net(seed=99)
    fit6(resumed, tmp_path, callbacks=cbs(), resume=tmp_path / "ck-3.npz")
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    for k, v in straight.buffers.items():
        np.testing.assert_array_equal(resumed.buffers[k], v)


def test_resume_accepts_a_loaded_checkpoint(tmp_path):
    straight = net()
    fit6(straight, tmp_path)
    resumed = net()
    fit6(resumed, tmp_path, resume=bp.load_checkpoint(tmp_path / "ck-5.npz"))
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)


def test_resume_rejects_other_architectures_and_plain_saves(tmp_path):
    fit6(net(), tmp_path)
    other = bp.Sequential([bp.Dense(2, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)])
    before = other.flat_params.copy()
    with pytest.raises(ValueError, match="expected a checkpoint of this model's architecture"):
        fit6(other, tmp_path, resume=tmp_path / "ck-2.npz")
    np.testing.assert_array_equal(other.flat_params, before)
    bp.save(other, tmp_path / "plain.npz")
    with pytest.raises(ValueError, match=r"expected resume .*plain\.npz' to be a checkpoint "
                                         r"written by"):
        train(model=other, resume=tmp_path / "plain.npz")


@pytest.mark.parametrize("change, message", [
    # anchored: a mismatch is reported as itself, not as a damaged checkpoint
    (dict(callbacks=[]), r"^fit: expected the callbacks of the checkpointed run "
                         r"\['EarlyStopping', "),
    ("sgd", r"^fit: expected a checkpoint with SGD optimizer state, got 'Adam'$"),
    (dict(validation_split=0.0), r"^EarlyStopping: expected monitor to be one of"),
])
def test_resume_checks_everything_before_changing_weights(tmp_path, change, message):
    fit6(net(), tmp_path)
    model = net(seed=5)
    before = model.flat_params.copy()
    if change == "sgd":
        change = dict(optimizer=bp.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=message):
        fit6(model, tmp_path, resume=tmp_path / "ck-2.npz", **change)
    np.testing.assert_array_equal(model.flat_params, before)


def _tamper(state, what):
    if what == "no rng":
        del state["rng"]
    elif what == "bad callback state":
        state["callbacks"][0]["state"] = "garbage"
    elif what == "callbacks not dicts":
        state["callbacks"] = ["EarlyStopping", "ModelCheckpoint"]
    else:
        key, value = what.split("=")
        state[key] = {"history": "x", "seed": "x", "epoch": -3, "rng": {"state": 1}}[key]


@pytest.mark.parametrize("what, message", [
    ("no rng", r"KeyError: 'rng'"),
    ("history=x", r"TypeError"),
    ("seed=x", r"expected the saved seed .*to be an int >= 0, got 'x'"),
    ("epoch=-3", r"expected the saved epoch >= 0, got -3"),
    ("rng=x", r"ValueError: state must be for a PCG64 RNG"),
    ("bad callback state", r"TypeError: string indices must be integers"),
    ("callbacks not dicts", r"TypeError: string indices must be integers"),
])
def test_resume_from_a_damaged_training_state_names_it_and_changes_nothing(tmp_path, what,
                                                                            message):
    fit6(net(), tmp_path)
    ckpt = bp.load_checkpoint(tmp_path / "ck-2.npz")
    _tamper(ckpt.training_state, what)
    model = net(seed=5)
    before = model.flat_params.copy()
    opt = bp.Adam(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match=r"fit: expected resume to hold the training state "
                                         r"ModelCheckpoint writes, got a damaged one \(.*"
                                         + message):
        fit6(model, tmp_path, resume=ckpt, optimizer=opt)
    np.testing.assert_array_equal(model.flat_params, before)
    assert opt.steps == 0 and not any(s["exp_avg"].any() for s in opt.state)
    ckpt.optimizer_state = ["not", "a", "dict"]
    with pytest.raises(ValueError, match="expected resume to be a checkpoint written by"):
        fit6(model, tmp_path, resume=ckpt)


def test_resume_checks_batchnorm_batch_sizes_before_changing_weights(tmp_path):
    fit6(net(), tmp_path)
    model = net(seed=5)
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match=r"expected training batches of 2 or more samples for "
                                         r"BatchNorm\(32\).* 240 training sample\(s\) in "
                                         r"batches of 239"):
        fit6(model, tmp_path, resume=tmp_path / "ck-2.npz", batch_size=239)
    np.testing.assert_array_equal(model.flat_params, before)


class _Score(bp.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = 1.0 / (epoch + 1)  # falls: a max-mode monitor stops after patience


def _small():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    model = bp.Sequential(bp.Dense(4, 2, rng=0))
    return model, x, (x[:, 0] > 0).astype(int)


def test_a_log_key_added_by_a_users_callback_can_be_monitored():
    model, x, y = _small()
    stop = bp.EarlyStopping(monitor="score", mode="max", patience=1)
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                        epochs=10, progress=False, callbacks=[_Score(), stop])
    assert history.epoch == [0, 1] and history.history["score"] == [1.0, 0.5]
    with pytest.raises(ValueError, match=r"EarlyStopping: expected monitor to be one of "
                                         r"\['loss'\], got 'score' \(a key your own callback adds "
                                         r"must be added by a callback listed before this one: "
                                         r"_Score comes after it\)"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                  epochs=3, progress=False, callbacks=[bp.EarlyStopping(monitor="score",
                                                                        mode="max"), _Score()])
    with pytest.raises(ValueError, match=r"got 'los'; did you mean 'loss'\?"):  # checked early
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                  epochs=3, progress=False, callbacks=[bp.EarlyStopping(monitor="los", mode="min")])


@pytest.mark.parametrize("where", ["epoch", "batch"])
def test_keras_stop_training_on_the_model_ends_the_fit(where):
    class Stop(bp.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if where == "epoch" and epoch == 1:
                self.model.stop_training = True

        def on_batch_end(self, batch, logs=None):
            if where == "batch" and batch == 1:
                self.model.stop_training = True

    model, x, y = _small()
    fit = dict(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()), epochs=5,
               batch_size=8, progress=False)
    history = model.fit(x, y, callbacks=[Stop()], **fit)
    assert history.epoch == ([0, 1] if where == "epoch" else [0])
    assert model.fit(x, y, **fit).epoch == [0, 1, 2, 3, 4]  # the next fit starts afresh


def test_a_schedule_with_a_function_inside_resumes_in_another_process_without_a_warning():
    """LinearWarmup(after=decay) stored decay's repr, whose address differs in every process:
    each resume warned of 'another schedule'."""
    def make():
        def decay(epoch):
            return 0.1 * 0.5 ** epoch
        return bp.LearningRateScheduler(bp.LinearWarmup(0.1, 2, after=decay))

    saved = make().state_dict()  # two function objects: as in two processes
    assert "0x" not in saved["schedule"] and "after=" in saved["schedule"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make().load_state_dict(saved)
    other = bp.LearningRateScheduler(bp.LinearWarmup(0.1, 3, after=bp.StepLR(0.1, 2)))
    with pytest.warns(UserWarning, match="another schedule than the checkpointed run"):
        other.load_state_dict(saved)
