"""Review session 19, spatial and normalization layers: regressions from a differential
fuzz against PyTorch (float64), and a few of its configurations kept as checks."""

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")
F = torch.nn.functional
L = bp.layers


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_transpose_refuses_an_empty_spatial_axis(d):
    # (in - 1)·stride + kernel made a (N, C_out, 1, ...) output of bias alone from an
    # input with no positions; PyTorch refuses such an input
    layer = L.ConvTranspose1D if d == 1 else L.ConvTranspose2D if d == 2 else L.ConvTranspose3D
    conv = layer(3, 4, 3, stride=2, dtype=np.float64)
    x = np.zeros((2, 3) + (0,) + (4,) * (d - 1))
    with pytest.raises(ValueError, match=rf"ConvTranspose{d}D.*spatial size.*got input of shape"):
        conv.forward(x, training=True)
    with pytest.raises(ValueError, match=f"ConvTranspose{d}D"):
        conv.forward(x, output_size=(1,) * d)
    conv.forward(np.ones((2, 3) + (1,) * d))  # one position is fine


def _layout(a, kind):
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return a


def _check(ours, theirs, x, params=(), kind="C"):
    rng = np.random.default_rng(0)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    y = ours.forward(_layout(x, kind), training=True)
    dx = ours.backward(_layout(dy, kind))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, tp in params:
        np.testing.assert_allclose(ours.grads[name], tp.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cfg", [
    dict(d=1, c=(2, 4), k=4, s=1, p="same", dil=1, g=2, mode="zeros", shape=(1,)),
    dict(d=2, c=(3, 6), k=(3, 2), s=(2, 3), p=(2, 1), dil=(1, 2), g=3, mode="reflect",
         shape=(7, 6)),
    dict(d=2, c=(1, 2), k=4, s=3, p=2, dil=1, g=1, mode="circular", shape=(2, 3)),
    dict(d=3, c=(2, 2), k=2, s=(1, 2, 3), p=1, dil=(2, 1, 1), g=2, mode="replicate",
         shape=(3, 4, 5)),
])
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_conv_matches_torch(cfg, kind):
    d = cfg["d"]
    theirs = [torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d][d - 1](
        *cfg["c"], cfg["k"], stride=cfg["s"], padding=cfg["p"], dilation=cfg["dil"],
        groups=cfg["g"], padding_mode=cfg["mode"]).double()
    ours = [L.Conv1D, L.Conv2D, L.Conv3D][d - 1](
        *cfg["c"], cfg["k"], stride=cfg["s"], padding=cfg["p"], dilation=cfg["dil"],
        groups=cfg["g"], padding_mode=cfg["mode"], dtype=np.float64)
    ours.params["W"][...] = theirs.weight.detach().numpy()
    ours.params["b"][...] = theirs.bias.detach().numpy()
    x = np.random.default_rng(1).standard_normal((2, cfg["c"][0], *cfg["shape"]))
    _check(ours, theirs, x, [("W", theirs.weight), ("b", theirs.bias)], kind)


@pytest.mark.parametrize("kind", ["C", "F"])
def test_pools_with_dilation_and_ceil_mode_match_torch(kind):
    x = np.random.default_rng(2).integers(-2, 3, (1, 2, 9, 7)).astype(np.float64)  # ties
    _check(L.MaxPool2D(3, (2, 3), 1, (2, 1), ceil_mode=True, dtype=np.float64),
           lambda t: F.max_pool2d(t, 3, (2, 3), 1, (2, 1), ceil_mode=True), x, kind=kind)
    _check(L.AvgPool2D((2, 3), 3, 1, ceil_mode=True, count_include_pad=False,
                       dtype=np.float64),
           lambda t: F.avg_pool2d(t, (2, 3), 3, 1, ceil_mode=True, count_include_pad=False),
           x, kind=kind)
    _check(L.AdaptiveMaxPool2D((4, 5), dtype=np.float64),
           lambda t: F.adaptive_max_pool2d(t, (4, 5)), x, kind=kind)


def test_batchnorm_running_statistics_over_steps_match_torch():
    rng = np.random.default_rng(3)
    for momentum in (0.3, None):
        theirs = torch.nn.BatchNorm2d(3, momentum=momentum).double()
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(rng.standard_normal(3)))
            theirs.bias.copy_(torch.tensor(rng.standard_normal(3)))
        ours = L.BatchNorm(3, momentum=momentum, dtype=np.float64)
        ours.params["gamma"][...] = theirs.weight.detach().numpy()
        ours.params["beta"][...] = theirs.bias.detach().numpy()
        for step in range(3):
            theirs.zero_grad()
            x = rng.standard_normal((2 + step, 3, 3, 2)) * 3 + 1
            _check(ours, theirs, x, [("gamma", theirs.weight), ("beta", theirs.bias)],
                   "F" if step == 1 else "C")
        np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean.numpy(),
                                   rtol=1e-12)
        np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(),
                                   rtol=1e-12)
        theirs.eval()
        x = rng.standard_normal((2, 3, 4, 1))
        with torch.no_grad():
            np.testing.assert_allclose(ours.forward(x), theirs(torch.tensor(x)).numpy(),
                                       rtol=1e-10)
