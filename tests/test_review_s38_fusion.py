"""Session 38, speed (a): Sequential runs a ReLU right before a MaxPool (backprop's own, no
padding) inside the pool (backprop/layers/_fused.py): the pool takes the ReLU's input,
rectifies its pooled output and applies the ReLU's mask in its backward; the ReLU keeps a
``Fused`` marker and passes ``dy`` through. Each layer's cache is its own, so every order
of calls works; the values are those of the layers run one by one."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import backprop as bp
from backprop.layers._cached import Fused

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(UINT[a.dtype])


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(_bits(a), _bits(b))


def _same_values(a: np.ndarray, b: np.ndarray) -> None:
    """Equal values, NaN where NaN, and equal bits wherever they are not zero (overlapping
    windows sum the unfused gradients before the ReLU's mask: the sign of a zero may
    differ where they meet at an input <= 0)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    nonzero = (a != 0) & ~np.isnan(a)
    np.testing.assert_array_equal(_bits(a)[nonzero], _bits(b)[nonzero])


def _model(pool: bp.Layer, d: int = 2, c: int = 3, features: int = 0,
           dtype: type = np.float32) -> bp.Sequential:
    conv = {1: bp.Conv1D, 2: bp.Conv2D, 3: bp.Conv3D}[d]
    layers = [conv(c, 4, 3, padding=1, rng=0, dtype=dtype), bp.ReLU(), pool, bp.Flatten()]
    if features:
        layers.append(bp.Dense(features, 3, rng=1, dtype=dtype))
    model = bp.Sequential(layers)
    model.layers[0].params["b"][:] = [-0.5, 0.0, 0.3, -3.0]  # windows whose max is <= 0
    return model


def _relu(model: bp.Sequential) -> bp.ReLU:
    return next(layer for layer in model.layers if type(layer) is bp.ReLU)


def _grads(model: bp.Sequential) -> list[np.ndarray]:
    """Every parameter's gradient (one flat copy), none for a model without parameters."""
    return [] if model.flat_grads is None else [model.flat_grads.copy()]


def _apart(model: bp.Sequential, x: np.ndarray, dy: np.ndarray) -> list[np.ndarray]:
    """y, dx and every gradient with each layer run on its own (never fused)."""
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=True)
    assert type(_relu(model).cache["y"]) is np.ndarray
    g = dy
    for layer in reversed(model.layers):
        g = layer.backward(g)
    return [h, g, *_grads(model)]


def _together(model: bp.Sequential, x: np.ndarray, dy: np.ndarray) -> list[np.ndarray]:
    y = np.array(model.forward(x, training=True))
    assert type(_relu(model).cache["y"]) is Fused  # it did run fused
    dx = model.backward(dy)
    return [y, dx, *_grads(model)]


POOLS = [  # (pool, d, input shape, overlapping windows)
    (lambda: bp.MaxPool2D(2), 2, (4, 3, 8, 8), False),
    (lambda: bp.MaxPool2D(2, ceil_mode=True), 2, (2, 3, 7, 5), False),
    (lambda: bp.MaxPool2D((2, 3), (3, 2)), 2, (2, 3, 9, 8), True),
    (lambda: bp.MaxPool2D(2, 3), 2, (2, 3, 9, 8), False),  # strided: gaps between windows
    (lambda: bp.MaxPool2D(3, 2), 2, (2, 3, 9, 7), True),
    (lambda: bp.MaxPool2D(3, 1), 2, (2, 3, 6, 7), True),
    (lambda: bp.MaxPool2D(3, 2, ceil_mode=True), 2, (2, 3, 8, 6), True),
    (lambda: bp.MaxPool2D(2, dilation=2), 2, (2, 3, 9, 8), True),
    (lambda: bp.MaxPool1D(2), 1, (3, 3, 10), False),
    (lambda: bp.MaxPool1D(3, 2, ceil_mode=True), 1, (3, 3, 10), True),
    (lambda: bp.MaxPool3D(2), 3, (2, 3, 4, 4, 4), False),
    (lambda: bp.MaxPool3D(2, 1), 3, (2, 3, 4, 5, 4), True),
]


@pytest.mark.parametrize(("pool", "d", "shape", "overlap"), POOLS)
def test_forward_and_every_gradient_equal_the_layers_run_one_by_one(pool, d, shape, overlap):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    fused = _model(pool(), d)
    n_out = int(np.prod(fused.forward(x).shape[1:]))
    fused = _model(pool(), d, features=n_out)
    apart = copy.deepcopy(fused)
    dy = rng.standard_normal((shape[0], 3)).astype(np.float32)
    got, want = _together(fused, x, dy), _apart(apart, x, dy)
    h = fused.layers[0].forward(x)  # windows whose maximum is <= 0 (the ReLU's mask is 0)
    assert (fused.layers[2].forward(h) <= 0).any() and (fused.layers[2].forward(h) > 0).any()
    for a, b in zip(got, want, strict=True):
        (_same_values if overlap else _same_bits)(a, b)


@pytest.mark.parametrize(("pool", "d", "shape", "overlap"), POOLS)
def test_non_finite_inputs_and_gradients_equal_the_layers_run_one_by_one(pool, d, shape,
                                                                         overlap):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0] -= 3.0  # all-negative windows
    flat = x.reshape(-1)
    at = rng.choice(flat.size, 24, replace=False)
    flat[at[:8]], flat[at[8:16]], flat[at[16:]] = np.nan, np.inf, -np.inf
    x[-1, -1] = -np.inf  # windows of -inf only
    fused = bp.Sequential([bp.Identity(), bp.ReLU(), pool()])
    apart = bp.Sequential([bp.Identity(), bp.ReLU(), pool()])
    y = fused.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy.reshape(-1)[rng.choice(dy.size, 4, replace=False)] = [np.inf, -np.inf, np.nan, np.inf]
    fused.forward(x, training=True)  # the argmax is the one kept after the ReLU apart
    ref = pool()
    ref.forward(bp.ReLU().forward(x), training=True)
    np.testing.assert_array_equal(fused.layers[2].cache["arg"], ref.cache["arg"])
    got, want = _together(fused, x, dy)[:2], _apart(apart, x, dy)[:2]
    assert np.isnan(got[0]).any() and np.isinf(got[0]).any() and np.isnan(got[1]).any()
    _same_bits(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])  # NaN where NaN
    finite = np.isfinite(got[1]) & (got[1] != 0 if overlap else True)
    np.testing.assert_array_equal(_bits(got[1])[finite], _bits(want[1])[finite])


def test_the_caches_after_a_fused_forward_are_each_layers_own():
    """The speed-up itself: the ReLU's work runs on the pooled elements; its cache is a
    marker of its input's shape, the pool's the argmax the layers apart give plus the
    ReLU's mask on the pooled shape (fails before: the ReLU kept its full output)."""
    model = _model(bp.MaxPool2D(2))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = model.forward(x, training=True)
    relu, pool = model.layers[1], model.layers[2]
    marker = relu.cache["y"]
    assert type(marker) is Fused and marker.shape == (2, 4, 8, 8) and relu.has_cache
    assert "MaxPool2D" in repr(marker)
    assert pool.cache["keep"].shape == (2, 4, 4, 4) and pool.cache["keep"].dtype == bool
    apart = bp.MaxPool2D(2)
    h = model.layers[0].forward(x)
    apart.forward(bp.ReLU().forward(h), training=True)
    np.testing.assert_array_equal(pool.cache["arg"], apart.cache["arg"])  # PyTorch's argmax
    assert (pool.cache["arg"] != np.argmax(
        h.reshape(2, 4, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 4, 4, 4, 4), -1)).any()
    np.testing.assert_array_equal(pool.cache["keep"], y.reshape(2, 4, 4, 4) != 0)
    model.backward(np.ones_like(y))
    assert relu.cache["y"] is None and pool.cache["keep"] is None and not model.has_cache
    model.forward(x)  # inference keeps nothing
    assert not model.has_cache


def _reference(model: bp.Sequential, x: np.ndarray, dy: np.ndarray) -> list[np.ndarray]:
    return _apart(copy.deepcopy(model), x, dy)


def _cnn() -> tuple[bp.Sequential, np.ndarray, np.ndarray]:
    model = _model(bp.MaxPool2D(2), features=64)
    rng = np.random.default_rng(3)
    return (model, rng.standard_normal((4, 3, 8, 8)).astype(np.float32),
            rng.standard_normal((4, 3)).astype(np.float32))


def test_a_backward_by_hand_over_reversed_layers_after_model_forward():
    model, x, dy = _cnn()
    want = _reference(model, x, dy)
    y = model.forward(x, training=True)
    g = dy
    for layer in reversed(model.layers):  # DESIGN's loop
        g = layer.backward(g)
    _same_bits(np.asarray(y), want[0])
    _same_bits(g, want[1])
    _same_bits(model.flat_grads, want[2])


@pytest.mark.parametrize("cut", [1, 2, 3])  # 2: between the ReLU and the pool
def test_a_backward_split_over_slices(cut):
    model, x, dy = _cnn()
    want = _reference(model, x, dy)
    model.forward(x, training=True)
    dx = model[:cut].backward(model[cut:].backward(dy))
    _same_bits(dx, want[1])
    _same_bits(model.flat_grads, want[2])


def test_backward_params_and_input_grad_false():
    model, x, dy = _cnn()
    want = _reference(model, x, dy)
    model.forward(x, training=True)
    assert model.backward(dy, input_grad=False) is None and not model.has_cache
    _same_bits(model.flat_grads, want[2])
    model = bp.Sequential([bp.ReLU(), bp.MaxPool2D(2), bp.Flatten(), bp.Dense(16, 3, rng=0)])
    x8 = x[:, :1]
    want = _reference(model, x8, dy)
    model.forward(x8, training=True)
    model.backward(dy, input_grad=False)
    _same_bits(model.flat_grads, want[2])
    assert not model.has_cache


def test_a_forward_by_hand_after_a_fused_fit_step_then_model_backward():
    model, x, dy = _cnn()
    labels = np.arange(4) % 3
    model.fit(x, labels, loss=bp.SoftmaxCrossEntropy(), epochs=1, batch_size=4, progress=False,
              optimizer=bp.SGD(model.parameters(), lr=0.1))
    model.forward(x, training=True)  # a fused forward whose backward never comes
    want = _reference(model, x, dy)
    h = x
    for layer in model.layers:  # by hand: never fused
        h = layer.forward(h, training=True)
    assert type(model.layers[1].cache["y"]) is np.ndarray and model.layers[2].cache["keep"] is None
    _same_bits(model.backward(dy), want[1])
    _same_bits(model.flat_grads, want[2])


def test_padding_and_replaced_methods_run_apart():
    """A padded pool (a dilated window can lie wholly in the -inf padding: relu(max) would
    be 0, max(relu) is -inf), a subclass, and a ReLU or pool with a method replaced on the
    instance or the class keep the layers apart."""
    x = np.array([[[0.5, -2.0]]], np.float32)
    model = bp.Sequential([bp.Identity(), bp.ReLU(), bp.MaxPool1D(2, 1, padding=1, dilation=3)])
    assert model.forward(x, training=True)[0, 0, 0] == -np.inf  # the layers' own result
    assert type(model.layers[1].cache["y"]) is np.ndarray
    model = bp.Sequential([bp.Identity(), bp.ReLU(), bp.MaxPool2D(3, 2, padding=1)])
    model.forward(np.ones((1, 1, 5, 5), np.float32), training=True)
    assert type(model.layers[1].cache["y"]) is np.ndarray
    with pytest.raises(TypeError, match="return_indices.*keeps the argmax"):
        bp.MaxPool2D(2, return_indices=True)  # backprop has none: the argmax is the cache

    class MyReLU(bp.ReLU):
        pass

    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    for relu in (MyReLU(), bp.ReLU()):
        model = bp.Sequential([bp.Identity(), relu, bp.MaxPool2D(2)])
        if type(relu) is bp.ReLU:
            relu.forward = relu.forward  # on the instance
        model.forward(x, training=True)
        assert type(relu.cache["y"]) is np.ndarray
    seen = []
    original = bp.MaxPool2D.backward

    def backward(self, dy):
        seen.append(dy.shape)
        return original(self, dy)

    model = bp.Sequential([bp.Identity(), bp.ReLU(), bp.MaxPool2D(2)])
    bp.MaxPool2D.backward = backward  # on the class
    try:
        model.forward(x, training=True)
        assert type(model.layers[1].cache["y"]) is np.ndarray
        model.backward(np.ones((2, 1, 2, 2), np.float32))
    finally:
        bp.MaxPool2D.backward = original
    assert seen == [(2, 1, 2, 2)]
    model.forward(x, training=True)
    assert type(model.layers[1].cache["y"]) is Fused


def test_trace_keeps_the_layers_apart_with_the_same_values():
    model, x, dy = _cnn()
    want = _reference(model, x, dy)
    with bp.trace(model) as t:
        y = model.forward(x, training=True)
        assert type(model.layers[1].cache["y"]) is np.ndarray
        dx = model.backward(dy)
    assert t[1].forward[0].y_shape == (4, 4, 8, 8) and t[2].forward[0].y_shape == (4, 4, 4, 4)
    _same_bits(np.asarray(y), want[0])
    _same_bits(dx, want[1])
    model.forward(x, training=True)  # fused again once the trace is gone
    assert type(model.layers[1].cache["y"]) is Fused


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 5])
def test_dtypes_batch_sizes_non_contiguous_input_and_inference(dtype, n):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 2, 8, 6)).astype(dtype)[:n].transpose(0, 1, 3, 2)
    model = bp.Sequential([bp.ReLU(dtype=dtype), bp.MaxPool2D(2, dtype=dtype), bp.Flatten(),
                           bp.Dense(24, 3, rng=0, dtype=dtype)], dtype=dtype)
    dy = rng.standard_normal((n, 3)).astype(dtype)
    want = _reference(model, x, dy)
    got = _together(model, x, dy)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        _same_bits(a, b)
    _same_bits(model.forward(x), want[0])  # inference: fused, no cache kept
    if n:
        _same_bits(model.predict(x), want[0])
    assert not model.has_cache


def test_a_refused_input_names_the_same_layer_as_the_layers_apart():
    fused = bp.Sequential([bp.Identity(), bp.ReLU(), bp.MaxPool2D(2)])
    apart = bp.Sequential([bp.Identity(), bp.ReLU(), bp.MaxPool2D(2)])
    apart.layers[1].forward = apart.layers[1].forward
    for x in (np.ones((2, 3, 4), np.float32), np.ones((2, 3, 1, 1), np.float32)):
        with pytest.raises(ValueError) as a:
            fused.forward(x, training=True)
        with pytest.raises(ValueError) as b:
            apart.forward(x, training=True)
        assert str(a.value) == str(b.value) and "MaxPool2D(2)" in str(a.value)
        assert not fused.has_cache


@pytest.mark.parametrize("stack", [False, True])
def test_check_gradients_passes_on_a_model_with_the_pair(stack):
    model = _model(bp.MaxPool2D(2), features=48, dtype=np.float64)
    x = np.random.default_rng(5).standard_normal((3, 3, 6, 8))
    result = bp.check_gradients(model, x, stack=stack)
    assert result.passed and not [n for n in result.notes if "cache" in n]


def test_training_the_benchmark_cnn_agrees_with_pytorch():
    """20 SGD steps of the benchmark CNN (batch 64) against PyTorch from the same weights,
    and bit for bit against the layers run apart (a method on the instance unfuses)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    model = bp.Sequential([
        bp.Conv2D(1, 32, 3, padding=1, rng=0), bp.ReLU(), bp.MaxPool2D(2),
        bp.Conv2D(32, 64, 3, padding=1, rng=1), bp.ReLU(), bp.MaxPool2D(2), bp.Flatten(),
        bp.Dense(3136, 128, rng=2), bp.ReLU(), bp.Dense(128, 10, rng=3)])
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    with torch.no_grad():
        for i in (0, 3, 7, 9):
            w = model.layers[i].params["W"]
            net[i].weight.copy_(torch.from_numpy(w.T.copy() if i >= 7 else w))
            net[i].bias.copy_(torch.from_numpy(model.layers[i].params["b"]))
    apart = copy.deepcopy(model)
    for i in (1, 4):
        apart.layers[i].forward = apart.layers[i].forward
    topt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    ours, theirs, unfused = [], [], []
    for m, losses in ((model, ours), (apart, unfused)):
        loss, opt = bp.SoftmaxCrossEntropy(), bp.SGD(m.parameters(), lr=0.01, momentum=0.9)
        for _ in range(20):
            losses.append(loss.forward(m.forward(x, training=True), labels))
            assert (type(m.layers[4].cache["y"]) is Fused) == (m is model)
            m.backward(loss.backward(), input_grad=False)
            opt.step()
    for _ in range(20):
        topt.zero_grad()
        out = nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(labels))
        out.backward()
        topt.step()
        theirs.append(out.item())
    assert ours[-1] < 0.5 * ours[0]  # it learns
    assert ours == unfused
    _same_bits(model.flat_params, apart.flat_params)
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(model.layers[0].params["W"], net[0].weight.detach().numpy(),
                               rtol=1e-3, atol=2e-5)
