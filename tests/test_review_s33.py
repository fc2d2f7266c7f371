"""Session 33: a review of session 32's containers that build their own children, and of
the error paths of nested models."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


class _Walk(bp.Container):
    """Runs ``children()`` in order; subclasses only build them."""

    def forward(self, x, *, training=False):
        for _, layer in self.children():
            x = layer.forward(x, training=training)
        return x

    def backward(self, dy):
        for _, layer in reversed(self.children()):
            dy = layer.backward(dy)
        return dy


@bp.register_layer
class Tuned(_Walk):
    def __init__(self, width, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.width = width
        self.fc = bp.Dense(width, width, dtype=dtype, rng=0)
        self.act = bp.LeakyReLU(0.01, dtype=dtype)
        self.drop = bp.Dropout(0.5, rng=1)

    def children(self):
        return [("fc", self.fc), ("act", self.act), ("drop", self.drop)]


@bp.register_layer
class NoDtype(_Walk):
    """PyTorch's habit: no dtype argument at all; ``astype`` (``.double()``) casts it."""

    def __init__(self, width):
        super().__init__()
        self.width = width
        self.fc = bp.Dense(width, width, rng=0)

    def children(self):
        return [("fc", self.fc)]


@bp.register_layer
class Recurrent(_Walk):
    def __init__(self, d, h, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.d, self.h = d, h
        self.lstm = bp.LSTM(d, h, stateful=True, return_sequences=True, rng=0)  # float32
        self.out = bp.Dense(h, d, rng=1)

    def children(self):
        return [("lstm", self.lstm), ("out", self.out)]


@bp.register_layer
class SeededBlock(_Walk):
    def __init__(self, width, rng=None, *, dtype=np.float32):  # rng positional-or-keyword
        super().__init__(dtype=dtype)
        self.width, self.rng = width, rng
        self.fc = bp.Dense(width, width, rng=rng, dtype=dtype)

    def children(self):
        return [("fc", self.fc)]


@bp.register_layer
class NormBlock(_Walk):
    """A child named ``norm`` beside a kept argument ``norm="layer"``."""

    def __init__(self, width, norm="batch", *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.width, self.norm = width, norm
        self.fc = bp.Dense(width, width, dtype=dtype, rng=0)
        self.norm_layer = (bp.BatchNorm(width, dtype=dtype) if norm == "batch"
                           else bp.LayerNorm(width, dtype=dtype))

    def children(self):
        return [("fc", self.fc), ("norm", self.norm_layer)]


@bp.register_layer
class WidthChain(_Walk):
    """``WidthChain(width, *blocks)``: a kept positional argument before ``*args``."""

    def __init__(self, width, *blocks, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.width, self.blocks = width, list(blocks)

    def children(self):
        return [(str(i), b) for i, b in enumerate(self.blocks)]


def _round_trip(model, x, tmp_path):
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    return loaded


def _x(*shape, dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def test_a_child_changed_after_construction_is_refused_at_save_not_lost_at_load(tmp_path):
    model = bp.Sequential([Tuned(4), bp.Dense(4, 2, rng=2)])
    model.layers[0].act = bp.LeakyReLU(0.3)  # was silently rebuilt as LeakyReLU(0.01)
    with pytest.raises(ValueError, match=r"child 'act' to be built with the saved settings, "
                                         r"got negative_slope=0.01 \(saved 0.3\)"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    model.layers[0].act = bp.LeakyReLU(0.01)
    model.layers[0].drop.rate = 0.1
    with pytest.raises(ValueError, match=r"child 'drop' .* got rate=0.5 \(saved 0.1\)"):
        model.save(tmp_path / "m.npz")
    model.layers[0].drop.rate = 0.5
    loaded = _round_trip(model, -np.abs(_x(3, 4)), tmp_path)
    assert loaded[0].act.negative_slope == 0.01 and loaded[0].drop.rate == 0.5


def test_a_block_without_dtype_argument_saves_and_loads_after_astype(tmp_path):
    model = bp.Sequential([NoDtype(4), bp.Dense(4, 2, rng=2)]).astype(np.float64)
    loaded = _round_trip(model, _x(3, 4, dtype=np.float64), tmp_path)
    assert loaded.dtype == np.float64 and loaded[0].dtype == np.float64
    assert {p.value.dtype for p in loaded.parameters()} == {np.dtype(np.float64)}


def test_a_float64_block_with_a_stateful_child_keeps_its_state(tmp_path):
    model = bp.Sequential([Recurrent(3, 5)]).astype(np.float64)
    x = _x(2, 4, 3, dtype=np.float64)
    model.predict(x)  # the LSTM keeps a float64 state
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded[0].lstm.state[0], model[0].lstm.state[0])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))  # state carried on


def test_a_positional_rng_argument_does_not_stop_a_block_rebuilding_itself(tmp_path):
    _round_trip(bp.Sequential([SeededBlock(4, 0), bp.Dense(4, 2, rng=2)]), _x(3, 4), tmp_path)


def test_a_child_named_like_a_kept_argument_is_built_by_the_constructor(tmp_path):
    loaded = _round_trip(bp.Sequential([NormBlock(4, "layer")]), _x(3, 4), tmp_path)
    assert loaded[0].norm == "layer" and isinstance(loaded[0].norm_layer, bp.LayerNorm)


def test_a_kept_positional_argument_before_star_args_is_passed_first(tmp_path):
    model = bp.Sequential([WidthChain(4, bp.Dense(4, 4, rng=0), bp.Dense(4, 4, rng=1))])
    loaded = _round_trip(model, _x(3, 4), tmp_path)
    assert loaded[0].width == 4 and len(loaded[0].blocks) == 2


def test_a_handle_to_a_grandchild_is_not_refused_as_unlisted():
    class Handle(_Walk):
        def __init__(self, width, *, dtype=np.float32):
            super().__init__(dtype=dtype)
            self.body = bp.Sequential([bp.Dense(width, width), bp.ReLU(),
                                       bp.Dense(width, width)])
            self.last = self.body.layers[-1]  # a handle, trained and saved as body.2

        def children(self):
            return [("body", self.body)]

    model = bp.Sequential([Handle(4), bp.Dense(4, 2)])
    assert "0.body.2.W" in model.params

    class Forgotten(Handle):  # a layer with parameters nowhere in children(): still refused
        def __init__(self, width):
            super().__init__(width)
            self.extra = bp.Dense(width, width)

    with pytest.raises(ValueError, match=r"Forgotten.extra, a Dense\(4, 4\) with parameters"):
        bp.Sequential([Forgotten(4)])


def test_an_error_inside_a_nested_sequential_names_its_full_path():
    inner = bp.Sequential([bp.Dense(4, 4), bp.Dense(4, 4)])
    model = bp.Sequential([bp.Dense(4, 4), bp.Dense(4, 4), inner])
    model.forward(np.zeros((3, 4), np.float32), training=True)
    inner.layers[1].clear_cache()
    with pytest.raises(RuntimeError, match=r"^Sequential: layer 2\.1: Dense\(4, 4\): "):
        model.backward(np.ones((3, 4), np.float32))  # was "layer 1", another Dense
    outer = bp.Sequential([bp.Sequential([bp.Dense(4, 4), bp.Dense(4, 4)]), bp.Dense(4, 4)])
    with pytest.raises(ValueError, match=r"^Sequential: layer 0\.0: Dense\(4, 4\): expected "):
        outer.forward(np.zeros((2, 5), np.float32))
    deep = bp.Sequential([bp.Sequential([bp.Dense(4, 5), outer]), bp.Dense(4, 4)])
    with pytest.raises(ValueError, match=r"^Sequential: layer 0\.1\.0\.0: Dense\(4, 4\): "):
        deep.forward(np.zeros((2, 4), np.float32))


# -- the PyTorch-porting review: schedules ------------------------------------------------
@pytest.mark.parametrize("start, end, total", [(1.0, 0.1, 5), (1 / 3, 1.0, 4), (0.5, 0.0, 3),
                                               (0.25, 0.75, 7)])
def test_linear_warmup_with_end_factor_is_torchs_linear_lr(start, end, total):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start, end, total)
    ours = bp.LinearWarmup(0.1, total, start, end_factor=end)
    for epoch in range(total + 5):
        assert ours(epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-17)
        opt.step()
        sched.step()


def test_linear_warmup_refuses_an_end_factor_torch_refuses():
    with pytest.raises(ValueError, match=r"LinearWarmup: expected end_factor in \[0.0, 1.0\]"):
        bp.LinearWarmup(0.1, 5, end_factor=1.5)


def test_a_linear_decay_trains_through_fit_to_its_end_rate():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    x, y = _x(16, 3), np.arange(16) % 2
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=6, batch_size=8,
                        optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False,
                        callbacks=[bp.LearningRateScheduler(
                            bp.LinearWarmup(0.1, 4, 1.0, end_factor=0.1))])
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.0775, 0.055, 0.0325, 0.01, 0.01])


def test_reduce_on_plateau_takes_one_min_lr_per_group_as_torch():
    torch = pytest.importorskip("torch")
    model = bp.Sequential([bp.Dense(2, 2, rng=0), bp.Dense(2, 2, rng=1)])
    opt = bp.SGD([{"params": model[0].parameters(), "lr": 0.2},
                  {"params": model[1].parameters()}], lr=0.1)
    cb = bp.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_lr=[0.06, 0.01])
    cb.optimizer = opt
    ts = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    topt = torch.optim.SGD([{"params": [ts[0]], "lr": 0.2}, {"params": [ts[1]]}], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=0,
                                                       min_lr=[0.06, 0.01])
    for value in [1.0, 2.0, 3.0, 4.0, 0.5, 0.6, 0.7, 0.8]:
        cb.on_epoch_end(0, {"loss": value})
        sched.step(value)
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                   [g["lr"] for g in topt.param_groups], rtol=1e-15)
    assert [g["lr"] for g in opt.param_groups] == [0.06, 0.01]


def test_reduce_on_plateau_min_lr_list_must_match_the_groups():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    with pytest.raises(ValueError, match=r"expected one min_lr per parameter group, "
                                         r"got 2 values of min_lr for 1 group$"):
        model.fit(_x(4, 2), np.arange(4) % 2, loss=bp.SoftmaxCrossEntropy(), progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1),
                  callbacks=[bp.ReduceLROnPlateau("loss", min_lr=[0.1, 0.2])])
    rule = bp.schedules.ReduceLROnPlateau(factor=0.5, patience=0, min_lr=[0.3, 0.01])
    assert rule.step(1.0, [1.0, 0.1]) == [1.0, 0.1]
    assert rule.step(2.0, [1.0, 0.1]) == [0.5, 0.05]  # a hand loop's rates, one per group
    assert rule.step(3.0, [0.5, 0.05]) == [0.3, 0.025]
    with pytest.raises(ValueError, match="got 2 values of min_lr for 1 group"):
        rule.step(4.0, [0.3])


def test_sequential_lr_takes_a_plain_function_for_a_stretch():
    schedule = bp.SequentialLR([lambda e: 0.01 * (e + 1), bp.CosineAnnealingLR(0.05, 10)],
                               milestones=[5])
    assert [schedule(e) for e in range(6)] == [0.01, 0.02, 0.03, 0.04, 0.05, 0.05]
    assert schedule.lr == 0.01
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    history = model.fit(_x(8, 3), np.arange(8) % 2, loss=bp.SoftmaxCrossEntropy(), epochs=7,
                        optimizer=bp.SGD(model.parameters(), lr=0.01), progress=False,
                        callbacks=[bp.LearningRateScheduler(schedule)])
    np.testing.assert_allclose(history.history["lr"], [schedule(e) for e in range(7)])
    with pytest.raises(TypeError, match=r"SequentialLR: expected each function to take one "
                                        r"argument, the epoch"):
        bp.SequentialLR([lambda epoch, lr: lr, bp.ExponentialLR(0.1, 0.9)], milestones=[2])
    with pytest.raises(TypeError, match=r"or a function epoch -> lr, got int 3"):
        bp.SequentialLR([3, bp.ExponentialLR(0.1, 0.9)], milestones=[2])


# -- the PyTorch-porting review: a GAN's discriminator step ---------------------------------
def _discriminator():
    return bp.Sequential([bp.Dense(4, 3, rng=0), bp.ReLU(), bp.Dense(3, 1, rng=1)])


def test_a_backward_after_two_training_forwards_warns_that_only_the_latest_counts():
    model, dy = _discriminator(), np.ones((2, 1), np.float32)
    model.forward(_x(2, 4), training=True)  # PyTorch's D(real), D(fake), then one backward
    model.forward(_x(2, 4) + 1, training=True)
    with pytest.warns(UserWarning, match=r"^Sequential: backward after training forwards of 2 "
                                         r"inputs: the gradients are those of the latest"):
        model.backward(dy)


def test_forward_backward_pairs_and_forwards_alone_do_not_warn():
    import warnings

    model, dy = _discriminator(), np.ones((2, 1), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):  # the summed-gradients recipe: a backward after each forward
            model.forward(_x(2, 4), training=True)
            model.backward(dy)
        for _ in range(3):  # Monte Carlo dropout: training forwards and no backward
            model.forward(_x(2, 4), training=True)
        model.clear_cache()  # (what the warning says to do after them)
        model.forward(_x(2, 4), training=True)
        model.backward(dy)
        model.forward(_x(2, 4), training=True)
        with pytest.raises(ValueError):  # a failed training forward drops the caches
            model.forward(_x(2, 5), training=True)
        model.forward(_x(2, 4), training=True)
        model.backward(dy)
        for _ in range(3):  # fit starts its own count
            model.forward(_x(2, 4), training=True)
        model.fit(_x(8, 4), np.arange(8) % 2 * 1.0, loss=bp.MeanSquaredError(), epochs=2,
                  batch_size=4, optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)


def test_a_schedules_step_and_get_last_lr_say_how_a_loop_sets_the_rate():
    for schedule in (bp.StepLR(0.1, 2), bp.OneCycleLR(0.1, 100), bp.SequentialLR(
            [bp.ConstantLR(0.1, 0.5, 2), bp.ExponentialLR(0.1, 0.9)], [2])):
        for name in ("step", "get_last_lr"):
            with pytest.raises(AttributeError, match=r"has no attribute '\w+'; a backprop "
                                                     r"schedule is a function of the epoch"):
                getattr(schedule, name)()
            assert name not in dir(schedule)
    with pytest.raises(AttributeError, match=r"opt.lr = rule.step\(val_loss, opt.lr\)"):
        bp.ReduceLROnPlateau().step(0.5)
    assert bp.schedules.ReduceLROnPlateau().step(1.0, 0.1) == 0.1  # the rule's own step


# -- the Keras-porting review: what a Keras script writes gets backprop's way ----------------
@pytest.mark.parametrize("get, says", [
    (lambda: bp.metrics.AUC, r"module 'backprop.metrics' has no attribute 'AUC'; backprop's "
                             r"metrics are functions, named in fit\(metrics=\['auc'\]\)"),
    (lambda: bp.Precision, r"fit\(metrics=\['precision'\]\)"),
    (lambda: bp.metrics.BinaryAccuracy, r"fit\(metrics=\['binary_accuracy'\]\)"),
    (lambda: bp.losses.BinaryCrossentropy, r"'backprop.losses' .*backprop calls it BCELoss"),
    (lambda: bp.losses.SparseCategoricalCrossentropy, r"calls it SoftmaxCrossEntropy"),
    (lambda: bp.callbacks.History, r"fit returns a bp.History"),
    (lambda: bp.callbacks.TerminateOnNaN, r"fit stops at a NaN"),
    (lambda: bp.callbacks.LambdaCallback, r"subclass bp.Callback"),
    (lambda: bp.callbacks.BackupAndRestore, r"resume=path"),
    (lambda: bp.layers.Activation, r"each activation is a layer of its own"),
    (lambda: bp.layers.Linear, r"'backprop.layers' .*backprop calls it Dense"),
    (lambda: bp.Input, r"backprop needs no input layer"),
    (lambda: bp.models, r"bp.Sequential builds a model"),
    (lambda: bp.SGD(bp.Dense(2, 2).parameters(), lr=0.1).learning_rate,
     r"'SGD' object has no attribute 'learning_rate'; backprop calls it lr \(opt.lr\)"),
])
def test_keras_names_anywhere_name_backprops_way(get, says):
    with pytest.raises(AttributeError, match=says):
        get()


def test_keras_calls_name_backprops_way():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'activation'; add the "
                                        r"activation as its own layer: Conv2D\(\.\.\.\), ReLU"):
        bp.Conv2D(1, 2, 3, activation="relu")
    with pytest.raises(TypeError, match=r"positional arguments but 4 were given \(everything "
                                        r"after monitor is keyword-only"):
        bp.EarlyStopping("val_loss", 0.01, 3)
    with pytest.raises(TypeError, match=r"after path and monitor is keyword-only"):
        bp.ModelCheckpoint("m.npz", "val_loss", True)
    model = bp.Sequential([bp.Dense(3, 1, rng=0)])
    x, y = _x(8, 3), np.ones(8, np.float32)
    sgd = bp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"got str \(backprop takes a Loss object: 'mse' is "
                                        r"bp.MeanSquaredError\(\)\)"):
        model.fit(x, y, loss="mse", optimizer=sgd, progress=False)
    with pytest.raises(TypeError, match=r"'binary_crossentropy' is bp.BCELoss\(\)"):
        model.evaluate(x, y, loss="binary_crossentropy")
    with pytest.raises(TypeError, match=r"not a name\)$"):
        model.fit(x, y, loss="my_loss", optimizer=sgd, progress=False)
    history = model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=sgd, progress=False,
                        batch_size=None)  # Keras' default: 32
    assert history.params["batch_size"] == 32 and history.params["steps"] == 1


def test_the_forward_count_ignores_a_cell_run_again_and_starts_afresh_in_copies():
    import copy
    import pickle
    import warnings

    model, dy, x = _discriminator(), np.ones((2, 1), np.float32), _x(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.forward(x, training=True)  # a notebook cell run twice on the same x
        model.forward(x, training=True)
        model.backward(dy)
        model.forward(x, training=True)  # a forward pending: copies and tools start afresh
        for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)),
                     model.astype(np.float64)):
            assert twin._forwards == 0
        bp.bench(model, (4,), 2, steps=2, repeats=1)
        bp.check_gradients(model, _x(2, 4, dtype=np.float64))
    with pytest.warns(UserWarning, match="training forwards of 2 inputs"):
        model.forward(x + 1, training=True)
        model.backward(dy)


@bp.register_layer
class WideBlock(_Walk):
    """Built in float64 with a ReLU made without dtype= (float32: stateless, it only
    checks its input)."""

    def __init__(self, width, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.width = width
        self.fc = bp.Dense(width, width, dtype=dtype, rng=0)
        self.act = bp.ReLU()

    def children(self):
        return [("fc", self.fc), ("act", self.act)]


def test_a_float64_block_with_a_child_left_at_float32_saves_and_loads(tmp_path):
    model = bp.Sequential([WideBlock(4, dtype=np.float64)])  # (its ReLU refuses float64)
    model.save(tmp_path / "m.npz")  # was refused: "got dtype='float64' (saved 'float32')"
    loaded = bp.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded[0].fc.params["W"], model[0].fc.params["W"])
    assert loaded.predict(_x(3, 4, dtype=np.float64)).dtype == np.float64  # cast as a whole


def test_review_of_the_days_changes_smaller_points():
    # a checkpoint's saved repr of LinearWarmup is unchanged at the default end_factor
    assert repr(bp.LinearWarmup(0.1, 5, 0.5)) == (
        "LinearWarmup(lr=0.1, warmup_epochs=5, start_factor=0.5, after=None)")
    assert "end_factor=0.1" in repr(bp.LinearWarmup(0.1, 5, 1.0, end_factor=0.1))
    with pytest.raises(TypeError, match=r"'total_iters'; backprop calls it warmup_epochs"):
        bp.LinearWarmup(0.1, total_iters=5)
    with pytest.raises(AttributeError, match=r"LinearWarmup\(lr, warmup_epochs, start_factor, "
                                             r"end_factor=\.\.\.\)"):
        bp.LinearLR  # noqa: B018
    with pytest.raises(ValueError, match=r"expected min_lr as a number, or a list of one per "
                                         r"parameter group, got an empty list"):
        bp.ReduceLROnPlateau(min_lr=[])

    def warm(epoch):
        return 0.01 * (epoch + 1)

    assert repr(bp.SequentialLR([warm, bp.ExponentialLR(0.1, 0.9)], [3])).startswith(
        "SequentialLR(schedulers=[test_review_of_the_days_changes_smaller_points.<locals>.warm, "
        "ExponentialLR(")
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    for name, says in (("hinge", r"not built in: Keras' mean\(max\(0, 1 - y \* output\)\)"),
                       ("kld", r"bp.KLDivLoss\(reduction='batchmean'\) on log-probabilities")):
        with pytest.raises(TypeError, match=says):
            model.evaluate(_x(4, 3), np.arange(4) % 2, loss=name)


# -- the notebook-user review: what a student reads while stepping through ------------------
def test_what_a_student_reads_names_the_caches_and_one_line_layers():
    assert 'cache["cols"] is cols in the code\'s layout' in bp.formulas(bp.Conv2D)
    assert 'cache["cols"]' in bp.formulas(bp.Conv1D) and 'cache["cols"]' in bp.formulas(bp.Conv3D)
    assert 'd = where(x > 0, 1, alpha·exp(x)) = cache["d"]' in bp.formulas(bp.ELU)
    assert "or in the tanh form x and t" in bp.formulas(bp.GELU)
    model = bp.Sequential([bp.Dense(4, 4), bp.Residual(bp.Sequential([bp.Dense(4, 4)]))])
    model.forward(_x(2, 4), training=True)
    with pytest.raises(ValueError, match=r"^Residual: expected dy of shape \(2, 4\), got "
                                         r"\(2, 5\)$"):  # was the block's multi-line repr
        model.backward(np.ones((2, 5), np.float32))


# -- the resume/crash review: about 90 configurations resumed bit for bit; two findings -------
def test_a_failed_best_checkpoint_write_keeps_the_best_its_file_holds(tmp_path, monkeypatch):
    from backprop import serialization

    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    x, y = _x(32, 3), np.arange(32) % 2
    cb = bp.ModelCheckpoint(tmp_path / "best.npz", "loss", save_best_only=True)
    real, calls, fail = serialization.save, [], [2]  # the write that fails

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == fail[0]:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(serialization, "save", flaky)
    with pytest.raises(OSError, match="No space left"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=5, batch_size=8, progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1), callbacks=[cb])
    written = bp.load_checkpoint(tmp_path / "best.npz").training_state["epoch"]
    assert cb.best_epoch == written - 1 == 0  # was the epoch whose write failed (1)

    # two best-only checkpoints: the first one's failed write puts back both bests
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    a, b = (bp.ModelCheckpoint(tmp_path / f"{n}.npz", "loss", save_best_only=True)
            for n in "ab")
    calls.clear()
    fail[0] = 3  # epoch 0: a and b written; epoch 1: a's write fails, before b's
    with pytest.raises(OSError, match="No space left"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=5, batch_size=8, progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1), callbacks=[a, b])
    assert a.best_epoch == b.best_epoch == 0  # b's file holds epoch 0: b was left at 1

    # a path that fails to format: nothing written, the best put back
    class Tag(bp.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                logs["tag"] = 1.0

    monkeypatch.setattr(serialization, "save", real)
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    c = bp.ModelCheckpoint(tmp_path / "c-{tag}.npz", "loss", save_best_only=True)
    with pytest.raises(ValueError, match=r"expected path field \{tag\}"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=3, batch_size=8, progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1), callbacks=[Tag(), c])
    assert c.best_epoch == 0


def test_resuming_with_other_metrics_or_validation_warns(tmp_path):
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    x, y = _x(32, 3), np.arange(32) % 2

    def run(epochs, **kwargs):
        return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=epochs, batch_size=8,
                         optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False,
                         callbacks=[bp.ModelCheckpoint(tmp_path / "c.npz", "loss")], **kwargs)

    run(2, metrics=["accuracy", "f1"])
    with pytest.warns(UserWarning, match=r"other logged values than the checkpointed run "
                                         r"\(added or left out: accuracy, f1\): the History"):
        run(3, resume=tmp_path / "c.npz")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(4, resume=tmp_path / "c.npz")  # the same keys: silent
        run(5, metrics=["f1", "accuracy"])  # History is by name: another order is silent
        run(6, metrics=["accuracy", "f1"], resume=tmp_path / "c.npz")
    ckpt = bp.load_checkpoint(tmp_path / "c.npz")
    ckpt.training_state["settings"]["log_keys"] = "loss"  # a damaged (hand-edited) file
    with pytest.raises(ValueError, match=r"a damaged one \(TypeError: expected settings' "
                                         r"log_keys as a list of names, got 'loss'\)"):
        run(7, metrics=["accuracy", "f1"], resume=ckpt)
