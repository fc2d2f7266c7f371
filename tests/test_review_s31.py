"""Review of session 31: items earlier reviews noticed and left."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("make", [
    lambda: bp.BCELoss(weight=True),
    lambda: bp.BCELoss(weight=np.array([True, False])),
    lambda: bp.BinaryCrossEntropyWithLogits(pos_weight=True),
    lambda: bp.BinaryCrossEntropyWithLogits(weight=[False, True]),
    lambda: bp.SoftmaxCrossEntropy(weight=[True, False]),
], ids=["BCE", "BCE-array", "BCEWithLogits-pos", "BCEWithLogits", "SoftmaxCE"])
def test_a_loss_refuses_bool_weights_as_pytorch_does(make):
    # weight=True was read as 1.0 (and False as 0.0: a loss of 0 that trains nothing);
    # PyTorch refuses a bool weight too
    with pytest.raises(TypeError, match=r"expected (pos_)?weight as real numbers, got .* of "
                                        r"dtype bool \(a 0/1 mask: mask.astype\(float\)\)"):
        make()


def test_a_loss_still_takes_int_and_float_weights():
    assert bp.BCELoss(weight=2).weight.tolist() == 2.0
    assert bp.SoftmaxCrossEntropy(weight=[1, 2.5]).weight.tolist() == [1.0, 2.5]


class _Adds(bp.Callback):
    def __init__(self, key):
        self.key = key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = 1.0 / (epoch + 1)


def _fit(callbacks):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    model = bp.Sequential(bp.Dense(4, 2, rng=0))
    return model.fit(x, (x[:, 0] > 0).astype(int), loss=bp.SoftmaxCrossEntropy(),
                     optimizer=bp.SGD(model.parameters()), epochs=3, progress=False,
                     callbacks=callbacks)


def test_a_monitor_no_callback_added_is_not_blamed_on_callback_order():
    # the user's callback comes first but adds another key: the old hint said to list
    # it before, which it already was
    with pytest.raises(ValueError, match=r"expected monitor to be one of \['loss', "
                                         r"'margin'\], got 'score' \(no callback before this "
                                         r"one added it to this epoch's logs\)"):
        _fit([_Adds("margin"), bp.EarlyStopping(monitor="score", mode="max")])
    with pytest.raises(ValueError, match=r"got 'score'; did you mean 'scor'\?"):  # a typo
        _fit([_Adds("scor"), bp.EarlyStopping(monitor="score", mode="max")])


def test_a_monitor_added_too_late_names_the_callback_after_it():
    with pytest.raises(ValueError, match=r"got 'score' \(a key your own callback adds must "
                                         r"be added by a callback listed before this one: "
                                         r"_Adds comes after it\)"):
        _fit([bp.EarlyStopping(monitor="score", mode="max"), _Adds("score")])
    history = _fit([_Adds("score"), bp.EarlyStopping(monitor="score", mode="max",
                                                      patience=1)])
    assert history.history["score"] == [1.0, 0.5]
