"""A second Ctrl-C in the middle of a step: fit returns the state of the last complete step,
never half a step (a review sent two real SIGINTs a few milliseconds apart and found
BatchNorm statistics of an unfinished step, or parameter groups one step apart)."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

import backprop as bp

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill is POSIX")


class CtrlC(bp.Identity):
    """Identity that presses Ctrl-C ``times`` times in the forward of the ``n``-th step."""

    def __init__(self, n, times):
        super().__init__()
        self.n, self.times, self.calls = n, times, 0

    def forward(self, x, *, training=False):
        if training:
            self.calls += 1
            if self.calls == self.n:
                for _ in range(self.times):
                    os.kill(os.getpid(), signal.SIGINT)
        return super().forward(x, training=training)


class StopAfter(bp.Callback):
    def __init__(self, steps):
        self.steps, self.done = steps, 0

    def on_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            self.model.stop_training = True


def _model(extra=None):
    layers = [bp.Dense(6, 16, rng=0), bp.BatchNorm(16), bp.ReLU(), bp.Dense(16, 3, rng=1)]
    if extra is not None:
        layers.insert(2, extra)
    return bp.Sequential(layers)


def _fit(model, callbacks=(), press_in_step=None):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 6)).astype(np.float32), rng.integers(0, 3, 64)
    params = model.parameters()
    opt = bp.Adam([{"params": params[:4]}, {"params": params[4:], "lr": 0.01}], lr=0.02)
    if press_in_step is not None:  # two Ctrl-Cs inside the first group's update
        child, real = opt._children[0], opt._children[0].step

        def step():
            if child.steps + 1 == press_in_step:
                os.kill(os.getpid(), signal.SIGINT)
                real()  # this group updated ...
                os.kill(os.getpid(), signal.SIGINT)  # ... and the second press comes now
            else:
                real()
        child.step = step
    h = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, batch_size=8,
                  epochs=3, progress=False, seed=0, callbacks=list(callbacks))
    return h, opt


def _same_state(a, b):
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    for key, value in a.buffers.items():
        np.testing.assert_array_equal(value, b.buffers[key], err_msg=key)


def test_a_second_ctrl_c_inside_the_update_waits_for_the_step_to_end(capsys):
    model = _model()
    h, opt = _fit(model, press_in_step=5)
    assert h.interrupted
    assert [c.steps for c in opt._children] == [5, 5]  # not the second group a step behind
    reference = _model()
    _fit(reference, callbacks=[StopAfter(5)])
    _same_state(reference, model)
    assert "interrupted at epoch 1, batch 5" in capsys.readouterr().err


def test_a_second_ctrl_c_in_the_forward_puts_the_steps_buffers_back(capsys):
    model = _model(CtrlC(4, times=2))  # after BatchNorm: its statistics already moved
    h, opt = _fit(model)
    assert h.interrupted and [c.steps for c in opt._children] == [3, 3]
    reference = _model(bp.Identity())
    _fit(reference, callbacks=[StopAfter(3)])
    _same_state(reference, model)  # weights and running statistics of step 3
    assert "interrupted at epoch 1, batch 4" in capsys.readouterr().err


def test_a_single_ctrl_c_in_the_forward_still_finishes_that_step():
    model = _model(CtrlC(4, times=1))
    h, opt = _fit(model)
    assert h.interrupted and [c.steps for c in opt._children] == [4, 4]
    reference = _model(bp.Identity())
    _fit(reference, callbacks=[StopAfter(4)])
    _same_state(reference, model)


def test_a_second_ctrl_c_while_resuming_waits_for_the_checkpoint_to_load(tmp_path, capsys):
    """It raised out of fit between the optimizer's state and the weights being loaded: an
    optimizer with the checkpoint's moments beside freshly initialised weights."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 3, 32)
    args = dict(loss=bp.SoftmaxCrossEntropy(), batch_size=8, progress=False, seed=0)
    first = _model()
    first.fit(x, y, optimizer=bp.Adam(first.parameters(), lr=0.01), epochs=1,
              callbacks=[bp.ModelCheckpoint(tmp_path / "c.npz", monitor="loss")], **args)
    model = _model()
    model[0].params["W"][...] = 0.0  # not the checkpoint's: loading must replace it
    opt = bp.Adam(model.parameters(), lr=0.01)
    real = opt.load_state_dict

    def load_then_press(state):
        real(state)
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
    opt.load_state_dict = load_then_press
    h = model.fit(x, y, optimizer=opt, epochs=3, resume=tmp_path / "c.npz",
                  callbacks=[bp.ModelCheckpoint(tmp_path / "c.npz", monitor="loss")], **args)
    assert h.interrupted and opt.steps == 4
    _same_state(first, model)  # the checkpoint's weights and statistics, all of them
    err = capsys.readouterr().err
    assert "interrupted at epoch 2, batch 1" in err and "ended by a callback" not in err


class PressAtEpochBegin(bp.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)


def test_the_interrupt_message_counts_batches_from_the_epochs_start(capsys):
    model = _model()
    h, opt = _fit(model, callbacks=[PressAtEpochBegin()])
    assert h.interrupted and [c.steps for c in opt._children] == [8, 8]
    assert "interrupted at epoch 2, batch 1" in capsys.readouterr().err  # was "batch 7"


@pytest.mark.parametrize("times", [1, 2])
def test_on_train_end_gets_the_last_whole_epochs_logs_after_ctrl_c(times, capsys):
    # one press ends the epoch it is in; its partial logs (an empty dict) reached
    # on_train_end, where two presses, and Keras, give the last whole epoch's
    seen = []

    class End(bp.Callback):
        def on_train_end(self, logs=None):
            seen.append(dict(logs or {}))

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 2, 64)
    model = bp.Sequential([bp.Dense(4, 2, rng=0), CtrlC(n=6, times=times)])  # epoch 1, batch 2
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1),
              epochs=3, batch_size=16, progress=False, callbacks=[End()])
    assert set(seen[0]) == {"loss"} and np.isfinite(seen[0]["loss"])
