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


def test_train_test_split_takes_any_number_of_arrays_as_scikit_learn():
    sklearn = pytest.importorskip("sklearn.model_selection")
    x = np.arange(40.0).reshape(20, 2)
    y, w = np.arange(20) % 2, np.arange(20.0) * 10
    parts = bp.data.train_test_split(x, y, w, test_size=0.25, rng=0)
    assert [p.shape for p in parts] == [(15, 2), (5, 2), (15,), (5,), (15,), (5,)]
    x_tr, x_te, y_tr, y_te, w_tr, w_te = parts
    for xs, ys, ws in ((x_tr, y_tr, w_tr), (x_te, y_te, w_te)):  # the same rows of each
        np.testing.assert_array_equal(xs[:, 0] / 2, ys + 2 * (xs[:, 0] // 4))
        np.testing.assert_array_equal(ws, xs[:, 0] * 5)
    assert sorted(np.concatenate([w_tr, w_te])) == sorted(w)
    theirs = sklearn.train_test_split(x, y, w, test_size=0.25, random_state=0)
    assert [p.shape for p in theirs] == [p.shape for p in parts]
    one = bp.data.train_test_split(x, test_size=0.25, rng=0)
    assert [p.shape for p in one] == [(15, 2), (5, 2)]
    old = bp.data.train_test_split(x, y, 0.25, rng=0)  # the older (x, y, test_size)
    assert [p.shape for p in old] == [(15, 2), (5, 2), (15,), (5,)]
    strat = bp.data.train_test_split(x, y, w, test_size=0.5, stratify=True, rng=1)
    assert strat[3].sum() == 5  # y's classes kept half and half in the test part


def test_train_test_split_refusals_name_what_is_missing():
    x = np.zeros((6, 2))
    with pytest.raises(TypeError, match="expected at least one array of samples"):
        bp.data.train_test_split()
    with pytest.raises(ValueError, match="stratify=True keeps the shares of y's classes, "
                                         "but only x was given"):
        bp.data.train_test_split(x, stratify=True)
    with pytest.raises(ValueError, match=r"one common first dimension, got shapes "
                                         r"\[\(6, 2\), \(6,\), \(3,\)\]"):
        bp.data.train_test_split(x, np.zeros(6), np.zeros(3))


def test_nonfinite_rows_of_a_pandas_frame_are_named_by_position_and_label():
    pd = pytest.importorskip("pandas")
    x = pd.DataFrame({"a": np.arange(6.0), "b": np.ones(6)}, index=[50, 40, 30, 20, 10, 0])
    x.loc[20, "a"] = np.nan  # position 3
    model = bp.Sequential([bp.Dense(2, 1)])
    fit = {"loss": bp.MeanSquaredError(), "optimizer": bp.SGD(model.parameters(), lr=0.01),
           "progress": False}
    with pytest.raises(ValueError, match=r"in x, got NaN/Inf in 1 sample\(s\), the first at "
                                         r"position 3 \(\.iloc; index label 20\)"):
        model.fit(x, np.zeros((6, 1)), **fit)
    y = pd.Series(np.zeros(6), index=x.index)
    y.iloc[5] = np.inf
    with pytest.raises(ValueError, match=r"in y, got NaN/Inf .* position 5 \(\.iloc; index "
                                         r"label 0\)"):
        model.fit(x.fillna(0), y, **fit)
    with pytest.raises(ValueError, match=r"the first at index 3$"):  # arrays: the index
        model.fit(x.to_numpy(), np.zeros((6, 1)), **fit)
