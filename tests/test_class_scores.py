"""precision, recall and f1: scikit-learn's scores, accumulated exactly over fit's epochs."""

import numpy as np
import pytest

import backprop as bp
from backprop import metrics

sklearn_metrics = pytest.importorskip("sklearn.metrics")
SCORES = [(metrics.precision, "precision_score"), (metrics.recall, "recall_score"),
          (metrics.f1, "f1_score")]


@pytest.mark.parametrize("classes", [2, 3, 6])
def test_class_scores_are_scikit_learns_binary_or_macro(classes):
    rng = np.random.default_rng(classes)
    for trial in range(40):
        n = int(rng.integers(1, 30))
        out = rng.standard_normal((n, classes))
        y = rng.integers(0, classes if trial % 3 else 2, n)  # some batches miss classes
        average = "binary" if classes == 2 else "macro"
        for ours, name in SCORES:
            want = getattr(sklearn_metrics, name)(y, out.argmax(1), average=average,
                                                   zero_division=0)
            assert ours(y, out) == pytest.approx(want, abs=1e-12), (name, y, out.argmax(1))
            assert ours(np.eye(classes)[y], out) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("shape", [(25,), (25, 1)])
def test_one_binary_logit_scores_the_positive_class_at_zero(shape):
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal(shape), rng.integers(0, 2, 25)
    for ours, name in SCORES:
        want = getattr(sklearn_metrics, name)(y, (z.reshape(-1) > 0).astype(int))
        assert ours(y, z) == pytest.approx(want, abs=1e-12)


def test_batch_counts_merge_into_the_whole_sets_score():
    rng = np.random.default_rng(2)
    out, y = rng.standard_normal((40, 4)), rng.integers(0, 4, 40)
    for ours, _ in SCORES:
        counts = ours.merge(ours.partial(y[:7], out[:7]), ours.partial(y[7:], out[7:]))
        assert ours.finish(counts) == ours(y, out)
        # a mean of the two batch scores is not the score of the whole set
        assert ours.finish(counts) != pytest.approx(
            (7 * ours(y[:7], out[:7]) + 33 * ours(y[7:], out[7:])) / 40)


def test_class_scores_refuse_multi_label_rows_and_bad_shapes():
    with pytest.raises(ValueError, match=r"^f1: expected one label per sample .* train with "
                                         r"BinaryCrossEntropyWithLogits.*average='macro'.*"
                                         r"bp\.metrics\.f1\.multi_label\(y, output\)"):
        metrics.f1(np.array([[1, 1, 0], [0, 1, 1]]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^precision: expected output of shape \(N,\), "
                                         r"\(N, 1\) or \(N, C\)"):
        metrics.precision(np.zeros(2, int), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="recall"):
        metrics.recall(np.array([0, 3]), np.zeros((2, 3)))  # label 3 of 3 classes


@pytest.mark.parametrize("batch_size", [7, 16, 100])
def test_fits_training_f1_is_that_of_all_the_epochs_samples_at_once(batch_size):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((100, 5)).astype(np.float32), rng.integers(0, 3, 100)
    model = bp.Sequential([bp.Dense(5, 3, rng=0)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0  # the weights stay: the epoch's scores must be evaluate's
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, shuffle=False,
                        batch_size=batch_size, metrics=["precision", "recall", "f1"],
                        progress=False)
    want = model.evaluate(x, y, metrics=["precision", "recall", "f1"])
    for name in ("precision", "recall", "f1"):
        assert history.history[name][0] == pytest.approx(want[name], abs=1e-12)
    assert metrics.get("f1_score") is metrics.f1


def test_a_sigmoid_model_is_scored_at_one_half():
    x = np.linspace(-1, 1, 40, dtype=np.float32)[:, None]
    y = (x[:, 0] > 0.5).astype(int)  # positive only above 0.5: a threshold matters
    model = bp.Sequential([bp.Dense(1, 1, rng=0), bp.Sigmoid()])
    model.layers[0].params["W"][...] = 4.0
    model.layers[0].params["b"][...] = -2.0  # p > 0.5 exactly where x > 0.5
    got = model.evaluate(x, y, metrics=["precision", "recall", "f1"])
    assert got == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_early_stopping_knows_f1_improves_upward():
    assert bp.EarlyStopping("val_f1").mode == "max"
    assert bp.EarlyStopping("val_precision").mode == "max"


def test_roc_auc_is_scikit_learns_with_ties_binary_and_one_vs_rest():
    rng = np.random.default_rng(4)
    for _ in range(30):
        n = int(rng.integers(6, 40))
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]  # both classes present
        z = np.round(rng.standard_normal(n), 1)  # ties, which count half
        want = sklearn_metrics.roc_auc_score(y, z)
        assert metrics.roc_auc(y, z) == pytest.approx(want, abs=1e-12)
        assert metrics.roc_auc(y, z[:, None]) == pytest.approx(want, abs=1e-12)
        two = np.c_[np.zeros(n), z]  # class 1's probability orders as z
        assert metrics.roc_auc(y, two) == pytest.approx(want, abs=1e-12)
        y4 = np.r_[0, 1, 2, 3, rng.integers(0, 4, n - 4)]
        out = np.round(rng.standard_normal((n, 4)), 1)
        p = np.exp(out) / np.exp(out).sum(axis=1, keepdims=True)
        assert metrics.roc_auc(y4, out) == pytest.approx(
            sklearn_metrics.roc_auc_score(y4, p, multi_class="ovr"), abs=1e-12)


def test_roc_auc_is_nan_where_undefined_and_skips_undefined_classes():
    assert np.isnan(metrics.roc_auc([1, 1, 1], [0.2, 0.5, 0.1]))
    out = np.array([[1.0, 0.5, 0], [0, 2.0, 0], [0, 0, 3.0], [0, 3.0, 0]])
    assert metrics.roc_auc([0, 1, 2, 1], out) == 1.0
    # class 2 is never a label: its AUC is undefined and left out of the mean of class
    # 0's (1.0) and class 1's (2/3: sample 2's class-1 probability is below sample 0's)
    assert metrics.roc_auc([0, 1, 1, 1], out) == pytest.approx((1.0 + 2 / 3) / 2)
    assert metrics.get("auc") is metrics.roc_auc and bp.EarlyStopping("val_auc").mode == "max"


@pytest.mark.parametrize("batch_size", [7, 100])
def test_fits_training_auc_is_that_of_all_the_epochs_samples_at_once(batch_size):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((100, 5)).astype(np.float32), rng.integers(0, 2, 100)
    model = bp.Sequential([bp.Dense(5, 1, rng=0)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0
    history = model.fit(x, y[:, None].astype(np.float32), loss=bp.BinaryCrossEntropyWithLogits(),
                        optimizer=opt, batch_size=batch_size, metrics=["auc"], progress=False)
    want = sklearn_metrics.roc_auc_score(y, model.predict(x)[:, 0])
    assert history.history["auc"][0] == pytest.approx(want, abs=1e-12)


def test_two_confident_class_scores_keep_their_order_in_roc_auc():
    y = np.array([0, 1, 0, 1])
    scores = np.array([[0, 40.0], [0, 50.0], [0, -3.0], [0, -2.0]])  # p1 rounds to 1.0 twice
    want = sklearn_metrics.roc_auc_score(y, scores[:, 1] - scores[:, 0])
    assert want == 0.75 and metrics.roc_auc(y, scores) == want


def test_class_scores_refuse_nan_outputs():
    for metric in (metrics.precision, metrics.recall, metrics.f1, metrics.roc_auc):
        with pytest.raises(ValueError, match=r"expected scores without NaN, got 2 NaN of 3"):
            metric([1, 1, 0], [np.nan, np.nan, -1.0])


def test_every_label_metric_refuses_rows_of_several_labels():
    rows, out = np.array([[1, 1, 0], [0, 1, 0]]), np.zeros((2, 3))
    for metric in (metrics.accuracy, lambda y, o: metrics.top_k_accuracy(y, o, 1),
                   lambda y, o: metrics.confusion_matrix(y, o)):
        with pytest.raises(ValueError, match="rows of 0/1 that are not one-hot"):
            metric(rows, out)


# -- multi-label: each output column a binary problem, averaged (scikit-learn's macro) --


@pytest.mark.parametrize("columns", [1, 2, 5])
def test_multi_label_scores_are_scikit_learns_macro_average(columns):
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(columns)
    y = (rng.random((60, columns)) < 0.3).astype(np.float32)
    y[:, 0] = 0  # a column with no positive: precision/recall/f1 count it 0, AUC leaves it out
    out = rng.standard_normal((60, columns))
    pred = (out > 0).astype(int)
    for ours, theirs in [(metrics.precision, sklearn.precision_score),
                         (metrics.recall, sklearn.recall_score), (metrics.f1, sklearn.f1_score)]:
        want = theirs(y, pred, average="macro" if columns > 1 else "binary", zero_division=0)
        assert ours.multi_label(y, out) == pytest.approx(want, rel=1e-12, abs=1e-15)
        # at another threshold (a model ending in Sigmoid: probabilities at 0.5)
        probs = 1 / (1 + np.exp(-out))
        assert ours.multi_label.at_threshold(0.5)(y, probs) == ours.multi_label(y, out)
        half = ours.multi_label.partial(y[:25], out[:25])
        assert ours.multi_label.finish(ours.multi_label.merge(
            half, ours.multi_label.partial(y[25:], out[25:]))) == ours.multi_label(y, out)
    if columns > 1:
        auc = metrics.roc_auc.multi_label
        want = np.mean([sklearn.roc_auc_score(y[:, k], out[:, k]) for k in range(1, columns)])
        assert auc(y, out) == pytest.approx(want, rel=1e-12)
        stats = auc.merge(auc.partial(y[:25], out[:25]), auc.partial(y[25:], out[25:]))
        assert auc.finish(stats) == auc(y, out)


def test_fit_and_evaluate_score_multi_label_outputs_column_by_column():
    """With a binary cross-entropy, precision/recall/f1/auc were refused on multi-label
    targets; they are scikit-learn's macro averages over the output columns now."""
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 5)).astype(np.float32)
    y = (x[:, :3] + 0.5 * rng.standard_normal((80, 3)) > 0.3).astype(np.float32)
    names = ["precision", "recall", "f1", "auc"]
    model = bp.Sequential([bp.Dense(5, 3, rng=0)])
    loss = bp.BinaryCrossEntropyWithLogits()
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0  # the epoch's scores are then those of the final weights
    history = model.fit(x, y, loss=loss, optimizer=opt, epochs=1, batch_size=16,
                        metrics=names, progress=False)
    out = model.predict(x)
    pred = (out > 0).astype(int)
    want = [sklearn.precision_score(y, pred, average="macro", zero_division=0),
            sklearn.recall_score(y, pred, average="macro", zero_division=0),
            sklearn.f1_score(y, pred, average="macro", zero_division=0),
            sklearn.roc_auc_score(y, out, average="macro")]
    got = model.evaluate(x, y, loss=loss, metrics=names)
    for name, w in zip(names, want, strict=True):
        assert got[name] == pytest.approx(w, rel=1e-6), name
        assert history.history[name][0] == pytest.approx(w, rel=1e-6), name
