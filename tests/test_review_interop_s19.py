"""A review of interop, the command line and packaging: from_torch's messages name the
layer at the top of a model, keys of later layers alone are not called a projection,
--data takes '.NPZ', the console script names itself, and the license is an SPDX string."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.__main__ import main, make_parser

ROOT = Path(__file__).resolve().parents[1]


def test_from_torch_names_a_top_level_layer_that_does_not_match():
    torch = pytest.importorskip("torch")
    batch_norm = torch.nn.BatchNorm1d(4).state_dict()
    with pytest.raises(ValueError, match=r"matching \(top\) -> \(top\) LayerNorm\(4\), got one "
                                         r"with \['bias', 'num_batches_tracked'"):
        bp.from_torch(bp.LayerNorm(4), batch_norm)


def test_from_torch_keys_of_a_later_layer_alone_are_not_called_a_projection():
    torch = pytest.importorskip("torch")
    second = {k: v for k, v in torch.nn.LSTM(4, 6, num_layers=2).state_dict().items()
              if k.endswith("_l1")}
    with pytest.raises(ValueError, match=r"keys of layer\(s\) \[1\] of a num_layers > 1 module "
                                         r"without those of layer 0") as err:
        bp.from_torch(bp.LSTM(6, 6), second)
    assert "proj_size" not in str(err.value)
    projected = torch.nn.LSTM(4, 6, proj_size=3).state_dict()  # still named as before
    with pytest.raises(ValueError, match=r"\['weight_hr_l0'\] \(proj_size\)"):
        bp.from_torch(bp.LSTM(4, 6), projected)


def test_from_torch_loads_every_layer_of_a_two_layer_lstm_given_both():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(4, 6, num_layers=2, batch_first=True).double()
    ours = bp.Sequential([bp.LSTM(4, 6), bp.LSTM(6, 6)]).astype(np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    np.testing.assert_allclose(ours.predict(x), theirs(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_train_takes_an_npz_whatever_the_case_of_its_suffix(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), np.arange(40) % 2
    data = tmp_path / "DATA.NPZ"
    with open(data, "wb") as f:  # np.savez would append .npz to a name without it
        np.savez(f, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(data), "--epochs", "1", "--hidden", "4",
                 "--no-progress", "--output", str(out)]) == 0
    assert "data: DATA.NPZ: 30 train / 10 test samples" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--data", str(data)]) == 0
    assert "on 10 samples of DATA.NPZ" in capsys.readouterr().out


def test_the_console_script_names_itself_in_its_usage(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/backprop"])
    assert make_parser().format_usage().startswith("usage: backprop ")
    monkeypatch.setattr(sys, "argv", [str(ROOT / "backprop" / "__main__.py")])  # python -m
    assert make_parser().format_usage().startswith("usage: python -m backprop ")
    proc = subprocess.run([sys.executable, "-m", "backprop", "train", "--epochs", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "usage: python -m backprop train" in proc.stderr


def test_pyproject_gives_the_license_as_an_spdx_string():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # a TOML table {text = ...} is deprecated by setuptools, its builds refused from 2027-02-18
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]  # the first to read it


def test_from_torch_names_the_projection_of_a_two_layer_lstm():
    torch = pytest.importorskip("torch")
    projected = torch.nn.LSTM(4, 6, num_layers=2, proj_size=3).state_dict()
    with pytest.raises(ValueError, match=r"proj_size") as err:
        bp.from_torch(bp.Sequential([bp.LSTM(4, 6), bp.LSTM(6, 6)]), projected)
    assert "without those of layer 0" not in str(err.value)


def test_bench_names_an_input_shape_that_does_not_fit_the_model():
    model = bp.Sequential([bp.Dense(6, 4, rng=0), bp.ReLU(), bp.Dense(4, 2, rng=1)])
    with pytest.raises(ValueError, match=r"bench: expected an input_shape that fits the model, "
                                         r"got \(7,\): Dense\(6, 4\): expected input of shape "
                                         r"\(N, 6\), got \(4, 7\)"):
        bp.bench(model, (7,), 4, steps=1, repeats=1, breakdown=False)
