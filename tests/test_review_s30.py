"""Review of session 30: model-level entry points and PyTorch tensors that require grad."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_model_entry_points_read_a_torch_tensor_that_requires_grad_by_its_values():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    t = torch.tensor(x, requires_grad=True)
    model = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 2, rng=1)])
    np.testing.assert_array_equal(model.predict(t), model.predict(x))
    np.testing.assert_array_equal(model(t), model(x))
    loss = bp.SoftmaxCrossEntropy()
    assert model.evaluate(t, y, loss=loss) == model.evaluate(x, y, loss=loss)
    history = model.fit(t, torch.tensor(y), loss=loss, epochs=1, progress=False,
                        optimizer=bp.SGD(model.parameters(), lr=0.1),
                        validation_data=(t, y))
    assert np.isfinite(history.history["val_loss"][0])
    assert t.requires_grad and t.grad is None  # the caller's tensor is untouched
    right = bp.check_gradients(bp.Dense(4, 2, dtype=np.float64, rng=0),
                               torch.tensor(x[:3].astype(np.float64), requires_grad=True))
    assert right.passed


def test_bench_and_summary_read_an_input_shape_list_as_a_tuple():
    model = bp.Sequential([bp.Dense(20, 4, rng=0), bp.ReLU(), bp.Dense(4, 2, rng=1)])
    result = bp.bench(model, [20], 4, steps=1, repeats=1, warmup=0, breakdown=False)
    assert result.input_shape == (20,) and result.samples_per_s > 0
    assert str(model.summary([20])) == str(model.summary((20,)))
    with pytest.raises(ValueError, match=r"Sequential.summary: expected input_shape as a "
                                         r"tuple of positive ints .* got \[0\]"):
        model.summary([0])
