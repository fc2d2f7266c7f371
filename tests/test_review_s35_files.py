"""Findings of the thirty-fifth session's review of saving, loading and resuming: a
damaged file's BatchNorm variance, header sizes far past the stored weights, and an
overflowed second moment that PyTorch keeps."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import backprop as bp


def _rewrite(path, tmp_path, edit):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    return bad


def test_load_refuses_a_negative_running_variance_as_load_state_dict_does(tmp_path):
    model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.BatchNorm(4), bp.Dense(4, 2, rng=1)])
    path = tmp_path / "m.npz"
    model.save(path)

    def negative(arrays):
        arrays["buffer/1.running_var"] = arrays["buffer/1.running_var"].copy()
        arrays["buffer/1.running_var"][0] = -1.0  # predict gave NaN, silently

    bad = _rewrite(path, tmp_path, negative)
    for load in (bp.load, bp.load_checkpoint):
        with pytest.raises(ValueError, match=r"bad\.npz'\): expected '1\.running_var' as "
                                             r"finite values >= 0, got 1 that are not"):
            load(bad)
    assert bp.load(path).buffers["1.running_var"].min() >= 0  # the good file still loads


@pytest.mark.parametrize("size", [10**8, 10**12])
def test_load_refuses_header_sizes_past_the_stored_weights_before_allocating(tmp_path, size):
    path = tmp_path / "m.npz"
    bp.Sequential([bp.Dense(3, 4, rng=0), bp.Dense(4, 2, rng=1)]).save(path)

    def huge(arrays):  # only the header changes: Dense(10**8, 4) took 3 GB, then failed
        header = json.loads(arrays["header"].tobytes())
        header["model"]["children"][0]["config"]["in_features"] = size
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)

    with pytest.raises(ValueError, match=r"expected a layer configuration whose weights the "
                                         r"file stores, got one that does not \(Dense: 'W' of "
                                         r"shape \(\d+, 4\) holds [\d,]+ weights, more than all "
                                         r"the file stores \(at most \d+\)"):
        bp.load(_rewrite(path, tmp_path, huge))

    def small(arrays):  # a smaller size is still the shape mismatch it was
        header = json.loads(arrays["header"].tobytes())
        header["model"]["children"][0]["config"]["in_features"] = 2
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)

    with pytest.raises(ValueError, match=r"expected param '0\.W' of shape \(2, 4\)"):
        bp.load(_rewrite(path, tmp_path, small))


def _overflowed_adam():
    rng = np.random.default_rng(0)  # finite float32 inputs whose gradient's square overflows
    x = (rng.standard_normal((64, 5)) * 1e21).astype(np.float32)
    y = rng.standard_normal((64, 2)).astype(np.float32)
    model = bp.Sequential([bp.Dense(5, 2, rng=0)])
    return model, bp.Adam(model.parameters(), lr=1e-3), x, y


def test_an_overflowed_second_moment_is_checkpointed_and_resumed_as_pytorch_keeps_it(tmp_path):
    path = tmp_path / "ck.npz"
    model, opt, x, y = _overflowed_adam()
    model.fit(x, y, loss=bp.MeanAbsoluteError(), optimizer=opt, epochs=2, seed=0,
              progress=False, callbacks=[bp.ModelCheckpoint(path, monitor="loss")])
    state = opt.state_dict()
    v = state["state"]["0.W"]["exp_avg_sq"]
    assert np.isposinf(v).any() and np.isfinite(model.flat_params).all()
    opt.load_state_dict(state)  # its own state reloads (torch's Adam accepts it too)
    model2, opt2, _, _ = _overflowed_adam()
    model2.fit(x, y, loss=bp.MeanAbsoluteError(), optimizer=opt2, epochs=3, seed=0,
               progress=False, resume=path, callbacks=[bp.ModelCheckpoint(path, monitor="loss")])
    assert np.isfinite(model2.flat_params).all()
    for key, value, message in (("exp_avg_sq", np.nan, "finite or \\+inf, got NaN or -inf"),
                                ("exp_avg_sq", -np.inf, "finite or \\+inf, got NaN or -inf"),
                                ("exp_avg", np.inf, "exp_avg to be finite, got NaN or inf")):
        damaged = copy.deepcopy(state)
        damaged["state"]["0.W"][key][...] = value
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict(damaged)


@bp.register_layer
class _F64Dense(bp.Layer):
    """A layer of one's own whose constructor builds float64 (it takes no dtype)."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__(dtype=np.float64)
        self.n, self.m = n, m
        self.init_param("W", "glorot_uniform", (n, m), np.random.default_rng(0))

    def forward(self, x, *, training=False):
        if training:
            self._x = x
        return x @ self.params["W"]

    def backward(self, dy):
        self.grads["W"][...] = self._x.T @ dy
        return dy @ self.params["W"].T


@bp.register_layer
class _DottedStats(bp.Layer):
    """A layer of one's own with a dot in a buffer's name."""

    def __init__(self, n: int, *, dtype: object = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.n = n
        self.buffers["run.mean"] = np.zeros(n, dtype)

    def forward(self, x, *, training=False):
        return x

    def backward(self, dy):
        return dy


def test_load_budget_counts_weights_not_the_constructors_bytes(tmp_path):
    # the rebuild makes float64 weights that the file stores (and build casts) as float32
    model = bp.Sequential([_F64Dense(200, 300)]).astype(np.float32)
    model.save(tmp_path / "m.npz")
    back = bp.load(tmp_path / "m.npz")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.flat_params, model.flat_params)


def test_load_finds_the_owner_of_a_buffer_with_a_dot_in_its_name(tmp_path):
    model = bp.Sequential([bp.Dense(3, 3, rng=0), _DottedStats(3)])
    model.buffers["1.run.mean"][...] = 2.0
    model.save(tmp_path / "m.npz")
    back = bp.load(tmp_path / "m.npz")  # a bare KeyError: '1.run'
    np.testing.assert_array_equal(back.buffers["1.run.mean"], 2.0)
    back.load_state_dict(model.state_dict())
