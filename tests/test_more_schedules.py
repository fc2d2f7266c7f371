"""CosineAnnealingWarmRestarts, PolynomialLR, ConstantLR, CyclicLR and SequentialLR:
the rates (and CyclicLR's momenta) of torch.optim.lr_scheduler, in fit and on resume."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import backprop as bp

CE = bp.SoftmaxCrossEntropy()


def _data(n=100):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


def _model():
    return bp.Sequential([bp.Dense(5, 8, rng=0), bp.Tanh(), bp.Dense(8, 3, rng=1)]
                         ).astype(np.float64)


def _torch_rates(torch, make, n, optimizer="SGD", lr=0.1, **kwargs):
    """``(lr, momentum or beta1)`` of the first ``n`` steps of ``make(optimizer)``, stepped
    as PyTorch's docs say: the optimizer's step, then the scheduler's."""
    w = torch.zeros(1, requires_grad=True)
    opt = getattr(torch.optim, optimizer)([w], lr=lr, **kwargs)
    scheduler, seen = make(opt), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            group = opt.param_groups[0]
            seen.append((group["lr"], group["betas"][0] if "betas" in group
                         else group.get("momentum")))
            opt.step()
            scheduler.step()
    return seen


def _assert_rates(ours, theirs, momentum=False):
    for t, (lr, m) in enumerate(theirs):
        assert ours(t) == pytest.approx(lr, rel=1e-12, abs=1e-300), f"step {t}"
        if momentum:
            assert ours.momentum(t) == pytest.approx(m, rel=1e-12), f"momentum at step {t}"


# -- each schedule against torch, over a grid of settings ----------------------------------
@pytest.mark.parametrize("T_0,T_mult,eta_min", list(itertools.product([1, 2, 3, 5], [1, 2, 3],
                                                                   [0.0, 0.01, 0.2])))
def test_warm_restarts_match_torch_at_every_epoch(T_0, T_mult, eta_min):  # noqa: N803
    torch = pytest.importorskip("torch")
    theirs = _torch_rates(torch, lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0, T_mult, eta_min), 60)
    _assert_rates(bp.CosineAnnealingWarmRestarts(0.1, T_0, T_mult, eta_min), theirs)


@pytest.mark.parametrize("total,power", list(itertools.product([0, 1, 2, 5, 17],
                                                          [0.0, 0.5, 1.0, 2.0])))
def test_polynomial_matches_torch_at_every_epoch(total, power):
    torch = pytest.importorskip("torch")
    theirs = _torch_rates(torch, lambda o: torch.optim.lr_scheduler.PolynomialLR(
        o, total, power), 25)
    _assert_rates(bp.PolynomialLR(0.1, total, power), theirs)


@pytest.mark.parametrize("total,factor", list(itertools.product([0, 1, 2, 5],
                                                           [0.1, 1 / 3, 0.5, 1.0])))
def test_constant_matches_torch_at_every_epoch(total, factor):
    torch = pytest.importorskip("torch")
    theirs = _torch_rates(torch, lambda o: torch.optim.lr_scheduler.ConstantLR(
        o, factor, total), 12)
    _assert_rates(bp.ConstantLR(0.1, factor, total), theirs)


CYCLIC = list(itertools.product([1, 3, 7], [None, 0, 2, 5],
                                ["triangular", "triangular2", "exp_range"], [1.0, 0.8]))


@pytest.mark.parametrize("up,down,mode,gamma", CYCLIC)
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_cyclic_rates_and_momenta_match_torch_at_every_step(up, down, mode, gamma, optimizer):
    torch = pytest.importorskip("torch")
    kwargs = {"momentum": 0.9} if optimizer == "SGD" else {}  # Adam: beta1 cycles
    theirs = _torch_rates(torch, lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, 0.01, 0.2, up, down, mode, gamma, base_momentum=0.7, max_momentum=0.95), 60,
        optimizer, **kwargs)
    ours = bp.CyclicLR(0.01, 0.2, up, down, mode, gamma, base_momentum=0.7,
                       max_momentum=0.95)
    _assert_rates(ours, theirs, momentum=True)


@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
def test_cyclic_with_a_scale_fn_matches_torch(scale_mode):
    torch = pytest.importorskip("torch")

    def shrink(x):
        return 1 / (1 + x)

    theirs = _torch_rates(torch, lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, 0.3, 0.05, 3, 2, mode="exp_range", scale_fn=shrink, scale_mode=scale_mode), 40,
        "SGD", momentum=0.5)  # max_lr below base_lr: it cycles downwards, as in torch
    _assert_rates(bp.CyclicLR(0.3, 0.05, 3, 2, mode="exp_range", scale_fn=shrink,
                              scale_mode=scale_mode), theirs, momentum=True)


def _sequences(torch):
    """(torch's schedulers of an optimizer, milestones, ours)."""
    lr = torch.optim.lr_scheduler
    return [
        (lambda o: [lr.ConstantLR(o, 0.1, 5), lr.ExponentialLR(o, 0.9)], [5],
         [bp.ConstantLR(0.1, 0.1, 5), bp.ExponentialLR(0.1, 0.9)]),
        (lambda o: [lr.LinearLR(o, 0.25, total_iters=4), lr.CosineAnnealingLR(o, 10, 0.001)],
         [4], [bp.LinearWarmup(0.1, 4, 0.25), bp.CosineAnnealingLR(0.1, 10, 0.001)]),
        (lambda o: [lr.LinearLR(o, 0.25, total_iters=4),
                    lr.CosineAnnealingWarmRestarts(o, 3, 2, 0.01)],
         [6], [bp.LinearWarmup(0.1, 4, 0.25), bp.CosineAnnealingWarmRestarts(0.1, 3, 2, 0.01)]),
        (lambda o: [lr.StepLR(o, 2, 0.5), lr.PolynomialLR(o, 6, 2.0),
                    lr.MultiStepLR(o, [1, 4], 0.3)],
         [3, 9], [bp.StepLR(0.1, 2, 0.5), bp.PolynomialLR(0.1, 6, 2.0),
                  bp.MultiStepLR(0.1, [1, 4], 0.3)]),
        (lambda o: [lr.ExponentialLR(o, 0.5), lr.ConstantLR(o, 0.5, 2)], [0],
         [bp.ExponentialLR(0.1, 0.5), bp.ConstantLR(0.1, 0.5, 2)]),
        (lambda o: [lr.ExponentialLR(o, 0.5), lr.ConstantLR(o, 0.5, 2), lr.StepLR(o, 1, 0.5)],
         [3, 3], [bp.ExponentialLR(0.1, 0.5), bp.ConstantLR(0.1, 0.5, 2),
                  bp.StepLR(0.1, 1, 0.5)]),
        (lambda o: [lr.CosineAnnealingLR(o, 4), lr.PolynomialLR(o, 3, 0.5)], [7],
         [bp.CosineAnnealingLR(0.1, 4), bp.PolynomialLR(0.1, 3, 0.5)]),
        (lambda o: [lr.ConstantLR(o, 0.5, 0)], [], [bp.ConstantLR(0.1, 0.5, 0)]),
    ]


def test_sequences_match_torchs_sequential_lr_at_every_epoch():
    torch = pytest.importorskip("torch")
    for make, milestones, ours in _sequences(torch):
        theirs = _torch_rates(torch, lambda o, make=make, milestones=milestones:
                              torch.optim.lr_scheduler.SequentialLR(o, make(o), milestones),
                              25)
        _assert_rates(bp.SequentialLR(ours, milestones), theirs)


def test_a_sequence_of_step_schedules_matches_torch_with_its_momenta():
    torch = pytest.importorskip("torch")
    lr = torch.optim.lr_scheduler
    theirs = _torch_rates(torch, lambda o: lr.SequentialLR(o, [
        lr.CyclicLR(o, 0.01, 0.1, 3), lr.OneCycleLR(o, 0.3, total_steps=10)], [8]), 18,
        "SGD", momentum=0.9)
    ours = bp.SequentialLR([bp.CyclicLR(0.01, 0.1, 3), bp.OneCycleLR(0.3, 10)], [8])
    _assert_rates(ours, theirs, momentum=True)
    assert ours.per_step and ours.total_steps == 18 and ours.momentum_bounds() == (0.8, 0.95)


# -- the formulas, by hand (no torch needed) -----------------------------------------------
def test_the_rates_at_hand_computed_epochs():
    sgdr = bp.CosineAnnealingWarmRestarts(1.0, T_0=2, T_mult=2, eta_min=0.5)
    # periods of 2, 4, 8 epochs: restarts at epochs 2 and 6
    assert [sgdr(e) for e in (0, 1, 2, 3, 4, 5, 6)] == pytest.approx(
        [1.0, 0.75, 1.0, 0.5 + 0.25 * (1 + math.cos(math.pi / 4)), 0.75,
         0.5 + 0.25 * (1 + math.cos(3 * math.pi / 4)), 1.0])
    poly = bp.PolynomialLR(0.1, total_iters=4, power=2.0)
    assert [poly(e) for e in range(6)] == pytest.approx([0.1, 0.05625, 0.025, 0.00625, 0, 0])
    assert [bp.PolynomialLR(0.1, 0)(e) for e in (0, 9)] == [0.1, 0.1]
    const = bp.ConstantLR(0.3, factor=0.5, total_iters=2)
    assert [const(e) for e in range(4)] == pytest.approx([0.15, 0.15, 0.3, 0.3])
    assert [bp.ConstantLR(0.3, 0.5, 0)(e) for e in (0, 7)] == pytest.approx([0.15, 0.15])
    assert [bp.ConstantLR(0.3, 0.0, 2)(e) for e in range(3)] == [0.0, 0.0, 0.3]
    seq = bp.SequentialLR([bp.ConstantLR(0.3, 0.5, 10), bp.StepLR(0.3, 1, 0.5)], [2])
    assert [seq(e) for e in range(4)] == pytest.approx([0.15, 0.15, 0.3, 0.15])
    once = bp.SequentialLR(iter([bp.ConstantLR(0.3, 0.5, 10), bp.StepLR(0.3, 1, 0.5)]),
                           iter([2]))  # iterators, read once
    assert repr(once) == repr(seq) and once(3) == seq(3)


def test_cyclic_rates_and_momenta_at_hand_computed_steps():
    tri = bp.CyclicLR(0.1, 0.5, step_size_up=2, step_size_down=4)
    assert [tri(t) for t in range(8)] == pytest.approx([0.1, 0.3, 0.5, 0.4, 0.3, 0.2, 0.1,
                                                        0.3])
    assert [tri.momentum(t) for t in (0, 1, 2, 4, 6)] == pytest.approx([0.9, 0.85, 0.8, 0.85,
                                                                        0.9])
    halving = bp.CyclicLR(0.0, 0.8, 1, mode="triangular2")
    assert [halving(t) for t in range(6)] == pytest.approx([0, 0.8, 0, 0.4, 0, 0.2])
    exp = bp.CyclicLR(0.0, 1.0, 2, mode="exp_range", gamma=0.5)
    assert [exp(t) for t in range(4)] == pytest.approx([0, 0.25, 0.25, 0.0625])
    saw = bp.CyclicLR(0.0, 1.0, 4, step_size_down=0)  # up only, then back to base_lr
    assert [saw(t) for t in range(6)] == pytest.approx([0, 0.25, 0.5, 0.75, 0, 0.25])
    assert bp.CyclicLR(0.1, 0.5, 2, cycle_momentum=False).momentum(1) is None
    assert bp.CyclicLR(0.1, 0.5, 2, cycle_momentum=False).momentum_bounds() == ()
    assert tri.lr == 0.1 and tri.per_step and tri.momentum_bounds() == (0.8, 0.9)


# -- in fit --------------------------------------------------------------------------------
class _Record(bp.Callback):
    """The rate and momentum (or beta1) each batch's step uses."""

    def __init__(self):
        self.lrs, self.momenta = [], []

    def on_train_batch_end(self, batch, logs):
        opt = self.optimizer
        self.lrs.append(opt.lr)
        self.momenta.append(getattr(opt, "momentum", getattr(opt, "beta1", None)))


EPOCH_SCHEDULES = {
    "warm restarts": (lambda: bp.CosineAnnealingWarmRestarts(0.1, 2, 2, 0.01),
                      lambda s, o: s.CosineAnnealingWarmRestarts(o, 2, 2, 0.01)),
    "polynomial": (lambda: bp.PolynomialLR(0.1, 4, 0.5),
                   lambda s, o: s.PolynomialLR(o, 4, 0.5)),
    "constant": (lambda: bp.ConstantLR(0.1, 0.25, 3), lambda s, o: s.ConstantLR(o, 0.25, 3)),
    "sequence": (lambda: bp.SequentialLR([bp.LinearWarmup(0.1, 2), bp.CosineAnnealingLR(
        0.1, 4)], [2]), lambda s, o: s.SequentialLR(o, [s.LinearLR(o, total_iters=2),
                                                       s.CosineAnnealingLR(o, 4)], [2])),
}


@pytest.mark.parametrize("name", EPOCH_SCHEDULES)
def test_fit_uses_torchs_rate_in_every_epoch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = EPOCH_SCHEDULES[name]
    x, y = _data()
    model, record = _model(), _Record()
    history = bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), lr=0.1),
                     epochs=7, batch_size=50, progress=False,
                     callbacks=[bp.LearningRateScheduler(ours()), record])
    want = [lr for lr, _ in _torch_rates(torch, lambda o: theirs(torch.optim.lr_scheduler, o),
                                          7)]
    np.testing.assert_allclose(history.history["lr"], want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(record.lrs, np.repeat(want, 2), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["SGD-momentum", "SGD", "Adam"])
def test_fit_with_cyclic_follows_torchs_loop_step_for_step(name):
    torch = pytest.importorskip("torch")
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _cyclic_against_torch(torch, name)
    finally:
        torch.set_default_dtype(dtype)


def _cyclic_against_torch(torch, name):
    x, y = _data()
    model, record = _model(), _Record()
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in model.parameters()]
    kwargs = {"momentum": 0.9} if name == "SGD-momentum" else {}
    cls = name.split("-")[0]
    opt = getattr(bp, cls)(model.parameters(), lr=0.01, **kwargs)
    topt = getattr(torch.optim, cls)(tparams, lr=0.01, **kwargs)
    settings = dict(step_size_up=3, step_size_down=2, mode="triangular2")
    epochs, batch = 4, 32
    history = bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=epochs, batch_size=batch,
                     shuffle=False, progress=False, callbacks=[
                         bp.LearningRateScheduler(bp.CyclicLR(0.02, 0.2, **settings)),
                         record])
    sched = torch.optim.lr_scheduler.CyclicLR(topt, 0.02, 0.2, **settings)
    lrs, momenta = [], []
    for _ in range(epochs):
        for i in range(0, len(x), batch):
            h = torch.tanh(torch.tensor(x[i:i + batch]) @ tparams[0] + tparams[1])
            out = h @ tparams[2] + tparams[3]
            topt.zero_grad()
            torch.nn.functional.cross_entropy(out, torch.tensor(y[i:i + batch])).backward()
            group = topt.param_groups[0]
            lrs.append(group["lr"])
            momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
            topt.step()
            sched.step()
    for p, t in zip(model.parameters(), tparams, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-9, atol=1e-11)
    assert record.lrs == lrs and record.momenta == pytest.approx(momenta, rel=1e-12)
    assert history.history["lr"] == lrs[3::4]  # each epoch logs its last batch's


def test_cyclic_needs_an_optimizer_with_a_momentum_unless_told_not_to_cycle_it():
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"sets the momentum; expected an optimizer with "
                                         r"momentum or beta1, got Adagrad"):
        bp.fit(model, x, y, loss=CE, optimizer=bp.Adagrad(model.parameters()), epochs=1,
               progress=False, callbacks=[bp.LearningRateScheduler(bp.CyclicLR(0.1, 1, 2))])
    opt = bp.Adagrad(model.parameters())
    bp.fit(model, x, y, loss=CE, optimizer=opt, epochs=1, batch_size=25, progress=False,
           callbacks=[bp.LearningRateScheduler(bp.CyclicLR(0.1, 1.0, 2, cycle_momentum=False))])
    assert opt.lr == pytest.approx(0.1 + 0.9 / 2)  # the rate of step 3 (of 0 to 3)
    with pytest.raises(ValueError, match=r"takes SGD's momentum to -0.1, which it refuses"):
        bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), momentum=0.9),
               epochs=1, progress=False, callbacks=[bp.LearningRateScheduler(
                   bp.CyclicLR(0.1, 1.0, 2, base_momentum=-0.1))])


def test_a_fit_longer_than_a_sequence_ending_in_one_cycle_is_refused_before_any_step():
    x, y = _data()
    model = _model()
    schedule = bp.SequentialLR([bp.CyclicLR(0.01, 0.1, 2), bp.OneCycleLR(0.1, 6)], [4])
    with pytest.raises(ValueError, match=r"lasts 10 optimizer steps, and this fit runs to "
                                         r"step 12"):
        bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), momentum=0.9),
               epochs=3, batch_size=25, progress=False,
               callbacks=[bp.LearningRateScheduler(schedule)])


# -- resume --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: bp.CyclicLR(0.01, 0.2, 3, 2, mode="exp_range", gamma=0.9),
    lambda: bp.SequentialLR([bp.ConstantLR(0.05, 0.5, 2),
                             bp.CosineAnnealingWarmRestarts(0.05, 1, 2)], [2]),
    lambda: bp.PolynomialLR(0.05, 4, 2.0),
], ids=["cyclic", "sequence", "polynomial"])
def test_a_resumed_fit_continues_with_the_same_rates_bit_for_bit(tmp_path, make):
    x, y = _data()

    def fit(model, epochs, **kwargs):
        record = _Record()
        history = bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), lr=0.05,
                                                                 momentum=0.9),
                         epochs=epochs, batch_size=25, progress=False, seed=0, callbacks=[
                             bp.LearningRateScheduler(make()), record,
                             bp.ModelCheckpoint(tmp_path / "c{epoch}.npz")], **kwargs)
        return history, record

    straight = _model()
    h1, r1 = fit(straight, 5)
    model = _model()
    with warnings.catch_warnings():  # the same schedule (the same repr): silent
        warnings.simplefilter("error")
        h2, r2 = fit(model, 5, resume=tmp_path / "c2.npz")
    np.testing.assert_array_equal(model.flat_params, straight.flat_params)
    assert h2.history["lr"] == h1.history["lr"]
    assert r2.lrs == r1.lrs[2 * 4:] and r2.momenta == r1.momenta[2 * 4:]


def test_resuming_with_other_cyclic_settings_warns_naming_both(tmp_path):
    x, y = _data()

    def fit(schedule, epochs, **kwargs):
        model = _model()
        bp.fit(model, x, y, loss=CE, optimizer=bp.SGD(model.parameters(), momentum=0.9),
               epochs=epochs, batch_size=25, progress=False, seed=0,
               callbacks=[bp.LearningRateScheduler(schedule),
                          bp.ModelCheckpoint(tmp_path / "c{epoch}.npz")], **kwargs)

    fit(bp.CyclicLR(0.01, 0.1, 4), 2)
    with pytest.warns(UserWarning, match=r"another schedule than the checkpointed run "
                                         r"\(schedule: CyclicLR\(base_lr=0\.01, max_lr=0\.1, "
                                         r"step_size_up=4, .* -> CyclicLR\(base_lr=0\.01, "
                                         r"max_lr=0\.1, step_size_up=8, "):
        fit(bp.CyclicLR(0.01, 0.1, 8), 4, resume=tmp_path / "c2.npz")


# -- settings: reprs and errors --------------------------------------------------------------
def _halve(x):
    return 0.5 ** x


def test_reprs_show_every_setting():
    assert repr(bp.CosineAnnealingWarmRestarts(0.1, 10)) == (
        "CosineAnnealingWarmRestarts(lr=0.1, T_0=10, T_mult=1, eta_min=0.0)")
    assert repr(bp.PolynomialLR(0.1)) == "PolynomialLR(lr=0.1, total_iters=5, power=1.0)"
    assert repr(bp.ConstantLR(0.1, 0.5, 3)) == "ConstantLR(lr=0.1, factor=0.5, total_iters=3)"
    assert repr(bp.CyclicLR(0.01, 0.1, 4, mode="exp_range", gamma=0.99)) == (
        "CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=4, step_size_down=4, "
        "mode='exp_range', gamma=0.99, scale_fn=None, scale_mode='iterations', "
        "cycle_momentum=True, base_momentum=0.8, max_momentum=0.9)")
    # a function by its name, not its address (which differs between processes)
    assert "scale_fn=_halve, scale_mode='cycle'" in repr(bp.CyclicLR(0.01, 0.1,
                                                                     scale_fn=_halve))
    assert repr(bp.SequentialLR([bp.ConstantLR(0.1, 0.5, 2), bp.StepLR(0.1, 3)], [2])) == (
        "SequentialLR(schedulers=[ConstantLR(lr=0.1, factor=0.5, total_iters=2), "
        "StepLR(lr=0.1, step_size=3, gamma=0.1)], milestones=[2])")


OPT = bp.SGD(bp.Dense(2, 2).parameters())
OPTIMIZER_GIVEN = r"got the optimizer SGD; a backprop schedule maps epoch \(or step\) -> lr"


@pytest.mark.parametrize("make,error,match", [
    (lambda: bp.CosineAnnealingWarmRestarts(OPT, 10), TypeError,
     "CosineAnnealingWarmRestarts: expected the initial learning rate.*" + OPTIMIZER_GIVEN),
    (lambda: bp.CosineAnnealingWarmRestarts(0.1, 0), ValueError,
     r"CosineAnnealingWarmRestarts: expected T_0 >= 1, got 0"),
    (lambda: bp.CosineAnnealingWarmRestarts(0.1, 5, T_mult=1.5), TypeError,
     r"CosineAnnealingWarmRestarts: expected T_mult to be a positive int, got 1.5"),
    (lambda: bp.CosineAnnealingWarmRestarts(0.1, 5, eta_min=-0.1), ValueError,
     r"CosineAnnealingWarmRestarts: expected eta_min in \[0.0, inf\) \(finite\), got -0.1"),
    (lambda: bp.PolynomialLR(OPT, 5), TypeError, "PolynomialLR: .*" + OPTIMIZER_GIVEN),
    (lambda: bp.PolynomialLR(0.1, -1), ValueError,
     r"PolynomialLR: expected total_iters >= 0, got -1"),
    (lambda: bp.PolynomialLR(0.1, 5, power=-1.0), ValueError,
     r"PolynomialLR: expected power in \[0.0, inf\) \(finite\), got -1.0"),
    (lambda: bp.PolynomialLR(0.1, 5, power="2"), TypeError,
     r"PolynomialLR: expected power to be a number, got '2'"),
    (lambda: bp.ConstantLR(OPT), TypeError, "ConstantLR: .*" + OPTIMIZER_GIVEN),
    (lambda: bp.ConstantLR(0.1, factor=1.5), ValueError,
     r"ConstantLR: expected factor in \[0.0, 1.0\] \(finite\), got 1.5"),
    (lambda: bp.ConstantLR(0.1, total_iters=2.0), TypeError,
     r"ConstantLR: expected total_iters to be an int >= 0, got 2.0"),
    (lambda: bp.CyclicLR(OPT, 0.01, 0.1), TypeError, "CyclicLR: .*" + OPTIMIZER_GIVEN),
    (lambda: bp.CyclicLR(0.01, -0.1), ValueError, r"CyclicLR: expected max_lr in \[0.0"),
    (lambda: bp.CyclicLR(0.01, 0.1, 0), ValueError,
     r"CyclicLR: expected step_size_up >= 1, got 0"),
    (lambda: bp.CyclicLR(0.01, 0.1, 4, -1), ValueError,
     r"CyclicLR: expected step_size_down >= 0, got -1"),
    (lambda: bp.CyclicLR(0.01, 0.1, mode="triangle"), ValueError,
     r"CyclicLR: expected mode 'triangular', 'triangular2' or 'exp_range', got 'triangle'"),
    (lambda: bp.CyclicLR(0.01, 0.1, mode="exp_range", gamma=1.1), ValueError,
     r"CyclicLR: expected gamma in \(0.0, 1.0\] \(finite\), got 1.1"),
    (lambda: bp.CyclicLR(0.01, 0.1, scale_fn=0.5), TypeError,
     r"CyclicLR: expected scale_fn as a function of one int, or None, got float 0.5"),
    (lambda: bp.CyclicLR(0.01, 0.1, scale_mode="steps"), ValueError,
     r"CyclicLR: expected scale_mode 'cycle' or 'iterations', got 'steps'"),
    (lambda: bp.CyclicLR(0.01, 0.1, cycle_momentum="no"), TypeError,
     r"CyclicLR: expected cycle_momentum to be True or False, got str 'no'"),
    (lambda: bp.CyclicLR(0.01, 0.1, max_momentum=math.nan), ValueError,
     r"CyclicLR: expected max_momentum in"),
    (lambda: bp.SequentialLR(OPT, [bp.StepLR(0.1, 2)]), TypeError,
     r"SequentialLR: expected a list of backprop schedules, got the optimizer SGD"),
    (lambda: bp.SequentialLR(bp.StepLR(0.1, 2), []), TypeError,
     r"SequentialLR: expected schedulers and milestones as lists, got StepLR"),
    (lambda: bp.SequentialLR([], []), ValueError,
     r"SequentialLR: expected at least one scheduler and one milestone fewer than "
     r"schedulers, got 0 schedulers and milestones \[\]"),
    (lambda: bp.SequentialLR([bp.StepLR(0.1, 2), bp.StepLR(0.1, 3)], [2, 4]), ValueError,
     r"one milestone fewer than schedulers, got 2 schedulers and milestones \[2, 4\]"),
    (lambda: bp.SequentialLR([bp.StepLR(0.1, 2), "cosine"], [2]), TypeError,
     r"SequentialLR: expected each scheduler to be a backprop schedule \(bp.StepLR\(0.1, "
     r"...\), ...\) or a function epoch -> lr, got str"),
    (lambda: bp.SequentialLR([bp.StepLR(0.1, 2), bp.schedules.ReduceLROnPlateau()], [2]),
     TypeError, r"expected each scheduler to be a backprop schedule .*got ReduceLROnPlateau"),
    (lambda: bp.SequentialLR([bp.StepLR(0.1, 2)] * 3, [4, 2]), ValueError,
     r"SequentialLR: expected milestones in order \(none before the one listed "
     r"ahead of it\), got \[4, 2\]"),
    (lambda: bp.SequentialLR([bp.StepLR(0.1, 2), bp.StepLR(0.1, 2)], [-1]), ValueError,
     r"SequentialLR: expected each milestone >= 0, got -1"),
    (lambda: bp.SequentialLR([bp.StepLR(0.1, 2), bp.CyclicLR(0.1, 1)], [2]), ValueError,
     r"SequentialLR: expected schedules that all count epochs or all count optimizer steps"),
    (lambda: bp.SequentialLR([bp.OneCycleLR(0.1, 5), bp.CyclicLR(0.1, 1)], [7]), ValueError,
     r"SequentialLR: OneCycleLR\(0.1, total_steps=5\) runs up to its step 5, and would run "
     r"from step 0 to step 6 here \(its steps 0 to 6\)"),
    (lambda: bp.LinearWarmup(0.1, 2, after=bp.CyclicLR(0.1, 1)), ValueError,
     r"LinearWarmup: expected after as a schedule of epochs, got CyclicLR\("),
    (lambda: bp.LearningRateScheduler(bp.CyclicLR(0.1, 1), per_step=False), ValueError,
     r"counts optimizer steps, not epochs"),
])
def test_bad_settings_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("schedule", [
    bp.CosineAnnealingWarmRestarts(0.1, 2), bp.PolynomialLR(0.1), bp.ConstantLR(0.1),
    bp.SequentialLR([bp.StepLR(0.1, 2), bp.ConstantLR(0.1)], [3])])
def test_epoch_schedules_refuse_an_epoch_that_is_not_an_int_at_least_0(schedule):
    name = type(schedule).__name__
    fraction = () if name == "CosineAnnealingWarmRestarts" else (2.5,)  # takes 2.5 (s32)
    for bad in ("3", True, None, *fraction):
        with pytest.raises(TypeError, match=f"{name}: expected epoch to be an int >= 0, got"):
            schedule(bad)
    with pytest.raises(ValueError, match=f"{name}: expected epoch >= 0, got -1"):
        schedule(-1)
    assert schedule(np.int64(4)) == schedule(4)
    assert not schedule.per_step and schedule.momentum(1) is None


def test_cyclic_refuses_a_step_that_is_not_an_int_at_least_0():
    with pytest.raises(ValueError, match=r"CyclicLR: expected step >= 0, got -1"):
        bp.CyclicLR(0.1, 1)(-1)
    with pytest.raises(TypeError, match=r"CyclicLR: expected step to be an int >= 0"):
        bp.CyclicLR(0.1, 1).momentum(1.5)


def test_the_new_schedules_are_exported_beside_the_others():
    for name in ("CosineAnnealingWarmRestarts", "PolynomialLR", "ConstantLR", "CyclicLR",
                 "SequentialLR"):
        assert name in bp.__all__ and getattr(bp, name) is getattr(bp.schedules, name)
        assert issubclass(getattr(bp, name), bp.schedules.Schedule)


@pytest.mark.parametrize("make", [
    lambda opt: bp.SequentialLR(opt, [bp.ConstantLR(0.1)], []),
    lambda opt: bp.SequentialLR(opt, schedulers=[bp.ConstantLR(0.1)], milestones=[]),
    lambda opt: bp.CyclicLR(opt, base_lr=0.01, max_lr=0.1),
    lambda opt: bp.PolynomialLR(opt, total_iters=4),
    lambda opt: bp.StepLR(opt, step_size=2),
])
def test_torch_s_optimizer_first_form_is_named_before_python_s_argument_errors(make):
    """PyTorch's Scheduler(optimizer, ...): Python's "takes 3 positional arguments" or "got
    multiple values for argument 'base_lr'" hid what went wrong."""
    opt = bp.SGD(bp.Dense(2, 2, rng=0).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match=r"got the optimizer SGD; a backprop schedule maps "
                                        r"epoch \(or step\) -> lr .*LearningRateScheduler"):
        make(opt)


def test_reduce_lr_on_plateau_given_an_optimizer_says_it_is_a_callback():
    opt = bp.SGD(bp.Dense(2, 2, rng=0).parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"expected monitor to be a log key \(str\), got SGD\(.*"
                                        r"PyTorch's ReduceLROnPlateau\(optimizer, \.\.\.\): here "
                                        r"it is a callback"):
        bp.ReduceLROnPlateau(opt, mode="min", patience=3)
