"""Session 26: hints for Keras' built-in callbacks and PyTorch's Parameter attributes."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("where", [bp, bp.callbacks])
def test_keras_callbacks_that_fit_has_built_in_say_so(where):
    with pytest.raises(AttributeError, match="TerminateOnNaN'; fit stops at a NaN"):
        where.TerminateOnNaN  # noqa: B018
    with pytest.raises(AttributeError, match=r"CSVLogger'; fit returns a History"):
        where.CSVLogger  # noqa: B018
    with pytest.raises(AttributeError, match=r"has no attribute 'Nothing'$"):
        where.Nothing  # noqa: B018


@pytest.mark.parametrize("stem", ["Conv", "ConvTranspose", "MaxPool", "AvgPool",
                                  "AdaptiveAvgPool", "AdaptiveMaxPool", "ZeroPad",
                                  "ConstantPad", "ReflectionPad", "ReplicationPad",
                                  "CircularPad", "InstanceNorm", "Dropout"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_pytorchs_1d_2d_3d_names_point_at_ours(stem, d):
    ours = f"{stem}{d}D"
    assert hasattr(bp, ours)
    with pytest.raises(AttributeError, match=f"backprop calls it {ours}$"):
        getattr(bp, f"{stem}{d}d")


def test_parameter_requires_grad_and_data_point_at_backprops_way():
    model = bp.Sequential([bp.Dense(2, 3), bp.ReLU(), bp.Dense(3, 1)])
    p = model.parameters()[0]
    with pytest.raises(AttributeError, match="leaving their parameters out of the optimizer"):
        p.requires_grad  # noqa: B018
    with pytest.raises(AttributeError, match="requires_grad is not a setting here"):
        p.requires_grad = False
    with pytest.raises(AttributeError, match=r"p\.value is the array itself"):
        p.data  # noqa: B018
    assert "requires_grad" not in dir(p) and "data" not in dir(p)
    assert p.value is model.params["0.W"]  # the tuple itself is unchanged
    again = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(again.value, p.value)
    assert copy.copy(p).name == "0.W" and p._replace(name="x").name == "x"
