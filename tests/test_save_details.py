"""What saving and resuming keep besides the weights: shared Generators, the optimizer's
state, file permissions and links, checks made before training, and the run's settings."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import backprop as bp


def fit_once(model, x, y, path=None, **kwargs):
    callbacks = [bp.ModelCheckpoint(path, monitor="loss")] if path is not None else []
    options = {"epochs": 2, "batch_size": 8, "seed": 0, "progress": False, **kwargs}
    return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                     optimizer=bp.SGD(model.parameters(), lr=0.1, momentum=0.9),
                     callbacks=callbacks, **options)


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def test_a_generator_shared_by_two_dropouts_is_shared_again_after_load(tmp_path):
    """One rng for every layer is common; the loaded model must draw the same masks."""
    g = np.random.default_rng(0)
    model = bp.Sequential([bp.Dense(6, 6, rng=1), bp.Dropout(0.5, rng=g),
                           bp.Dense(6, 6, rng=2), bp.Dropout(0.5, rng=g)])
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded[1].rng is loaded[3].rng
    x = np.ones((4, 6), np.float32)
    for _ in range(2):  # the second forward follows the first's draws, in both
        np.testing.assert_array_equal(model.forward(x, training=True),
                                      loaded.forward(x, training=True))
    separate = bp.Sequential([bp.Dropout(0.5, rng=0), bp.Dropout(0.5, rng=0)])
    separate.save(tmp_path / "s.npz")
    again = bp.load(tmp_path / "s.npz")
    assert again[0].rng is not again[1].rng  # equal states, two Generators: kept apart


def test_a_non_finite_optimizer_state_is_not_saved_over_a_good_file(tmp_path):
    """load refuses such a state, so save must not write it (a checkpoint that cannot
    be resumed)."""
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    opt = bp.Adam(model.parameters())
    model.forward(np.ones((2, 2), np.float32), training=True)
    model.backward(np.ones((2, 2), np.float32))
    opt.step()
    path = tmp_path / "ckpt.npz"
    model.save(path, optimizer=opt)
    good = path.read_bytes()
    opt.load_state_dict(opt.state_dict())  # a sanity round trip of the finite state
    state = opt.state_dict()
    state["state"]["0.W"]["exp_avg_sq"][0, 0] = np.nan  # (+inf there is kept: torch's too)
    with pytest.raises(ValueError, match=r"expected finite values, got 1 NaN/inf value in "
                                         r"optimizer state '0.W/exp_avg_sq'"):
        model.save(path, optimizer=state)
    state = opt.state_dict()
    state["state"]["0.W"]["exp_avg"][0, 0] = np.inf  # a first moment: never inf
    with pytest.raises(ValueError, match=r"expected finite values, got 1 NaN/inf value in "
                                         r"optimizer state '0.W/exp_avg'"):
        model.save(path, optimizer=state)
    assert path.read_bytes() == good


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_saving_over_a_file_keeps_its_permissions_and_a_symlink_its_target(tmp_path):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    path = tmp_path / "m.npz"
    model.save(path)
    os.chmod(path, 0o600)  # a private checkpoint stays private
    model.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    link = tmp_path / "latest.npz"
    link.symlink_to(path)
    model.params["0.W"][...] = 7.0
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(path)
    np.testing.assert_array_equal(bp.load(path).params["0.W"], 7.0)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write read-only files")
def test_a_read_only_file_is_not_replaced(tmp_path):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    path = tmp_path / "m.npz"
    model.save(path)
    os.chmod(path, 0o444)
    good = path.read_bytes()
    with pytest.raises(PermissionError, match=r"save: cannot write '.*m.npz' \(the file is "
                                              r"read-only\)"):
        model.save(path)
    assert path.read_bytes() == good


def test_a_checkpoint_that_cannot_be_saved_fails_before_training(tmp_path):
    """An unregistered layer class used to fail at the end of the first epoch, after
    training had changed the weights."""
    class Unregistered(bp.Dense):
        pass

    model = bp.Sequential([Unregistered(6, 3, rng=0)])
    before = model.flat_params.copy()
    with pytest.raises(TypeError, match=r"Unregistered, which is not registered"):
        fit_once(model, *data(), path=tmp_path / "c.npz")
    np.testing.assert_array_equal(model.flat_params, before)
    assert not (tmp_path / "c.npz").exists()

    class Unsaveable(bp.Callback):
        def state_dict(self):
            return {"when": object()}

    model = bp.Sequential([bp.Dense(6, 3, rng=0)])
    before = model.flat_params.copy()
    with pytest.raises(TypeError, match=r"expected JSON-able data or arrays in training/"
                                        r"callbacks/1/state/when, got a value of type object"):
        model.fit(*data(), loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), epochs=1, progress=False,
                  callbacks=[bp.ModelCheckpoint(tmp_path / "c.npz", monitor="loss"),
                             Unsaveable()])
    np.testing.assert_array_equal(model.flat_params, before)


def test_resuming_with_another_batch_size_or_data_warns_and_the_same_does_not(tmp_path):
    x, y = data()
    path = tmp_path / "ckpt.npz"
    fit_once(bp.Sequential([bp.Dense(6, 3, rng=0)]), x, y, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings: silent
        fit_once(bp.Sequential([bp.Dense(6, 3, rng=0)]), x, y, path, epochs=3, resume=path)
    with pytest.warns(UserWarning, match=r"fit: resuming with other settings than the "
                                         r"checkpointed run \(batch_size=8 -> 16, samples=32 "
                                         r"-> 24\)") as record:
        fit_once(bp.Sequential([bp.Dense(6, 3, rng=0)]), x[:24], y[:24], path, epochs=4,
                 resume=path, batch_size=16)
    assert record[0].filename == __file__  # points at the user's line


def test_resume_restores_the_saved_learning_rate_as_documented(tmp_path):
    """The documented behaviour: the checkpoint's hyperparameters win (bit for bit); a
    lower lr needs the weights loaded alone, which the fit docstring says."""
    x, y = data()
    path = tmp_path / "ckpt.npz"
    fit_once(bp.Sequential([bp.Dense(6, 3, rng=0)]), x, y, path)
    model = bp.Sequential([bp.Dense(6, 3, rng=0)])
    opt = bp.SGD(model.parameters(), lr=0.001, momentum=0.9)
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=3, batch_size=8,
              progress=False, resume=path, callbacks=[bp.ModelCheckpoint(path, monitor="loss")])
    assert opt.lr == 0.1
    assert "hyperparameters (``lr``, ``clip_norm``, ...) come from the" in bp.fit.__doc__
    fresh = bp.Sequential([bp.Dense(6, 3, rng=0)])
    fresh.load_state_dict(bp.load(path).state_dict())  # the way the docstring gives
    np.testing.assert_array_equal(fresh.flat_params, model.flat_params)


def test_a_text_file_is_not_an_archive_and_the_error_does_not_suggest_unpickling(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello world\n")
    with pytest.raises(ValueError, match=r"not a zip archive \(the file starts with "
                                         r"b'hello '\)\)$") as info:
        bp.load(path)
    assert "pickle" not in str(info.value)
    with pytest.raises(ValueError, match=r"not a zip archive"):
        bp.datasets.load_npz(path)


def test_load_state_dict_refuses_float64_values_beyond_float32_instead_of_making_inf():
    layer = bp.Dense(2, 2, rng=0)
    before = layer.params["W"].copy()
    with pytest.raises(ValueError, match=r"expected 'W' within the range of float32, got 4 "
                                         r"value\(s\) that overflow it \(largest 1e\+39\)"):
        layer.load_state_dict({"W": np.full((2, 2), 1e39), "b": np.zeros(2)})
    np.testing.assert_array_equal(layer.params["W"], before)  # nothing written
    with pytest.raises(ValueError, match=r"within the range of float32"):
        layer.params["W"] = np.full((2, 2), -1e39)
    layer.load_state_dict({"W": np.full((2, 2), 3e38), "b": np.zeros(2)})  # in range: fine


def test_a_dict_that_looks_like_the_files_markers_is_refused_not_misread(tmp_path):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    for marker in ("__ndarray__", "__tuple__"):
        with pytest.raises(ValueError, match=rf"without the reserved key '{marker}' alone"):
            model.save(tmp_path / "m.npz", training_state={"x": {marker: "header"}})
    model.save(tmp_path / "m.npz", training_state={"x": {"__ndarray__": 1, "other": 2}})
    assert bp.load_checkpoint(tmp_path / "m.npz").training_state == {
        "x": {"__ndarray__": 1, "other": 2}}
