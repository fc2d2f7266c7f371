"""Parameter groups (PyTorch's param_groups) for every optimizer: each group updated as a
separate optimizer with its settings, schedules scaling every group's lr, the state
round-tripping, and the mistakes refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import backprop as bp

# (class, constructor settings, group 0's, group 1's); group 2 takes the constructor's
GROUPED = [
    (bp.SGD, dict(lr=0.01, momentum=0.9),
     dict(lr=0.05, momentum=0.5, nesterov=True), dict(weight_decay=0.1, dampening=0.3)),
    (bp.Adam, dict(lr=0.01), dict(lr=0.02, betas=(0.8, 0.99)),
     dict(amsgrad=True, weight_decay=0.1)),
    (bp.AdamW, dict(lr=0.01), dict(weight_decay=0.0), dict(lr=0.003, eps=1e-6)),
    (bp.NAdam, dict(lr=0.01), dict(momentum_decay=0.01, beta1=0.8),
     dict(decoupled_weight_decay=True, weight_decay=0.1)),
    (bp.Adamax, dict(lr=0.01), dict(lr=0.02), dict(betas=(0.5, 0.9))),
    (bp.RMSProp, dict(lr=0.01), dict(centered=True, momentum=0.5),
     dict(alpha=0.9, weight_decay=0.1)),
    (bp.Adagrad, dict(lr=0.05), dict(lr_decay=0.1, initial_accumulator_value=0.1),
     dict(eps=1e-6)),
    (bp.RAdam, dict(lr=0.01), dict(beta2=0.9), dict(decoupled_weight_decay=True,
                                                    weight_decay=0.1)),
    (bp.Adadelta, dict(lr=1.0), dict(rho=0.8), dict(lr=0.5, eps=1e-5)),
]
IDS = [c[0].__name__ for c in GROUPED]


def _net(dtype=np.float64, seed=0):
    return bp.Sequential([bp.Dense(4, 6, rng=seed, dtype=dtype), bp.Tanh(dtype=dtype),
                          bp.Dense(6, 5, rng=seed + 1, dtype=dtype), bp.Tanh(dtype=dtype),
                          bp.Dense(5, 3, rng=seed + 2, dtype=dtype)])


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def _train(model, steps, *opts):
    x, y = _data()
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(steps):
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        for opt in opts:
            opt.step()


def _grouped(cls, ctor, g0, g1, model, **extra):
    # groups out of the model's order, the last one with the constructor's settings
    return cls([{"params": model[2].parameters(), **g0},
                {"params": model[0].parameters(), **g1},
                {"params": model[4].parameters()}], **ctor, **extra)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,ctor,g0,g1", GROUPED, ids=IDS)
def test_groups_update_bit_for_bit_as_separate_optimizers(cls, ctor, g0, g1, dtype):
    model, twin = _net(dtype), _net(dtype)
    opt = _grouped(cls, ctor, g0, g1, model)
    separate = [cls(twin[2].parameters(), **{**ctor, **g0}),
                cls(twin[0].parameters(), **{**ctor, **g1}),
                cls(twin[4].parameters(), **ctor)]
    _train(model, 7, opt)
    _train(twin, 7, *separate)
    assert model.flat_params.dtype == dtype
    np.testing.assert_array_equal(model.flat_params, twin.flat_params)
    assert opt.steps == 7 and all(o.steps == 7 for o in opt._children)
    assert len(opt.params) == len(opt.state) == 6


def test_clip_norm_stays_one_global_norm_over_every_group():
    model, twin = _net(), _net()
    opt = _grouped(bp.SGD, dict(lr=0.1, momentum=0.9), dict(lr=0.5), {}, model, clip_norm=0.1)
    separate = [bp.SGD(twin[i].parameters(), lr=lr, momentum=0.9)
                for i, lr in ((2, 0.5), (0, 0.1), (4, 0.1))]
    x, y = _data()
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(3):
        for net in (model, twin):
            loss.forward(net.forward(x, training=True), y)
            net.backward(loss.backward())
        opt.step()
        bp.clip_grad_norm(twin, 0.1)
        for o in separate:
            o.step()
    np.testing.assert_array_equal(model.flat_params, twin.flat_params)


def test_a_plain_optimizer_keeps_its_one_flat_update_and_one_group():
    model = _net()
    opt = bp.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert opt._children == [] and opt._groups[0][0] is model.flat_params
    (group,) = opt.param_groups
    assert group["params"] == model.parameters() and group["lr"] == 0.1
    group["momentum"] = 0.5
    assert opt.momentum == 0.5 and opt._groups[0][0] is model.flat_params
    assert repr(opt) == ("SGD(lr=0.1, momentum=0.5, dampening=0.0, weight_decay=0.0, "
                         "nesterov=False)")


def test_each_group_over_a_run_of_layers_is_one_vectorised_update():
    model = _net()
    opt = _grouped(bp.Adam, {}, {}, {}, model)
    for child, i in zip(opt._children, (2, 0, 4), strict=True):
        (p, _), = child._groups  # a view of the model's flat buffer: one pass
        assert p.base is model.flat_params and p.size == model[i].num_params


def _torch_pair(torch, model):
    return [torch.tensor(p.value.copy(), requires_grad=True) for p in model.parameters()]


def _torch_loss(torch, tparams, x, y):
    h = torch.tanh(torch.tensor(x) @ tparams[0] + tparams[1])
    h = torch.tanh(h @ tparams[2] + tparams[3])
    return torch.nn.functional.cross_entropy(h @ tparams[4] + tparams[5], torch.tensor(y))


TORCH = [
    ("SGD", dict(lr=0.05, momentum=0.9), dict(lr=0.1, nesterov=True, weight_decay=0.01),
     dict(momentum=0.5, dampening=0.2), {}, {}),
    ("Adam", dict(lr=0.01), dict(lr=0.03, beta1=0.8, beta2=0.99, weight_decay=0.01),
     dict(amsgrad=True), dict(betas=(0.8, 0.99)), {}),
    ("AdamW", dict(lr=0.01, weight_decay=0.05), dict(lr=0.02, weight_decay=0.2),
     dict(betas=(0.7, 0.9)), {}, {}),
    ("RMSProp", dict(lr=0.01), dict(lr=0.005, centered=True, momentum=0.9),
     dict(alpha=0.9, weight_decay=0.01), {}, {}),
    # (torch's Adagrad fills every group's sum with the constructor's
    # initial_accumulator_value, ignoring a group's: compared where the two agree)
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1), dict(lr=0.05, lr_decay=0.01),
     dict(eps=1e-4, weight_decay=0.01), {}, {}),
]


@pytest.mark.parametrize("name,ctor,g0,g1,t0,t1", TORCH, ids=[t[0] for t in TORCH])
def test_grouped_trajectories_match_torch_optim_with_the_same_groups(name, ctor, g0, g1, t0,
                                                                     t1):
    torch = pytest.importorskip("torch")
    model = _net()
    tparams = _torch_pair(torch, model)
    opt = getattr(bp, name)([{"params": model[0].parameters(), **g0},
                             {"params": model[2].parameters(), **g1},
                             {"params": model[4].parameters()}], **ctor)
    torch_groups = [{"params": tparams[0:2], **{k: v for k, v in g0.items()
                                                  if k not in ("beta1", "beta2")}, **t0},
                    {"params": tparams[2:4], **g1, **t1}, {"params": tparams[4:6]}]
    topt = getattr(torch.optim, {"RMSProp": "RMSprop"}.get(name, name))(torch_groups, **ctor)
    x, y = _data()
    for _ in range(20):
        _train(model, 1, opt)
        topt.zero_grad()
        _torch_loss(torch, tparams, x, y).backward()
        topt.step()
    for p, t in zip(model.parameters(), tparams, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_step_lr_scales_every_group_as_torchs_scheduler_does():
    torch = pytest.importorskip("torch")
    model = _net()
    tparams = _torch_pair(torch, model)
    opt = bp.SGD([{"params": model[0].parameters(), "lr": 0.3},
                  {"params": model[2:].parameters()}], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([{"params": tparams[:2], "lr": 0.3}, {"params": tparams[2:]}],
                           lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5)
    x, y = _data()

    def torch_epoch():
        topt.zero_grad()
        _torch_loss(torch, tparams, x, y).backward()
        topt.step()
        sched.step()

    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=5,
                        batch_size=16, shuffle=False, progress=False,
                        callbacks=[bp.LearningRateScheduler(bp.StepLR(0.1, step_size=2,
                                                                      gamma=0.5))])
    for _ in range(5):
        torch_epoch()
    assert history.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-12)
    lrs = [g["lr"] for g in opt.param_groups]  # epoch 4's, as torch's (stepped to 5: equal)
    assert lrs == pytest.approx([0.075, 0.025], rel=1e-12)
    assert lrs == pytest.approx([g["lr"] for g in topt.param_groups], rel=1e-12)
    for p, t in zip(model.parameters(), tparams, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_reduce_lr_on_plateau_scales_every_group_as_torchs_does():
    torch = pytest.importorskip("torch")
    opt = bp.Adam([{"params": _net()[0].parameters(), "lr": 0.02},
                   {"params": _net()[2].parameters()}], lr=0.01)
    t = [torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)]
    topt = torch.optim.Adam([{"params": [t[0]], "lr": 0.02}, {"params": [t[1]]}], lr=0.01)
    ours = bp.schedules.ReduceLROnPlateau(factor=0.5, patience=1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=1)
    for value in [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.9, 0.91]:
        opt.lr = ours.step(value, opt.lr)
        theirs.step(value)
        got = [g["lr"] for g in opt.param_groups]
        assert got == pytest.approx([g["lr"] for g in topt.param_groups], rel=1e-12)
    assert opt.lr < 0.01


def test_lr_written_on_the_optimizer_scales_groups_even_through_zero():
    opt = bp.SGD([{"params": _net()[0].parameters(), "lr": 0.4},
                  {"params": _net()[2].parameters()}], lr=0.1)
    opt.lr = 0.0
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0] and opt.lr == 0.0
    opt.lr = 0.05
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.05])
    opt.param_groups[1]["lr"] = 0.5  # its scale is now 10: the next opt.lr keeps that
    opt.lr = 0.01
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.04, 0.1]) and opt.lr == 0.01


def test_param_groups_read_and_write_each_groups_settings_with_the_same_checks():
    model = _net()
    opt = bp.Adam([{"params": model[0].parameters(), "betas": (0.8, 0.9)},
                   {"params": model[2:].parameters(), "amsgrad": True}], lr=0.01)
    g0, g1 = opt.param_groups
    assert g0["params"] == model[0].parameters() and g1["params"] == model[2:].parameters()
    assert g0["betas"] == (0.8, 0.9) and g0["beta1"] == 0.8 and g1["betas"] == (0.9, 0.999)
    assert dict(g1)["amsgrad"] is True and list(g1) == ["params", *bp.Adam._hyper]
    g0["betas"] = (0.5, 0.6)
    g1["amsgrad"] = False  # drops that group's maximum, as on a plain optimizer
    assert opt._children[0].beta1 == 0.5 and "max_exp_avg_sq" not in opt.state[-1]
    for group, key, value, error in [(g0, "lr", -1.0, ValueError), (g1, "eps", "x", TypeError),
                                     (g0, "betas", (0.5, 1.5), ValueError),
                                     (g1, "amsgrad", 1, TypeError)]:
        before = group[key]
        with pytest.raises(error, match=r"Adam: expected .*\(in parameter group \d\)"):
            group[key] = value
        assert group[key] == before
    with pytest.raises(ValueError, match="Adam: expected a setting among"):
        g0["momentum"] = 0.9
    with pytest.raises(TypeError, match="'params' are fixed"):
        g0["params"] = []
    with pytest.raises(AttributeError, match="the list is read-only"):
        opt.param_groups = []


def test_a_setting_on_the_optimizer_sets_every_groups_or_none():
    model = _net()
    opt = bp.SGD([{"params": model[0].parameters(), "nesterov": True},
                  {"params": model[2:].parameters(), "momentum": 0.0}], lr=0.1, momentum=0.9)
    opt.weight_decay = 0.01
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.01]
    opt.momentum = 0.5  # group 1 gets momentum (and a buffer from its next gradient)
    assert [g["momentum"] for g in opt.param_groups] == [0.5, 0.5]
    assert "momentum_buffer" in opt.state[-1]
    with pytest.raises(ValueError, match=r"SGD: expected momentum > 0 .*\(in parameter group 0"):
        opt.momentum = 0.0  # group 0 is nesterov: refused, and nothing changes
    assert opt.momentum == 0.5 and [g["momentum"] for g in opt.param_groups] == [0.5, 0.5]


@pytest.mark.parametrize("cls,ctor,g0,g1", GROUPED, ids=IDS)
def test_state_dict_round_trip_continues_bit_for_bit(cls, ctor, g0, g1):
    model, twin = _net(), _net()
    opt = _grouped(cls, ctor, g0, g1, model)
    _train(model, 3, opt)
    opt.lr = opt.lr * 0.5
    other = _grouped(cls, ctor, g0, g1, twin)
    twin.load_state_dict(model.state_dict())
    other.load_state_dict(opt.state_dict())
    assert repr(other) == repr(opt) and other.state_dict()["groups"] == opt.state_dict()["groups"]
    _train(model, 4, opt)
    _train(twin, 4, other)
    np.testing.assert_array_equal(model.flat_params, twin.flat_params)


def test_deepcopy_keeps_the_pair_and_each_groups_state_together():
    model = _net()
    opt = _grouped(bp.Adam, {}, dict(lr=0.1), dict(amsgrad=True), model)
    _train(model, 2, opt)
    model2, opt2 = copy.deepcopy((model, opt))
    assert opt2.state[0]["exp_avg"].base is opt2._children[0]._group_state[0]["exp_avg"]
    _train(model, 3, opt)
    _train(model2, 3, opt2)
    np.testing.assert_array_equal(model.flat_params, model2.flat_params)
    assert not np.shares_memory(model.flat_params, model2.flat_params)


def test_save_and_resume_with_groups_continue_bit_for_bit(tmp_path):
    x, y = _data(32)

    def run(model, **kwargs):
        opt = bp.RMSProp([{"params": model[0].parameters(), "lr": 0.02, "momentum": 0.5},
                          {"params": model[2:].parameters(), "centered": True}], lr=0.01)
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=4, batch_size=8,
                  seed=0, progress=False, callbacks=[
                      bp.LearningRateScheduler(bp.ExponentialLR(0.01, gamma=0.7)),
                      bp.ModelCheckpoint(tmp_path / "ck-{epoch}.npz")], **kwargs)
        return opt

    straight = _net()
    opt = run(straight)
    resumed = _net(seed=5)
    again = run(resumed, resume=tmp_path / "ck-1.npz")
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    assert [g["lr"] for g in again.param_groups] == [g["lr"] for g in opt.param_groups]
    bp.save(straight, tmp_path / "m.npz", optimizer=opt)
    ckpt = bp.load_checkpoint(tmp_path / "m.npz")
    fresh = bp.RMSProp([{"params": ckpt.model[0].parameters(), "momentum": 0.5},
                        {"params": ckpt.model[2:].parameters(), "centered": True}], lr=0.01)
    fresh.load_state_dict(ckpt.optimizer_state)
    assert fresh.state_dict()["groups"] == opt.state_dict()["groups"]


def test_fit_bench_repr_and_hyperparameters_with_groups():
    model = _net()
    opt = bp.SGD([{"params": model[0].parameters(), "lr": 0.5},
                  {"params": model[2:].parameters()}], lr=0.1, momentum=0.9, clip_norm=1.0)
    assert repr(opt) == ("SGD(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, "
                         "nesterov=False, param_groups=[(2 params, lr=0.5), (4 params)])")
    assert opt.hyperparameters()["lr"] == 0.1  # the groups' defaults
    before = opt.state_dict()
    result = bp.bench(model, (8, 4), optimizer=opt, steps=2, warmup=1)
    assert result.step_times and min(result.step_times) > 0
    after = opt.state_dict()  # bench ran on copies
    assert after["groups"] == before["groups"] and after["steps"] == before["steps"]
    x, y = _data()
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=2,
                        batch_size=8, progress=False)
    assert len(history.history["loss"]) == 2 and opt.steps == 4


def test_add_param_group_as_torch_carries_a_plain_optimizers_state_on():
    model, twin = _net(), _net()
    opt = bp.Adam(model[:2].parameters(), lr=0.01)
    ref = bp.Adam(twin[:2].parameters(), lr=0.01)
    _train(model, 2, opt)
    _train(twin, 2, ref)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": model[0].parameters()})
    assert opt._children == []  # refused: still the plain optimizer
    opt.add_param_group({"params": model[2:].parameters(), "lr": 0.003})
    late = bp.Adam(twin[2:].parameters(), lr=0.003)  # a new group starts afresh (torch's
    # per-parameter step): its bias correction counts from its own first step
    _train(model, 3, opt)
    _train(twin, 3, ref, late)
    np.testing.assert_array_equal(model.flat_params, twin.flat_params)
    assert len(opt.param_groups) == 2 and opt.steps == 5
    assert [g["steps"] for g in opt.state_dict()["groups"]] == [5, 3]


@pytest.mark.parametrize("params,error,match", [
    ("no params", ValueError, r"SGD: expected parameter group 0 to have a 'params' key"),
    ("empty", ValueError, r"SGD: expected parameter group 0 to hold parameters"),
    ("twice", ValueError, r"SGD: expected each parameter in one group, got '0\.W' in groups 0 "
                          r"and 1 \(some parameters appear in more than one parameter group\)"),
    ("unknown", ValueError, r"SGD: expected the settings of parameter group 1 among \['lr', "
                            r"'momentum', 'dampening', 'weight_decay', 'nesterov'\], got "
                            r"\['betas'\]"),
    ("clip", ValueError, r"clip_norm is one setting over all parameters"),
    ("mixed", TypeError, r"SGD: expected a list of parameter groups, each a dict .*got a mix "
                         r"of dicts and a Parameter at position 1"),
    ("dict", TypeError, r"SGD: expected model\.parameters\(\) or a list of parameter groups "
                        r".*got one dict: put it in a list"),
    ("bad", ValueError, r"SGD: expected momentum in \[0\.0, inf\).*\(in parameter group 1\)"),
    ("zero", ValueError, r"SGD: expected some parameter group with lr > 0, got lr 0 in "
                         r"every group"),
    ("nesterov", ValueError, r"SGD: expected momentum > 0 and dampening = 0 for nesterov"),
])
def test_bad_groups_are_refused_naming_what_was_expected(params, error, match):
    model = _net()
    p = model.parameters()
    params = {"no params": [{"lr": 0.1}], "empty": [{"params": []}],
              "twice": [{"params": p[:2]}, {"params": p[0:1]}],
              "unknown": [{"params": p[:2]}, {"params": p[2:], "betas": (0.9, 0.99)}],
              "clip": [{"params": p, "clip_norm": 1.0}],
              "mixed": [{"params": p[:1]}, p[1]],
              "dict": {"params": p},
              "bad": [{"params": p[:2]}, {"params": p[2:], "momentum": -1.0}],
              "zero": [{"params": p, "lr": 0}],
              "nesterov": [{"params": p, "nesterov": True}]}[params]
    with pytest.raises(error, match=match):
        bp.SGD(params, lr=0.1)


def test_betas_is_a_group_key_where_the_optimizer_takes_betas():
    p = _net().parameters()
    opt = bp.Adamax([{"params": p[:2], "betas": (0.5, 0.6)}, {"params": p[2:]}], lr=0.01)
    assert opt.param_groups[0]["betas"] == (0.5, 0.6)
    with pytest.raises(ValueError, match=r"Adam: expected betas or beta1/beta2, got both"):
        bp.Adam([{"params": p, "betas": (0.5, 0.6), "beta1": 0.7}])


def test_grouped_and_plain_states_do_not_load_into_each_other():
    model = _net()
    plain = bp.SGD(model.parameters(), lr=0.1)
    grouped = bp.SGD([{"params": model[0].parameters()}, {"params": model[2:].parameters()}],
                     lr=0.1)
    with pytest.raises(ValueError, match="expected a state with no parameter groups, got one "
                                         "with 2 parameter groups: build"):
        plain.load_state_dict(grouped.state_dict())
    with pytest.raises(ValueError, match="expected a state with 2 parameter groups, got one "
                                         "with no parameter groups: build"):
        grouped.load_state_dict(plain.state_dict())
    state = grouped.state_dict()
    state["groups"][1]["hyper"]["momentum"] = -1.0
    before = grouped.state_dict()
    with pytest.raises(ValueError, match=r"expected momentum in \[0\.0, inf\).*\(in the "
                                         r"saved hyperparameters\) \(in parameter group 1\)"):
        grouped.load_state_dict(state)
    assert grouped.state_dict()["groups"] == before["groups"]


@pytest.mark.parametrize("optimizer_first", [False, True])
@pytest.mark.parametrize("grouped", [False, True])
def test_deepcopy_of_a_model_and_an_optimizer_over_some_layers_trains_the_copy(
        optimizer_first, grouped):
    model = _net()
    part = model[2:].parameters()  # part of the flat buffer
    opt = bp.SGD([{"params": part[2:], "lr": 0.3}, {"params": part[:2]}] if grouped else part,
                 lr=0.1, momentum=0.9)
    if optimizer_first:
        opt2, model2 = copy.deepcopy((opt, model))
    else:
        model2, opt2 = copy.deepcopy((model, opt))
    assert model2.flat_params is not None
    _train(model, 2, opt)
    _train(model2, 2, opt2)
    np.testing.assert_array_equal(model.flat_params, model2.flat_params)
    assert not np.array_equal(model2.flat_params, _net().flat_params)
    assert np.array_equal(model2[0].params["W"], _net()[0].params["W"])  # not in opt2
    sub = copy.deepcopy(model[2:])  # a nested model copied alone: a buffer of its own
    assert sub.flat_params.base is None and sub.flat_params.size == sum(p.value.size
                                                                        for p in part)


@pytest.mark.parametrize("how", ["optimizer first", "model first", "optimizer alone"])
@pytest.mark.parametrize("groups", ["in model order", "one over the model"])
def test_deepcopy_of_groups_over_a_run_of_the_buffer_steps(how, groups):
    """Groups that together tile a run of the flat buffer: the copy's step crashed (the
    outer optimizer was given a buffer pair without state)."""
    model = _net()
    p = model.parameters()
    spec = ([{"params": p[:2], "lr": 0.3}, {"params": p[2:]}] if groups == "in model order"
            else [{"params": p}])
    opt = bp.SGD(spec, lr=0.1, momentum=0.9)
    _train(model, 1, opt)  # momentum buffers hold something
    if how == "optimizer first":
        opt2, model2 = copy.deepcopy((opt, model))
    elif how == "model first":
        model2, opt2 = copy.deepcopy((model, opt))
    else:
        opt2, model2 = copy.deepcopy(opt), None
    if model2 is None:  # the copy steps its own parameters, not the model's
        before = model.flat_params.copy()
        _train(model, 1)
        opt2.step()
        np.testing.assert_array_equal(model.flat_params, before)
        return
    _train(model, 2, opt)
    _train(model2, 2, opt2)
    np.testing.assert_array_equal(model.flat_params, model2.flat_params)


@pytest.mark.parametrize("optimizer_first", [False, True])
def test_deepcopy_of_an_optimizer_over_scattered_parameters_trains_the_copy(optimizer_first):
    """The weights only (biases skipped): arrays apart in the flat buffer. The copied
    optimizer's step refused ('no longer the model's') when it was copied first."""
    model = _net()
    opt = bp.SGD([p for p in model.parameters() if p.name.endswith("W")], lr=0.1, momentum=0.9)
    if optimizer_first:
        opt2, model2 = copy.deepcopy((opt, model))
    else:
        model2, opt2 = copy.deepcopy((model, opt))
    _train(model, 2, opt)
    _train(model2, 2, opt2)
    np.testing.assert_array_equal(model.flat_params, model2.flat_params)
    assert not np.array_equal(model2[0].params["W"], _net()[0].params["W"])
    np.testing.assert_array_equal(model2[0].params["b"], _net()[0].params["b"])
