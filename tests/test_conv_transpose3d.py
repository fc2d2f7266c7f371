"""ConvTranspose3D against PyTorch's nn.ConvTranspose3d, and forward(x, output_size) as
PyTorch's ConvTranspose1d/2d/3d take it."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

import backprop as bp

CLASSES = {1: "ConvTranspose1D", 2: "ConvTranspose2D", 3: "ConvTranspose3D"}

# (C_in, C_out, kernel, stride, padding, output_padding, groups, dilation, bias, N, input size)
CONFIGS_3D = [
    (2, 3, 3, 1, 0, 0, 1, 1, True, 2, (3, 4, 2)),
    (2, 3, (2, 3, 2), (2, 1, 3), (1, 0, 1), (1, 0, 2), 1, 1, True, 2, (3, 4, 2)),
    (2, 3, (3, 1, 2), (2, 1, 3), 0, (1, 0, 2), 1, 1, False, 1, (2, 3, 2)),  # batch 1
    (4, 6, 3, 2, 1, 1, 2, 1, True, 2, (2, 3, 3)),  # groups 2, the usual 2x upsampling
    (4, 2, (3, 1, 2), (1, 2, 2), 0, (1, 1, 0), 2, (2, 1, 1), False, 2, (3, 2, 4)),  # op < dil
    (2, 3, (2, 3, 2), (1, 2, 1), (1, 2, 0), 0, 1, (2, 1, 3), True, 1, (4, 3, 3)),  # dilation
    (2, 2, 1, 3, 0, 2, 1, 1, True, 2, (2, 2, 2)),  # 1x1x1 kernel, stride 3: gaps, bias tails
    (4, 4, 2, 2, 0, 0, 4, 1, True, 2, (2, 2, 2)),  # depthwise
]


def _pair(d, cin, cout, k, s, p, op, g, dil, bias, dtype=np.float64):
    """The backprop layer and the torch module with its weights (loaded by from_torch)."""
    torch = pytest.importorskip("torch")
    layer = getattr(bp, CLASSES[d])(cin, cout, k, s, p, op, g, bias, dil, dtype=dtype, rng=0)
    module = getattr(torch.nn, f"ConvTranspose{d}d")(cin, cout, k, s, p, op, g, bias, dil)
    module = module.to(getattr(torch, np.dtype(dtype).name))
    if bias:  # not the zeros ours start with
        with torch.no_grad():
            module.bias.normal_(generator=torch.Generator().manual_seed(1))
    layer.load_state_dict(bp.from_torch(layer, module.state_dict()))
    return layer, module


def _step(layer, module, x, output_size=None):
    """One training step of both: ours and theirs as (y, dx, dW, db), db None without bias."""
    torch = pytest.importorskip("torch")
    y = layer.forward(x, output_size, training=True)
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = module(xt, output_size=output_size)
    yt.backward(torch.from_numpy(dy))
    ours = (y, dx, layer.grads["W"], layer.grads.get("b"))
    theirs = (yt.detach().numpy(), xt.grad.numpy(), module.weight.grad.numpy(),
              None if module.bias is None else module.bias.grad.numpy())
    return ours, theirs


def _assert_close(ours, theirs, tol):
    for a, b in zip(ours, theirs, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("config", CONFIGS_3D, ids=str)
def test_conv_transpose3d_values_and_gradients_match_torch_in_float64(config):
    *args, n, size = config
    layer, module = _pair(3, *args)
    x = np.random.default_rng(2).standard_normal((n, args[0], *size))
    _assert_close(*_step(layer, module, x), tol=1e-12)


@pytest.mark.parametrize("config", CONFIGS_3D[1:5], ids=str)
def test_conv_transpose3d_float32_stays_float32_and_is_close_to_torch(config):
    *args, n, size = config
    layer, module = _pair(3, *args, dtype=np.float32)
    x = np.random.default_rng(3).standard_normal((n, args[0], *size)).astype(np.float32)
    _assert_close(*_step(layer, module, x), tol=1e-4)  # also checks every dtype is float32


def test_conv_transpose3d_output_shape_follows_the_formula_per_axis():
    layer = bp.ConvTranspose3D(2, 4, (3, 2, 1), stride=(2, 1, 3), padding=(1, 0, 0),
                               output_padding=(1, 0, 2), dilation=(1, 2, 1))
    y = layer.forward(np.zeros((1, 2, 4, 5, 2), np.float32))
    # (n - 1)·s - 2·p + dil·(k - 1) + op + 1
    assert y.shape == (1, 4, 3 * 2 - 2 + 2 + 1 + 1, 4 + 2 + 1, 3 + 0 + 2 + 1)


def test_conv_transpose3d_wrong_rank_and_channels_last_are_named():
    layer = bp.ConvTranspose3D(2, 3, 3)
    with pytest.raises(ValueError, match=r"ConvTranspose3D\(2, 3, 3\): expected input of shape "
                                         r"\(N, 2, D, H, W\), got \(1, 2, 4, 4\)"):
        layer.forward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"channels last\?"):
        layer.forward(np.zeros((1, 4, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(2, 3, 3\): expected input of shape "
                                         r"\(N, 2, H, W\), got \(1, 2, 4, 4, 4\)"):
        bp.ConvTranspose2D(2, 3, 3).forward(np.zeros((1, 2, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="output_padding smaller than stride or dilation"):
        bp.ConvTranspose3D(2, 3, 3, stride=(2, 1, 1), output_padding=(1, 1, 0))


def test_conv_transpose3d_repr_names_and_export():
    assert repr(bp.ConvTranspose3D(4, 2, (3, 2, 1), stride=2, groups=2)) == (
        "ConvTranspose3D(4, 2, (3, 2, 1), stride=2, groups=2)")
    assert bp.layers.ConvTranspose3D is bp.ConvTranspose3D
    from backprop._other_names import OTHER_NAMES
    assert OTHER_NAMES["ConvTranspose3d"][0] == OTHER_NAMES["Conv3DTranspose"][0] == (
        "ConvTranspose3D")
    assert bp.ConvTranspose3D(2, 3, 3, rng=0).params["W"].shape == (2, 3, 3, 3, 3)


def test_from_torch_loads_a_conv3d_and_conv_transpose3d_sequential():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose3d(4, 2, (3, 2, 3), stride=2, padding=1,
                                 output_padding=(1, 0, 1), groups=2)).double()
    ours = bp.Sequential([bp.Conv3D(2, 4, 3, stride=2, padding=1, dtype=np.float64),
                          bp.ReLU(dtype=np.float64),
                          bp.ConvTranspose3D(4, 2, (3, 2, 3), stride=2, padding=1,
                                             output_padding=(1, 0, 1), groups=2,
                                             dtype=np.float64)])
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    np.testing.assert_array_equal(ours.params["2.W"], theirs[2].weight.detach().numpy())
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 4, 6))
    y = ours.forward(x)
    assert y.shape == (2, 2, 6, 2, 6)
    np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).detach().numpy(), atol=1e-12)


def test_conv_transpose3d_summary_gemm_shapes_and_bench():
    layer = bp.ConvTranspose3D(4, 6, (2, 3, 1), stride=(2, 1, 2), groups=2, rng=0)
    model = bp.Sequential([layer, bp.ReLU()])
    assert "(N, 6, 4, 5, 3)" in str(model.summary((4, 2, 3, 2)))
    x_shape = (3, 4, 2, 3, 2)
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    y = layer.forward(x, training=True)
    seen: list[tuple[int, int, int]] = []
    matmul = np.matmul

    def recording(a, b, *args, **kwargs):
        batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])))
        seen.extend([(a.shape[-2], a.shape[-1], b.shape[-1])] * batch)
        return matmul(a, b, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(np, "matmul", recording)
        layer.forward(x, training=True)
        layer.backward(np.ones_like(y))
    assert Counter(layer.gemm_shapes(x_shape)) == Counter(seen)
    result = bp.bench(model, x_shape[1:], batch_size=3, steps=2, repeats=2, warmup=1)
    # the forward product and dW (no dx for a first layer), each g products of
    # 2·(C_in/g)·(C_out/g)·prod(k) flops per input cell, 3·2·3·2 = 36 cells
    assert result.flops == 2 * 2 * (2 * 2 * 3 * 6 * 36)


# -- forward(x, output_size) ------------------------------------------------------------

# (d, C_in, C_out, kernel, stride, padding, output_padding, groups, dilation, bias, input
# size, output_size): the output_size given to the call, within [min, min + stride - 1]
OUTPUT_SIZES = [
    (1, 2, 3, 3, 2, 1, 0, 1, 1, True, (5,), [10]),
    (1, 2, 3, 3, 3, 1, 1, 1, 1, True, (4,), (10,)),  # below the layer's own output_padding
    (1, 4, 2, 2, 3, 0, 0, 2, 2, False, (4,), (1, 2, 14)),  # a full shape
    (2, 3, 2, 3, 2, 1, 0, 1, 1, True, (4, 4), [8, 7]),
    (2, 4, 6, (2, 3), (3, 2), (0, 1), 0, 2, (1, 2), True, (3, 4), (2, 6, 9, 10)),
    (2, 2, 3, 3, 1, 1, 0, 1, 1, True, (4, 5), (4, 5)),  # stride 1: the one size
    (3, 2, 3, (2, 3, 2), (2, 1, 3), (1, 0, 1), 0, 1, 1, True, (3, 4, 2), (5, 6, 4)),
    (3, 4, 6, 3, (2, 3, 2), 1, 0, 2, (1, 1, 2), False, (2, 3, 2), [1, 6, 4, 8, 5]),
]


@pytest.mark.parametrize("config", OUTPUT_SIZES, ids=str)
def test_output_size_picks_torch_output_padding_and_its_backward(config):
    torch = pytest.importorskip("torch")
    *args, size, output_size = config
    layer, module = _pair(*args)
    x = np.random.default_rng(4).standard_normal((2, args[1], *size))
    ours, theirs = _step(layer, module, x, output_size)
    assert ours[0].shape[2:] == tuple(output_size)[-args[0]:]
    _assert_close(ours, theirs, tol=1e-12)
    assert layer.output_padding == args[6]  # the layer's own is left as it was
    assert layer.forward(x).shape == tuple(module(torch.from_numpy(x)).shape)


def test_output_size_call_caches_its_output_padding_for_backward():
    torch = pytest.importorskip("torch")
    layer, module = _pair(2, 2, 3, 3, 2, 1, 0, 1, 1, True)
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 3))
    y = layer(x, (6, 5), training=True)  # called as a torch module is
    assert y.shape == (2, 3, 6, 5) and layer.output_padding == 0
    layer.forward(x)  # an inference call without output_size leaves the cache alone
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3, 6, 5\)"):
        layer.backward(np.zeros((2, 3, 5, 5)))
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = layer.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    module(xt, output_size=[6, 5]).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], module.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)
    assert not layer.has_cache


@pytest.mark.parametrize("d, output_size", [(1, [12]), (1, (6,)), (2, [9, 8]), (2, (1, 7)),
                                            (3, (7, 7, 10)), (3, [1, 3, 7, 7, 6])])
def test_output_size_out_of_range_is_refused_by_name_as_in_torch(d, output_size):
    torch = pytest.importorskip("torch")
    layer, module = _pair(d, 2, 3, 3, 2, 1, 0, 1, 1, True, dtype=np.float32)
    x = np.zeros((1, 2, *(4,) * d), np.float32)
    lo, hi = (7,) * d, (8,) * d  # (4 - 1)·2 - 2 + 2 + 1, plus stride - 1
    name = rf"{CLASSES[d]}\(2, 3, 3, stride=2, padding=1\)"
    given = re.escape(str(tuple(output_size)[-d:]))
    with pytest.raises(ValueError, match=rf"{name}: requested an output size of {given}, but "
                                         rf"valid sizes range from {re.escape(str(lo))} to "
                                         rf"{re.escape(str(hi))}"):
        layer.forward(x, output_size)
    with pytest.raises(ValueError, match="valid sizes range"):
        module(torch.from_numpy(x), output_size=output_size)


def test_output_size_of_the_wrong_length_or_type_is_named():
    layer = bp.ConvTranspose2D(2, 3, 3, stride=2)
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(2, 3, 3, stride=2\): expected "
                                         r"output_size as 2 ints \(the spatial size\) or 4 "
                                         r"\(a full shape\), got \[9, 9, 9\]"):
        layer.forward(x, [9, 9, 9])
    with pytest.raises(ValueError, match="got 9"):
        layer.forward(x, 9)
    with pytest.raises(TypeError, match=r"expected output_size as ints, got \[9.0, 9\]"):
        layer.forward(x, [9.0, 9])
    assert layer.forward(x, np.array([10, 9])).shape == (1, 3, 10, 9)
