"""fit / evaluate / predict: learning, History, reproducibility, input checks, guards."""

import math
import os
import signal
import sys
import warnings

import numpy as np
import pytest

import backprop as bp


def blobs(n=300, seed=0):
    """Three well-separated Gaussian blobs in 2-D, labels 0..2."""
    rng = np.random.default_rng(seed)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.5]])
    y = rng.permutation(np.arange(n) % 3)
    x = centers[y] + 0.8 * rng.standard_normal((n, 2))
    return x.astype(np.float32), y


def mlp(seed=0):
    return bp.Sequential([bp.Dense(2, 16, rng=seed), bp.ReLU(), bp.Dense(16, 3, rng=seed + 1)])


def train(model=None, x=None, y=None, **kwargs):
    model = model or mlp()
    if x is None:
        x, y = blobs()
    opt = kwargs.pop("optimizer", None) or bp.Adam(model.parameters(), lr=0.02)
    args = dict(loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=3, seed=0, progress=False)
    args.update(kwargs)
    return model, model.fit(x, y, **args)


class Recorder(bp.Callback):
    """Copies of the weights after every step, and each batch's loss and size."""

    def __init__(self):
        self.weights, self.losses, self.sizes = [], [], []

    def on_batch_end(self, batch, logs):
        self.weights.append(self.model.flat_params.copy())
        self.losses.append(logs["loss"])
        self.sizes.append(logs["size"])


# -- learning and History ------------------------------------------------------------------
def test_fit_reduces_loss_and_reaches_high_accuracy():
    x, y = blobs()
    model, h = train(x=x, y=y, epochs=15, metrics=["accuracy"])
    assert h.history["loss"][-1] < h.history["loss"][0] / 3
    assert h.history["accuracy"][-1] > 0.95
    assert model.evaluate(x, y, metrics=["accuracy"])["accuracy"] > 0.95


def test_history_has_val_curves_with_validation_data():
    x, y = blobs()
    _, h = train(x=x[:240], y=y[:240], validation_data=(x[240:], y[240:]), epochs=4,
                 metrics=["accuracy", "top_2_accuracy"])
    assert list(h.history) == ["loss", "accuracy", "top_2_accuracy", "val_loss",
                               "val_accuracy", "val_top_2_accuracy"]
    assert all(len(v) == 4 for v in h.history.values())
    assert h.epoch == [0, 1, 2, 3]
    assert h.params["samples"] == 240 and h.params["validation_samples"] == 60
    assert h.params["steps"] == 8 and h.seed == 0 and not h.interrupted


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, y = blobs()
    model, h = train(x=x, y=y, validation_split=0.2, epochs=2)
    assert h.params["samples"] == 240 and h.params["validation_samples"] == 60
    val = model.evaluate(x[240:], y[240:], loss=bp.SoftmaxCrossEntropy())
    assert h.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    rec = Recorder()
    x, y = blobs(100)
    _, h = train(x=x, y=y, epochs=1, batch_size=32, callbacks=[rec])
    assert rec.sizes == [32, 32, 32, 4]
    expected = np.dot(rec.losses, rec.sizes) / 100
    assert h.history["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_seed_is_drawn_and_recorded_when_none():
    _, h1 = train(seed=None, epochs=1)
    assert isinstance(h1.seed, int)
    m1, _ = train(seed=h1.seed, epochs=1)
    m2, _ = train(seed=h1.seed, epochs=1)
    np.testing.assert_array_equal(m1.flat_params, m2.flat_params)


def test_same_seed_gives_bit_identical_weights_and_different_seeds_differ():
    a, _ = train(seed=7)
    b, _ = train(seed=7)
    c, _ = train(seed=8)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)


def test_fit_leaves_global_numpy_random_state_alone():
    legacy = np.random  # the global state fit must never touch
    legacy.seed(123)  # noqa: NPY002
    before = legacy.get_state()[1].copy()  # noqa: NPY002
    train(seed=None, epochs=1)
    np.testing.assert_array_equal(legacy.get_state()[1], before)  # noqa: NPY002


# -- evaluate / predict ----------------------------------------------------------------------
def test_evaluate_and_predict_keep_no_caches_and_match_a_manual_forward():
    x, y = blobs(50)
    model, _ = train(epochs=1)
    loss = bp.SoftmaxCrossEntropy()
    out = model.predict(x, batch_size=16)
    assert not any(layer.has_cache for layer in model) and not model.has_cache
    np.testing.assert_allclose(out, model.forward(x), rtol=1e-6)
    scores = model.evaluate(x, y, loss=loss, metrics=["accuracy"], batch_size=16)
    assert not model.has_cache and not loss.has_cache
    assert scores["loss"] == pytest.approx(loss.forward(model.forward(x), y), rel=1e-6)
    assert scores["accuracy"] == bp.metrics.accuracy(y, model.forward(x))
    loss.clear_cache()


def test_predict_casts_once_and_rejects_nan():
    model = mlp()
    assert model.predict(np.ones((3, 2))).dtype == np.float32
    with pytest.raises(ValueError, match="expected finite values in x, got NaN/Inf in 1"):
        model.predict(np.array([[0.0, 1.0], [np.nan, 0.0]]))


def test_evaluate_with_sample_weight_weights_the_loss():
    x, y = blobs(30)
    model = mlp()
    loss = bp.SoftmaxCrossEntropy()
    w = np.linspace(0, 2, 30)
    got = model.evaluate(x, y, loss=loss, sample_weight=w)["loss"]
    assert got == pytest.approx(loss.forward(model.forward(x), y, w), rel=1e-6)
    loss.clear_cache()


# -- bad inputs: clear errors, weights untouched -----------------------------------------------
X, Y = blobs(60)


def other_model_optimizer(model):
    return bp.SGD(mlp(5).parameters(), lr=0.1)


_ES = bp.EarlyStopping(monitor="loss")  # listed twice: its patience would count twice
BAD = [
    ("x/y length", dict(y=Y[:50]), ValueError,
     r"expected y with one target per sample of x \(60\)"),
    ("empty", dict(x=X[:0], y=Y[:0]), ValueError, r"expected x with at least one sample"),
    ("nan in x", dict(x=np.where(np.arange(60)[:, None] == 7, np.nan, X)), ValueError,
     r"expected finite values in x, got NaN/Inf in 1 sample\(s\), the first at index 7"),
    ("inf in y", dict(y=np.where(np.arange(60) == 3, np.inf, Y)), ValueError,
     r"expected finite values in y"),
    ("batch_size 0", dict(batch_size=0), ValueError, r"expected batch_size >= 1, got 0"),
    ("batch_size float", dict(batch_size=3.5), TypeError,
     r"expected batch_size to be a positive int"),
    ("epochs < 0", dict(epochs=-1), ValueError, r"expected epochs >= 0, got -1"),
    ("val width", dict(validation_data=(X[:, :1], Y)), ValueError,
     r"expected validation samples shaped like the training ones"),
    ("val length", dict(validation_data=(X, Y[:10])), ValueError,
     r"expected y with one target per sample of x \(60\)"),
    ("val form", dict(validation_data=X), TypeError,
     r"expected validation_data as \(x_val, y_val\)"),
    ("split 1", dict(validation_split=1.0), ValueError,
     r"expected validation_split in \[0.0, 1.0\)"),
    ("split -0.1", dict(validation_split=-0.1), ValueError, r"expected validation_split in"),
    ("split and data", dict(validation_split=0.2, validation_data=(X, Y)), ValueError,
     r"expected validation_data or validation_split, got both"),
    ("metric name", dict(metrics=["iou"]), ValueError, r"expected a metric name in .*got 'iou'"),
    ("loss type", dict(loss="mse"), TypeError, r"expected loss to be a backprop Loss .*got str"),
    ("optimizer type", dict(optimizer="adam"), TypeError, r"expected optimizer to be a backprop"),
    ("optimizer of other model", dict(optimizer=other_model_optimizer), ValueError,
     r"expected an optimizer built on this model's parameter arrays .*got one over 4 "
     r"arrays of which 4 are not this model's"),
    ("sample_weight length", dict(sample_weight=np.ones(59)), ValueError,
     r"expected sample_weight of shape \(60,\), one per sample, or per step \(N, T, "
     r"\.\.\.\), got \(59,\)"),
    ("negative sample_weight", dict(sample_weight=-np.ones(60)), ValueError,
     r"expected non-negative sample_weight"),
    ("label out of range", dict(y=np.where(np.arange(60) == 59, 3, Y)), ValueError,
     r"y of shape \(60,\) does not fit the loss .*expected class indices in \[0, 3\)"),
    ("float labels", dict(y=Y.astype(np.float32)), TypeError, r"expected integer class indices"),
    ("x width", dict(x=np.ones((60, 3), np.float32)), ValueError,
     r"x of shape \(60, 3\) does not fit the model \(checked on its first 2 samples\): "
     r".*expected input of shape \(N, 2\), got \(2, 3\)"),
    ("class_weight type", dict(class_weight=[1, 2]), TypeError, r"expected class_weight as a dict"),
    ("class_weight key", dict(class_weight={-1: 2.0}), ValueError, r"expected class_weight keys"),
    ("class_weight beyond the classes", dict(class_weight={10**10: 1.0}), ValueError,
     r"expected class_weight keys in \[0, \d+\) .*got \[10000000000\]"),
    ("on_nonfinite", dict(on_nonfinite="ignore"), ValueError, r"expected on_nonfinite 'raise' or"),
    ("callback type", dict(callbacks=[print]), TypeError, r"expected callbacks to be bp.Callback"),
    ("callback twice", dict(callbacks=[_ES, bp.History(), _ES]), ValueError,
     r"expected each callback object once, got the same EarlyStopping twice"),
    ("seed type", dict(seed=1.5), TypeError,
     r"expected seed \(or None\) to be an int >= 0, got 1.5"),
    ("monitor", dict(callbacks=[bp.EarlyStopping()]), ValueError,
     r"expected monitor to be one of \['loss'\], got 'val_loss' \(pass validation_data"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises_before_any_weight_change(case):
    _, changes, error, message = case
    model = mlp()
    before = model.flat_params.copy()
    args = dict(x=X, y=Y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), 0.1),
                epochs=2, progress=False)
    args.update(changes)
    if callable(args["optimizer"]) and not isinstance(args["optimizer"], bp.Optimizer):
        args["optimizer"] = args["optimizer"](model)
    with pytest.raises(error, match=message):
        model.fit(args.pop("x"), args.pop("y"), **args)
    np.testing.assert_array_equal(model.flat_params, before)
    assert not model.has_cache


def test_error_messages_name_expected_and_received():
    for _, _, _, message in BAD:
        assert "expected" in message or "does not fit" in message


# -- divergence guard ----------------------------------------------------------------------
def regression(n=64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    return x, (x @ np.array([[2.0], [-1.0]])).astype(np.float32)


def test_divergence_raises_naming_epoch_and_batch_and_keeps_last_finite_weights():
    x, t = regression()
    model = bp.Sequential([bp.Dense(2, 8, rng=0), bp.Tanh(), bp.Dense(8, 1, rng=1)])
    rec = Recorder()
    before = model.flat_params.copy()
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(RuntimeError, match=r"non-finite .* at epoch \d+, batch \d+") as err:
        model.fit(x, t, loss=bp.MeanSquaredError(), optimizer=bp.SGD(model.parameters(), 1e18),
                  epochs=5, batch_size=8, callbacks=[rec], progress=False, seed=0)
    assert "last finite weights" in str(err.value)
    assert np.isfinite(model.flat_params).all()
    last = rec.weights[-1] if rec.weights else before
    np.testing.assert_array_equal(model.flat_params, last)
    assert not model.has_cache


class PoisonedMSE(bp.MeanSquaredError):
    """MSE whose value is NaN on chosen training steps (set by a callback)."""

    poison = False

    def forward(self, output, target, sample_weight=None):
        value = super().forward(output, target, sample_weight)
        return math.nan if self.poison else value


class Poisoner(bp.Callback):
    def __init__(self, loss, bad):
        self.loss, self.bad = loss, bad

    def on_batch_begin(self, batch, logs):
        self.loss.poison = (self.fit_state.epoch, batch) in self.bad


def test_skip_mode_skips_and_counts_nonfinite_steps():
    x, t = regression()
    model = bp.Sequential([bp.Dense(2, 1, rng=0)])
    loss = PoisonedMSE()
    rec = Recorder()
    h = model.fit(x, t, loss=loss, optimizer=bp.SGD(model.parameters(), 0.05), epochs=2,
                  batch_size=16, on_nonfinite="skip", progress=False, seed=0,
                  callbacks=[Poisoner(loss, {(0, 1), (1, 3)}), rec])
    assert h.skipped_batches == 2
    assert len(rec.weights) == 6  # on_batch_end runs for completed steps only
    assert all(np.isfinite(v) for v in h.history["loss"])
    with pytest.raises(RuntimeError, match=r"non-finite loss \(nan\) at epoch 0, batch 1"):
        model.fit(x, t, loss=loss, optimizer=bp.SGD(model.parameters(), 0.05), epochs=1,
                  batch_size=16, progress=False, callbacks=[Poisoner(loss, {(0, 1)})])


# -- Ctrl-C --------------------------------------------------------------------------------
class Interrupter(bp.Callback):
    def __init__(self, at, how):
        self.at, self.how, self.after = at, how, None

    def on_batch_end(self, batch, logs):
        if (self.fit_state.epoch, batch) == self.at:
            self.after = self.model.flat_params.copy()
            if self.how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: deferred to the step's end


@pytest.mark.parametrize("how", ["raise", "signal"])
def test_ctrl_c_returns_history_so_far_with_intact_weights(how, capsys):
    if how == "signal" and sys.platform == "win32":
        pytest.skip("SIGINT via os.kill is POSIX")
    cb = Interrupter((1, 2), how)
    handler = signal.getsignal(signal.SIGINT)
    model, h = train(epochs=5, callbacks=[cb])
    assert h.interrupted
    assert h.epoch == [0] and len(h.history["loss"]) == 1
    assert np.isfinite(model.flat_params).all()
    np.testing.assert_array_equal(model.flat_params, cb.after)
    err = capsys.readouterr().err
    assert "interrupted at epoch 2, batch 3" in err and err.count("\n") == 1
    assert signal.getsignal(signal.SIGINT) is handler  # fit puts the previous one back


def test_ctrl_c_keeps_the_last_steps_weights_with_early_stopping_too(capsys):
    """EarlyStopping restored its best epoch's weights after Ctrl-C, while fit said it
    returned the last step's (Keras skips the restore there too)."""
    cb = Interrupter((3, 2), "raise")
    stop = bp.EarlyStopping("loss", patience=10)
    model, h = train(epochs=6, callbacks=[cb, stop])
    assert h.interrupted and stop.best_epoch is not None
    assert not np.array_equal(stop._best_weights[0], cb.after)  # a restore would show
    np.testing.assert_array_equal(model.flat_params, cb.after)
    assert "weights from the last step" in capsys.readouterr().err


class CtrlCInForward(bp.Identity):
    """Identity that presses Ctrl-C in the middle of the n-th training step."""

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x, *, training=False):
        if training:
            self.calls += 1
            if self.calls == self.n:
                os.kill(os.getpid(), signal.SIGINT)
        return super().forward(x, training=training)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill is POSIX")
def test_first_ctrl_c_mid_step_lets_that_step_finish(capsys):
    model = bp.Sequential([bp.Dense(2, 16, rng=0), CtrlCInForward(5), bp.ReLU(),
                           bp.Dense(16, 3, rng=1)])
    rec = Recorder()
    _, h = train(model=model, epochs=3, callbacks=[rec])
    assert h.interrupted and len(rec.weights) == 5  # step 5 completed, no step 6
    np.testing.assert_array_equal(model.flat_params, rec.weights[-1])
    assert "interrupted at epoch 1, batch 5" in capsys.readouterr().err


# -- weights ---------------------------------------------------------------------------------
def test_weights_of_one_change_nothing():
    x, y = blobs()
    a, _ = train(x=x, y=y)
    b, _ = train(x=x, y=y, sample_weight=np.ones(len(y)))
    c, _ = train(x=x, y=y, class_weight={0: 1.0, 1: 1.0, 2: 1.0})
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    np.testing.assert_array_equal(a.flat_params, c.flat_params)


def test_zero_class_weight_removes_that_class_effect():
    x, y = blobs()
    garbage = x.copy()
    garbage[y == 2] = np.random.default_rng(1).standard_normal((int((y == 2).sum()), 2)) * 9
    a, _ = train(x=x, y=y, class_weight={2: 0.0})
    b, _ = train(x=garbage, y=y, class_weight={2: 0.0})
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    d, _ = train(x=garbage, y=y)
    assert not np.array_equal(a.flat_params, d.flat_params)


def test_class_weight_multiplies_sample_weight():
    x, y = blobs()
    w = np.random.default_rng(2).uniform(0.5, 1.5, len(y)).astype(np.float32)
    a, _ = train(x=x, y=y, sample_weight=w, class_weight={0: 2.0})
    b, _ = train(x=x, y=y, sample_weight=np.where(y == 0, w * 2, w))
    np.testing.assert_array_equal(a.flat_params, b.flat_params)


# -- progress and plotting -------------------------------------------------------------------
def test_progress_bar_shows_epochs_and_loss(capsys):
    train(epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "loss=" in err


def test_progress_false_prints_nothing(capsys):
    train(epochs=2, validation_split=0.2, metrics=["accuracy"])
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_history_plot_draws_loss_and_metric_panels():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    _, h = train(epochs=2, validation_split=0.2, metrics=["accuracy"])
    fig = h.plot()
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2  # loss and val_loss
    plt.close(fig)


def test_history_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "backprop\[notebooks\]"'):
        bp.History().plot()


def test_inference_batch_defaults_to_64_for_convolutional_models():
    from backprop._inference import default_batch

    conv = bp.Sequential([bp.Residual(bp.Sequential([bp.Conv2D(2, 2, 3, padding=1, rng=0)])),
                          bp.Flatten(), bp.Dense(2 * 5 * 5, 3, rng=1)])
    assert default_batch(conv) == 64  # found inside a nested block too
    assert default_batch(mlp()) == 256 and default_batch(bp.Dense(2, 2)) == 256
    assert default_batch(bp.Conv1D(1, 1, 1)) == 64
    x = np.random.default_rng(0).standard_normal((150, 2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(conv.predict(x), conv.predict(x, batch_size=64))
    y = np.arange(150) % 3
    assert conv.evaluate(x, y, metrics=["accuracy"]) == conv.evaluate(
        x, y, metrics=["accuracy"], batch_size=64)
    with pytest.raises(ValueError, match="predict: expected batch_size >= 1, got 0"):
        conv.predict(x, batch_size=0)


def test_evaluate_between_an_explicit_forward_and_backward_keeps_the_loss_gradient():
    # scoring with the same loss object used to wipe its pending gradient, and the
    # next loss.backward() blamed the user's forward
    x, y = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32), Y[:8]
    model, loss = bp.Sequential([bp.Dense(2, 3, rng=0)]), bp.SoftmaxCrossEntropy()
    loss.forward(model.forward(x, training=True), y)
    want = loss.backward()
    loss.forward(model.forward(x, training=True), y)
    model.evaluate(x, y, loss=loss)  # its input probe and its scoring both run loss.forward
    np.testing.assert_array_equal(loss.backward(), want)


def test_predict_and_evaluate_name_the_users_x_when_it_does_not_fit():
    model = bp.Sequential([bp.Dense(2, 3, rng=0)])
    x = np.ones((300, 5), np.float32)
    for who, call in (("predict", lambda: model.predict(x)),
                      ("evaluate", lambda: model.evaluate(x, np.zeros(300, int),
                                                          metrics=["accuracy"]))):
        with pytest.raises(ValueError, match=r"^Dense\(2, 3\): expected input of shape "
                                             r"\(N, 2\), got \(256, 5\)") as info:
            call()
        if sys.version_info >= (3, 11):  # the error as the layer raised it, plus a note
            assert info.value.__notes__ == [
                f"{who}: x of shape (300, 5), run in batches of 256; this error came from "
                "its first batch, of 256 samples"]


def test_predict_keeps_a_layers_own_error_as_raised():
    class Broken(bp.Layer):  # a user's layer with a bug: NumPy's casting error subclass
        def forward(self, x, *, training=False):
            out = np.zeros(x.shape, np.int64)
            np.add(out, x, out=out)
            return out

    with pytest.raises(TypeError, match="Cannot cast ufunc 'add' output") as info:
        bp.Sequential([Broken()]).predict(np.ones((3, 2), np.float32))
    assert type(info.value) is not TypeError  # NumPy's own subclass, not rebuilt


def test_validation_split_of_label_sorted_data_warns_at_the_callers_line():
    x = np.random.default_rng(0).standard_normal((30, 2)).astype(np.float32)
    y = np.repeat([0, 1, 2], 10)  # sorted by label, as scikit-learn's iris
    model = bp.Sequential([bp.Dense(2, 3, rng=0)])
    kwargs = dict(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                  validation_split=0.2, progress=False)
    for run in (lambda: model.fit(x, y, **kwargs), lambda: bp.fit(model, x, y, **kwargs)):
        with pytest.warns(UserWarning, match=r"the labels are sorted, so validation_split=0.2 "
                                             r"takes the last 6 samples, of class 2 only") as w:
            run()
        assert w[0].filename == __file__  # the user's line, through either entry
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, np.tile([0, 1, 2], 10), **kwargs)  # mixed labels
        model.fit(x, rng.integers(0, 3, 30), **{**kwargs, "validation_split": 0.04})  # 1 row
        rare = np.zeros(30, int)
        rare[[3, 17]] = 1  # imbalanced, unsorted: the last rows are all 0, but no warning
        model.fit(x, rare, **kwargs)
        reg = bp.Sequential([bp.Dense(2, 1, rng=0)])  # sorted integer regression targets
        many = np.arange(60)
        reg.fit(np.repeat(x, 2, axis=0), many, loss=bp.MeanSquaredError(),
                optimizer=bp.SGD(reg.parameters()), validation_split=0.2, progress=False)


def test_caller_level_does_not_take_a_sibling_folder_for_the_package():
    import backprop._validate as validate

    sibling = os.path.dirname(validate.__file__) + "_demo" + os.sep + "run.py"
    scope = {}
    exec(compile("from backprop._validate import caller_level\nlevel = caller_level()",
                 sibling, "exec"), scope)
    assert scope["level"] == 1  # the user's frame itself, though its path shares a prefix


def test_a_loss_with_a_forward_of_its_own_still_gets_a_sample_weighted_epoch_mean():
    class OwnForward(bp.Loss):  # computes everything itself: no divisor recorded
        def forward(self, output, target, sample_weight=None):
            d = output - target
            self._grad = d * (2.0 / d.size)
            return float((d * d).mean())

    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((10, 2)).astype(np.float32)
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    history = model.fit(x, y, loss=OwnForward(), optimizer=_lr0(model),
                        batch_size=4, shuffle=False, progress=False)
    want = bp.MeanSquaredError().forward(model.predict(x), y)  # batches of 4, 4, 2
    assert history.history["loss"][0] == pytest.approx(want, rel=1e-5)


def _lr0(model):
    """An SGD whose steps change nothing (the constructor refuses lr=0; a schedule may not)."""
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0
    return opt


def test_targets_in_the_shapes_keras_takes_train_alike():
    """Integer or bool one-hot rows, a column of labels and a column of sample weights are
    the labels (N,) and weights (N,); a (N, 1) validation target beside (N,) ones too."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    runs = []
    for target in (y, y[:, None], np.eye(3, dtype=int)[y], np.eye(3, dtype=bool)[y]):
        model = bp.Sequential([bp.Dense(4, 3, rng=0)])
        history = model.fit(x, target, loss=bp.SoftmaxCrossEntropy(), epochs=3, batch_size=8,
                            optimizer=bp.SGD(model.parameters(), lr=0.1), seed=0,
                            metrics=["accuracy"], progress=False,
                            sample_weight=np.ones((60, 1)) if target.ndim == 2 else None)
        runs.append((history.history["loss"], history.history["accuracy"]))
    for losses, accuracy in runs[1:]:  # one-hot rows take the probability form: last bits
        assert losses == pytest.approx(runs[0][0], rel=1e-6) and accuracy == runs[0][1]
    ignored = np.where(np.arange(60) < 20, -1, y)
    loss = bp.SoftmaxCrossEntropy(ignore_index=-1)
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    assert model.evaluate(x, ignored[:, None], loss=loss, metrics=["accuracy"]) == \
        model.evaluate(x, ignored, loss=loss, metrics=["accuracy"])
    reg = bp.Sequential([bp.Dense(4, 1, rng=0)])
    t = x[:, 0] * 2
    history = reg.fit(x, t, loss=bp.MeanSquaredError(), optimizer=bp.SGD(reg.parameters()),
                      validation_data=(x, t[:, None]), progress=False)
    assert history.history["val_loss"][0] == pytest.approx(
        reg.evaluate(x, t, loss=bp.MeanSquaredError())["loss"])


def test_an_optimizer_over_some_parameters_trains_those_and_freezes_the_rest(tmp_path):
    x, y = blobs()
    model, twin, resumed = mlp(), mlp(), mlp()
    frozen = [p.value.copy() for p in model[0].parameters()]
    opt = bp.SGD(model[-1].parameters(), lr=0.1, momentum=0.9)
    train(model=model, optimizer=opt, epochs=2, shuffle=False)
    for p, old in zip(model[0].parameters(), frozen, strict=True):
        np.testing.assert_array_equal(p.value, old)
    # the same steps as a hand-written loop with that optimizer (PyTorch's way to freeze)
    twin_opt, loss = bp.SGD(twin[-1].parameters(), lr=0.1, momentum=0.9), bp.SoftmaxCrossEntropy()
    for _ in range(2):
        for i in range(0, len(x), 32):
            loss.forward(twin.forward(x[i:i + 32], training=True), y[i:i + 32])
            twin.backward(loss.backward(), input_grad=False)
            twin_opt.step()
    np.testing.assert_array_equal(model.flat_params, twin.flat_params)
    assert not np.array_equal(model[-1].params["W"], mlp()[-1].params["W"])
    # a checkpointed fit with it resumes bit for bit
    ckpt = str(tmp_path / "c.npz")
    first = mlp()
    train(model=first, optimizer=bp.SGD(first[-1].parameters(), lr=0.1, momentum=0.9),
          epochs=1, shuffle=False, callbacks=[bp.ModelCheckpoint(ckpt)])
    train(model=resumed, optimizer=bp.SGD(resumed[-1].parameters(), lr=0.1, momentum=0.9),
          epochs=2, shuffle=False, callbacks=[bp.ModelCheckpoint(ckpt)], resume=ckpt)
    np.testing.assert_array_equal(resumed.flat_params, model.flat_params)


def test_an_optimizer_of_a_model_wrapped_for_probabilities_is_refused_with_the_way_out():
    """Keras' Sequential([model, Softmax()]) for probabilities moves the model's parameters
    into the wrapper's buffer: the old optimizer is refused by name of that cause, and one
    built anew with the old one's state carries on."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    model = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)])
    opt = bp.Adam(model.parameters(), lr=1e-2)
    args = dict(loss=bp.SoftmaxCrossEntropy(), epochs=1, progress=False)
    model.fit(x, y, optimizer=opt, **args)
    probs = bp.Sequential([model, bp.Softmax()])
    np.testing.assert_allclose(probs.predict(x).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"before the model was put inside another "
                                         r"Sequential, such as Sequential\(\[model, Softmax"):
        model.fit(x, y, optimizer=opt, **args)
    again = bp.Adam(model.parameters(), lr=1e-2)
    again.load_state_dict(opt.state_dict())
    before = model.predict(x)
    model.fit(x, y, optimizer=again, **args)
    assert not np.array_equal(model.predict(x), before)
    np.testing.assert_allclose(probs.predict(x), bp.Softmax().forward(model.predict(x)),
                               rtol=1e-6)  # the wrapper shares the trained weights
