"""Findings of a differential review against Keras 3's fit and callbacks (twentieth
session)."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

RNG = np.random.default_rng(0)
X = RNG.standard_normal((20, 4)).astype(np.float32)
Y = RNG.integers(0, 3, 20)


def _model():
    return bp.Sequential([bp.Dense(4, 3, rng=0)])


def test_evaluate_gives_keras_list_with_return_dict_false():
    """``loss, acc = model.evaluate(...)`` unpacked the dict's keys, silently."""
    model, loss = _model(), bp.SoftmaxCrossEntropy()
    scores = model.evaluate(X, Y, loss=loss, metrics=["accuracy"])
    assert list(scores) == ["loss", "accuracy"]
    value, acc = model.evaluate(X, Y, loss=loss, metrics=["accuracy"], return_dict=False)
    assert (value, acc) == (scores["loss"], scores["accuracy"])
    assert model.evaluate(X, Y, loss=loss, return_dict=False) == scores["loss"]  # a scalar
    with pytest.raises(TypeError, match="evaluate: expected return_dict to be True or False"):
        model.evaluate(X, Y, loss=loss, return_dict="no")


@pytest.mark.parametrize("make", [
    lambda: bp.EarlyStopping("val_loss", 0, 3),       # Keras: min_delta=0, patience=3
    lambda: bp.ReduceLROnPlateau("val_loss", 0.5, 1, 1),  # Keras: ..., verbose=1
    lambda: bp.ModelCheckpoint("m.npz", "val_loss", True),
])
def test_callbacks_take_their_settings_by_keyword_only(make):
    """Keras' positional order landed in other settings (patience 0 and min_delta 3; a
    min_lr of 1 that kept the rate from ever dropping)."""
    with pytest.raises(TypeError, match="positional argument"):
        make()


def test_batch_hooks_get_logs_by_keyword_as_keras_passes_them():
    seen = []

    class Keyword(bp.Callback):
        def on_train_batch_begin(self, batch, **kwargs):
            seen.append(("begin", batch, kwargs["logs"]))

        def on_train_batch_end(self, batch, **kwargs):
            seen.append(("end", batch, sorted(kwargs["logs"])))

    model = _model()
    model.fit(X, Y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model, lr=0.1),
              batch_size=10, progress=False, callbacks=[Keyword()])
    assert seen == [("begin", 0, {}), ("end", 0, ["loss", "size"]),
                    ("begin", 1, {}), ("end", 1, ["loss", "size"])]


def test_fit_names_what_keras_validation_freq_becomes():
    model = _model()
    with pytest.raises(TypeError, match="fit validates after every epoch"):
        model.fit(X, Y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model, lr=0.1),
                  validation_freq=2)
