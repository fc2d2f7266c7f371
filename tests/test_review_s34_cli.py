"""Review s34, the command line: ``evaluate`` takes a model whose first layer is a
BatchNorm/LayerNorm over flat digits, says when ``--data`` defaulted to the digits, and
``train --help`` names the MLP's initialisation."""

from __future__ import annotations

import re

import pytest

import backprop as bp
from backprop.__main__ import main


@pytest.mark.parametrize("norm", [bp.BatchNorm, bp.LayerNorm])
def test_evaluate_flattens_digits_for_a_norm_first_model_as_python_scores_it(
        tmp_path, capsys, norm):
    pytest.importorskip("sklearn")
    (x, y), (xt, yt) = bp.datasets.digits()  # flat (N, 64), as the README's MLPs take
    m = bp.Sequential([norm(64), bp.Dense(64, 32, rng=0), bp.ReLU(), bp.Dense(32, 10, rng=1)])
    m.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(m.parameters(), lr=1e-2),
          epochs=2, seed=0, progress=False)
    want = m.evaluate(xt, yt, loss=bp.SoftmaxCrossEntropy(), metrics=["accuracy"])
    m.save(tmp_path / "m.npz")
    assert main(["evaluate", str(tmp_path / "m.npz")]) == 0
    text = capsys.readouterr().out
    got = re.search(r"test accuracy ([\d.]+)% \(loss ([\d.]+)\) on 359 samples", text)
    assert got, text
    assert float(got.group(1)) == pytest.approx(100 * want["accuracy"], abs=0.006)
    assert float(got.group(2)) == pytest.approx(want["loss"], abs=6e-5)


def test_evaluate_still_gives_a_convolution_its_images(tmp_path, capsys):
    pytest.importorskip("sklearn")
    m = bp.Sequential([bp.Conv2D(1, 2, 3, rng=0), bp.ReLU(), bp.Flatten(),
                       bp.Dense(2 * 6 * 6, 10, rng=1)])
    m.save(tmp_path / "c.npz")
    assert main(["evaluate", str(tmp_path / "c.npz"), "--data", "digits"]) == 0
    assert "on 359 samples of digits" in capsys.readouterr().out


def test_evaluate_without_data_says_it_defaulted_to_the_digits(tmp_path, capsys):
    pytest.importorskip("sklearn")
    m = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)])  # iris-like
    m.save(tmp_path / "iris.npz")
    assert main(["evaluate", str(tmp_path / "iris.npz")]) == 1
    err = capsys.readouterr().err
    assert "--data defaulted to 'digits'" in err and "--data PATH" in err, err
    assert "Dense(4, 8): expected input of shape (N, 4), got (2, 64)" in err
    assert main(["evaluate", str(tmp_path / "iris.npz"), "--data", "digits"]) == 1
    err = capsys.readouterr().err  # given: the layer's refusal, without the default's hint
    assert "Dense(4, 8)" in err and "defaulted" not in err
    assert "x of shape (359, 1, 8, 8) from digits, refused as it is and flattened to " \
           "(359, 64)" in err

def test_train_help_names_the_mlps_initialisation(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "hidden layers start He-uniform, the output layer Glorot-uniform" in text
    assert "init=" in text
