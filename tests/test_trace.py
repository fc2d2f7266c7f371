"""bp.trace: recorded deltas match the recursion by hand, tracing changes nothing, restores."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.trace import BackwardStats, ForwardStats

_METHODS = ("forward", "backward", "backward_params")


def _sigmoid_stack():
    f64 = np.float64
    return bp.Sequential([bp.Dense(3, 5, dtype=f64, rng=0), bp.Sigmoid(dtype=f64),
                          bp.Dense(5, 4, dtype=f64, rng=1), bp.Sigmoid(dtype=f64),
                          bp.Dense(4, 2, dtype=f64, rng=2)])


def _mixed(dtype=np.float32):
    block = bp.Sequential([bp.Dense(8, 8, dtype=dtype, rng=2), bp.Tanh(dtype=dtype)])
    return bp.Sequential([bp.Dense(4, 8, dtype=dtype, rng=0), bp.ReLU(dtype=dtype),
                          bp.Residual(block), bp.Sigmoid(dtype=dtype),
                          bp.Dense(8, 3, dtype=dtype, rng=3)])


def _all_layers(model):
    out = []
    for _, child in model.children():
        out += [child, *_all_layers(child)]
    return out


def _step(model, x, y, input_grad=True):
    loss = bp.SoftmaxCrossEntropy(dtype=model.dtype)
    out = model.forward(x, training=True)
    loss.forward(out, y)
    dx = model.backward(loss.backward(), input_grad=input_grad)
    return out, dx, model.flat_grads.copy()


def _data(n=6, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), np.arange(n) % 3


def _assert_restored(model):
    for layer in [model, *_all_layers(model)]:
        for m in _METHODS:
            assert m not in vars(layer)
            assert getattr(layer, m).__func__ is getattr(type(layer), m)


def test_trace_records_the_deltas_of_the_recursion_by_hand():
    model, loss = _sigmoid_stack(), bp.MeanSquaredError(dtype=np.float64)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    with bp.trace(model) as tr:
        out = model.forward(x, training=True)
        loss.forward(out, t)
        model.backward(loss.backward())

    def sig(z):
        return 1 / (1 + np.exp(-z))

    (w1, b1), (w2, b2), (w3, b3) = [(model[i].params["W"], model[i].params["b"])
                                    for i in (0, 2, 4)]
    z1 = x @ w1 + b1
    a1 = sig(z1)
    z2 = a1 @ w2 + b2
    a2 = sig(z2)
    o = a2 @ w3 + b3
    d3 = 2 * (o - t) / o.size                      # δ_L = ∂L/∂o for the mean of squares
    d2 = (d3 @ w3.T) * sig(z2) * (1 - sig(z2))      # δ at z2
    d1 = (d2 @ w2.T) * sig(z1) * (1 - sig(z1))      # δ at z1
    expected_dy = {4: d3, 3: d3 @ w3.T, 2: d2, 1: d2 @ w2.T, 0: d1}
    for i, delta in expected_dy.items():
        assert len(tr[i].backward) == 1
        np.testing.assert_allclose(np.linalg.norm(delta), tr[i].backward[0].dy_norm, rtol=1e-12)
    with bp.trace(model, keep_arrays=True) as tr:
        loss.forward(model.forward(x, training=True), t)
        model.backward(loss.backward())
    for i, delta in expected_dy.items():
        np.testing.assert_allclose(tr[i].dy[0], delta, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tr[0].grads[0]["W"], x.T @ d1, rtol=1e-12)
    np.testing.assert_allclose(tr[4].grads[0]["W"], a2.T @ d3, rtol=1e-12)
    np.testing.assert_allclose(tr[3].y[0], a2, rtol=1e-12)
    np.testing.assert_array_equal(tr[0].x[0], x)


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("keep_arrays", [False, True])
def test_tracing_leaves_outputs_and_gradients_bit_identical(input_grad, keep_arrays):
    model = _mixed()
    x, y = _data()
    out0, dx0, g0 = _step(model, x, y, input_grad)
    with bp.trace(model, keep_arrays=keep_arrays):
        out1, dx1, g1 = _step(model, x, y, input_grad)
        pred = model.predict(x)
    np.testing.assert_array_equal(out1, out0)
    np.testing.assert_array_equal(g1, g0)
    np.testing.assert_array_equal(pred, model.predict(x))
    if input_grad:
        np.testing.assert_array_equal(dx1, dx0)
    else:
        assert dx0 is None and dx1 is None
    _assert_restored(model)


def test_one_backward_call_gives_one_record_even_through_backward_params():
    model = _mixed()
    x, y = _data()
    with bp.trace(model) as tr:
        _step(model, x, y, input_grad=False)
    assert [len(r.backward) for r in tr] == [1] * len(tr)
    assert tr[0].backward[0].dx_norm is None  # backward_params: no dx computed
    assert tr[1].backward[0].dx_norm is not None
    assert set(tr[0].backward[0].grad_norms) == {"W", "b"}
    assert tr["2.block.0"].backward[0].grad_norms["W"] > 0
    assert tr[2].backward[0].grad_norms == {}  # a container: its layers report


def test_trace_restores_layers_after_an_exception_inside_the_block():
    model = _mixed()
    x, y = _data()
    with pytest.raises(ValueError, match="expected"), bp.trace(model):
        model.forward(np.ones((2, 5), dtype=np.float32), training=True)  # wrong width
    _assert_restored(model)
    with pytest.raises(KeyError), bp.trace(model) as tr:
        _step(model, x, y)
        raise KeyError("user code")
    _assert_restored(model)
    assert len(tr[0].forward) == 1


def test_nested_traces_restore_in_order_and_both_record():
    model = _mixed()
    x, y = _data()
    with bp.trace(model) as outer:
        with bp.trace(model) as inner:
            _step(model, x, y)
        assert "forward" in vars(model[0])
        _step(model, x, y)
    _assert_restored(model)
    assert len(inner[0].forward) == 1 and len(outer[0].forward) == 2


def test_keep_arrays_default_keeps_statistics_only():
    model = _mixed()
    x, y = _data()
    with bp.trace(model) as tr:
        _step(model, x, y)
    for rec in tr:
        assert rec.x == rec.y == rec.dy == rec.dx == rec.grads == []
        assert all(isinstance(s, ForwardStats) for s in rec.forward)
        assert all(isinstance(s, BackwardStats) for s in rec.backward)
        values = [*vars(rec.forward[0]).values(), *vars(rec.backward[0]).values()]
        values += list(rec.backward[0].grad_norms.values())
        assert not any(isinstance(v, np.ndarray) for v in values)


def test_table_counts_dead_relus_and_saturated_units():
    dense = bp.Dense(2, 4, dtype=np.float64, rng=0)
    dense.params["W"][...] = [[1.0, -1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0]]
    dense.params["b"][...] = [0.0, -1.0, -1.0, 0.0]
    model = bp.Sequential([dense, bp.ReLU(dtype=np.float64),
                           bp.Dense(4, 1, dtype=np.float64, rng=1), bp.Sigmoid(dtype=np.float64)])
    x = np.array([[1.0, 0.5], [2.0, 1.0], [-1.0, 5.0], [3.0, 0.0]])
    # relu(x @ W + b): unit 0 is x0 (zero in 1 row), units 1 and 2 are never positive
    # (dead), unit 3 is 2 x0 + x1 (positive in 4 rows): 2 x 4 + 1 = 9 zeros of 16.
    with bp.trace(model) as tr:
        model.forward(x)
    table = tr.table()
    relu = table.rows[1]
    assert relu["zero_frac"] == 9 / 16 and relu["dead_frac"] == 2 / 4
    assert table.rows[0]["saturated_frac"] is None and table.rows[3]["saturated_frac"] is not None
    assert relu["dy_norm"] is None  # no backward ran
    text = str(table)
    assert "56.2%" in text and "50.0%" in text and "(1) ReLU(" in text
    assert "<table>" in table._repr_html_() and "56.2%" in tr._repr_html_()

    big = bp.Sequential([bp.Sigmoid(dtype=np.float64), bp.Tanh(dtype=np.float64)])
    with bp.trace(big) as tr:
        big.forward(np.array([[-10.0, 0.0, 10.0, 0.1]]))
    assert tr[0].forward[0].saturated_frac == 2 / 4  # sigmoid(±10) beyond 0.01 / 0.99
    assert tr[1].forward[0].saturated_frac == 0.0    # tanh(sigmoid(x)) < 0.99


def test_trace_indexing_and_a_single_layer():
    model = _mixed()
    with bp.trace(model, recursive=False) as tr:
        model.forward(np.ones((2, 4), dtype=np.float32))
    assert [r.name for r in tr] == ["0", "1", "2", "3", "4"]
    assert tr[-1] is tr["4"] is tr[model[4]]
    with pytest.raises(KeyError, match="expected one of the traced layers"):
        tr["2.block.0"]
    with pytest.raises(IndexError):
        tr[5]
    relu = bp.ReLU()
    with bp.trace(relu) as tr:
        relu(np.ones((2, 3), dtype=np.float32))
    assert tr[0].layer is relu and tr[0].forward[0].y_shape == (2, 3)
    with pytest.raises(TypeError, match="expected a backprop Layer"):
        bp.trace([relu])


def test_layer_html_shows_the_forward_formula():
    html = bp.Dense(4, 3)._repr_html_()
    assert "y = x @ W + b" in html and "dW = x.T @ dy" in html and "Dense" in html
    assert bp.formulas(bp.ReLU).startswith("Forward:   y = max(x, 0)")
    assert "Backward:" in bp.formulas(bp.Sigmoid())
    assert "Residual" in _mixed()._repr_html_()


def test_plots_return_figures_under_agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = _mixed()
    x, y = _data()
    with bp.trace(model, keep_arrays=True) as tr:
        _step(model, x, y)
    for fig in (bp.plot_gradient_flow(tr), bp.plot_activation_histograms(tr)):
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)
    fig, ax = plt.subplots()
    assert bp.plot_gradient_flow(tr, ax=ax) is fig
    plt.close(fig)
    with bp.trace(model) as tr:
        _step(model, x, y)
    with pytest.raises(ValueError, match="keep_arrays=True"):
        bp.plot_activation_histograms(tr)


def test_plots_name_the_extra_to_install_when_matplotlib_is_missing(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import now fails
    model = _mixed()
    with bp.trace(model, keep_arrays=True) as tr:
        _step(model, *_data())
    for plot in (bp.plot_gradient_flow, bp.plot_activation_histograms):
        with pytest.raises(ImportError, match=r'pip install "backprop\[notebooks\]"'):
            plot(tr)


def test_overlapping_traces_exit_in_any_order_and_restore_the_model():
    model = _mixed()
    x, y = _data()
    t1, t2 = bp.trace(model), bp.trace(model)
    t1.__enter__()
    t2.__enter__()
    _step(model, x, y)
    t1.__exit__(None, None, None)  # first in, first out: t2's wrappers still cover t1's
    _step(model, x, y)
    assert len(t1[0].forward) == 1 and len(t2[0].forward) == 2  # t1 stopped recording
    t2.__exit__(None, None, None)
    _assert_restored(model)
    _step(model, x, y)
    assert len(t1[0].forward) == 1 and len(t2[0].forward) == 2


def test_three_overlapping_traces_leave_the_model_clean_whatever_the_order():
    model = _mixed()
    x, y = _data()
    for order in ([1, 0, 2], [0, 2, 1], [2, 0, 1], [1, 2, 0]):
        traces = [bp.trace(model), bp.trace(model[2].block), bp.trace(model)]  # overlapping
        for t in traces:
            t.__enter__()
        for i in order:
            _step(model, x, y)
            traces[i].__exit__(None, None, None)
        _assert_restored(model)
        _step(model, x, y)  # recorded by none
        # the k-th trace to exit saw k + 1 steps, in its own layers and in the shared ones
        assert [len(t["0"].forward) for t in traces] == [order.index(i) + 1 for i in range(3)]


def test_a_trace_entered_again_records_once_per_call():
    model = _mixed()
    x, y = _data()
    tr, other = bp.trace(model), bp.trace(model)
    tr.__enter__()
    other.__enter__()
    tr.__exit__(None, None, None)  # its wrappers stay, dead, under other's
    with tr:
        _step(model, x, y)
    other.__exit__(None, None, None)
    assert len(tr[0].forward) == 1
    _assert_restored(model)


def test_table_rejects_a_call_that_is_not_an_int_or_out_of_range():
    model = _mixed()
    x, y = _data()
    with bp.trace(model) as tr:
        assert len(tr.table().rows) == len(tr)  # nothing recorded: -1 and 0 still work
        tr.table(0)
        with pytest.raises(ValueError, match=r"Trace.table: expected call in \[-1, 1\)"):
            tr.table(1)
        _step(model, x, y)
        _step(model, x, y)
    assert tr.table(-2).rows[0]["y_norm"] == tr[0].forward[0].y_norm
    for bad in ("a", 1.0, True, None):
        with pytest.raises(TypeError, match=f"Trace.table: expected call to be an int, "
                                            f"got {bad!r}"):
            tr.table(bad)
    for bad in (2, 5, -3):
        with pytest.raises(ValueError, match=rf"Trace.table: expected call in \[-2, 2\) .* "
                                             rf"got {bad}"):
            tr.table(bad)


def test_indexing_a_traced_single_layer_out_of_range_names_the_range():
    relu = bp.ReLU()
    tr = bp.trace(relu)
    assert tr[-1] is tr[0]
    with pytest.raises(IndexError, match=r"trace: expected a layer index in \[-1, 1\), got 1"):
        tr[1]


def test_trace_options_and_formulas_refuse_what_they_cannot_use():
    model = bp.Sequential([bp.Dense(2, 2)])
    with pytest.raises(TypeError, match="trace: expected keep_arrays to be True or False, got "
                                        "str 'no'"):
        bp.trace(model, keep_arrays="no")  # a truthy string used to keep every array
    with pytest.raises(TypeError, match="trace: expected recursive to be True or False"):
        bp.trace(model, recursive=0)
    assert bp.formulas("Dense") == bp.formulas(bp.Dense)  # by name, as in the docs
    for bad in (None, 3, bp.SGD):
        with pytest.raises(TypeError, match="formulas: expected a layer or loss"):
            bp.formulas(bad)  # used to return "" as if the layer had no math
    with pytest.raises(ValueError, match="formulas: expected the name of a backprop layer or "
                                         "loss, got 'Dens'"):
        bp.formulas("Dens")


def test_fits_input_check_is_not_recorded_as_a_forward():
    """fit checks x with a 2-sample inference forward before training; a trace around
    fit used to record it as the first call."""
    model = bp.Sequential([bp.Dense(4, 3, rng=0), bp.ReLU()])
    x, y = np.ones((8, 4), np.float32), np.zeros(8, int)
    with bp.trace(model) as t:
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(
            model.parameters(), lr=0.1), epochs=1, batch_size=4, progress=False)
    assert [f.x_shape for f in t[0].forward] == [(4, 4), (4, 4)]
    assert len(t[0].forward) == len(t[0].backward) == 2
    with bp.trace(model) as t:
        model.predict(x)
    assert [f.x_shape for f in t[0].forward] == [(8, 4)]  # predict's own call only


def test_a_trace_without_arrays_says_how_to_keep_them():
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.ReLU()])
    x = np.ones((4, 3), np.float32)
    with bp.trace(model) as t:
        model.backward(model.forward(x, training=True))
    assert len(t[0].dy) == 0 and t[0].backward  # statistics only
    with pytest.raises(IndexError, match=r"kept no arrays, only their statistics .* "
                                         r"trace\(model, keep_arrays=True\) keeps x, y, dy"):
        t[0].dy[-1]
    with bp.trace(model, keep_arrays=True) as kept:
        model.backward(model.forward(x, training=True))
    np.testing.assert_array_equal(kept[0].x[-1], x)


def test_layer_cache_shows_what_backward_will_use_by_name():
    dense, relu = bp.Dense(3, 2, rng=0, dtype=np.float64), bp.ReLU(dtype=np.float64)
    x = np.array([[1.0, -2.0, 0.5]])
    y = relu.forward(dense.forward(x, training=True), training=True)
    assert list(dense.cache) == ["x", "lead"] and dense.cache["lead"] is None  # 2-D input
    np.testing.assert_array_equal(dense.cache["x"], x)
    np.testing.assert_array_equal(relu.cache["y"], y)
    dense.backward(relu.backward(np.ones_like(y)))
    assert dense.cache == {"x": None, "lead": None} and relu.cache == {"y": None}
    assert bp.ReLU().cache == {"y": None}  # inference keeps nothing


def test_slicing_a_trace_without_arrays_gives_an_empty_list():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    with bp.trace(model) as t:
        model.backward(model.forward(np.ones((2, 3), np.float32), training=True))
    assert t[0].x[:] == [] and t[0].dy[-1:] == []
