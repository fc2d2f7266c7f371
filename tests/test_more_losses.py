"""NLLLoss and KLDivLoss: values and gradients against PyTorch's, NLLLoss after LogSoftmax
as SoftmaxCrossEntropy (also in fit), and their input checks."""

import warnings

import numpy as np
import pytest

import backprop as bp

W4 = [1.0, 2.0, 0.5, 3.0]


def _torch_value_and_grad(fn, x, g=None):
    """PyTorch's loss ``fn(x)`` and its gradient (of ``sum(g * losses)`` for 'none')."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():  # KLDivLoss 'mean' warns that 'batchmean' is the KL
        warnings.simplefilter("ignore", UserWarning)
        value = fn(xt)
    value.backward(None if g is None else torch.tensor(g))
    return value.detach().numpy(), xt.grad.numpy()


def _ours(loss, x, target, g=None):
    value = loss.forward(x, target)
    return value, loss.backward(g) if loss.reduction == "none" else loss.backward()


def _log_softmax(z, axis=1):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# -- NLLLoss against PyTorch ---------------------------------------------------------------
def _nll_targets(rng, shape, ignore):
    labels = rng.integers(0, 4, shape)
    if ignore == "none":
        return labels
    ignored = rng.random(shape) < 0.3
    ignored.flat[0] = True
    return np.where(ignored, -100 if ignore == "default" else 1, labels)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, W4])
@pytest.mark.parametrize("shape", [(7, 4), (3, 4, 2, 5)])
@pytest.mark.parametrize("ignore", ["none", "default", "in-range"])
def test_nll_loss_matches_torch(reduction, weight, shape, ignore):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = _log_softmax(rng.standard_normal(shape))
    y = _nll_targets(rng, (shape[0], *shape[2:]), ignore)
    index = 1 if ignore == "in-range" else -100
    g = rng.standard_normal(y.shape) if reduction == "none" else None
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    want, want_dx = _torch_value_and_grad(
        lambda xt: torch.nn.NLLLoss(w, ignore_index=index, reduction=reduction)(
            xt, torch.tensor(y)), x, g)
    loss = bp.NLLLoss(weight, ignore_index=index, reduction=reduction)
    value, dx = _ours(loss, x, y, g)
    assert np.shape(value) == want.shape and dx.shape == x.shape
    np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-15)


def test_nll_loss_of_only_ignored_labels_is_zero_where_torch_gives_nan():
    """As SoftmaxCrossEntropy: a 'mean' over nothing is 0 with a zero gradient (PyTorch:
    nan, which would stop fit); 'sum' and 'none' agree with PyTorch."""
    torch = pytest.importorskip("torch")
    x = _log_softmax(np.random.default_rng(0).standard_normal((3, 4)))
    y = np.full(3, -100)
    want, want_dx = _torch_value_and_grad(lambda xt: torch.nn.NLLLoss()(xt, torch.tensor(y)), x)
    assert np.isnan(want) and not want_dx.any()
    loss = bp.NLLLoss()
    assert loss.forward(x, y) == 0.0
    assert not loss.backward().any()
    for reduction in ("sum", "none"):
        want, _ = _torch_value_and_grad(
            lambda xt, r=reduction: torch.nn.NLLLoss(reduction=r)(xt, torch.tensor(y)), x,
            np.ones(3) if reduction == "none" else None)
        np.testing.assert_array_equal(bp.NLLLoss(reduction=reduction).forward(x, y), want)
    weighted = bp.NLLLoss([0.0, 1.0, 1.0, 1.0])  # counted labels that all weigh 0
    assert weighted.forward(x, np.zeros(3, dtype=int)) == 0.0
    assert not weighted.backward().any()


def test_nll_loss_of_minus_inf_is_inf_unless_ignored_or_weighed_zero():
    x = np.array([[-np.inf, 0.0], [-np.inf, 0.0]])
    assert bp.NLLLoss().forward(x, np.array([0, 1])) == np.inf  # as PyTorch
    assert bp.NLLLoss().forward(x, np.array([-100, 1])) == 0.0
    assert bp.NLLLoss([0.0, 1.0], reduction="sum").forward(x, np.array([0, 1])) == 0.0


def test_nll_loss_sample_weight_scales_each_sample_and_keeps_the_divisor():
    rng = np.random.default_rng(3)
    x, y, s = rng.standard_normal((5, 4)), rng.integers(0, 4, 5), rng.uniform(0, 2, 5)
    w = np.array(W4)
    loss = bp.NLLLoss(W4)
    value = loss.forward(x, y, s)
    np.testing.assert_allclose(value, np.sum(-s * w[y] * x[np.arange(5), y]) / w[y].sum(),
                               rtol=1e-12)
    want = np.zeros_like(x)
    want[np.arange(5), y] = -s * w[y] / w[y].sum()
    np.testing.assert_allclose(loss.backward(), want, rtol=1e-12)


# -- NLLLoss after LogSoftmax is SoftmaxCrossEntropy ---------------------------------------
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 2)])
def test_nll_loss_of_log_softmax_equals_softmax_cross_entropy(shape):
    rng = np.random.default_rng(1)
    z = 3 * rng.standard_normal(shape)
    y = np.where(rng.random((shape[0], *shape[2:])) < 0.3, -1,
                 rng.integers(0, 4, (shape[0], *shape[2:])))
    y.flat[1] = 2
    ce = bp.SoftmaxCrossEntropy(weight=W4, ignore_index=-1, dtype=np.float64)
    nll = bp.NLLLoss(W4, ignore_index=-1, dtype=np.float64)
    want, want_dz = ce.forward(z, y), ce.backward()
    layer = bp.LogSoftmax(1, dtype=np.float64)  # its backward carries the gradient to z
    value = nll.forward(layer.forward(z, training=True), y)
    dz = layer.backward(nll.backward())
    np.testing.assert_allclose(value, want, rtol=1e-12)
    np.testing.assert_allclose(dz, want_dz, rtol=1e-10, atol=1e-15)


def _mlp(seed, log_softmax):
    layers = [bp.Dense(2, 16, rng=seed, dtype=np.float64), bp.Tanh(dtype=np.float64),
              bp.Dense(16, 3, rng=seed + 1, dtype=np.float64)]
    return bp.Sequential(layers + [bp.LogSoftmax(dtype=np.float64)] if log_softmax else layers)


def test_fit_with_nll_loss_after_log_softmax_trains_as_softmax_cross_entropy():
    x, y = bp.datasets.spirals(150, 3, rng=0)
    x_val, y_val = bp.datasets.spirals(60, 3, rng=1)
    runs = []
    for log_softmax, loss in ((True, bp.NLLLoss()), (False, bp.SoftmaxCrossEntropy())):
        model = _mlp(0, log_softmax)
        history = model.fit(x, y, loss=loss, optimizer=bp.Adam(model.parameters(), lr=0.03),
                            epochs=8, batch_size=32, seed=0, metrics=["accuracy"],
                            validation_data=(x_val, y_val), progress=False)
        runs.append((model, history, loss))
    (nll_model, nll_hist, nll), (ce_model, ce_hist, ce) = runs
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(nll_hist.history[key], ce_hist.history[key], rtol=1e-9,
                                   err_msg=key)
    assert nll_hist.history["accuracy"][-1] > 0.5  # it learned: chance is 1/3
    for p, q in zip(nll_model.parameters(), ce_model.parameters(), strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-6, atol=1e-9)
    # predict: log-probabilities, whose argmax is the cross-entropy model's
    logp = nll_model.predict(x_val)
    np.testing.assert_allclose(logp, _log_softmax(ce_model.predict(x_val)), atol=1e-9)
    assert (logp.argmax(1) == ce_model.predict(x_val).argmax(1)).all()
    got = nll_model.evaluate(x_val, y_val, loss=nll, metrics=["accuracy"])
    want = ce_model.evaluate(x_val, y_val, loss=ce, metrics=["accuracy"])
    assert got["accuracy"] == want["accuracy"] == np.mean(logp.argmax(1) == y_val)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-9)


def test_evaluate_with_nll_loss_scores_only_the_labels_it_counts():
    x = _log_softmax(np.random.default_rng(2).standard_normal((8, 3)))
    model = bp.Sequential([bp.Identity(dtype=np.float64)])
    y = x.argmax(1)
    y[:3] = -100  # ignored: neither in the loss nor in the accuracy
    y[3] = (y[3] + 1) % 3  # one of the 5 counted is wrong
    scores = model.evaluate(x, y, loss=bp.NLLLoss(), metrics=["accuracy"])
    assert scores["accuracy"] == pytest.approx(4 / 5)
    assert scores["loss"] == pytest.approx(-np.mean(x[np.arange(3, 8), y[3:]]))


# -- KLDivLoss against PyTorch -------------------------------------------------------------
def _probabilities(rng, shape):
    """Target distributions over axis 1, about a quarter of them exactly 0."""
    p = np.where(rng.random(shape) < 0.25, 0.0, rng.uniform(0.1, 1.0, shape))
    p[:, 0] += 0.05  # no row of only zeros
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 2)])
def test_kl_div_loss_matches_torch(reduction, log_target, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = _log_softmax(rng.standard_normal(shape))
    t = _probabilities(rng, shape)
    if log_target:  # log-probabilities: finite here (PyTorch gives nan for -inf)
        t = np.log(np.where(t == 0, 1e-3, t))
    else:
        assert (t == 0).sum() > 2  # the 0 · log 0 = 0 terms are exercised
    g = rng.standard_normal(shape) if reduction == "none" else None
    want, want_dx = _torch_value_and_grad(
        lambda xt: torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(
            xt, torch.tensor(t)), x, g)
    loss = bp.KLDivLoss(reduction=reduction, log_target=log_target)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 'mean' is documented, not warned about
        value, dx = _ours(loss, x, t, g)
    assert np.shape(value) == want.shape and dx.shape == x.shape
    assert np.isfinite(value).all()
    np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-15)


def test_kl_div_loss_reductions_divide_as_documented():
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((4, 5)), _probabilities(rng, (4, 5))
    logt = np.log(np.where(t > 0, t, 1.0))  # 0 log 0 = 0
    terms = t * (logt - x)
    assert bp.KLDivLoss().forward(x, t) == pytest.approx(terms.sum() / 20, rel=1e-12)
    assert bp.KLDivLoss(reduction="batchmean").forward(x, t) == pytest.approx(
        terms.sum() / 4, rel=1e-12)
    loss = bp.KLDivLoss(reduction="batchmean")
    loss.forward(x, t)
    np.testing.assert_allclose(loss.backward(), -t / 4, rtol=1e-15)


def test_kl_div_loss_of_zero_targets_is_zero_for_any_input():
    """0 · log 0 = 0 (PyTorch's xlogy), and 0 · (log 0 - x) = 0 even for x = -inf, where
    PyTorch gives nan; likewise a log-target of -inf."""
    x = np.array([[-np.inf, -0.5, -1.0]])
    t = np.array([[0.0, 0.5, 0.5]])
    want = 0.5 * (np.log(0.5) + 0.5) + 0.5 * (np.log(0.5) + 1.0)
    for loss, target in ((bp.KLDivLoss(reduction="sum"), t),
                         (bp.KLDivLoss(reduction="sum", log_target=True),
                          np.array([[-np.inf, np.log(0.5), np.log(0.5)]]))):
        assert loss.forward(x, target) == pytest.approx(want, rel=1e-15)
        np.testing.assert_allclose(loss.backward(), [[0.0, -0.5, -0.5]], rtol=1e-15)


def test_fit_with_kl_div_loss_learns_soft_targets_and_reports_the_batchmean():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 2))
    t = np.exp(_log_softmax(x @ np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -1.0]])))
    model = _mlp(0, log_softmax=True)
    loss = bp.KLDivLoss(reduction="batchmean")
    before = model.evaluate(x, t, loss=loss)["loss"]
    history = model.fit(x, t, loss=loss, optimizer=bp.Adam(model.parameters(), lr=0.03),
                        epochs=30, batch_size=16, seed=0, progress=False)
    after = model.evaluate(x, t, loss=loss)["loss"]
    assert after < 0.1 * before
    assert after == pytest.approx(loss.forward(model.predict(x), t), rel=1e-12)
    assert history.history["loss"][-1] < history.history["loss"][0]


# -- settings and bad inputs --------------------------------------------------------------
def test_new_losses_are_exported_with_formulas_and_no_longer_point_elsewhere():
    from backprop._other_names import OTHER_NAMES

    assert "NLLLoss" not in OTHER_NAMES and "KLDivLoss" not in OTHER_NAMES
    assert {"NLLLoss", "KLDivLoss"} <= set(bp.__all__) <= set(dir(bp))
    assert bp.losses.NLLLoss is bp.NLLLoss and bp.losses.KLDivLoss is bp.KLDivLoss
    assert bp.formulas("NLLLoss").startswith("Forward:")
    assert bp.formulas(bp.KLDivLoss()).startswith("Forward:")
    assert repr(bp.NLLLoss()) == "NLLLoss()"
    assert repr(bp.NLLLoss(W4, ignore_index=None, reduction="sum")) == \
        "NLLLoss(weight=[1.0, 2.0, 0.5, 3.0], ignore_index=None, reduction='sum')"
    assert repr(bp.KLDivLoss(reduction="batchmean", log_target=True)) == \
        "KLDivLoss(log_target=True, reduction='batchmean')"


@pytest.mark.parametrize("y, error, match", [
    ([0, 1, 4], ValueError, r"^NLLLoss\(\): expected class indices in \[0, 4\) or -100 "
                            r"\(ignored\), got values from 0 to 4"),
    ([0, -1, 3], ValueError, r"expected class indices in \[0, 4\) or -100 \(ignored\), got "
                             r"values from -1 to 3"),
    ([1, 2, 4], ValueError, r"labels counted from 1\? number them from 0"),
    ([0.0, 1.0, 2.0], TypeError, r"expected integer class indices \(3,\), got dtype float64 "
                                 r"\(convert with y\.astype\(int\)"),
    ([True, False, True], TypeError, r"expected integer class indices \(3,\), got dtype bool"),
    ([[0, 1], [1, 2], [2, 3]], ValueError, r"expected 3 class indices of shape \(3,\) for "
                                           r"log-probabilities \(3, 4\), got \(3, 2\)"),
    ([0, 1], ValueError, r"expected 3 class indices of shape \(3,\) .* got \(2,\)"),
    (np.eye(3, 4), TypeError, r"got dtype float64 .*class probabilities take KLDivLoss"),
])
def test_nll_loss_rejects_bad_labels(y, error, match):
    with pytest.raises(error, match=match):
        bp.NLLLoss().forward(np.zeros((3, 4)), np.asarray(y))


def test_nll_loss_rejects_bad_outputs_and_settings():
    with pytest.raises(ValueError, match=r"^NLLLoss\(\): expected log-probabilities of shape "
                                         r"\(N, C\) .*got \(3,\)"):
        bp.NLLLoss().forward(np.zeros(3), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"expected log-probabilities of 4 classes \(one per "
                                         r"weight, on axis 1\), got shape \(2, 3\)"):
        bp.NLLLoss(W4).forward(np.zeros((2, 3)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match=r"expected 4 class indices of shape \(2, 2\) for "
                                         r"log-probabilities \(2, 3, 2\), got \(2, 3\)"):
        bp.NLLLoss().forward(np.zeros((2, 3, 2)), np.zeros((2, 3), dtype=int))
    with pytest.raises(TypeError, match=r"expected a floating output, got int64"):
        bp.NLLLoss().forward(np.zeros((2, 3), dtype=np.int64), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match=r"^NLLLoss: expected finite weight >= 0"):
        bp.NLLLoss([1.0, -1.0])
    with pytest.raises(TypeError, match=r"^NLLLoss: expected ignore_index as an int or None, "
                                        r"got 1\.0"):
        bp.NLLLoss(ignore_index=1.0)
    with pytest.raises(ValueError, match=r"^NLLLoss: expected reduction 'mean', 'sum' or "
                                         r"'none', got 'batchmean'"):
        bp.NLLLoss(reduction="batchmean")


def test_kl_div_loss_rejects_bad_targets_and_settings():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^KLDivLoss\(\): expected finite target "
                                         r"probabilities >= 0 \(log-probabilities take "
                                         r"log_target=True\), got values from -0\.5 to 1\.0"):
        bp.KLDivLoss().forward(x, np.array([[-0.5, 1.0, 0.5], [0.2, 0.3, 0.5]]))
    with pytest.raises(ValueError, match=r"expected finite target probabilities"):
        bp.KLDivLoss().forward(x, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"^KLDivLoss\(log_target=True\): expected target "
                                         r"log-probabilities without NaN or \+inf"):
        bp.KLDivLoss(log_target=True).forward(x, np.array([[0.0, np.inf, 0.0]] * 2))
    with pytest.raises(ValueError, match=r"^KLDivLoss\(\): expected target of shape \(2, 3\), "
                                         r"got \(2, 4\)"):
        bp.KLDivLoss().forward(x, np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match=r"^KLDivLoss: expected reduction 'mean', 'batchmean', "
                                         r"'sum' or 'none', got 'average'"):
        bp.KLDivLoss(reduction="average")
    with pytest.raises(ValueError, match=r"got None"):
        bp.KLDivLoss(reduction=None)
    with pytest.raises(TypeError, match=r"^KLDivLoss: expected log_target to be True or "
                                        r"False, got str 'yes'"):
        bp.KLDivLoss(log_target="yes")
    with pytest.raises(ValueError, match=r"^fit: expected a loss that gives one number"):
        model = bp.Sequential([bp.Dense(3, 3)])
        model.fit(x, np.full((2, 3), 1 / 3), loss=bp.KLDivLoss(reduction="none"),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)


def test_fit_warns_when_probabilities_go_into_nll_loss():
    """PyTorch's slip: Softmax before NLLLoss, which takes log-probabilities."""
    x = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    y = np.arange(8) % 3
    for last, warns in ((bp.Softmax(), True), (bp.LogSoftmax(), False)):
        model = bp.Sequential([bp.Dense(2, 3, rng=0), last])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, loss=bp.NLLLoss(), optimizer=bp.SGD(model.parameters(), lr=0.1),
                      epochs=1, progress=False)
        said = [str(w.message) for w in caught if "NLLLoss takes log-probabilities" in
                str(w.message)]
        assert bool(said) == warns, said


def test_masked_targets_are_refused_by_the_losses():
    """A masked array passed through as an ndarray: the labels under the mask were used
    (NLLLoss) or NumPy crashed inside the loss (KLDivLoss)."""
    out = np.log(np.full((3, 2), 0.5))
    y = np.ma.masked_array([0, 1, 1], mask=[False, True, False])
    t = np.ma.masked_array(np.full((3, 2), 0.5), mask=[[0, 0], [1, 0], [0, 0]])
    for loss, target in ((bp.NLLLoss(), y), (bp.KLDivLoss(), t), (bp.MeanSquaredError(), t)):
        with pytest.raises(ValueError, match=r"expected target without masked entries"):
            loss.forward(out, target)
    assert bp.NLLLoss().forward(out, np.ma.masked_array([0, 1, 1])) == pytest.approx(np.log(2))


def test_fit_warns_when_probabilities_go_into_kl_div_loss():
    x = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    t = np.full((8, 3), 1 / 3, np.float32)
    model = bp.Sequential([bp.Dense(2, 3, rng=0), bp.Softmax()])
    with pytest.warns(UserWarning, match=r"ends in Softmax\(\) and KLDivLoss takes "
                                         r"log-probabilities: end it in LogSoftmax\(\)"):
        model.fit(x, t, loss=bp.KLDivLoss(), optimizer=bp.SGD(model.parameters(), lr=0.1),
                  epochs=1, progress=False)
