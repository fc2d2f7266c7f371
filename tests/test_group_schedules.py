"""Schedules over parameter groups give every group the rate PyTorch's scheduler of the same
name gives it: multiplicative ones scale each group's own rate, cosine annealing with an
``eta_min`` anneals each group from its own base to the shared floor, and CyclicLR /
OneCycleLR (one ``max_lr``) give every group the same rate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import backprop as bp

EPOCHS, BATCH, N = 6, 8, 16  # two steps per epoch


def _model():
    return bp.Sequential([bp.Dense(3, 4, rng=0, dtype=np.float64), bp.Tanh(dtype=np.float64),
                          bp.Dense(4, 2, rng=1, dtype=np.float64)])


class _Rates(bp.Callback):
    """Every group's lr at each batch, after the scheduler set it."""

    def __init__(self):
        self.rows = []

    def on_train_batch_begin(self, batch, logs):
        self.rows.append([g["lr"] for g in self.optimizer.param_groups])


def _ours(schedule):
    model = _model()
    opt = bp.SGD([{"params": model[0].parameters()},
                  {"params": model[2].parameters(), "lr": 0.01}], lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 3)), rng.integers(0, 2, N)
    rates = _Rates()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a schedule whose lr is not the optimizer's warns
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=EPOCHS,
                  batch_size=BATCH, shuffle=False, progress=False,
                  callbacks=[bp.LearningRateScheduler(schedule), rates])
    return rates.rows, model


def _theirs(torch, make, per_step, model=None):
    """The group rates torch's scheduler gives at each step; with ``model`` (ours, as built
    by ``_model``), also trains torch's twin on the same batches and returns its weights."""
    x, y = (torch.from_numpy(a) for a in _data())
    ws = [torch.tensor(a, requires_grad=True) for a in
          (_model()[0].params["W"], _model()[0].params["b"],
           _model()[2].params["W"], _model()[2].params["b"])]
    opt = torch.optim.SGD([{"params": ws[:2]}, {"params": ws[2:], "lr": 0.01}], lr=0.1,
                          momentum=0.9)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecation notes
        sched = make(torch.optim.lr_scheduler, opt)
        for _ in range(EPOCHS):
            for start in range(0, N, BATCH):
                rows.append([g["lr"] for g in opt.param_groups])
                xb, yb = x[start:start + BATCH], y[start:start + BATCH]
                out = torch.tanh(xb @ ws[0] + ws[1]) @ ws[2] + ws[3]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(out, yb).backward()
                opt.step()
                if per_step:
                    sched.step()
            if not per_step:
                sched.step()
    return rows, [w.detach().numpy() for w in ws]


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, 3)), rng.integers(0, 2, N)


CASES = {
    "cosine eta_min": (lambda: bp.CosineAnnealingLR(0.1, T_max=4, eta_min=0.005),
                       lambda s, o: s.CosineAnnealingLR(o, T_max=4, eta_min=0.005), False),
    "cosine": (lambda: bp.CosineAnnealingLR(0.1, T_max=4),
               lambda s, o: s.CosineAnnealingLR(o, T_max=4), False),
    "warm restarts": (
        lambda: bp.CosineAnnealingWarmRestarts(0.1, T_0=2, T_mult=2, eta_min=0.005),
        lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.005), False),
    "sequential": (
        lambda: bp.SequentialLR([bp.LinearWarmup(0.1, 2, start_factor=0.5),
                                 bp.CosineAnnealingLR(0.1, T_max=3, eta_min=0.005)], [2]),
        lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.5, total_iters=2),
                                        s.CosineAnnealingLR(o, T_max=3, eta_min=0.005)], [2]),
        False),
    "warm-up then cosine": (
        lambda: bp.LinearWarmup(0.1, 2, start_factor=0.5,
                                after=bp.CosineAnnealingLR(0.1, T_max=3, eta_min=0.005)),
        lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.5, total_iters=2),
                                        s.CosineAnnealingLR(o, T_max=3, eta_min=0.005)], [2]),
        False),
    "exponential": (lambda: bp.ExponentialLR(0.1, gamma=0.7),
                    lambda s, o: s.ExponentialLR(o, gamma=0.7), False),
    "cyclic": (lambda: bp.CyclicLR(0.001, 0.1, step_size_up=3, cycle_momentum=False),
               lambda s, o: s.CyclicLR(o, 0.001, 0.1, step_size_up=3, cycle_momentum=False),
               True),
    "cyclic momentum": (lambda: bp.CyclicLR(0.001, 0.1, step_size_up=3),
                        lambda s, o: s.CyclicLR(o, 0.001, 0.1, step_size_up=3), True),
    "one cycle momentum": (lambda: bp.OneCycleLR(0.2, total_steps=EPOCHS * N // BATCH),
                           lambda s, o: s.OneCycleLR(o, 0.2, total_steps=EPOCHS * N // BATCH),
                           True),
    "one cycle per group": (
        lambda: bp.OneCycleLR([0.2, 0.05], total_steps=EPOCHS * N // BATCH),
        lambda s, o: s.OneCycleLR(o, [0.2, 0.05], total_steps=EPOCHS * N // BATCH), True),
    "cyclic per group": (
        lambda: bp.CyclicLR([0.001, 0.0005], [0.1, 0.02], step_size_up=3, mode="triangular2"),
        lambda s, o: s.CyclicLR(o, [0.001, 0.0005], [0.1, 0.02], step_size_up=3,
                                mode="triangular2"), True),
    "sequential per group": (
        lambda: bp.SequentialLR([bp.CyclicLR(0.001, [0.1, 0.02], step_size_up=2,
                                             cycle_momentum=False),
                                 bp.OneCycleLR([0.2, 0.05], total_steps=8,
                                               cycle_momentum=False)], [4]),
        lambda s, o: _torch_sequence(s, o), True),
    "one cycle": (lambda: bp.OneCycleLR(0.2, total_steps=EPOCHS * N // BATCH,
                                        cycle_momentum=False),
                  lambda s, o: s.OneCycleLR(o, 0.2, total_steps=EPOCHS * N // BATCH,
                                            cycle_momentum=False), True),
}


def _torch_sequence(s, o):
    cyclic = s.CyclicLR(o, 0.001, [0.1, 0.02], step_size_up=2, cycle_momentum=False)
    return s.SequentialLR(o, [cyclic, s.OneCycleLR(o, [0.2, 0.05], total_steps=8,
                                                   cycle_momentum=False)], [4])


@pytest.mark.parametrize("case", list(CASES))
def test_each_group_gets_torchs_rate_and_trains_with_it(case):
    torch = pytest.importorskip("torch")
    ours, theirs, per_step = CASES[case]
    rows, model = _ours(ours())
    expected, weights = _theirs(torch, theirs, per_step)
    assert len(rows) == len(expected) == EPOCHS * N // BATCH
    np.testing.assert_allclose(rows, expected, rtol=1e-9, atol=1e-15)
    got = [model[0].params["W"], model[0].params["b"], model[2].params["W"],
           model[2].params["b"]]
    for a, b in zip(got, weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_groups_differ_from_the_scaled_rate_exactly_where_torch_says():
    """Cosine with eta_min brings every group to eta_min; scaling the optimizer's rate
    alone would take the group at a tenth of it to a tenth of eta_min."""
    rows, _ = _ours(bp.CosineAnnealingLR(0.1, T_max=4, eta_min=0.005))
    at_min = rows[4 * N // BATCH]  # epoch 4 = T_max: every group at eta_min
    assert at_min == pytest.approx([0.005, 0.005], rel=1e-12)
    schedule = bp.CosineAnnealingLR(0.1, T_max=4, eta_min=0.005)
    assert schedule.group_rates(4, [1.0, 0.1]) == pytest.approx([0.005, 0.005])
    assert schedule(4) * 0.1 == pytest.approx(0.0005)  # what scaling alone would give
    assert bp.ExponentialLR(0.1, 0.5).group_rates(3, [1.0, 0.1]) is None


def test_a_plain_optimizer_and_a_function_schedule_are_unchanged():
    model = _model()
    opt = bp.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 3)), rng.integers(0, 2, N)
    hist = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=3,
                     batch_size=BATCH, progress=False,
                     callbacks=[bp.LearningRateScheduler(
                         bp.CosineAnnealingLR(0.1, T_max=2, eta_min=0.01))])
    assert hist.history["lr"] == pytest.approx([0.1, 0.055, 0.01])
    grouped = bp.SGD([{"params": model[0].parameters()},
                      {"params": model[2].parameters(), "lr": 0.01}], lr=0.1)
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=grouped, epochs=2,
              batch_size=BATCH, progress=False,
              callbacks=[bp.LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)])
    assert [g["lr"] for g in grouped.param_groups] == pytest.approx([0.05, 0.005])


def test_a_group_of_lr_0_holds_its_parameters_still_as_in_torch():
    model = _model()
    opt = bp.Adam([{"params": model[0].parameters(), "lr": 0},
                   {"params": model[2].parameters()}], lr=0.01, weight_decay=0.1)
    held = [p.value.copy() for p in model[0].parameters()]
    moved = [p.value.copy() for p in model[2].parameters()]
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.01]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 3)), rng.integers(0, 2, N)
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=2, batch_size=BATCH,
              progress=False, callbacks=[bp.LearningRateScheduler(bp.StepLR(0.01, 1, 0.5))])
    assert all(np.array_equal(a, p.value) for a, p in zip(held, model[0].parameters(),
                                                          strict=True))
    assert not any(np.array_equal(a, p.value) for a, p in zip(moved, model[2].parameters(),
                                                              strict=True))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0, 0.005])
    state = opt.state_dict()
    again = bp.Adam([{"params": model[0].parameters(), "lr": 0},
                     {"params": model[2].parameters()}], lr=0.01, weight_decay=0.1)
    again.load_state_dict(state)
    assert [g["lr"] for g in again.param_groups] == pytest.approx([0.0, 0.005])
    for bad, error in ((float("nan"), ValueError), (False, TypeError), ("0", TypeError)):
        with pytest.raises(error, match=r"Adam: expected lr .*\(in parameter group 0\)"):
            bp.Adam([{"params": model[0].parameters(), "lr": bad},
                     {"params": model[2].parameters()}], lr=0.01)


@pytest.mark.parametrize("schedule", [
    lambda: bp.OneCycleLR([0.2, 0.1, 0.05], total_steps=12),
    lambda: bp.CyclicLR(0.001, [0.1, 0.05, 0.02]),
    lambda: bp.SequentialLR([bp.CyclicLR([0.001] * 3, 0.1), bp.CyclicLR(0.001, 0.1)], [2]),
])
def test_rates_for_another_number_of_groups_are_refused_before_training(schedule):
    model = _model()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 3)), rng.integers(0, 2, N)
    for opt in (bp.SGD(model.parameters(), lr=0.1, momentum=0.9),
                bp.SGD([{"params": model[0].parameters()},
                        {"params": model[2].parameters()}], lr=0.1, momentum=0.9)):
        before = [p.value.copy() for p in model.parameters()]
        with pytest.raises(ValueError, match=r"expected the optimizer to have 3 parameter "
                                             r"groups, one for each rate given, got [12]"):
            model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=1,
                      batch_size=BATCH, progress=False,
                      callbacks=[bp.LearningRateScheduler(schedule())])
        assert all(np.array_equal(a, p.value) for a, p in zip(before, model.parameters(),
                                                              strict=True))


def test_per_group_rates_refuse_bad_lists_naming_the_schedule():
    with pytest.raises(ValueError, match=r"CyclicLR: expected base_lr and max_lr for as many "
                                         r"parameter groups, got 2 and 3"):
        bp.CyclicLR([0.001, 0.002], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"OneCycleLR: expected max_lr as a rate, or a list "
                                         r"of one rate per parameter group, got an empty list"):
        bp.OneCycleLR([], total_steps=5)
    with pytest.raises(ValueError, match=r"OneCycleLR: expected max_lr in \[0\.0, inf\)"):
        bp.OneCycleLR([0.1, -0.1], total_steps=5)
    with pytest.raises(ValueError, match=r"SequentialLR: expected schedules with rates for as "
                                         r"many parameter groups, got \[2, 3\] groups"):
        bp.SequentialLR([bp.CyclicLR(0.001, [0.1, 0.2]), bp.CyclicLR(0.001, [0.1] * 3)], [2])
    schedule = bp.OneCycleLR((0.2, 0.05), total_steps=10)
    assert schedule.lr == pytest.approx(0.2 / 25) and schedule.group_count() == 2
    assert schedule(3) == schedule(3, group=0) and schedule(3, group=1) < schedule(3)
