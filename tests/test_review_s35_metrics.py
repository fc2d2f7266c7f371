"""Findings of the thirty-fifth session's review of the metrics and data utilities against
scikit-learn: R² of a constant column, a float32 test_size, a tensor that requires grad,
zero-width outputs, label messages and the names of metrics at another threshold."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.mark.parametrize("value", [0.1, 0.3, 1e6 + 0.1, -7.7])
def test_r2_of_a_constant_column_is_0_or_1_as_documented(value):
    y = np.full((7, 1), value)
    assert bp.metrics.r2(y, y + 1e-3) == 0.0  # was -5.2e27 for 0.1 (the mean's round-off)
    assert bp.metrics.r2(y, y) == 1.0


def test_fits_r2_of_a_constant_column_equals_evaluates():
    x = np.ones((4, 2))
    y = np.full((4, 1), 0.1)
    model = bp.Sequential([bp.Dense(2, 1, rng=0, dtype=np.float64)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0  # the weights held: fit's epoch r2 and evaluate's see the same outputs
    h = model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=opt, metrics=["r2"],
                  batch_size=3, progress=False)  # the merged batches gave -1.3e33
    assert h.history["r2"] == [0.0]
    assert model.evaluate(x, y, loss=bp.MeanSquaredError(), metrics=["r2"])["r2"] == 0.0


def test_r2_reads_a_tensor_that_requires_grad_as_the_other_metrics_do():
    torch = pytest.importorskip("torch")
    y = np.array([1.0, 2.0, 3.0])
    out = torch.tensor([1.1, 2.0, 2.9], requires_grad=True)
    assert bp.metrics.r2(y, out) == pytest.approx(bp.metrics.r2(y, out.detach().numpy()))


@pytest.mark.parametrize("size, want", [(np.float32(0.1), 1), (np.float32(0.3), 3),
                                        (np.float16(0.3), 3), (0.3, 3)])
def test_train_test_split_reads_a_float32_test_size_as_its_decimal(size, want):
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 2
    assert len(bp.data.train_test_split(x, y, test_size=size, rng=0, stratify=False)[1]) == want
    big = np.zeros((1000, 1))
    assert len(bp.data.train_test_split(big, test_size=np.float32(0.1), rng=0)[1]) == 100


@pytest.mark.parametrize("metric", [bp.metrics.r2, bp.metrics.mean_squared_error,
                                    bp.metrics.mean_absolute_error, bp.metrics.binary_accuracy,
                                    bp.metrics.f1.multi_label, bp.metrics.roc_auc.multi_label])
def test_metrics_refuse_a_zero_width_output_by_name(metric):
    z = np.zeros((3, 0))
    with pytest.raises(ValueError, match=r"^(r2|mean_squared_error|mean_absolute_error|"
                                         r"binary_accuracy|f1|roc_auc): expected .*(no axis of "
                                         r"length 0|at least one output column)"):
        metric(z, z)


def test_label_messages_name_the_values_and_top_k_a_single_column():
    with pytest.raises(ValueError, match=r"one_hot: expected integer labels \(whole numbers\), "
                                         r"got float64 values such as 1\.5"):
        bp.data.one_hot(np.array([1.5, 0.0]))
    with pytest.raises(TypeError, match=r"one_hot: expected integer labels, got str values"):
        bp.data.one_hot(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"one_hot: expected integer labels of shape \(N,\), "
                                         r"got shape \(2, 2\)"):
        bp.data.one_hot(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"top_k_accuracy: expected class scores of shape "
                                         r"\(N, C\) with C >= 2, got \(2, 1\) \(one score per "
                                         r"sample: use accuracy\)"):
        bp.metrics.top_k_accuracy([0, 1], np.array([[0.3], [0.8]]), k=1)


def test_accuracy_at_another_threshold_keeps_its_name_in_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.integers(0, 2, 20).astype(np.float32)
    model = bp.Sequential([bp.Dense(4, 1, rng=0), bp.Sigmoid()])
    metrics = [bp.metrics.accuracy.at_threshold(0.7), bp.metrics.f1.at_threshold(0.7),
               bp.metrics.binary_accuracy.at_threshold(0.3)]  # two were both 'metric'
    h = model.fit(x, y, loss=bp.BCELoss(), optimizer=bp.SGD(model.parameters(), lr=0.1),
                  metrics=metrics, progress=False)
    assert list(h.history) == ["loss", "accuracy", "f1", "binary_accuracy"]
