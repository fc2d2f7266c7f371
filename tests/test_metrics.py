"""Metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest

import backprop as bp
from backprop import metrics

LOGITS = np.array([[2.0, 1.0, 0.1],
                   [0.5, 2.5, 0.3],
                   [0.2, 0.1, 3.0],
                   [1.0, 1.05, 1.1]], dtype=np.float32)
LABELS = np.array([0, 2, 2, 1])


def test_accuracy_of_class_scores_by_hand():
    # predictions 0, 1, 2, 2 against labels 0, 2, 2, 1: two right
    assert metrics.accuracy(LABELS, LOGITS) == 0.5


def test_accuracy_accepts_one_hot_labels():
    one_hot = np.eye(3)[LABELS]
    assert metrics.accuracy(one_hot, LOGITS) == 0.5


def test_accuracy_of_binary_logits_thresholds_at_zero():
    logits = np.array([-1.0, 0.5, 2.0, -0.1])
    assert metrics.accuracy(np.array([0, 1, 0, 1]), logits) == 0.5
    assert metrics.accuracy(np.array([0, 1, 1, 0]), logits[:, None]) == 1.0
    assert metrics.accuracy(np.array([0, 1, 1, 0]), logits + 0.5, threshold=0.5) == 1.0


def test_top_k_accuracy_by_hand():
    # second-best classes: 1, 0, 0, 1 -> top-2 adds sample 3 (label 1) to samples 0 and 2
    assert metrics.top_k_accuracy(LABELS, LOGITS, k=1) == 0.5
    assert metrics.top_k_accuracy(LABELS, LOGITS, k=2) == 0.75
    with pytest.warns(UserWarning, match=r"k \(3\) >= the number of classes \(3\)"):
        assert metrics.top_k_accuracy(LABELS, LOGITS, k=3) == 1.0  # as scikit-learn, warned


def test_top_k_accuracy_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((200, 7))
    y = rng.integers(0, 7, 200)
    for k in (1, 2, 5):
        assert metrics.top_k_accuracy(y, scores, k) == pytest.approx(
            sk.top_k_accuracy_score(y, scores, k=k, labels=np.arange(7)))


def test_top_k_accuracy_breaks_ties_as_sklearn_does():
    """Equal scores: the higher class index ranks first (scikit-learn's rule)."""
    scores = np.array([[1.0, 1.0, 1.0, 0.0], [2.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.9, 0.5]])
    y = np.array([0, 1, 3])
    assert metrics.top_k_accuracy(y, scores, k=1) == 0.0
    assert metrics.top_k_accuracy(y, scores, k=2) == pytest.approx(1 / 3)  # only row 2
    # row 1: one higher score and two equal ones at higher indices: rank 3, a miss
    assert metrics.top_k_accuracy(y, scores, k=3) == pytest.approx(2 / 3)
    with pytest.warns(UserWarning, match="every sample is a hit"):
        assert metrics.top_k_accuracy(y, scores, k=4) == 1.0
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    tied = rng.integers(0, 3, (300, 6)).astype(float)  # many ties
    labels = rng.integers(0, 6, 300)
    for k in (1, 2, 3, 4, 5):
        assert metrics.top_k_accuracy(labels, tied, k) == pytest.approx(
            sk.top_k_accuracy_score(labels, tied, k=k, labels=np.arange(6)))


def test_mean_absolute_and_squared_error_by_hand():
    out = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    y = np.array([[0.0, 2.0], [5.0, 4.0]])
    assert metrics.mean_absolute_error(y, out) == pytest.approx(3.0 / 4)
    assert metrics.mean_squared_error(y, out) == pytest.approx(5.0 / 4)
    assert metrics.mean_absolute_error(np.array([1.0, 1.0]), np.ones((2, 1))) == 0.0


def test_confusion_matrix_by_hand_and_against_sklearn():
    cm = metrics.confusion_matrix(LABELS, LOGITS)
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    np.testing.assert_array_equal(metrics.confusion_matrix(t, p, num_classes=6),
                                  sk.confusion_matrix(t, p, labels=np.arange(6)))


def test_confusion_matrix_of_scores_has_a_row_for_every_class():
    """Scores (N, C) fix the size: classes nobody predicted or labelled still get a row."""
    scores = np.zeros((3, 5))
    scores[[0, 1, 2], [0, 2, 2]] = 1.0
    cm = metrics.confusion_matrix([0, 1, 2], scores)
    assert cm.shape == (5, 5) and cm.sum() == 3
    assert cm[0, 0] == cm[1, 2] == cm[2, 2] == 1
    assert metrics.confusion_matrix([0, 1, 2], [0, 2, 2]).shape == (3, 3)  # labels: 1 + max


def test_confusion_matrix_rejects_labels_beyond_num_classes():
    with pytest.raises(ValueError, match=r"expected labels in \[0, 2\)"):
        metrics.confusion_matrix([0, 1, 2], [0, 1, 1], num_classes=2)


@pytest.mark.parametrize("name, expected", [
    ("accuracy", 0.5), ("acc", 0.5), ("top_2_accuracy", 0.75), ("top_k_accuracy", 1.0),
])
def test_get_resolves_names(name, expected):
    if name == "top_k_accuracy":  # k = 5 on 3 classes: a perfect score, warned
        with pytest.warns(UserWarning, match="every sample is a hit"):
            assert metrics.get(name)(LABELS, LOGITS) == expected
        return
    assert metrics.get(name)(LABELS, LOGITS) == expected


def test_get_passes_callables_and_rejects_unknown_names():
    fn = lambda y, out: 1.0  # noqa: E731
    assert metrics.get(fn) is fn
    assert metrics.get("mae") is metrics.mean_absolute_error
    with pytest.raises(ValueError, match="expected a metric name in .* got 'iou'"):
        metrics.get("iou")
    with pytest.raises(TypeError, match="got int"):
        metrics.get(3)


def test_accuracy_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"expected y_true of shape \(4,\).*got \(3,\)"):
        metrics.accuracy(LABELS[:3], LOGITS)


def test_errors_of_integer_or_unsigned_outputs_are_not_truncated_or_wrapped():
    assert metrics.mean_absolute_error([0.5, 1.5], np.array([0, 1])) == 0.5
    assert metrics.mean_squared_error([0.5, 1.5], np.array([0, 1])) == 0.25
    assert metrics.mean_absolute_error([1], np.array([0], np.uint8)) == 1.0
    assert metrics.mean_absolute_error([1, 0], np.array([True, True])) == 0.5
    out32 = np.array([0.25, 0.75], np.float32)  # float outputs keep their dtype
    assert metrics.mean_squared_error([0, 1], out32) == pytest.approx(0.0625)


def test_accuracy_of_a_model_ending_in_sigmoid_thresholds_probabilities_at_one_half():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    y = (x[:, 0] > 0.3).astype(np.float32)
    model = bp.Sequential([bp.Dense(4, 1, rng=0), bp.Sigmoid()])
    p = model.predict(x)[:, 0]
    want = float(np.mean((p > 0.5) == (y > 0.5)))
    got = model.evaluate(x, y[:, None], loss=bp.MeanSquaredError(), metrics=["accuracy"])
    assert got["accuracy"] == pytest.approx(want) and want != pytest.approx(y.mean())
    h = model.fit(x, y[:, None], loss=bp.MeanSquaredError(), optimizer=bp.SGD(
        model.parameters(), lr=1e-9), metrics=["accuracy"], epochs=1, batch_size=200,
        progress=False)
    assert h.history["accuracy"][0] == pytest.approx(want, abs=1e-6)
    logits = bp.Sequential([bp.Dense(4, 1, rng=0)])  # logits: threshold 0, as before
    z = logits.predict(x)[:, 0]
    assert logits.evaluate(x, y, metrics=["accuracy"])["accuracy"] == pytest.approx(
        float(np.mean((z > 0) == (y > 0.5))))


def test_confusion_matrix_reads_whole_float_predictions_as_labels_and_takes_a_threshold():
    sk = pytest.importorskip("sklearn.metrics")
    y, pred = [0, 1, 2, 2], np.array([0.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(metrics.confusion_matrix(y, pred),
                                  sk.confusion_matrix(y, pred.astype(int)))
    probs = np.array([0.2, 0.9, 0.1, 0.7])
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 1, 0, 0], probs, threshold=0.5),
                                  [[2, 1], [0, 1]])
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 1], np.array([-1.5, 2.5])),
                                  [[1, 0], [0, 1]])  # binary logits, threshold 0
    with pytest.raises(TypeError, match="num_classes"):
        metrics.confusion_matrix([0, 1], [0, 1], num_classes=2.9)


def test_float_labels_must_be_finite_whole_numbers():
    """Whole floats count as labels everywhere (accuracy, confusion_matrix, one_hot);
    an inf is not a label (it used to pass the whole-number test and cast to garbage)."""
    scores = np.eye(3)
    assert metrics.accuracy(np.array([0.0, 1.0, 2.0]), scores) == 1.0
    for bad in (np.array([0.0, np.inf, 2.0]), np.array([0.0, 1.5, 2.0])):
        with pytest.raises(ValueError, match="expected integer class labels"):
            metrics.accuracy(bad, scores)
        with pytest.raises(ValueError, match="expected integer class labels"):
            metrics.confusion_matrix(bad, scores)


@pytest.mark.parametrize("labels, got", [
    ([0, 1, -1], "from -1 to 1"),
    ([0, 1, 10**12], "from 0 to 1000000000000"),
    (np.array([0, 1, 2**63], np.uint64), "from 0 to 9223372036854775808"),
    (np.eye(4)[[0, 1, 3]], "from 0 to 3"),  # one-hot rows wider than the scores
])
@pytest.mark.parametrize("metric", ["accuracy", "top_k_accuracy"])
def test_label_outside_the_score_columns_is_refused(metric, labels, got):
    """Label -1 used to count as a miss, 10**12 raised IndexError: both ValueError now."""
    with pytest.raises(ValueError, match=rf"{metric}: expected labels in \[0, 3\), got "
                                         rf"values {got}"):
        getattr(metrics, metric)(labels, np.eye(3), **({"k": 1} if metric != "accuracy"
                                                       else {}))


def test_binary_accuracy_thresholds_labels_in_the_unit_interval_only():
    # 1-D and 1-column scores compare y > 0.5 for labels (or soft targets) in [0, 1];
    # others are a model with too few outputs, or a regression (once silently scored)
    assert metrics.accuracy([0, 1], np.array([-1.0, 1.0])) == 1.0
    assert metrics.accuracy([0.2, 0.7], np.array([[-1.0], [1.0]])) == 1.0
    for y in ([-1, 2], [0, 2]):
        with pytest.raises(ValueError, match="expected binary labels"):
            metrics.accuracy(y, np.array([-1.0, 1.0]))


@pytest.mark.parametrize("y_true, y_pred, num_classes, match", [
    ([0, 10**12], [0, 1], None, r"got shape .* from 1 \+ the largest label "
                                r"1000000000000"),
    ([0, 10**6], [0, 1], None, r"got shape \(1000001, 1000001\) \(1,000,002,000,001 elements\)"),
    ([0, 1], [0, 1], 10**6, "from num_classes=1000000"),
    (np.array([0, 2**63], np.uint64), [0, 1], None, "largest label 9223372036854775808"),
])
def test_confusion_matrix_refuses_an_absurd_size_before_allocating(y_true, y_pred, num_classes,
                                                                   match):
    with pytest.raises(ValueError, match=r"confusion_matrix: expected an output of at most "
                                         r"2\*\*31 elements, .*" + match):
        metrics.confusion_matrix(y_true, y_pred, num_classes)


def test_confusion_matrix_of_unsigned_labels():
    cm = metrics.confusion_matrix(np.array([0, 1, 1], np.uint64), [0, 1, 0])
    np.testing.assert_array_equal(cm, [[1, 0], [1, 1]])


@pytest.mark.parametrize("metric", ["mae", "mse", "accuracy"])
@pytest.mark.parametrize("which", ["y_true", "output"])
def test_string_arrays_are_type_errors_naming_the_metric(metric, which):
    fn = metrics.get(metric)
    text, numbers = np.array(["a", "b"]), np.array([1.0, 0.0])
    args = (text, numbers) if which == "y_true" else (numbers, text)
    with pytest.raises(TypeError, match=rf"{fn.__name__}: expected {which} as numbers "
                                        r"\(bool, int or float\), got dtype <U1"):
        fn(*args)


@pytest.mark.parametrize("y,out", [([0, 1, 2], [[-1.0], [1.0], [1.0]]),  # 3 classes, 1 output
                                   ([1, 2, 2, 1], [-1.0, 1.0, 1.0, -1.0]),
                                   ([0.0, 3.7, -1.2], [0.1, 0.2, 0.3]),  # regression targets
                                   ([0.0, np.nan], [1.0, -1.0])])
def test_accuracy_of_one_output_column_refuses_labels_that_are_not_binary(y, out):
    with pytest.raises(ValueError, match=r"accuracy: expected binary labels in \[0, 1\] for "
                                         r"one output column, got values from"):
        bp.metrics.accuracy(y, out)
    assert bp.metrics.accuracy([0, 1, 1], [-2.0, 3.0, -1.0]) == pytest.approx(2 / 3)
    assert bp.metrics.accuracy([0.0, 0.9, 0.2], [[-2.0], [3.0], [1.0]]) == pytest.approx(2 / 3)


def _multi_label():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 6)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 2] + x[:, 3] > 0], axis=1).astype(np.float32)
    return x, y


def test_accuracy_with_a_binary_cross_entropy_scores_each_label_as_keras_does():
    x, y = _multi_label()
    model = bp.Sequential(bp.Dense(6, 16, rng=0), bp.ReLU(), bp.Dense(16, 3, rng=1))
    loss = bp.BinaryCrossEntropyWithLogits()
    model.fit(x, y, loss=loss, optimizer=bp.Adam(model.parameters(), lr=1e-2), epochs=20,
              metrics=["accuracy"], progress=False, seed=0)
    want = float(((model.predict(x) > 0) == (y > 0.5)).mean())
    assert model.evaluate(x, y, loss=loss, metrics=["accuracy"])["accuracy"] == pytest.approx(want)
    assert bp.metrics.binary_accuracy(y, model.predict(x)) == pytest.approx(want)
    assert model.evaluate(x, y, metrics=["binary_accuracy"])["binary_accuracy"] == pytest.approx(
        want)


def test_accuracy_refuses_rows_of_several_labels():
    _, y = _multi_label()
    assert (y.sum(axis=1) != 1).any()
    with pytest.raises(ValueError, match=r"accuracy: expected one label per sample .* rows of "
                                         r"0/1 that are not one-hot .* 'binary_accuracy'"):
        bp.metrics.accuracy(y, np.zeros(y.shape, np.float32))
    one_hot = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    assert bp.metrics.accuracy(one_hot, np.eye(3)[[0, 2, 2]]) == pytest.approx(2 / 3)


def test_binary_accuracy_checks_shapes_and_targets():
    assert bp.metrics.binary_accuracy([1, 0, 1], np.array([[2.0], [-1.0], [-3.0]])) == \
        pytest.approx(2 / 3)
    assert bp.metrics.binary_accuracy([1, 0], [0.7, 0.2], threshold=0.5) == 1.0
    with pytest.raises(ValueError, match=r"binary_accuracy: expected y_true of the output's "
                                         r"shape \(2, 2\), got \(3,\)"):
        bp.metrics.binary_accuracy([1, 0, 1], np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"expected targets in \[0, 1\], got values from 0 to 2"):
        bp.metrics.binary_accuracy([0, 2], [0.0, 1.0])


def test_a_sigmoid_before_shape_only_layers_still_thresholds_at_one_half():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = bp.Sequential(bp.Dense(4, 1, rng=0), bp.Sigmoid(), bp.Flatten(), bp.Identity())
    p = model.predict(x)
    want = float(((p.reshape(-1) > 0.5) == (y > 0.5)).mean())
    assert model.evaluate(x, y, metrics=["accuracy"])["accuracy"] == pytest.approx(want)


@pytest.mark.parametrize("shape", [(40,), (40, 1), (40, 3)])
def test_r2_is_scikit_learns(shape):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.standard_normal(shape)
    out = (y + 0.5 * rng.standard_normal(shape)).astype(np.float32)
    assert metrics.r2(y, out) == pytest.approx(sklearn_metrics.r2_score(y, out), rel=1e-6)
    assert metrics.get("r2") is metrics.r2 is metrics.get("r2_score")
    constant = np.ones(5)
    assert metrics.r2(constant, constant) == 1.0 and metrics.r2(constant, constant + 0.1) == 0.0
    with pytest.raises(ValueError, match=r"r2: expected y_true of shape \(3,\), got \(2,\)"):
        metrics.r2([1, 2], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("batch_size", [50, 10, 7])
def test_fits_training_r2_is_that_of_all_the_epochs_samples_at_once(batch_size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3)).astype(np.float32)
    t = (x @ rng.standard_normal((3, 2)) + 5).astype(np.float32)
    model = bp.Sequential(bp.Dense(3, 2, rng=0))
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0  # the weights stay: the epoch's r2 must be evaluate's
    history = model.fit(x, t, loss=bp.MeanSquaredError(), optimizer=opt, metrics=["r2"],
                        batch_size=batch_size, progress=False, seed=0)
    # rel 1e-6, not float64's 1e-12: OpenBLAS (0.3.31) may round a float32 output row
    # one ulp apart by its place in the batch (one row of 50 here, in some batch
    # orders), which moves r2 = -25.18 by ~1e-9 relative. A per-batch mean of r2s, or
    # statistics merged wrongly, are off by far more.
    assert history.history["r2"][0] == pytest.approx(
        model.evaluate(x, t, metrics=["r2"])["r2"], rel=1e-6)


@pytest.mark.parametrize("value, got", [(np.zeros(3), r"ndarray of shape \(3,\)"),
                                        ("s", "str 's'"), (None, "NoneType None")])
def test_evaluate_names_a_callable_metric_that_gives_no_number(value, got):
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])

    def mine(y_true, output):
        return value

    with pytest.raises(TypeError, match=rf"^evaluate: expected metric 'mine' to return one "
                                        rf"real number, got {got}$"):
        model.evaluate(np.zeros((4, 2), np.float32), np.zeros(4, int), metrics=[mine])


def test_accuracy_refuses_nan_scores_as_f1_does():
    scores = np.array([[0.1, np.nan, np.nan, 3.0],  # argmax would read the NaN as class 1
                       [0.9, 0.2, 0.1, 0.0]], dtype=np.float32)
    for fn in (metrics.accuracy, metrics.f1):
        with pytest.raises(ValueError, match=r"expected scores without NaN, got 2 NaN of 8"):
            fn(np.array([1, 0]), scores)
    inf = np.array([[np.inf, 0.0], [0.0, 1.0]], dtype=np.float32)  # inf is a score
    assert metrics.accuracy(np.array([0, 1]), inf) == 1.0


def _regressor():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.float32)
    model = bp.Sequential([bp.Dense(4, 16, rng=0), bp.ReLU(), bp.Dense(16, 1, rng=1)])
    return model, x, y


def test_accuracy_of_a_regression_loss_thresholds_its_predictions_at_one_half():
    """MSE on 0/1 targets predicts them: cut at 0.5 (Keras' BinaryAccuracy), not at the
    logit 0, which read 0.61 for a model right on 99 % of the samples."""
    model, x, y = _regressor()
    for loss in (bp.MeanSquaredError(), bp.MeanAbsoluteError(), bp.Huber()):
        history = model.fit(x, y, loss=loss, optimizer=bp.Adam(model.parameters(), lr=1e-2),
                            epochs=2, metrics=["accuracy", "f1"], seed=0, progress=False)
        pred = model.predict(x)[:, 0] > 0.5
        got = model.evaluate(x, y, loss=loss, metrics=["accuracy", "f1"])
        assert got["accuracy"] == pytest.approx(np.mean(pred == y))
        assert got["f1"] == pytest.approx(f1_score_of(y, pred))
        assert 0 <= history.history["accuracy"][-1] <= 1


def f1_score_of(y, pred):
    tp = np.sum(pred & (y == 1))
    return 2 * tp / (np.sum(pred) + np.sum(y == 1))


def test_a_users_metric_gets_targets_and_outputs_of_one_rank():
    """(N,) targets against an (N, 1) output broadcast to (N, N) in np.abs(t - o): Keras
    squeezes the trailing 1 first, and so does fit/evaluate for a metric of the user's."""
    model, x, y = _regressor()
    seen = []

    def my_mae(t, o):
        seen.append((t.shape, o.shape))
        return float(np.mean(np.abs(t - o)))

    history = model.fit(x, y, loss=bp.MeanSquaredError(), metrics=["mae", my_mae],
                        optimizer=bp.SGD(model.parameters(), lr=0.01), epochs=1,
                        batch_size=50, progress=False, validation_split=0.25)
    assert all(len(t) == 1 and t == o for t, o in seen), seen
    got = model.evaluate(x, y, loss=bp.MeanSquaredError(), metrics=["mae", my_mae])
    assert got["my_mae"] == pytest.approx(got["mae"], rel=1e-6)
    assert history.history["val_my_mae"][0] == pytest.approx(history.history["val_mae"][0],
                                                                rel=1e-6)


def test_a_column_of_labels_scores_the_same_with_or_without_a_loss():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((120, 8)).astype(np.float32), rng.integers(0, 4, (120, 1))
    model = bp.Sequential([bp.Dense(8, 4, rng=0)])

    def my_acc(t, o):
        return float(np.mean(o.argmax(1) == t))

    alone = model.evaluate(x, y, metrics=[my_acc, "accuracy"])
    with_loss = model.evaluate(x, y, loss=bp.SoftmaxCrossEntropy(), metrics=[my_acc, "accuracy"])
    assert alone["my_acc"] == with_loss["my_acc"] == with_loss["accuracy"] == alone["accuracy"]


def test_auc_of_a_model_ending_in_softmax_ranks_its_probabilities_as_scikit_learn():
    """It took a softmax of the probabilities, which reorders each class's column."""
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((300, 16)).astype(np.float32), rng.integers(0, 5, 300)
    model = bp.Sequential([bp.Dense(16, 5, rng=0), bp.Softmax()])
    want = skm.roc_auc_score(y, model.predict(x).astype(np.float64), multi_class="ovr")
    assert model.evaluate(x, y, metrics=["auc"])["auc"] == pytest.approx(want, abs=1e-12)
    z = bp.Sequential([bp.Dense(16, 5, rng=0)]).predict(x).astype(np.float64)  # logits
    assert bp.metrics.roc_auc(y, z) == pytest.approx(
        skm.roc_auc_score(y, np.exp(z) / np.exp(z).sum(1, keepdims=True), multi_class="ovr"))
