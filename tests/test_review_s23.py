"""Session 23: findings of this session's reviews and fixes, each with a test that failed before."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

X4 = np.ones((2, 3, 8, 8), np.float32)

HUGE = {
    "AdaptiveAvgPool2D": lambda: bp.AdaptiveAvgPool2D(10**12)(X4),
    "AdaptiveMaxPool1D": lambda: bp.AdaptiveMaxPool1D(10**12)(X4[:, :, 0]),
    "ZeroPad2D": lambda: bp.ZeroPad2D(10**12)(X4),
    "ReplicationPad1D": lambda: bp.ReplicationPad1D(10**12)(X4[:, :, 0]),
    "Upsample": lambda: bp.Upsample(scale_factor=1e30)(X4),
    "Upsample(size": lambda: bp.Upsample(size=10**12)(X4),
    "ConvTranspose2D": lambda: bp.ConvTranspose2D(3, 4, 3, stride=10**12)(X4),
    "Conv2D(3, 4, 3, padding=": lambda: bp.Conv2D(3, 4, 3, padding=10**12)(X4),
    "Conv3D": lambda: bp.Conv3D(3, 4, 3, padding=10**12)(X4[:, :, None]),
    "padding_mode='replicate'": lambda: bp.Conv2D(3, 4, 3, padding=10**12,
                                                  padding_mode="replicate")(X4),
    "groups=3": lambda: bp.Conv2D(3, 3, 3, padding=10**12, groups=3)(X4),
    "Unfold": lambda: bp.Unfold(2, padding=10**12)(X4),
}


@pytest.mark.parametrize("named", sorted(HUGE))
def test_arguments_that_ask_for_terabytes_at_forward_are_a_memory_error_naming_the_layer(named):
    """A padding, output size, scale or stride typed wrong: NumPy's MemoryError or its
    'array is too big' / 'Maximum allowed size exceeded' ValueError named no layer."""
    with pytest.raises(MemoryError, match="fit this machine's memory") as err:
        HUGE[named]()
    assert named in str(err.value) and "input of shape (2, 3, " in str(err.value)


def test_sequential_forward_takes_src_key_padding_mask_as_the_call_does():
    rng = np.random.default_rng(0)
    block = bp.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, rng=0)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    pad = np.zeros((3, 5), bool)
    pad[0, 3:] = pad[2, 1:] = True
    y = block.forward(x, src_key_padding_mask=pad)
    np.testing.assert_array_equal(y, block(x, src_key_padding_mask=pad))
    np.testing.assert_array_equal(y, block.forward(x, mask=~pad))
    assert not np.array_equal(y, block.forward(x))  # the mask is used
    with pytest.raises(ValueError, match="one of mask .* got mask and src_key_padding_mask"):
        block.forward(x, mask=~pad, src_key_padding_mask=pad)


@pytest.mark.parametrize("kind", ["LayerNorm", "GroupNorm"])
def test_row_norms_of_float32_values_whose_squares_overflow_are_right(kind):
    """|x| ~ 1e37 in float32: Σ (x - mu)² overflowed, inv_std was 0 and the output zeros
    (PyTorch's float32 gives NaN); the overflowed rows' statistics now come from float64,
    and the backward forms inv_std·g_xc·inv_std so that inv_std² does not underflow."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 8, 2)) * 1e37).astype(np.float32)
    x[1] /= 1e37  # an ordinary sample beside it
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = bp.LayerNorm((8, 2)) if kind == "LayerNorm" else bp.GroupNorm(2, 8)
    y = layer.forward(x, training=True)  # quietly: warnings are errors in the tests
    dx = layer.backward(dy)
    t = torch.tensor(x.astype(np.float64), requires_grad=True)
    ref = (torch.nn.functional.layer_norm(t, (8, 2)) if kind == "LayerNorm"
           else torch.nn.functional.group_norm(t, 2))
    ref.backward(torch.tensor(dy.astype(np.float64)))
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    for n in range(2):  # each sample's dx on its own scale (1e-37 against 1)
        np.testing.assert_allclose(dx[n], t.grad.numpy()[n], rtol=1e-4,
                                   atol=1e-5 * np.abs(t.grad.numpy()[n]).max())


def test_layer_norm_of_a_row_with_inf_is_nan_quietly_as_pytorch():
    x = np.ones((2, 8), np.float32)
    x[0, 0] = np.inf
    y = bp.LayerNorm(8)(x)
    assert np.isnan(y[0]).all() and np.array_equal(y[1], np.zeros(8, np.float32))
