"""OneCycleLR and schedules of optimizer steps (LearningRateScheduler(per_step=True))."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop._fit_state import _hooks

CE = bp.SoftmaxCrossEntropy()


def _data(n=100):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


def _model():
    return bp.Sequential([bp.Dense(5, 8, rng=0), bp.Tanh(), bp.Dense(8, 3, rng=1)]
                         ).astype(np.float64)


GRID = [c for c in itertools.product([1, 2, 7, 10, 33], [0.0, 0.25, 0.3, 0.5, 1.0],
                                     ["cos", "linear"], [False, True])
        if c[0] * c[1] != 1]  # a warm-up of exactly one step: PyTorch divides by zero


@pytest.mark.parametrize("total,pct,strategy,three", GRID)
def test_rates_and_momenta_match_torch_at_every_step(total, pct, strategy, three):
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.1)
    theirs = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.3, total_steps=total, pct_start=pct, anneal_strategy=strategy,
        three_phase=three, div_factor=10.0, final_div_factor=100.0, base_momentum=0.8)
    ours = bp.OneCycleLR(0.3, total, pct_start=pct, anneal_strategy=strategy,
                         three_phase=three, div_factor=10.0, final_div_factor=100.0,
                         base_momentum=0.8)
    for t in range(total + 1):  # PyTorch allows total_steps steps, then refuses
        group = opt.param_groups[0]
        assert ours(t) == pytest.approx(group["lr"], rel=1e-12, abs=0)
        assert ours.momentum(t) == pytest.approx(group["betas"][0], rel=1e-12)
        opt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if t < total:
                    theirs.step()
            except ZeroDivisionError:  # a last phase of length 0 (pct_start=1), at step T
                assert pct == 1.0 and t == total - 1
                break
    with pytest.raises(ValueError, match=rf"OneCycleLR: step {total + 1} is past "
                                         rf"total_steps={total}"):
        ours(total + 1)


def test_rates_and_momenta_at_hand_computed_steps():
    # T = 10, pct_start 0.3: the warm-up ends at step 2, the annealing at step 9
    cos = bp.OneCycleLR(1.0, 10, div_factor=10.0, final_div_factor=100.0)
    assert [cos(t) for t in (0, 1, 2)] == pytest.approx([0.1, 0.55, 1.0])
    assert cos(9) == pytest.approx(0.001)
    assert cos(5) == pytest.approx(0.001 + (1.0 - 0.001) / 2 * (np.cos(np.pi * 3 / 7) + 1))
    assert [cos.momentum(t) for t in (0, 1, 2, 9)] == pytest.approx([0.95, 0.9, 0.85, 0.95])
    lin = bp.OneCycleLR(1.0, 10, anneal_strategy="linear", div_factor=10.0,
                        final_div_factor=100.0)
    assert [lin(t) for t in (1, 2, 9)] == pytest.approx([0.55, 1.0, 0.001])
    assert lin(5) == pytest.approx(1.0 + (0.001 - 1.0) * 3 / 7)
    # three phases: up by step 2, back to lr0 by step 4, then down to lr_min at step 9
    three = bp.OneCycleLR(1.0, 10, anneal_strategy="linear", three_phase=True,
                          div_factor=10.0, final_div_factor=100.0)
    assert [three(t) for t in (0, 2, 3, 4, 9)] == pytest.approx([0.1, 1.0, 0.55, 0.1, 0.001])
    assert [three.momentum(t) for t in (2, 4, 9)] == pytest.approx([0.85, 0.95, 0.95])
    assert three.momentum_bounds() == (0.85, 0.95)
    assert bp.OneCycleLR(1.0, 10, cycle_momentum=False).momentum(3) is None


def test_a_warm_up_of_one_step_is_at_its_end_where_torch_divides_by_zero():
    ours = bp.OneCycleLR(1.0, total_steps=10, pct_start=0.1)
    assert ours(0) == 1.0 and ours.momentum(0) == 0.85
    assert ours(9) == pytest.approx(1.0 / 25 / 1e4)


@pytest.mark.parametrize("name", ["SGD-momentum", "SGD", "Adam", "NAdam", "RMSprop"])
def test_fit_with_one_cycle_follows_torchs_loop_step_for_step(name):
    torch = pytest.importorskip("torch")
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam's running product of mu: float32 else
    try:
        _fit_against_torch(torch, name)
    finally:
        torch.set_default_dtype(dtype)


def _fit_against_torch(torch, name):
    x, y = _data()
    model = _model()
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in model.parameters()]
    kwargs = {"momentum": 0.9} if name == "SGD-momentum" else {}
    cls = name.split("-")[0]
    opt = getattr(bp, cls)(model.parameters(), lr=0.01, **kwargs)
    topt = getattr(torch.optim, cls)(tparams, lr=0.01, **kwargs)
    epochs, batch = 4, 32
    steps = -(-len(x) // batch)
    history = bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=epochs, batch_size=batch,
                     shuffle=False, progress=False, callbacks=[
                         bp.LearningRateScheduler(bp.OneCycleLR(0.2, epochs=epochs,
                                                                steps_per_epoch=steps))])
    sched = torch.optim.lr_scheduler.OneCycleLR(topt, 0.2, epochs=epochs,
                                                steps_per_epoch=steps)
    lrs = []
    for _ in range(epochs):
        for i in range(0, len(x), batch):
            h = torch.tanh(torch.tensor(x[i:i + batch]) @ tparams[0] + tparams[1])
            out = h @ tparams[2] + tparams[3]
            topt.zero_grad()
            torch.nn.functional.cross_entropy(out, torch.tensor(y[i:i + batch])).backward()
            lrs.append(topt.param_groups[0]["lr"])
            topt.step()
            sched.step()
    for p, t in zip(model.parameters(), tparams, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-9, atol=1e-11)
    assert opt.steps == epochs * steps
    np.testing.assert_allclose(history.history["lr"], lrs[steps - 1::steps], rtol=1e-12)


def test_a_continued_fit_carries_on_with_the_optimizers_step_count():
    x, y = _data()

    def run(splits):
        model = _model()
        opt = bp.SGD(model.parameters(), lr=0.01, momentum=0.9)
        callback = bp.LearningRateScheduler(bp.OneCycleLR(0.2, total_steps=16))
        for first, last in splits:
            bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=last, initial_epoch=first,
                   batch_size=25, shuffle=False, progress=False, callbacks=[callback])
        return model.flat_params.copy(), opt.lr, opt.momentum

    straight, split = run([(0, 4)]), run([(0, 1), (1, 3), (3, 4)])
    np.testing.assert_array_equal(straight[0], split[0])
    assert straight[1:] == split[1:]


def test_a_fit_longer_than_the_cycle_is_refused_before_any_step():
    x, y = _data()
    model = _model()
    before = model.flat_params.copy()
    opt = bp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"lasts 10 optimizer steps, and this fit runs to "
                                         r"step 20 \(0 taken before it, then 5 epochs of 4 "
                                         r"batches\); build it with total_steps=20"):
        bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=5, batch_size=32, progress=False,
               callbacks=[bp.LearningRateScheduler(bp.OneCycleLR(0.1, total_steps=10))])
    np.testing.assert_array_equal(model.flat_params, before)
    # the steps are the optimizer's: a new one in a fit from epoch 2 starts at step 0
    bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=4, initial_epoch=2, batch_size=25,
           progress=False,
           callbacks=[bp.LearningRateScheduler(bp.OneCycleLR(0.1, total_steps=8))])
    assert opt.steps == 8
    with pytest.raises(ValueError, match=r"runs to step 12 \(8 taken before it, then 1 epochs"):
        bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=5, initial_epoch=4, batch_size=25,
               progress=False,
               callbacks=[bp.LearningRateScheduler(bp.OneCycleLR(0.1, total_steps=10))])


def test_a_resumed_one_cycle_fit_continues_bit_for_bit(tmp_path):
    x, y = _data()

    def fit(model, opt, epochs, **kwargs):
        bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=epochs, batch_size=25,
               progress=False, seed=0, callbacks=[
                   bp.LearningRateScheduler(bp.OneCycleLR(0.2, total_steps=16)),
                   bp.ModelCheckpoint(tmp_path / "c{epoch}.npz")], **kwargs)

    straight = _model()
    fit(straight, bp.NAdam(straight.parameters(), lr=0.01), 4)
    model = _model()
    fit(model, bp.NAdam(model.parameters(), lr=0.01), 4, resume=tmp_path / "c2.npz")
    np.testing.assert_array_equal(model.flat_params, straight.flat_params)


def test_resuming_with_another_schedule_warns_naming_both(tmp_path):
    x, y = _data()

    def fit(schedule, epochs, **kwargs):
        model = _model()
        bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), lr=0.2,
                                                       momentum=0.9),
               epochs=epochs, batch_size=25, progress=False, seed=0,
               callbacks=[bp.LearningRateScheduler(schedule),
                          bp.ModelCheckpoint(tmp_path / "c{epoch}.npz")], **kwargs)
        return model

    fit(bp.OneCycleLR(0.2, total_steps=16), 2)
    with warnings.catch_warnings():  # the same schedule: silent
        warnings.simplefilter("error")
        fit(bp.OneCycleLR(0.2, total_steps=16), 4, resume=tmp_path / "c2.npz")
    fit(bp.OneCycleLR(0.2, total_steps=16), 2)
    with pytest.warns(UserWarning, match=r"another schedule than the checkpointed run "
                                         r"\(schedule: OneCycleLR\(0\.2, total_steps=16\) -> "
                                         r"OneCycleLR\(0\.9, total_steps=16\)\)"):
        fit(bp.OneCycleLR(0.9, total_steps=16), 4, resume=tmp_path / "c2.npz")
    fit(bp.OneCycleLR(0.2, total_steps=16), 2)
    with pytest.warns(UserWarning, match=r"schedule: OneCycleLR.* -> StepLR\(lr=0\.2.*; "
                                         r"per_step: True -> False"):
        fit(bp.StepLR(0.2, step_size=1), 4, resume=tmp_path / "c2.npz")


def test_a_damaged_saved_schedule_is_refused():
    cb = bp.LearningRateScheduler(bp.StepLR(0.1, step_size=2))
    cb.load_state_dict({})  # a checkpoint from before the schedule was saved
    with pytest.raises(ValueError, match="expected a saved schedule"):
        cb.load_state_dict({"schedule": 3, "per_step": False})


def test_a_momentum_the_optimizer_refuses_is_named_before_any_step():
    x, y = _data()
    model = _model()
    before = model.flat_params.copy()
    for opt, schedule, match in [
        (bp.SGD(model.parameters(), momentum=0.9), bp.OneCycleLR(0.1, 8, base_momentum=-0.1),
         r"takes SGD's momentum to -0.1, which it refuses: SGD: expected momentum"),
        (bp.NAdam(model.parameters()), bp.OneCycleLR(0.1, 8, max_momentum=1.0),
         r"takes NAdam's beta1 to 1.0, which it refuses: NAdam: expected beta1 in"),
        # momentum 0 would drop SGD's buffer at every cycle's low (PyTorch keeps it)
        (bp.SGD(model.parameters(), momentum=0.9), bp.OneCycleLR(0.1, 8, base_momentum=0.0),
         r"takes SGD's momentum to 0.0, which it refuses: SGD: momentum 0 drops its buffer"),
    ]:
        with pytest.raises(ValueError, match=match):
            bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=1, batch_size=25,
                   progress=False, callbacks=[bp.LearningRateScheduler(schedule)])
    np.testing.assert_array_equal(model.flat_params, before)


def test_cycling_momentum_needs_an_optimizer_with_one():
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"sets the momentum; expected an optimizer with "
                                         r"momentum or beta1, got Adagrad \(build the schedule "
                                         r"with cycle_momentum=False\)"):
        bp.fit(model, x, y, loss=CE, optimizer=bp.Adagrad(model.parameters()), epochs=1,
               progress=False,
               callbacks=[bp.LearningRateScheduler(bp.OneCycleLR(0.1, total_steps=10))])
    opt = bp.Adagrad(model.parameters())
    bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=1, batch_size=50, progress=False,
           callbacks=[bp.LearningRateScheduler(bp.OneCycleLR(0.1, total_steps=2,
                                                             cycle_momentum=False))])
    assert opt.lr == pytest.approx(bp.OneCycleLR(0.1, total_steps=2)(1))


def test_an_epoch_schedule_that_sets_the_momentum_is_checked_before_training_too():
    class Momentum(bp.StepLR):
        def momentum(self, epoch):
            return 0.9 - 0.1 * epoch

        def momentum_bounds(self):
            return (0.8, 0.9)

    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"sets the momentum; expected an optimizer with "
                                         r"momentum or beta1, got Adagrad"):
        bp.fit(model, x, y, loss=CE, optimizer=bp.Adagrad(model.parameters(), lr=0.1),
               epochs=2, progress=False, callbacks=[bp.LearningRateScheduler(Momentum(0.1, 1))])
    opt = bp.Adam(model.parameters(), lr=0.1)
    bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=2, progress=False,
           callbacks=[bp.LearningRateScheduler(Momentum(0.1, 1))])
    assert opt.beta1 == pytest.approx(0.8) and opt.lr == pytest.approx(0.01)


@pytest.mark.parametrize("make,error,match", [
    (lambda: bp.OneCycleLR(0.1), ValueError, r"expected total_steps, or epochs and "
                                             r"steps_per_epoch"),
    (lambda: bp.OneCycleLR(0.1, epochs=2), ValueError, "expected total_steps"),
    (lambda: bp.OneCycleLR(0.1, total_steps=0), ValueError, "total_steps"),
    (lambda: bp.OneCycleLR(0.1, total_steps=2.5), TypeError, "total_steps"),
    (lambda: bp.OneCycleLR(0.1, epochs=2, steps_per_epoch=0), ValueError, "steps_per_epoch"),
    (lambda: bp.OneCycleLR(0.1, 10, pct_start=1.5), ValueError, "pct_start"),
    (lambda: bp.OneCycleLR(0.1, 10, anneal_strategy="cosine"), ValueError,
     r"expected anneal_strategy 'cos' or 'linear', got 'cosine'"),
    (lambda: bp.OneCycleLR(0.1, 10, cycle_momentum="yes"), TypeError, "cycle_momentum"),
    (lambda: bp.OneCycleLR(0.1, 10, div_factor=0), ValueError, "div_factor"),
    (lambda: bp.OneCycleLR(-0.1, 10), ValueError, "max_lr"),
    (lambda: bp.OneCycleLR(bp.SGD(bp.Dense(2, 2).parameters()), 0.1, 10), TypeError,
     r"got the optimizer SGD; a backprop schedule maps epoch \(or step\) -> lr"),
    (lambda: bp.LearningRateScheduler(bp.OneCycleLR(0.1, 10), per_step=False), ValueError,
     r"counts optimizer steps, not epochs"),
    (lambda: bp.LearningRateScheduler(bp.StepLR(0.1, 2), per_step=1), TypeError, "per_step"),
])
def test_bad_settings_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_as_torch_total_steps_wins_over_epochs_and_the_repr_shows_what_differs():
    schedule = bp.OneCycleLR(0.1, total_steps=12, epochs=2, steps_per_epoch=3,
                             three_phase=True)
    assert schedule.total_steps == 12
    assert repr(schedule) == "OneCycleLR(0.1, total_steps=12, three_phase=True)"


def test_any_schedule_can_run_per_step_and_an_epoch_schedule_adds_no_batch_hook():
    x, y = _data()
    model = _model()
    opt = bp.SGD(model.parameters(), lr=0.1)
    seen = []

    class Record(bp.Callback):
        def on_train_batch_end(self, batch, logs):
            seen.append(self.optimizer.lr)

    per_step = bp.LearningRateScheduler(lambda t: 0.1 / (1 + t), per_step=True)
    bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=2, batch_size=50, progress=False,
           callbacks=[per_step, Record()])
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])
    per_epoch = bp.LearningRateScheduler(bp.StepLR(0.1, 1))
    assert _hooks([per_epoch], "on_batch_begin", "on_train_batch_begin") == []
    assert _hooks([per_step], "on_batch_begin", "on_train_batch_begin") == [
        per_step.on_train_batch_begin]

    class Counting(bp.LearningRateScheduler):  # a subclass's own batch hook still runs
        calls = 0

        def on_train_batch_begin(self, batch, logs):
            Counting.calls += 1
            super().on_train_batch_begin(batch, logs)

    bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), lr=0.1), epochs=2,
           batch_size=50, progress=False, callbacks=[Counting(bp.StepLR(0.1, 1))])
    assert Counting.calls == 4


def test_a_per_step_schedule_beside_another_rate_callback_warns():
    x, y = _data()
    model = _model()
    with pytest.warns(UserWarning, match=r"sets the rate before every batch, over what "
                                         r"ReduceLROnPlateau sets"):
        bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), momentum=0.9),
               epochs=1, batch_size=50, progress=False, callbacks=[
                   bp.LearningRateScheduler(bp.OneCycleLR(0.1, 2)),
                   bp.ReduceLROnPlateau("loss")])


def test_a_warm_up_refuses_a_per_step_schedule_after_it():
    with pytest.raises(ValueError, match=r"LinearWarmup: expected after as a schedule of "
                                         r"epochs, got OneCycleLR\(0.1, total_steps=10\)"):
        bp.LinearWarmup(0.1, 2, after=bp.OneCycleLR(0.1, 10))
