"""Optimizers: hand-computed steps, torch.optim trajectories, state, validation."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import backprop as bp
from backprop.layers.base import Parameter


def _param(value, grad, name="w"):
    return Parameter(name, np.array(value, dtype=np.float32), np.array(grad, dtype=np.float32))


def test_sgd_momentum_step_by_hand():
    p = _param([1.0, -2.0], [0.5, 1.0])
    opt = bp.SGD([p], lr=0.1, momentum=0.9)
    opt.step()  # b = g
    np.testing.assert_allclose(p.value, [1.0 - 0.05, -2.0 - 0.1], rtol=1e-6)
    opt.step()  # b = 0.9 g + g = 1.9 g
    np.testing.assert_allclose(p.value, [0.95 - 0.1 * 0.95, -2.1 - 0.1 * 1.9], rtol=1e-6)


def test_sgd_nesterov_and_weight_decay_by_hand():
    p = _param([1.0], [0.5])
    opt = bp.SGD([p], lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1)
    opt.step()  # g = 0.5 + 0.1*1 = 0.6; b = 0.6; g' = 0.6 + 0.5*0.6 = 0.9
    np.testing.assert_allclose(p.value, [1.0 - 0.09], rtol=1e-6)
    np.testing.assert_array_equal(p.grad, [0.5])  # weight decay never touches the grad buffer


def test_adam_first_step_moves_each_weight_by_lr():
    p = _param([1.0, 1.0], [3.0, -0.01])
    bp.Adam([p], lr=0.01).step()  # m̂ = g, v̂ = g², so the step is lr * sign(g)
    np.testing.assert_allclose(p.value, [0.99, 1.01], rtol=1e-5)


def test_adamw_decays_weights_without_gradient():
    p = _param([2.0], [0.0])
    bp.AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.value, [2.0 * (1 - 0.05)], rtol=1e-6)


def test_rmsprop_and_adagrad_first_step_by_hand():
    p = _param([1.0], [2.0])
    bp.RMSProp([p], lr=0.01, alpha=0.9, eps=0.0).step()  # s = 0.1*4, step = lr*2/sqrt(0.4)
    np.testing.assert_allclose(p.value, [1.0 - 0.01 * 2 / np.sqrt(0.4)], rtol=1e-6)
    q = _param([1.0], [2.0])
    bp.Adagrad([q], lr=0.1, eps=0.0).step()  # s = 4, step = lr * 2 / 2
    np.testing.assert_allclose(q.value, [0.9], rtol=1e-6)


def test_update_keeps_float32_and_updates_in_place():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    before = [id(p.value) for p in model.parameters()]
    for cls in (bp.SGD, bp.Adam, bp.AdamW, bp.NAdam, bp.Adamax, bp.RMSProp, bp.Adagrad,
                bp.RAdam, bp.Adadelta):
        opt = cls(model.parameters(), lr=0.01)
        model.flat_grads[...] = 1.0
        opt.step()
        assert model.flat_params.dtype == np.float32
        assert all(s.dtype == np.float32 for st in opt.state for s in st.values())
    assert before == [id(p.value) for p in model.parameters()]


def test_flat_model_uses_one_group_and_state_views():
    model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.ReLU(), bp.Dense(4, 2, rng=1)])
    opt = bp.Adam(model.parameters())
    assert len(opt._groups) == 1 and opt._groups[0][0] is model.flat_params
    assert len(opt.state) == 4
    assert opt.state[0]["exp_avg"].shape == (3, 4)
    assert np.shares_memory(opt.state[0]["exp_avg"], opt._group_state[0]["exp_avg"])


@pytest.mark.parametrize("bad", [
    lambda ps: bp.SGD(ps, lr=-1.0),
    lambda ps: bp.SGD(ps, lr=0.1, momentum=-0.5),
    lambda ps: bp.SGD(ps, lr=0.1, nesterov=True),
    lambda ps: bp.Adam(ps, beta1=1.0),
    lambda ps: bp.Adam(ps, eps=-1.0),
    lambda ps: bp.RMSProp(ps, alpha=1.5),
    lambda ps: bp.Adagrad(ps, lr_decay=-0.1),
    lambda ps: bp.SGD([], lr=0.1),
])
def test_bad_hyperparameters_raise_value_error(bad):
    with pytest.raises(ValueError, match="expected"):
        bad(bp.Dense(2, 2).parameters())


@pytest.mark.parametrize("cls", [bp.SGD, bp.Adam, bp.AdamW, bp.NAdam, bp.Adamax, bp.RMSProp,
                                 bp.Adagrad, bp.RAdam, bp.Adadelta])
def test_lr_zero_is_refused_when_built_and_allowed_from_a_schedule(cls):
    # the rule: an optimizer built with lr <= 0 is a slip (torch refuses only
    # lr < 0); a schedule may end at exactly 0, which then changes nothing and resumes
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    with pytest.raises(ValueError, match=rf"{cls.__name__}: expected lr > 0, got 0: built with "
                                         r"lr 0 .*set opt\.lr = 0 after building it"):
        cls(model.parameters(), lr=0)
    before = model.flat_params.copy()
    opt = cls(model.parameters(), lr=0.1)
    opt.lr = 0.0
    model.flat_grads[:] = 1.0
    opt.step()
    assert opt.lr == 0.0 and np.array_equal(model.flat_params, before)
    other = cls(model.parameters(), lr=0.1)
    assert other.load_state_dict(opt.state_dict()) is None and other.lr == 0.0


@pytest.mark.parametrize(("cls", "name", "value", "error"), [
    (bp.SGD, "lr", "0.1", TypeError), (bp.SGD, "lr", -0.1, ValueError),
    (bp.SGD, "lr", float("nan"), ValueError), (bp.SGD, "momentum", -1.0, ValueError),
    (bp.SGD, "dampening", 2.0, ValueError), (bp.SGD, "nesterov", "yes", TypeError),
    (bp.Adam, "beta1", 1.5, ValueError), (bp.Adam, "eps", -1.0, ValueError),
    (bp.Adam, "amsgrad", 1, TypeError), (bp.RMSProp, "alpha", 1.5, ValueError),
    (bp.Adagrad, "lr_decay", -0.1, ValueError), (bp.Adam, "clip_norm", 0.0, ValueError),
])
def test_hyperparameters_set_after_construction_are_checked_as_the_constructor_does(
        cls, name, value, error):
    opt = cls(bp.Sequential([bp.Dense(3, 2, rng=0)]).parameters(), lr=0.1)
    before = getattr(opt, name)
    with pytest.raises(error, match=f"{cls.__name__}: expected {name}"):
        setattr(opt, name, value)
    assert getattr(opt, name) == before


def _steps(model, opt, n, rng):
    x, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(n):
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()


def test_turning_on_a_setting_with_state_creates_it():
    # SGD's momentum as torch does (its buffer starts from the next gradient); Adam's
    # amsgrad and RMSprop's centered/momentum start at zero (torch raises a KeyError)
    torch = pytest.importorskip("torch")
    model = bp.Sequential([bp.Dense(3, 2, dtype=np.float64, rng=0)])
    lin = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(model[0].params["W"].T))
        lin.bias.copy_(torch.tensor(model[0].params["b"]))
    ours = bp.SGD(model.parameters(), lr=0.1, dampening=0.3)
    theirs = torch.optim.SGD(lin.parameters(), lr=0.1, dampening=0.3)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    loss = bp.SoftmaxCrossEntropy()
    for step in range(6):
        if step == 2:  # momentum on mid-run: the buffer starts from that step's gradient
            ours.momentum = theirs.param_groups[0]["momentum"] = 0.9
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        ours.step()
        theirs.zero_grad()
        torch.nn.functional.cross_entropy(lin(torch.tensor(x)), torch.tensor(y)).backward()
        theirs.step()
    np.testing.assert_allclose(model[0].params["W"], lin.weight.detach().numpy().T,
                               rtol=1e-12, atol=1e-14)
    for opt, name, key in [(bp.Adam, "amsgrad", "max_exp_avg_sq"),
                           (bp.RMSProp, "centered", "grad_avg"),
                           (bp.RMSProp, "momentum", "momentum_buffer")]:
        o = opt(model.parameters(), lr=0.01)
        _steps(model, o, 2, rng)
        kept = {k: v.copy() for k, v in o.state[0].items()}
        setattr(o, name, True if name != "momentum" else 0.5)
        assert key in o.state[0] and not o.state[0][key].any()
        assert all(np.array_equal(o.state[0][k], v) for k, v in kept.items())  # kept as is
        _steps(model, o, 2, rng)
        assert np.isfinite(model.flat_params).all()


def test_optimizer_rejects_non_parameters():
    with pytest.raises(TypeError, match="Parameter"):
        bp.SGD([np.zeros(3)], lr=0.1)


def test_state_dict_round_trip_continues_identically():
    def make():
        model = bp.Sequential([bp.Dense(3, 2, rng=0)])
        return model, bp.Adam(model.parameters(), lr=0.1, amsgrad=True)

    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(8).astype(np.float32) for _ in range(6)]
    a, opt_a = make()
    for g in grads:
        a.flat_grads[...] = g
        opt_a.step()
    b, opt_b = make()
    for g in grads[:3]:
        b.flat_grads[...] = g
        opt_b.step()
    saved, weights = opt_b.state_dict(), b.flat_params.copy()
    c, opt_c = make()
    c.flat_params[...] = weights
    opt_c.load_state_dict(saved)
    for g in grads[3:]:
        c.flat_grads[...] = g
        opt_c.step()
    np.testing.assert_array_equal(a.flat_params, c.flat_params)


def test_load_state_dict_rejects_other_optimizer():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    with pytest.raises(ValueError, match="expected a SGD state, got 'Adam'"):
        bp.SGD(model.parameters()).load_state_dict(bp.Adam(model.parameters()).state_dict())


def test_another_optimizers_state_is_named_before_its_missing_keys():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    with pytest.raises(ValueError, match="expected a NAdam state, got 'Adamax'"):
        bp.NAdam(model.parameters()).load_state_dict(bp.Adamax(model.parameters()).state_dict())


@pytest.mark.parametrize("cls", [bp.SGD, bp.Adam, bp.NAdam, bp.RMSProp])
def test_loose_layers_sharing_parameter_names_keep_every_state_by_position(cls):
    """Two loose Dense layers both call their weight "W": the state is keyed by position
    then (as PyTorch keys it), none overwrites another, and a resume is exact."""
    def make():
        d1, d2 = bp.Dense(4, 8, rng=0), bp.Dense(8, 3, rng=1)
        params = d1.parameters() + d2.parameters()
        return params, cls(params, lr=0.01, **({"momentum": 0.9} if cls is bp.SGD else {}))

    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(p.value.shape) for p in make()[0]] for _ in range(6)]

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs, strict=True):
                p.grad[...] = g
            opt.step()

    straight, opt = make()
    run(straight, opt, grads)
    params, opt = make()
    run(params, opt, grads[:3])
    saved = opt.state_dict()
    assert list(saved["state"]) == ["0.W", "1.b", "2.W", "3.b"]
    resumed, opt2 = make()
    for p, q in zip(resumed, params, strict=True):
        p.value[...] = q.value
    opt2.load_state_dict(saved)
    run(resumed, opt2, grads[3:])
    for p, q in zip(resumed, straight, strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    # a model's names are unique: its state keeps them
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    assert list(cls(model.parameters(), lr=0.1).state_dict()["state"]) == ["0.W", "0.b"]


def test_clip_grad_norm_with_an_infinite_max_norm_only_measures_as_torch():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    model.flat_grads[...] = [3.0, 0.0, 0.0, 0.0, 4.0, 0.0]
    assert bp.clip_grad_norm(model, float("inf")) == pytest.approx(5.0)
    np.testing.assert_array_equal(model.flat_grads, [3.0, 0.0, 0.0, 0.0, 4.0, 0.0])


def test_clip_grad_norm_scales_to_max_norm():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    model.flat_grads[...] = [3.0, 0.0, 0.0, 0.0, 4.0, 0.0]
    norm = bp.clip_grad_norm(model, 1.0)
    assert norm == pytest.approx(5.0)
    assert np.linalg.norm(model.flat_grads) == pytest.approx(1.0, rel=1e-5)


# -- trajectories against torch.optim ---------------------------------------------------

CONFIGS = [
    ("SGD", dict(lr=0.05), {}),
    ("SGD", dict(lr=0.05, momentum=0.9), {}),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2), {}),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3), {}),
    ("Adam", dict(lr=1e-2), {}),
    ("Adam", dict(lr=1e-2, beta1=0.8, beta2=0.99, weight_decay=1e-2, amsgrad=True),
     dict(betas=(0.8, 0.99), weight_decay=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1), {}),
    ("RMSProp", dict(lr=1e-2), {}),
    ("RMSProp", dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=1e-3), {}),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1), {}),
    ("NAdam", dict(lr=1e-2), {}),
    ("NAdam", dict(lr=1e-2, beta1=0.8, beta2=0.99, weight_decay=1e-2, momentum_decay=0.1),
     dict(betas=(0.8, 0.99))),
    ("NAdam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True), {}),
    ("Adamax", dict(lr=1e-2), {}),
    ("Adamax", dict(lr=1e-2, beta1=0.8, beta2=0.99, weight_decay=1e-2, eps=1e-3),
     dict(betas=(0.8, 0.99))),
]


@pytest.mark.parametrize("name,ours,theirs", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in
                                                           enumerate(CONFIGS)])
def test_trajectory_matches_torch_optim(name, ours, theirs):
    torch = pytest.importorskip("torch")
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam's running product of mu: float32 else
    try:
        _compare_trajectories(torch, name, ours, theirs)
    finally:
        torch.set_default_dtype(dtype)


def _compare_trajectories(torch, name, ours, theirs):
    torch_name = {"RMSProp": "RMSprop"}.get(name, name)
    torch_kwargs = {k: v for k, v in ours.items() if k not in ("beta1", "beta2")}
    torch_kwargs.update(theirs)
    model = bp.Sequential([bp.Dense(4, 8, rng=0, dtype=np.float64), bp.Tanh(dtype=np.float64),
                           bp.Dense(8, 3, rng=1, dtype=np.float64)])
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in model.parameters()]
    opt = getattr(bp, name)(model.parameters(), **ours)
    topt = getattr(torch.optim, torch_name)(tparams, **torch_kwargs)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(25):
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
        opt.step()
        h = torch.tanh(torch.tensor(x) @ tparams[0] + tparams[1]) @ tparams[2] + tparams[3]
        topt.zero_grad()
        torch.nn.functional.cross_entropy(h, torch.tensor(y)).backward()
        topt.step()
    for p, t in zip(model.parameters(), tparams, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-9, atol=1e-11)


def test_schedules_follow_their_formulas():
    assert bp.StepLR(0.1, step_size=2, gamma=0.5)(5) == pytest.approx(0.025)
    assert bp.ExponentialLR(0.1, gamma=0.9)(2) == pytest.approx(0.081)
    cos = bp.CosineAnnealingLR(0.1, T_max=10, eta_min=0.01)
    assert cos(0) == pytest.approx(0.1) and cos(10) == pytest.approx(0.01)
    assert cos(5) == pytest.approx(0.055)
    warm = bp.LinearWarmup(0.1, warmup_epochs=4, start_factor=0.25,
                           after=bp.StepLR(0.1, step_size=1, gamma=0.5))
    assert [round(warm(e), 6) for e in range(6)] == [0.025, 0.04375, 0.0625, 0.08125, 0.1,
                                                     0.05]


def test_schedules_match_torch_lr_scheduler():
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    pairs = [
        (bp.StepLR(0.1, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (bp.ExponentialLR(0.1, 0.8), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
        (bp.MultiStepLR(0.1, [2, 5, 6], 0.5),
         lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5, 6], 0.5)),
        (bp.CosineAnnealingLR(0.1, 7, 0.001),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, 0.001)),
    ]
    for ours, make in pairs:
        opt = torch.optim.SGD([w], lr=0.1)
        sched = make(opt)
        for epoch in range(10):
            assert ours(epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
            opt.step()
            sched.step()


def test_reduce_lr_on_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1,
                                                        cooldown=1, min_lr=0.01)
    ours, lr = bp.schedules.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=1,
                                              min_lr=0.01), 0.1
    for value in [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.9, 0.95, 0.96, 0.97, 0.98]:
        opt.step()
        theirs.step(value)
        lr = ours.step(value, lr)
        assert lr == pytest.approx(opt.param_groups[0]["lr"])


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode,threshold", [("abs", 0.02), ("rel", 0.02), ("abs", 0.0)])
def test_reduce_lr_on_plateau_threshold_modes_match_torch(mode, threshold_mode, threshold):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=0.5, patience=1, threshold=threshold,
        threshold_mode=threshold_mode, cooldown=1)
    ours, lr = bp.schedules.ReduceLROnPlateau(mode, 0.5, 1, threshold, threshold_mode, 1), 1.0
    values = [1.0, 0.99, 0.95, 0.94, 0.9, 0.89, -0.5, -0.51, -0.6, -0.59, 0.3, 0.31, 0.33]
    for v in values if mode == "min" else [-v for v in values]:
        opt.step()
        theirs.step(v)
        lr = ours.step(v, lr)
        assert lr == opt.param_groups[0]["lr"]
    assert lr < 1.0  # the rule did reduce, so the comparison above saw both branches


def test_reduce_lr_on_plateau_threshold_mode_is_checked_and_reaches_the_callback():
    with pytest.raises(ValueError, match="expected threshold_mode 'rel' or 'abs', got 'x'"):
        bp.schedules.ReduceLROnPlateau(threshold_mode="x")
    assert bp.ReduceLROnPlateau(threshold_mode="abs").plateau.threshold_mode == "abs"


@pytest.mark.parametrize("eps", [1e-8, 0.0, 1e-3])
def test_reduce_lr_on_plateau_skips_reductions_below_eps_like_torch(eps):
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=0, eps=eps)
    ours, lr = bp.schedules.ReduceLROnPlateau(factor=0.1, patience=0, eps=eps), 0.1
    lrs = []
    for _ in range(12):  # a constant metric: a reduction every epoch until eps stops it
        opt.step()
        theirs.step(1.0)
        lr = ours.step(1.0, lr)
        lrs.append(lr)
        assert lr == opt.param_groups[0]["lr"]
    assert lrs[-1] == pytest.approx(1e-12 if eps == 0 else 1e-8 if eps == 1e-8 else 1e-3)


def test_reduce_lr_on_plateau_callback_passes_eps_through():
    assert bp.ReduceLROnPlateau(eps=0.5).plateau.eps == 0.5
    with pytest.raises(ValueError, match="eps"):
        bp.ReduceLROnPlateau(eps=-1.0)


def test_clip_grad_norm_with_a_nan_gradient_makes_every_gradient_nan_like_torch():
    torch = pytest.importorskip("torch")
    grads = [np.array([3.0, np.nan]), np.array([1.0, 2.0])]
    params = [Parameter(f"p{i}", np.zeros_like(g), g) for i, g in enumerate(grads)]
    tensors = [torch.zeros(2, requires_grad=True) for _ in grads]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.tensor(g.copy(), dtype=torch.float32)
    theirs = torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    with np.errstate(invalid="ignore"):
        ours = bp.clip_grad_norm(params, 1.0)
    assert np.isnan(ours) and torch.isnan(theirs)
    for t, g in zip(tensors, grads, strict=True):
        assert np.isnan(g).all() and torch.isnan(t.grad).all()


def test_clip_grad_norm_scales_separate_and_strided_gradients_in_place():
    transposed = np.array([[4.0, 0.0], [0.0, 0.0]]).T  # not C-contiguous: reshape would copy
    grads = [np.array([3.0, 0.0]), transposed]
    params = [Parameter(f"p{i}", np.zeros_like(g), g) for i, g in enumerate(grads)]
    assert bp.clip_grad_norm(params, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(grads[0], [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(grads[1], [[0.8, 0.0], [0.0, 0.0]], rtol=1e-5)


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm,error", [
    (-1.0, ValueError), (0, ValueError), (0.0, ValueError), (float("nan"), ValueError),
    (float("-inf"), ValueError), ("x", TypeError), (None, TypeError), (True, TypeError),
])
def test_clip_grad_norm_rejects_a_max_norm_that_is_not_a_finite_positive_number(max_norm, error):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    model.flat_grads[...] = [3.0, 0.0, 0.0, 0.0, 4.0, 0.0]
    before = model.flat_grads.copy()
    with pytest.raises(error, match=r"clip_grad_norm: expected max_norm"):
        bp.clip_grad_norm(model, max_norm)
    np.testing.assert_array_equal(model.flat_grads, before)  # not flipped, not zeroed


def _snapshot(opt):
    """Everything an optimizer holds, copied: settings, step count and state bytes."""
    settings = {k: v for k, v in vars(opt).items()
                if k not in ("params", "state", "_groups", "_group_state", "_scratch")}
    state = [{k: a.tobytes() for k, a in s.items()} for s in opt.state]
    return settings, state, [(p.value.tobytes(), p.grad.tobytes()) for p in opt.params]


def test_step_refuses_a_parameter_whose_array_was_replaced_and_changes_nothing():
    layer = bp.Dense(3, 2, rng=0)
    opt = bp.Adam(layer.parameters(), lr=0.1, clip_norm=1e-3)
    layer.grads["W"][...] = 5.0
    layer.grads["b"][...] = 5.0
    opt.step()
    before = _snapshot(opt)
    opt.params[1].value.flags.writeable = False  # what flatten_parameters does on re-homing
    with pytest.raises(RuntimeError, match=r"Adam: parameter 'b' is no longer the model's .*"
                                           r"Adam\(model.parameters\(\), \.\.\.\)"):
        opt.step()
    assert _snapshot(opt) == before  # no clipping, no step count, no update of 'W'


def test_step_refuses_an_optimizer_built_before_the_model_was_nested():
    enc = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU()])
    opt = bp.Adam(enc.parameters())
    model = bp.Sequential([enc, bp.Dense(8, 3, rng=1)])
    loss = bp.MeanSquaredError()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    loss.forward(model.forward(x, training=True), np.zeros((5, 3), np.float32))
    model.backward(loss.backward())
    with pytest.raises(RuntimeError, match="no longer the model's"):
        opt.step()


def _stepped(make, seed, steps=2):
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    opt = make(model.parameters())
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        model.flat_grads[...] = rng.standard_normal(8)
        opt.step()
    return opt


def _with(saved, /, **changes):
    return {**saved, **changes}


def _rejects(opt, state, error, match):
    before = _snapshot(opt)
    with pytest.raises(error, match=match):
        opt.load_state_dict(state)
    assert _snapshot(opt) == before  # bit for bit, and no new attributes


@pytest.mark.parametrize("target,source,match", [
    (lambda p: bp.SGD(p, momentum=0.0), lambda p: bp.SGD(p, momentum=0.9),
     r"SGD: expected state without momentum_buffer \(momentum=0.0\), got one saved with "
     r"momentum=0.9"),
    (lambda p: bp.SGD(p, momentum=0.9), lambda p: bp.SGD(p, momentum=0.0),
     r"SGD: expected state with momentum_buffer \(momentum=0.9\), got one saved with "
     r"momentum=0.0"),
    (lambda p: bp.Adam(p, amsgrad=True), lambda p: bp.Adam(p),
     r"Adam: expected state with max_exp_avg_sq \(amsgrad=True\), got one saved with "
     r"amsgrad=False"),
    (lambda p: bp.Adam(p), lambda p: bp.Adam(p, amsgrad=True),
     r"Adam: expected state without max_exp_avg_sq"),
    (lambda p: bp.RMSProp(p, centered=True), lambda p: bp.RMSProp(p, momentum=0.5),
     r"RMSProp: expected state with grad_avg and without momentum_buffer"),
], ids=["sgd-no-momentum", "sgd-momentum", "adam-amsgrad", "adam-plain", "rmsprop"])
def test_load_state_dict_rejects_a_state_saved_with_other_state_keys(target, source, match):
    _rejects(_stepped(target, 0), _stepped(source, 1, steps=3).state_dict(), ValueError, match)


def test_load_state_dict_rejects_state_arrays_that_disagree_with_their_settings():
    opt = _stepped(lambda p: bp.SGD(p, momentum=0.0), 0)
    forged = opt.state_dict()
    forged["hyper"] = {**forged["hyper"], "momentum": 0.9}  # no buffer saved: step would fail
    _rejects(opt, forged, ValueError, r"SGD: expected state without momentum_buffer")
    opt = _stepped(lambda p: bp.SGD(p, momentum=0.9), 0)
    forged = opt.state_dict()
    forged["state"]["0.W"] = {}
    _rejects(opt, forged, ValueError,
             r"SGD: expected state for '0.W' with keys \['momentum_buffer'\] \(momentum=0.9\)")


@pytest.mark.parametrize("change,error,match", [
    (dict(lr=-5.0), ValueError, r"Adam: expected lr in \[0.0, inf\).*got -5.0 \(in the saved"),
    (dict(lr=float("inf")), ValueError, r"Adam: expected lr"),
    (dict(beta1=1.0), ValueError, r"Adam: expected beta1"),
    (dict(amsgrad="yes"), TypeError, r"Adam: expected amsgrad to be True or False"),
    (dict(clip_norm=-1.0), ValueError, r"Adam: expected clip_norm"),
    (dict(bogus=1.0), ValueError, r"Adam: expected hyperparameters \[.*\], got .*'bogus'"),
])
def test_load_state_dict_checks_the_saved_hyperparameters_like_the_constructor(change, error,
                                                                                match):
    opt = _stepped(lambda p: bp.Adam(p, lr=0.1), 0)
    state = _stepped(lambda p: bp.Adam(p, lr=0.2), 1).state_dict()
    _rejects(opt, _with(state, hyper={**state["hyper"], **change}), error, match)
    missing = {k: v for k, v in state["hyper"].items() if k != "eps"}
    _rejects(opt, _with(state, hyper=missing), ValueError, r"Adam: expected hyperparameters")
    assert not hasattr(opt, "bogus")


def test_load_state_dict_rejects_what_is_not_a_matching_state_dict():
    opt = _stepped(lambda p: bp.Adam(p), 0)
    state = _stepped(lambda p: bp.Adam(p), 1, steps=3).state_dict()
    w = state["state"]["0.W"]

    def with_w(entry):
        return _with(state, state={**state["state"], "0.W": entry})

    for bad, error, match in [
        (None, TypeError, r"Adam: expected a dict from state_dict\(\) .*got NoneType"),
        ([state], TypeError, r"Adam: expected a dict .*got list"),
        ({k: v for k, v in state.items() if k != "steps"}, ValueError, r"Adam: expected a state"),
        (_with(state, extra=1), ValueError, r"Adam: expected a state dict with keys"),
        (_with(state, hyper=None), ValueError, r"Adam: expected hyperparameters .* got NoneType"),
        (_with(state, steps=-1), ValueError, r"Adam: expected steps >= 0"),
        (_with(state, steps="3"), TypeError, r"Adam: expected steps"),
        (_with(state, state={"0.W": w}), ValueError, r"Adam: expected state for parameters"),
        (with_w([1, 2]), ValueError, r"Adam: expected state for '0.W' with keys"),
        (with_w({**w, "exp_avg": w["exp_avg"].T}), ValueError,
         r"Adam: expected state 0.W.exp_avg of shape \(3, 2\), got \(2, 3\)"),
        (with_w({**w, "exp_avg": w["exp_avg"].astype(np.int64)}), TypeError,
         r"Adam: expected state 0.W.exp_avg as a float array \(cast to the parameter's "
         r"float32\), got int64"),
        (with_w({**w, "exp_avg": w["exp_avg"].tolist()}), TypeError,
         r"Adam: expected state 0.W.exp_avg as a float array .*, got list"),
    ]:
        _rejects(opt, bad, error, match)


def test_load_state_dict_applies_the_saved_settings_as_checked_python_values():
    opt = _stepped(lambda p: bp.SGD(p, lr=0.1, momentum=0.9), 0)
    state = _stepped(lambda p: bp.SGD(p, lr=0.1, momentum=0.5, nesterov=True), 1).state_dict()
    state["hyper"] = {**state["hyper"], "lr": np.float32(0.25), "nesterov": np.bool_(True)}
    opt.load_state_dict(state)
    assert opt.hyperparameters() == dict(lr=0.25, momentum=0.5, dampening=0.0, nesterov=True,
                                         weight_decay=0.0)
    assert type(opt.lr) is float and type(opt.nesterov) is bool and opt.steps == 2


@pytest.mark.parametrize("cls", [bp.Adam, bp.AdamW, bp.NAdam, bp.Adamax])
@pytest.mark.parametrize("betas,error", [
    ((0.9,), ValueError), (0.9, TypeError), (None, TypeError), (("a", 0.9), TypeError),
    ((0.9, 0.99, 0.999), ValueError), ((1.0, 0.999), ValueError), ((0.9, -0.1), ValueError),
    ((float("nan"), 0.9), ValueError), ("ab", TypeError),
])
def test_adam_rejects_betas_that_are_not_a_pair_in_zero_one(cls, betas, error):
    who = cls.__name__
    with pytest.raises(error, match=rf"{who}: expected betas as a pair of numbers in \[0, 1\), "
                                    rf"got {re.escape(repr(betas))}"):
        cls(bp.Dense(2, 2).parameters(), betas=betas)


def test_adam_takes_betas_as_torch_does_and_refuses_two_different_spellings():
    params = bp.Dense(2, 2).parameters()
    assert (bp.Adam(params, betas=(0.0, 0.5)).beta1, bp.Adam(params, betas=[0.8, 0.99]).beta2
            ) == (0.0, 0.99)
    assert bp.AdamW(params, beta1=0.8, betas=(0.8, 0.99)).beta2 == 0.99
    assert bp.Adam(params, betas=np.array([0.5, 0.6])).beta1 == 0.5
    with pytest.raises(TypeError, match=r"Adam: expected betas as a pair"):
        bp.Adam(params, betas=np.array([[0.5, 0.6]]))
    with pytest.raises(ValueError, match=r"Adam: expected betas or beta1/beta2, got both"):
        bp.Adam(params, beta1=0.5, betas=(0.9, 0.99))


@pytest.mark.parametrize("make,name", [
    (lambda ps, v: bp.SGD(ps, momentum=0.9, nesterov=v), "nesterov"),
    (lambda ps, v: bp.Adam(ps, amsgrad=v), "amsgrad"),
    (lambda ps, v: bp.AdamW(ps, amsgrad=v), "amsgrad"),
    (lambda ps, v: bp.RMSProp(ps, centered=v), "centered"),
    (lambda ps, v: bp.NAdam(ps, decoupled_weight_decay=v), "decoupled_weight_decay"),
])
def test_boolean_options_accept_only_bools(make, name):
    params = bp.Dense(2, 2).parameters()
    for bad in ("no", 1, 0, None, np.array(True)):
        with pytest.raises(TypeError, match=rf"expected {name} to be True or False, got "
                                            rf"{type(bad).__name__}"):
            make(params, bad)
    assert getattr(make(params, np.True_), name) is True
    assert getattr(make(params, False), name) is False


@pytest.mark.parametrize("make,match", [
    (lambda ps, v: bp.SGD(ps, lr=v), "SGD: expected lr"),
    (lambda ps, v: bp.SGD(ps, momentum=v), "SGD: expected momentum"),
    (lambda ps, v: bp.SGD(ps, weight_decay=v), "SGD: expected weight_decay"),
    (lambda ps, v: bp.SGD(ps, clip_norm=v), "SGD: expected clip_norm"),
    (lambda ps, v: bp.Adam(ps, eps=v), "Adam: expected eps"),
    (lambda ps, v: bp.AdamW(ps, weight_decay=v), "AdamW: expected weight_decay"),
    (lambda ps, v: bp.RMSProp(ps, momentum=v), "RMSProp: expected momentum"),
    (lambda ps, v: bp.RMSProp(ps, eps=v), "RMSProp: expected eps"),
    (lambda ps, v: bp.Adagrad(ps, lr_decay=v), "Adagrad: expected lr_decay"),
    (lambda ps, v: bp.Adagrad(ps, initial_accumulator_value=v),
     "Adagrad: expected initial_accumulator_value"),
    (lambda ps, v: bp.NAdam(ps, momentum_decay=v), "NAdam: expected momentum_decay"),
    (lambda ps, v: bp.NAdam(ps, eps=v), "NAdam: expected eps"),
    (lambda ps, v: bp.Adamax(ps, weight_decay=v), "Adamax: expected weight_decay"),
])
def test_hyperparameters_must_be_finite(make, match):
    params = bp.Dense(2, 2).parameters()
    for bad in (float("inf"), float("nan"), np.float32("inf")):
        with pytest.raises(ValueError, match=match):
            make(params, bad)


def test_lr_stays_a_plain_attribute_that_schedules_set():
    p = _param([1.0], [1.0])
    opt = bp.SGD([p], lr=0.1)
    opt.lr = 0.5
    opt.step()
    np.testing.assert_allclose(p.value, [0.5])


def test_default_hyperparameters_are_torchs():
    torch = pytest.importorskip("torch")
    import inspect

    pairs = [(bp.SGD, torch.optim.SGD), (bp.Adam, torch.optim.Adam),
             (bp.AdamW, torch.optim.AdamW), (bp.RMSProp, torch.optim.RMSprop),
             (bp.Adagrad, torch.optim.Adagrad), (bp.NAdam, torch.optim.NAdam),
             (bp.Adamax, torch.optim.Adamax)]
    for ours, theirs in pairs:
        mine = inspect.signature(ours.__init__).parameters
        torch_defaults = inspect.signature(theirs.__init__).parameters
        for name in ("lr", "momentum", "weight_decay", "eps", "alpha", "lr_decay",
                     "dampening", "momentum_decay", "decoupled_weight_decay"):
            if name in mine and name in torch_defaults:
                assert mine[name].default == torch_defaults[name].default, (ours, name)


def test_optimizer_and_clipping_refuse_a_parameter_listed_twice():
    # twice in the list would be two updates per step (and a gradient clipped twice)
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.Dense(2, 2, rng=1)])
    doubled = model.parameters() * 2
    with pytest.raises(ValueError, match=r"SGD: expected each parameter once, got '0.W' at "
                                         r"positions 0 and 4"):
        bp.SGD(doubled, lr=0.1)
    with pytest.raises(ValueError, match="clip_grad_norm: expected each parameter once"):
        bp.clip_grad_norm(doubled, 1.0)
    two_models = model.parameters() + bp.Dense(3, 2, rng=0).parameters()  # same names: fine
    assert len(bp.SGD(two_models, lr=0.1).params) == 6


@pytest.mark.parametrize("bad, message", [
    ("abc", "got str"), (3, "got int"), (np.ones(3), "got ndarray"),
    ([np.ones(3)], "got an element of type ndarray"),
])
def test_clip_grad_norm_names_what_it_got_instead_of_parameters(bad, message):
    with pytest.raises(TypeError, match="clip_grad_norm: expected model.parameters.*" + message):
        bp.clip_grad_norm(bad, 1.0)


def test_schedule_arguments_are_checked_when_built():
    with pytest.raises(TypeError, match=r"LinearWarmup: expected after as a schedule \(callable "
                                        r"epoch -> lr\) or None, got str 'x'"):
        bp.LinearWarmup(0.1, 2, after="x")  # used to fail only when the warmup ended
    for name in ("patience", "cooldown"):
        with pytest.raises(TypeError, match=f"ReduceLROnPlateau: expected {name} to be an int"):
            bp.ReduceLROnPlateau(**{name: 1.5})  # used to become 1 silently


@pytest.mark.parametrize("key, value, message", [
    ("exp_avg", np.nan, r"expected state 0.W.exp_avg to be finite, got NaN or inf"),
    ("exp_avg_sq", -1.0, r"expected state 0.W.exp_avg_sq \(an average of squares\) to be "
                         r">= 0, got -1.0"),
])
def test_load_state_dict_refuses_state_that_would_make_the_weights_nan(key, value, message):
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    opt = bp.Adam(model.parameters(), lr=0.01)
    state = opt.state_dict()
    state["state"]["0.W"][key][0, 0] = value
    fresh = bp.Adam(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="Adam: " + message):
        fresh.load_state_dict(state)
    assert fresh.steps == 0 and not fresh.state[0]["exp_avg_sq"].any()  # nothing loaded


def test_adamax_refuses_a_saved_negative_maximum():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    state = bp.Adamax(model.parameters()).state_dict()
    state["state"]["0.W"]["exp_inf"][0, 0] = -1.0
    with pytest.raises(ValueError, match=r"Adamax: expected state 0.W.exp_inf \(a running "
                                         r"maximum of \|g\|\) to be >= 0, got -1.0"):
        bp.Adamax(model.parameters()).load_state_dict(state)


@pytest.mark.parametrize("flat", [True, False])
def test_nadam_resumed_from_a_file_continues_bit_for_bit_after_a_beta1_change(tmp_path, flat):
    # the running product of mu is saved: after a beta1 change (OneCycleLR cycles it)
    # it no longer follows from the step count
    def run(opt, params, steps, seed):
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            for p in params:
                p.grad[...] = rng.standard_normal(p.grad.shape)
            opt.step()

    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    params = model.parameters() if flat else [
        bp.Parameter(p.name, p.value.copy(), p.grad.copy()) for p in model.parameters()]
    opt = bp.NAdam(params, lr=0.01)
    run(opt, params, 3, 0)
    opt.beta1 = 0.5
    run(opt, params, 2, 1)
    bp.save(model, tmp_path / "c.npz", optimizer=opt)
    saved = [p.value.copy() for p in params]
    run(opt, params, 5, 2)
    again = [bp.Parameter(p.name, v, np.zeros_like(v)) for p, v in zip(params, saved,
                                                                         strict=True)]
    fresh = bp.NAdam(again, lr=0.01)
    fresh.load_state_dict(bp.load_checkpoint(tmp_path / "c.npz").optimizer_state)
    run(fresh, again, 5, 2)
    for p, q in zip(params, again, strict=True):
        np.testing.assert_array_equal(p.value, q.value)


def _run_on(opt_cls, grads, **kwargs):
    p = bp.Parameter("p", np.linspace(-1.0, 1.0, grads.shape[1]), np.zeros(grads.shape[1]))
    opt = opt_cls([p], **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.value


@pytest.mark.parametrize("kwargs", [dict(), dict(weight_decay=0.1),
                                    dict(weight_decay=0.1, decoupled_weight_decay=True),
                                    dict(momentum_decay=0.05, beta1=0.8, eps=1e-3)])
def test_nadam_follows_its_formula_step_by_step(kwargs):
    # the docstring's rule written out in float64, no torch needed
    grads = np.random.default_rng(0).standard_normal((12, 5))
    lr, b1, b2 = 0.01, kwargs.get("beta1", 0.9), 0.999
    eps, wd, md = kwargs.get("eps", 1e-8), kwargs.get("weight_decay", 0.0), \
        kwargs.get("momentum_decay", 4e-3)
    p, m, v, prod = np.linspace(-1.0, 1.0, 5), 0.0, 0.0, 1.0
    for t, g in enumerate(grads, 1):
        if kwargs.get("decoupled_weight_decay"):
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        mu, mu_next = (b1 * (1 - 0.5 * 0.96 ** (k * md)) for k in (t, t + 1))
        prod *= mu
        d = np.sqrt(v / (1 - b2 ** t)) + eps
        p = p - lr * (1 - mu) / (1 - prod) * g / d - lr * mu_next / (1 - prod * mu_next) * m / d
    np.testing.assert_allclose(_run_on(bp.NAdam, grads, lr=lr, **kwargs), p, rtol=1e-12)


def test_keras_nadam_is_nadam_with_momentum_decay_one():
    # Keras 3's Nadam.update_step, written out: mu_t = beta1 (1 - 0.5 * 0.96^t)
    grads = np.random.default_rng(1).standard_normal((15, 4))
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    p, m, v, u_product = np.linspace(-1.0, 1.0, 4), 0.0, 0.0, 1.0
    for t, g in enumerate(grads, 1):
        u_t, u_t1 = b1 * (1 - 0.5 * 0.96 ** t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
        u_product_t = u_product * u_t
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        m_hat = u_t1 * m / (1 - u_product_t * u_t1) + (1 - u_t) * g / (1 - u_product_t)
        p = p - m_hat * lr / (np.sqrt(v / (1 - b2 ** t)) + eps)
        u_product = u_product_t
    ours = _run_on(bp.NAdam, grads, lr=lr, eps=eps, momentum_decay=1.0)
    np.testing.assert_allclose(ours, p, rtol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(), dict(weight_decay=0.1, beta1=0.7, eps=1e-3)])
def test_adamax_follows_its_formula_step_by_step(kwargs):
    grads = np.random.default_rng(2).standard_normal((12, 5))
    grads[3] = 0.0  # the maximum decays while the gradient is 0
    lr, b1, b2 = 0.01, kwargs.get("beta1", 0.9), 0.999
    eps, wd = kwargs.get("eps", 1e-8), kwargs.get("weight_decay", 0.0)
    p, m, u = np.linspace(-1.0, 1.0, 5), 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        p = p - lr / (1 - b1 ** t) * m / u
    np.testing.assert_allclose(_run_on(bp.Adamax, grads, lr=lr, **kwargs), p, rtol=1e-12)


def test_nadam_on_separate_arrays_follows_torch_through_a_beta1_change():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = [bp.Parameter(f"p{i}", v.copy(), np.zeros_like(v)) for i, v in enumerate(values)]
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    opt = bp.NAdam(ours, lr=0.05, weight_decay=0.01)
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch's product of mu: float32 else
    try:
        topt = torch.optim.NAdam(theirs, lr=0.05, weight_decay=0.01)
        for step in range(20):
            if step == 10:
                opt.beta1 = 0.6
                topt.param_groups[0]["betas"] = (0.6, 0.999)
            for p, t in zip(ours, theirs, strict=True):
                g = rng.standard_normal(p.value.shape)
                p.grad[...] = g
                t.grad = torch.tensor(g)
            opt.step()
            topt.step()
    finally:
        torch.set_default_dtype(dtype)
    for p, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_a_nadam_state_needs_its_product_of_mu():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    state = bp.NAdam(model.parameters()).state_dict()
    assert state["mu_product"] == 1.0
    for bad, error, match in [
            (float("nan"), ValueError, r"expected mu_product in the state in \[0.0, 1.0\] "
                                       r"\(finite\), got nan"),
            ("1", TypeError, "expected mu_product in the state to be a number, got '1'"),
            (1.5, ValueError, r"expected mu_product in the state in \[0.0, 1.0\]")]:
        with pytest.raises(error, match=match):
            bp.NAdam(model.parameters()).load_state_dict({**state, "mu_product": bad})
    del state["mu_product"]
    with pytest.raises(ValueError, match=r"expected a state dict with keys \['hyper', "
                                         r"'mu_product', 'state', 'steps', 'type'\]"):
        bp.NAdam(model.parameters()).load_state_dict(state)


def test_adam_takes_torchs_positional_betas_pair_and_refuses_the_ambiguous_rest():
    params = bp.Dense(2, 2, rng=0).parameters()
    for cls in (bp.Adam, bp.AdamW, bp.NAdam, bp.Adamax):
        opt = cls(params, 1e-3, (0.8, 0.95))  # torch.optim.Adam(params, lr, betas)
        assert (opt.beta1, opt.beta2) == (0.8, 0.95)
        with pytest.raises(TypeError, match=r"not torch's \(params, lr, betas, eps"):
            cls(params, 1e-3, (0.8, 0.95), 1e-8)  # torch's eps would land in beta2


def test_settings_refused_together_are_refused_when_assigned_and_the_old_value_stays():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    opt = bp.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for name, value in (("dampening", 0.5), ("momentum", 0.0)):
        before = getattr(opt, name)
        with pytest.raises(ValueError, match=r"SGD: expected momentum > 0 and dampening = 0 "
                                             r"for nesterov"):
            setattr(opt, name, value)
        assert getattr(opt, name) == before
    bp.SGD(model.parameters(), lr=0.1, momentum=0.9).load_state_dict(opt.state_dict())
    with pytest.raises(AttributeError, match=r"SGD: 'learning_rate' is not a setting here; "
                                             r"backprop calls it lr"):
        opt.learning_rate = 0.01
    with pytest.raises(AttributeError, match=r"SGD: 'momentun' is not one of its settings \(it "
                                             r"would change nothing\); did you mean 'momentum'"):
        opt.momentun = 0.5
    opt.note = "mine"  # other new attributes stay the user's to set

    class Mine(bp.SGD):  # and a subclass of the user's may add its own settings
        pass

    mine = Mine(model.parameters(), lr=0.1)
    mine.momentun = 0.5


def test_a_buffer_turned_on_before_a_save_resumes_bit_for_bit():
    rng = np.random.default_rng(0)

    def model_and_opt():
        model = bp.Sequential([bp.Dense(3, 2, dtype=np.float64, rng=0)])
        return model, bp.SGD(model.parameters(), lr=0.1, dampening=0.5)

    model, opt = model_and_opt()
    _steps(model, opt, 1, rng)
    opt.momentum = 0.9  # saved before the buffer's first step, where it takes g as it is
    state, weights = opt.state_dict(), model.state_dict()
    assert state["state_since"] == 1
    other, other_opt = model_and_opt()
    other_opt.momentum = 0.9
    other.load_state_dict(weights)
    other_opt.load_state_dict(state)
    _steps(model, opt, 3, np.random.default_rng(1))
    _steps(other, other_opt, 3, np.random.default_rng(1))
    np.testing.assert_array_equal(model.flat_params, other.flat_params)


def test_a_state_whose_settings_differ_together_loads_as_a_whole():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    saved = bp.SGD(model.parameters(), lr=0.3, momentum=0.9, dampening=0.5)
    opt = bp.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    opt.load_state_dict(saved.state_dict())  # nesterov -> False with dampening 0.5, at once
    assert (opt.lr, opt.dampening, opt.nesterov) == (0.3, 0.5, False)


@pytest.mark.parametrize("model_first", [True, False])
@pytest.mark.parametrize("cls", [bp.SGD, bp.Adam, bp.RMSProp])
def test_deepcopy_of_a_model_and_its_optimizer_together_trains_the_copy(cls, model_first):
    import copy
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    inner = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU()])  # nested: one buffer still
    model = bp.Sequential([inner, bp.Dense(8, 3, rng=1)])
    kwargs = {"momentum": 0.9} if cls is not bp.Adam else {}
    opt = cls(model.parameters(), lr=0.01, **kwargs)
    fit = dict(loss=bp.SoftmaxCrossEntropy(), epochs=2, progress=False, seed=1)
    model.fit(x, y, optimizer=opt, **fit)
    pair = copy.deepcopy((model, opt) if model_first else (opt, model))
    model2, opt2 = pair if model_first else pair[::-1]
    assert not np.shares_memory(model2.flat_params, model.flat_params)
    assert opt2._groups[0][0] is model2.flat_params  # one buffer, shared as in the original
    model.fit(x, y, optimizer=opt, **fit)
    model2.fit(x, y, optimizer=opt2, **fit)  # the copy goes on exactly as the original
    np.testing.assert_array_equal(model2.flat_params, model.flat_params)
    for k, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            np.testing.assert_array_equal(opt2.state_dict()["state"][k][name], value)


def test_a_pickled_pair_says_how_to_rebuild_the_optimizer():
    import pickle
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    opt = bp.Adam(model.parameters(), lr=0.01)
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    with pytest.raises(RuntimeError, match=r"went through pickle, .*copy.deepcopy\(\(model, "
                                           r"opt\)\) keeps the pair together"):
        opt2.step()
    fresh = bp.Adam(model2.parameters(), lr=0.01)  # what the message advises
    fresh.load_state_dict(opt2.state_dict())
    fresh.step()


# -- parameters an optimizer cannot update (found by a review of array layouts) ---------

def _raw(value, grad=None, name="w"):
    """A Parameter of the arrays as given (``_param`` casts them)."""
    return Parameter(name, value, np.ones(np.shape(value), np.float32) if grad is None else grad)


@pytest.mark.parametrize("make", [bp.SGD, bp.Adam, bp.Adadelta])
def test_optimizers_refuse_parameters_they_cannot_update(make):
    kw = {"lr": 0.1} if make is bp.SGD else {}
    with pytest.raises(TypeError, match=rf"{make.__name__}: expected parameter 'w' of a float "
                                        r"dtype, got value int64"):
        make([_raw(np.arange(6).reshape(2, 3), np.ones((2, 3), int))], **kw)
    with pytest.raises(TypeError, match=r"expected the value of parameter 'w' as an ndarray, "
                                        r"got matrix"):  # Adadelta's * multiplied matrices
        with pytest.warns(PendingDeprecationWarning):  # NumPy's, for np.matrix itself
            matrix = np.asmatrix(np.ones((2, 3), np.float32))
        make([_raw(matrix)], **kw)
    frozen = np.ones((2, 3), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"expected the value of parameter 'w' writeable .* "
                                         r"got a read-only array"):
        make([_raw(frozen)], **kw)
    with pytest.raises(ValueError, match=r"gradient of parameter 'w' of its shape \(2, 3\), "
                                         r"got \(3,\)"):
        make([_raw(np.ones((2, 3), np.float32), np.ones(3, np.float32))], **kw)
    opt = make([_raw(np.ones((2, 3), np.float32), frozen)], clip_norm=1.0, **kw)
    with pytest.raises(ValueError, match=rf"{make.__name__}: expected the gradient of "
                                         r"parameter 'w' writeable \(clip_norm"):
        opt.step()
    assert opt.steps == 0


def test_clipping_refuses_read_only_and_integer_gradients():
    """An integer gradient passed a first version of the check, then failed in clipping
    with NumPy's casting error (a review of the change)."""
    frozen = np.ones((2, 3), np.float32)
    frozen.flags.writeable = False
    for clip in (bp.clip_grad_norm, bp.clip_grad_value):
        with pytest.raises(ValueError, match=rf"{clip.__name__}: expected the gradient of "
                                             r"parameter 'w' writeable"):
            clip([_raw(np.ones((2, 3), np.float32), frozen)], 1.0)
        with pytest.raises(TypeError, match=rf"{clip.__name__}: expected parameter 'w' of a "
                                            r"float dtype, got value float32 and gradient "
                                            r"int64"):
            clip([_raw(np.ones((2, 3), np.float32), np.full((2, 3), 5, np.int64))], 1.0)
    with pytest.raises(TypeError, match=r"SGD: expected parameter 'w' of a float dtype"):
        bp.SGD([_raw(np.ones((2, 3), np.float32), np.ones((2, 3), np.int64))], lr=0.5)
    opt = bp.SGD([_raw(np.ones((2, 3), np.float32), np.ones((2, 3), np.float64))], lr=0.5)
    opt.step()  # a float64 gradient on a float32 parameter: cast, as before
    np.testing.assert_array_equal(opt.params[0].value, 0.5)


def test_memmap_parameters_and_gradients_train_as_arrays(tmp_path):
    """A whole np.memmap's base is the mmap object: the flat-buffer test read its ndim."""
    value = np.memmap(tmp_path / "w.dat", np.float32, "w+", shape=(4, 6))
    grad = np.memmap(tmp_path / "g.dat", np.float32, "w+", shape=(4, 6))
    value[:], grad[:] = 1.0, 0.5
    opt = bp.SGD([_raw(value, grad)], lr=0.1, momentum=0.9)
    opt.step()
    twin = copy.deepcopy(opt)
    twin.step()
    np.testing.assert_allclose(value, 0.95)
    assert bp.clip_grad_norm([_raw(value, grad)], 1.0) == pytest.approx(np.sqrt(24) * 0.5)
    bp.clip_grad_value([_raw(value, grad)], 0.1)
    np.testing.assert_array_equal(grad, np.float32(0.1))
