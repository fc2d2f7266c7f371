"""SoftmaxCrossEntropy's weight and ignore_index, BinaryCrossEntropyWithLogits' pos_weight:
PyTorch's semantics, against a loop over the samples and against torch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop as bp

W = np.array([1.0, 2.0, 0.5, 3.0])


def _logits(n=7, c=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c)) * 3


def _reference_ce(z, y, eps, w, ignore):
    """PyTorch's weighted, smoothed cross-entropy, one sample at a time."""
    n, c = z.shape
    w = np.ones(c) if w is None else w
    total, divisor = 0.0, 0.0
    for zi, yi in zip(z, y, strict=True):
        if yi == ignore:
            continue
        logp = zi - zi.max() - np.log(np.exp(zi - zi.max()).sum())
        total += -(1 - eps) * w[yi] * logp[yi] - eps / c * (w * logp).sum()
        divisor += w[yi]
    return total / divisor


@pytest.mark.parametrize("eps,w,ignore",
                         list(itertools.product([0.0, 0.3], [None, W], [None, -1])))
def test_weighted_cross_entropy_matches_a_loop_over_samples_and_its_gradients(eps, w, ignore):
    z = _logits()
    y = np.array([0, 1, 2, 3, 1, 0, 2])
    if ignore is not None:
        y[[1, 5]] = ignore
    loss = bp.SoftmaxCrossEntropy(eps, weight=w, ignore_index=ignore)
    assert loss.forward(z, y) == pytest.approx(_reference_ce(z, y, eps, w, ignore), rel=1e-12)
    grad = loss.backward()
    if ignore is not None:
        np.testing.assert_array_equal(grad[[1, 5]], 0.0)  # ignored samples get no gradient
    h = 1e-6  # central differences of the loss itself
    numeric = np.zeros_like(z)
    for i, j in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i, j] += h
        zm[i, j] -= h
        numeric[i, j] = (loss.forward(zp, y) - loss.forward(zm, y)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, atol=1e-8)


def test_unweighted_options_change_nothing_and_repr_shows_what_is_set():
    z, y = _logits(), np.array([0, 1, 2, 3, 1, 0, 2])
    plain = bp.SoftmaxCrossEntropy(0.1)
    same = bp.SoftmaxCrossEntropy(0.1, weight=np.ones(4), ignore_index=-100)
    assert same.forward(z, y) == pytest.approx(plain.forward(z, y), rel=1e-14)
    np.testing.assert_allclose(same.backward(), plain.backward(), rtol=1e-13, atol=1e-16)
    assert repr(same) == ("SoftmaxCrossEntropy(label_smoothing=0.1, weight=[1.0, 1.0, 1.0, 1.0], "
                          "ignore_index=-100)")
    assert repr(bp.BinaryCrossEntropyWithLogits(pos_weight=2)) == \
        "BinaryCrossEntropyWithLogits(pos_weight=2.0)"


def test_a_batch_of_only_ignored_labels_is_zero_with_no_gradient_and_fit_goes_on():
    loss = bp.SoftmaxCrossEntropy(ignore_index=-100)
    assert loss.forward(_logits(2), np.array([-100, -100])) == 0.0  # torch: nan
    np.testing.assert_array_equal(loss.backward(), 0.0)
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    y = np.array([-100] * 4 + [0, 1, 2, 3])  # the first batch of 4 is all ignored
    model = bp.Sequential([bp.Dense(4, 4, rng=0)])
    history = model.fit(x, y, loss=loss, optimizer=bp.SGD(model.parameters(), lr=0.1),
                        batch_size=4, shuffle=False, progress=False)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(weight=[1.0, -1.0]), ValueError, r"expected finite weight >= 0, got \[1.0, -1.0\]"),
    (dict(weight=[1.0, np.nan]), ValueError, "expected finite weight >= 0"),
    (dict(weight=[[1.0]]), ValueError,
     r"expected weight as one per class \(C,\), got shape \(1, 1\)"),
    (dict(weight=["a"]), TypeError, "expected weight as real numbers"),
    (dict(ignore_index=1.5), TypeError, "expected ignore_index as an int or None, got 1.5"),
    (dict(ignore_index=True), TypeError, "expected ignore_index as an int or None"),
])
def test_cross_entropy_refuses_bad_weights_and_ignore_index(kwargs, err, match):
    with pytest.raises(err, match=rf"SoftmaxCrossEntropy: {match}"):
        bp.SoftmaxCrossEntropy(**kwargs)


def test_cross_entropy_names_a_weight_count_or_label_that_does_not_fit():
    with pytest.raises(ValueError, match=r"expected logits of 3 classes \(one per weight\), "
                                         r"got shape \(7, 4\)"):
        bp.SoftmaxCrossEntropy(weight=[1, 2, 3]).forward(_logits(), np.zeros(7, int))
    with pytest.raises(ValueError, match=r"expected class indices in \[0, 4\) or -100 "
                                         r"\(ignored\), got values from -5 to 2"):
        bp.SoftmaxCrossEntropy(ignore_index=-100).forward(
            _logits(), np.array([0, 1, 2, -100, -5, 0, 0]))


def test_fit_trains_with_ignored_labels_and_class_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    y[::10] = -100
    model = bp.Sequential([bp.Dense(5, 8, rng=0), bp.ReLU(), bp.Dense(8, 2, rng=1)])
    loss = bp.SoftmaxCrossEntropy(weight=[1.0, 2.0], ignore_index=-100)
    before = model.evaluate(x, y, loss=loss)["loss"]
    history = model.fit(x, y, loss=loss, optimizer=bp.SGD(model.parameters(), lr=0.1),
                        epochs=20, progress=False, seed=0)
    assert history.history["loss"][-1] < 0.5 * before
    kept = y != -100
    assert np.mean(model.predict(x[kept]).argmax(1) == y[kept]) > 0.9


def _reference_bce(z, t, r):
    sig = 1 / (1 + np.exp(-z))
    return np.mean(-(r * t * np.log(sig) + (1 - t) * np.log(1 - sig)))


@pytest.mark.parametrize("r", [2.0, [0.5, 1.0, 4.0], [0.0, 2.0, 1.0]])
def test_bce_pos_weight_matches_the_textbook_formula_and_its_gradients(r):
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((5, 3)), rng.uniform(0, 1, (5, 3))
    loss = bp.BinaryCrossEntropyWithLogits(pos_weight=r)
    assert loss.forward(z, t) == pytest.approx(_reference_bce(z, t, np.asarray(r)), rel=1e-12)
    grad = loss.backward()
    sig = 1 / (1 + np.exp(-z))
    want = ((1 - t) * sig - np.asarray(r) * t * (1 - sig)) / z.size
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-15)


def test_bce_pos_weight_is_stable_at_huge_logits_and_refuses_bad_weights():
    z = np.array([[1e4, -1e4]], np.float32)
    loss = bp.BinaryCrossEntropyWithLogits(pos_weight=[3.0, 0.5])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(z, np.array([[0.0, 1.0]], np.float32))
    assert value == pytest.approx((1e4 + 0.5 * 1e4) / 2)
    assert np.all(np.isfinite(loss.backward()))
    with pytest.raises(ValueError, match=r"expected finite pos_weight >= 0, got -1"):
        bp.BinaryCrossEntropyWithLogits(pos_weight=-1)
    with pytest.raises(TypeError, match="expected pos_weight as real numbers"):
        bp.BinaryCrossEntropyWithLogits(pos_weight="x")
    with pytest.raises(ValueError, match=r"expected outputs that pos_weight \(2,\) "
                                         r"broadcasts to, got shape \(5, 1\)"):
        bp.BinaryCrossEntropyWithLogits(pos_weight=[1, 2]).forward(np.zeros((5, 1)),
                                                                  np.zeros((5, 1)))


@pytest.mark.parametrize("eps,w,ignore,soft", list(itertools.product(
    [0.0, 0.3], [None, W], [None, -100], [False, True])))
def test_cross_entropy_options_match_torch(eps, w, ignore, soft):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    z = _logits(seed=3)
    y = rng.dirichlet(np.ones(4), size=7) if soft else np.array([0, 1, 2, 3, 1, 0, 2])
    if ignore is not None and not soft:
        y[[2, 4]] = ignore
    loss = bp.SoftmaxCrossEntropy(eps, weight=w, ignore_index=ignore)
    value, grad = loss.forward(z, y), loss.backward()
    zt = torch.tensor(z, requires_grad=True)
    kwargs = {} if w is None else {"weight": torch.tensor(w)}
    if ignore is not None:
        kwargs["ignore_index"] = ignore
    want = torch.nn.functional.cross_entropy(zt, torch.tensor(y), label_smoothing=eps, **kwargs)
    want.backward()
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("shape,r", [((6, 3), [1.0, 2.0, 0.5]), ((6, 3), 3.0), ((6,), 2.0),
                                     ((4, 2, 3), [0.0, 1.0, 4.0])])
def test_bce_pos_weight_matches_torch(shape, r):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    z, t = rng.standard_normal(shape) * 4, rng.uniform(0, 1, shape)
    loss = bp.BinaryCrossEntropyWithLogits(pos_weight=r)
    value, grad = loss.forward(z, t), loss.backward()
    zt = torch.tensor(z, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        zt, torch.tensor(t), pos_weight=torch.tensor(r, dtype=torch.float64))
    want.backward()
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-11, atol=1e-16)


def test_fit_epoch_loss_and_metrics_count_what_the_loss_counts():
    """With ignored labels and class weights the batches' means are weighed by their
    divisors, so with lr=0 the epoch's loss is evaluate's loss over all samples at once,
    and accuracy scores only the samples the loss counts (in fit and evaluate)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 4)).astype(np.float32)
    y = np.array([-100] * 4 + [0, 1, 2, 3] * 2)  # the first batch is all ignored
    model = bp.Sequential([bp.Dense(4, 4, rng=0)])
    loss = bp.SoftmaxCrossEntropy(weight=[1.0, 3.0, 0.5, 2.0], ignore_index=-100)
    history = model.fit(x, y, loss=loss, optimizer=_lr0(model),
                        batch_size=4, shuffle=False, progress=False, metrics=["accuracy"])
    scores = model.evaluate(x, y, loss=loss, metrics=["accuracy"])
    assert history.history["loss"][0] == pytest.approx(scores["loss"], rel=1e-6)
    kept = y != -100
    want = np.mean(model.predict(x[kept]).argmax(1) == y[kept])
    assert scores["accuracy"] == pytest.approx(want)
    assert history.history["accuracy"][0] == pytest.approx(want)
    # class_weight beside ignored labels: the ignored rows weigh 1, the loss skips them
    model.fit(x, y, loss=loss, optimizer=bp.SGD(model.parameters(), lr=0.1), batch_size=4,
              class_weight={0: 2.0}, progress=False)


def test_ignore_index_with_probability_targets_is_refused_as_in_pytorch():
    """PyTorch refuses an ignore_index >= 0 with probabilities (it selects a class) and
    takes a negative one, which ignores nothing."""
    q = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match="expected class indices with an ignore_index >= 0"):
        bp.SoftmaxCrossEntropy(ignore_index=0).forward(_logits(3), q)
    plain = bp.SoftmaxCrossEntropy().forward(_logits(3), q)
    for ignore in (-100, -1):
        assert bp.SoftmaxCrossEntropy(ignore_index=ignore).forward(_logits(3), q) == plain


def test_an_epoch_of_only_ignored_labels_logs_0_as_evaluate_does():
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = np.full(16, -100)
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    loss = bp.SoftmaxCrossEntropy(ignore_index=-100)
    history = model.fit(x, y, loss=loss, optimizer=bp.SGD(model.parameters()), batch_size=4,
                        progress=False, validation_data=(x, y))
    assert history.history["loss"] == [0.0] == history.history["val_loss"]
    assert model.evaluate(x, y, loss=loss)["loss"] == 0.0


def test_class_weight_gives_ignored_rows_weight_one():
    from backprop._fit_arrays import with_class_weight

    y = np.array([-100, 0, 1, -100])
    w = with_class_weight(None, {0: 3.0, 1: 0.5}, y, np.float32, np.zeros((1, 2)), -100)
    np.testing.assert_array_equal(w, [1.0, 3.0, 0.5, 1.0])


@pytest.mark.parametrize("options", [{"weight": [1.0, 1.0, 1.0, 1.0]}, {"ignore_index": -100},
                                     {"ignore_index": 1}, {"weight": [1.0, 2.0, 0.5, 1.0],
                                                           "ignore_index": 0}])
def test_a_minus_inf_logit_gives_the_finite_loss_with_weights_or_ignore_index(options):
    """A masked class (logit -inf) the target gives no weight to adds 0, not 0·-inf = nan
    (as in PyTorch); the unweighted path always did so."""
    x = np.array([[0.0, -np.inf, 1.0, 2.0], [1.0, 0.5, -np.inf, 0.0]])
    y = np.array([2, 3])
    loss = bp.SoftmaxCrossEntropy(**options)
    value = loss.forward(x, y)
    keep = np.ones(4)
    if "weight" in options:
        keep = np.asarray(options["weight"])
    logp0 = 1.0 - np.log(np.exp(0.0) + np.exp(1.0) + np.exp(2.0))
    logp1 = 0.0 - np.log(np.exp(1.0) + np.exp(0.5) + np.exp(0.0))
    w = np.array([keep[2], keep[3]])
    assert np.isfinite(value)
    np.testing.assert_allclose(value, -(w[0] * logp0 + w[1] * logp1) / w.sum(), rtol=1e-12)
    grad = loss.backward()
    assert np.all(np.isfinite(grad)) and grad[0, 1] == 0 and grad[1, 2] == 0


def test_huge_float32_logits_with_weights_stay_finite():
    x = np.array([[3e38, -3e38, 0.0]], np.float32)  # z - max overflows to -inf in float32
    assert bp.SoftmaxCrossEntropy(weight=[1, 1, 1]).forward(x, np.array([0])) == 0.0
    assert bp.SoftmaxCrossEntropy(ignore_index=2).forward(x, np.array([0])) == 0.0


def test_balanced_class_weight_is_scikit_learns():
    """class_weight='balanced' (a scikit-learn habit): n_samples / (n_classes · count),
    from the training labels only (not the validation split's)."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.r_[np.zeros(60, int), np.ones(15, int), np.full(5, 3)])
    x = rng.standard_normal((100, 3)).astype(np.float32)
    y_all = np.r_[y, np.full(20, 2)]  # the last 20 rows, all class 2, are validation
    runs = {}
    for name, weights in (("balanced", "balanced"),
                          ("dict", {0: 80 / (3 * 60), 1: 80 / (3 * 15), 3: 80 / (3 * 5)})):
        model = bp.Sequential([bp.Dense(3, 4, rng=0)])
        runs[name] = model.fit(x, y_all, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(
            model.parameters(), lr=0.1), class_weight=weights, validation_split=0.2,
            epochs=2, batch_size=16, seed=0, progress=False).history
    assert runs["balanced"] == runs["dict"]
    with pytest.raises(TypeError, match=r"expected class_weight as a dict \{class: weight\} "
                                        r"or 'balanced', got 'auto'"):
        model.fit(x, y_all, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(
            model.parameters(), lr=0.1), class_weight="auto", progress=False)
    pytest.importorskip("sklearn")
    from sklearn.utils.class_weight import compute_class_weight

    from backprop._fit_arrays import _balanced
    np.testing.assert_allclose(list(_balanced(y).values()),
                               compute_class_weight("balanced", classes=np.array([0, 1, 3]),
                                                    y=y))


def test_huber_of_huge_differences_is_the_loss_not_an_overflow():
    """Half of float32's range and beyond: the in-place form must not overflow before the
    loss itself does."""
    out = np.array([[2e38], [1.0]], np.float32)
    value = bp.Huber().forward(out, np.zeros((2, 1), np.float32))
    np.testing.assert_allclose(value, (2e38 - 0.5 + 0.5) / 2, rtol=1e-6)


def _lr0(model):
    """An SGD whose steps change nothing (the constructor refuses lr=0; a schedule may not)."""
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0
    return opt
