"""Review s23 (metrics against scikit-learn): a user's threshold kept by fit/evaluate,
targets of another layout refused, per-column thresholds checked, and integer data
standardized in float64."""

import pickle

import numpy as np
import pytest

import backprop as bp

skm = pytest.importorskip("sklearn.metrics")


def _binary_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(np.float32)[:, None]
    return x, y


# 1. at_threshold(t) keeps t in fit/evaluate

def test_evaluate_keeps_a_chosen_threshold_on_a_sigmoid_model():
    x, y = _binary_data()
    model = bp.Sequential([bp.Dense(3, 1, rng=0), bp.Sigmoid()])
    p = model.predict(x)[:, 0]
    # at 0.9 the scores differ from those at 0.5 (else the test could not fail)
    assert skm.f1_score(y[:, 0], p > 0.9) != pytest.approx(skm.f1_score(y[:, 0], p > 0.5))
    ev = model.evaluate(x, y, loss=bp.BCELoss(), metrics=[
        bp.metrics.f1.at_threshold(0.9), bp.metrics.precision.at_threshold(0.9)])
    assert ev["f1"] == pytest.approx(skm.f1_score(y[:, 0], p > 0.9))
    assert ev["precision"] == pytest.approx(
        skm.precision_score(y[:, 0], p > 0.9, zero_division=0))
    # without a chosen threshold, a Sigmoid's probabilities are still scored at 0.5
    ev = model.evaluate(x, y, loss=bp.BCELoss(), metrics=["f1", "recall"])
    assert ev["f1"] == pytest.approx(skm.f1_score(y[:, 0], p > 0.5))
    assert ev["recall"] == pytest.approx(skm.recall_score(y[:, 0], p > 0.5))


def test_evaluate_keeps_a_chosen_threshold_with_a_regression_loss():
    x, y = _binary_data()
    model = bp.Sequential([bp.Dense(3, 1, rng=0)])
    q = model.predict(x)[:, 0]
    assert skm.f1_score(y[:, 0], q > 0.9) != pytest.approx(skm.f1_score(y[:, 0], q > 0.5))
    ev = model.evaluate(x, y, loss=bp.MeanSquaredError(),
                        metrics=[bp.metrics.f1.at_threshold(0.9)])
    assert ev["f1"] == pytest.approx(skm.f1_score(y[:, 0], q > 0.9))


def test_accuracy_at_threshold_still_kept_and_default_accuracy_at_one_half():
    x, y = _binary_data()
    model = bp.Sequential([bp.Dense(3, 1, rng=0), bp.Sigmoid()])
    p = model.predict(x)[:, 0]
    at_09 = bp.metrics.accuracy.at_threshold(0.9)
    at_09.__name__ = "acc_09"
    ev = model.evaluate(x, y, loss=bp.BCELoss(), metrics=["accuracy", at_09])
    assert ev["acc_09"] == pytest.approx(skm.accuracy_score(y[:, 0], p > 0.9))
    assert ev["accuracy"] == pytest.approx(skm.accuracy_score(y[:, 0], p > 0.5))


def test_multi_label_form_of_a_chosen_threshold_keeps_it():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, :2] + 0.7 * rng.normal(size=(300, 2)) > 0).astype(np.float32)
    model = bp.Sequential([bp.Dense(4, 2, rng=0), bp.Sigmoid()])
    p = model.predict(x)
    assert (skm.f1_score(y, p > 0.8, average="macro")
            != pytest.approx(skm.f1_score(y, p > 0.5, average="macro")))
    ev = model.evaluate(x, y, loss=bp.BCELoss(), metrics=[bp.metrics.f1.at_threshold(0.8)])
    assert ev["f1"] == pytest.approx(skm.f1_score(y, p > 0.8, average="macro"))
    chosen = bp.metrics.f1.multi_label.at_threshold(0.8)  # chosen on the multi-label form
    assert model.evaluate(x, y, loss=bp.BCELoss(), metrics=[chosen])["f1"] == pytest.approx(
        skm.f1_score(y, p > 0.8, average="macro"))


def test_fit_validation_values_keep_a_chosen_threshold():
    x, y = _binary_data()
    model = bp.Sequential([bp.Dense(3, 1, rng=0), bp.Sigmoid()])
    h = model.fit(x[:150], y[:150], loss=bp.BCELoss(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), epochs=1, seed=0,
                  progress=False, validation_data=(x[150:], y[150:]),
                  metrics=[bp.metrics.precision.at_threshold(0.7)])
    p = model.predict(x[150:])[:, 0]
    assert (skm.precision_score(y[150:, 0], p > 0.7, zero_division=0)
            != pytest.approx(skm.precision_score(y[150:, 0], p > 0.5, zero_division=0)))
    assert h.history["val_precision"][-1] == pytest.approx(
        skm.precision_score(y[150:, 0], p > 0.7, zero_division=0))


# 2. targets of another layout are refused

def test_binary_accuracy_refuses_targets_of_another_layout():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (4, 3, 2)).astype(np.float32)
    out = y.transpose(0, 2, 1) * 2 - 1  # (N, F, T): as many values, misaligned
    with pytest.raises(ValueError, match=r"^binary_accuracy: expected y_true of the "
                                         r"output's shape \(4, 2, 3\), got \(4, 3, 2\)"):
        bp.metrics.binary_accuracy(y, out)
    with pytest.raises(ValueError, match=r"got \(4, 6\)"):  # (N, T·F) neither
        bp.metrics.binary_accuracy(y.reshape(4, 6), y * 2 - 1)
    assert bp.metrics.binary_accuracy(y, y * 2 - 1) == 1.0


def test_binary_accuracy_still_takes_n_for_n_by_1_both_ways():
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([-1.0, 2.0, -0.5, -3.0, 0.2])
    want = skm.accuracy_score(y, s > 0)
    assert bp.metrics.binary_accuracy(y, s[:, None]) == pytest.approx(want)
    assert bp.metrics.binary_accuracy(y[:, None], s) == pytest.approx(want)


def test_multi_label_scores_refuse_targets_of_another_layout():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (6, 4)).astype(np.float32)
    transposed = y.reshape(6, 2, 2).transpose(0, 2, 1)
    for metric in (bp.metrics.f1.multi_label, bp.metrics.precision.multi_label,
                   bp.metrics.roc_auc.multi_label):
        with pytest.raises(ValueError, match=r"expected y_true of the output's shape "
                                             r"\(6, 4\) .*got \(6, 2, 2\)"):
            metric(transposed, y * 2 - 1)
    # the allowed forms: the output's shape, and (N,) for (N, 1) both ways
    assert bp.metrics.f1.multi_label(y, y * 2 - 1) == 1.0
    col, s = y[:, 0], y[:, 0] * 2 - 1
    assert bp.metrics.f1.multi_label(col, s[:, None]) == pytest.approx(skm.f1_score(col, s > 0))
    assert bp.metrics.f1.multi_label(col[:, None], s) == pytest.approx(skm.f1_score(col, s > 0))


# 3. per-column thresholds are one per column

Y = np.array([[1, 0], [1, 1], [0, 1]])
Z = np.array([[0.6, 0.4], [0.7, 0.9], [0.2, 0.8]])


@pytest.mark.parametrize("call, who", [
    (lambda t: bp.metrics.binary_accuracy(Y, Z, threshold=t), "binary_accuracy"),
    (lambda t: bp.metrics.f1.multi_label.at_threshold(t)(Y, Z), "f1"),
    (lambda t: bp.metrics.recall.multi_label.at_threshold(t)(Y, Z), "recall"),
])
def test_threshold_arrays_must_be_one_per_column(call, who):
    with pytest.raises(ValueError, match=rf"^{who}: expected threshold as one number or one "
                                         r"per output column, shape \(2,\) for the output "
                                         r"of shape \(3, 2\), got an array of shape \(3,\)"):
        call([0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"shape \(2,\) .*got an array of shape \(3, 1\)"):
        call(np.array([[0.5], [0.95], [0.1]]))  # one per row: was applied so, silently
    with pytest.raises(ValueError, match=r"got an array of shape \(1, 2\)"):
        call(np.array([[0.5, 0.5]]))


def test_threshold_arrays_of_the_right_shape_still_work():
    t = np.array([0.65, 0.85])
    want = skm.accuracy_score((Y > 0.5).ravel(), (Z > t).ravel())
    assert bp.metrics.binary_accuracy(Y, Z, threshold=t) == pytest.approx(want)
    assert bp.metrics.binary_accuracy(Y, Z, threshold=[0.65, 0.85]) == pytest.approx(want)
    assert bp.metrics.binary_accuracy(Y, Z, threshold=np.array(0.5)) == pytest.approx(
        skm.accuracy_score(Y.ravel(), (Z > 0.5).ravel()))
    assert bp.metrics.f1.multi_label.at_threshold(t)(Y, Z) == pytest.approx(
        skm.f1_score(Y, Z > t, average="macro"))
    # one column: (1,) is one per column; (N,) would be one per row
    y1, z1 = Y[:, 0], Z[:, 0]
    assert bp.metrics.binary_accuracy(y1, z1, threshold=[0.65]) == pytest.approx(
        skm.accuracy_score(y1, z1 > 0.65))
    with pytest.raises(ValueError, match=r"shape \(1,\) for the output of shape \(3,\)"):
        bp.metrics.binary_accuracy(y1, z1, threshold=[0.5, 0.5, 0.5])
    # a sequence's (N, T, F) output: one per feature F
    seq = np.stack([Z, Z[::-1]], axis=1)
    labels = np.stack([Y, Y[::-1]], axis=1)
    assert bp.metrics.binary_accuracy(labels, seq, threshold=t) == pytest.approx(
        skm.accuracy_score((labels > 0.5).ravel(), (seq > t).ravel()))


# 4. integer data is standardized in float64

def test_standardize_int64_timestamps_matches_sklearn():
    pre = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(0)
    t = 1_700_000_000_000 + rng.integers(0, 600_000, size=(64, 2))  # ms, over 10 minutes
    want = pre.StandardScaler().fit_transform(t)
    z = bp.data.standardize(t)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-5)
    s = bp.data.Standardizer().fit(t[:40])
    ref = pre.StandardScaler().fit(t[:40])
    np.testing.assert_allclose(s.transform(t[40:]), ref.transform(t[40:]), rtol=1e-5,
                               atol=1e-5)
    z_tr, z_te = bp.data.standardize(t[:40], t[40:])
    np.testing.assert_allclose(z_te, ref.transform(t[40:]), rtol=1e-5, atol=1e-5)
    assert s.mean_.dtype == np.float32  # the attributes keep their documented dtype


def test_standardizer_float32_input_keeps_its_fast_path():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 3)).astype(np.float32)
    s = bp.data.Standardizer().fit(x)
    z = s.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, (x - s.mean_) / s.std_)  # float32 arithmetic, as before


def test_standardizer_wide_path_follows_changed_stats_and_old_pickles():
    t = np.array([[1_700_000_000_000], [1_700_000_100_000], [1_700_000_300_000]])
    s = bp.data.Standardizer().fit(t)
    exact = (t - t.mean()) / t.std()
    np.testing.assert_allclose(s.transform(t), exact, rtol=1e-5, atol=1e-5)
    old = pickle.loads(pickle.dumps(s))
    del old._stats64  # a pickle from before: falls back on mean_/std_ (the class default)
    np.testing.assert_array_equal(
        old.transform(t), ((t - s.mean_.astype(np.float64)) / s.std_).astype(np.float32))
    s.mean_ = np.array([1_700_000_100_000.0], np.float32)  # set by hand after fit: used
    s.std_ = np.array([100_000.0], np.float32)
    np.testing.assert_allclose(s.transform(t)[:, 0], (t[:, 0] - np.float64(s.mean_[0])) / 1e5,
                               rtol=1e-6, atol=1e-6)
