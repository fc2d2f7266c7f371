"""Session 38's review of the training machinery against PyTorch: a per-epoch schedule that
undoes ReduceLROnPlateau is named, Keras' clipping keywords get a hint, and the optimizer
state's loading errors read whole."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _data(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n)


def _fit(schedule, epochs: int = 4):
    x, y = _data()
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    opt = bp.SGD(model.parameters(), 0.1)
    plateau = bp.ReduceLROnPlateau("loss", factor=0.5, patience=0, threshold=10.0)
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=epochs,
                        batch_size=16, callbacks=[bp.LearningRateScheduler(schedule), plateau],
                        progress=False, shuffle=False)
    return history, opt


def test_an_epoch_schedule_beside_reduce_lr_on_plateau_warns_that_it_undoes_it():
    with pytest.warns(UserWarning, match=r"before every epoch, over what ReduceLROnPlateau sets"):
        history, opt = _fit(bp.StepLR(0.1, step_size=100))
    # what the warning is about: every epoch trained at the schedule's rate
    assert history.history["lr"] == pytest.approx([0.1] * 4)


def test_a_keras_schedule_given_the_rate_composes_with_the_plateau_and_stays_quiet(recwarn):
    history, _ = _fit(lambda epoch, lr: lr)
    assert not [w for w in recwarn if "LearningRateScheduler" in str(w.message)]
    rates = history.history["lr"]
    assert rates[0] == pytest.approx(0.1) and rates[-1] < rates[0]  # the plateau's cuts last


@pytest.mark.parametrize("keyword, says", [
    ("clipnorm", "clips each gradient by its own norm"),
    ("global_clipnorm", "backprop calls it clip_norm"),
    ("clipvalue", "bp.clip_grad_value"),
])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "NAdam", "Adamax", "RMSProp",
                                  "Adagrad", "RAdam", "Adadelta"])
def test_keras_clipping_keywords_name_backprops_way(name, keyword, says):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'.*{says}"):
        getattr(bp, name)(model.parameters(), **{keyword: 1.0})


def test_a_torch_optimizer_state_dict_is_named_as_such():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    opt = bp.Adam(model.parameters())
    torch_like = {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}
    with pytest.raises(ValueError, match="a torch.optim state_dict does not load"):
        opt.load_state_dict(torch_like)
