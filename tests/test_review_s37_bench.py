"""Session 37, the benchmark tooling: bench's GEMM bound lists the dx product of a first
layer whose ``backward_params`` is Layer's default (a container of one's own, a nested
Sequential: its full backward runs), and a recurrent layer's products as its loops run them
(h_{-1} = 0 skipped, a stateful layer's kept state not); benchmarks' GemmBound times the
epoch's real batches (the last one short); bench's note on a layer without gemm_shapes
says the fraction reads low; to_dict writes strict JSON; a training step's error names
bench and batch_size; a target whose rounds were kept disturbed is flagged."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

B = 16


class Block(bp.Container):
    """Dense-ReLU-Dense of one's own: forward and backward, no backward_params."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.act, self.b = bp.Dense(12, 8, rng=0), bp.ReLU(), bp.Dense(8, 6, rng=1)

    def children(self):
        return [("a", self.a), ("act", self.act), ("b", self.b)]

    def forward(self, x, training=False):
        h = self.act.forward(self.a.forward(x, training=training), training=training)
        return self.b.forward(h, training=training)

    def backward(self, dy):
        return self.a.backward(self.act.backward(self.b.backward(dy)))


class LeanBlock(Block):
    """The same with a backward_params of its own that skips a's dx."""

    def backward_params(self, dy):
        self.a.backward_params(self.act.backward(self.b.backward(dy)))


def _dx_runs(model, dense):
    """Whether ``dense``'s dx product runs in a training step's backward of ``model``."""
    calls = []
    full = dense.backward
    dense.backward = lambda dy: (calls.append(dy.shape), full(dy))[1]
    try:
        out = model.forward(np.ones((B, 12), np.float32), training=True)
        model.backward(np.ones_like(out), input_grad=False)
    finally:
        del dense.backward
    return bool(calls)


@pytest.mark.parametrize("kind", ["container", "nested Sequential", "lean container"])
def test_the_bound_lists_the_dx_of_a_first_layer_exactly_when_it_runs(kind):
    inner = {"container": Block, "lean container": LeanBlock}.get(kind)
    block = inner() if inner else bp.Sequential([bp.Dense(12, 8, rng=0), bp.ReLU(),
                                                 bp.Dense(8, 6, rng=1)])
    model = bp.Sequential([block, bp.ReLU(), bp.Dense(6, 3, rng=2)])
    first = block.a if inner else block.layers[0]
    dx = (B, 8, 12)  # dy (B, 8) @ W.T (8, 12)
    runs = _dx_runs(model, first)
    assert runs == (kind != "lean container")  # the default backward_params runs backward
    assert (dx in model.gemm_shapes((B, 12), input_grad=False)) == runs  # was never listed
    assert dx in model.gemm_shapes((B, 12), input_grad=True)


def test_backprops_own_containers_list_as_before():
    plain = bp.Sequential([bp.Dense(12, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)])
    assert (B, 8, 12) not in plain.gemm_shapes((B, 12), input_grad=False)  # skipped: right
    assert not _dx_runs(plain, plain.layers[0])
    res = bp.Sequential([bp.Residual(bp.Sequential([bp.Dense(12, 12, rng=0), bp.ReLU()])),
                         bp.Dense(12, 3, rng=1)])
    assert Counter(res.gemm_shapes((B, 12), input_grad=False))[(B, 12, 12)] == 2  # x@W, dx
    bidi = bp.Sequential([bp.Bidirectional(bp.LSTM(4, 3, rng=0)), bp.Flatten(),
                          bp.Dense(30, 2, rng=1)])
    assert (B * 5, 12, 4) not in bidi.gemm_shapes((B, 5, 4), input_grad=False)
    assert (B * 5, 12, 4) in bidi.gemm_shapes((B, 5, 4), input_grad=True)


def _lstm_products(monkeypatch, lstm, x):
    """The h@U (forward) and dh = dG @ U.T (backward) products of one training step of
    ``lstm``, and the K of its dU product."""
    import backprop.layers.recurrent as rec

    seen: list[tuple[str, tuple[int, ...]]] = []
    add = rec.add_product
    monkeypatch.setattr(rec, "add_product",
                        lambda a, b, out: (seen.append(("hU", a.shape)), add(a, b, out))[1])
    matmul = np.matmul

    def spy(a, b, *args, **kwargs):
        if b.shape == lstm.params["U"].T.shape and a.ndim == 2:
            seen.append(("dh", a.shape))
        if kwargs.get("out") is lstm.grads["U"]:
            seen.append(("dU", a.shape))
        return matmul(a, b, *args, **kwargs)

    monkeypatch.setattr(np, "matmul", spy)
    y = lstm.forward(x, training=True)
    lstm.backward_params(np.ones_like(y))
    monkeypatch.setattr(np, "matmul", matmul)
    return Counter(kind for kind, _ in seen), [s for kind, s in seen if kind == "dU"]


@pytest.mark.parametrize("stateful", [False, True])
def test_recurrent_products_are_listed_as_many_times_as_they_run(monkeypatch, stateful):
    n, steps, d, h = 3, 5, 4, 2
    lstm = bp.LSTM(d, h, stateful=stateful, rng=0)
    x = np.random.default_rng(0).standard_normal((n, steps, d)).astype(np.float32)
    lstm.forward(x)  # a stateful layer keeps its state, as from the second batch on
    counts, du = _lstm_products(monkeypatch, lstm, x)
    listed = Counter(lstm.gemm_shapes((n, steps, d), input_grad=False))
    assert counts["hU"] == listed[(n, h, 4 * h)] == steps - 1 + stateful
    assert counts["dh"] == listed[(n, 4 * h, h)] == steps - 1 + stateful
    assert du == [(h, n * (steps - 1))]  # h_0 .. h_{T-2}; was listed over n * steps rows
    assert listed[(h, n * (steps - 1), 4 * h)] == 1
    assert listed[(h, n, 4 * h)] == (1 if stateful else 0)  # h_{-1}.T @ dG_0


def test_the_gemm_bound_epoch_ends_with_the_short_batch():
    from workloads import GemmBound, mlp

    from backprop.data import batch_indices

    n, batch = 2048, 1500
    model = mlp(np.float32)
    gemm = GemmBound(model, np.zeros((n, 784), np.float32), batch)
    flops = [sum(2 * m * k * c for m, k, c in model.gemm_shapes((len(i), 784), False))
             for i in batch_indices(n, batch, rng=0)]
    assert gemm.epoch_flops == sum(flops) and len(flops) == 2 and gemm.full == 1
    gemm.gemm_time = lambda shapes, dtype, **kw: sum(2 * m * k * c for m, k, c in shapes)
    assert gemm.epoch(0) == sum(flops)  # was 2 full batches: 1.46x the epoch's products


class MyLinear(bp.Layer):
    def __init__(self):
        super().__init__()
        self.add_param("W", np.full((8, 8), 0.1, np.float32))

    def forward(self, x, training=False):
        self._x = x
        return x @ self.params["W"]

    def backward(self, dy):
        self.grads["W"][...] = self._x.T @ dy
        return dy @ self.params["W"].T


def test_the_unlisted_note_says_the_fraction_reads_low():
    model = bp.Sequential([bp.Dense(8, 8, rng=0), MyLinear(), bp.Dense(8, 3, rng=1)])
    r = bp.bench(model, (8,), 4, steps=1, repeats=1, warmup=0, breakdown=False)
    (note,) = [n for n in r.notes if "MyLinear" in n]
    assert "fraction high" not in note and "may read low" in note


def test_to_dict_is_strict_json_without_products():
    r = bp.bench(bp.Sequential([bp.BatchNorm(4)]), (4,), 8, steps=1, repeats=1, warmup=0,
                 breakdown=False)
    assert r.gemm_samples_per_s == float("inf")
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))  # raised: Infinity
    assert d["gemm_samples_per_s"] is None and d["samples_per_s"] > 0


def test_a_step_that_fails_at_this_batch_size_names_bench_and_batch_size():
    model = bp.Sequential([bp.Dense(4, 3, rng=0), bp.BatchNorm(3), bp.Dense(3, 2, rng=1)])
    with pytest.raises(ValueError, match=r"bench: .*batch_size=1.*BatchNorm\(3\)"):
        bp.bench(model, (4,), 1, steps=1, repeats=1, warmup=0)


def test_a_target_with_rounds_kept_disturbed_is_flagged():
    import run

    args = run.parse_args(["--suite", "mlp", "--batch-sizes", "128"])
    row = {"PyTorch": {"ratio": 1.5}, "GEMM bound": {"fraction": 0.9}, "disturbed": False,
           "rounds_kept_disturbed": 2}
    targets = run.check_targets({"mlp": {"batches": {128: row}}}, args)
    assert targets and all(t["disturbed"] and t["rounds_kept_disturbed"] == 2 for t in targets)
    assert "2 round(s) kept disturbed, not valid" in run._flag(targets[0])  # was "yes"
    row["rounds_kept_disturbed"] = 0
    assert run._flag(run.check_targets({"mlp": {"batches": {128: row}}}, args)[0]) == ""
