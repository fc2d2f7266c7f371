"""Findings of the thirty-fifth session's trace review: the "dead" statistic counted padded
steps as dead ReLU units, ``formulas`` showed an undocumented subclass its parent's math,
the plots' errors misnamed their cause, and AdaptiveMaxPool2D's docstring misread its
argmax cache."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


# -- dead_frac leaves padded steps out ------------------------------------------------
def _padded_model():
    return bp.Sequential([bp.Embedding(10, 8, mask_zero=True, rng=0), bp.Dense(8, 16, rng=1),
                          bp.ReLU(), bp.LSTM(16, 4, return_sequences=False, rng=2)])


def _relu_stats(model, x, **kw):
    with bp.trace(model, keep_arrays=True) as tr:
        y = model.forward(x, training=True, **kw)
        model.backward(np.ones_like(y))
    return tr[2].forward[-1], tr[2].y[-1]


def test_dead_frac_leaves_out_the_padded_steps_of_an_embedding_mask():
    model = _padded_model()
    x = np.random.default_rng(0).integers(1, 10, (32, 6))
    x[:, 3:] = 0  # every row: 3 real steps, 3 padded
    padded, y = _relu_stats(model, x)
    real, _ = _relu_stats(model, x[:, :3])
    assert padded.zero_frac > 0.3  # the padded steps' zeros still count as zeros
    assert (y[:, 3:] == 0).all(axis=0).mean() > 0.3  # ... and were counted as dead
    assert real.dead_frac == 0.0
    assert padded.dead_frac == real.dead_frac  # was 0.25


def test_dead_frac_under_a_mask_counts_the_units_dead_at_every_real_step():
    model = _padded_model()
    model[1].params["W"][:, :4] = 0
    model[1].params["b"][:4] = -1  # units 0-3 dead at every step
    rng = np.random.default_rng(1)
    x = rng.integers(1, 10, (16, 6))
    lengths = rng.integers(1, 6, 16)
    x[np.arange(6) >= lengths[:, None]] = 0  # rows of 1..5 real steps: step 5 is never real
    stats, y = _relu_stats(model, x)
    mask = x != 0
    alive = ((y != 0) & mask[..., None]).any(axis=0)[mask.any(axis=0)]  # by hand
    assert stats.dead_frac == pytest.approx(np.mean(~alive))
    assert stats.dead_frac >= 4 / 16
    assert ((y == 0).all(axis=0)).mean() > stats.dead_frac  # step 5, all padding: not counted


def test_dead_frac_takes_a_mask_given_to_the_model_and_tracing_changes_nothing():
    model = bp.Sequential([bp.Dense(3, 8, rng=0), bp.ReLU(), bp.LSTM(8, 2, rng=1)])
    x = np.random.default_rng(2).standard_normal((10, 5, 3)).astype(np.float32)
    x[:, 2:] = 0  # zero padding: ReLU(b) at every padded step
    mask = np.zeros((10, 5), bool)
    mask[:, :2] = True
    bare = model.forward(x, training=False, mask=mask)
    with bp.trace(model) as tr:
        traced = model.forward(x, training=False, mask=mask)
    assert np.array_equal(bare, traced) and traced.dtype == np.float32
    assert all("forward_masked" not in vars(layer) for layer in [model, *model.layers])
    model[0].params["b"][...] = -np.abs(model[0].params["b"]) - 0.01  # padding: ReLU(b) = 0
    with bp.trace(model) as tr:
        model.forward(x, mask=mask)
    with bp.trace(model) as tr_real:
        model.forward(x[:, :2])
    assert tr[1].forward[-1].dead_frac == tr_real[1].forward[-1].dead_frac == 0.0  # was 0.6
    model[0].params["b"][...] = 0  # no mask: padding the trace cannot see still counts
    with bp.trace(model) as tr:
        model.forward(x)
    assert tr[1].forward[-1].dead_frac >= 3 / 5


# -- formulas reads the class's own docstring -----------------------------------------
class MeanBiasDense(bp.Dense):  # notebook 03's deliberately wrong layer, no docstring
    def backward_params(self, dy):
        super().backward_params(dy)
        self.grads["b"][...] = dy.mean(axis=0)


class DocumentedDense(bp.Dense):
    """Dense, stated again.

    Forward:   y = x @ W + b
    Backward:  db = dy.sum(0)
    """


def test_formulas_of_an_undocumented_subclass_are_not_its_parents():
    assert bp.formulas(MeanBiasDense) == ""
    assert "db = dy.sum(0)" not in MeanBiasDense(3, 2)._repr_html_()
    assert "db = dy.sum(0)" in bp.formulas(bp.Dense)
    own = "Forward:   y = x @ W + b\nBackward:  db = dy.sum(0)"
    assert bp.formulas(DocumentedDense(3, 2)) == own


# -- the plots' errors name their cause -----------------------------------------------
def test_histograms_of_a_nonrecursive_trace_say_to_pass_layers(_agg):
    block = bp.Sequential([bp.Dense(3, 3, rng=0), bp.ReLU()])
    model = bp.Sequential([bp.Residual(block), bp.Residual(bp.Sequential([bp.Tanh()]))])
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    with bp.trace(model, keep_arrays=True, recursive=False) as tr:
        model.forward(x, training=True)
    with pytest.raises(ValueError, match=r"plot_activation_histograms: expected a leaf layer "
                       r"with arrays \(the default layers=None draws leaf layers only\).*pass "
                       r"layers=\[\.\.\.\] to draw those, as layers=\['0', '1'\]"):
        bp.plot_activation_histograms(tr)
    assert len(bp.plot_activation_histograms(tr, layers=["0", "1"]).axes) == 2


def test_gradient_flow_of_a_history_of_no_epoch_says_it_is_empty(_agg):
    x = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    h = model.fit(x, np.arange(20) % 2, loss=bp.SoftmaxCrossEntropy(), epochs=0,
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False,
                  callbacks=[bp.GradientFlowMonitor()])
    with pytest.raises(ValueError, match=r"plot_gradient_flow: expected a History with at "
                                         r"least one epoch recorded, got an empty one"):
        bp.plot_gradient_flow(h)
    with pytest.raises(ValueError, match=r"GradientFlowMonitor\(\) among its callbacks"):
        bp.plot_gradient_flow(model.fit(x, np.arange(20) % 2, loss=bp.SoftmaxCrossEntropy(),
                                        optimizer=bp.SGD(model.parameters(), lr=0.1),
                                        epochs=1, progress=False))


def test_histograms_refuse_a_call_and_a_layer_key_as_the_table_does(_agg):
    model = bp.Sequential([bp.Dense(3, 3, rng=0), bp.ReLU()])
    with bp.trace(model, keep_arrays=True) as tr:
        model.forward(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"Trace.table: expected call in"):
        tr.table(5)
    with pytest.raises(ValueError, match=r"plot_activation_histograms: expected call in "
                                         r"\[-1, 1\) .*got 5"):
        bp.plot_activation_histograms(tr, call=5)
    with pytest.raises(TypeError, match=r"^plot_activation_histograms: layers: expected an "
                                        r"int, a layer path or a Layer, got 1.5"):
        bp.plot_activation_histograms(tr, layers=[1.5])


# -- AdaptiveMaxPool2D's argmax is a flat index in H·W --------------------------------
def test_adaptive_max_pool_2d_docstring_states_its_cache_as_backward_uses_it():
    text = bp.formulas(bp.layers.AdaptiveMaxPool2D)
    assert "arg[n, c, i, j] = its flat index in H·W" in text
    assert "dx[n, c].flat[arg[n, c, i, j]] += dy[n, c, i, j]" in text
    assert "arg[n, c, i] = its index in L" in bp.formulas(bp.layers.AdaptiveMaxPool1D)
    layer = bp.layers.AdaptiveMaxPool2D((2, 3), dtype=np.float64)
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 3, 5, 7)), rng.standard_normal((2, 3, 2, 3))
    y = layer.forward(x, training=True)
    arg = layer._arg.reshape(2, 3, -1)
    assert arg.max() < 5 * 7
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(2, 3, -1), arg, -1), y.reshape(
        2, 3, -1))
    dx = np.zeros((2, 3, 35))
    for n in range(2):
        for c in range(3):
            np.add.at(dx[n, c], arg[n, c], dy[n, c].ravel())  # the docstring's Backward
    np.testing.assert_allclose(layer.backward(dy), dx.reshape(x.shape), rtol=0, atol=1e-15)
