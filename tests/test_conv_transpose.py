"""ConvTranspose1D/2D: PyTorch's nn.ConvTranspose1d/2d, values and gradients, and its rules."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import backprop as bp

# (d, C_in, C_out, kernel, stride, padding, output_padding, groups, dilation, bias, input size)
CONFIGS = [
    (2, 2, 3, 3, 1, 0, 0, 1, 1, True, (4, 5)),
    (2, 2, 3, 3, 1, 1, 0, 1, 1, True, (4, 5)),
    (2, 3, 2, 3, 2, 1, 1, 1, 1, True, (3, 4)),  # the usual 2x upsampling
    (2, 2, 4, 2, 2, 0, 0, 1, 1, False, (3, 3)),
    (2, 2, 3, 2, 3, 0, 2, 1, 1, True, (3, 2)),  # stride > kernel: gaps, and a bias-only tail
    (2, 2, 3, 1, 3, 0, 0, 1, 1, True, (2, 3)),  # 1x1 kernel, stride 3: two rows of gaps each
    (2, 2, 3, (2, 3), (3, 2), (0, 1), (2, 1), 1, 1, True, (3, 4)),
    (2, 2, 3, (3, 2), (1, 2), (2, 1), (1, 0), 1, (2, 3), True, (4, 5)),  # op below dilation
    (2, 2, 3, 3, 1, 2, 0, 1, 1, True, (5, 5)),  # padding crops more than the kernel adds
    (2, 2, 2, 3, 1, 0, 2, 1, 3, True, (2, 2)),  # op 2 < dilation 3: bias-only last rows
    (2, 4, 6, 3, 2, 1, 1, 2, 1, True, (3, 4)),
    (2, 6, 3, (2, 3), (2, 1), (1, 0), (1, 0), 3, (1, 2), False, (3, 4)),
    (2, 4, 4, 3, 2, 1, 1, 4, 1, True, (3, 3)),  # depthwise
    (2, 1, 1, 4, 2, 1, 0, 1, 1, True, (1, 1)),  # one pixel in
    (1, 2, 3, 3, 2, 1, 1, 1, 1, True, (5,)),
    (1, 3, 2, 2, 3, 0, 2, 1, 1, True, (4,)),
    (1, 4, 2, 2, 3, 0, 1, 2, 2, False, (4,)),
    (1, 2, 2, 5, 1, 3, 0, 1, 1, True, (4,)),
    (1, 4, 6, 3, 1, 0, 1, 2, 2, True, (6,)),
]


def _pair(d, cin, cout, k, s, p, op, g, dil, bias, dtype=np.float64):
    """The backprop layer and the torch module with its weights."""
    torch = pytest.importorskip("torch")
    cls = bp.ConvTranspose1D if d == 1 else bp.ConvTranspose2D
    tcls = torch.nn.ConvTranspose1d if d == 1 else torch.nn.ConvTranspose2d
    layer = cls(cin, cout, k, s, p, op, g, bias, dil, dtype=dtype, rng=0)
    if bias:  # not the zeros they start with
        layer.params["b"][...] = np.random.default_rng(1).standard_normal(cout)
    module = tcls(cin, cout, k, s, p, op, g, bias, dil).to(getattr(torch, np.dtype(dtype).name))
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in
                            zip(("weight", "bias"), layer.params.values(), strict=False)})
    return layer, module


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_values_and_gradients_match_torch_in_float64(config):
    torch = pytest.importorskip("torch")
    *args, size = config
    layer, module = _pair(*args)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, args[1], *size))
    y = layer.forward(x, training=True)
    xt = torch.from_numpy(x).requires_grad_()
    yt = module(xt)
    assert y.shape == tuple(yt.shape)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    dx = layer.backward(dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], module.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)
    if args[-1]:
        np.testing.assert_allclose(layer.grads["b"], module.bias.grad.numpy(), rtol=1e-12,
                                   atol=1e-12)


def test_outputs_no_input_reaches_hold_the_bias_alone():
    # kernel 1, stride 3: only every third row and column is stamped; output_padding 2
    # adds two more rows and columns after the last stamp
    layer = bp.ConvTranspose2D(2, 3, 1, stride=3, output_padding=2, dtype=np.float64, rng=0)
    layer.params["b"][...] = [1.0, 2.0, 3.0]
    y = layer.forward(np.random.default_rng(0).standard_normal((2, 2, 2, 2)))
    assert y.shape == (2, 3, 6, 6)
    stamped = np.zeros((6, 6), bool)
    stamped[::3, ::3] = True
    np.testing.assert_array_equal(y[:, :, ~stamped], np.broadcast_to([[1.0], [2.0], [3.0]],
                                                                       (2, 3, 36 - 4)))
    assert np.all(y[:, :, stamped] != np.array([1.0, 2.0, 3.0])[:, None])


@pytest.mark.parametrize("d", [1, 2])
def test_float32_stays_float32_and_is_close_to_torch_float32(d):
    torch = pytest.importorskip("torch")
    layer, module = _pair(d, 8, 6, 3, 2, 1, 1, 2, 1, True, dtype=np.float32)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, *(7,) * d)).astype(np.float32)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = module(xt)
    yt.backward(torch.from_numpy(dy))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())
    for ours, theirs in ((y, yt), (dx, xt.grad), (layer.grads["W"], module.weight.grad),
                         (layer.grads["b"], module.bias.grad)):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_from_torch_loads_a_sequential_with_a_conv2d_and_a_conv_transpose2d():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
                                 torch.nn.ReLU(),
                                 torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1,
                                                          output_padding=1, groups=2)).double()
    ours = bp.Sequential([bp.Conv2D(3, 4, 3, stride=2, padding=1, dtype=np.float64),
                          bp.ReLU(dtype=np.float64),
                          bp.ConvTranspose2D(4, 2, 3, stride=2, padding=1, output_padding=1,
                                             groups=2, dtype=np.float64)])
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    np.testing.assert_array_equal(ours.params["2.W"], theirs[2].weight.detach().numpy())
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    y = ours.forward(x)
    assert y.shape == (2, 2, 8, 8)
    np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).detach().numpy(), atol=1e-12)


def test_from_torch_names_a_missing_bias():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.ConvTranspose1d(2, 3, 3, bias=False)
    with pytest.raises(ValueError, match="got one without it \\(build the layer with bias=False"):
        bp.from_torch(bp.ConvTranspose1D(2, 3, 3), theirs.state_dict())


def test_autoencoder_with_a_strided_conv_and_a_conv_transpose_learns():
    rng = np.random.default_rng(0)
    grid = np.linspace(0, np.pi, 8)
    phase = rng.uniform(0, np.pi, (128, 1, 1, 1))
    x = (np.sin(grid[:, None] + phase) * np.cos(grid[None, :] - phase)).astype(np.float32)
    model = bp.Sequential([bp.Conv2D(1, 8, 3, stride=2, padding=1, rng=0), bp.Tanh(),
                           bp.ConvTranspose2D(8, 1, 3, stride=2, padding=1, output_padding=1,
                                              rng=1)])
    assert model.forward(x[:2]).shape == x[:2].shape
    history = model.fit(x, x, loss=bp.MeanSquaredError(),
                        optimizer=bp.Adam(model.parameters(), lr=1e-2), epochs=8,
                        batch_size=16, seed=0, progress=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0], losses


@pytest.mark.parametrize("args, kwargs, match", [
    ((2, 3, 3), {"stride": 2, "output_padding": 2},
     r"ConvTranspose2D: expected output_padding smaller than stride or dilation along each "
     r"axis \(as in PyTorch\), got output_padding 2 with stride 2 and dilation 1"),
    ((2, 3, 3), {"output_padding": (0, 1)}, "got output_padding \\(0, 1\\) with stride 1"),
    ((2, 3, 3), {"stride": (2, 1), "dilation": (1, 2), "output_padding": (1, 2)},
     "output_padding \\(1, 2\\)"),
    ((2, 3, 3), {"padding_mode": "reflect"},
     "expected padding_mode 'zeros'.*got 'reflect'"),
    ((4, 6, 3), {"groups": 4}, "divisible by groups, got 4, 6 and groups=4"),
    ((2, 3, 3), {"padding": -1}, "expected padding >= 0"),
])
def test_bad_arguments_are_refused_by_name(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bp.ConvTranspose2D(*args, **kwargs)


def test_output_padding_below_dilation_alone_is_accepted_as_in_torch():
    layer = bp.ConvTranspose2D(2, 3, 3, dilation=2, output_padding=1)
    assert layer.forward(np.zeros((1, 2, 4, 4), np.float32)).shape == (1, 3, 9, 9)
    bp.ConvTranspose1D(2, 3, 3, stride=3, dilation=2, output_padding=2)


def test_wrong_channels_and_channels_last_input_are_named():
    layer = bp.ConvTranspose2D(3, 2, 3, stride=2)
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(3, 2, 3, stride=2\): expected "
                                         r"input of shape \(N, 3, H, W\), got \(4, 2, 5, 5\)"):
        layer.forward(np.zeros((4, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"channels last\? .* x.transpose\(0, 3, 1, 2\)"):
        layer.forward(np.zeros((4, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, L\).*x.transpose\(0, 2, 1\)"):
        bp.ConvTranspose1D(3, 2, 3).forward(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(TypeError, match="expected input of dtype float32, got float64"):
        layer.forward(np.zeros((4, 3, 5, 5)))


def test_an_input_too_small_for_any_output_is_named():
    layer = bp.ConvTranspose1D(1, 1, 1, stride=2, padding=2)  # Lo = 2·(L - 1) - 3
    with pytest.raises(ValueError, match=r"expected input spatial size of at least \(3,\).*"
                                         r"got input of shape \(1, 1, 2\)"):
        layer.forward(np.zeros((1, 1, 2), np.float32))
    assert layer.forward(np.zeros((1, 1, 3), np.float32)).shape == (1, 1, 1)


def test_repr_shows_the_arguments_away_from_their_defaults():
    assert repr(bp.ConvTranspose2D(4, 2, 3)) == "ConvTranspose2D(4, 2, 3)"
    assert repr(bp.ConvTranspose2D(4, 2, (3, 2), stride=2, padding=(1, 0), output_padding=1,
                                   groups=2, bias=False, dilation=(1, 2), dtype=np.float64)) == (
        "ConvTranspose2D(4, 2, (3, 2), stride=2, padding=(1, 0), output_padding=1, groups=2, "
        "bias=False, dilation=(1, 2), dtype='float64')")
    assert repr(bp.ConvTranspose1D(2, 3, 4, 2)) == "ConvTranspose1D(2, 3, 4, stride=2)"


def test_weight_layout_and_default_init_follow_pytorch_fans():
    layer = bp.ConvTranspose2D(16, 32, 3, groups=2, rng=0)
    assert np.abs(bp.ConvTranspose2D(8, 1, 4, rng=0).params["W"]).max() <= np.sqrt(6 / 144)
    w = layer.params["W"]
    assert w.shape == (16, 16, 3, 3) and layer.params["b"].shape == (32,)
    # glorot: fan_in = C_out/groups·kh·kw, fan_out = C_in·kh·kw, read from W's layout
    bound = np.sqrt(6 / (16 * 9 + 16 * 9))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    np.testing.assert_array_equal(layer.params["b"], 0)
    torch_like = bp.ConvTranspose2D(16, 32, 3, groups=2, init="torch_uniform",
                                    bias_init="torch_uniform", rng=0)
    assert np.abs(torch_like.params["b"]).max() <= 1 / np.sqrt(16 * 9)


def test_save_and_load_round_trip(tmp_path):
    model = bp.Sequential([bp.ConvTranspose2D(2, 4, (3, 2), stride=2, padding=1,
                                              output_padding=1, groups=2, rng=0),
                           bp.ReLU(), bp.Flatten()])
    model.params["0.b"][...] = np.arange(4)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    one = bp.ConvTranspose1D(4, 3, 3, stride=2, bias=False, dtype=np.float64, rng=1)
    bp.save(one, tmp_path / "one.npz")
    again = bp.load(tmp_path / "one.npz")
    assert repr(again) == repr(one)
    np.testing.assert_array_equal(again.params["W"], one.params["W"])


def _recorded_products(monkeypatch, layer, x, input_grad):
    """Every matrix product one training step of ``layer`` runs, as ``(m, k, n)``."""
    seen: list[tuple[int, int, int]] = []
    matmul = np.matmul

    def recording(a, b, *args, **kwargs):
        batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])))
        seen.extend([(a.shape[-2], a.shape[-1], b.shape[-1])] * batch)
        return matmul(a, b, *args, **kwargs)

    y = layer.forward(x, training=True)
    dy = np.ones_like(y)
    with monkeypatch.context() as m:
        m.setattr(np, "matmul", recording)
        layer.forward(x, training=True)
        layer.backward(dy) if input_grad else layer.backward_params(dy)
    return seen


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("layer, x_shape", [
    (bp.ConvTranspose2D(6, 4, 3, stride=2, padding=1, output_padding=1, rng=0), (5, 6, 7, 6)),
    (bp.ConvTranspose2D(6, 4, (2, 3), stride=(3, 1), groups=2, rng=0), (2, 6, 4, 5)),
    (bp.ConvTranspose1D(4, 8, 5, stride=2, dilation=2, groups=4, bias=False, rng=0), (3, 4, 9)),
], ids=repr)
def test_gemm_shapes_are_the_products_the_step_runs(monkeypatch, layer, x_shape, input_grad):
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    seen = _recorded_products(monkeypatch, layer, x, input_grad)
    assert Counter(layer.gemm_shapes(x_shape, input_grad)) == Counter(seen)
    g, c_in, c_out, k = layer.groups, layer.in_channels, layer.out_channels, np.prod(layer._k)
    cells = x_shape[0] * np.prod(x_shape[2:])  # one column per input pixel
    per_product = 2 * (c_in // g) * (c_out // g) * k * cells  # multiply-adds of one W_g product
    flops = sum(2 * m * kk * n for m, kk, n in layer.gemm_shapes(x_shape, input_grad))
    assert flops == per_product * g * (3 if input_grad else 2)


def test_bench_counts_the_forward_and_weight_products():
    layer = bp.ConvTranspose2D(4, 2, 3, stride=2, padding=1, output_padding=1, rng=0)
    result = bp.bench(bp.Sequential([layer]), (4, 5, 5), batch_size=3, steps=2, repeats=2,
                      warmup=1)
    # the first layer's dx is not formed: the forward product and dW, 2·C_in·C_out·9 per pixel
    assert result.flops == 2 * (2 * 4 * 2 * 9 * 3 * 25)
