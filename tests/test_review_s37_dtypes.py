"""Session 37, dtypes: a float64 Sequential casts a Python list as a float32 one does
(``getattr(x, "dtype", None) != dtype`` read ``np.dtype('float64') == None`` as True);
the message for a layer of one's own that changes the model's dtype says which way it
went; GELU's tanh form gives NaN in dx at ±inf, as its formula and PyTorch do."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

ROWS = [[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_model_of_either_dtype_casts_a_list_in_forward_call_and_backward(dtype):
    model = bp.Sequential([bp.Dense(3, 2, rng=0, dtype=dtype), bp.Tanh(dtype=dtype)])
    x = np.asarray(ROWS, dtype)
    want = model.forward(x)
    for got in (model.forward(ROWS), model(ROWS), model.forward(ROWS, training=True)):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)
    dy = [[1.0, -2.0], [0.5, 3.0]]
    dx = model.backward(dy)
    model.forward(x, training=True)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, model.backward(np.asarray(dy, dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_model_of_either_dtype_starting_with_an_embedding_takes_a_list_of_indices(dtype):
    model = bp.Sequential([bp.Embedding(5, 2, rng=0, dtype=dtype), bp.Dense(2, 2, rng=1,
                                                                           dtype=dtype)])
    tokens = [[1, 2, 3], [0, 4, 1]]
    y = model.forward(tokens)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, model.forward(np.asarray(tokens)))


def test_a_list_of_strings_is_still_refused_by_a_float64_model():
    model = bp.Sequential([bp.Dense(2, 1, rng=0, dtype=np.float64)])
    with pytest.raises(TypeError, match="Sequential: expected input of real numbers"):
        model.forward([["a", "b"]])


class _Cast(bp.Layer):
    """A layer of one's own whose forward returns another dtype (the slip named)."""

    def __init__(self, to, *, dtype):
        super().__init__(dtype=dtype)
        self.to = to

    def forward(self, x, *, training=False):
        return (x / 2).astype(self.to)

    def backward(self, dy):
        return dy / 2


def test_a_layer_that_downcasts_in_a_float64_model_is_told_it_downcasts():
    model = bp.Sequential([bp.Dense(4, 3, rng=0, dtype=np.float64),
                           _Cast(np.float32, dtype=np.float64)])
    with pytest.raises(TypeError) as info:
        model.forward(np.ones((2, 4)))
    message = str(info.value)
    assert message.startswith("Sequential: expected layer 1 _Cast(")
    assert "to return the model's dtype float64, got float32" in message
    assert "an astype to float32 or a buffer made as float32 downcasts" in message
    assert "upcasts" not in message


def test_a_layer_that_upcasts_in_a_float32_model_is_still_told_it_upcasts():
    model = bp.Sequential([bp.Dense(4, 3, rng=0), _Cast(np.float64, dtype=np.float32)])
    with pytest.raises(TypeError, match="got float64 .*a float64 constant or astype upcasts"):
        model.forward(np.ones((2, 4), np.float32))


X_EDGES = [-np.inf, np.inf, np.nan, -3e38, 3e38, -1e20, 1e20, -1e4, 1e4, -9.5, 9.5, 0.5, 0.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_gives_nan_in_dx_at_inf_and_stays_finite_at_large_values(dtype):
    x = np.array([X_EDGES], dtype)
    layer = bp.GELU("tanh", dtype=dtype)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(x))
    assert np.isnan(dx[0, :3]).all()  # x (1 - t²) = ±inf · 0 in the formula: NaN
    np.testing.assert_array_equal(dx[0, 3:-2], [0, 1] * 4)  # 1 - t² = 0: dx = (1 + t) / 2
    np.testing.assert_allclose(dx[0, -2:], [0.86736995, 0.5], rtol=1e-6)
    assert np.isnan(y[0, 0]) and y[0, 1] == np.inf and np.isnan(y[0, 2])  # -inf · 0, inf
    np.testing.assert_array_equal(y[0, 3:-2], np.array([0, 3e38, 0, 1e20, 0, 1e4, 0, 9.5],
                                                       dtype))  # t = ±1: y = 0 or x
    np.testing.assert_array_equal(x, np.array([X_EDGES], dtype))  # the input is left as given


def test_gelu_tanh_matches_pytorch_at_the_edges_in_float64():
    torch = pytest.importorskip("torch")
    x = np.array([X_EDGES + [0.25] * 16])  # past 16 entries: torch's vector loop too
    layer = bp.GELU("tanh", dtype=np.float64)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(x))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate="tanh")
    yt.backward(torch.ones_like(yt))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-15, atol=0)  # NaN = NaN
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-15, atol=1e-300)
