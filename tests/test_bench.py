"""bp.bench: sane numbers, the caller's model untouched. No timing assertions."""

import importlib
import math
import re

import numpy as np
import pytest

import backprop as bp
from backprop.bench import _copies, gemm_time
from backprop.gemm import gemm_flops

FAST = {"steps": 2, "repeats": 2, "warmup": 1}


def mlp(dtype=np.float32):
    return bp.Sequential([bp.Dense(20, 16, rng=0, dtype=dtype), bp.ReLU(dtype=dtype),
                          bp.Dense(16, 5, rng=1, dtype=dtype)])


def cnn():
    return bp.Sequential([bp.Conv2D(1, 4, 3, padding=1, rng=0), bp.ReLU(), bp.MaxPool2D(2),
                          bp.Flatten(), bp.Dense(4 * 4 * 4, 3, rng=1)])


def check_sane(result, n_layers):
    assert result.step_time > 0 and math.isfinite(result.step_time)
    assert result.samples_per_s > 0 and result.gemm_time > 0 and result.flops > 0
    assert 0 < result.gemm_fraction < math.inf  # > 1 only on a busy machine (see below)
    assert len(result.layers) == n_layers + 3  # every layer, loss, optimizer, the rest
    assert all(t.forward > 0 and t.backward > 0 for t in result.layers[:-2])  # all recorded


def test_bench_mlp_reports_positive_throughput_and_gemm_fraction():
    result = bp.bench(mlp(), (20,), batch_size=8, **FAST)
    check_sane(result, 3)
    assert result.flops == 2 * (8 * 20 * 16 + 20 * 8 * 16 + 8 * 16 * 5 + 16 * 8 * 5 + 8 * 5 * 16)


def test_gemm_flops_counts_a_multiply_and_an_add_per_term():
    assert gemm_flops([(2, 3, 4), (1, 1, 1)]) == 2 * 24 + 2 and gemm_flops([]) == 0


def test_bench_cnn_reports_positive_throughput_and_gemm_fraction():
    result = bp.bench(cnn(), (1, 8, 8), batch_size=4, **FAST)
    check_sane(result, 5)


def test_bench_leaves_the_model_and_optimizer_unchanged():
    model = mlp()
    loss = bp.SoftmaxCrossEntropy()
    loss.forward(model.forward(np.ones((8, 20), np.float32), training=True), np.arange(8) % 5)
    model.backward(loss.backward())  # nonzero gradients, which bench must not touch either
    optimizer = bp.Adam(model.parameters(), lr=0.1)
    weights, grads = model.flat_params.copy(), model.flat_grads.copy()
    state = optimizer.state_dict()
    bp.bench(model, (20,), batch_size=8, optimizer=optimizer, **FAST)
    np.testing.assert_array_equal(model.flat_params, weights)
    np.testing.assert_array_equal(model.flat_grads, grads)
    assert optimizer.steps == state["steps"]
    for name, s in state["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(optimizer.state_dict()["state"][name][k], v)
    assert not model.has_cache


def test_bench_accepts_a_single_layer_float64_and_mse():
    result = bp.bench(bp.Dense(6, 3, rng=0, dtype=np.float64), (6,), batch_size=4,
                      loss=bp.MeanSquaredError(), breakdown=False, **FAST)
    assert result.dtype == "float64" and result.layers == []
    assert 0 < result.gemm_fraction < math.inf


def test_bench_result_prints_text_html_and_json_ready_dict():
    result = bp.bench(mlp(), (20,), batch_size=8, **FAST)
    text = str(result)
    assert "samples/s" in text and "GEMM bound" in text and "Dense(20, 16)" in text
    assert "<table>" in result._repr_html_()
    d = result.to_dict()
    assert d["samples_per_s"] == result.samples_per_s and len(d["layers"]) == 6


def test_a_bound_slower_than_the_step_is_flagged_as_a_busy_machine():
    fields = dict(model="m", batch_size=8, input_shape=(20,), dtype="float32",
                  step_times=[2e-3, 2e-3], flops=1e6)
    busy = bp.BenchResult(**fields, gemm_time=24e-3)  # as read with other jobs on the CPU
    assert busy.gemm_fraction == pytest.approx(12)
    assert re.search(r"note: the products alone timed slower than the whole step.*"
                     r"\(gemm_fraction 12\.00 > 1\)", str(busy))
    assert "note:" in busy._repr_html_()
    assert "note:" not in str(bp.BenchResult(**fields, gemm_time=1.6e-3))
    none = bp.BenchResult(**{**fields, "flops": 0.0}, gemm_time=0.0)  # a user's layers only
    assert "note: no layer listed a matrix product (gemm_shapes)" in str(none)


def test_gemm_time_is_zero_for_no_products_and_positive_otherwise():
    assert gemm_time([]) == 0.0
    assert gemm_time([(4, 5, 6), (4, 5, 6)], np.float64, repeats=1, min_time=1e-4) > 0


def test_bench_rows_stay_one_line_for_containers():
    model = bp.Sequential([bp.Dense(6, 6, rng=0),
                           bp.Residual(bp.Sequential([bp.Dense(6, 6, rng=1), bp.Tanh()])),
                           bp.Dense(6, 3, rng=2)])
    result = bp.bench(model, (6,), batch_size=4, steps=2, repeats=1, warmup=1)
    assert [t.name for t in result.layers[:3]] == ["(0) Dense(6, 6)", "(1) Residual",
                                                  "(2) Dense(6, 3)"]


def test_bench_times_a_copy_carrying_the_optimizers_current_state():
    model = mlp()
    opt = bp.Adam(model.parameters(), lr=1e-2)
    x = np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32)
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(3):  # give the optimizer state worth copying
        loss.forward(model.forward(x, training=True), np.arange(8) % 5)
        model.backward(loss.backward())
        opt.step()
    _, copied, _ = _copies(model, opt, loss)
    ours, theirs = opt.state_dict(), copied.state_dict()
    assert theirs["steps"] == ours["steps"] == 3
    for name, state in ours["state"].items():
        for key, value in state.items():
            assert np.any(value != 0)
            np.testing.assert_array_equal(theirs["state"][name][key], value)


def test_bench_accepts_a_bare_int_as_a_one_axis_input_shape():
    result = bp.bench(mlp(), 20, batch_size=4, breakdown=False, **FAST)
    assert result.input_shape == (20,) and result.batch_size == 4


@pytest.mark.parametrize("shape, error", [
    ([20.0], TypeError), ("20", TypeError), ((20.0,), TypeError), ((True,), TypeError),
    (True, TypeError), (None, TypeError), ((), ValueError), ((0,), ValueError),
    (-20, ValueError), ((1, -28, 28), ValueError),
])
def test_bench_rejects_an_input_shape_that_is_not_a_tuple_of_positive_ints(shape, error):
    match = (r"bench: expected input_shape as a tuple of positive ints \(one sample's "
             r"shape, e\.g\. \(784,\)\), got ")
    with pytest.raises(error, match=match + re.escape(repr(shape))):
        bp.bench(mlp(), shape, **FAST)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": -1}, ValueError, "bench: expected batch_size >= 1, got -1"),
    ({"batch_size": 0}, ValueError, "bench: expected batch_size >= 1, got 0"),
    ({"batch_size": 2.5}, TypeError, "bench: expected batch_size to be a positive int, got 2.5"),
    ({"batch_size": True}, TypeError, "bench: expected batch_size to be a positive int, got True"),
    ({"steps": 0}, ValueError, "bench: expected steps >= 1, got 0"),
    ({"repeats": 0}, ValueError, "bench: expected repeats >= 1, got 0"),
    ({"warmup": -1}, ValueError, "bench: expected warmup >= 0, got -1"),
    ({"warmup": 1.5}, TypeError, "bench: expected warmup to be an int >= 0, got 1.5"),
    ({"seed": -1}, ValueError, "bench: expected seed >= 0, got -1"),
    ({"breakdown": "yes"}, TypeError, "bench: expected breakdown to be True or False"),
    ({"loss": "mse"}, TypeError, r"bench: expected loss as a backprop Loss .* got 'mse'"),
    ({"optimizer": "sgd"}, TypeError,
     r"bench: expected optimizer as a backprop Optimizer .* got 'sgd'"),
])
def test_bench_rejects_bad_arguments_by_name(kwargs, error, match):
    args = {**FAST, **kwargs}
    with pytest.raises(error, match=match):
        bp.bench(mlp(), (20,), **args)


def test_bench_names_a_batch_too_large_for_memory():
    # 10**12 x 20 float64 (the random draw) is 145 TiB: beyond any address space
    with pytest.raises(MemoryError, match=r"bench: a batch of shape \(1000000000000, 20\) "
                                          r"does not fit in memory .*smaller batch_size"):
        bp.bench(mlp(), (20,), batch_size=10**12, **FAST)


def test_bench_rejects_a_non_model_and_an_optimizer_of_another_model():
    with pytest.raises(TypeError, match="bench: expected model as a backprop Layer or "
                                        "Sequential, got function"):
        bp.bench(lambda x: x, (20,), **FAST)
    other = bp.Sequential([bp.Dense(20, 4, rng=0)])
    with pytest.raises(ValueError, match=r"bench: expected an optimizer over "
                                         r"model.parameters\(\) \(shapes \[\(20, 16\)"):
        bp.bench(mlp(), (20,), optimizer=bp.SGD(other.parameters(), lr=0.1), **FAST)


def test_bench_times_a_single_layer_with_its_own_optimizer():
    # the copy wraps the layer in a Sequential ("W" becomes "0.W"): state still maps
    layer = bp.Dense(6, 3, rng=0)
    opt = bp.Adam(layer.parameters(), lr=1e-2)
    result = bp.bench(layer, (6,), batch_size=4, optimizer=opt, breakdown=False, **FAST)
    assert result.step_time > 0 and opt.steps == 0


def test_gemm_time_rejects_bad_arguments_by_name():
    with pytest.raises(TypeError, match=r"gemm_time: expected shapes as a list of \(m, k, n\)"):
        gemm_time([(4, 5)])
    with pytest.raises(ValueError, match=r"gemm_time: expected shapes .* got \[\(4, 0, 6\)\]"):
        gemm_time([(4, 0, 6)])
    with pytest.raises(ValueError, match="gemm_time: expected repeats >= 1, got 0"):
        gemm_time([(4, 5, 6)], repeats=0)
    with pytest.raises(ValueError, match=r"gemm_time: expected min_time in \(0.0, inf\)"):
        gemm_time([(4, 5, 6)], min_time=0)
    with pytest.raises(TypeError, match="gemm_time: expected a floating dtype"):
        gemm_time([(4, 5, 6)], np.int32)


def test_bench_times_an_optimizer_over_some_of_the_parameters(monkeypatch):
    """Freezing (an optimizer over some parameters), which fit takes, is timed as such:
    the copy's optimizer holds the same parameters of the copied model, with their state."""
    bench_module = importlib.import_module("backprop.bench")  # bp.bench is the function
    model = mlp()
    frozen_first = model.parameters()[2:]  # the first layer's W and b stay as they are
    opt = bp.Adam(frozen_first, lr=1e-2)
    model.forward(np.ones((2, 20), np.float32), training=True)
    model.backward(np.ones((2, 5), np.float32), input_grad=False)
    opt.step()
    made, real = [], bench_module._copies

    def copies(*args):  # the copies, and the copied optimizer's state before any step
        work, copied, loss = real(*args)
        made.append((work, copied, copied.state_dict()))
        return work, copied, loss

    monkeypatch.setattr(bench_module, "_copies", copies)
    result = bp.bench(model, (20,), batch_size=4, optimizer=opt, breakdown=False, **FAST)
    assert result.step_time > 0 and opt.steps == 1
    work, copied, start = made[0]
    assert [p.name for p in copied.params] == [p.name for p in work.parameters()[2:]]
    assert all(any(np.shares_memory(c.value, w.value) for w in work.parameters()[2:])
               for c in copied.params)
    assert start["steps"] == 1
    for name, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(start["state"][name][key], value)


def test_bench_notes_numpys_openblas_pinned_to_named_kernels(monkeypatch):
    """OPENBLAS_CORETYPE makes NumPy's OpenBLAS run the kernels it names whatever the CPU
    supports (AVX2 ones on an AVX-512 machine here): the bound is theirs, and the result says
    so; unset, no note."""
    from backprop import _openblas

    model = bp.Sequential([bp.Dense(8, 4, rng=0)])
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    pinned = bp.bench(model, (8,), 4, steps=2, repeats=1, breakdown=False)
    core = _openblas.corename() or "Haswell"
    assert pinned.notes == [f"NumPy's OpenBLAS runs its {core} kernels, pinned by "
                            f"OPENBLAS_CORETYPE=Haswell (whatever this CPU supports; PyTorch "
                            "picks its own): unset it in the command to time the kernels "
                            "OpenBLAS would choose"]
    assert f"\nnote: {pinned.notes[0]}" in str(pinned)
    assert pinned.to_dict()["notes"] == pinned.notes
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    free = bp.bench(model, (8,), 4, steps=2, repeats=1, breakdown=False)
    assert free.notes == [] and "note:" not in str(free)
