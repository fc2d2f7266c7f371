"""MultiMarginLoss and MultiLabelMarginLoss: values and gradients against PyTorch's (p,
margin, weight, every reduction, float64 and float32, ties at the kinks, one sample),
sample_weight, training in fit, the metrics fit allows, and input checks."""

import numpy as np
import pytest

import backprop as bp

REDUCTIONS = ["mean", "sum", "none"]
DTYPES = [(np.float64, 1e-12), (np.float32, 2e-5)]


def _compare(ours, theirs, x, t, tol):
    """Our loss against PyTorch's ``theirs(x, t)`` (a torch function of tensors): the value,
    and the gradient (of ``sum(g * losses)``, g random, for 'none') by autograd."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    want = theirs(xt, torch.tensor(t))
    g = np.random.default_rng(1).standard_normal(want.shape).astype(x.dtype)
    want.backward(torch.tensor(g) if ours.reduction == "none" else None)
    value = ours.forward(x, t)
    dx = ours.backward(g) if ours.reduction == "none" else ours.backward()
    assert np.shape(value) == tuple(want.shape) and dx.shape == x.shape and dx.dtype == x.dtype
    if ours.reduction == "none":
        assert value.dtype == x.dtype
    else:
        assert type(value) is float
    np.testing.assert_allclose(value, want.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)


# -- MultiMarginLoss ---------------------------------------------------------------------
def _scores_and_labels(dtype, margin):
    """Scores (7, 5) and labels; row 0 puts class 1 exactly on the kink (margin - x_y + x_1
    = 0) and class 2 inside the margin, row 1 has ties among the other classes."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((7, 5)) * 1.5).astype(dtype)
    y = rng.integers(0, 5, 7)
    x[0, :3], y[0] = [margin + 0.25, 0.25, 0.5], 0  # dyadic: every sum below is exact
    x[1], y[1] = [0.5, 0.5, 0.5, -3.0, 0.5], 3
    return x, y


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.5, -0.25])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_multi_margin_loss_matches_torch(reduction, p, margin, weight, dtype, tol):
    torch = pytest.importorskip("torch")
    x, y = _scores_and_labels(dtype, margin)
    w = np.random.default_rng(2).uniform(0, 2, 5) if weight else None
    wt = None if w is None else torch.tensor(w, dtype=torch.from_numpy(x).dtype)
    _compare(bp.MultiMarginLoss(p, margin, w, reduction=reduction),
             lambda xt, yt: torch.nn.functional.multi_margin_loss(
                 xt, yt, p=p, margin=margin, weight=wt, reduction=reduction), x, y, tol)


def test_multi_margin_loss_at_the_kink_passes_no_gradient_as_torch():
    loss = bp.MultiMarginLoss()
    assert loss.forward(np.array([[1.0, 0.0, 0.5]]), np.array([0])) == pytest.approx(0.5 / 3)
    np.testing.assert_array_equal(loss.backward(), [[-1 / 3, 0.0, 1 / 3]])  # class 1: h = 0


def test_multi_margin_loss_weighs_by_the_label_and_divides_by_c():
    x, y = np.array([[0.3, 0.1, -0.2, 0.4]]), np.array([1])
    h = np.maximum(0, 1 - 0.1 + np.array([0.3, -0.2, 0.4]))
    got = bp.MultiMarginLoss(2, weight=[1.0, 3.0, 5.0, 7.0]).forward(x, y)
    assert got == pytest.approx(3.0 * np.sum(h ** 2) / 4, rel=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label", [2, [2]])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_multi_margin_loss_of_one_sample_matches_torch(reduction, label, dtype, tol):
    """One sample (C,) with a scalar label (or one of shape (1,)): the loss in its shape."""
    torch = pytest.importorskip("torch")
    x = np.array([0.3, 0.1, -0.2, 0.4, 1.5], dtype)
    _compare(bp.MultiMarginLoss(2, 0.5, reduction=reduction),
             lambda xt, yt: torch.nn.functional.multi_margin_loss(
                 xt, yt, p=2, margin=0.5, reduction=reduction), x, np.array(label), tol)


def test_multi_margin_loss_takes_a_column_of_labels():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    a, b = bp.MultiMarginLoss(), bp.MultiMarginLoss()
    assert a.forward(x, y[:, None]) == b.forward(x, y)
    np.testing.assert_array_equal(a.backward(), b.backward())


# -- MultiLabelMarginLoss ----------------------------------------------------------------
def _scores_and_lists(dtype):
    """Scores (8, 5) and padded index lists: repeats, an empty list, every class listed,
    values after the first -1 (ignored), and row 0 with a pair exactly on the kink."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 5)) * 1.5).astype(dtype)
    t = np.array([[0, -1, 2, 4, 1],     # x_0 - x_2 = 1 exactly below: on the kink
                  [1, 1, -1, -1, -1],   # class 1 twice: counts twice
                  [-1, 0, 1, 2, 3],     # no targets
                  [4, 3, 2, 1, 0],      # every class a target
                  [2, 0, 3, -1, 4],
                  [3, -1, -1, -1, -1],
                  [0, 4, 0, 2, -1],
                  [1, 2, -1, 3, -1]])
    x[0, :3] = [1.25, -0.5, 0.25]
    return x, t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_multi_label_margin_loss_matches_torch(reduction, dtype, tol):
    torch = pytest.importorskip("torch")
    x, t = _scores_and_lists(dtype)
    _compare(bp.MultiLabelMarginLoss(reduction=reduction),
             lambda xt, tt: torch.nn.functional.multilabel_margin_loss(
                 xt, tt, reduction=reduction), x, t, tol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_multi_label_margin_loss_of_one_sample_matches_torch(reduction, dtype, tol):
    torch = pytest.importorskip("torch")
    x = np.array([0.3, 0.1, -0.2, 0.4], dtype)
    _compare(bp.MultiLabelMarginLoss(reduction=reduction),
             lambda xt, tt: torch.nn.functional.multilabel_margin_loss(
                 xt, tt, reduction=reduction), x, np.array([2, 0, -1, 3]), tol)


def test_multi_label_margin_loss_at_the_kink_passes_no_gradient_as_torch():
    loss = bp.MultiLabelMarginLoss()
    assert loss.forward(np.array([[1.0, 0.0, -5.0]]), np.array([[0, -1, 2]])) == 0.0
    np.testing.assert_array_equal(loss.backward(), np.zeros((1, 3)))


def test_multi_label_margin_loss_counts_a_repeated_target_twice():
    x = np.array([[0.3, 0.1, -0.2, 0.4]])
    once = bp.MultiLabelMarginLoss().forward(x, np.array([[1, -1, 0, 0]]))
    assert bp.MultiLabelMarginLoss().forward(x, np.array([[1, 1, -1, 0]])) == 2 * once
    assert once == pytest.approx((1.2 + 0.7 + 1.3) / 4, rel=1e-14)


# -- both: gradients, sample_weight, empty batches, NaN ------------------------------------
LOSSES = {
    "MultiMarginLoss": (lambda **kw: bp.MultiMarginLoss(2, 0.5, [1.0, 2.0, 0.5], **kw),
                        np.array([0, 2, 1, 1])),
    "MultiLabelMarginLoss": (bp.MultiLabelMarginLoss,
                             np.array([[0, -1, 1], [2, 1, -1], [-1, 0, 0], [1, 1, -1]])),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_one_sample_gradients_match_central_differences(name):
    make, target = LOSSES[name]
    x = np.random.default_rng(0).standard_normal(3)
    result = bp.check_gradients(make(), x, target[0])
    assert result.passed, str(result)


@pytest.mark.parametrize("name", list(LOSSES))
def test_sample_weight_scales_each_samples_loss(name):
    make, target = LOSSES[name]
    x = np.random.default_rng(0).standard_normal((4, 3))
    s = np.array([0.0, 1.0, 2.0, 0.5])
    plain, weighted = make(reduction="none"), make()
    losses = plain.forward(x, target)
    grads = plain.backward(np.ones(4))
    assert losses.shape == (4,)
    np.testing.assert_allclose(weighted.forward(x, target, s), (losses * s).sum() / 4,
                               rtol=1e-13)
    np.testing.assert_allclose(weighted.backward(), grads * s[:, None] / 4, rtol=1e-13)


@pytest.mark.parametrize("name", list(LOSSES))
def test_sample_weight_is_refused_for_one_sample(name):
    make, target = LOSSES[name]
    with pytest.raises(ValueError, match=rf"{name}\(.*\): expected class scores of shape "
                                         r"\(N, C\) with a sample_weight, got one sample \(3,\)"):
        make().forward(np.zeros(3), target[0], np.ones(3))


@pytest.mark.parametrize("name", list(LOSSES))
def test_an_empty_batch_is_refused_as_by_every_loss(name):
    make, target = LOSSES[name]
    with pytest.raises(ValueError, match=r"expected a non-empty batch \(N, \.\.\.\), got \(0, 3\)"):
        make().forward(np.zeros((0, 3)), target[:0])


@pytest.mark.parametrize("name", list(LOSSES))
def test_a_nan_score_gives_a_nan_loss_for_fit_to_catch(name):
    make, target = LOSSES[name]
    x = np.zeros((4, 3))
    x[1, 2] = np.nan
    assert np.isnan(make().forward(x, target))


# -- fit and its metrics -----------------------------------------------------------------
def _fit_data(name, rng):
    """64 separable samples: three classes by a linear score, or label sets by signs."""
    x = rng.standard_normal((64, 3))
    if name == "MultiMarginLoss":
        return x, (x @ np.array([[1.5, -1.0, 0.0], [-2.0, 0.5, 1.0], [1.0, 1.0, -1.5]])).argmax(1)
    t = np.full((64, 3), -1)
    for n, row in enumerate(x):
        listed = [c for c, on in enumerate([row[0] > 0, row[1] > 0, row[0] + row[1] < 0]) if on]
        t[n, :len(listed)] = listed
    return x, t


FITS = {"MultiMarginLoss": bp.MultiMarginLoss,
        "MultiMarginLoss-p2-weight": lambda: bp.MultiMarginLoss(2, 0.5, [1.0, 2.0, 0.5]),
        "MultiLabelMarginLoss": bp.MultiLabelMarginLoss}


@pytest.mark.parametrize("name", list(FITS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_with_each_loss_lowers_it(name, seed):
    """Over seeds 0-9 the last epoch's loss was at most 0.11 of the first's (p=2: 0.04,
    MultiLabelMarginLoss: 0.06); 0.3 leaves room for other BLAS sums."""
    x, y = _fit_data(name.split("-")[0], np.random.default_rng(seed))
    model = bp.Sequential([bp.Dense(3, 8, dtype=np.float64, rng=seed), bp.Tanh(),
                           bp.Dense(8, 3, dtype=np.float64, rng=seed + 100)])
    history = model.fit(x, y, loss=FITS[name](), optimizer=bp.Adam(model.parameters(), lr=0.02),
                        epochs=15, batch_size=16, seed=seed, progress=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0], losses


def test_accuracy_of_multi_margin_loss_is_the_argmax():
    x, y = _fit_data("MultiMarginLoss", np.random.default_rng(0))
    model = bp.Sequential([bp.Dense(3, 3, dtype=np.float64, rng=0)])
    history = model.fit(x, y[:, None], loss=bp.MultiMarginLoss(), epochs=20, batch_size=16,
                        optimizer=bp.SGD(model.parameters(), lr=0.1), metrics=["accuracy"],
                        seed=0, progress=False)
    got = model.evaluate(x, y, loss=bp.MultiMarginLoss(), metrics=["accuracy"])["accuracy"]
    assert got == pytest.approx(np.mean(model.predict(x).argmax(1) == y))
    assert history.history["accuracy"][-1] > 0.8


@pytest.mark.parametrize("metric", ["accuracy", "binary_accuracy", "f1", "top_2_accuracy",
                                    bp.metrics.roc_auc])
def test_multi_label_margin_loss_refuses_built_in_metrics_before_training(metric):
    x, t = _fit_data("MultiLabelMarginLoss", np.random.default_rng(0))
    model = bp.Sequential([bp.Dense(3, 3, dtype=np.float64, rng=0)])
    before = model.flat_params.copy()
    name = metric if isinstance(metric, str) else metric.__name__
    with pytest.raises(ValueError, match=rf"fit: MultiLabelMarginLoss's outputs rank the "
                                         rf"classes .* there is no '{name}' to score"):
        model.fit(x, t, loss=bp.MultiLabelMarginLoss(), metrics=[metric], progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1))
    np.testing.assert_array_equal(model.flat_params, before)
    with pytest.raises(ValueError, match=r"evaluate: MultiLabelMarginLoss's outputs rank"):
        model.evaluate(x, t, loss=bp.MultiLabelMarginLoss(), metrics=[metric])


def test_multi_label_margin_loss_takes_a_metric_of_ones_own_and_refuses_class_weight():
    x, t = _fit_data("MultiLabelMarginLoss", np.random.default_rng(0))
    model = bp.Sequential([bp.Dense(3, 3, dtype=np.float64, rng=0)])

    def top_is_listed(y_true, output):  # the best-scored class is one of the targets
        top = output.argmax(1)
        return float(np.mean((y_true == top[:, None]).any(axis=1)))

    history = model.fit(x, t, loss=bp.MultiLabelMarginLoss(), metrics=[top_is_listed],
                        optimizer=bp.SGD(model.parameters(), lr=0.1), epochs=2, seed=0,
                        progress=False)
    assert 0.0 <= history.history["top_is_listed"][-1] <= 1.0
    with pytest.raises(ValueError, match=r"fit: expected no class_weight with "
                                         r"MultiLabelMarginLoss"):
        model.fit(x, t, loss=bp.MultiLabelMarginLoss(), class_weight={0: 2.0},
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)


# -- errors and repr ---------------------------------------------------------------------
@pytest.mark.parametrize("loss, x, t, error, match", [
    (bp.MultiMarginLoss(), [[0.2, 0.5]], [0.0], TypeError,
     r"MultiMarginLoss\(\): expected integer class indices \(1,\), got dtype float64"),
    (bp.MultiMarginLoss(), [[0.2, 0.5]], [0, 1], ValueError,
     r"expected class indices of shape \(1,\) for class scores \(1, 2\), got \(2,\)"),
    (bp.MultiMarginLoss(), [0.2, 0.5], [0, 1], ValueError,
     r"expected class indices of shape \(\) for class scores \(2,\), got \(2,\)"),
    (bp.MultiMarginLoss(), [[0.2, 0.5], [0.1, 0.3]], [0, 2], ValueError,
     r"MultiMarginLoss\(\): expected class indices in \[0, 2\), got values from 0 to 2"),
    (bp.MultiMarginLoss(), [[0.2, 0.5]], [-1], ValueError,
     r"expected class indices in \[0, 2\), got values from -1 to -1"),
    (bp.MultiMarginLoss(weight=[1.0, 2.0, 3.0]), [[0.2, 0.5]], [0], ValueError,
     r"MultiMarginLoss\(weight=\[1.0, 2.0, 3.0\]\): expected class scores of shape \(N, 3\) "
     r"or \(3,\) \(one per weight\), got \(1, 2\)"),
    (bp.MultiMarginLoss(), [[[0.2, 0.5]]], [0], ValueError,
     r"expected class scores of shape \(N, C\) or \(C,\), got \(1, 1, 2\)"),
    (bp.MultiLabelMarginLoss(), [[0.2, 0.5]], [[0.0, -1.0]], TypeError,
     r"MultiLabelMarginLoss\(\): expected integer class indices \(1, 2\) \(padded with -1\), "
     r"got dtype float64"),
    (bp.MultiLabelMarginLoss(), [[0.2, 0.5, 0.1]], [[0, -1]], ValueError,
     r"expected target class indices of the scores' shape \(1, 3\) \(padded with -1\), "
     r"got \(1, 2\)"),
    (bp.MultiLabelMarginLoss(), [[0.2, 0.5]], [[0, 2]], ValueError,
     r"expected target class indices in \[0, 2\) or -1 \(the end of a sample's list\), got "
     r"values from 0 to 2"),
    (bp.MultiLabelMarginLoss(), [[0.2, 0.5]], [[-2, 0]], ValueError,
     r"in \[0, 2\) or -1 .*, got values from -2 to 0"),
    (bp.MultiLabelMarginLoss(), [[0.2, 0.5]], [[0, -1]], TypeError,  # ints as floats
     r"expected a floating output, got int64"),
])
def test_losses_refuse_bad_inputs(loss, x, t, error, match):
    x = np.array(x, dtype=np.int64 if error is TypeError and "floating" in match else float)
    with pytest.raises(error, match=match):
        loss.forward(x, np.array(t))


@pytest.mark.parametrize("make, error, match", [
    (lambda: bp.MultiMarginLoss(3), ValueError,
     r"MultiMarginLoss: expected p to be 1 or 2 \(PyTorch's only ones\), got 3"),
    (lambda: bp.MultiMarginLoss(1.5), ValueError, r"expected p to be 1 or 2 .*, got 1.5"),
    (lambda: bp.MultiMarginLoss("2"), TypeError, r"MultiMarginLoss: expected p to be 1 or 2, "
                                                 r"got '2'"),
    (lambda: bp.MultiMarginLoss(True), TypeError, r"expected p to be 1 or 2, got True"),
    (lambda: bp.MultiMarginLoss(margin=float("nan")), ValueError,
     r"MultiMarginLoss: expected margin in \(-inf, inf\) \(finite\), got nan"),
    (lambda: bp.MultiMarginLoss(weight=[1.0, -2.0]), ValueError,
     r"MultiMarginLoss: expected finite weight >= 0, got \[1.0, -2.0\]"),
    (lambda: bp.MultiMarginLoss(weight=[1.0, np.nan]), ValueError,
     r"expected finite weight >= 0"),
    (lambda: bp.MultiMarginLoss(weight=[[1.0, 2.0]]), ValueError,
     r"MultiMarginLoss: expected weight as one per class \(C,\), got shape \(1, 2\)"),
    (lambda: bp.MultiMarginLoss(weight=2.0), ValueError,
     r"expected weight as one per class \(C,\), got shape \(\)"),
    (lambda: bp.MultiLabelMarginLoss(reduction="batchmean"), ValueError,
     r"MultiLabelMarginLoss: expected reduction 'mean', 'sum' or 'none'"),
])
def test_losses_refuse_bad_settings(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_p_and_margin_are_kept_as_python_numbers():
    loss = bp.MultiMarginLoss(np.int64(2), np.float32(0.5))
    assert type(loss.p) is int and type(loss.margin) is float
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert loss.forward(x, np.array([0, 1, 3])) > 0 and loss.backward().dtype == np.float32


def test_reprs_show_non_default_settings():
    assert repr(bp.MultiMarginLoss()) == "MultiMarginLoss()"
    assert repr(bp.MultiMarginLoss(2, 0.5, [1, 2], reduction="sum")) == \
        "MultiMarginLoss(p=2, margin=0.5, weight=[1.0, 2.0], reduction='sum')"
    assert repr(bp.MultiLabelMarginLoss(reduction="none")) == \
        "MultiLabelMarginLoss(reduction='none')"


def test_both_are_exported_under_torchs_names():
    assert {"MultiMarginLoss", "MultiLabelMarginLoss"} <= set(bp.__all__)
    assert bp.losses.MultiMarginLoss is bp.MultiMarginLoss
    assert bp.losses.MultiLabelMarginLoss is bp.MultiLabelMarginLoss
    assert bp.formulas("MultiMarginLoss").startswith("Forward:")
    assert bp.formulas(bp.MultiLabelMarginLoss()).startswith("Forward:")
