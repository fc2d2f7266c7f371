"""Review s34 (optimizers): clip_grad_norm of any order without a temporary the size of the
gradients; optimizer state of another float dtype cast on load, as PyTorch's; "an Adam";
a schedule's non-number rate is a TypeError; GradientFlowMonitor's dead-unit test on a
Dense's dW without copying it."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import backprop as bp

ORDERS = (0.5, 1.0, 3.0, math.inf)


def _peak(fn):
    """The largest traced allocation ``fn()`` holds at once, in bytes."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _model(dtype=np.float32, seed=0):
    model = bp.Sequential([bp.Dense(1024, 1024, rng=0)]).astype(dtype)  # 1,049,600 params
    model.flat_grads[...] = np.random.default_rng(seed).standard_normal(model.flat_grads.size)
    return model


def _old_norm(g, p):
    """What clip_grad_norm gave before (np.linalg.norm of the flat buffer)."""
    with np.errstate(over="ignore"):
        return float(np.linalg.norm([np.linalg.norm(g, p)], p))


def _exact_norm(g, p):
    """The p-norm of ``g`` in float64, its sum exact (for float32 ``g``, exact to float32)."""
    a = np.abs(g.astype(np.float64))
    return float(a.max()) if p == math.inf else math.fsum(a ** p) ** (1.0 / p)


@pytest.mark.parametrize("p", ORDERS)
def test_clip_grad_norm_of_any_order_allocates_no_gradient_sized_temporary(p):
    model = _model()
    flat = model.flat_grads
    bp.clip_grad_norm(model, math.inf, norm_type=p)  # warm
    peak = _peak(lambda: bp.clip_grad_norm(model, math.inf, norm_type=p))
    assert peak < flat.nbytes / 4, (p, peak, flat.nbytes)  # it was 1.0x the buffer
    # clipping: one scale of the buffer in place, no temporary either
    peak = _peak(lambda: bp.clip_grad_norm(model, 1e-3, norm_type=p))
    assert peak < flat.nbytes / 4, (p, peak, flat.nbytes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", ORDERS)
def test_clip_grad_norm_values_are_the_old_ones_and_exact_to_the_dtype(p, dtype):
    for seed, scale in ((0, 1.0), (1, 1e-3), (2, 1e3)):
        model = _model(dtype, seed)
        model.flat_grads[...] *= scale
        g = model.flat_grads.copy()
        norm = bp.clip_grad_norm(model, math.inf, norm_type=p)
        old, exact = _old_norm(g, p), _exact_norm(g, p)
        if p == math.inf:
            assert norm == old == exact
            continue
        eps = np.finfo(dtype).eps
        # the old float32 norms were up to ~10 ulps off (a float32 1/p); these within 1
        assert norm == pytest.approx(old, rel=16 * eps, abs=0)
        assert norm == pytest.approx(exact, rel=(1.0 if dtype == np.float32 else 8.0) * eps,
                                     abs=0)


def test_clip_grad_norm_matches_pytorch_in_float64_nan_and_inf_included():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(300, 200, rng=0), bp.ReLU(), bp.Dense(200, 10, rng=1)])
    model = model.astype(np.float64)
    for case in ("plain", "inf", "nan", "nan and inf"):
        for p in ORDERS:
            model.flat_grads[...] = rng.standard_normal(model.flat_grads.size)
            if "inf" in case:
                model.flat_grads[7] = -np.inf
            if "nan" in case:
                model.flat_grads[-3] = np.nan
            ts = []
            for q in model.parameters():
                t = torch.zeros(q.grad.shape, dtype=torch.float64, requires_grad=True)
                t.grad = torch.from_numpy(q.grad.copy())
                ts.append(t)
            want = float(torch.nn.utils.clip_grad_norm_(ts, 1.0, norm_type=p))
            got = bp.clip_grad_norm(model, 1.0, norm_type=p)
            if math.isnan(want):
                assert math.isnan(got), (case, p)
            else:
                assert got == pytest.approx(want, rel=1e-12), (case, p)
            for q, t in zip(model.parameters(), ts, strict=True):
                np.testing.assert_allclose(q.grad, t.grad.numpy(), rtol=1e-12, atol=0,
                                           err_msg=f"{case}, p={p}")


def _norm(*grads, p):
    """clip_grad_norm's norm of order ``p`` over separate gradients (no flat buffer)."""
    params = [bp.Parameter(f"g{i}", np.zeros_like(g), g) for i, g in enumerate(grads)]
    return bp.clip_grad_norm(params, math.inf, norm_type=p)


def test_clip_grad_norm_past_the_dtype_range_is_inf_and_nan_wins():
    big = np.full(1000, 3e38, np.float32)  # sum of sqrt fine, its square past float32: inf
    assert _old_norm(big, 0.5) == math.inf == _norm(big, p=0.5)  # (then NaN: inf / inf)
    huge = np.full(200_000, 1e305)  # float64 block sums past float64's range
    assert _norm(huge, p=1.0) == math.inf
    huge[-1] = np.nan
    assert math.isnan(_norm(huge, p=1.0)) and math.isnan(_norm(huge, p=math.inf))
    # separate gradients (no flat buffer): one norm over all
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((70, 30)), rng.standard_normal(5)]
    whole = np.concatenate([a.ravel() for a in parts])
    for p in ORDERS:
        assert _norm(*parts, p=p) == pytest.approx(_exact_norm(whole, p), rel=1e-15)


def _stepped_adam(dtype=np.float32, **kw):
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.ReLU(), bp.Dense(2, 2, rng=1)])
    model = model.astype(dtype)
    opt = bp.Adam(model.parameters(), **kw)
    model.forward(np.ones((2, 3), dtype), training=True)
    model.backward(np.ones((2, 2), dtype))
    opt.step()
    return model, opt


@pytest.mark.parametrize("src, dst", [(np.float32, np.float64), (np.float64, np.float32)])
def test_optimizer_state_of_another_float_dtype_is_cast_as_pytorch(src, dst):
    model, opt = _stepped_adam(src, amsgrad=True)
    state = opt.state_dict()
    moved = model.astype(dst)
    new = bp.Adam(moved.parameters())
    new.amsgrad = True
    new.load_state_dict(state)  # TypeError: expected ... as a float64 array, got float32
    assert new.steps == 1
    for name, s in zip(new._state_names(), new.state, strict=True):
        for k, arr in s.items():
            assert arr.dtype == dst
            np.testing.assert_array_equal(arr, state["state"][name][k].astype(dst))
    new.step()  # and it goes on in its own dtype
    assert all(arr.dtype == dst for s in new.state for arr in s.values())


def test_optimizer_state_cast_still_refuses_non_floats_overflow_and_groups_cast_too():
    _, opt = _stepped_adam(np.float64)
    state = opt.state_dict()
    name = opt._state_names()[0]
    _, opt32 = _stepped_adam(np.float32)
    bad = {**state, "state": {**state["state"],
                              name: {**state["state"][name],
                                     "exp_avg": state["state"][name]["exp_avg"] + 1e39}}}
    with pytest.raises(ValueError, match=rf"^Adam: expected state {name}\.exp_avg \(cast from "
                                         r"float64 to float32\) to be finite, got NaN or inf$"):
        opt32.load_state_dict(bad)
    for wrong, got in ((state["state"][name]["exp_avg"].astype(np.int64), "int64"),
                       (state["state"][name]["exp_avg"].astype(bool), "bool")):
        bad["state"][name] = {**state["state"][name], "exp_avg": wrong}
        with pytest.raises(TypeError, match=rf"^Adam: expected state {name}\.exp_avg as a float "
                                            rf"array \(cast to the parameter's float32\), "
                                            rf"got {got}$"):
            opt32.load_state_dict(bad)
    assert opt32.steps == 1  # untouched
    # parameter groups: each group's state is cast as well
    m32, m64 = (bp.Sequential([bp.Dense(3, 2, rng=0), bp.Dense(2, 2, rng=1)]).astype(d)
                for d in (np.float32, np.float64))
    g32 = bp.Adam([{"params": m32[0].parameters()}, {"params": m32[1].parameters(), "lr": 0.1}])
    g64 = bp.Adam([{"params": m64[0].parameters()}, {"params": m64[1].parameters(), "lr": 0.1}])
    m32.forward(np.ones((2, 3), np.float32), training=True)
    m32.backward(np.ones((2, 2), np.float32))
    g32.step()
    g64.load_state_dict(g32.state_dict())
    assert g64._children[1].state[0]["exp_avg"].dtype == np.float64
    np.testing.assert_array_equal(g64._children[1].state[0]["exp_avg"],
                                  g32._children[1].state[0]["exp_avg"])


@pytest.mark.parametrize("cls, article", [
    (bp.Adam, "an"), (bp.AdamW, "an"), (bp.Adamax, "an"), (bp.Adagrad, "an"),
    (bp.Adadelta, "an"), (bp.SGD, "a"), (bp.RMSprop, "a"), (bp.NAdam, "a")])
def test_a_state_of_another_optimizer_is_named_with_the_right_article(cls, article):
    ps = bp.Dense(2, 2, rng=0).parameters()
    other = bp.SGD if cls is not bp.SGD else bp.Adam
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"^{name}: expected {article} {name} state, got "):
        cls(ps).load_state_dict(other(ps).state_dict())
    grouped = cls([{"params": ps[:1]}, {"params": ps[1:]}])
    saved = other([{"params": ps[:1]}, {"params": ps[1:]}]).state_dict()
    with pytest.raises(ValueError, match=rf"^{name}: expected {article} {name} state, got "):
        grouped.load_state_dict(saved)


def _constant(value):
    """schedule(epoch) -> value (a default argument would take the rate, as in Keras)."""
    return lambda epoch: value


def _fit_with(schedule):
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    x, y = np.ones((8, 3), np.float32), np.arange(8) % 2
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
              progress=False, callbacks=[bp.LearningRateScheduler(schedule)])


def test_a_schedule_returning_no_number_is_a_type_error_a_bad_number_a_value_error():
    for bad, kind in (("0.1", "str"), ([0.1], "list"), (None, "NoneType"), (True, "bool")):
        with pytest.raises(TypeError, match=r"^LearningRateScheduler: expected schedule\(0\) to "
                                            r"return a finite number >= 0, got .* "
                                            rf"\({kind}\)$"):
            _fit_with(_constant(bad))
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"^LearningRateScheduler: expected schedule\(0\) "
                                             r"to return a finite number >= 0, got -?(0\.1|nan"
                                             r"|inf)$"):
            _fit_with(_constant(bad))


@pytest.mark.parametrize("dead", [100, 400])  # few unknown rows after a batch, and most
def test_gradient_flow_monitor_reads_the_dense_dw_without_copying_it(dead):
    model = bp.Sequential([bp.Dense(16, 512, init="he_uniform", rng=0), bp.ReLU(),
                           bp.Dense(512, 512, rng=1), bp.ReLU(), bp.Dense(512, 2, rng=2)])
    model[0].params["b"][:dead] = -1e3  # dead units
    model[2].params["b"][:] = 10.0  # every unit of the second ReLU alive
    peaks = []

    class Probe(bp.GradientFlowMonitor):
        def on_batch_end(self, batch, logs=None):
            peaks.append(_peak(lambda: super(Probe, self).on_batch_end(batch, logs)))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 16)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                        optimizer=bp.SGD(model.parameters(), lr=1e-3), epochs=2,
                        batch_size=16, callbacks=[Probe(warn=False)], progress=False, seed=0)
    assert history.history["dead_relu/1"] == [dead / 512] * 2
    assert history.history["dead_relu/3"] == [0.0, 0.0]
    w_bytes = model[2].grads["W"].nbytes
    assert max(peaks) < w_bytes / 4, (max(peaks), w_bytes)  # the first batch copied all dW
