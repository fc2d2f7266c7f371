"""The command line: train, evaluate, help, bad flags, other datasets, the default target."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_datasets import write_mnist

import backprop as bp
from backprop.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def accuracy_in(text: str) -> float:
    return float(re.search(r"test accuracy ([\d.]+)%", text).group(1))


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "backprop", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_train_then_evaluate_in_process(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "m.npz"
    assert main(["train", "--epochs", "2", "--no-progress", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "64-256-128-10 ReLU MLP" in text and f"saved model to {out}" in text
    acc = accuracy_in(text)
    assert 50 < acc <= 100
    assert isinstance(bp.load(out), bp.Sequential)
    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy {acc:.2f}%" in text and "on 359 samples of digits" in text


def test_python_dash_m_train_shows_progress_and_saves(tmp_path):
    pytest.importorskip("sklearn")
    proc = run_module("train", "--epochs", "1", "--hidden", "32", "--optimizer", "sgd",
                      "--output", "out.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Epoch 1/1" in proc.stderr and "100%" in proc.stderr  # tqdm writes to stderr
    assert "test accuracy" in proc.stdout and (tmp_path / "out.npz").is_file()
    proc = run_module("evaluate", "out.npz", "--split", "train", cwd=tmp_path)
    assert proc.returncode == 0 and "train accuracy" in proc.stdout


def test_default_output_path_is_in_the_working_directory(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1", "--hidden", "none", "--no-progress"]) == 0
    assert (tmp_path / "backprop-model.npz").is_file()
    assert "64-10 softmax regression" in capsys.readouterr().out


@pytest.mark.parametrize("args", [[], ["train"], ["evaluate"]])
def test_help_exits_zero(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    assert exc.value.code == 0
    assert "usage: python -m backprop" in capsys.readouterr().out


def test_help_through_the_module(tmp_path):
    proc = run_module("--help", cwd=tmp_path)
    assert proc.returncode == 0 and "train" in proc.stdout and "evaluate" in proc.stdout


@pytest.mark.parametrize("args, message", [
    ([], "required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["train", "--hidden", "128,x"], "positive layer sizes"),
    (["train", "--hidden", "0"], "positive layer sizes"),
    (["train", "--lr", "0"], "--lr: expected float > 0"),
    (["train", "--lr", "inf"], "--lr: expected float > 0"),
    (["train", "--epochs", "0"], "--epochs: expected int >= 1"),
    (["train", "--batch-size", "two"], "--batch-size: expected int >= 1"),
    (["train", "--label-smoothing", "1"], "expected float >= 0 and < 1"),
    (["train", "--colour", "red"], "unrecognized arguments: --colour"),
    (["evaluate"], "required: MODEL"),
])
def test_bad_flags_are_argparse_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_data_and_model_paths_fail_cleanly(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope.npz"), "--no-progress"]) == 1
    assert "--data: " + repr(str(tmp_path / "nope.npz")) + " does not exist (expected " \
        "'digits', a folder" in capsys.readouterr().err  # the flag named, not the loader
    (tmp_path / "table.csv").write_text("1,2\n")
    assert main(["train", "--data", str(tmp_path / "table.csv"), "--no-progress"]) == 1
    assert "--data: expected 'digits', a folder" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    assert main(["evaluate", str(tmp_path / "bad.npz")]) == 1
    assert "truncated, corrupt" in capsys.readouterr().err


def test_train_and_evaluate_on_an_mnist_folder(tmp_path, capsys):
    write_mnist(tmp_path, n=40, rows=6, cols=5, kind="train", gz=True)
    write_mnist(tmp_path, n=10, rows=6, cols=5, kind="test")
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(tmp_path), "--epochs", "2", "--hidden", "8",
                 "--no-progress", "--output", str(out)]) == 0
    assert "40 train / 10 test samples, 30 features, 10 classes" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--data", str(tmp_path)]) == 0
    assert "on 10 samples of" in capsys.readouterr().out


def test_train_on_an_npz_and_evaluate_a_mismatched_model(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--epochs", "20", "--hidden",
                 "16", "--no-progress", "--output", str(out)]) == 0
    assert accuracy_in(capsys.readouterr().out) >= 80
    bp.save(bp.Sequential([bp.Dense(5, 2, rng=0)]), tmp_path / "wide.npz")
    assert main(["evaluate", str(tmp_path / "wide.npz"), "--data", str(tmp_path / "d.npz")]) == 1
    err = capsys.readouterr().err
    assert "x of shape (20, 3)" in err and "expected input of shape (N, 5)" in err


def test_evaluate_keeps_images_for_a_convolutional_model(tmp_path, capsys):
    pytest.importorskip("sklearn")
    cnn = bp.Sequential([bp.Conv2D(1, 2, 3, padding=1, rng=0), bp.ReLU(), bp.GlobalAvgPool(),
                         bp.Dense(2, 10, rng=1)])
    cnn.save(tmp_path / "cnn.npz")
    assert main(["evaluate", str(tmp_path / "cnn.npz")]) == 0
    assert "on 359 samples of digits" in capsys.readouterr().out


def test_default_train_reaches_97_percent_on_digits(tmp_path, capsys):
    # its time (~3 s here) is not asserted: speed claims live in benchmarks/, and a loaded
    # CI machine must not fail a correct run
    pytest.importorskip("sklearn")
    assert main(["train", "--no-progress", "--output", str(tmp_path / "m.npz")]) == 0
    text = capsys.readouterr().out
    assert accuracy_in(text) >= 97.0, text


def small_npz(folder, **change):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    parts = {"x_train": x[:20], "y_train": y[:20], "x_test": x[20:], "y_test": y[20:], **change}
    np.savez(folder / "d.npz", **parts)
    return str(folder / "d.npz")


@pytest.mark.parametrize("output, message", [
    (".", r"--output: expected a file path, got the folder '.*'"),
    ("missing/m.npz", r"--output: expected a path in an existing folder, got '.*missing/m.npz' "
                      r"\(there is no folder '.*missing'\)"),
])
def test_train_checks_the_output_path_before_training(tmp_path, capsys, output, message):
    data = small_npz(tmp_path)
    target = str(tmp_path / output)
    assert main(["train", "--data", data, "--epochs", "1", "--no-progress", "--output",
                 target]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1  # no training, one line, no traceback
    assert re.fullmatch(r"backprop train: error: " + message + "\n", err)


def test_train_refuses_to_save_over_its_own_data(tmp_path, capsys):
    data = small_npz(tmp_path)
    before = Path(data).read_bytes()
    assert main(["train", "--data", data, "--epochs", "1", "--no-progress", "--output",
                 data]) == 1
    assert "expected a path other than --data's" in capsys.readouterr().err
    assert Path(data).read_bytes() == before


def test_ctrl_c_keeps_the_output_file_and_saves_the_partial_model_beside_it(
        tmp_path, capsys, monkeypatch):
    import signal

    import backprop.__main__ as cli

    data, out = small_npz(tmp_path), tmp_path / "m.npz"
    out.write_bytes(b"an earlier model")

    class CtrlC(cli.LearningRateScheduler):  # the CLI's own callback, plus a Ctrl-C
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)  # fit stops after this epoch

    monkeypatch.setattr(cli, "LearningRateScheduler", CtrlC)
    assert main(["train", "--data", data, "--epochs", "5", "--no-progress", "--output",
                 str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 complete epoch(s)" in err and "m.npz is left as it was" in err
    assert out.read_bytes() == b"an earlier model"
    assert isinstance(bp.load(tmp_path / "m.interrupted.npz"), bp.Sequential)


def test_train_that_cannot_save_says_so_in_one_line_and_keeps_the_model(tmp_path, capsys,
                                                                          monkeypatch):
    real_save = bp.Sequential.save
    target = tmp_path / "m.npz"

    def disk_full(model, path, *args, **kwargs):
        if Path(path) == target:
            raise OSError(28, "No space left on device")
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(bp.Sequential, "save", disk_full)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    assert main(["train", "--data", small_npz(tmp_path), "--epochs", "1", "--no-progress",
                 "--output", str(target)]) == 1
    out, err = capsys.readouterr()
    assert "test accuracy" in out and "saved model" not in out
    match = re.fullmatch(rf"backprop train: error: could not save the model to {target} \(No "
                         r"space left on device\); saved it to (\S+) instead\n", err)
    assert match, err
    assert isinstance(bp.load(match.group(1)), bp.Sequential)


@pytest.mark.parametrize("change, message", [
    (dict(x_test=np.zeros((10, 4), np.float32)), r"x_test in .* shaped like x_train, \(N, 3\), "
                                                 r"got \(10, 4\)"),
    (dict(y_test=np.full(10, -1)), "y_test in .* class labels >= 0, got -1"),
    (dict(x_train=np.full((20, 3), np.inf, np.float32)), "finite values in x_train"),
])
def test_train_refuses_inconsistent_npz_data_before_training(tmp_path, capsys, change, message):
    assert main(["train", "--data", small_npz(tmp_path, **change), "--epochs", "1",
                 "--no-progress", "--output", str(tmp_path / "m.npz")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert re.search("backprop train: error: load_npz: expected " + message, err)


def test_train_refuses_mnist_folders_of_different_image_sizes(tmp_path, capsys):
    write_mnist(tmp_path, n=10, rows=6, cols=5, kind="train")
    write_mnist(tmp_path, n=4, rows=5, cols=5, kind="test")
    assert main(["train", "--data", str(tmp_path), "--no-progress", "--output",
                 str(tmp_path / "m.npz")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and ("--data: expected test samples shaped like the training ones "
                          "(1, 6, 5), got (1, 5, 5)") in err


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err  # no training, no traceback
    return err


def test_train_refuses_a_model_too_large_to_allocate(tmp_path, capsys):
    """--hidden 100000000000 used to end in a MemoryError traceback."""
    assert main(["train", "--data", small_npz(tmp_path), "--hidden", "100000000000",
                 "--no-progress", "--output", str(tmp_path / "m.npz")]) == 1
    assert one_error_line(capsys) == ("backprop train: error: --hidden: expected an MLP of at "
                                      "most 2**31 parameters, got 3-100000000000-2 with "
                                      "600,000,000,002\n")


def test_train_refuses_labels_that_would_size_an_absurd_output_layer(tmp_path, capsys):
    y = np.zeros(20, np.int64)
    y[3] = 2**40
    assert main(["train", "--data", small_npz(tmp_path, y_train=y), "--no-progress",
                 "--output", str(tmp_path / "m.npz")]) == 1
    err = one_error_line(capsys)
    assert err.startswith("backprop train: error: --data: expected class labels below 2**20 "
                          "= 1,048,576") and err.endswith("got a label 1,099,511,627,776\n")


def test_out_of_memory_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    def no_memory(sizes, seed):
        raise MemoryError("Unable to allocate 9 GiB")

    monkeypatch.setattr("backprop.__main__.build_mlp", no_memory)
    assert main(["train", "--data", small_npz(tmp_path), "--no-progress", "--output",
                 str(tmp_path / "m.npz")]) == 1
    assert one_error_line(capsys) == ("backprop train: error: out of memory (Unable to "
                                      "allocate 9 GiB)\n")


def test_npz_features_are_standardized_and_folded_into_the_saved_model(tmp_path, capsys):
    """Raw features far from unit scale (here ~1000 + 300·z) train well, and the saved
    model takes them raw: evaluate on the same file scores what train scored."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((300, 4))
    y = (z[:, 0] + z[:, 1] > 0).astype(np.int64)
    x = (1000 + 300 * z).astype(np.float32)
    np.savez(tmp_path / "raw.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:],
             y_test=y[200:])
    out, data = tmp_path / "m.npz", str(tmp_path / "raw.npz")
    assert main(["train", "--data", data, "--optimizer", "sgd", "--epochs", "20",
                 "--no-progress", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "features standardized (the training set's mean and std" in text
    acc = accuracy_in(text)
    assert acc >= 90, text
    assert main(["evaluate", str(out), "--data", data]) == 0
    assert f"test accuracy {acc:.2f}%" in capsys.readouterr().out
    # the fold: the model on raw x gives the logits of the unfolded one on standardized x
    scaler = bp.data.Standardizer().fit(x[:200])
    model = bp.load(out)
    unfolded = bp.load(out)
    w, b = unfolded.params["0.W"], unfolded.params["0.b"]
    b[...] = b + (scaler.mean_.astype(np.float64) / scaler.std_) @ (w.astype(np.float64)
                                                                   * scaler.std_[:, None])
    w *= scaler.std_[:, None]
    np.testing.assert_allclose(model.predict(x[200:]), unfolded.predict(scaler.transform(x[200:])),
                               rtol=1e-4, atol=1e-3)
    assert main(["train", "--data", data, "--optimizer", "sgd", "--epochs", "1",
                 "--no-standardize", "--no-progress", "--output", str(out)]) == 0
    assert "standardized" not in capsys.readouterr().out


def test_train_describes_softmax_regression_one_epoch_smoothing_and_unseen_labels(tmp_path,
                                                                                 capsys):
    data = small_npz(tmp_path, y_test=np.array([0, 1, 5, 1, 0, 1, 0, 1, 0, 1]))
    assert main(["train", "--data", data, "--hidden", "none", "--epochs", "1",
                 "--no-progress", "--output", str(tmp_path / "m.npz")]) == 0
    text = capsys.readouterr().out
    assert "model: 3-6 softmax regression, 24 parameters" in text
    assert "1 epoch of batch 32; label smoothing 0.1 (in the training loss, not the test " \
           "loss)" in text
    assert "note: test labels [5] never occur in the training data" in text
    assert "classes [2, 3, 4] have no samples" in text
    assert re.search(r"test accuracy [\d.]+% \(loss [\d.]+, without label smoothing\)", text)
    assert main(["train", "--data", data, "--hidden", "none", "--epochs", "1",
                 "--label-smoothing", "0", "--no-progress",
                 "--output", str(tmp_path / "m.npz")]) == 0
    text = capsys.readouterr().out
    assert "label smoothing" not in text and re.search(r"\(loss [\d.]+\) on 10 samples", text)


def test_train_notes_labels_counted_from_one(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 1  # 1 and 2
    np.savez(tmp_path / "d.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--no-progress",
                 "--output", str(tmp_path / "m.npz")]) == 0
    assert ("note: the model has 3 outputs (1 + the largest label), and classes [0] have no "
            "samples (labels counted from 1? number them from 0)") in capsys.readouterr().out


def test_labels_of_one_class_are_refused_not_scored(tmp_path, capsys):
    x = np.random.default_rng(0).random((100, 4)).astype(np.float32)
    np.savez(tmp_path / "one.npz", x_train=x, y_train=np.zeros(100, int), x_test=x[:20],
             y_test=np.zeros(20, int))  # one output: its accuracy read 55%
    assert main(["train", "--data", str(tmp_path / "one.npz"), "--no-progress"]) == 1
    assert "--data: expected labels of 2 or more classes" in capsys.readouterr().err


def test_file_errors_print_their_message_without_errno(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "[Errno" not in err
    assert main(["evaluate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "expected a file, got a folder" in err and "[Errno" not in err
