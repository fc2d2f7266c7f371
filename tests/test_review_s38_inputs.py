"""Session 38's bad-input review: a layer object put into ``model.layers`` a second time by
hand is named by fit as the model's constructor names it, not blamed on a missing forward."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("how", ["insert", "append"])
def test_fit_names_a_layer_put_into_model_layers_twice(how):
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    model = bp.Sequential([bp.Dense(3, 3, rng=0), bp.ReLU(), bp.Dense(3, 3, rng=1)])
    if how == "insert":
        model.layers.insert(2, model.layers[1])
        where = "layer 1 and at layer 2"
    else:
        model.layers.append(model.layers[1])  # ReLU after the last Dense, the same object
        where = "layer 1 and at layer 3"
    with pytest.raises(ValueError, match=f"fit: expected each layer object once, got the same "
                                         f"ReLU object at {where}"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)


def test_named_layers_names_itself_for_a_prefix_that_is_not_a_string():
    model = bp.Sequential([bp.Dense(3, 3, rng=0), bp.ReLU()])
    with pytest.raises(TypeError, match=r"Sequential.named_layers: expected prefix, a str .* "
                                        r"got int"):
        list(model.named_layers(5))
    assert [p for p, _ in model.named_layers("m.")] == ["m.0", "m.1"]
