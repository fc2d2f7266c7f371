"""s37 speed (d): Sequential runs a ReLU followed by max pooling as the pool, then the ReLU
on the pooled output (backprop/layers/_fused.py), with the same values as the two layers
run one after the other."""

import numpy as np
import pytest

import backprop as bp


def _model(pool: bp.Layer, c: int = 3, d: int = 2) -> bp.Sequential:
    conv = {1: bp.Conv1D, 2: bp.Conv2D, 3: bp.Conv3D}[d]
    return bp.Sequential([conv(c, 4, 3, padding=1, rng=0), bp.ReLU(), pool, bp.Flatten()])


def _apart(model: bp.Sequential, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, ...]:
    """y, dx and the conv's grads with each layer run on its own, in the written order."""
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=True)
    g = dy
    for layer in reversed(model.layers):
        g = layer.backward(g)
    conv = model.layers[0]
    return h, g, conv.grads["W"].copy(), conv.grads["b"].copy()


def _together(model: bp.Sequential, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, ...]:
    y = np.array(model.forward(x, training=True))
    dx = model.backward(dy)
    conv = model.layers[0]
    return y, dx, conv.grads["W"].copy(), conv.grads["b"].copy()


@pytest.mark.parametrize(("pool", "d", "shape"), [
    (lambda: bp.MaxPool2D(2), 2, (4, 3, 8, 8)),
    (lambda: bp.MaxPool2D(3, 2, padding=1), 2, (2, 3, 9, 7)),
    (lambda: bp.MaxPool2D(2, ceil_mode=True), 2, (2, 3, 7, 5)),
    (lambda: bp.MaxPool1D(2), 1, (3, 3, 10)),
    (lambda: bp.MaxPool3D(2), 3, (2, 3, 4, 4, 4)),
])
def test_relu_then_max_pool_matches_the_layers_apart(pool, d, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0] = -1.0  # all-negative windows after the conv's bias-free first channel...
    fused = _model(pool(), d=d)
    apart = _model(pool(), d=d)
    apart.flat_params = fused.flat_params
    apart.layers[0].params["b"][:] = -0.5  # ...and windows whose maximum is <= 0
    fused.layers[0].params["b"][:] = -0.5
    y = fused.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    fused.clear_cache()
    got, want = _together(fused, x, dy), _apart(apart, x, dy)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    assert (got[0] == 0).any() and (got[0] > 0).any()


def test_the_relu_runs_on_the_pooled_output():
    """The speed-up itself: the ReLU's passes run on the pool's output (a quarter of the
    elements), not on the conv's (fails before: the ReLU kept the conv's full shape)."""
    model = _model(bp.MaxPool2D(2))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = model.forward(x, training=True)
    assert model.layers[1].cache["y"].shape == (2, 4, 4, 4)
    assert model.layers[2].cache["arg"].shape == (2, 4, 4, 4)
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and model.layers[1].cache["y"] is None  # freed


def test_non_finite_values_match_the_layers_apart():
    pool = bp.MaxPool2D(2)
    model = bp.Sequential([bp.Identity(), bp.ReLU(), pool])
    x = np.array([[[[np.nan, 1, -np.inf, -np.inf],
                    [2, 3, -np.inf, -np.inf],
                    [np.inf, -1, -2, -3],
                    [0, 5, -4, 0]]]], np.float32)
    dy = np.array([[[[1, 2], [3, -4]]]], np.float32)
    y = model.forward(x, training=True)
    dx = model.backward(dy)
    relu, p = bp.ReLU(), bp.MaxPool2D(2)
    want_y = p.forward(relu.forward(x, training=True), training=True)
    want_dx = relu.backward(p.backward(dy))
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dx, want_dx)
    assert np.isnan(y[0, 0, 0, 0]) and dx[0, 0, 0, 0] == 1 and y[0, 0, 1, 0] == np.inf


def test_a_first_relu_and_a_traced_model_run_as_written():
    """A model that starts with the pair (its backward's last layer runs alone) and layers
    whose methods are replaced (bp.trace) keep the written order."""
    first = bp.Sequential([bp.ReLU(), bp.MaxPool2D(2), bp.Flatten(), bp.Dense(4, 2, rng=0)])
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    first.forward(x, training=True)
    assert first.layers[0].cache["y"].shape == x.shape
    assert first.backward(np.ones((2, 2), np.float32)).shape == x.shape
    model = _model(bp.MaxPool2D(2))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with bp.trace(model) as t:
        model.forward(x, training=True)
        assert model.layers[1].cache["y"].shape == (2, 4, 8, 8)
        model.backward(np.ones((2, 64), np.float32))
    assert t[1].forward[0].y_shape == (2, 4, 8, 8)


def test_training_agrees_with_pytorch():
    """20 SGD steps of conv-ReLU-pool-Dense against PyTorch from the same weights."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 8)
    model = bp.Sequential([bp.Conv2D(1, 4, 3, padding=1, rng=0), bp.ReLU(), bp.MaxPool2D(2),
                           bp.Flatten(), bp.Dense(64, 3, rng=1)])
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(model.layers[0].params["W"]))
        net[0].bias.copy_(torch.from_numpy(model.layers[0].params["b"]))
        net[4].weight.copy_(torch.from_numpy(model.layers[4].params["W"].T.copy()))
        net[4].bias.copy_(torch.from_numpy(model.layers[4].params["b"]))
    loss, opt = bp.SoftmaxCrossEntropy(), bp.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    ours, theirs = [], []
    for _ in range(20):
        ours.append(loss.forward(model.forward(x, training=True), labels))
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        topt.zero_grad()
        out = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)),
                                                torch.from_numpy(labels))
        out.backward()
        topt.step()
        theirs.append(out.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
