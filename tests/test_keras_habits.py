"""Keras and scikit-learn habits in fit, callbacks, metrics and data: they work as there,
or fail naming backprop's way."""

import functools
import os
import sys

import numpy as np
import pytest
from test_training import blobs, mlp, train

import backprop as bp
from backprop import data


def test_a_history_passed_as_a_callback_records_the_epochs_too():
    own = bp.History()
    _, history = train(epochs=3, callbacks=[own])
    assert own.history == history.history and own.epoch == [0, 1, 2]


def test_a_keras_style_callback_keeps_its_own_history_dict():
    class LossHistory(bp.Callback):
        def __init__(self):
            self.history = {"loss": []}

        def on_epoch_end(self, epoch, logs):
            self.history["loss"].append(logs["loss"])

    cb = LossHistory()
    _, history = train(epochs=2, callbacks=[cb])
    assert cb.history == {"loss": history.history["loss"]}


def test_a_callback_without_a_history_gets_the_fits_and_its_params():
    class Plain(bp.Callback):
        pass

    cb = Plain()
    _, history = train(epochs=2, batch_size=100, callbacks=[cb])
    assert cb.history is history
    assert cb.params["epochs"] == 2 and cb.params["steps"] == 3
    _, again = train(epochs=1, callbacks=[cb])  # reused: the new fit's History
    assert cb.history is again


def test_keras_3_batch_hook_names_are_called():
    class Keras3(bp.Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_begin(self, batch, logs):
            self.seen.append(("begin", batch))

        def on_train_batch_end(self, batch, logs):
            self.seen.append(("end", batch, logs["size"]))

    class Both(bp.Callback):  # Keras' default on_train_batch_end calls on_batch_end
        def __init__(self):
            self.seen = []

        def on_batch_end(self, batch, logs):
            self.seen.append("old")

        def on_train_batch_end(self, batch, logs):
            self.seen.append("new")
            super().on_train_batch_end(batch, logs)

    k, b = Keras3(), Both()
    train(epochs=1, batch_size=200, callbacks=[k, b])
    assert k.seen == [("begin", 0), ("end", 0, 200), ("begin", 1), ("end", 1, 100)]
    assert b.seen == ["new", "old", "new", "old"]


def test_hooks_backprop_never_calls_warn_where_they_are_written():
    with pytest.warns(UserWarning, match=r"OnTest defines on_test_batch_end, on_test_end, "
                                         r"which backprop never calls"):
        class OnTest(bp.Callback):
            def on_test_end(self, logs):
                pass

            def on_test_batch_end(self, batch, logs):
                pass


def test_class_weight_refuses_multi_label_rows():
    x = np.zeros((4, 3), np.float32)
    y = np.array([[0, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    model = bp.Sequential([bp.Dense(3, 3, rng=0)])
    with pytest.raises(ValueError, match=r"^fit \(class_weight\): expected one label per "
                                         r".*class_weight weighs the one class of each sample"):
        model.fit(x, y, loss=bp.BinaryCrossEntropyWithLogits(), class_weight={0: 5.0},
                  optimizer=bp.SGD(model.parameters()), progress=False)


def test_checkpoint_path_with_a_misspelt_val_field_names_the_right_one(tmp_path):
    cb = bp.ModelCheckpoint(str(tmp_path / "m-{val_acc:.2f}.npz"))
    with pytest.raises(ValueError, match=r"got \{val_acc\} in .*; did you mean "
                                         r"'val_accuracy'\?$"):
        train(callbacks=[cb], validation_split=0.2, metrics=["accuracy"])


def test_keras_2_acc_is_pointed_at_accuracy():
    with pytest.raises(ValueError, match=r"got 'acc'; did you mean 'accuracy'\?$"):
        train(callbacks=[bp.EarlyStopping("acc")], metrics=["accuracy"])


def test_keras_3s_learning_rate_key_is_pointed_at_lr():
    with pytest.raises(ValueError, match=r"got 'learning_rate'; did you mean 'lr'\?$"):
        train(callbacks=[bp.ReduceLROnPlateau("loss"),
                         bp.EarlyStopping("learning_rate", mode="min")])


def test_a_best_only_checkpoint_is_not_overwritten_by_a_worse_later_fit(tmp_path):
    path = str(tmp_path / "best.npz")
    cb = bp.ModelCheckpoint(path, monitor="loss", save_best_only=True)
    model, first = train(epochs=3, callbacks=[cb])
    saved, best = os.path.getmtime(path), cb.best
    assert best == min(first.history["loss"])
    worse = mlp(seed=7)  # an untrained model: a far higher loss
    opt = bp.SGD(worse.parameters(), lr=1e-4)
    train(model=worse, optimizer=opt, epochs=1, callbacks=[cb])
    assert os.path.getmtime(path) == saved and cb.best == best
    np.testing.assert_array_equal(bp.load(path).flat_params, model.flat_params)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes came in Python 3.11")
def test_a_failing_metric_keeps_its_error_with_a_note_naming_it():
    def picky(y_true, output):
        raise ValueError("can't handle a mix of multiclass and continuous targets")

    with pytest.raises(ValueError, match="can't handle") as info:
        train(metrics=[picky])
    assert info.value.__notes__ == [
        "fit: raised by the metric 'picky', called as metric(y_true, output) with y_true "
        "(32,) and output (32, 3): the model's raw output (logits, for a loss that takes "
        "them; a metric wanting classes must take the argmax itself)"]
    model = mlp()
    with pytest.raises(ValueError, match="can't handle") as info:
        model.evaluate(*blobs(10), metrics=[picky])
    assert "evaluate: raised by the metric 'picky'" in info.value.__notes__[0]


@pytest.mark.parametrize("labels", ["one-hot", "column"])
def test_sorted_one_hot_or_column_labels_warn_for_validation_split(labels):
    x = np.random.default_rng(0).standard_normal((90, 2)).astype(np.float32)
    y = np.repeat(np.arange(3), 30)
    y = np.eye(3, dtype=np.float32)[y] if labels == "one-hot" else y[:, None]
    with pytest.warns(UserWarning, match="the labels are sorted, so validation_split=0.2 "
                                         "takes the last 18 samples, of class 2 only"):
        train(x=x, y=y, epochs=1, validation_split=0.2)


def test_a_schedule_with_a_default_second_argument_gets_the_rate_as_in_keras():
    seen = []

    def schedule(epoch, lr=0.5):
        seen.append(lr)
        return np.float64(lr) * np.array(0.5)  # a 0-d array is a number too

    model = mlp()
    opt = bp.SGD(model.parameters(), lr=0.1)
    train(model=model, optimizer=opt, epochs=3,
          callbacks=[bp.LearningRateScheduler(schedule)])
    assert seen == pytest.approx([0.1, 0.05, 0.025]) and opt.lr == pytest.approx(0.0125)


def test_a_schedule_given_where_a_callback_goes_is_told_what_applies_it():
    with pytest.raises(TypeError, match=r"got StepLR \(a schedule goes in "
                                        r"bp.LearningRateScheduler\(StepLR"):
        train(callbacks=[bp.StepLR(0.1, step_size=2)])
    plateau = bp.schedules.ReduceLROnPlateau()
    with pytest.raises(TypeError, match=r"the callback that applies it in fit is "
                                        r"bp.ReduceLROnPlateau\)$"):
        train(callbacks=[plateau])
    with pytest.raises(TypeError, match=r"use the callback bp.ReduceLROnPlateau instead\)$"):
        bp.LearningRateScheduler(plateau)


def test_keras_metric_names_are_accuracy_under_their_own_key():
    _, history = train(epochs=1, metrics=["sparse_categorical_accuracy", "accuracy"])
    assert history.history["sparse_categorical_accuracy"] == history.history["accuracy"]
    assert bp.metrics.get("sparse_top_k_categorical_accuracy").__name__ == "top_5_accuracy"
    assert bp.metrics.get("categorical_accuracy") is bp.metrics.accuracy
    with pytest.raises(ValueError, match=r"^fit: expected a metric name in \["):
        train(metrics=["iou"])


def test_two_nameless_callables_are_told_to_take_a_name():
    def hits(y_true, output, k):
        return bp.metrics.top_k_accuracy(y_true, output, k)

    with pytest.raises(ValueError, match=r"got \['metric', 'metric'\] \(a callable's name is "
                                         r"its __name__"):
        train(metrics=[functools.partial(hits, k=1), functools.partial(hits, k=2)])


def _scripted(values):
    """A callback logging values[epoch] as 'score', before the callbacks after it."""
    class Script(bp.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["score"] = values[epoch]

    return Script()


@pytest.mark.parametrize(("values", "kwargs", "stopped"), [
    # patience 2, no baseline: 0.9 then two epochs without improvement
    ([1.0, 0.9, 0.95, 0.92, 0.5], {}, 3),
    # baseline 0.5: improvements above it do not restart the count (Keras' rule)
    ([1.0, 0.9, 0.95, 0.3], {"baseline": 0.5}, 2),
    ([1.0, 0.4, 0.45, 0.3, 0.35, 0.41], {"baseline": 0.5}, 5),
    # start_from_epoch 3: the first three epochs are not watched
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], {"start_from_epoch": 3}, 5),
])
def test_early_stopping_baseline_and_start_from_epoch_as_keras(values, kwargs, stopped):
    stop = bp.EarlyStopping("score", patience=2, mode="min", restore_best=False, **kwargs)
    _, history = train(epochs=len(values), callbacks=[_scripted(values), stop])
    assert stop.stopped_epoch == stopped and len(history.epoch) == stopped + 1


def test_early_stopping_checks_its_new_arguments():
    with pytest.raises(ValueError, match="EarlyStopping: expected baseline"):
        bp.EarlyStopping(baseline=float("nan"))
    with pytest.raises(ValueError, match="start_from_epoch"):
        bp.EarlyStopping(start_from_epoch=-1)


def test_reduce_lr_on_plateau_carries_on_in_a_continued_fit_and_starts_afresh_in_a_new_one():
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    model = mlp()
    opt = bp.SGD(model.parameters(), lr=0.1)
    plateau = bp.ReduceLROnPlateau("score", patience=1, factor=0.5, mode="min")
    for epoch in range(4):  # one-epoch fits that continue: as one fit of four epochs
        train(model=model, optimizer=opt, epochs=epoch + 1, initial_epoch=epoch,
              callbacks=[_scripted(values), plateau])
    assert opt.lr == pytest.approx(0.1 * 0.5)  # cut after the 3rd epoch (bad > patience)
    opt.lr = 0.1
    for _ in range(3):  # fresh fits: each starts the count over, so never a cut
        train(model=model, optimizer=opt, epochs=1, callbacks=[_scripted(values), plateau])
    assert opt.lr == 0.1


def test_one_hot_takes_a_column_and_bools_and_names_negative_labels():
    np.testing.assert_array_equal(data.one_hot(np.array([[1], [0]])), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(data.one_hot(np.array([True, False])), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"^one_hot: expected labels >= 0, got -1$"):
        data.one_hot([-1, 0])


def test_train_test_split_points_scikit_learn_habits_at_its_own():
    x, y = blobs(20)
    with pytest.raises(TypeError, match=r"'random_state'; backprop calls it rng"):
        data.train_test_split(x, y, random_state=0)
    with pytest.raises(TypeError, match=r"'train_size'; give test_size"):
        data.train_test_split(x, y, train_size=0.8)
    with pytest.raises(TypeError, match=r"got an array of shape \(20,\) \(arrays to split "
                                        r"go before it"):
        data.train_test_split(x, y, test_size=np.ones(20))
    assert "np" not in data.__all__
    assert set(data.__all__) >= {"train_test_split", "one_hot", "minibatches"}


@pytest.mark.parametrize(("make", "hint"), [
    (lambda: bp.ModelCheckpoint("m.npz", save_weights_only=True),
     "a checkpoint always holds the weights"),
    (lambda: bp.ReduceLROnPlateau(min_delta=1e-3), "threshold_mode='abs'"),
    (lambda: bp.EarlyStopping(verbose=1), "EarlyStopping prints nothing"),
])
def test_keras_callback_keywords_name_backprops_way(make, hint):
    with pytest.raises(TypeError, match=hint):
        make()


@pytest.mark.parametrize(("make", "hint"), [
    (lambda: bp.Conv2D(1, 2, 3, filters=2), "out_channels"),  # the Keras hint is kept
    (lambda: bp.AvgPool2D(2, divisor_override=3), "divides by the window's size"),
    (lambda: bp.AvgPool1D(2, strides=2), "backprop calls it stride"),
    (lambda: bp.Dropout(0.5, inplace=True), "never overwrite their input"),
    (lambda: bp.Dropout(p=0.5), "backprop calls it rate"),
    (lambda: bp.Huber(beta=2.0), "backprop calls it delta"),
    (lambda: bp.SGD(bp.Dense(2, 2), lr=0.1, maximize=True), "minimize: negate"),
    (lambda: bp.Adam(bp.Dense(2, 2), foreach=True), "one vectorised pass"),
])
def test_torch_keywords_backprop_lacks_name_its_way(make, hint):
    with pytest.raises(TypeError, match=hint):
        make()


def test_a_log_value_that_is_no_number_is_named():
    class Note(bp.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["note"] = "hi"

    with pytest.raises(TypeError, match=r"^History: expected every log value as a number, "
                                        r"got 'hi' for 'note' at epoch 0"):
        train(callbacks=[Note()])


def test_early_stopping_may_monitor_lr_though_listed_before_its_scheduler():
    sched = bp.LearningRateScheduler(lambda epoch: 0.05 / (epoch + 1))
    stop = bp.EarlyStopping("lr", mode="max", patience=0, restore_best=False)
    _, history = train(epochs=3, callbacks=[stop, sched])  # lr falls: stops at epoch 1
    assert history.history["lr"] == pytest.approx([0.05, 0.025]) and stop.stopped_epoch == 1


def test_lr_logged_by_reduce_lr_on_plateau_is_monitorable_by_callbacks_before_it():
    seen = []

    class Reads(bp.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(logs["lr"])

    plateau = bp.ReduceLROnPlateau("loss", patience=0, factor=0.5, threshold=10.0)
    stop = bp.EarlyStopping("lr", mode="max", patience=5, restore_best=False)
    _, history = train(epochs=2, callbacks=[Reads(), stop, plateau])
    assert seen == history.history["lr"] == pytest.approx([0.02, 0.01])  # Adam lr 0.02


def test_a_callbacks_repr_leaves_out_what_fit_hands_it():
    class Counter(bp.Callback):
        def __init__(self):
            self.n = 0

    cb = Counter()
    train(epochs=1, callbacks=[cb])
    assert repr(cb) == "Counter(n=0)"


def _keras_early_stopping(values, patience, min_delta, baseline, start_from_epoch):
    """Keras 3's EarlyStopping.on_epoch_end, mode 'min', on a sequence of values: the
    epoch it stops at, or None."""
    best, wait = np.inf, 0
    for epoch, current in enumerate(values):
        if epoch < start_from_epoch:
            continue
        wait += 1
        if current + min_delta < best:  # _is_improvement: mode min negates min_delta
            best = current
            if baseline is None or current + min_delta < baseline:
                wait = 0
            continue
        if wait >= patience and epoch > 0:
            return epoch
    return None


def test_early_stopping_follows_keras_3s_rule_on_random_sequences():
    rng = np.random.default_rng(9)
    for _ in range(300):
        n = int(rng.integers(2, 12))
        values = list(np.round(rng.uniform(0, 1, n), 1))
        patience = int(rng.integers(1, 4))
        min_delta = float(rng.choice([0.0, 0.05]))
        baseline = None if rng.random() < 0.5 else float(np.round(rng.uniform(0, 1), 1))
        start = int(rng.integers(0, 3))
        stop = bp.EarlyStopping("score", patience=patience, min_delta=min_delta, mode="min",
                                restore_best=False, baseline=baseline,
                                start_from_epoch=start)
        stop.fit_state = type("S", (), {"stop": False})()
        stopped = None
        for epoch, value in enumerate(values):
            stop.on_epoch_end(epoch, {"score": value})
            if stop.fit_state.stop:
                stopped = epoch
                break
        assert stopped == _keras_early_stopping(values, patience, min_delta, baseline,
                                                start), (values, patience, baseline, start)


def test_an_initial_epoch_at_or_past_epochs_warns_that_nothing_trains():
    model = mlp()
    before = [p.value.copy() for p in model.parameters()]
    with pytest.warns(UserWarning, match=r"fit: initial_epoch \(5\) >= epochs \(2\): nothing "
                                         r"to train; .* pass epochs=7"):
        _, history = train(model=model, epochs=2, initial_epoch=5)
    assert history.epoch == [] and history.history == {}
    for p, old in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.value, old)
    _, history = train(model=model, epochs=0)  # epochs=0 from the start: asked for, silent
    assert history.epoch == []


@pytest.mark.parametrize("make", [
    lambda: bp.EarlyStopping("score", patience=5, mode="max"),
    lambda: bp.ReduceLROnPlateau("score", patience=5, mode="max"),
    lambda tmp: bp.ModelCheckpoint(str(tmp / "best.npz"), monitor="score", mode="max",
                                   save_best_only=True),
])
def test_a_nan_monitored_value_warns_once_per_fit(make, tmp_path):
    watcher = make(tmp_path) if make.__code__.co_argcount else make()
    values = [0.5, float("nan"), float("nan"), 0.7]  # an AUC of a one-class epoch is NaN
    for _ in range(2):  # and again in a second fit: each fit says it once
        with pytest.warns(RuntimeWarning, match=rf"{type(watcher).__name__}: score is NaN, "
                                                r"which never counts as an improvement") as rec:
            train(epochs=4, callbacks=[_scripted(values), watcher])
        assert sum("is NaN" in str(w.message) for w in rec) == 1
    train(epochs=1, callbacks=[_scripted([0.5]), watcher])  # no NaN: silent (warnings fail)


def test_freezing_the_keras_or_torch_way_is_refused_with_backprops_way():
    model = mlp()
    for target, name in ((model[0], "trainable"), (model, "trainable"),
                         (model[0], "requires_grad")):
        with pytest.raises(AttributeError, match=rf"{type(target).__name__}: {name} is not a "
                                                 r"setting here; backprop freezes layers by "
                                                 r"leaving their parameters out"):
            setattr(target, name, False)
        assert name not in vars(target) and name not in dir(target)
    with pytest.raises(AttributeError, match=r"has no attribute 'trainable'; backprop freezes"):
        model[0].trainable  # noqa: B018

    class Declares(bp.Identity):  # a user's layer that declares the name keeps it
        trainable = True

    layer = Declares()
    layer.trainable = False
    assert layer.trainable is False
    # the way it names works, with fit: the first layer stays as it was
    before = model[0].params["W"].copy()
    train(model=model, optimizer=bp.Adam(model[1:].parameters(), lr=0.02), epochs=1)
    np.testing.assert_array_equal(model[0].params["W"], before)


def test_a_history_passed_among_the_callbacks_is_the_one_fit_returns():
    """Keras fills and returns a History given in callbacks; fit returned another one and
    left the given one to pile up epochs across fits."""
    history = bp.History()
    model = mlp()
    for _ in range(2):
        got = train(model=model, callbacks=[history], epochs=2)[1]
        assert got is history
        assert history.epoch == [0, 1] and len(history.history["loss"]) == 2
