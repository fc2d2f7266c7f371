"""Reliability (issue 6): bad input refused before any change, the divergence guard, crashes.

Complements ``test_training.py`` (its ``BAD`` table, divergence and skip tests),
``test_callbacks.py`` (resume) and ``test_serialization.py`` (refused files, SIGKILL
during ``save``). Here every refusal is checked to name what was expected AND what
was received, and to leave the model bit for bit as it was: weights, BatchNorm
running statistics and the Dropout Generator's state. Faults are injected on
purpose: NaN/Inf in losses, gradients and activations, overflowing updates, a
training process killed with SIGKILL, truncated and corrupted checkpoints.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

ROOT = Path(__file__).resolve().parents[1]
KILLS, EPOCHS_KILLED, KILL_WINDOW_S = 3, 30, 0.03  # see the SIGKILL test below
RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 4)).astype(np.float32)
Y = RNG.integers(0, 3, 40)


def net(seed: int = 0) -> bp.Sequential:
    """A model with every kind of state: weights, running statistics, a Generator."""
    return bp.Sequential([bp.Dense(4, 8, rng=seed), bp.BatchNorm(8), bp.ReLU(),
                          bp.Dropout(0.25, rng=seed + 1), bp.Dense(8, 3, rng=seed + 2)])


def state_of(model: bp.Sequential) -> tuple[bytes, dict[str, bytes], dict]:
    return (model.flat_params.tobytes(), {k: v.tobytes() for k, v in model.buffers.items()},
            [layer.rng.bit_generator.state for layer in model if hasattr(layer, "rng")])


def refuses(call, error: type, expected: str, got: str, model: bp.Sequential) -> str:
    """``call()`` raises ``error`` naming both parts and leaves ``model`` exactly as it was."""
    before = state_of(model)
    with pytest.raises(error) as info:
        call()
    text = str(info.value)
    assert expected in text, f"{expected!r} not in {text!r}"
    assert got in text, f"{got!r} not in {text!r}"
    assert state_of(model) == before
    assert not model.has_cache
    return text


# -- fit: every bad argument refused before the first step ------------------------------------
FIT_BAD = [  # (id, fit arguments changed, error, names the expectation, names what came)
    ("x None", dict(x=None), TypeError, "expected x as a real numeric array", "got NoneType"),
    ("x complex", dict(x=X + 1j), TypeError, "expected x as a real numeric array",
     "got ndarray of dtype complex64"),
    ("x strings", dict(x=X.astype(str)), TypeError, "expected x as a real numeric array",
     "dtype <U"),
    ("x ragged", dict(x=[[1.0, 2.0], [3.0]]), TypeError, "expected x as a numeric array",
     "got list"),
    ("x scalar", dict(x=3.0), ValueError, "expected x with at least one sample (N, ...)",
     "got shape ()"),
    ("x empty list", dict(x=[], y=[]), ValueError, "expected x with at least one sample",
     "got shape (0,)"),
    ("x empty 2-D", dict(x=X[:0], y=Y[:0]), ValueError, "expected x with at least one sample",
     "got shape (0, 4)"),
    ("x inf", dict(x=np.where(np.arange(40)[:, None] == 5, np.inf, X)), ValueError,
     "expected finite values in x", "got NaN/Inf in 1 sample(s), the first at index 5"),
    ("x nan many", dict(x=np.where(np.arange(40)[:, None] % 10 == 9, np.nan, X)), ValueError,
     "expected finite values in x", "got NaN/Inf in 4 sample(s), the first at index 9"),
    ("x beyond float32", dict(x=np.where(np.arange(40)[:, None] == 2, 1e39, X.astype(float))),
     ValueError, "expected finite values in x",
     "got values beyond the float32 range (|v| > 3.403e+38) in 1 sample(s), the first at "
     "index 2"),
    ("x wrong width", dict(x=np.ones((40, 5))), ValueError, "expected input of shape (N, 4)",
     "got (2, 5)"),
    ("x wrong rank", dict(x=np.ones((40, 4, 1))), ValueError, "expected input of shape (N, 4)",
     "got (2, 4, 1)"),
    ("y None", dict(y=None), TypeError, "expected y as an array of targets (N, ...)",
     "got NoneType"),
    ("y too long", dict(y=np.arange(41) % 3), ValueError,
     "expected y with one target per sample of x (40)", "got y of shape (41,)"),
    ("y too short", dict(y=Y[:39]), ValueError, "one target per sample of x (40)",
     "got y of shape (39,)"),
    ("y strings", dict(y=Y.astype(str)), TypeError, "expected numeric targets y",
     "got dtype <U"),
    ("y float labels", dict(y=Y.astype(np.float64)), TypeError,
     "expected integer class indices (N,)", "got dtype float32"),
    ("y bool labels", dict(y=Y > 0), TypeError, "expected integer class indices (N,)",
     "got dtype bool"),
    ("y labels (40, 2)", dict(y=np.stack([Y, Y], axis=1)), ValueError,
     "expected 40 class indices of shape (40,)", "got (40, 2)"),
    ("y label 3 of 3", dict(y=np.where(np.arange(40) == 39, 3, Y)), ValueError,
     "expected class indices in [0, 3)", "got values from 0 to 3"),
    ("y label -1", dict(y=np.where(np.arange(40) == 0, -1, Y)), ValueError,
     "expected class indices in [0, 3)", "got values from -1 to 2"),
    ("y label 2**40", dict(y=np.full(40, 2**40)), ValueError, "expected class indices in [0, 3)",
     "got values from 1099511627776"),
    ("y probabilities < 0", dict(y=np.full((40, 3), -0.5)), ValueError,
     "expected target probabilities in [0, 1]", "got values from -0.5 to -0.5"),
    ("y probabilities nan", dict(y=np.full((40, 3), np.nan)), ValueError,
     "expected finite values in y", "got NaN/Inf in 40 sample(s)"),
    ("y probabilities width", dict(y=np.full((40, 4), 0.25)), ValueError,
     "expected target probabilities of shape (40, 3)", "got (40, 4)"),
    ("mse target width", dict(y=np.zeros((40, 2)), loss=bp.MeanSquaredError()), ValueError,
     "expected target of shape (40, 3)", "got (40, 2)"),
    ("bce target range", dict(y=np.full((40, 3), 1.5), loss=bp.BinaryCrossEntropyWithLogits()),
     ValueError, "expected targets in [0, 1]", "got values from 1.5 to 1.5"),
    ("epochs -1", dict(epochs=-1), ValueError, "expected epochs >= 0", "got -1"),
    ("epochs 2.5", dict(epochs=2.5), TypeError, "expected epochs to be an int >= 0", "got 2.5"),
    ("epochs True", dict(epochs=True), TypeError, "expected epochs to be an int >= 0",
     "got True"),
    ("epochs '3'", dict(epochs="3"), TypeError, "expected epochs to be an int >= 0",
     "got '3'"),
    ("initial_epoch -1", dict(initial_epoch=-1), ValueError,
     "expected initial_epoch >= 0", "got -1"),
    ("batch_size 0", dict(batch_size=0), ValueError, "expected batch_size >= 1", "got 0"),
    ("batch_size -3", dict(batch_size=-3), ValueError, "expected batch_size >= 1", "got -3"),
    ("batch_size 2.5", dict(batch_size=2.5), TypeError, "expected batch_size to be a positive int",
     "got 2.5"),
    ("batch_size True", dict(batch_size=True), TypeError,
     "expected batch_size to be a positive int", "got True"),
    ("batch_size '32'", dict(batch_size="32"), TypeError,  # (None is Keras' 32: session 33)
     "expected batch_size to be a positive int", "got '32'"),
    ("val x width", dict(validation_data=(X[:, :3], Y)), ValueError,
     "expected validation samples shaped like the training ones, x (N, 4) and y (N,)",
     "got x (40, 3) and y (40,)"),
    ("val y length", dict(validation_data=(X, Y[:7])), ValueError,
     "expected y with one target per sample of x (40)", "got y of shape (7,)"),
    ("val x nan", dict(validation_data=(np.full((5, 4), np.nan), Y[:5])), ValueError,
     "fit (validation_data): expected finite values in x", "got NaN/Inf in 5 sample(s)"),
    ("val empty", dict(validation_data=(X[:0], Y[:0])), ValueError,
     "fit (validation_data): expected x with at least one sample", "got shape (0, 4)"),
    ("val labels out of range", dict(validation_data=(X[:5], Y[:5] + 3)), ValueError,
     "expected class indices in [0, 3)", "got values from 3 to 5"),
    ("val float labels", dict(validation_data=(X, Y.astype(float))), TypeError,
     "expected integer class indices", "got dtype float32"),
    ("val 1-tuple", dict(validation_data=(X,)), TypeError,
     "expected validation_data as (x_val, y_val) or (x_val, y_val, w_val)",
     "got tuple of length 1"),
    ("val weights length", dict(validation_data=(X, Y, np.ones(3))), ValueError,
     "expected sample_weight of shape (40,)", "got (3,)"),
    ("validation_split 1.5", dict(validation_split=1.5), ValueError,
     "expected validation_split in [0.0, 1.0)", "got 1.5"),
    ("validation_split nan", dict(validation_split=math.nan), ValueError,
     "expected validation_split in [0.0, 1.0)", "got nan"),
    ("validation_split leaves none", dict(validation_split=0.999), ValueError,
     "to leave samples on both sides of 40", "got 0 for training"),
    ("sample_weight nan", dict(sample_weight=np.full(40, np.nan)), ValueError,
     "expected finite sample_weight", "got 40 NaN or infinite value(s)"),
    ("sample_weight 2-D", dict(sample_weight=np.ones((40, 2))), ValueError,
     "expected sample_weight of shape (40,)", "got (40, 2)"),
    ("seed -1", dict(seed=-1), ValueError, "expected seed (or None) >= 0", "got -1"),
    ("on_nonfinite 'warn'", dict(on_nonfinite="warn"), ValueError,
     "expected on_nonfinite 'raise' or 'skip'", "got 'warn'"),
]


@pytest.mark.parametrize("case", FIT_BAD, ids=[c[0] for c in FIT_BAD])
def test_fit_refuses_bad_input_naming_expected_and_received_before_any_change(case):
    _, changes, error, expected, got = case
    model = net()
    args = {**dict(x=X, y=Y, loss=bp.SoftmaxCrossEntropy(), epochs=2, batch_size=8,
                   progress=False, seed=0), **changes}
    opt = bp.Adam(model.parameters(), lr=0.1)
    refuses(lambda: model.fit(args.pop("x"), args.pop("y"), optimizer=opt, **args),
            error, expected, got, model)
    assert opt.steps == 0


def test_label_out_of_range_far_into_a_large_set_is_found_before_any_step():
    """Targets are probed against the loss in chunks of 4096 rows: the last chunk counts too."""
    n = 10_000
    x = np.random.default_rng(1).standard_normal((n, 4)).astype(np.float32)
    y = np.arange(n) % 3
    y[n - 1] = 7
    model = net()
    refuses(lambda: model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), progress=False,
                              optimizer=bp.SGD(model.parameters(), lr=0.1)),
            ValueError, "expected class indices in [0, 3)", "got values from 0 to 7", model)


# -- evaluate and predict ------------------------------------------------------------------------
EVALUATE_BAD = [
    ("x nan", dict(x=np.full((3, 4), np.nan), y=Y[:3]), ValueError,
     "evaluate: expected finite values in x", "got NaN/Inf in 3 sample(s)"),
    ("x empty", dict(x=X[:0], y=Y[:0]), ValueError,
     "evaluate: expected x with at least one sample", "got shape (0, 4)"),
    ("x wrong width", dict(x=np.ones((6, 2)), y=Y[:6]), ValueError,
     "expected input of shape (N, 4)", "got (2, 2)"),
    ("y shorter", dict(y=Y[:5]), ValueError, "expected y with one target per sample of x (40)",
     "got y of shape (5,)"),
    ("y longer", dict(y=np.zeros(41, int)), ValueError, "one target per sample of x (40)",
     "got y of shape (41,)"),
    ("y float labels", dict(y=Y.astype(float)), TypeError, "expected integer class indices",
     "got dtype float32"),
    ("y out of range", dict(y=Y + 1), ValueError, "expected class indices in [0, 3)",
     "got values from 1 to 3"),
    ("y None", dict(y=None), TypeError, "expected targets y to score against", "got None"),
    ("batch_size 0", dict(batch_size=0), ValueError, "expected batch_size >= 1", "got 0"),
    ("batch_size -3", dict(batch_size=-3), ValueError, "expected batch_size >= 1", "got -3"),
    ("batch_size 2.5", dict(batch_size=2.5), TypeError,
     "expected batch_size to be a positive int", "got 2.5"),
    ("sample_weight length", dict(sample_weight=np.ones(4)), ValueError,
     "expected sample_weight of shape (40,)", "got (4,)"),
    ("loss type", dict(loss="mse"), TypeError, "expected loss to be a backprop Loss or None",
     "got str"),
]

PREDICT_BAD = [
    ("x nan", dict(x=np.full((3, 4), np.nan)), ValueError, "predict: expected finite values",
     "got NaN/Inf in 3 sample(s)"),
    ("x inf", dict(x=np.where(np.arange(40)[:, None] == 30, -np.inf, X)), ValueError,
     "expected finite values in x", "the first at index 30"),
    ("x beyond float32", dict(x=np.full((2, 4), -1e300)), ValueError,
     "expected finite values in x", "got values beyond the float32 range"),
    ("x empty", dict(x=np.zeros((0, 4))), ValueError,
     "predict: expected x with at least one sample", "got shape (0, 4)"),
    ("x None", dict(x=None), TypeError, "predict: expected x as a real numeric array",
     "got NoneType"),
    ("x complex", dict(x=np.ones((2, 4), complex)), TypeError, "expected x as a real numeric",
     "dtype complex128"),
    ("x scalar", dict(x=1.0), ValueError, "expected x with at least one sample",
     "got shape ()"),
    ("x wrong width", dict(x=np.ones((3, 7))), ValueError, "expected input of shape (N, 4)",
     "got (3, 7)"),
    ("batch_size 0", dict(batch_size=0), ValueError, "expected batch_size >= 1", "got 0"),
    ("batch_size -3", dict(batch_size=-3), ValueError, "expected batch_size >= 1", "got -3"),
    ("batch_size 2.5", dict(batch_size=2.5), TypeError,
     "expected batch_size to be a positive int", "got 2.5"),
]


@pytest.mark.parametrize("case", EVALUATE_BAD, ids=[c[0] for c in EVALUATE_BAD])
def test_evaluate_refuses_bad_input_naming_expected_and_received(case):
    _, changes, error, expected, got = case
    model = net()
    args = {**dict(x=X, y=Y, loss=bp.SoftmaxCrossEntropy()), **changes}
    refuses(lambda: model.evaluate(args.pop("x"), args.pop("y"), **args), error, expected, got,
            model)
    assert not args["loss"].has_cache if isinstance(args["loss"], bp.Loss) else True


@pytest.mark.parametrize("case", PREDICT_BAD, ids=[c[0] for c in PREDICT_BAD])
def test_predict_refuses_bad_input_naming_expected_and_received(case):
    _, changes, error, expected, got = case
    model = net()
    args = {"x": X, **changes}
    refuses(lambda: model.predict(args.pop("x"), **args), error, expected, got, model)


# -- divergence guard: NaN/Inf injected into losses, gradients and activations -------------------
class Fault(bp.Identity):
    """Identity that injects ``value`` at chosen training steps (1-based step numbers):
    into its output (``where="forward"``: the loss turns non-finite) or into ``dx``
    (``where="backward"``: the loss stays finite, the gradients below do not)."""

    def __init__(self, steps, where, value=math.nan):
        super().__init__()
        self.steps, self.where, self.value, self.calls = set(steps), where, value, 0

    def forward(self, x, *, training=False):
        y = super().forward(x, training=training)
        if training:
            self.calls += 1
            if self.where == "forward" and self.calls in self.steps:
                y = y.copy()
                y[0, 0] = self.value
        return y

    def backward(self, dy):
        dx = super().backward(dy)
        if self.where == "backward" and self.calls in self.steps:
            dx = dx.copy()
            dx[0, 0] = self.value
        return dx


class Weights(bp.Callback):
    """The weights before and after every step, and each step's (epoch, batch)."""

    def __init__(self):
        self.begin, self.end, self.done = {}, {}, []

    def on_batch_begin(self, batch, logs):
        self.begin[self.fit_state.epoch, batch] = self.model.flat_params.copy()

    def on_batch_end(self, batch, logs):
        self.end[self.fit_state.epoch, batch] = self.model.flat_params.copy()
        self.done.append((self.fit_state.epoch, batch))


def faulty_net(fault: Fault) -> bp.Sequential:
    """The fault sits after the first Dense and before BatchNorm (whose running statistics
    a non-finite forward would poison)."""
    return bp.Sequential([bp.Dense(4, 8, rng=0), fault, bp.BatchNorm(8), bp.ReLU(),
                          bp.Dropout(0.25, rng=1), bp.Dense(8, 3, rng=2)])


def fit_faulty(model, **kwargs):
    opt = kwargs.pop("optimizer", None) or bp.Adam(model.parameters(), lr=0.01)
    args = dict(loss=bp.SoftmaxCrossEntropy(), epochs=3, batch_size=8, seed=0, progress=False,
                validation_data=(X, Y))
    return model.fit(X, Y, optimizer=opt, **{**args, **kwargs}), opt


def all_finite(model, opt) -> bool:
    arrays = [model.flat_params, *model.buffers.values()]
    arrays += [v for s in opt.state_dict()["state"].values() for v in s.values()
               if isinstance(v, np.ndarray)]
    return all(np.isfinite(a).all() for a in arrays)


@pytest.mark.parametrize("where, value, what", [
    ("forward", math.nan, r"non-finite loss \(nan\)"),
    ("forward", math.inf, r"non-finite loss \((nan|inf)\)"),
    ("backward", math.nan, r"non-finite gradient norm \(the loss, [\d.]+, is finite\)"),
    ("backward", -math.inf, r"non-finite gradient norm \(the loss, [\d.]+, is finite\)"),
])
def test_injected_fault_stops_naming_epoch_and_batch_with_last_finite_state(where, value, what):
    step = 5 + 2 + 1  # epoch 1 (five batches of 8 each), batch 2; steps count from 1
    model = faulty_net(Fault({step}, where, value))
    rec = Weights()
    where_ = r" at epoch 1, batch 2 \(both counted from 0\)"
    with np.errstate(invalid="ignore"), pytest.raises(RuntimeError, match=what + where_):
        fit_faulty(model, callbacks=[rec])
    assert rec.done[-1] == (1, 1)  # the step before the fault completed, the fault's did not
    np.testing.assert_array_equal(model.flat_params, rec.end[1, 1])
    np.testing.assert_array_equal(model.flat_params, rec.begin[1, 2])
    opt = bp.Adam(model.parameters(), lr=0.01)
    assert all_finite(model, opt) and not model.has_cache
    assert np.isfinite(model.predict(X)).all()  # running statistics were put back too
    h, opt = fit_faulty(model, epochs=2)  # nothing lost: training simply goes on
    assert all_finite(model, opt) and np.isfinite(h.history["val_loss"]).all()


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_skip_mode_skips_counts_and_never_lets_a_fault_through(where):
    steps = {2, 7, 8, 15}  # four faults in three epochs of five batches
    model = faulty_net(Fault(steps, where))
    rec = Weights()
    h, opt = fit_faulty(model, callbacks=[rec], on_nonfinite="skip")
    assert h.skipped_batches == 4 and opt.steps == 15 - 4 and len(rec.done) == 11
    for step in steps:
        key = divmod(step - 1, 5)
        assert key not in rec.end  # its on_batch_end never ran
        after = rec.begin.get((key[0], key[1] + 1)) if key[1] < 4 else rec.begin.get(
            (key[0] + 1, 0), model.flat_params)
        np.testing.assert_array_equal(after, rec.begin[key])  # the step changed nothing
    assert all_finite(model, opt)
    for key in ("loss", "val_loss"):
        assert np.isfinite(h.history[key]).all()


def test_an_overflowing_batchnorm_statistic_stops_fit_though_loss_and_gradients_are_finite():
    """lr 1e4 on inputs of ~1e3: the activations grow until a running variance overflows
    float32 while the normalised outputs, the loss and the gradients stay finite."""
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((64, 4)) * 1e3).astype(np.float32), rng.integers(0, 3, 64)

    def net():
        return bp.Sequential([bp.Dense(4, 8, rng=0), bp.BatchNorm(8), bp.ReLU(),
                              bp.Dense(8, 3, rng=1)])

    def run(model, epochs, **kwargs):
        opt = bp.SGD(model.parameters(), lr=1e4)
        return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, batch_size=32,
                         epochs=epochs, seed=0, progress=False, **kwargs)

    model = net()
    with pytest.raises(RuntimeError, match=r"non-finite BatchNorm running statistic .*the "
                                           r"gradients are finite\) at epoch \d+, batch \d"):
        run(model, 50)
    assert all(np.isfinite(b).all() for b in model.buffers.values())  # put back
    assert np.isfinite(model.flat_params).all()
    model = net()
    with np.errstate(over="ignore", invalid="ignore"):  # the steps around the skips overflow
        h = run(model, 4, on_nonfinite="skip")
    assert h.skipped_batches > 0
    assert all(np.isfinite(b).all() for b in model.buffers.values())


def test_skip_mode_with_every_batch_bad_leaves_everything_and_says_nan():
    model = faulty_net(Fault(range(1, 100), "forward"))
    before = state_of(model)
    h, opt = fit_faulty(model, epochs=2, on_nonfinite="skip")
    assert h.skipped_batches == 10 and opt.steps == 0
    assert all(math.isnan(v) for v in h.history["loss"])  # no step: no training loss
    assert state_of(model)[:2] == before[:2]  # weights and running statistics untouched


def test_overflowing_update_is_reported_even_in_skip_mode():
    """A learning rate so large that one update overflows the weights: the loss and
    gradient of that step were finite, so the guard sees it one step later, and says so."""
    x = np.full((8, 2), 1e9, np.float32)
    for mode in ("raise", "skip"):
        model = bp.Sequential([bp.Dense(2, 1, rng=0)])
        with np.errstate(over="ignore", invalid="ignore"), pytest.raises(
                RuntimeError, match=r"expected finite weights, got non-finite ones at epoch 0, "
                                    r"batch 1 .*the update after the previous batch "
                                    r"overflowed them"):
            model.fit(x, np.zeros((8, 1), np.float32), loss=bp.MeanSquaredError(),
                      optimizer=bp.SGD(model.parameters(), lr=1e21), epochs=3, batch_size=4,
                      progress=False, seed=0, on_nonfinite=mode)


# -- crash safety of training: SIGKILL in the middle of fit, then resume -------------------------
TRAINER = textwrap.dedent("""
    import sys
    import numpy as np
    import backprop as bp

    class Report(bp.Callback):
        _order = 3  # after ModelCheckpoint: a reported epoch is a saved one
        def on_epoch_end(self, epoch, logs):
            print(epoch, flush=True)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((128, 16)).astype(np.float32), rng.integers(0, 4, 128)
    model = bp.Sequential([bp.Dense(16, 64, rng=0), bp.BatchNorm(64), bp.ReLU(),
                           bp.Dropout(0.3, rng=1), bp.Dense(64, 64, rng=2), bp.ReLU(),
                           bp.Dense(64, 4, rng=3)])
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters(), 1e-3),
              epochs=int(sys.argv[2]), batch_size=8, seed=0, progress=False,
              callbacks=[bp.ModelCheckpoint(sys.argv[1]), Report()])
""")


class Report(bp.Callback):
    """Stands in for the trainer's callback of that name when resuming (same class name)."""

    _order = 3


def trainer_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((128, 16)).astype(np.float32), rng.integers(0, 4, 128)


def run_trainer(path: Path, epochs: int, kill_at: int, delay: float) -> int:
    """Run TRAINER and SIGKILL it ``delay`` seconds after it reported epoch ``kill_at``
    (mid-epoch or mid-save). Returns the last epoch it reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    with subprocess.Popen([sys.executable, "-c", TRAINER, str(path), str(epochs)], env=env,
                          stdout=subprocess.PIPE, text=True) as proc:
        for _ in range(kill_at + 1):
            assert proc.stdout.readline().strip(), "the trainer died before the kill"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        reported = [kill_at, *map(int, proc.stdout.read().split())]
    assert proc.returncode == -signal.SIGKILL, "the trainer finished before the kill"
    return reported[-1]


def fit_trainer_model(model: bp.Sequential, epochs: int, **kwargs) -> bp.History:
    return model.fit(*trainer_data(), loss=bp.SoftmaxCrossEntropy(),
                     optimizer=bp.Adam(model.parameters(), 1e-3), epochs=epochs, batch_size=8,
                     seed=0, progress=False, **kwargs)


def test_training_killed_with_sigkill_resumes_to_the_same_weights_bit_for_bit(tmp_path):
    reference = bp.Sequential([bp.Dense(16, 64, rng=0), bp.BatchNorm(64), bp.ReLU(),
                               bp.Dropout(0.3, rng=1), bp.Dense(64, 64, rng=2), bp.ReLU(),
                               bp.Dense(64, 4, rng=3)])
    fit_trainer_model(reference, EPOCHS_KILLED)  # the same run, never interrupted
    rng = np.random.default_rng(0)
    kills = []
    for i in range(KILLS):
        path = tmp_path / f"killed-{i}.npz"
        last = run_trainer(path, EPOCHS_KILLED, int(rng.integers(0, 6)),
                           float(rng.uniform(0.0, KILL_WINDOW_S)))
        ckpt = bp.load_checkpoint(path)  # complete: the old file or the new one, never half
        saved = ckpt.training_state["epoch"]
        assert saved in (last + 1, last + 2)  # the last reported save, or one more unreported
        kills.append((last, saved, len(list(tmp_path.glob(f".killed-{i}.npz.*.tmp")))))
        model = ckpt.model
        history = fit_trainer_model(model, EPOCHS_KILLED, resume=ckpt,
                                    callbacks=[bp.ModelCheckpoint(path), Report()])
        assert history.epoch == list(range(EPOCHS_KILLED))
        np.testing.assert_array_equal(model.flat_params, reference.flat_params)
        for k, v in reference.buffers.items():
            np.testing.assert_array_equal(model.buffers[k], v)
    print("\nSIGKILL during fit (last reported epoch, saved epochs, stale temporaries):", kills)


# -- corrupt checkpoints: refused with a clear error, never run, weights untouched ----------------
def test_every_truncation_of_a_checkpoint_is_refused_and_resume_changes_nothing(tmp_path):
    model = net()
    path = tmp_path / "ck.npz"
    h = model.fit(X, Y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters()),
                  epochs=1, progress=False, seed=0, callbacks=[bp.ModelCheckpoint(path)])
    assert h.epoch == [0]
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    cuts = sorted({int(c) for c in np.linspace(0, len(data) - 1, 60)})
    for cut in cuts:
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"expected a complete backprop \.npz of plain "
                                             r"arrays; the file is truncated, corrupt"):
            bp.load_checkpoint(bad)
    target = net(seed=3)
    refuses(lambda: target.fit(X, Y, loss=bp.SoftmaxCrossEntropy(), progress=False,
                               optimizer=bp.Adam(target.parameters()), epochs=2, resume=bad),
            ValueError, "expected a complete backprop .npz", "truncated, corrupt", target)
    print(f"\ntruncations refused: {len(cuts)} of a {len(data)}-byte checkpoint")


@pytest.mark.parametrize("make", [
    lambda: bp.Dense(2, 3, dtype=np.float16),
    lambda: bp.Sequential([bp.Dense(2, 3)], dtype="float16"),
    lambda: bp.Sequential([bp.Dense(2, 3)]).astype(np.longdouble),
])
def test_only_float32_and_float64_models_are_built(make):
    with pytest.raises(TypeError, match=r"expected a floating dtype \(float32 or float64\), got"):
        make()


@pytest.mark.parametrize("make, name", [
    (lambda: bp.SGD(bp.Dense(2, 2).parameters(), lr=math.inf), "lr"),
    (lambda: bp.LeakyReLU(math.inf), "negative_slope"),
    (lambda: bp.ELU(alpha=math.inf), "alpha"),
    (lambda: bp.Huber(delta=math.nan), "delta"),
])
def test_hyperparameters_must_be_finite(make, name):
    with pytest.raises(ValueError, match=rf"expected {name} in .*\(finite\), got (inf|nan)"):
        make()


def test_a_dtype_mismatch_suggests_only_what_the_model_accepts():
    dense = bp.Dense(2, 3)
    with pytest.raises(TypeError) as info:
        dense.forward(np.ones((4, 2), np.int64))
    assert ".astype(np.float32)" in str(info.value) and "dtype=np.int64" not in str(info.value)
    with pytest.raises(TypeError, match=r"or build the model with dtype=np.float64"):
        dense.forward(np.ones((4, 2), np.float64))


@pytest.mark.parametrize("other", [
    lambda: bp.Sequential([bp.Dense(4, 8, rng=0), bp.Tanh(), bp.Dense(8, 3, rng=1)]),
    lambda: bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)],
                          ).astype(np.float64),
])
def test_resume_refuses_a_model_with_the_same_shapes_but_other_layers_or_dtype(tmp_path, other):
    path = tmp_path / "ckpt.npz"
    model = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)])
    model.fit(X, Y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
              epochs=1, batch_size=8, seed=0, progress=False,
              callbacks=[bp.ModelCheckpoint(path)])
    changed = other()
    before = changed.flat_params.copy()
    with pytest.raises(ValueError, match="expected a checkpoint of this model's architecture"):
        changed.fit(X, Y, loss=bp.SoftmaxCrossEntropy(),
                    optimizer=bp.SGD(changed.parameters()), epochs=2, batch_size=8,
                    progress=False, resume=path, callbacks=[bp.ModelCheckpoint(path)])
    np.testing.assert_array_equal(changed.flat_params, before)


@pytest.mark.parametrize("make, name", [
    (lambda: bp.Dense(2, 3, bias="no"), "bias"),
    (lambda: bp.Conv2D(1, 2, 3, bias=1), "bias"),
    (lambda: bp.BatchNorm(3, use_running_stats="x"), "use_running_stats"),
    (lambda: bp.EarlyStopping(restore_best="yes"), "restore_best"),
    (lambda: bp.ModelCheckpoint("m.npz", save_best_only=1), "save_best_only"),
    (lambda: (lambda m: m.fit(X, Y, loss=bp.SoftmaxCrossEntropy(), shuffle="no",
                              optimizer=bp.SGD(m.parameters())))(bp.Sequential([bp.Dense(4, 3)])),
     "shuffle"),
])
def test_boolean_options_accept_only_true_or_false(make, name):
    with pytest.raises(TypeError, match=rf"expected {name} to be True or False, got"):
        make()
    assert bp.Dense(2, 3, bias=np.bool_(False)).bias is False  # NumPy's bool is fine


def test_an_initializer_returning_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"Dense: expected the initializer of 'W' to return an "
                                         r"array of shape \(2, 3\), got \(6,\)"):
        bp.Dense(2, 3, init=lambda shape, rng, dtype: np.zeros(6, dtype))


@pytest.mark.parametrize("call", [lambda: bp.save(bp.Dense(2, 2), None),
                                  lambda: bp.load(None), lambda: bp.load(3)])
def test_save_and_load_name_a_path_that_is_not_one(call):
    with pytest.raises(TypeError, match=r"(save|load): expected path as a str or os.PathLike"):
        call()


@pytest.mark.parametrize("last, loss, y", [
    (bp.Softmax, bp.SoftmaxCrossEntropy, Y),
    (bp.Sigmoid, bp.BinaryCrossEntropyWithLogits, (Y[:, None] == 1).astype(np.float32)),
])
def test_a_final_activation_the_loss_applies_again_is_warned_about(last, loss, y):
    width = 3 if last is bp.Softmax else 1
    model = bp.Sequential([bp.Sequential([bp.Dense(4, width, rng=0), last()])])
    with pytest.warns(UserWarning, match=f"ends in {last.__name__}.*applied twice"):
        model.fit(X, y, loss=loss(), optimizer=bp.SGD(model.parameters()), epochs=1,
                  progress=False)
    plain = bp.Sequential([bp.Dense(4, width, rng=0)])
    plain.fit(X, y, loss=loss(), optimizer=bp.SGD(plain.parameters()), epochs=1,
              progress=False)  # no warning (warnings are errors in this suite)


def test_fit_silences_overflow_in_its_steps_only_not_in_the_users_hooks():
    class Logs(bp.Callback):
        def on_batch_end(self, batch, logs):
            np.log(np.zeros(1))  # warns: the suite turns warnings into errors

    x = np.ones((8, 2), np.float32)
    model = bp.Sequential([bp.Dense(2, 1, rng=0)])
    with pytest.raises(RuntimeWarning, match="divide by zero"):
        model.fit(x, np.zeros((8, 1), np.float32), loss=bp.MeanSquaredError(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False,
                  callbacks=[Logs()])


def test_fit_refuses_weights_that_are_already_non_finite():
    model = bp.Sequential([bp.Dense(2, 1, rng=0)])
    model[0].params["W"][0, 0] = np.nan
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"fit: expected finite weights to start from, got "
                                         r"NaN or inf ones"):
        model.fit(np.ones((8, 2), np.float32), np.zeros((8, 1), np.float32),
                  loss=bp.MeanSquaredError(), optimizer=bp.SGD(model.parameters(), lr=0.1),
                  progress=False)
    np.testing.assert_array_equal(model[0].params["b"], before["0.b"])


def test_an_overflow_in_the_last_update_of_a_fit_is_reported_not_returned():
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    y = (x[:, :1] * 1e15).astype(np.float32)
    seen = []

    class Validated(bp.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(logs)

    for mode in ("raise", "skip"):
        model = bp.Sequential([bp.Dense(3, 1, rng=0)])

        with pytest.raises(RuntimeError, match=r"fit: expected finite weights, got non-finite "
                                               r"ones after the last update of epoch 0, batch 0"):
            model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.SGD(model.parameters(),
                      lr=1e30), epochs=2, batch_size=64, validation_data=(x, y),
                      on_nonfinite=mode, callbacks=[Validated()], progress=False)
        assert seen == []  # reported before validation and the callbacks' epoch end


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's own
def test_np_matrix_input_is_an_ndarray_to_a_model_and_refused_by_a_bare_layer():
    x = np.array([[1, -2, 3], [0.5, 1, -1], [2, 0, 1]], np.float32)  # square: * would "work"
    model = bp.Sequential([bp.LeakyReLU(), bp.Dense(3, 3, rng=0), bp.GELU()])
    want = model.forward(x, training=True)
    want_dx = model.backward(np.ones_like(want))
    got = model.forward(np.matrix(x), training=True)
    got_dx = model.backward(np.matrix(np.ones_like(want)))
    assert type(got) is np.ndarray and np.array_equal(got, want)
    assert type(got_dx) is np.ndarray and np.array_equal(got_dx, want_dx)
    with pytest.raises(TypeError, match=r"LeakyReLU\(\): expected input as an ndarray, got "
                                        r"np.matrix .*pass np.asarray\(x\)"):
        bp.LeakyReLU().forward(np.matrix(x))


@pytest.mark.parametrize("layer", [bp.Sequential([bp.Dense(3, 3)]), bp.Dropout(0.5),
                                   bp.BatchNorm(3), bp.Residual(bp.Dense(3, 3))])
def test_training_must_be_a_bool_where_it_changes_what_a_layer_does(layer):
    x = np.ones((4, 3), np.float32)
    for bad in ("False", "no", 1, None):
        with pytest.raises(TypeError, match=r"expected training to be True or False, got"):
            layer.forward(x, training=bad)
    assert not layer.has_cache  # nothing was cached, no statistic moved
    if isinstance(layer, bp.BatchNorm):
        assert np.array_equal(layer.buffers["running_mean"], np.zeros(3))
    layer.forward(x, training=np.bool_(False))  # NumPy's bool is a bool
