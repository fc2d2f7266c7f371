"""Saving and loading: exact round trips, refused files, atomic writes that survive SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from table import LAYERS

import backprop as bp
from backprop.layers.base import Container
from backprop.serialization import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[1]


def small_model(dtype=np.float32) -> bp.Sequential:
    return bp.Sequential([bp.Dense(4, 8, dtype=dtype, rng=0), bp.Tanh(dtype=dtype),
                          bp.Dense(8, 3, dtype=dtype, rng=1)])


def wrap(layer: bp.Layer) -> bp.Sequential:
    return layer if isinstance(layer, bp.Sequential) else bp.Sequential([layer])


def draw(case, dtype, n=None):
    shape = case.in_shape if n is None else (n, *case.in_shape[1:])
    return case.draw(np.random.default_rng(1), shape).astype(dtype)


def read_raw(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def header_of(arrays) -> dict:
    return json.loads(arrays["header"].tobytes().decode())


def write_raw(path, arrays, header=None) -> None:
    if header is not None:
        arrays = {**arrays, "header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    np.savez(path, **arrays)


def classes_in(layer: bp.Layer) -> set[type]:
    found = {type(layer)}
    for _, child in layer.children():
        found |= classes_in(child)
    return found


# -- round trips ------------------------------------------------------------------------------


def _exported_layers() -> set[type]:
    exported = {getattr(bp.layers, n) for n in bp.layers.__all__}
    exported = {c for c in exported if isinstance(c, type) and issubclass(c, bp.Layer)}
    return exported - {bp.Layer, Container}


def test_table_covers_every_exported_layer():
    covered = set().union(*(classes_in(c.make(np.float32)) for c in LAYERS))
    missing = _exported_layers() - covered
    assert not missing, f"add these layers to tests/table.py: {missing}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_round_trip_gives_identical_params_buffers_and_predictions(tmp_path, case, dtype):
    model = wrap(case.make(dtype))
    x = draw(case, dtype)
    model.forward(x, training=True)  # moves BatchNorm running stats, draws dropout masks
    model.clear_cache()
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model) and loaded.dtype == model.dtype
    for store in ("params", "buffers"):
        got, want = getattr(loaded, store), getattr(model, store)
        assert list(got) == list(want)
        for k in want:
            assert got[k].dtype == want[k].dtype
            np.testing.assert_array_equal(got[k], want[k])
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    # the rng state (dropout) travels too: the next training forward is the same
    np.testing.assert_array_equal(loaded.forward(x, training=True), model.forward(x, training=True))


def everything_model(dt) -> bp.Sequential:
    """One CNN holding a layer of every family, a Residual(Sequential) and two BatchNorms."""
    return bp.Sequential([
        bp.Conv2D(1, 4, 3, padding=1, dtype=dt, rng=0), bp.BatchNorm(4, dtype=dt),
        bp.ZeroPad2D((1, 0, 0, 1), dtype=dt), bp.ReflectionPad2D((0, 1, 1, 0), dtype=dt),
        bp.ReplicationPad2D((-1, 0, -1, 0), dtype=dt), bp.CircularPad2D((0, -1, 0, -1), dtype=dt),
        bp.ConstantPad2D((1, -1, 0, 0), 0.5, dtype=dt), bp.PixelUnshuffle(2, dtype=dt),
        bp.PixelShuffle(2, dtype=dt),
        bp.Unflatten(1, (1, 4), dtype=dt), bp.Conv3D(1, 1, 3, padding=1, dtype=dt, rng=10),
        bp.ConvTranspose3D(1, 1, 3, padding=1, dtype=dt, rng=11),
        bp.MaxPool3D(3, 1, 1, dtype=dt), bp.AvgPool3D(3, 1, 1, dtype=dt),
        bp.AdaptiveAvgPool3D((4, None, None), dtype=dt),
        bp.AdaptiveMaxPool3D((None, None, None), dtype=dt),
        bp.ZeroPad3D((1, 0, 0, 1, 1, 0), dtype=dt),
        bp.CircularPad3D((0, -1, -1, 0, 0, -1), dtype=dt),
        bp.ReflectionPad3D((0, 1, 1, 0, 0, 1), dtype=dt),
        bp.ReplicationPad3D((-1, 0, 0, -1, -1, 0), dtype=dt),
        bp.ConstantPad3D((1, -1, 0, 0, -1, 1), 0.5, dtype=dt),
        bp.Dropout3D(0.25, rng=12, dtype=dt),
        bp.InstanceNorm3D(1, affine=True, track_running_stats=True, dtype=dt),
        bp.Flatten(1, 2, dtype=dt),  # volumes (N, 1, 4, H, W) and back
        bp.ReLU(dtype=dt),
        bp.Residual(bp.Sequential([bp.Conv2D(4, 4, 3, padding=1, dtype=dt, rng=1),
                                   bp.BatchNorm(4, dtype=dt), bp.GELU(dtype=dt)])),
        bp.GroupNorm(2, 4, dtype=dt),
        bp.ChannelShuffle(2, dtype=dt), bp.LocalResponseNorm(3, 0.1, dtype=dt),
        bp.Unfold((3, 2), padding=1, stride=(1, 2), dtype=dt),  # and back: x times overlaps
        bp.Fold((8, 4), (3, 2), padding=1, stride=(1, 2), dtype=dt),
        bp.LPPool2D(2, (2, 1), 1, ceil_mode=True, dtype=dt),  # H 8 -> 7
        bp.InstanceNorm2D(4, affine=True, track_running_stats=True, dtype=dt),
        bp.Dropout2D(0.3, rng=7, dtype=dt), bp.FeatureAlphaDropout(0.2, rng=21, dtype=dt),
        bp.ConvTranspose2D(4, 4, 3, padding=1, dtype=dt, rng=5),
        bp.Upsample(scale_factor=(1, 2), mode="bilinear", dtype=dt),
        bp.AdaptiveMaxPool2D((None, 5), dtype=dt), bp.AdaptiveAvgPool2D((8, 4), dtype=dt),
        bp.MaxPool2D(2, dtype=dt), bp.AvgPool2D((2, 1), 1, dtype=dt),
        bp.Dropout(0.2, rng=2, dtype=dt),
        bp.Flatten(dtype=dt), bp.Unflatten(1, (2, -1), dtype=dt), bp.Flatten(dtype=dt),
        bp.Reshape((6, 4), dtype=dt), bp.Permute((2, 1), dtype=dt),
        bp.Masking(dtype=dt),  # its mask ends in an LSTM's last step, (N, 24), back to (4, 6)
        bp.LSTM(6, 24, return_sequences=False, dtype=dt, rng=24), bp.Reshape((4, 6), dtype=dt),
        bp.LSTM(6, 6, dtype=dt, rng=13), bp.GRU(6, 6, dtype=dt, rng=14),  # (N, T=4, 6)
        bp.RNN(6, 6, nonlinearity="relu", dtype=dt, rng=15),
        bp.Bidirectional(bp.GRU(6, 3, dtype=dt, rng=18), rng=19),  # 2 x 3 features: 6 again
        bp.MultiheadAttention(6, 2, causal=True, dropout=0.2, dtype=dt, rng=16),
        bp.PositionalEmbedding(5, 6, dtype=dt, rng=17),
        bp.ZeroPad1D((1, -1), dtype=dt), bp.ConstantPad1D((-1, 1), 0.25, dtype=dt),
        bp.ReflectionPad1D((1, -1), dtype=dt), bp.ReplicationPad1D((-1, 1), dtype=dt),
        bp.CircularPad1D((1, -1), dtype=dt),
        bp.Conv1D(4, 2, 3, dtype=dt, rng=3),
        bp.ConvTranspose1D(2, 2, 3, padding=1, dtype=dt, rng=6),
        bp.InstanceNorm1D(2, momentum=None, track_running_stats=True, dtype=dt),
        bp.Dropout1D(0.2, rng=8, dtype=dt),
        bp.Upsample(scale_factor=1.5, mode="linear", dtype=dt), bp.AdaptiveMaxPool1D(5, dtype=dt),
        bp.AdaptiveAvgPool1D(4, dtype=dt),
        bp.MaxPool1D(2, dtype=dt), bp.AvgPool1D(1, dtype=dt), bp.LPPool1D(2, 1, dtype=dt),
        bp.LayerNorm((2, 2), dtype=dt),
        bp.RMSNorm(2, dtype=dt),
        bp.GlobalAvgPool(dtype=dt), bp.Dense(2, 3, dtype=dt, rng=4), bp.PReLU(3, 0.1, dtype=dt),
        bp.LeakyReLU(0.1, dtype=dt), bp.RReLU(rng=22, dtype=dt),
        bp.AlphaDropout(0.1, rng=23, dtype=dt),
        bp.ELU(dtype=dt), bp.SiLU(dtype=dt), bp.Softplus(2.0, 5.0, dtype=dt),
        bp.Sigmoid(dtype=dt), bp.Identity(dtype=dt), bp.Tanh(dtype=dt),
        bp.ReLU6(dtype=dt), bp.Hardtanh(-2.0, 2.0, dtype=dt), bp.Hardsigmoid(dtype=dt),
        bp.Hardswish(dtype=dt), bp.SELU(dtype=dt), bp.CELU(0.5, dtype=dt), bp.Mish(dtype=dt),
        bp.Softsign(dtype=dt), bp.LogSoftmax(dtype=dt), bp.Softmax(dtype=dt),
        bp.LogSigmoid(dtype=dt), bp.Tanhshrink(dtype=dt), bp.Softshrink(0.1, dtype=dt),
        bp.Hardshrink(0.05, dtype=dt), bp.Threshold(-0.5, 0.25, dtype=dt),
        bp.Softmin(dtype=dt), bp.Dense(3, 6, dtype=dt, rng=9), bp.GLU(dtype=dt),  # 6 -> 3
    ])


def _step_save_step(tmp_path, model, make_opt, x, loss, target):
    """One training step, a checkpoint, then one more step of the model and of the
    loaded copy (with its optimizer restored): both pairs, ``(model, loaded)``."""
    opt = make_opt(model.parameters())

    def step(m, o):
        loss.forward(m.forward(x, training=True), target)
        m.backward(loss.backward(), input_grad=False)
        o.step()

    step(model, opt)
    model.save(tmp_path / "m.npz", optimizer=opt)
    ckpt = bp.load_checkpoint(tmp_path / "m.npz")
    opt2 = make_opt(ckpt.model.parameters())
    opt2.load_state_dict(ckpt.optimizer_state)
    np.testing.assert_array_equal(ckpt.model.forward(x), model.forward(x))
    for m, o in ((model, opt), (ckpt.model, opt2)):
        step(m, o)  # dropout masks, batch statistics and the moments all continue
    np.testing.assert_array_equal(ckpt.model.flat_params, model.flat_params)
    return model, ckpt.model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_model_starting_with_an_embedding_resumes_exactly(tmp_path, dtype):
    model = bp.Sequential([bp.Embedding(9, 4, padding_idx=0, dtype=dtype, rng=0),
                           bp.Flatten(dtype=dtype), bp.Dense(12, 3, dtype=dtype, rng=1)])
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 9, (6, 3)), rng.integers(0, 3, 6)
    model, loaded = _step_save_step(tmp_path, model, lambda p: bp.NAdam(p, lr=0.01), x,
                                    bp.SoftmaxCrossEntropy(), y)
    assert repr(loaded) == repr(model)
    assert not model.params["0.W"][0].any()  # the padding row never learnt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_with_every_layer_family_resumes_exactly(tmp_path, dtype):
    model = everything_model(dtype)
    # an Embedding takes indices, so it starts a model of its own (the test above)
    assert classes_in(model) | {bp.Embedding} >= set(_exported_layers())
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 1, 8, 4)).astype(dtype), rng.integers(0, 3, 5)
    model, loaded = _step_save_step(tmp_path, model, lambda p: bp.Adam(p, lr=0.01), x,
                                    bp.MeanSquaredError(), np.eye(3, dtype=dtype)[y])
    assert loaded.buffers.keys() == model.buffers.keys() and len(model.buffers) == 10  # 2 BN, 3 IN
    for k, v in model.buffers.items():
        np.testing.assert_array_equal(loaded.buffers[k], v)


def test_loaded_weights_live_in_the_flat_buffer(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    for p in loaded.parameters():
        assert np.shares_memory(p.value, loaded.flat_params)
    np.testing.assert_array_equal(loaded.flat_params, model.flat_params)


def test_nested_sequential_round_trip(tmp_path):
    inner = bp.Sequential([bp.Dense(3, 5, rng=2), bp.GELU()])
    model = bp.Sequential([inner, bp.Dense(5, 2, rng=3), bp.Sequential([])])
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert list(loaded.params) == ["0.0.W", "0.0.b", "1.W", "1.b"]


def test_save_writes_exactly_the_given_path(tmp_path):
    bp.save(small_model(), tmp_path / "model.weights")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.weights"]
    assert isinstance(bp.load(str(tmp_path / "model.weights")), bp.Sequential)


def test_file_layout_is_plain_arrays_and_json(tmp_path):
    bp.save(small_model(), tmp_path / "m.npz")
    arrays = read_raw(tmp_path / "m.npz")
    assert sorted(arrays) == ["header", "param/0.W", "param/0.b", "param/2.W", "param/2.b"]
    assert all(not a.dtype.hasobject for a in arrays.values())
    header = header_of(arrays)
    assert header["format"] == "backprop" and header["format_version"] == FORMAT_VERSION
    assert header["model"]["children"][0] == {
        "name": "0", "class": "Dense",
        "config": {"in_features": 4, "out_features": 8, "bias": True, "dtype": "float32"}}


def test_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        bp.save(small_model(), tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


# -- optimizer and training state ---------------------------------------------------------


def train_steps(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(steps):
        x = rng.standard_normal((8, 4)).astype(model.dtype)
        loss.forward(model.forward(x, training=True), rng.integers(0, 3, 8))
        model.backward(loss.backward(), input_grad=False)
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: bp.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: bp.Adam(p, lr=0.01, clip_norm=1.0),
    lambda p: bp.AdamW(p, lr=0.01, weight_decay=0.1),
    lambda p: bp.RMSProp(p, lr=0.01, momentum=0.5),
    lambda p: bp.Adagrad(p, lr=0.1),
    lambda p: bp.NAdam(p, lr=0.01, weight_decay=0.01),
    lambda p: bp.Adamax(p, lr=0.01),
    lambda p: bp.RAdam(p, lr=0.01),
    lambda p: bp.Adadelta(p),
], ids=["SGD", "Adam", "AdamW", "RMSProp", "Adagrad", "NAdam", "Adamax", "RAdam", "Adadelta"])
def test_optimizer_state_round_trip_continues_bit_for_bit(tmp_path, make_opt):
    model = small_model()
    opt = make_opt(model.parameters())
    train_steps(model, opt, 3, seed=0)
    bp.save(model, tmp_path / "c.npz", optimizer=opt)
    ckpt = bp.load_checkpoint(tmp_path / "c.npz")
    opt2 = make_opt(ckpt.model.parameters())
    opt2.load_state_dict(ckpt.optimizer_state)
    assert opt2.steps == opt.steps == 3
    train_steps(model, opt, 3, seed=1)
    train_steps(ckpt.model, opt2, 3, seed=1)
    np.testing.assert_array_equal(ckpt.model.flat_params, model.flat_params)


def test_training_state_round_trips_exactly(tmp_path):
    gen = np.random.default_rng(123)
    state = {"epoch": 4, "rng": gen.bit_generator.state, "best": float("inf"),
             "history": {"loss": [1.5, 0.5]}, "pair": (1, "a"), "mask": np.arange(3),
             "mt": np.random.MT19937(5).state, "note": None}
    bp.save(small_model(), tmp_path / "c.npz", training_state=state)
    ckpt = bp.load_checkpoint(tmp_path / "c.npz")
    got = ckpt.training_state
    assert ckpt.format_version == FORMAT_VERSION and ckpt.optimizer_state is None
    assert got["rng"] == state["rng"] and got["pair"] == (1, "a") and got["best"] == np.inf
    np.testing.assert_array_equal(got["mask"], state["mask"])
    np.testing.assert_array_equal(got["mt"]["state"]["key"], state["mt"]["state"]["key"])
    fresh = np.random.default_rng()
    fresh.bit_generator.state = got["rng"]
    assert fresh.random() == gen.random()


def test_save_rejects_unstorable_training_state_and_keeps_old_file(tmp_path):
    path = tmp_path / "c.npz"
    bp.save(small_model(), path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"training/fn.*function"):
        bp.save(small_model(), path, training_state={"fn": len})
    with pytest.raises(TypeError, match="string keys"):
        bp.save(small_model(), path, training_state={1: 2})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.npz"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    bp.save(small_model(), path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        bp.save(small_model(np.float64), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.npz"]


# -- custom layers ----------------------------------------------------------------------------


class Scale(bp.Layer):
    """y = x * s (a user layer with one parameter)."""

    def __init__(self, width: int, *, dtype=np.float32) -> None:
        super().__init__(dtype=dtype)
        self.width = width
        self.add_param("s", np.linspace(1, 2, width).astype(self.dtype))

    def forward(self, x, *, training=False):
        return x * self.params["s"]


def test_custom_layer_needs_registration(tmp_path, monkeypatch):
    monkeypatch.setattr("backprop._layer_tree._user_layers", {})
    model = bp.Sequential([bp.Dense(2, 3, rng=0), Scale(3)])
    with pytest.raises(TypeError, match=r"layer '1' is a Scale.*bp.register_layer\(Scale\)"):
        bp.save(model, tmp_path / "m.npz")
    assert bp.register_layer(Scale) is Scale
    model.layers[1].params["s"][...] = 7.0
    bp.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(bp.load(tmp_path / "m.npz")[1].params["s"], [7, 7, 7])
    monkeypatch.setattr("backprop._layer_tree._user_layers", {})
    with pytest.raises(ValueError, match=r"unknown layer class 'Scale' at 1.*"
                                         r"bp.register_layer\(Scale\) before loading"):
        bp.load(tmp_path / "m.npz")


def test_register_layer_as_decorator_and_its_errors(monkeypatch):
    monkeypatch.setattr("backprop._layer_tree._user_layers", {})

    @bp.register_layer(name="MyScale")
    class Scale2(Scale):
        pass

    assert bp.serialization.register_layer is bp.register_layer
    with pytest.raises(ValueError, match="built-in"):
        bp.register_layer(Scale2, name="Dense")
    with pytest.raises(TypeError, match="subclass of backprop.Layer"):
        bp.register_layer(dict)


# -- refused files ------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "m.npz"
    bp.save(small_model(), path, optimizer=bp.Adam(small_model().parameters()))
    return path


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        bp.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0, 10, 0.5, -30])
def test_truncated_file_is_a_clear_value_error(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=r"load\('.*m\.npz'\): .*truncated, corrupt"):
        bp.load(saved)


def test_corrupted_weight_bytes_fail_the_crc(saved):
    data = bytearray(saved.read_bytes())
    at = data.index(b"param/0.W.npy") + 200  # inside the weight data
    data[at] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.npz'\).*(CRC|corrupt)"):
        bp.load(saved)


def test_random_byte_flips_never_escape_as_other_errors(saved):
    reference = bp.load(saved)
    data = saved.read_bytes()
    rng = np.random.default_rng(0)
    for at in rng.integers(0, len(data), 150):
        bad = bytearray(data)
        bad[at] ^= 1 << int(rng.integers(0, 8))
        saved.write_bytes(bytes(bad))
        try:
            model = bp.load(saved)
        except ValueError:
            continue
        np.testing.assert_array_equal(model.flat_params, reference.flat_params)


def test_other_files_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "t.npz").write_text("hello")
    np.savez(tmp_path / "w.npz", W=np.zeros(3))
    for name, match in [("a.npy", "single .npy"), ("t.npz", "truncated, corrupt"),
                        ("w.npz", "with a 'header' array")]:
        with pytest.raises(ValueError, match=match):
            bp.load(tmp_path / name)


def test_other_format_version_is_refused(saved):
    arrays = read_raw(saved)
    odd = "versions start at 1: this file was not written by backprop's save"
    for version, hint in [(FORMAT_VERSION + 1, "upgrade backprop"), (0, odd), (-3, odd),
                          (True, odd), (float(FORMAT_VERSION), odd), ("1", odd)]:
        write_raw(saved, arrays, {**header_of(arrays), "format_version": version})
        with pytest.raises(ValueError, match=f"expected file format version {FORMAT_VERSION}, "
                                             f"got {version!r}; {hint}"):
            bp.load(saved)


def test_header_that_is_not_json_is_refused(saved):
    arrays = read_raw(saved)
    arrays["header"] = np.frombuffer(b"{not json", np.uint8)
    write_raw(saved, arrays)
    with pytest.raises(ValueError, match="expected a JSON header"):
        bp.load(saved)


class Evil:
    """Unpickling this would create a marker file: loading must never do it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("where", ["param/0.W", "header", "optimizer/state/0.W/exp_avg"])
def test_object_arrays_are_refused_and_never_unpickled(saved, tmp_path, where):
    marker = tmp_path / "pwned"
    arrays = read_raw(saved)
    arrays[where] = np.array([Evil(str(marker))], dtype=object)
    np.savez(saved, **arrays)  # allow_pickle=True by default: this pickles Evil
    assert not marker.exists()
    with pytest.raises(ValueError, match=r"m\.npz'\).*allow_pickle=False"):
        bp.load_checkpoint(saved)
    assert not marker.exists()


def test_config_not_matching_weights_is_refused(saved):
    arrays = read_raw(saved)
    header = header_of(arrays)
    header["model"]["children"][0]["config"]["out_features"] = 9
    header["model"]["children"][2]["config"]["in_features"] = 9
    write_raw(saved, arrays, header)
    with pytest.raises(ValueError, match=r"expected param '0.W' of shape \(4, 9\) and dtype "
                                         r"float32 .*got \(4, 8\) float32"):
        bp.load(saved)


def test_wrong_dtype_missing_and_extra_arrays_are_named(saved):
    arrays = read_raw(saved)
    write_raw(saved, {**arrays, "param/0.W": arrays["param/0.W"].astype(np.float64)})
    with pytest.raises(ValueError, match=r"'0.W' .*got \(4, 8\) float64"):
        bp.load(saved)
    less = {k: v for k, v in arrays.items() if k != "param/2.b"}
    write_raw(saved, {**less, "param/9.W": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match=r"missing \['2.b'\], unexpected \['9.W'\]"):
        bp.load(saved)


def test_bad_layer_config_is_a_clear_error(saved):
    arrays = read_raw(saved)
    header = header_of(arrays)
    header["model"]["children"][0]["config"]["colour"] = "red"
    write_raw(saved, arrays, header)
    with pytest.raises(ValueError, match=r"cannot rebuild Dense at 0 from config"):
        bp.load(saved)
    header["model"]["children"] = "nope"
    write_raw(saved, arrays, header)
    with pytest.raises(ValueError, match="expected a layer description at <model>"):
        bp.load(saved)


def test_missing_referenced_state_array_is_named(saved):
    arrays = read_raw(saved)
    del arrays["optimizer/state/0.W/exp_avg"]
    write_raw(saved, arrays)
    with pytest.raises(ValueError, match="expected an array 'optimizer/state/0.W/exp_avg'"):
        bp.load_checkpoint(saved)


# -- crash safety ----------------------------------------------------------------------------

SAVER = textwrap.dedent("""
    import sys
    import backprop as bp
    model = bp.Sequential([bp.Dense(256, 512, rng=0), bp.ReLU(), bp.Dense(512, 256, rng=1)])
    i = 0
    while True:
        i += 1
        model.flat_params[...] = i   # every weight of save number i equals i
        bp.save(model, sys.argv[1], training_state={"i": i})
        print(i, flush=True)
""")


def test_sigkill_during_save_leaves_old_or_new_complete_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outcomes = []
    for _ in range(10):
        with subprocess.Popen([sys.executable, "-c", SAVER, str(path)], env=env, text=True,
                              stdout=subprocess.PIPE) as proc:
            first = proc.stdout.readline()  # one complete save happened
            assert first.strip(), "the saver died before its first save"
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(proc.pid, signal.SIGKILL)
            last = int((first + proc.stdout.read()).split()[-1])
        assert proc.returncode == -signal.SIGKILL
        ckpt = bp.load_checkpoint(path)
        got = ckpt.training_state["i"]
        assert got in (last, last + 1)  # the last reported save, or one finished unreported
        assert np.all(ckpt.model.flat_params == got)
        stale = len(list(tmp_path.glob(".ckpt.npz.*.tmp")))  # one more: killed mid-write
        outcomes.append((last, got, stale))
    print("\nkills (last reported save, loaded save, stale temporaries):", outcomes)


def test_save_to_a_path_it_cannot_write_names_that_path(tmp_path):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    with pytest.raises(ValueError, match="save: expected a file path, got an empty one"):
        bp.save(model, "")
    with pytest.raises(IsADirectoryError, match=rf"save: expected a file path, got the folder "
                                                rf"'{tmp_path}'"):
        bp.save(model, tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"save: expected '{tmp_path}/nope/m.npz' in an "
                                                rf"existing folder, got no folder "
                                                rf"'{tmp_path}/nope'"):
        model.save(tmp_path / "nope" / "m.npz")
    assert list(tmp_path.iterdir()) == []  # no temporary left behind


def test_save_into_a_folder_it_may_not_write_names_the_file(tmp_path, monkeypatch):
    # a read-only folder, simulated (root, as in CI, may write anywhere)
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("backprop.serialization.os.open", refuse)
    with pytest.raises(PermissionError, match=rf"save: cannot write '{tmp_path}/m.npz' "
                                              rf"\(Permission denied; the file is written "
                                              rf"beside it first, then renamed\)"):
        bp.save(bp.Sequential([bp.Dense(2, 2, rng=0)]), tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_header_nested_too_deeply_is_a_clear_error(tmp_path):
    text = (f'{{"format": "backprop", "format_version": {FORMAT_VERSION}, "model": '
            + "[" * 100_000 + "]" * 100_000 + "}")
    np.savez(tmp_path / "deep.npz", header=np.frombuffer(text.encode(), np.uint8))
    with pytest.raises(ValueError, match=r"load\('.*deep.npz'\): expected a backprop header, "
                                         r"got one nested too deeply to read"):
        bp.load(tmp_path / "deep.npz")  # was a bare RecursionError


def test_loading_a_folder_says_it_is_one(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"load\('.*'\): expected a file, got a folder"):
        bp.load(tmp_path)  # used to say "no such file"


def test_nan_weights_are_neither_saved_over_a_good_file_nor_loaded(tmp_path):
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.BatchNorm(2)])
    path = tmp_path / "m.npz"
    model.save(path)
    good = path.read_bytes()
    model.params["0.W"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"save\('.*m.npz'\): expected finite weights, got 1 "
                                         r"NaN/inf value in param '0.W' \(a diverged model"):
        model.save(path)
    assert path.read_bytes() == good  # the last good file is intact
    arrays = dict(np.load(path))
    arrays["buffer/1.running_var"] = np.full(2, np.inf, np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"load\('.*bad.npz'\): expected finite weights, got 2 "
                                         r"NaN/inf values in buffer '1.running_var' \(a damaged"):
        bp.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("bad", [{"__ndarray__": [1]}, {"__ndarray__": 3}, {"__tuple__": 5},
                                 {"__tuple__": {"a": 1}}])
def test_a_crafted_array_or_tuple_marker_in_the_header_is_a_value_error(tmp_path, bad):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    model.save(tmp_path / "m.npz", optimizer=bp.SGD(model.parameters()))
    arrays = dict(np.load(tmp_path / "m.npz"))
    header = header_of(arrays)
    header["optimizer"]["state"] = bad
    write_raw(tmp_path / "bad.npz", arrays, header)
    with pytest.raises(ValueError, match=r"load_checkpoint\(.*bad\.npz'\): expected "
                                         r"(an array|a tuple)"):
        bp.load_checkpoint(tmp_path / "bad.npz")


def test_a_file_of_an_older_format_version_says_how_to_carry_its_weights(saved, monkeypatch):
    from backprop import serialization
    monkeypatch.setattr(serialization, "FORMAT_VERSION", FORMAT_VERSION + 1)  # a later backprop
    with pytest.raises(ValueError, match=rf"got {FORMAT_VERSION}; written by an older backprop: "
                                         r"load it there and np.savez its state_dict\(\)"):
        bp.load(saved)
