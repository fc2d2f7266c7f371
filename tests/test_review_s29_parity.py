"""Session 29 review: seeded randomized parity with PyTorch where the earlier tests use
scalar or hand-picked settings (per-axis tuple arguments, an optimizer resumed from its
state_dict mid-run, SequentialLR over random schedules). No defect was found; these keep
the configurations checked."""

import random

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.fixture
def torch_float64():
    """torch's scalar optimizer state (NAdam's mu_product, the step) in float64, as ours."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _pair(rnd, lo, hi):
    return (rnd.randint(lo, hi), rnd.randint(lo, hi))


def _pool_or_conv(rnd):
    """A random (bp layer, torch function of x) with per-axis kernel, stride, padding."""
    k, s, dil = _pair(rnd, 1, 4), _pair(rnd, 1, 3), _pair(rnd, 1, 2)
    p = tuple(rnd.randint(0, kk // 2) for kk in k)
    ceil, cip = rnd.choice([False, True]), rnd.choice([False, True])
    kind = rnd.choice(["conv", "max", "avg"])
    if kind == "conv":
        layer = bp.Conv2D(2, 3, k, s, p, dil, dtype=np.float64, rng=0)
        w, b = (torch.tensor(layer.params[n]) for n in ("W", "b"))
        return layer, lambda x: F.conv2d(x, w, b, s, p, dil), (k, dil)
    if kind == "max":
        layer = bp.MaxPool2D(k, s, p, dil, ceil_mode=ceil, dtype=np.float64)
        return layer, lambda x: F.max_pool2d(x, k, s, p, dil, ceil_mode=ceil), (k, dil)
    layer = bp.AvgPool2D(k, s, p, ceil_mode=ceil, count_include_pad=cip, dtype=np.float64)
    return layer, lambda x: F.avg_pool2d(x, k, s, p, ceil, cip), (k, (1, 1))


def test_tuple_argument_conv_and_pools_match_torch_values_and_gradients():
    rnd = random.Random(29)
    for case in range(40):
        layer, fn, (k, dil) = _pool_or_conv(rnd)
        span = [(kk - 1) * d + 1 for kk, d in zip(k, dil, strict=True)]
        size = [rnd.randint(s, s + 5) for s in span]
        x = np.random.default_rng(case).standard_normal((2, 2, *size))
        tx = torch.tensor(x, requires_grad=True)
        ty = fn(tx)
        y = layer.forward(x, training=True)
        dy = np.random.default_rng(case + 100).standard_normal(y.shape)
        (ty * torch.tensor(dy)).sum().backward()
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=repr(layer))
        np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=repr(layer))


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.1, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1}),
    ("NAdam", {"lr": 0.1, "decoupled_weight_decay": True, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.1}),
])
def test_optimizer_resumed_from_state_dict_follows_torch_uninterrupted(name, kwargs,
                                                                       torch_float64):
    layer = bp.Dense(3, 2, dtype=np.float64, rng=0)
    params = layer.parameters()
    theirs = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    ours, torch_opt = getattr(bp, name)(params, **kwargs), getattr(torch.optim, name)(
        theirs, **kwargs)
    rng = np.random.default_rng(0)
    for step in range(10):
        if step == 4:  # a fresh optimizer on the same arrays takes over the saved state
            saved = ours.state_dict()
            ours = getattr(bp, name)(params, **kwargs)
            ours.load_state_dict(saved)
        for p, t in zip(params, theirs, strict=True):
            g = rng.standard_normal(p.grad.shape)
            p.grad[...] = g
            t.grad = torch.tensor(g)
        ours.step()
        torch_opt.step()
    for p, t in zip(params, theirs, strict=True):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-10, atol=1e-12)


def _schedule_pair(rnd, lr):
    lrs = torch.optim.lr_scheduler
    step, t_max, factor, iters = rnd.randint(1, 4), rnd.randint(1, 6), 0.5, rnd.randint(1, 5)
    return rnd.choice([
        (bp.StepLR(lr, step, 0.5), lambda o: lrs.StepLR(o, step, 0.5)),
        (bp.CosineAnnealingLR(lr, t_max, 0.01), lambda o: lrs.CosineAnnealingLR(o, t_max, 0.01)),
        (bp.ExponentialLR(lr, 0.8), lambda o: lrs.ExponentialLR(o, 0.8)),
        (bp.ConstantLR(lr, factor, iters), lambda o: lrs.ConstantLR(o, factor, iters)),
        (bp.LinearWarmup(lr, iters, factor), lambda o: lrs.LinearLR(o, factor, 1.0, iters)),
        (bp.PolynomialLR(lr, t_max, 2.0), lambda o: lrs.PolynomialLR(o, t_max, 2.0)),
    ])


def test_sequential_lr_over_random_schedules_matches_torch_epoch_by_epoch():
    rnd = random.Random(7)
    for _ in range(30):
        pairs = [_schedule_pair(rnd, 0.1) for _ in range(rnd.randint(2, 3))]
        milestones = sorted(rnd.sample(range(1, 12), len(pairs) - 1))
        ours = bp.SequentialLR([p[0] for p in pairs], milestones)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        theirs = torch.optim.lr_scheduler.SequentialLR(opt, [p[1](opt) for p in pairs],
                                                       milestones)
        for epoch in range(20):
            assert ours(epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12,
                                                abs=1e-15), (ours, epoch)
            opt.step()
            theirs.step()
