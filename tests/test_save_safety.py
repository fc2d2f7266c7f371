"""Saving never writes a file load cannot read, never replaces what is not a regular file,
and leaves nothing behind; resuming refuses what would move state to other layers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop import _atomic


@bp.register_layer
class SelfBuilt(bp.Container):
    """A block that builds its own children (PyTorch's habit) but keeps its argument under
    another name: load cannot rebuild it (it would pass the children as ``width``)."""

    def __init__(self, width, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self._w = width
        self.fc1, self.fc2 = bp.Dense(width, width, rng=0), bp.Dense(width, width, rng=1)

    def children(self):
        return [("fc1", self.fc1), ("fc2", self.fc2)]

    def forward(self, x, *, training=False):
        return self.fc2.forward(self.fc1.forward(x, training=training), training=training)

    def backward(self, dy):
        return self.fc1.backward(self.fc2.backward(dy))


@bp.register_layer
class Renamed(bp.Layer):
    """Stores its constructor argument ``features`` as ``n``: get_config cannot find it."""

    def __init__(self, features, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.n = features
        self.add_param("w", np.ones(features, self.dtype))

    def forward(self, x, *, training=False):
        return x * self.params["w"]

    def backward(self, dy):
        raise NotImplementedError


def data(n=16):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype(np.float32), np.arange(n) % 2


@pytest.mark.parametrize("first", [lambda: SelfBuilt(4), lambda: Renamed(4)])
def test_a_model_load_could_not_rebuild_is_refused_by_save_and_before_training(tmp_path, first):
    """It used to be written every epoch and fail only in load."""
    model = bp.Sequential([first(), bp.Dense(4, 2, rng=2)])
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=r"save\('.*m.npz'\): cannot rebuild .* Nothing was "
                                         r"written \(.*\): load rebuilds each layer as "
                                         r"cls\(\*\*layer.get_config\(\)\)"):
        bp.save(model, path)
    assert not path.exists() and os.listdir(tmp_path) == []
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match=r"ModelCheckpoint: cannot rebuild .* Nothing was "
                                         r"written \((SelfBuilt|Renamed) \(0\) keeps no "
                                         r"attribute named '(width|features)'\): .* builds "
                                         r"them itself"):
        model.fit(*data(), loss=bp.SoftmaxCrossEntropy(), progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1),
                  callbacks=[bp.ModelCheckpoint(path, monitor="loss")])
    np.testing.assert_array_equal(model.flat_params, before)  # refused before any step
    assert not path.exists()


def test_a_model_is_rebuilt_once_not_at_every_checkpoint(tmp_path, monkeypatch):
    from backprop import serialization

    built = []
    real = serialization.build
    monkeypatch.setattr(serialization, "build", lambda *a: built.append(1) or real(*a))
    model = bp.Sequential([bp.Dense(4, 4, rng=0), bp.Dropout(0.5, rng=1), bp.Dense(4, 2, rng=2)])
    model.fit(*data(), loss=bp.SoftmaxCrossEntropy(), progress=False, epochs=3, batch_size=4,
              optimizer=bp.SGD(model.parameters(), lr=0.1),
              callbacks=[bp.ModelCheckpoint(tmp_path / "c-{epoch}.npz", monitor="loss")])
    assert len(built) == 1  # at train begin; the Dropout's Generator changes, its layout not
    assert len(list(tmp_path.glob("c-*.npz"))) == 3
    bp.save(bp.Sequential([bp.Dense(4, 2)]), tmp_path / "other.npz")
    assert len(built) == 2  # another model


def test_save_writes_into_a_fifo_and_never_replaces_it(tmp_path):
    """Renaming over a device or FIFO (``--output /dev/null`` as root) replaced it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    bp.save(model, fifo)
    reader.join(timeout=10)
    assert not fifo.is_file() and fifo.exists()  # still the FIFO
    (tmp_path / "copy.npz").write_bytes(got[0])
    np.testing.assert_array_equal(bp.load(tmp_path / "copy.npz")[0].params["W"],
                                  model[0].params["W"])


def test_a_file_name_near_the_length_limit_saves(tmp_path):
    """The temporary name used to add the target's name plus 14 bytes: over 255."""
    path = tmp_path / ("L" * 246 + ".npz")
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    bp.save(model, path)
    np.testing.assert_array_equal(bp.load(path)[0].params["W"], model[0].params["W"])


@pytest.mark.skipif(os.name != "posix", reason="pids are tested with signal 0 on POSIX")
def test_save_removes_what_a_killed_save_left_and_nothing_else(tmp_path):
    done = subprocess.run([sys.executable, "-c", "pass"], check=True)  # noqa: S603
    del done
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    gone.wait()
    old = time.time() - 3600
    left = tmp_path / f".bp-{gone.pid}-0123abcd.tmp"  # a killed save's
    fresh = tmp_path / f".bp-{gone.pid}-4567cdef.tmp"  # too recent to be sure
    live = tmp_path / f".bp-{os.getpid()}-89abcdef.tmp"  # a save in progress
    mine = tmp_path / ".bp-notes.tmp"  # not ours
    for p in (left, fresh, live, mine):
        p.write_bytes(b"x")
    for p in (left, live, mine):
        os.utime(p, (old, old))
    bp.save(bp.Sequential([bp.Dense(3, 2, rng=0)]), tmp_path / "m.npz")
    assert not left.exists()
    assert fresh.exists() and live.exists() and mine.exists()
    assert not _atomic._alive(gone.pid) and _atomic._alive(os.getpid())


def test_model_checkpoint_refuses_a_read_only_file_before_training(tmp_path, monkeypatch):
    """(root may write any file: the file's answer is stood in for.)"""
    from backprop.callbacks import checkpoint

    path = tmp_path / "c.npz"
    path.write_bytes(b"old")
    real = os.access
    monkeypatch.setattr(checkpoint.os, "access",
                        lambda p, mode: False if str(p) == str(path) else real(p, mode))
    model = bp.Sequential([bp.Dense(4, 2, rng=0)])
    with pytest.raises(ValueError, match=r"ModelCheckpoint: expected path to name a writable "
                                         r"file, got .*c.npz', an existing read-only file"):
        model.fit(*data(), loss=bp.SoftmaxCrossEntropy(), progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1),
                  callbacks=[bp.ModelCheckpoint(path, monitor="loss")])
    assert path.read_bytes() == b"old"


def _net():
    return bp.Sequential([bp.Dense(4, 4, rng=0), bp.ReLU(), bp.Dense(4, 4, rng=1)])


def test_resume_refuses_an_optimizer_over_other_parameters(tmp_path):
    """Frozen layers: the state of the layer trained before must not move to another of the
    same shape (both are "0.W" within their slices)."""
    x, y = data()
    y = np.arange(len(x)) % 4
    path = tmp_path / "c.npz"
    model = _net()
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), progress=False, epochs=2,
              optimizer=bp.Adam(model[2:].parameters()),
              callbacks=[bp.ModelCheckpoint(path, monitor="loss")])
    other = _net()
    before = other.flat_params.copy()
    with pytest.raises(ValueError, match=r"fit: expected an optimizer over the parameters the "
                                         r"checkpointed run trained, \['2.W', '2.b'\], got one "
                                         r"over \['0.W', '0.b'\]"):
        other.fit(x, y, loss=bp.SoftmaxCrossEntropy(), progress=False, epochs=4, resume=path,
                  optimizer=bp.Adam(other[:1].parameters()),
                  callbacks=[bp.ModelCheckpoint(tmp_path / "d.npz", monitor="loss")])
    np.testing.assert_array_equal(other.flat_params, before)
    same = _net()  # the same layers trained: resumes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = same.fit(x, y, loss=bp.SoftmaxCrossEntropy(), progress=False, epochs=3,
                           resume=path, optimizer=bp.Adam(same[2:].parameters()),
                           callbacks=[bp.ModelCheckpoint(tmp_path / "d.npz", monitor="loss")])
    assert len(history.history["loss"]) == 3


def test_resume_from_a_checkpoint_at_or_past_epochs_warns(tmp_path):
    x, y = data()
    path = tmp_path / "c.npz"
    model = _net()
    model.fit(x, y % 4, loss=bp.SoftmaxCrossEntropy(), progress=False, epochs=3,
              optimizer=bp.SGD(model.parameters(), lr=0.1),
              callbacks=[bp.ModelCheckpoint(path, monitor="loss")])
    again = _net()
    with pytest.warns(UserWarning, match=r"fit: the checkpoint is at epoch 3 and epochs=2: "
                                         r"nothing to train .*epochs=5\)"):
        again.fit(x, y % 4, loss=bp.SoftmaxCrossEntropy(), progress=False, epochs=2,
                  resume=path, optimizer=bp.SGD(again.parameters(), lr=0.1),
                  callbacks=[bp.ModelCheckpoint(tmp_path / "d.npz", monitor="loss")])
    np.testing.assert_array_equal(again.flat_params, model.flat_params)


def _with_member(src, dst, name, data):
    """``src`` with member ``name`` set to ``data``, deflated, into ``dst``."""
    import zipfile
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename != name + ".npy":  # replaced
                zout.writestr(item, zin.read(item.filename))
        buf = __import__("io").BytesIO()
        np.save(buf, data)
        zout.writestr(name + ".npy", buf.getvalue())


def test_load_never_reads_members_its_header_does_not_name(tmp_path, monkeypatch):
    """A review hid a deflated 800 MB array of zeros (a 0.8 MB file) beside a checkpoint:
    load decompressed every member first (3.7 s, +763 MB) and then loaded the model."""
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    model.save(tmp_path / "m.npz")
    _with_member(tmp_path / "m.npz", tmp_path / "junk.npz", "junk", np.zeros(10, np.float32))
    read = []
    real = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__",
                        lambda self, key: read.append(key) or real(self, key))
    loaded = bp.load(tmp_path / "junk.npz")
    np.testing.assert_array_equal(loaded[0].params["W"], model[0].params["W"])
    assert "junk" not in read and "header" in read


def test_load_refuses_a_member_that_expands_far_beyond_its_compressed_size(tmp_path):
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    model.save(tmp_path / "m.npz")
    _with_member(tmp_path / "m.npz", tmp_path / "bomb.npz", "param/0.W",
                 np.zeros(20 << 20, np.float32))  # 80 MB of zeros
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"its members up to 'param/0.W' expand to "
                                         r"83,886,\d+ bytes from [\d,]+: save stores arrays "
                                         r"uncompressed"):
        bp.load(tmp_path / "bomb.npz")


def test_load_refuses_an_expansion_spread_over_many_named_members(tmp_path):
    """The guard counts every member read: twelve of 8 MB of zeros each passed one by one."""
    import zipfile
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    state = {f"a{i}": np.zeros(2 << 20, np.float32) for i in range(12)}
    bp.save(model, tmp_path / "m.npz", training_state=state)
    assert set(bp.load_checkpoint(tmp_path / "m.npz").training_state) == set(state)  # stored
    with zipfile.ZipFile(tmp_path / "m.npz") as zin, zipfile.ZipFile(
            tmp_path / "deflated.npz", "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
    assert (tmp_path / "deflated.npz").stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"its members up to 'training/.*' expand to "
                                         r"[\d,]+ bytes from [\d,]+: save stores arrays"):
        bp.load_checkpoint(tmp_path / "deflated.npz")


def test_load_takes_members_stored_without_the_npy_suffix(tmp_path):
    """NumPy's npz reader takes 'param/0.W' as well as 'param/0.W.npy'; the size guard
    looked up only the latter (a bare KeyError)."""
    import zipfile
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as zin, zipfile.ZipFile(
            tmp_path / "bare.npz", "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename.removesuffix(".npy"), zin.read(item.filename))
    np.testing.assert_array_equal(bp.load(tmp_path / "bare.npz")[0].params["W"],
                                  model[0].params["W"])


def test_a_header_asking_for_more_memory_than_there_is_is_a_value_error(tmp_path, monkeypatch):
    import backprop._layer_tree as tree
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    model.save(tmp_path / "m.npz")

    def no_memory(*args, **kwargs):
        raise MemoryError("bp: cannot allocate 'W' of 37,252.9 GiB")
    monkeypatch.setattr(tree, "_construct", no_memory)
    with pytest.raises(ValueError, match=r"expected a layer configuration that fits in memory, "
                                         r"got one that does not \(bp: cannot allocate"):
        bp.load(tmp_path / "m.npz")


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_a_failed_write_names_the_file_and_says_what_was_kept(tmp_path, monkeypatch, where):
    """Disk full or an I/O error came out as a bare OSError without the file's name."""
    import errno
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    model.save(tmp_path / "m.npz")
    before = (tmp_path / "m.npz").read_bytes()

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC if where == "fsync" else errno.EIO,
                      os.strerror(errno.ENOSPC if where == "fsync" else errno.EIO))
    monkeypatch.setattr(_atomic.os, where, fail)
    cause = "No space left on device" if where == "fsync" else "Input/output error"
    with pytest.raises(OSError, match=rf"save: cannot write '.*m\.npz' \({cause}; the "
                                      r"previous file is unchanged\)") as info:
        model.save(tmp_path / "m.npz")
    assert info.value.errno in (errno.ENOSPC, errno.EIO)
    with pytest.raises(OSError, match=rf"save: cannot write '.*new\.npz' \({cause}; nothing "
                                      r"was written\)"):
        model.save(tmp_path / "new.npz")
    assert (tmp_path / "m.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary left


def test_a_failed_write_without_an_errno_is_still_named(tmp_path, monkeypatch):
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])

    class Odd(OSError):  # an OSError subclass whose constructor takes one argument
        def __init__(self, message):
            super().__init__(message)

    for err, cause in ((OSError("boom"), "boom"), (OSError(), "OSError"), (Odd("odd"), "odd")):
        def fail(*args, err=err):
            raise err
        monkeypatch.setattr(_atomic.os, "replace", fail)
        with pytest.raises(OSError, match=rf"^save: cannot write '.*m\.npz' \({cause}; "
                                          r"nothing was written\)$"):
            model.save(tmp_path / "m.npz")
