"""Review of the losses and metrics (session 19): a differential fuzz against PyTorch and
scikit-learn found these; each test failed before its fix."""

import warnings

import numpy as np
import pytest

import backprop as bp
from backprop import metrics


def _torch(fn, x, g=None):
    """PyTorch's ``fn(x)`` and its gradient (of ``sum(g * losses)`` when ``g`` is given)."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    value = fn(xt)
    value.backward(None if g is None else torch.tensor(g))
    return value.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("dtype,far", [(np.float32, 1e20), (np.float64, 1e200)])
def test_smooth_l1_of_a_far_residual_is_finite_without_an_overflow_warning(dtype, far):
    """d² of a residual past beta overflowed (RuntimeWarning, an error under pytest) though
    only the linear part |d| - beta/2 is used there, as PyTorch computes it."""
    torch = pytest.importorskip("torch")
    x, t = np.array([far, -far, 0.5], dtype), np.zeros(3, dtype)
    loss = bp.SmoothL1Loss(reduction="sum", beta=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, dx = loss.forward(x, t), loss.backward()
    want, want_dx = _torch(lambda xt: torch.nn.functional.smooth_l1_loss(
        xt, torch.tensor(t), reduction="sum", beta=1.0), x)
    assert np.isfinite(value)
    np.testing.assert_allclose(value, want, rtol=1e-6)
    np.testing.assert_array_equal(dx, want_dx)


@pytest.mark.parametrize("make,torch_fn,x,t", [
    (bp.MeanSquaredError, "mse_loss", np.zeros((2, 0)), np.zeros((2, 0))),
    (bp.BinaryCrossEntropyWithLogits, "binary_cross_entropy_with_logits", np.zeros((2, 0)),
     np.zeros((2, 0))),
    (bp.SoftmaxCrossEntropy, "cross_entropy", np.zeros((2, 3, 0)), np.zeros((2, 0), np.int64)),
    (bp.NLLLoss, "nll_loss", np.zeros((2, 3, 0)), np.zeros((2, 0), np.int64)),
])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_losses_of_a_zero_size_trailing_axis_sum_to_zero(make, torch_fn, x, t, reduction):
    """Outputs (N, 0) or maps (N, C, 0) raised IndexError in the sum of the losses; PyTorch
    gives 0 ('sum') and an empty array ('none')."""
    torch = pytest.importorskip("torch")
    loss = make(reduction=reduction)
    value = loss.forward(x, t)
    want = getattr(torch.nn.functional, torch_fn)(torch.tensor(x), torch.tensor(t),
                                                  reduction=reduction).numpy()
    assert np.shape(value) == want.shape and np.all(np.asarray(value) == 0)
    dx = loss.backward(np.zeros(want.shape) if reduction == "none" else None)
    assert dx.shape == x.shape
    assert make()(x, t) == 0.0  # 'mean' of no losses: 0, as of only ignored labels


@pytest.mark.parametrize("make,what,target", [
    (bp.SoftmaxCrossEntropy, "logits", np.array([-100, -100])),
    (bp.SoftmaxCrossEntropy, "logits", np.zeros((2, 0))),
    (bp.NLLLoss, "log-probabilities", np.array([-100, -100])),
])
def test_label_losses_refuse_zero_classes_by_name(make, what, target):
    """Logits (N, 0) with every label ignored, or with probabilities (N, 0), reached
    NumPy's reductions: a bare 'zero-size array' ValueError or an IndexError."""
    loss = make(ignore_index=-100)
    with pytest.raises(ValueError, match=rf"^{make.__name__}\(.*\): expected {what} of at "
                                         r"least one class \(C >= 1 on axis 1\), got shape "
                                         r"\(2, 0\)"):
        loss.forward(np.zeros((2, 0)), target)


def test_cross_entropy_refuses_nan_target_probabilities():
    """NaN passed the [0, 1] check of target probabilities (both comparisons false) and
    made the loss NaN silently."""
    loss = bp.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"^SoftmaxCrossEntropy\(\): expected target "
                                         r"probabilities in \[0, 1\], got values from nan"):
        loss.forward(np.zeros((2, 3)), np.array([[0.5, np.nan, 0.5], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"expected target probabilities in \[0, 1\]"):
        loss.forward(np.zeros((1, 2, 2)), np.full((1, 2, 2), np.nan))  # (N, C, d1)
    # an empty map of probabilities still works (t.min() of nothing raised before)
    assert loss.forward(np.zeros((2, 3, 0)), np.zeros((2, 3, 0))) == 0.0


@pytest.mark.parametrize("make", [bp.MeanSquaredError, bp.MeanAbsoluteError, bp.Huber,
                                  bp.SmoothL1Loss])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_regression_losses_refuse_non_finite_targets(make, bad):
    """A NaN target made the loss NaN silently (fit checks its y, a direct call did not)."""
    name = make.__name__
    with pytest.raises(ValueError, match=rf"^{name}\(.*\): expected finite targets, got NaN "
                                         r"or infinite values \(1 of 4\)"):
        make().forward(np.zeros((2, 2)), np.array([[0.0, bad], [1.0, 2.0]]))


def test_regression_loss_refuses_a_target_beyond_the_output_dtype():
    """A float64 target beyond float32's range, for float32 outputs, raised NumPy's
    RuntimeWarning from the cast (an error under pytest), else gave an inf loss."""
    x = np.zeros(2, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^MeanSquaredError\(\): expected finite "
                                             r"targets, got values beyond the float32 range "
                                             r"\(1 of 2\)"):
            bp.MeanSquaredError().forward(x, np.array([1e300, 0.0]))
        assert bp.MeanSquaredError().forward(x, np.array([3.0, 1.0])) == 5.0  # still works
        with pytest.raises(ValueError, match=r"^BinaryCrossEntropyWithLogits\(\): expected "
                                             r"finite targets, got values beyond the float32"):
            bp.BinaryCrossEntropyWithLogits().forward(x, np.array([1e300, 0.0]))


@pytest.mark.parametrize("name", ["MultiMarginLoss", "MultiLabelMarginLoss"])
def test_margin_losses_of_float32_scores_far_apart_warn_nothing(name):
    """Scores ±3e38 apart overflowed in ``margin - x_y + x_i`` (RuntimeWarning) though the
    hinge of that term is 0 and the loss finite; PyTorch gives 0 and a zero gradient."""
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    x = np.array([[-3e38, 3e38, 0.0]], np.float32)
    if name == "MultiMarginLoss":
        t = np.array([1])
        loss, fn = bp.MultiMarginLoss(), lambda xt: f.multi_margin_loss(xt, torch.tensor(t))
    else:
        t = np.array([[1, -1, 0]])
        loss, fn = bp.MultiLabelMarginLoss(), lambda xt: f.multilabel_margin_loss(
            xt, torch.tensor(t))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, dx = loss.forward(x, t), loss.backward()
    want, want_dx = _torch(fn, x)
    assert value == float(want) == 0.0
    np.testing.assert_array_equal(dx, want_dx)


def test_regression_metrics_refuse_non_finite_targets():
    """r2 scored NaN targets 0.0 (silent garbage; scikit-learn refuses them) and an inf
    target raised NumPy's RuntimeWarning; mse and mae gave NaN."""
    out = np.array([0.0, 1.0, 2.0])
    for fn in (metrics.r2, metrics.mean_squared_error, metrics.mean_absolute_error):
        for bad in (np.nan, np.inf):
            with pytest.raises(ValueError, match=rf"^{fn.__name__}: expected finite y_true, "
                                                 r"got 1 NaN or infinite of 3"):
                fn(np.array([0.0, bad, 1.0]), out)
    assert np.isnan(metrics.r2(out, np.array([0.0, np.nan, 1.0])))  # a NaN output still reads


def test_roc_auc_refuses_infinite_class_scores():
    """Infinite class scores made ``z1 - z0`` or the softmax NaN at the end of the epoch
    (RuntimeWarning, then a NaN ranked as a score); scikit-learn refuses infinity too. One
    binary score per sample is only ranked, so ±inf stays allowed there."""
    y = np.array([0, 1, 2, 1])
    out = np.eye(4, 3)
    out[2, 1] = np.inf
    for scores in (out, out[:, :2]):
        with pytest.raises(ValueError, match=r"^roc_auc: expected finite class scores, got 1 "
                                             r"infinite of"):
            metrics.roc_auc(np.minimum(y, scores.shape[1] - 1), scores)
    assert metrics.roc_auc([0, 1, 1], np.array([-np.inf, np.inf, 3.0])) == 1.0


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((4, 3, 2))])
def test_confusion_matrix_names_itself_for_bad_scores(bad):
    """Its error named ``predicted_labels``, a function the caller never called."""
    with pytest.raises(ValueError, match=r"^confusion_matrix: expected output of shape"):
        metrics.confusion_matrix(np.zeros(len(bad), int), bad)


def test_roc_auc_ranks_without_scipy_and_its_old_inf_bug():
    """SciPy's rankdata before 1.11 gave NaN ranks once a score was ±inf (roc_auc was NaN
    on the oldest versions pyproject allows); the ranks are NumPy's own now."""
    from scipy.stats import rankdata as scipy_ranks

    from backprop._class_scores import rankdata
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = rng.integers(0, 5, rng.integers(1, 30)).astype(np.float64)  # many ties
        np.testing.assert_array_equal(rankdata(s), scipy_ranks(s))
    np.testing.assert_array_equal(rankdata(np.array([-np.inf, np.inf, 3.0])), [1.0, 3.0, 2.0])
    assert bp.metrics.roc_auc([0, 1, 1], np.array([-np.inf, np.inf, 3.0])) == 1.0
