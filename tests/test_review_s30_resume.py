"""Review s30: checkpoints and resuming (bad members, bad headers, mismatch messages, and
resume equivalence for a CNN and an LSTM under per-step and per-epoch schedules)."""

import io
import json
import zipfile

import numpy as np
import pytest

import backprop as bp


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _checkpoint(tmp_path, hidden=8):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6)).astype(np.float32), np.arange(40) % 3
    model = bp.Sequential([bp.Dense(6, hidden, rng=1), bp.BatchNorm(hidden), bp.ReLU(),
                           bp.Dense(hidden, 3, rng=2)])
    path = tmp_path / f"c{hidden}.npz"
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters()),
              epochs=1, seed=0, progress=False, callbacks=[bp.ModelCheckpoint(path)])
    return path, x, y


def _rewrite(src, dst, replace):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            out.writestr(name, replace.get(name, z.read(name)))
    return dst


@pytest.mark.parametrize("member", ["param/0.W.npy", "optimizer/state/0.W/exp_avg.npy"])
@pytest.mark.parametrize("content", [b"", b"garbage, not an array"])
def test_a_member_that_is_not_an_npy_array_is_a_value_error(tmp_path, member, content):
    # NumPy hands back the raw bytes of such a member: load met them as an array
    # (AttributeError: 'bytes' object has no attribute 'shape'), or kept them as optimizer
    # state without a word
    path, _, _ = _checkpoint(tmp_path)
    bad = _rewrite(path, tmp_path / "bad.npz", {member: content})
    for load in (bp.load, bp.load_checkpoint):
        with pytest.raises(ValueError, match=rf"{load.__name__}\(.*bad.npz'\): expected a "
                                             r"complete backprop .npz.*is not a .npy array"):
            load(bad)


def test_load_npz_refuses_a_member_that_is_not_an_npy_array(tmp_path):
    path = tmp_path / "d.npz"
    arrays = {"x_train": np.zeros((4, 2)), "y_train": np.arange(4) % 2,
              "x_test": np.zeros((2, 2)), "y_test": np.arange(2)}
    with zipfile.ZipFile(path, "w") as z:
        for k, v in arrays.items():
            z.writestr(f"{k}.npy", b"hello" if k == "x_train" else _npy(v))
    with pytest.raises(ValueError, match=r"load_npz\(.*'x_train' is not a .npy array"):
        bp.datasets.load_npz(path)


def test_a_header_of_the_wrong_kind_is_named(tmp_path):
    path, _, _ = _checkpoint(tmp_path)
    bad = _rewrite(path, tmp_path / "bad.npz", {"header.npy": _npy(np.arange(3))})
    with pytest.raises(ValueError, match=r"got a 'header' of dtype int64 and shape \(3,\)"):
        bp.load_checkpoint(bad)
    # a newer backprop_version of the same format version loads; a newer format does not
    with zipfile.ZipFile(path) as z:
        header = json.loads(np.load(io.BytesIO(z.read("header.npy"))).tobytes())
    header["format_version"] += 1
    text = np.frombuffer(json.dumps(header).encode(), np.uint8)
    newer = _rewrite(path, tmp_path / "newer.npz", {"header.npy": _npy(text)})
    with pytest.raises(ValueError, match=r"load_checkpoint.*format version 1, got 2; upgrade"):
        bp.load_checkpoint(newer)


def test_resume_of_another_architecture_names_the_first_differing_parameter(tmp_path):
    path, x, y = _checkpoint(tmp_path, hidden=16)
    model = bp.Sequential([bp.Dense(6, 8, rng=1), bp.BatchNorm(8), bp.ReLU(),
                           bp.Dense(8, 3, rng=2)])
    with pytest.raises(ValueError, match=r"fit: expected a checkpoint of this model's "
                                         r"architecture, got one that holds '0.W' of shape "
                                         r"\(6, 16\) where this model has '0.W' of shape \(6, 8\)"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters()),
                  epochs=2, progress=False, callbacks=[bp.ModelCheckpoint(path)], resume=path)


def _cnn():
    return bp.Sequential([bp.Conv2D(1, 3, 3, padding=1, rng=1), bp.BatchNorm(3), bp.ReLU(),
                          bp.MaxPool2D(2), bp.Flatten(), bp.Dropout(0.2, rng=2),
                          bp.Dense(12, 3, rng=3)])


def _lstm():
    return bp.Sequential([bp.LSTM(4, 6, return_sequences=False, rng=1), bp.Dropout(0.2, rng=2),
                          bp.Dense(6, 3, rng=3)])


@pytest.mark.parametrize("build, shape", [(_cnn, (30, 1, 4, 4)), (_lstm, (30, 5, 4))])
@pytest.mark.parametrize("per_step", [True, False])
def test_resume_from_a_file_in_fresh_objects_continues_bit_for_bit(tmp_path, build, shape,
                                                                   per_step):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(shape).astype(np.float32), rng.integers(0, 3, shape[0])
    path = tmp_path / "c.npz"

    def fit(epochs, extra=(), resume=None):
        model = build()
        if per_step:
            opt = bp.SGD(model.parameters(), lr=0.05, momentum=0.9)
            schedule = bp.LearningRateScheduler(bp.OneCycleLR(0.1, total_steps=4 * 3))
        else:
            opt = bp.Adam(model.parameters(), lr=0.01)
            schedule = bp.ReduceLROnPlateau("loss", patience=0, factor=0.5, threshold=0.05)
        history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt,
                            epochs=epochs, batch_size=10, seed=7, progress=False,
                            callbacks=[schedule, *extra], resume=resume)
        return model, history

    whole, whole_history = fit(4)
    fit(2, [bp.ModelCheckpoint(path)])
    resumed, history = fit(4, [bp.ModelCheckpoint(path)], resume=path)
    assert np.array_equal(resumed.flat_params, whole.flat_params)
    for k, v in whole.buffers.items():
        assert np.array_equal(resumed.buffers[k], v)
    assert history.history == whole_history.history and history.epoch == [0, 1, 2, 3]
