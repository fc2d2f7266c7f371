"""Review of padded sequences (session 19): regressions for the bugs found.

- NaN or inf in the padded steps of ``lengths=``/``mask=`` leaked into the weight gradients
  (``0 * nan``) or raised a RuntimeWarning (``0 * inf``); PyTorch's packed sequences never
  read the padding.
- ``lengths`` of huge whole floats raised NumPy's cast RuntimeWarning, not the range error.
- A float ``src_key_padding_mask`` (PyTorch adds a float mask to the scores, as this
  library's own ``MultiheadAttention(key_padding_mask=)`` does) was read as booleans.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

KINDS = ("LSTM", "GRU", "RNN")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_nan_or_inf_in_the_padding_is_never_read(kind, pad, bidirectional):
    """Padding of NaN or inf gives exactly what padding of zeros gives: outputs, state, dx
    (0 at the padding) and every gradient, finite, without a warning."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2))
    lengths = np.array([5, 2, 0])
    padded = np.arange(5) >= lengths[:, None]
    x[padded] = 0.0
    dirty = x.copy()
    dirty[padded] = pad

    def run(inputs):
        layer = getattr(bp, kind)(2, 3, dtype=np.float64, rng=1)
        if bidirectional:
            layer = bp.Bidirectional(layer, rng=2)
        y = layer.forward(inputs, training=True, lengths=lengths)
        dx = layer.backward(np.ones_like(y))
        return y, dx, dict(layer.grads)

    y0, dx0, g0 = run(x)
    y1, dx1, g1 = run(dirty)  # the suite runs with warnings as errors
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    assert not dx1[padded].any()
    for name, g in g0.items():
        assert np.isfinite(g1[name]).all(), name
        np.testing.assert_array_equal(g1[name], g, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_nan_in_dy_at_padded_steps_is_not_read(kind):
    """A padded step's output is the constant 0: its dy (NaN from a loss on the padding,
    say) does not reach dx or the gradients."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 2))
    mask = np.array([[True, False, True, True], [True, True, False, False]])
    dy = rng.standard_normal((2, 4, 3))
    layer = getattr(bp, kind)(2, 3, dtype=np.float64, rng=0)
    layer.forward(x, training=True, mask=mask)
    want = layer.backward(dy * mask[..., None])
    grads = {k: g.copy() for k, g in layer.grads.items()}
    dy[~mask] = np.nan
    layer.forward(x, training=True, mask=mask)
    np.testing.assert_array_equal(layer.backward(dy), want)
    for name, g in grads.items():
        np.testing.assert_array_equal(layer.grads[name], g, err_msg=name)


def test_nan_padding_matches_torch_packed_sequences():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence
    layer = bp.LSTM(2, 3, return_sequences=False, dtype=np.float64, rng=0)
    module = torch.nn.LSTM(2, 3, batch_first=True).double()
    module.load_state_dict({"weight_ih_l0": torch.tensor(layer.params["W"].T.copy()),
                            "weight_hh_l0": torch.tensor(layer.params["U"].T.copy()),
                            "bias_ih_l0": torch.tensor(layer.params["b"]),
                            "bias_hh_l0": torch.tensor(layer.params["b_h"])})
    x = np.random.default_rng(2).standard_normal((2, 3, 2))
    x[1, 1:] = np.nan
    y = layer.forward(x, training=True, lengths=[3, 1])
    layer.backward(np.ones_like(y))
    xt = torch.tensor(x, requires_grad=True)
    _, (h_n, _) = module(pack_padded_sequence(xt, torch.tensor([3, 1]), batch_first=True,
                                              enforce_sorted=False))
    h_n[0].sum().backward()
    np.testing.assert_allclose(y, h_n[0].detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.grads["W"], module.weight_ih_l0.grad.numpy().T,
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lengths", [[1e30, 1.0], [-1e30, 1.0]])
def test_huge_float_lengths_are_the_range_error(lengths):
    layer = bp.GRU(2, 3, rng=0)
    with pytest.raises(ValueError, match=r"^GRU\(2, 3\): expected lengths in \[0, T\] = "
                                         r"\[0, 4\]"):
        layer(np.zeros((2, 4, 2), np.float32), lengths=lengths)


def test_a_float_src_key_padding_mask_is_refused_not_read_as_booleans():
    """PyTorch adds a float key padding mask to the scores (as MultiheadAttention's own
    key_padding_mask= here): read as True/False it gave another answer, silently."""
    model = bp.Sequential([bp.MultiheadAttention(4, 2, dtype=np.float64, rng=0)])
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    pad = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    with pytest.raises(TypeError, match=r"^Sequential: expected src_key_padding_mask as "
                                        r"booleans \(True at padding\), got dtype float64"):
        model(x, src_key_padding_mask=pad)
    model(x, src_key_padding_mask=pad.astype(bool))  # booleans, and Keras' mask= 0s and 1s
    np.testing.assert_array_equal(model.forward(x, mask=1.0 - pad),
                                  model(x, src_key_padding_mask=pad.astype(bool)))
