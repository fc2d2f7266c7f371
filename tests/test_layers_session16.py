"""Unfold, Fold, LocalResponseNorm, LPPool1D/2D and ChannelShuffle against PyTorch 2.13."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")

TOL = {np.float64: (1e-12, 1e-12), np.float32: (2e-5, 2e-5)}


def against_torch(layer, module, x, dtype, rng=None):
    """Forward and dx of ``layer`` and of torch's ``module`` on ``x`` (NaN where torch has it)."""
    rng = rng or np.random.default_rng(1)
    x = x.astype(dtype)
    y = layer.forward(x, training=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx = layer.backward(dy)
    rtol, atol = TOL[dtype]
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol)
    return y, dx


def strided(rng, shape):
    """A non-contiguous view of normal draws (every other column of a wider array)."""
    wide = rng.standard_normal((*shape[:-1], 2 * shape[-1]))
    return wide[..., ::2]


FOLDS = [  # (N, C, H, W), kernel, dilation, padding, stride
    ((2, 3, 7, 6), (2, 3), 1, 0, 1),
    ((2, 2, 9, 8), 3, (2, 1), (1, 2), (2, 3)),
    ((1, 2, 5, 5), 1, 1, 0, 1),
    ((2, 1, 4, 21), (3, 2), 1, 1, (1, 2)),
    ((1, 2, 6, 7), (2, 2), 2, 2, 3),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, k, d, p, s", FOLDS)
def test_unfold_and_fold_match_torch(dtype, shape, k, d, p, s):
    rng = np.random.default_rng(0)
    x = strided(rng, shape)
    cols, _ = against_torch(bp.Unfold(k, d, p, s, dtype=dtype), torch.nn.Unfold(k, d, p, s),
                            x, dtype)
    against_torch(bp.Fold(shape[2:], k, d, p, s, dtype=dtype),
                  torch.nn.Fold(shape[2:], k, d, p, s), rng.standard_normal(cols.shape), dtype)


@pytest.mark.parametrize("shape, k, d, p, s", FOLDS)
def test_fold_of_unfold_is_x_times_the_overlap_counts(shape, k, d, p, s):
    x = np.random.default_rng(2).standard_normal(shape)
    unfold, fold = bp.Unfold(k, d, p, s, dtype=np.float64), bp.Fold(shape[2:], k, d, p, s,
                                                                   dtype=np.float64)
    counts = fold(unfold(np.ones(shape)))
    np.testing.assert_allclose(fold(unfold(x)), x * counts, rtol=1e-14, atol=1e-14)
    want = torch.nn.Fold(shape[2:], k, d, p, s)(torch.nn.Unfold(k, d, p, s)(torch.tensor(x)))
    np.testing.assert_allclose(fold(unfold(x)), want.numpy(), rtol=1e-13, atol=1e-13)


def test_unfold_rows_are_channel_then_kernel_row_then_column():
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3)
    cols = bp.Unfold(2)(x)
    assert cols.shape == (1, 8, 4)
    np.testing.assert_array_equal(cols[0, :, 0], [0, 1, 3, 4, 9, 10, 12, 13])


def test_unfold_and_fold_refuse_bad_inputs():
    with pytest.raises(ValueError, match=r"Unfold\(2\): expected input of shape \(N, C, H, W\)"):
        bp.Unfold(2)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"Unfold\(5\): expected input spatial size of at least"):
        bp.Unfold(5)(np.zeros((1, 1, 4, 6), np.float32))
    with pytest.raises(ValueError, match=r"Fold\(4, 2\): expected input of shape \(N, C·4, 9\)"
                                         r".*got \(1, 8, 10\)"):
        bp.Fold(4, 2)(np.zeros((1, 8, 10), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C·4, 9\).*\(1, 6, 9\)"):
        bp.Fold(4, 2)(np.zeros((1, 6, 9), np.float32))
    with pytest.raises(ValueError, match="Fold.*expected output_size plus padding to hold one"):
        bp.Fold(2, 3)
    with pytest.raises(TypeError, match=r"Unfold: expected kernel_size as an int or 2 ints"):
        bp.Unfold(2.5)
    with pytest.raises(ValueError, match="Fold: expected stride >= 1"):
        bp.Fold(4, 2, stride=0)


LRN = [((2, 7, 3, 4), (3,)), ((2, 5, 6), (4, 1e-2, 0.6, 2.0)),
       ((2, 6, 2, 2, 3), (1, 0.3, 0.9, 1.5)), ((1, 3, 5), (6, 0.5, 1.2, 0.5)),
       ((3, 8, 4), (5, 2.0, 0.75, 1.0))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, args", LRN)
def test_local_response_norm_matches_torch(dtype, shape, args):
    x = strided(np.random.default_rng(3), shape)
    against_torch(bp.LocalResponseNorm(*args, dtype=dtype), torch.nn.LocalResponseNorm(*args),
                  x, dtype)


def test_local_response_norm_window_is_torchs():
    # one unit channel: size 4 reaches 2 channels before it and 1 after
    x = np.zeros((1, 6, 1))
    x[0, 2] = 1.0
    y = bp.LocalResponseNorm(4, alpha=4.0, beta=1.0, k=1.0, dtype=np.float64)(x + 0)
    assert y[0, 2, 0] == 0.5  # 1 / (1 + 4/4 · 1)
    probe = np.ones((1, 6, 1))
    probe[0, 2] = 3.0  # which channels see channel 2's energy
    y = bp.LocalResponseNorm(4, 1.0, 1.0, 0.0, dtype=np.float64)(probe)
    want = torch.nn.LocalResponseNorm(4, 1.0, 1.0, 0.0)(torch.tensor(probe)).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-15)


LPPOOL2 = [(2, 3, None, False, (2, 3, 7, 8)), (3, (2, 3), (1, 2), True, (2, 2, 7, 8)),
           (1.5, 2, 1, False, (1, 2, 4, 5)), (1, 3, 2, True, (2, 2, 6, 7)),
           (0.5, 2, 2, True, (1, 1, 5, 5)), (4, (1, 2), (2, 1), True, (1, 2, 5, 3))]
LPPOOL1 = [(2, 3, None, False, (2, 3, 7)), (3, 2, 1, True, (2, 2, 8)), (1, 4, 3, True, (2, 2, 9)),
           (0.5, 2, 2, False, (1, 2, 6)), (2.5, 3, 2, True, (1, 1, 6))]


def _lp(d, args):
    p, k, s, ceil = args
    ours = {1: bp.LPPool1D, 2: bp.LPPool2D}[d]
    theirs = {1: torch.nn.LPPool1d, 2: torch.nn.LPPool2d}[d](p, k, s, ceil)
    return (lambda dt: ours(p, k, s, ceil, dtype=dt)), theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d, case", [(2, c) for c in LPPOOL2] + [(1, c) for c in LPPOOL1])
def test_lp_pool_matches_torch_on_positive_inputs(dtype, d, case):
    make, module = _lp(d, case[:4])
    x = np.abs(strided(np.random.default_rng(4), case[4])) + 0.1
    against_torch(make(dtype), module, x, dtype)


@pytest.mark.parametrize("d, case", [(2, c) for c in LPPOOL2] + [(1, c) for c in LPPOOL1])
def test_lp_pool_matches_torch_nan_and_zeros_included(d, case):
    """Negative inputs (odd p: negative window sums, NaN; p not whole: NaN powers) and
    all-zero windows (gradient 0 from torch's relu mask; NaN at zeros when p < 1)."""
    make, module = _lp(d, case[:4])
    x = np.random.default_rng(5).standard_normal(case[4])
    x[..., :3] = 0.0
    if d == 2:
        x[:, :, :3] = 0.0
    y, dx = against_torch(make(np.float64), module, x, np.float64)  # NaN positions equal too
    if case[0] == 3:  # negative window sums occur: NaN, as in torch
        assert np.isnan(y).any() and np.isnan(dx).any()


@pytest.mark.parametrize("p", [1, 2, 3, 0.5])
@pytest.mark.parametrize("bad", [[np.nan], [np.inf, -np.inf]])
def test_lp_pool_windows_summing_to_nan_as_torch(p, bad):
    """A NaN window sum: gradient 0 with p = 1 (torch's sign(NaN) = 0 times NaN ** 0 = 1;
    ours passed dy), NaN with other p (found by a review at extreme values)."""
    x = np.full((1, 2, 8), 0.5)
    x[0, 0, 2:2 + len(bad)] = bad
    make, module = _lp(1, (p, 3, 1, False))
    with np.errstate(invalid="ignore"):  # inf + -inf in the window sums
        y, dx = against_torch(make(np.float64), module, x, np.float64)
    assert not np.isfinite(y[0, 0, 2]) and np.isfinite(dx[0, 1]).all()


@pytest.mark.parametrize("d", [1, 2])
def test_lp_pool_all_zero_windows_give_zero_and_gradient_zero(d):
    make, module = _lp(d, (2, 2, None, False))
    y, dx = against_torch(make(np.float64), module, np.zeros((1, 2) + (4,) * d), np.float64)
    assert not y.any() and not dx.any() and not np.isnan(dx).any()


def test_lp_pool_without_ceil_mode_is_the_window_p_norm():
    x = np.random.default_rng(6).uniform(0.1, 2, (2, 3, 6, 4))
    y = bp.LPPool2D(3, 2, dtype=np.float64)(x)
    want = (x**3).reshape(2, 3, 3, 2, 2, 2).sum((3, 5)) ** (1 / 3)
    np.testing.assert_allclose(y, want, rtol=1e-13)


def test_lp_pool_refuses_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"LPPool2D: expected norm_type in \(0"):
        bp.LPPool2D(0, 2)
    with pytest.raises(ValueError, match=r"LPPool1D: expected norm_type in \(0"):
        bp.LPPool1D(float("inf"), 2)
    with pytest.raises(TypeError, match="LPPool2D: expected norm_type to be a number"):
        bp.LPPool2D("2", 2)
    with pytest.raises(ValueError, match=r"LPPool2D\(2, 2\): expected input of shape "
                                         r"\(N, C, H, W\), got \(1, 4, 4\)"):
        bp.LPPool2D(2, 2)(np.ones((1, 4, 4), np.float32))
    with pytest.raises(TypeError, match=r"LPPool1D\(2, 2\): expected input of dtype float32"):
        bp.LPPool1D(2, 2)(np.ones((1, 1, 4)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, g", [((2, 6, 3), 3), ((2, 6, 3), 2), ((1, 8, 2, 3), 4),
                                      ((2, 4, 1, 2, 3), 1), ((3, 9, 2, 2), 9)])
def test_channel_shuffle_matches_torch(dtype, shape, g):
    x = strided(np.random.default_rng(7), shape)
    y, dx = against_torch(bp.ChannelShuffle(g, dtype=dtype), torch.nn.ChannelShuffle(g), x, dtype)
    assert np.array_equal(np.sort(y.ravel()), np.sort(x.astype(dtype).ravel()))


def test_channel_shuffle_refuses_bad_inputs():
    with pytest.raises(ValueError, match=r"ChannelShuffle\(4\): expected input channels "
                                         r"divisible by groups=4, got input of shape \(2, 6, 3\)"):
        bp.ChannelShuffle(4)(np.zeros((2, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"ChannelShuffle\(2\): expected input of shape"):
        bp.ChannelShuffle(2)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="ChannelShuffle: expected groups >= 1"):
        bp.ChannelShuffle(0)
    with pytest.raises(TypeError, match="ChannelShuffle: expected groups to be a positive int"):
        bp.ChannelShuffle(2.0)


def test_local_response_norm_refuses_bad_inputs():
    with pytest.raises(ValueError, match=r"LocalResponseNorm\(3\): expected input of shape"):
        bp.LocalResponseNorm(3)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="LocalResponseNorm: expected size >= 1"):
        bp.LocalResponseNorm(0)
    with pytest.raises(ValueError, match="LocalResponseNorm: expected beta in"):
        bp.LocalResponseNorm(2, beta=float("nan"))


def test_other_spellings_name_ours():
    for name, ours in [("LPPool1d", "LPPool1D"), ("LPPool2d", "LPPool2D")]:
        with pytest.raises(AttributeError, match=f"backprop calls it {ours}"):
            getattr(bp, name)
