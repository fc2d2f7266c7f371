"""RAdam and Adadelta: steps by hand, torch.optim trajectories, dtype, schedules, resume,
validation, repr, hints and the command line."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import backprop as bp
from backprop.__main__ import main
from backprop.optimizers import OPTIMIZERS


def _loose(values, dtype=np.float64):
    """Parameters that are not views of one flat buffer: the per-parameter path."""
    return [bp.Parameter(f"p{i}", np.array(v, dtype=dtype), np.zeros(np.shape(v), dtype))
            for i, v in enumerate(values)]


# -- steps by hand ---------------------------------------------------------------------------

def test_radam_takes_momentum_steps_until_rho_t_exceeds_5_then_rectified_ones():
    # a constant gradient makes m̂ = g and v̂ = g² at every step; with beta2 = 0.999
    # rho_t = 1.0, 2.0, 3.0, 4.0, 4.996 for t = 1..5 (plain steps lr * g), 5.994 at t = 6
    g, lr, eps = np.array([0.5, -3.0]), 0.1, 1e-8
    (p,) = _loose([[1.0, -2.0]])
    opt = bp.RAdam([p], lr=lr, eps=eps)
    for _ in range(5):
        p.grad[...] = g
        opt.step()
    np.testing.assert_allclose(p.value, [1.0, -2.0] - 5 * lr * g, rtol=1e-14)
    opt.step()
    rho_inf, bc2 = 2 / (1 - 0.999) - 1, 1 - 0.999**6
    rho = rho_inf - 2 * 6 * 0.999**6 / bc2
    assert 5.99 < rho < 6.0
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    step = lr * r * g * math.sqrt(bc2) / (np.sqrt(g * g * bc2) + eps)
    np.testing.assert_allclose(p.value, [1.0, -2.0] - 5 * lr * g - step, rtol=1e-14)


def test_radam_with_a_small_beta2_never_rectifies():
    # rho_inf = 2 / (1 - beta2) - 1 <= 5 for beta2 <= 2/3: every step is lr * m̂
    (p,) = _loose([[0.0]])
    opt = bp.RAdam([p], lr=0.1, betas=(0.0, 0.6))
    for _ in range(50):
        p.grad[...] = 2.0
        opt.step()
    np.testing.assert_allclose(p.value, [-50 * 0.1 * 2.0], rtol=1e-14)


def test_adadelta_first_two_steps_by_hand():
    g1, g2, rho, eps, lr = np.array([2.0, -0.5]), np.array([-1.0, 4.0]), 0.9, 1e-6, 0.5
    (p,) = _loose([[1.0, 1.0]])
    opt = bp.Adadelta([p], lr=lr, rho=rho, eps=eps)
    s, u, want = 0.0, 0.0, np.array([1.0, 1.0])
    for g in (g1, g2):
        p.grad[...] = g
        opt.step()
        s = rho * s + (1 - rho) * g * g
        d = np.sqrt(u + eps) / np.sqrt(s + eps) * g
        u = rho * u + (1 - rho) * d * d
        want = want - lr * d
        np.testing.assert_allclose(p.value, want, rtol=1e-14)
    np.testing.assert_allclose(opt.state[0]["square_avg"], s, rtol=1e-14)
    np.testing.assert_allclose(opt.state[0]["acc_delta"], u, rtol=1e-14)


# -- trajectories against torch.optim -------------------------------------------------------

RADAM = [
    {}, dict(lr=0.05), dict(lr=0.05, betas=(0.8, 0.99)), dict(lr=0.02, weight_decay=0.1),
    dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True),
    dict(lr=0.05, betas=(0.0, 0.9), eps=1e-3), dict(lr=0.05, betas=(0.9, 0.8)),
    dict(lr=0.05, betas=(0.5, 0.6), weight_decay=0.01),
]
ADADELTA = [
    {}, dict(lr=0.5, rho=0.5), dict(rho=0.0), dict(rho=1.0, lr=0.05), dict(rho=0.99, eps=1e-2),
    dict(lr=0.1, weight_decay=0.05), dict(rho=0.95, eps=1e-4, weight_decay=0.5),
]
GRID = [("RAdam", kw) for kw in RADAM] + [("Adadelta", kw) for kw in ADADELTA]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(GRID)]


def _ours(name, params, kw):
    return getattr(bp, name)(params, **kw)


@pytest.mark.parametrize("name,kw", GRID, ids=IDS)
def test_trajectory_on_a_model_matches_torch_optim(name, kw):
    """A Sequential (one flat buffer, one vectorised update) and the same network in
    torch, each computing its own gradients, for 50 steps in float64."""
    torch = pytest.importorskip("torch")
    f64 = np.float64
    model = bp.Sequential([bp.Dense(4, 8, rng=0, dtype=f64), bp.Tanh(dtype=f64),
                           bp.Dense(8, 3, rng=1, dtype=f64)])
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in model.parameters()]
    opt, topt = _ours(name, model.parameters(), kw), getattr(torch.optim, name)(tparams, **kw)
    assert len(opt._groups) == 1
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(50):
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
        opt.step()
        h = torch.tanh(torch.tensor(x) @ tparams[0] + tparams[1]) @ tparams[2] + tparams[3]
        topt.zero_grad()
        torch.nn.functional.cross_entropy(h, torch.tensor(y)).backward()
        topt.step()
        for p, t in zip(model.parameters(), tparams, strict=True):
            np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-9, atol=1e-11)


def _same_gradients(torch, name, kw, dtype, params, foreach=False, steps=50):
    """Feed ``params`` and torch's twins the same random gradients (some exactly 0);
    return both trajectories, one array per step and parameter."""
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    opt = _ours(name, params, kw)
    topt = getattr(torch.optim, name)(tparams, foreach=foreach, **kw)
    rng = np.random.default_rng(1)
    ours, theirs = [], []
    for k in range(steps):
        for p, t in zip(params, tparams, strict=True):
            g = (rng.standard_normal(p.value.shape) * (0.1 + k % 5)).astype(dtype)
            g.reshape(-1)[0] = 0.0
            p.grad[...] = g
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
        ours += [p.value.copy() for p in params]
        theirs += [t.detach().numpy().copy() for t in tparams]
    return ours, theirs


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "foreach"])
@pytest.mark.parametrize("name,kw", GRID, ids=IDS)
def test_trajectory_on_loose_parameters_matches_torch_optim(name, kw, foreach):
    """Separate arrays (one update per parameter) against torch's single-tensor and
    foreach implementations, given the same gradients, for 50 steps in float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = _loose([rng.standard_normal(s) for s in [(5, 7), (7,), (7, 3), (3,)]])
    ours, theirs = _same_gradients(torch, name, kw, np.float64, params, foreach)
    assert len(_ours(name, params, kw)._groups) == 4
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name,kw", [GRID[1], GRID[3], GRID[4], GRID[8], GRID[13]],
                         ids=[IDS[i] for i in (1, 3, 4, 8, 13)])
def test_float32_stays_float32_and_follows_torch_closely(name, kw):
    torch = pytest.importorskip("torch")
    model = bp.Sequential([bp.Dense(5, 7, rng=0), bp.Tanh(), bp.Dense(7, 3, rng=1)])
    ours, theirs = _same_gradients(torch, name, kw, np.float32, model.parameters())
    assert model.flat_params.dtype == np.float32
    opt = _ours(name, model.parameters(), kw)
    model.flat_grads[...] = 1.0
    opt.step()
    assert model.flat_params.dtype == np.float32
    assert all(s.dtype == np.float32 for st in opt._group_state + opt.state for s in st.values())
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_default_hyperparameters_are_torchs():
    torch = pytest.importorskip("torch")
    for ours, theirs in [(bp.RAdam, torch.optim.RAdam), (bp.Adadelta, torch.optim.Adadelta)]:
        mine = inspect.signature(ours.__init__).parameters
        torchs = inspect.signature(theirs.__init__).parameters
        shared = set(mine) & set(torchs) - {"self", "params", "betas"}  # betas: below
        assert shared >= {"lr", "eps", "weight_decay"}
        for name in shared:
            assert mine[name].default == torchs[name].default, (ours, name)
    assert (bp.RAdam(_loose([[0.0]])).beta1, bp.RAdam(_loose([[0.0]])).beta2) == (
        inspect.signature(torch.optim.RAdam.__init__).parameters["betas"].default)


# -- schedules, fit, resume -----------------------------------------------------------------

def _blobs(n=96):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 2)).astype(np.float32) + np.eye(3, 2, dtype=np.float32)[y] * 3
    return x, y


def _net(seed=0):
    return bp.Sequential([bp.Dense(2, 16, rng=seed), bp.ReLU(), bp.Dense(16, 3, rng=seed + 1)])


MAKE = {"RAdam": lambda ps: bp.RAdam(ps, lr=0.01, weight_decay=0.01),
        "Adadelta": lambda ps: bp.Adadelta(ps, lr=0.5, weight_decay=0.01)}


@pytest.mark.parametrize("name", MAKE)
def test_a_schedule_sets_their_lr_and_lr_zero_leaves_the_weights(name):
    x, y = _blobs()
    model = _net()
    opt = MAKE[name](model.parameters())
    lr = opt.lr
    sched = bp.LearningRateScheduler(bp.StepLR(lr, step_size=1, gamma=0.5))
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=3,
                        batch_size=32, seed=0, progress=False, callbacks=[sched])
    assert history.history["lr"] == pytest.approx([lr, lr / 2, lr / 4]) and opt.lr == lr / 4
    assert history.history["loss"][-1] < history.history["loss"][0]
    opt.lr = 0.0
    before = model.flat_params.copy()
    model.flat_grads[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(model.flat_params, before)


@pytest.mark.parametrize("name", MAKE)
def test_fit_resumed_from_a_checkpoint_continues_bit_for_bit(tmp_path, name):
    x, y = _blobs()

    def fit6(model, **kwargs):
        return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                         optimizer=MAKE[name](model.parameters()), epochs=6, batch_size=32,
                         seed=0, progress=False,
                         callbacks=[bp.ModelCheckpoint(tmp_path / "ck-{epoch}.npz")], **kwargs)

    straight = _net()
    h1 = fit6(straight)
    resumed = _net(seed=99)  # other weights: all overwritten by the checkpoint
    # 3 steps an epoch: RAdam resumes at step 3, before its first rectified step (6)
    h2 = fit6(resumed, resume=tmp_path / "ck-1.npz")
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    assert h2.history == h1.history and h2.params["initial_epoch"] == 1


@pytest.mark.parametrize("name", MAKE)
def test_state_of_loose_parameters_resumes_from_a_file_bit_for_bit(tmp_path, name):
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal((3, 2)), rng.standard_normal(2)] for _ in range(10)]

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs, strict=True):
                p.grad[...] = g
            opt.step()

    values = [np.linspace(-1, 1, 6).reshape(3, 2), np.array([0.5, -0.5])]
    straight = _loose(values)
    run(straight, opt := MAKE[name](straight), grads)
    params = _loose(values)
    run(params, opt := MAKE[name](params), grads[:4])  # RAdam: 4 plain steps, then rectified
    model = bp.Sequential([bp.Dense(3, 2)])
    bp.save(model, tmp_path / "c.npz", optimizer=opt)
    again = _loose([p.value for p in params])
    fresh = MAKE[name](again)
    fresh.load_state_dict(bp.load_checkpoint(tmp_path / "c.npz").optimizer_state)
    assert fresh.steps == 4
    run(again, fresh, grads[4:])
    for p, q in zip(again, straight, strict=True):
        np.testing.assert_array_equal(p.value, q.value)


# -- validation, repr, hints, exports, command line -----------------------------------------

@pytest.mark.parametrize("make,error,message", [
    (lambda ps: bp.RAdam(ps, lr=-1.0), ValueError, r"RAdam: expected lr in \(0.0, inf\) "
                                                   r"\(finite\), got -1.0"),
    (lambda ps: bp.RAdam(ps, lr=0), ValueError, r"RAdam: expected lr > 0, got 0"),
    (lambda ps: bp.RAdam(ps, beta1=1.0), ValueError, r"RAdam: expected beta1 in \[0.0, 1.0\) "
                                                     r"\(finite\), got 1.0"),
    (lambda ps: bp.RAdam(ps, betas=(0.9, 1.0)), ValueError,
     r"RAdam: expected betas as a pair of numbers in \[0, 1\), got \(0.9, 1.0\)"),
    (lambda ps: bp.RAdam(ps, eps=-1e-8), ValueError, r"RAdam: expected eps in \[0.0, inf\)"),
    (lambda ps: bp.RAdam(ps, weight_decay=float("nan")), ValueError,
     r"RAdam: expected weight_decay in \[0.0, inf\) \(finite\), got nan"),
    (lambda ps: bp.RAdam(ps, decoupled_weight_decay=1), TypeError,
     r"RAdam: expected decoupled_weight_decay to be True or False, got int"),
    (lambda ps: bp.RAdam(ps, 1e-3, (0.8, 0.9), 1e-8), TypeError,
     r"RAdam: got the pair \(0.8, 0.9\) in beta1's place"),
    (lambda ps: bp.Adadelta(ps, lr=-0.5), ValueError, r"Adadelta: expected lr in \(0.0, inf\)"),
    (lambda ps: bp.Adadelta(ps, rho=1.5), ValueError, r"Adadelta: expected rho in \[0.0, 1.0\] "
                                                      r"\(finite\), got 1.5"),
    (lambda ps: bp.Adadelta(ps, rho="0.9"), TypeError,
     r"Adadelta: expected rho to be a number, got '0.9'"),
    (lambda ps: bp.Adadelta(ps, eps=0.0), ValueError, r"Adadelta: expected eps in \(0.0, inf\) "
                                                      r"\(finite\), got 0.0"),
    (lambda ps: bp.Adadelta(ps, weight_decay=-1.0), ValueError,
     r"Adadelta: expected weight_decay in \[0.0, inf\)"),
])
def test_bad_hyperparameters_name_the_optimizer_expected_and_received(make, error, message):
    with pytest.raises(error, match="^" + message):
        make(bp.Dense(2, 2).parameters())


@pytest.mark.parametrize("cls,name,value,error", [
    (bp.RAdam, "beta2", 1.0, ValueError), (bp.RAdam, "eps", float("inf"), ValueError),
    (bp.Adadelta, "rho", -0.1, ValueError), (bp.Adadelta, "eps", 0, ValueError),
    (bp.Adadelta, "lr", "1", TypeError),
])
def test_settings_assigned_later_are_checked_and_the_old_value_stays(cls, name, value, error):
    opt = cls(bp.Dense(2, 2).parameters())
    before = getattr(opt, name)
    with pytest.raises(error, match=f"{cls.__name__}: expected {name}"):
        setattr(opt, name, value)
    assert getattr(opt, name) == before
    with pytest.raises(AttributeError, match="did you mean"):
        opt.weight_decy = 0.1


@pytest.mark.parametrize("key,value,message", [
    ("square_avg", -1.0, r"square_avg \(an average of squares\) to be >= 0, got -1.0"),
    ("acc_delta", -1.0, r"acc_delta \(an average of squared steps\) to be >= 0, got -1.0"),
    ("acc_delta", np.nan, r"acc_delta to be finite, got NaN or inf"),
])
def test_adadelta_refuses_a_saved_state_that_would_make_the_weights_nan(key, value, message):
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    state = bp.Adadelta(model.parameters()).state_dict()
    state["state"]["0.b"][key][1] = value
    fresh = bp.Adadelta(model.parameters())
    with pytest.raises(ValueError, match=r"^Adadelta: expected state 0\.b\." + message):
        fresh.load_state_dict(state)
    assert fresh.steps == 0


def test_a_state_of_the_other_optimizer_is_refused_by_name():
    ps = bp.Dense(2, 2).parameters()
    with pytest.raises(ValueError, match="RAdam: expected a RAdam state, got 'Adam'"):
        bp.RAdam(ps).load_state_dict(bp.Adam(ps).state_dict())
    with pytest.raises(ValueError, match="Adadelta: expected an Adadelta state, got 'RAdam'"):
        bp.Adadelta(ps).load_state_dict(bp.RAdam(ps).state_dict())


def test_repr_and_hyperparameters_build_a_twin():
    ps = bp.Dense(2, 2).parameters()
    radam = bp.RAdam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1,
                     decoupled_weight_decay=True)
    assert repr(radam) == ("RAdam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-08, weight_decay=0.1, "
                           "decoupled_weight_decay=True)")
    assert repr(bp.Adadelta(ps)) == "Adadelta(lr=1.0, rho=0.9, eps=1e-06, weight_decay=0.0)"
    twin = bp.RAdam(ps, **radam.hyperparameters())
    assert repr(twin) == repr(radam)


@pytest.mark.parametrize("cls", [bp.RAdam, bp.Adadelta])
@pytest.mark.parametrize("keyword,hint", [
    ("maximize", "backprop's optimizers minimize: negate the objective"),
    ("foreach", "backprop's optimizers always update every parameter in one vectorised pass"),
    ("fused", "backprop's optimizers always update every parameter in one vectorised pass"),
    ("learning_rate", "backprop calls it lr"),
])
def test_torch_and_keras_keywords_name_backprops_way(cls, keyword, hint):
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\(\) got an unexpected keyword "
                                        rf"argument '{keyword}'; {hint}"):
        cls(bp.Dense(2, 2).parameters(), **{keyword: True})
    assert cls(bp.Dense(2, 2).parameters()).param_groups[0]["lr"] > 0  # PyTorch's, here too


def test_exported_and_named_for_the_command_line():
    assert {"RAdam", "Adadelta"} <= set(bp.__all__) <= set(dir(bp))
    assert OPTIMIZERS["radam"] is bp.RAdam and OPTIMIZERS["adadelta"] is bp.Adadelta
    assert bp.optimizers.RAdam is bp.RAdam and bp.optimizers.Adadelta is bp.Adadelta


@pytest.mark.parametrize("name,cls", [("radam", "RAdam"), ("adadelta", "Adadelta")])
def test_command_line_trains_with_them(tmp_path, capsys, name, cls):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--optimizer", name, "--lr",
                 "0.05", "--hidden", "8", "--epochs", "2", "--no-progress",
                 "--output", str(tmp_path / "m.npz")]) == 0
    assert f"{cls}(lr=0.05)" in capsys.readouterr().out
