"""Bad inputs to ``bp.metrics``: each is refused with ``<metric>: expected ..., got ...``
(no raw NumPy error, no silent number), and the inputs it accepts (lists, pandas,
bools) score as scikit-learn scores them."""

import numpy as np
import pytest

import backprop as bp
from backprop import metrics

Y3 = np.array([0, 1, 2, 1, 0, 2])
S3 = np.array([[2.0, 1, 0], [0, 3, 1], [0, 1, 4], [1, 0, 0], [3, 2, 1], [0, 5, 1]])
YB = np.array([0, 1, 1, 0, 1, 0])
LB = np.array([-1.0, 2, 0.5, -3, -0.2, 0.7])

# (name, call(y_true, output), y_true, output): every public metric once
METRICS = [
    ("accuracy", metrics.accuracy, Y3, S3),
    ("accuracy", metrics.accuracy, YB, LB),
    ("binary_accuracy", metrics.binary_accuracy, YB, LB),
    ("top_k_accuracy", lambda y, o: metrics.top_k_accuracy(y, o, 2), Y3, S3),
    ("confusion_matrix", metrics.confusion_matrix, Y3, S3),
    ("precision", metrics.precision, Y3, S3),
    ("recall", metrics.recall, YB, LB),
    ("f1", metrics.f1, Y3, S3),
    ("roc_auc", metrics.roc_auc, YB, LB),
    ("roc_auc", metrics.roc_auc, Y3, S3),
    ("f1", metrics.f1.multi_label, np.eye(3)[Y3], S3),
    ("roc_auc", metrics.roc_auc.multi_label, np.eye(3)[Y3], S3),
    ("mean_absolute_error", metrics.mean_absolute_error, LB, 2 * LB),
    ("mean_squared_error", metrics.mean_squared_error, LB, 2 * LB),
    ("r2", metrics.r2, LB, 2 * LB),
]
IDS = [f"{m[0]}-{np.ndim(m[3])}d" + ("-ml" if np.ndim(m[2]) == 2 else "") for m in METRICS]
REGRESSION = ("mean_absolute_error", "mean_squared_error", "r2")
CLASS_METRICS = [m for m in METRICS if m[0] not in REGRESSION]
CLASS_IDS = [i for i, m in zip(IDS, METRICS, strict=True) if m[0] not in REGRESSION]


def _with_nan(a, count):
    a = np.array(a, dtype=np.float64)
    a.flat[:count] = np.nan
    return a


def _three_d(a):
    """``(N, 2, C)`` (``(N, 2, 1)`` for ``(N,)``): no metric's class scores."""
    return np.stack([a, a], axis=1).reshape(len(a), 2, -1)


BAD = {
    "None output": lambda y, o: (y, None),
    "None y_true": lambda y, o: (None, o),
    "str output": lambda y, o: (y, "abc"),
    "str y_true": lambda y, o: ("abc", o),
    "string-array output": lambda y, o: (y, np.full(np.shape(o), "a")),
    "string-array y_true": lambda y, o: (np.full(np.shape(y), "a"), o),
    "object output": lambda y, o: (y, np.array(o, dtype=object)),
    "object y_true": lambda y, o: (np.array(y, dtype=object), o),
    "empty": lambda y, o: (np.zeros((0,) + np.shape(y)[1:]), np.zeros((0,) + np.shape(o)[1:])),
    "mismatched length": lambda y, o: (np.asarray(y)[:-1], o),
    "3-D output": lambda y, o: (y, _three_d(o)),
    "complex output": lambda y, o: (y, np.asarray(o) + 0j),
}


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name, metric, y, out", METRICS, ids=IDS)
def test_every_metric_names_itself_for_bad_inputs(name, metric, y, out, bad):
    y_bad, out_bad = BAD[bad](y, out)
    if bad == "3-D output" and name in REGRESSION:
        y_bad = np.stack([y, y], axis=-1)  # (N, ...) outputs are theirs: no error to see
        assert np.isfinite(metric(y_bad, out_bad))
        return
    with pytest.raises((TypeError, ValueError), match=rf"^{name}: expected "):
        metric(y_bad, out_bad)


# -- 1. string scores in confusion_matrix ------------------------------------------------


@pytest.mark.parametrize("scores", [np.array(["a", "b"]), np.array([["a", "b"], ["c", "d"]]),
                                    np.array([[0.2, 0.8], [0.9, 0.1]], dtype=object)])
def test_confusion_matrix_refuses_string_or_object_scores(scores):
    """Rows of strings (or objects) went to argmax and gave a matrix of nonsense."""
    with pytest.raises(TypeError, match=r"^confusion_matrix: expected integer class labels "
                                        r"in y_pred, got dtype (<U1|object)"):
        metrics.confusion_matrix([0, 1], scores)


@pytest.mark.parametrize("rows", [np.array([["a", "b", "c"]] * 6),
                                  np.eye(3, dtype=complex)[Y3]])
def test_label_rows_that_are_not_real_numbers_are_refused(rows):
    with pytest.raises(TypeError, match=r"^accuracy: expected integer class labels in "
                                        r"y_true, got dtype (<U1|complex128)"):
        metrics.accuracy(rows, S3)


def test_label_rows_with_nan_are_refused():
    """argmax of a row with NaN is the NaN's class: a label nobody gave."""
    rows = _with_nan(np.eye(3)[Y3] * 0.8 + 0.05, 2)
    for metric in (metrics.accuracy, metrics.f1, metrics.confusion_matrix):
        with pytest.raises(ValueError, match=rf"^{metric.__name__}: expected y_true rows "
                                             r"\(one-hot or probabilities\) of finite numbers, "
                                             r"got 2 NaN or infinite of 18$"):
            metric(rows, S3)
    assert metrics.accuracy(np.eye(3)[Y3] * 0.8 + 0.05, S3) == metrics.accuracy(Y3, S3)


# -- 2. NaN scores: refused by every class metric, with f1's message ---------------------


@pytest.mark.parametrize("count", [1, "all"])
@pytest.mark.parametrize("name, metric, y, out", CLASS_METRICS, ids=CLASS_IDS)
def test_class_metrics_refuse_nan_scores_alike(name, metric, y, out, count):
    n = np.size(out) if count == "all" else count
    with pytest.raises(ValueError, match=rf"^{name}: expected scores without NaN, got {n} "
                                         rf"NaN of {np.size(out)} \(a diverged model\?\)$"):
        metric(y, _with_nan(out, n))


@pytest.mark.parametrize("scores", [_with_nan(S3, 1), _with_nan(LB, 6)])
def test_predicted_labels_refuses_nan_scores(scores):
    with pytest.raises(ValueError, match=r"^predicted_labels: expected scores without NaN"):
        metrics.predicted_labels(scores)


def test_sklearn_refuses_nan_scores_too():
    sklearn = pytest.importorskip("sklearn.metrics")
    with pytest.raises(ValueError, match="NaN"):
        sklearn.top_k_accuracy_score(Y3, _with_nan(S3, 1), k=2)


def test_infinite_scores_are_still_scores():
    """±inf is a saturated logit, not a NaN: it has a class."""
    assert metrics.accuracy([0, 1], np.array([-np.inf, np.inf])) == 1.0
    assert metrics.binary_accuracy([0, 1], np.array([-np.inf, np.inf])) == 1.0
    scores = S3.copy()
    scores[2, 2] = np.inf
    assert metrics.top_k_accuracy(Y3, scores, 1) == metrics.top_k_accuracy(Y3, S3, 1)
    np.testing.assert_array_equal(metrics.confusion_matrix(Y3, scores),
                                  metrics.confusion_matrix(Y3, S3))


def test_a_large_finite_output_is_not_taken_for_nan():
    """The cheap check sums the scores: a sum past float32's range must not refuse."""
    out = np.full((4096, 2), 3e38, np.float32)
    out[:, 0] = 0
    assert metrics.accuracy(np.ones(4096, int), out) == 1.0


# -- 3. None (and strings) where an array belongs -----------------------------------------


def test_confusion_matrix_of_none_says_what_it_expected():
    """It said 'expected y_true of shape (-1,) to match the output, got (2,)'."""
    with pytest.raises(TypeError, match=r"^confusion_matrix: expected y_pred as an array of "
                                        r"labels \(N,\) or scores \(N, C\), got None$"):
        metrics.confusion_matrix([0, 1], None)
    with pytest.raises(TypeError, match=r"^confusion_matrix: expected y_pred as an array of "
                                        r"labels \(N,\) or scores \(N, C\), got str 'ab'$"):
        metrics.confusion_matrix([0, 1], "ab")
    with pytest.raises(TypeError, match=r"^confusion_matrix: expected y_true as an array of "
                                        r"class labels, got None$"):
        metrics.confusion_matrix(None, [0, 1])


@pytest.mark.parametrize("metric", [metrics.accuracy, metrics.f1, metrics.roc_auc,
                                    lambda y, o: metrics.top_k_accuracy(y, o, 1)])
def test_label_metrics_of_none_labels_say_so(metric):
    """They said 'expected y_true of shape (6,) to match the output, got ()'."""
    with pytest.raises(TypeError, match=r": expected y_true as an array of class labels, "
                                        r"got None$"):
        metric(None, S3)


# -- confusion_matrix: the rest of the sweep ----------------------------------------------


@pytest.mark.parametrize("pred", [np.zeros((6, 2, 3), int), np.int64(2)])
def test_confusion_matrix_names_y_pred_of_the_wrong_rank(pred):
    """It named y_true, and for a 0-d y_pred asked for y_true of shape (-1,)."""
    with pytest.raises(ValueError, match=r"^confusion_matrix: expected y_pred of shape \(N,\) "
                                         r"\(labels\) or \(N, C\) \(one-hot rows or scores\) "
                                         r"with N > 0, got \((6, 2, 3)?\)$"):
        metrics.confusion_matrix(Y3, pred)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_confusion_matrix_refuses_no_samples_as_sklearn_does(num_classes):
    """A 0x0 matrix before; its scores path, and scikit-learn (since 1.3; 1.2 gave an
    empty array), refuse no samples."""
    with pytest.raises(ValueError, match=r"^confusion_matrix: expected y_pred .* with N > 0, "
                                         r"got \(0,\)$"):
        metrics.confusion_matrix([], [], num_classes)


@pytest.mark.parametrize("pred", [[0.5, 1.0, 2.0], [np.inf, 1.0, 2.0]])
def test_confusion_matrix_refuses_binary_scores_for_more_than_two_classes(pred):
    """Floats that are not all whole numbers are binary scores: with labels up to 2 they
    were all cut at 0 and filed as class 1 (scikit-learn: 'a mix of multiclass and
    continuous targets')."""
    with pytest.raises(ValueError, match=r"^confusion_matrix: expected labels in \[0, 2\) "
                                         r"for binary scores \(y_pred of shape \(3,\): floats "
                                         r"but not whole-number labels\), got values from "
                                         r"0 to 2 \(pass predicted labels as integers"):
        metrics.confusion_matrix([0, 1, 2], pred)
    with pytest.raises(ValueError, match=r"binary scores \(y_pred of shape \(3, 1\): floats "
                                         r"\(N, 1\) are one score per sample\)"):
        metrics.confusion_matrix([0, 1, 2], np.array([[0.0], [1.0], [2.0]]))
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 1, 1], [-0.5, 1.5, 0.2]),
                                  [[1, 0], [0, 2]])


def test_confusion_matrix_names_y_pred_for_rows_of_several_labels():
    with pytest.raises(ValueError, match=r"^confusion_matrix: expected one label per sample "
                                         r"in y_pred"):
        metrics.confusion_matrix([0, 1], np.array([[1, 1], [0, 1]]))


# -- top_k_accuracy: bool labels ----------------------------------------------------------


def test_top_k_accuracy_takes_bool_labels_as_0_and_1():
    """Bool labels indexed the scores as a mask: an IndexError from NumPy."""
    sklearn = pytest.importorskip("sklearn.metrics")
    y = YB.astype(bool)
    want = sklearn.top_k_accuracy_score(YB, S3, k=2, labels=[0, 1, 2])
    assert metrics.top_k_accuracy(y, S3, 2) == pytest.approx(want)
    assert metrics.top_k_accuracy(y, S3, 1) == pytest.approx(metrics.accuracy(y, S3))


# -- r2 -----------------------------------------------------------------------------------


def test_r2_of_a_nan_output_is_nan_in_a_constant_column_too():
    """A constant column scored a NaN prediction 0 (0.5 over two columns), a plausible
    value where mae and mse give NaN; scikit-learn refuses NaN."""
    assert np.isnan(metrics.r2([1.0, 1.0, 1.0], [np.nan, 1.0, 1.0]))
    y = np.array([[1.0, 0], [1, 1], [1, 2]])
    assert np.isnan(metrics.r2(y, np.where(np.arange(6).reshape(3, 2) == 0, np.nan, y)))
    assert metrics.r2([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == 1.0  # force_finite, unchanged
    assert metrics.r2([1.0, 1.0, 1.0], [np.inf, 1.0, 1.0]) == 0.0


# -- what is accepted scores as scikit-learn scores it ------------------------------------


def test_lists_series_bools_and_int_scores_score_as_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics")
    pd = pytest.importorskip("pandas")
    pred = S3.argmax(axis=1)
    for y in (list(Y3), pd.Series(Y3), Y3.astype(np.float32)):
        assert metrics.accuracy(y, S3.tolist()) == sklearn.accuracy_score(Y3, pred)
        assert metrics.f1(y, S3.astype(int)) == pytest.approx(
            sklearn.f1_score(Y3, pred, average="macro"))
        np.testing.assert_array_equal(metrics.confusion_matrix(y, pd.Series(pred)),
                                      sklearn.confusion_matrix(Y3, pred))
    yb = YB.astype(bool)
    assert metrics.accuracy(yb, LB) == sklearn.accuracy_score(yb, LB > 0)
    assert metrics.f1(pd.Series(yb), LB) == pytest.approx(sklearn.f1_score(yb, LB > 0))
    np.testing.assert_array_equal(metrics.confusion_matrix(yb, LB > 0),
                                  sklearn.confusion_matrix(yb, LB > 0))
    assert metrics.mean_absolute_error(yb, pd.Series(LB)) == pytest.approx(
        sklearn.mean_absolute_error(yb, LB))
    assert metrics.r2(list(LB), 2 * LB) == pytest.approx(sklearn.r2_score(LB, 2 * LB))


def test_metrics_all_lists_the_public_functions():
    assert "np" not in metrics.__all__ and "labels_of" not in metrics.__all__
    for name in metrics.__all__:
        assert hasattr(metrics, name), name
    assert {"accuracy", "binary_accuracy", "top_k_accuracy", "confusion_matrix", "precision",
            "recall", "f1", "roc_auc", "r2", "mean_absolute_error", "mean_squared_error",
            "predicted_labels", "get", "name_of"} <= set(metrics.__all__)
    assert bp.metrics.get("acc") is metrics.accuracy
