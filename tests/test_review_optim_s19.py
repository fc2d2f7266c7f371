"""Review session 19 (optimizers, clipping, schedules): regression tests from a
differential fuzz against torch.optim."""

from __future__ import annotations

import pytest

import backprop as bp


def test_cyclic_lr_triangular2_keeps_torchs_rates_and_runs_past_cycle_1024():
    # PyTorch's scale 1 / 2.0 ** (cycle - 1) raises OverflowError from cycle 1025 on
    # (step 2048 with step sizes of 1), which ended a long fit; 0.5 ** (cycle - 1) is the
    # same float up to there and underflows to 0 after
    torch = pytest.importorskip("torch")
    ours = bp.CyclicLR(0.001, 0.01, step_size_up=1, step_size_down=1, mode="triangular2",
                       base_momentum=0.8, max_momentum=0.9)
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.001, momentum=0.9)
    theirs = torch.optim.lr_scheduler.CyclicLR(opt, 0.001, 0.01, 1, 1, mode="triangular2",
                                               base_momentum=0.8, max_momentum=0.9)
    for t in range(2047):  # torch's last step before its overflow
        assert ours(t) == opt.param_groups[0]["lr"]
        assert ours.momentum(t) == opt.param_groups[0]["momentum"]
        opt.step()
        theirs.step()
    for t in (2049, 2151, 10**6 + 1):  # the top of a cycle: the height has decayed to nothing
        assert ours(t) == pytest.approx(0.001, rel=1e-12)
        assert ours.momentum(t) == pytest.approx(0.9, rel=1e-12)
    assert ours(3) == pytest.approx(0.001 + 0.009 / 2)  # the second cycle's top: half height


def test_an_int_beyond_any_float_is_a_named_value_error():
    """float(10**400) raises OverflowError: it was a bare one, with no optimizer named."""
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    with pytest.raises(ValueError, match=r"^SGD: expected lr in \(0.0, inf\)"):
        bp.SGD(model.parameters(), lr=10**400)


def test_adam_decoupled_weight_decay_points_to_adamw():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    with pytest.raises(TypeError, match="AdamW"):
        bp.Adam(model.parameters(), decoupled_weight_decay=True)
