"""The benchmark scripts: interleaving with the quiet-machine guard, and a smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402


class _Runner:
    def __init__(self, seconds):
        self.seconds, self.calls = seconds, 0

    def warm(self):
        pass

    def epoch(self, seed):
        self.calls += 1
        return self.seconds


class _Guard:
    """Disturbed for the first ``bad`` probes, quiet after."""

    def __init__(self, bad):
        self.bad, self.retried, self.kept_disturbed = bad, 0, 0

    def __call__(self):
        self.bad -= 1
        return self.bad < 0


def test_interleaved_reruns_a_round_whose_probe_found_the_machine_disturbed():
    a, b = _Runner(0.5), _Runner(0.25)
    guard = _Guard(bad=1)   # the probe before the first round is disturbed
    out = harness.interleaved({"a": a, "b": b}, repeats=3, work=10.0, guard=guard, wait=0.0,
                              settle=0.0)
    assert out == {"a": [20.0] * 3, "b": [40.0] * 3}   # one value per repeat, not per try
    assert guard.retried == 1 and guard.kept_disturbed == 0
    assert a.calls == b.calls == 4


def test_interleaved_keeps_and_counts_a_round_disturbed_after_every_retry():
    a = _Runner(1.0)
    guard = _Guard(bad=100)
    out = harness.interleaved({"a": a}, repeats=2, work=1.0, guard=guard, retries=2, wait=0.0,
                              settle=0.0)
    assert out == {"a": [1.0, 1.0]}
    assert guard.retried == 4 and guard.kept_disturbed == 2 and a.calls == 6


def test_interleaved_without_a_guard_runs_each_round_once():
    a = _Runner(2.0)
    assert harness.interleaved({"a": a}, repeats=4, work=8.0, settle=0.0) == {"a": [4.0] * 4}
    assert a.calls == 4


def test_interleaved_rests_before_each_runner_so_the_last_ones_threads_stop_spinning(
        monkeypatch):
    events = []
    monkeypatch.setattr(harness.time, "sleep", lambda s: events.append(("sleep", s)))

    class Logged(_Runner):
        def __init__(self, name):
            super().__init__(1.0)
            self.name = name

        def warm(self):
            events.append(("warm", self.name))

    harness.interleaved({"a": Logged("a"), "b": Logged("b")}, repeats=2, work=1.0)
    s = ("sleep", harness.SETTLE_S)
    assert events == [s, ("warm", "a"), s, ("warm", "b")] * 2


class _ScriptedGuard(harness.QuietGuard):
    """QuietGuard whose probes return scripted (1-thread, 2-thread) GFLOP/s."""

    def __init__(self, script, **kwargs):
        self.script = list(script)
        super().__init__("float32", **kwargs)

    def _probes(self):
        return self.script.pop(0)

    def probe(self):
        return self.script.pop(0)[1]


def test_quiet_guard_judges_the_second_cores_speedup_against_the_best_seen():
    # start: 1.35 (disturbed), then 1.9 -> the wait ends; then quiet, partial steal, quiet
    guard = _ScriptedGuard([(100, 135), (100, 190), (104, 200), (105, 140), (98, 180)])
    assert guard.scales and guard.best_speedup == 1.9
    assert guard() is True            # 1.92 raises the bar to 1.92
    assert guard() is False           # 1.33 < 0.85 * 1.92: a core is (partly) taken
    assert guard() is True            # 1.84 >= 1.63


def test_quiet_guard_without_a_speedup_judges_the_two_thread_speed_alone(monkeypatch):
    monkeypatch.setattr(harness.time, "sleep", lambda s: None)
    guard = _ScriptedGuard([(100, 110)] * 20 + [(100, 100), (100, 50)])
    assert not guard.scales and guard.reference == 110
    assert guard() is True and guard() is False   # 100 >= 0.85 * 110 > 50


def test_quiet_guard_probe_times_a_real_product():
    import numpy as np

    guard = harness.QuietGuard.__new__(harness.QuietGuard)   # no start-up wait
    guard._a = np.ones((384, 384), np.float32)
    guard._b, guard._c = guard._a.copy(), np.empty_like(guard._a)
    speed = guard.probe()
    assert 0.1 < speed < 1e5   # GFLOP/s of one 384^3 product
    np.testing.assert_array_equal(guard._c, np.full((384, 384), 384.0))


class _Verdicts(_Guard):
    """Answers the scripted verdicts in turn."""

    def __init__(self, verdicts):
        super().__init__(0)
        self.verdicts = list(verdicts)

    def __call__(self):
        return self.verdicts.pop(0)


def test_guarded_returns_the_first_attempt_with_quiet_probes_around_it():
    results = iter([1, 2, 3])
    guard = _Verdicts([True, False, True, True])   # the probe after attempt 1 is disturbed
    assert harness.guarded(lambda: next(results), guard, wait=0.0) == 2
    assert guard.retried == 1 and guard.kept_disturbed == 0 and not guard.verdicts
    results = iter([3, 4])
    guard = _Verdicts([False, True, True])   # before attempt 1: rerun without probing after
    assert harness.guarded(lambda: next(results), guard, wait=0.0) == 4
    assert guard.retried == 1 and not guard.verdicts
    assert harness.guarded(lambda: 7, None) == 7


def test_guarded_keeps_the_last_attempt_when_every_probe_is_disturbed():
    results = iter(range(10))
    guard = _Guard(bad=100)
    assert harness.guarded(lambda: next(results), guard, retries=3, wait=0.0) == 3
    assert guard.retried == 3 and guard.kept_disturbed == 1


def test_quiet_guard_probes_pin_their_own_thread_counts(monkeypatch):
    import threadpoolctl

    guard = harness.QuietGuard.__new__(harness.QuietGuard)   # no start-up wait
    guard.threads, seen = 2, []
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", _RecordLimits(seen))
    guard.probe = lambda: seen[-1]
    with threadpoolctl.threadpool_limits(1):   # a suite timing 1-thread work
        assert guard._probes() == (1, 2)


class _RecordLimits:
    """Stands in for threadpoolctl.threadpool_limits: records the limit in force."""

    def __init__(self, seen):
        self.seen = seen

    def __call__(self, limits=None):
        seen = self.seen

        class _Ctx:
            def __enter__(self):
                seen.append(limits)

            def __exit__(self, *exc):
                seen.pop()

        return _Ctx()


def test_benchmark_entry_point_smoke_run_writes_json(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--quick", "--suite", "mlp",
                           "--batch-sizes", "32", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    row = report["results"]["mlp"]["batches"]["32"]
    assert row["backprop"]["median"] > 0 and 0 < row["GEMM bound"]["fraction"]
    assert report["config"]["guard"] is True and "rounds_rerun" in row
    assert "MLP 784-512-256-10" in proc.stdout


def test_layers_suite_runs_only_the_cases_named(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--suite", "layers",
                           "--layers", "Threshold,SmoothL1", "--repeats", "1", "--no-guard",
                           "--layer-min-time", "0.001", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["results"]["layers"]
    assert sorted(rows) == ["SmoothL1Loss", "Threshold(0.1, 20)"]
    assert all(r["speedup_vs_torch"] > 0 and r["PyTorch"]["forward_us"] > 0
               for r in rows.values())


def test_summary_gives_median_per_repeat_ratios_and_the_ratio_of_the_best_repeats():
    out = harness.summary({"ours": [10.0, 30.0, 20.0], "theirs": [10.0, 5.0, 25.0]}, "ours")
    assert out["ours"]["median"] == 20.0 and "ratio" not in out["ours"]
    assert out["theirs"]["ratios"] == [1.0, 6.0, 0.8]
    assert out["theirs"]["ratio"] == 1.0        # the median of the per-repeat ratios
    assert out["theirs"]["best_ratio"] == 30.0 / 25.0


def test_interleaved_probes_after_every_runner_and_reruns_a_round_disturbed_midway():
    a, b = _Runner(0.5), _Runner(0.25)
    guard = _Verdicts([True, True, False, True, True, True])  # b's epoch was disturbed
    out = harness.interleaved({"a": a, "b": b}, repeats=1, work=1.0, guard=guard, wait=0.0,
                              settle=0.0)
    assert out == {"a": [2.0], "b": [4.0]} and not guard.verdicts
    assert guard.retried == 1 and guard.kept_disturbed == 0 and a.calls == b.calls == 2


def test_ab_layers_rows_build_the_same_layer_in_both_libraries():
    """Each row of the old/new A/B script pairs a layer with the PyTorch module of the
    same computation (same output shape on a small input), so its timings compare like
    with like."""
    import pytest

    torch = pytest.importorskip("torch")
    import ab_layers
    import numpy as np

    import backprop as bp

    rows = ab_layers.cases(bp, torch.nn)
    assert len(rows) == len({name for name, *_ in rows}) >= 15
    for name, ours, theirs, shape in rows:
        x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
        got = ours().forward(x, training=True).shape
        want = tuple(theirs()(torch.from_numpy(x)).shape)
        assert got == want, name


def test_machine_facts_name_the_blas_kernels_and_an_openblas_pinning(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    facts = harness.machine_facts()
    assert facts["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    facts["blas"] = [{"internal_api": "openblas", "version": "0.3.31", "num_threads": 2,
                      "architecture": "SkylakeX"}]
    facts["torch_config"] = ["- CPU capability usage: AVX512", "- Build settings: BLAS_INFO=mkl"]
    assert harness.blas_line(facts) == ("openblas 0.3.31 (SkylakeX kernels) x2; pinned by "
                                        "OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=512")
    note = harness.pinning_warning(facts)
    assert "OPENBLAS_CORETYPE=Haswell" in note and "(AVX512 kernels)" in note
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in note
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.delenv("OPENBLAS_L2_SIZE")
    facts["env"] = harness.machine_facts()["env"]
    assert harness.pinning_warning(facts) is None
    assert harness.blas_line(facts) == "openblas 0.3.31 (SkylakeX kernels) x2"
    facts["blas"].append({"internal_api": "openmp", "version": None, "num_threads": 2})
    assert harness.blas_line(facts).endswith("x2, openmp x2")  # no "None" version
    facts["env"], facts["torch_config"] = {"OPENBLAS_CORETYPE": "Zen"}, []
    assert "while PyTorch chooses its own" in harness.pinning_warning(facts)  # no torch
    facts["env"] = {"OPENBLAS_L2_SIZE": "512"}  # session 33: the L2 size alone is a pin too
    assert "NOTE: OPENBLAS_L2_SIZE=512 sets the L2 size" in harness.pinning_warning(facts)


def test_benchmark_options_out_of_range_are_refused_by_name(capsys):
    import run

    for argv, named in ((["--repeats", "0"], "--repeats"), (["--batch-sizes", "32,x"],
                        "--batch-sizes"), (["--curve-epochs", "-1"], "--curve-epochs"),
                        (["--cnn-batch", "0"], "--cnn-batch"),
                        (["--layer-min-time", "0"], "--layer-min-time"),
                        (["--layer-min-time", "inf"], "--layer-min-time"),
                        (["--suite", ","], "--suite"),
                        (["--batch-sizes", ""], "--batch-sizes"),
                        (["--suite", "mlp", "--samples", "100", "--batch-sizes", "512"],
                         "--samples"),  # one short batch an epoch: no step of batch 512
                        (["--suite", "cnn", "--cnn-samples", "8"], "--cnn-samples"),
                        (["--json", "/nonexistent-folder/r.json"], "--json")):
        with pytest.raises(SystemExit):
            run.parse_args(argv)
        assert f"error: {named}" in capsys.readouterr().err
    assert run.parse_args(["--curve-epochs", "0", "--quick"]).curve_epochs == 0


def test_quick_defaults_yield_to_options_given_with_it():
    """--quick replaced an explicit --repeats (and --layer-min-time) by its own."""
    import run

    quick = run.parse_args(["--quick"])
    assert (quick.repeats, quick.layer_min_time) == (2, 0.01)
    given = run.parse_args(["--quick", "--repeats", "4", "--layer-min-time", "0.2"])
    assert (given.repeats, given.layer_min_time) == (4, 0.2)
    plain = run.parse_args([])
    assert (plain.repeats, plain.layer_min_time) == (5, 0.05)


def test_mlp_suite_without_loss_curves(tmp_path):
    """--curve-epochs 0 skips the curves (it crashed on an empty list of points)."""
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--quick", "--suite", "mlp",
                           "--batch-sizes", "32", "--curve-epochs", "0", "--no-guard",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "loss_curves" not in json.loads(out.read_text())["results"]["mlp"]


def test_sklearn_runner_builds_every_class_of_our_model_when_the_data_lacks_some():
    """--samples 10: partial_fit built the classes present (7), then took our 10 outputs."""
    pytest.importorskip("sklearn")
    import numpy as np
    import workloads

    model = workloads.mlp(np.float32)
    x, y = workloads.synthetic(10, (784,), np.float32)
    y[:] = np.arange(10) % 3  # three classes of ten
    runner = workloads.SklearnTrainer(model, x, y, 5)
    assert runner.epoch(0) > 0


def test_gemm_suite_notes_rounds_kept_disturbed(monkeypatch):
    """The gemm suite counted rounds kept disturbed but never said so (the training rows
    did)."""
    import argparse

    import suites

    monkeypatch.setattr(suites, "guarded",
                        lambda run, guard: harness.guarded(run, guard, retries=1, wait=0.0))
    monkeypatch.setattr(suites, "SETTLE_S", 0.0)
    import numpy as np

    args = argparse.Namespace(dtype=np.float32, guard=_Guard(bad=10**6), threads=1,
                              batch_sizes=[8], repeats=1)
    out = suites.gemm(args)
    row = out["threads"][1][8]
    assert row["rounds_kept_disturbed"] == 5  # every one of the 5 rounds
    assert any("batch 8: 5 round(s) still found a core taken" in n for n in out["notes"])


def test_cupy_probe_dry_run_passes_every_case_and_reports_what_differs_or_raises():
    import cupy_probe
    from table import LayerCase

    import backprop as bp

    results = cupy_probe.probe(dry_run=True)
    assert len(results["layers"]) > 200 and len(results["losses"]) > 40
    assert [n for kind in results.values() for n, r in kind.items() if not r["ok"]] == []

    calls = []

    class Drifts(bp.Layer):  # a second forward gives other numbers: the probe must see it
        def forward(self, x, *, training=False):
            calls.append(1)
            return x * len(calls)

        def backward(self, dy):
            return dy * len(calls)

    class Raises(bp.Layer):
        def forward(self, x, *, training=False):
            if calls:
                raise ValueError("Raises: no second forward")
            calls.append(1)
            return x

        def backward(self, dy):
            return dy

    cases = [LayerCase("drifts", lambda dt: Drifts(dtype=dt), (2, 3), (2, 3))]
    found = cupy_probe.probe(dry_run=True, layers=cases, losses=[])["layers"]["drifts"]
    assert not found["ok"] and found["err"] == pytest.approx(1.0)  # 2x against x
    assert "1  compare differs by 1  <- drifts" in cupy_probe.report(
        {"layers": {"drifts": found}})
    calls.clear()
    cases = [LayerCase("raises", lambda dt: Raises(dtype=dt), (2, 3), (2, 3))]
    results = cupy_probe.probe(dry_run=True, layers=cases, losses=[])
    found = results["layers"]["raises"]
    assert (found["ok"], found["stage"], found["error"]) == (
        False, "forward", "ValueError: Raises: no second forward")
    assert found["where"].startswith("test_benchmarks.py:")
    assert "layers: 0 of 1 ran and agree" in cupy_probe.report(results)
    assert "1  test_benchmarks.py" in cupy_probe.report(results)


# -- session 33: the audit of the harness against the issue ---------------------------------
def test_memory_suite_counts_our_parameters_and_gradient_buffers():
    import run
    import suites

    args = run.parse_args(["--samples", "256", "--batch-sizes", "128", "--threads", "1"])
    facts = suites.memory_child("ours", args)
    # built after the baseline: W and b, their gradient buffers and the momentum at least
    assert facts["tracemalloc_peak_bytes"] >= facts["params_grads_momentum_bytes"]
    assert facts["params_bytes"] == 535_818 * 4


def test_loss_curve_verdict_judges_ours_against_pytorchs_float32_noise():
    import suites

    def diffs(ours, noise):
        return {"backprop vs PyTorch f64": {"chunk_means": ours},
                "PyTorch vs PyTorch f64": {"chunk_means": noise}}

    assert suites._verdict(diffs(2e-4, 1e-4)) == (True, suites._verdict(diffs(2e-4, 1e-4))[1])
    ok, text = suites._verdict(diffs(4e-4, 1e-4))
    assert not ok and text.startswith("DISAGREE within noise: ours 4.0e-04")
    assert suites._verdict(diffs(9e-6, 0.0))[0]  # the 1e-5 floor
    assert suites._verdict({"backprop vs PyTorch": {"chunk_means": 1e-12}})[0]  # float64
    assert not suites._verdict({"backprop vs PyTorch": {"chunk_means": 1e-9}})[0]


def test_a_fraction_of_the_bound_above_one_is_marked_invalid():
    import suites

    row = {"backprop": {"median": 100.0}, "GEMM bound": {"median": 90.0, "fraction": 1.11}}
    text = suites.training_table("mlp", {"batches": {"32": row}})
    assert "1.11 (invalid)" in text and "a step cannot beat its own products" in text
    row["GEMM bound"]["fraction"] = 0.7
    assert "invalid" not in suites.training_table("mlp", {"batches": {"32": row}})
    import run

    args = run.parse_args(["--suite", "mlp", "--batch-sizes", "128"])
    row["GEMM bound"]["fraction"] = 1.25
    targets = run.check_targets({"mlp": {"batches": {128: row}}}, args)
    bound = next(t for t in targets if "GEMM bound" in t["target"])
    assert bound["invalid"] and not bound["met"]  # was counted as met


def test_the_json_goes_to_benchmarks_out_by_default(tmp_path):
    import run

    default = run.json_path(run.parse_args(["--dtype", "float64"]))
    assert default == BENCH / "out" / "results-float64.json"
    assert "benchmarks/out/" in (BENCH.parent / ".gitignore").read_text().split()
    assert run.json_path(run.parse_args(["--json", str(tmp_path / "r.json")])) == \
        tmp_path / "r.json"
    assert run.json_path(run.parse_args(["--json", ""])) is None
    assert run.json_path(run.parse_args(["--suite", "mlp", "--quick"])).name == \
        "results-float32-mlp-quick.json"  # a smoke run keeps a full run's file


def test_cnn_suite_prints_its_loss_curves_with_a_verdict(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--suite", "cnn",
                           "--cnn-samples", "128", "--cnn-batch", "32", "--repeats", "1",
                           "--curve-epochs", "1", "--no-guard", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    curves = json.loads(out.read_text())["results"]["cnn"]["loss_curves"]
    assert curves["steps"] == 4 and curves["agree"] is True
    assert "CNN loss curves from the same weights" in proc.stdout
    assert "agree within noise" in proc.stdout
