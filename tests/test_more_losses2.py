"""BCELoss, SmoothL1Loss, SoftMarginLoss, MultiLabelSoftMarginLoss, PoissonNLLLoss and
HingeEmbeddingLoss: values and gradients against PyTorch's (every reduction, weights,
edge values), training in fit, the metrics and warnings fit picks, and input checks."""

import warnings

import numpy as np
import pytest

import backprop as bp

REDUCTIONS = ["mean", "sum", "none"]


def _torch_value_and_grad(fn, x, g=None):
    """PyTorch's loss ``fn(x)`` and its gradient (of ``sum(g * losses)`` for 'none')."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    value = fn(xt)
    value.backward(None if g is None else torch.tensor(g))
    return value.detach().numpy(), xt.grad.numpy()


def _ours(loss, x, target, g=None):
    value = loss.forward(x, target)
    return value, loss.backward(g) if loss.reduction == "none" else loss.backward()


def _compare(ours, theirs, x, t, reduction, per_sample=False, tol=1e-10):
    """Our loss against PyTorch's on x (float64 or float32) and target t."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    shape = x.shape[:1] if per_sample else x.shape
    g = rng.standard_normal(shape).astype(x.dtype) if reduction == "none" else None
    want, want_dx = _torch_value_and_grad(lambda xt: theirs(xt, torch.tensor(t)), x, g)
    value, dx = _ours(ours, x, t, g)
    assert np.shape(value) == want.shape and dx.shape == x.shape and dx.dtype == x.dtype
    if reduction == "none":
        assert value.dtype == x.dtype
    np.testing.assert_allclose(value, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol)


DTYPES = [(np.float64, 1e-10), (np.float32, 2e-5)]


# -- BCELoss ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, "columns", "full", "number"])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_bce_loss_matches_torch(reduction, weight, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, (6, 4)).astype(dtype)
    p[0, :4] = [0.0, 1.0, 0.0, 1.0]  # PyTorch's clamps: log 0 -> -100, gradient / 1e-12
    t = rng.uniform(0, 1, (6, 4)).astype(dtype)
    t[0, :4] = [0.0, 1.0, 1.0, 0.0]
    t[1, :2] = [0.0, 1.0]
    w = {None: None, "columns": rng.uniform(0, 2, 4), "full": rng.uniform(0, 2, (6, 4)),
         "number": 2.5}[weight]
    wt = None if w is None else torch.as_tensor(w, dtype=torch.from_numpy(p).dtype)
    _compare(bp.BCELoss(w, reduction=reduction), torch.nn.BCELoss(wt, reduction=reduction),
             p, t, reduction, tol=tol)


def test_bce_loss_of_certain_wrong_probabilities_is_clamped_at_100():
    loss = bp.BCELoss(reduction="none")
    np.testing.assert_array_equal(loss.forward(np.array([0.0, 1.0]), np.array([1.0, 0.0])),
                                  [100.0, 100.0])
    np.testing.assert_allclose(loss.backward(np.ones(2)), [-1e12, 1e12], rtol=1e-8)


def test_bce_loss_on_sigmoid_is_bce_with_logits():
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((5, 3)), rng.integers(0, 2, (5, 3)).astype(float)
    p = 1 / (1 + np.exp(-z))
    a, b = bp.BCELoss(), bp.BinaryCrossEntropyWithLogits()
    np.testing.assert_allclose(a.forward(p, t), b.forward(z, t), rtol=1e-12)
    np.testing.assert_allclose(a.backward() * p * (1 - p), b.backward(), rtol=1e-10)


# -- SmoothL1Loss ----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_smooth_l1_loss_matches_torch(reduction, beta, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 2, 3)) * 2).astype(dtype)
    t = rng.standard_normal((5, 2, 3)).astype(dtype)
    t.flat[:3] = x.flat[:3] + np.array([beta, -beta, 0.0], dtype)  # on the kinks
    _compare(bp.SmoothL1Loss(reduction=reduction, beta=beta),
             torch.nn.SmoothL1Loss(reduction=reduction, beta=beta), x, t, reduction, tol=tol)


def test_smooth_l1_loss_is_huber_over_beta():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 3)) * 3, rng.standard_normal((4, 3))
    a, b = bp.SmoothL1Loss(beta=0.5), bp.Huber(delta=0.5)
    np.testing.assert_allclose(a.forward(x, t), b.forward(x, t) / 0.5, rtol=1e-12)
    np.testing.assert_allclose(a.backward(), b.backward() / 0.5, rtol=1e-12)


# -- SoftMarginLoss and MultiLabelSoftMarginLoss ------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_soft_margin_loss_matches_torch(reduction, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 3)) * 3).astype(dtype)
    x[0] = [30.0, -30.0, 0.0]
    t = np.where(rng.random((6, 3)) < 0.5, -1.0, 1.0).astype(dtype)
    _compare(bp.SoftMarginLoss(reduction=reduction), torch.nn.SoftMarginLoss(
        reduction=reduction), x, t, reduction, tol=tol)


def test_soft_margin_loss_stays_finite_where_torch_overflows():
    loss = bp.SoftMarginLoss(reduction="none")
    np.testing.assert_allclose(loss.forward(np.array([1000.0, -1000.0]), np.array([-1, 1])),
                               [1000.0, 1000.0])
    np.testing.assert_allclose(loss.backward(np.ones(2)), [1.0, -1.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, "classes", "number"])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_multi_label_soft_margin_loss_matches_torch(reduction, weight, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 4)) * 3).astype(dtype)
    x[0, :2] = [40.0, -40.0]
    t = rng.integers(0, 2, (6, 4)).astype(dtype)
    w = {None: None, "classes": rng.uniform(0, 2, 4), "number": 0.7}[weight]
    wt = None if w is None else torch.as_tensor(w, dtype=torch.from_numpy(x).dtype)
    _compare(bp.MultiLabelSoftMarginLoss(w, reduction=reduction),
             torch.nn.MultiLabelSoftMarginLoss(wt, reduction=reduction), x, t, reduction,
             per_sample=True, tol=tol)


# -- PoissonNLLLoss --------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input, full", [(True, False), (True, True), (False, False),
                                             (False, True)])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_poisson_nll_loss_matches_torch(reduction, log_input, full, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)) if log_input else rng.uniform(0.05, 3, (5, 4))
    x = x.astype(dtype)
    if not log_input:
        x[0, 0] = 0.0  # a rate of 0: log(eps)
    t = rng.poisson(2.0, (5, 4)).astype(dtype)
    t[0, :4] = [0.0, 1.0, 2.0, 1.5]  # the Stirling term starts above 1
    _compare(bp.PoissonNLLLoss(log_input, full, reduction=reduction),
             torch.nn.PoissonNLLLoss(log_input, full, reduction=reduction), x, t, reduction,
             tol=tol if log_input or dtype == np.float64 else 1e-3)


def test_poisson_nll_loss_eps_matches_torch():
    torch = pytest.importorskip("torch")
    x, t = np.array([[0.0, 0.5, 2.0]]), np.array([[1.0, 3.0, 0.0]])
    _compare(bp.PoissonNLLLoss(False, eps=0.1), torch.nn.PoissonNLLLoss(False, eps=0.1),
             x, t, "mean")


# -- HingeEmbeddingLoss ----------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.5, -0.2])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_hinge_embedding_loss_matches_torch(reduction, margin, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 3)) * 2).astype(dtype)
    x[0] = [margin, margin, 0.0]  # at the margin PyTorch passes the gradient (-1)
    t = np.where(rng.random((6, 3)) < 0.5, -1.0, 1.0).astype(dtype)
    t[0] = [-1.0, 1.0, -1.0]
    _compare(bp.HingeEmbeddingLoss(margin, reduction=reduction),
             torch.nn.HingeEmbeddingLoss(margin, reduction=reduction), x, t, reduction, tol=tol)


# -- sample_weight, fit ----------------------------------------------------------------
CASES = {
    "BCELoss": (bp.BCELoss, lambda r: r.uniform(0.1, 0.9, (4, 3)),
                lambda r: r.integers(0, 2, (4, 3)).astype(float)),
    "SmoothL1Loss": (bp.SmoothL1Loss, lambda r: r.standard_normal((4, 3)) * 2,
                     lambda r: r.standard_normal((4, 3))),
    "SoftMarginLoss": (bp.SoftMarginLoss, lambda r: r.standard_normal((4, 3)),
                       lambda r: np.where(r.random((4, 3)) < 0.5, -1.0, 1.0)),
    "MultiLabelSoftMarginLoss": (bp.MultiLabelSoftMarginLoss,
                                 lambda r: r.standard_normal((4, 3)),
                                 lambda r: r.integers(0, 2, (4, 3)).astype(float)),
    "PoissonNLLLoss": (bp.PoissonNLLLoss, lambda r: r.standard_normal((4, 3)),
                       lambda r: r.poisson(2.0, (4, 3)).astype(float)),
    "HingeEmbeddingLoss": (bp.HingeEmbeddingLoss, lambda r: r.standard_normal((4, 3)),
                           lambda r: np.where(r.random((4, 3)) < 0.5, -1.0, 1.0)),
}


@pytest.mark.parametrize("name", CASES)
def test_sample_weight_scales_each_samples_losses(name):
    make, draw_x, draw_t = CASES[name]
    rng = np.random.default_rng(0)
    x, t, s = draw_x(rng), draw_t(rng), np.array([0.0, 1.0, 2.0, 0.5])
    plain, weighted = make(reduction="none"), make()
    losses = plain.forward(x, t)
    grads = plain.backward(np.ones_like(losses))
    ws = s.reshape((4,) + (1,) * (losses.ndim - 1))
    np.testing.assert_allclose(weighted.forward(x, t, s), (losses * ws).sum() / losses.size,
                               rtol=1e-12)
    np.testing.assert_allclose(weighted.backward(), grads * s[:, None] / losses.size,
                               rtol=1e-12)


def _fit_data(name, rng):
    x = rng.standard_normal((64, 3))
    score = x @ np.array([1.5, -2.0, 1.0])
    y = {"BCELoss": (score > 0)[:, None] * 1.0,
         "SmoothL1Loss": score[:, None],
         "SoftMarginLoss": np.where(score > 0, 1.0, -1.0)[:, None],
         "MultiLabelSoftMarginLoss": np.stack([score > 0, x[:, 0] > 0], 1) * 1.0,
         "PoissonNLLLoss": rng.poisson(np.exp(0.3 * score))[:, None] * 1.0,
         "HingeEmbeddingLoss": np.where(score > 0, 1.0, -1.0)[:, None]}[name]
    return x, y


@pytest.mark.parametrize("name", CASES)
def test_fit_with_each_loss_lowers_it(name):
    rng = np.random.default_rng(0)
    x, y = _fit_data(name, rng)
    layers = [bp.Dense(3, 8, dtype=np.float64, rng=1), bp.Tanh(),
              bp.Dense(8, y.shape[1], dtype=np.float64, rng=2)]
    if name == "BCELoss":
        layers.append(bp.Sigmoid())
    model = bp.Sequential(layers)
    history = model.fit(x, y, loss=CASES[name][0](),
                        optimizer=bp.Adam(model.parameters(), lr=0.02), epochs=15,
                        batch_size=16, seed=0, progress=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses


def test_fit_scores_bce_loss_probabilities_at_one_half():
    """BCELoss's outputs are probabilities: accuracy thresholds them at 0.5, output by
    output, as for a model ending in Sigmoid with a binary cross-entropy."""
    fns, _ = bp._fit_inputs.resolve_metrics(["accuracy"], "fit", bp.Dense(2, 2), bp.BCELoss())
    y, p = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.6, 0.4], [0.45, 0.3]])
    assert fns[0](y, p) == 0.75  # 0.3 < 0.5 is a miss; at the logit 0 it would be a hit
    fns, _ = bp._fit_inputs.resolve_metrics(["accuracy"], "fit", bp.Dense(2, 1),
                                            bp.SmoothL1Loss())
    assert fns[0](y[:, :1], p[:, :1]) == 1.0  # a regression loss too: 0.45 is a 0


def test_fit_scores_multi_label_soft_margin_loss_per_output():
    fns, _ = bp._fit_inputs.resolve_metrics(["accuracy"], "fit", bp.Dense(2, 2),
                                            bp.MultiLabelSoftMarginLoss())
    y, z = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[2.0, -1.0], [1.0, 3.0]])
    assert fns[0](y, z) == 0.75  # logits: thresholded at 0, each output its own yes/no


def test_fit_warns_when_bce_loss_gets_logits():
    rng = np.random.default_rng(0)
    x, y = _fit_data("BCELoss", rng)
    model = bp.Sequential([bp.Dense(3, 1, dtype=np.float64)])
    with pytest.warns(UserWarning, match=r"BCELoss takes probabilities"):
        with pytest.raises(ValueError, match=r"expected probabilities"):
            model.fit(x, y, loss=bp.BCELoss(), optimizer=bp.SGD(model.parameters(), lr=0.1),
                      epochs=1, batch_size=64, progress=False)


def test_fit_does_not_warn_for_bce_loss_after_sigmoid():
    rng = np.random.default_rng(0)
    x, y = _fit_data("BCELoss", rng)
    model = bp.Sequential([bp.Dense(3, 1, dtype=np.float64), bp.Sigmoid()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, loss=bp.BCELoss(), optimizer=bp.SGD(model.parameters(), lr=0.1),
                  epochs=1, batch_size=64, progress=False)


def test_fit_warns_for_a_sigmoid_before_multi_label_soft_margin_loss():
    rng = np.random.default_rng(0)
    x, y = _fit_data("MultiLabelSoftMarginLoss", rng)
    model = bp.Sequential([bp.Dense(3, 2, dtype=np.float64), bp.Sigmoid()])
    with pytest.warns(UserWarning, match=r"MultiLabelSoftMarginLoss applies sigmoid itself"):
        model.fit(x, y, loss=bp.MultiLabelSoftMarginLoss(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=64,
                  progress=False)


# -- errors and repr -------------------------------------------------------------------
@pytest.mark.parametrize("loss, x, t, match", [
    (bp.BCELoss(), [[1.2, 0.5]], [[1.0, 0.0]], r"BCELoss\(\): expected probabilities .* in "
                                               r"\[0, 1\], got values from 0.5 to 1.2"),
    (bp.BCELoss(), [[np.nan, 0.5]], [[1.0, 0.0]], r"expected probabilities"),
    (bp.BCELoss(), [[0.2, 0.5]], [[1.5, 0.0]], r"expected targets in \[0, 1\]"),
    (bp.BCELoss([1.0, 2.0, 3.0]), [[0.2, 0.5]], [[1.0, 0.0]],
     r"expected outputs that weight \(3,\) broadcasts to, got shape \(1, 2\)"),
    (bp.SoftMarginLoss(), [[0.2, 0.5]], [[1.0, 0.0]], r"SoftMarginLoss\(\): expected targets "
                                                      r"of 1 or -1, got 0.0 \(0/1 labels"),
    (bp.HingeEmbeddingLoss(), [[0.2]], [[2.0]], r"expected targets of 1 or -1, got 2.0"),
    (bp.MultiLabelSoftMarginLoss(), [0.2, 0.5], [1.0, 0.0],
     r"expected logits of shape \(N, C\), got \(2,\)"),
    (bp.MultiLabelSoftMarginLoss([1.0, 2.0, 3.0]), [[0.2, 0.5]], [[1.0, 0.0]],
     r"expected logits of shape \(N, 3\), got \(1, 2\)"),
    (bp.MultiLabelSoftMarginLoss(), [[0.2, 0.5]], [[1.0, -1.0]],
     r"expected targets in \[0, 1\]"),
    (bp.PoissonNLLLoss(), [[0.2, 0.5]], [[1.0, -1.0]], r"expected finite counts >= 0"),
    (bp.PoissonNLLLoss(log_input=False), [[-0.2, 0.5]], [[1.0, 1.0]],
     r"PoissonNLLLoss\(log_input=False\): expected rates .* in \[0, inf\]"),
])
def test_losses_refuse_bad_inputs(loss, x, t, match):
    with pytest.raises(ValueError, match=match):
        loss.forward(np.array(x, dtype=float), np.array(t, dtype=float))


@pytest.mark.parametrize("make, match", [
    (lambda: bp.SmoothL1Loss(beta=-1.0), r"SmoothL1Loss: expected beta"),
    (lambda: bp.BCELoss([-1.0]), r"BCELoss: expected finite weight >= 0"),
    (lambda: bp.MultiLabelSoftMarginLoss([[1.0]]), r"expected weight as one per class"),
    (lambda: bp.PoissonNLLLoss(eps=0.0), r"PoissonNLLLoss: expected eps"),
    (lambda: bp.HingeEmbeddingLoss(float("nan")), r"HingeEmbeddingLoss: expected margin"),
])
def test_losses_refuse_bad_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_poisson_nll_loss_refuses_a_non_boolean_flag():
    with pytest.raises(TypeError, match=r"PoissonNLLLoss: expected full to be True or False"):
        bp.PoissonNLLLoss(full="yes")


def test_reprs_show_non_default_settings():
    assert repr(bp.BCELoss([1, 2], reduction="sum")) == \
        "BCELoss(weight=[1.0, 2.0], reduction='sum')"
    assert repr(bp.SmoothL1Loss(beta=0.5)) == "SmoothL1Loss(beta=0.5)"
    assert repr(bp.SoftMarginLoss()) == "SoftMarginLoss()"
    assert repr(bp.MultiLabelSoftMarginLoss([1.0, 2.0])) == \
        "MultiLabelSoftMarginLoss(weight=[1.0, 2.0])"
    assert repr(bp.PoissonNLLLoss(False, True, 0.1)) == \
        "PoissonNLLLoss(log_input=False, full=True, eps=0.1)"
    assert repr(bp.HingeEmbeddingLoss(2.0, reduction="none")) == \
        "HingeEmbeddingLoss(margin=2.0, reduction='none')"


def test_torch_names_are_ours_now():
    from backprop._other_names import OTHER_NAMES
    assert "BCELoss" not in OTHER_NAMES and "SmoothL1Loss" not in OTHER_NAMES


def test_accuracy_of_soft_margin_loss_scores_signs_and_hinge_embedding_refuses_it():
    """±1 targets: accuracy refused them as labels out of [0, 1] mid-epoch, calling it a
    regression. SoftMarginLoss's logits decide by their sign; hinge distances decide nothing."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = np.where(x[:, :1] + 0.3 * rng.standard_normal((40, 1)) > 0, 1.0, -1.0)
    model = bp.Sequential([bp.Dense(3, 1, rng=0)])
    history = model.fit(x, y, loss=bp.SoftMarginLoss(), optimizer=bp.SGD(model.parameters(),
                        lr=0.5), epochs=5, metrics=["accuracy"], progress=False)
    got = model.evaluate(x, y, loss=bp.SoftMarginLoss(), metrics=["accuracy"])["accuracy"]
    assert got == pytest.approx(np.mean(np.sign(model.predict(x)) == y))
    assert history.history["accuracy"][-1] > 0.7
    with pytest.raises(ValueError, match=r"fit: HingeEmbeddingLoss's outputs are distances, not "
                                         r"decisions: there is no accuracy"):
        model.fit(x, y, loss=bp.HingeEmbeddingLoss(), optimizer=bp.SGD(model.parameters(),
                  lr=0.1), epochs=1, metrics=["accuracy"], progress=False)
