"""Review of the inspection tools (session 19): trace, check_gradients, GradientFlowMonitor,
summary, formulas, History.plot. Each statistic is checked against the arrays by hand."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop._trace_stats import DEAD, SATURATION

F64 = np.float64


def _mlp():
    return bp.Sequential([bp.Dense(3, 5, dtype=F64, rng=0), bp.Tanh(dtype=F64),
                          bp.Dense(5, 2, dtype=F64, rng=1)])


def _x(n=6, d=3):
    return np.random.default_rng(0).standard_normal((n, d))


def _by_hand(tr):
    """Every statistic of every call, recomputed from the kept arrays: (checked, wrong)."""
    checked, wrong = 0, []
    for rec in tr:
        for k, s in enumerate(rec.forward):
            x, y = np.asarray(rec.x[k], F64), np.asarray(rec.y[k], F64)
            bounds = next((b for c, b in SATURATION.items() if isinstance(rec.layer, c)), None)
            want = {"x_norm": np.linalg.norm(x.ravel()), "y_norm": np.linalg.norm(y.ravel()),
                    "y_mean": y.mean(), "y_std": y.std(), "zero_frac": np.mean(y == 0),
                    "dead_frac": float(np.mean(~y.reshape(len(y), -1).any(axis=0)))
                    if isinstance(rec.layer, DEAD) else None,
                    "saturated_frac": None if bounds is None else
                    float(np.mean((y < bounds[0]) | (y > bounds[1])))}
            for key, v in want.items():
                checked += 1
                got = getattr(s, key)
                if (got is None) != (v is None) or (v is not None and not np.isclose(got, v)):
                    wrong.append((rec.name, k, key, got, v))
        for k, s in enumerate(rec.backward):
            checked += 2
            if not np.isclose(s.dy_norm, np.linalg.norm(rec.dy[k])):
                wrong.append((rec.name, k, "dy_norm", s.dy_norm))
            dx = rec.dx[k]
            if (dx is None) != (s.dx_norm is None) or (
                    dx is not None and not np.isclose(s.dx_norm, np.linalg.norm(dx))):
                wrong.append((rec.name, k, "dx_norm", s.dx_norm))
            for p, g in rec.grads[k].items():
                checked += 1
                if not np.isclose(s.grad_norms[p], np.linalg.norm(g)):
                    wrong.append((rec.name, k, p, s.grad_norms[p]))
    return checked, wrong


# -- trace ------------------------------------------------------------------------------
def test_every_traced_statistic_matches_the_arrays_in_masked_recurrent_and_nested_models():
    idx = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0], [1, 1, 1, 1, 9], [3, 0, 0, 0, 0]])
    models = [
        (bp.Sequential([bp.Embedding(10, 4, mask_zero=True, dtype=F64, rng=0),
                        bp.Bidirectional(bp.LSTM(4, 3, dtype=F64, rng=1)),
                        bp.MultiheadAttention(6, 2, dtype=F64, rng=2),
                        bp.LSTM(6, 3, return_sequences=False, dtype=F64, rng=3),
                        bp.Dense(3, 3, dtype=F64, rng=4)]), idx),
        (bp.Sequential([bp.Conv2D(2, 4, 3, padding=1, dtype=F64, rng=0), bp.ReLU(dtype=F64),
                        bp.MaxPool2D(2, dtype=F64), bp.Flatten(dtype=F64),
                        bp.Sequential([bp.Residual(bp.Sequential([
                            bp.Dense(64, 64, dtype=F64, rng=1), bp.Sigmoid(dtype=F64)]))]),
                        bp.Dense(64, 3, dtype=F64, rng=2)]),
         np.random.default_rng(0).standard_normal((4, 2, 8, 8))),
    ]
    loss = bp.SoftmaxCrossEntropy(dtype=F64)
    for model, x in models:
        with bp.trace(model, keep_arrays=True) as tr:
            for _ in range(2):
                loss.forward(model.forward(x, training=True), np.array([0, 1, 2, 0]))
                model.backward(loss.backward())
        checked, wrong = _by_hand(tr)
        assert checked > 100 and wrong == []
        assert {(len(r.forward), len(r.backward)) for r in tr} == {(2, 2)}


def test_a_norm_is_of_the_array_as_passed_even_when_it_was_changed_in_place():
    # dy built in place from the model's output (MSE by hand), and a loop over the
    # layers that scales each output in place: the norms are of what each call got
    model, x = _mlp(), _x()
    with bp.trace(model, keep_arrays=True) as tr:
        y = model.forward(x, training=True)
        y -= 3.0
        model.backward(y)
        h = x.copy()
        for layer in model.layers:
            h = layer.forward(h)
            h *= 2.0
    assert tr[2].backward[0].dy_norm == pytest.approx(np.linalg.norm(tr[2].dy[0]))
    assert tr[1].forward[1].x_norm == pytest.approx(2 * tr[0].forward[1].y_norm)
    assert _by_hand(tr)[1] == []


def test_a_traced_layer_takes_its_arguments_by_keyword_too():
    model, x = _mlp(), _x()
    want = model[0].forward(x)
    with bp.trace(model) as tr:
        got = model[0].forward(x=x, training=True)
        model[0].backward(dy=np.ones_like(got))
    np.testing.assert_array_equal(got, want)
    assert len(tr[0].forward) == 1 and tr[0].forward[0].training
    assert tr[0].forward[0].x_norm == pytest.approx(np.linalg.norm(x))
    assert tr[0].backward[0].dy_norm == pytest.approx(np.sqrt(got.size))


def test_a_copy_made_inside_a_trace_runs_its_own_weights_and_is_not_recorded():
    model, x = _mlp(), _x()
    with bp.trace(model) as tr:
        twin = copy.deepcopy(model)
        twin[0].params["W"][...] = 0.0
        out = twin.forward(x)
        assert len(tr[0].forward) == 0  # the copy is not traced
        want = np.tanh(np.zeros((6, 5)) + twin[0].params["b"]) @ twin[2].params["W"]
        np.testing.assert_allclose(out, want + twin[2].params["b"])
        model.forward(x)
    assert len(tr[0].forward) == 1
    for layer in [twin, *(lay for _, lay in twin.named_layers())]:
        assert layer.forward.__func__ is type(layer).forward
    with bp.trace(twin) as t2:  # a copy can be traced in turn, and is restored after
        twin.forward(x)
    assert len(t2[0].forward) == 1
    assert all(getattr(lay, m).__func__ is getattr(type(lay), m)
               for _, lay in twin.named_layers() for m in ("forward", "backward"))


def test_check_gradients_inside_a_trace_judges_the_layer_and_records_nothing():
    model, x = _mlp(), _x()
    with bp.trace(model) as tr:
        result = bp.check_gradients(model, x)
    assert result.passed, str(result)
    assert all(len(r.forward) == 0 and len(r.backward) == 0 for r in tr)


def test_summary_inside_a_trace_records_no_probe_forward():
    model = _mlp()
    with bp.trace(model) as tr:
        text = str(model.summary())
        model.forward(_x())
    assert "(N, 5)" in text
    assert [len(r.forward) for r in tr] == [1, 1, 1]


# -- check_gradients --------------------------------------------------------------------
class _Gated(bp.Layer):
    """``y = s * tanh(x @ W + b) + x @ V`` with a square W, V (so a transpose fits)."""

    _cache_attrs = ("_x", "_t")

    def __init__(self, bug=None, dtype=F64):
        super().__init__(dtype=dtype)
        rng, self.bug = np.random.default_rng(0), bug
        for name, shape in (("W", (4, 4)), ("b", (4,)), ("V", (4, 4)), ("s", ())):
            self.add_param(name, np.asarray(rng.standard_normal(shape) + 0.5, dtype))

    def forward(self, x, *, training=False):
        p = self.params
        t = np.tanh(x @ p["W"] + p["b"])
        if training:
            self._x, self._t = x, t
        return p["s"] * t + x @ p["V"]

    def backward(self, dy):
        x, t = self._pop("_x", "_t")
        p, g = self.params, self.grads
        dz = dy * p["s"] * (1 - t * t) * (2.0 if self.bug == "factor" else 1.0)
        g["W"][...] = (x.T @ dz).T if self.bug == "transpose" else x.T @ dz
        g["b"][...] = dz.sum(0)
        g["V"][...] = x.T @ dy
        g["s"][...] = (dy * t).sum() * (1.001 if self.bug == "one parameter" else 1.0)
        return dz @ p["W"].T + (0.0 if self.bug == "missing term" else dy @ p["V"].T)


@pytest.mark.parametrize(("bug", "tensor"), [("factor", "x"), ("transpose", "W"),
                                             ("one parameter", "s"), ("missing term", "x")])
def test_check_gradients_names_where_a_custom_backward_is_wrong(bug, tensor):
    x = np.random.default_rng(1).standard_normal((5, 4))
    assert bp.check_gradients(_Gated(), x).passed
    assert bp.check_gradients(_Gated(dtype=np.float32), x).passed  # a float64 copy
    result = bp.check_gradients(_Gated(bug), x)
    assert not result.passed and result.tensor == tensor
    assert "FAILED" in str(result) and f"{tensor}[" in str(result)
    if bug == "one parameter":  # 0.1% off in one scalar, the rest exact
        assert result.max_error == pytest.approx(1e-3, rel=0.01)
        assert max(v for k, v in result.errors.items() if k != "s") < 1e-6


def test_check_gradients_says_backward_returned_no_dx():
    class NoReturn(bp.Dense):
        def backward(self, dy):
            super().backward(dy)

    with pytest.raises(ValueError, match=r"expected backward to give the x gradient of shape "
                                         r"\(6, 3\), got None \(does backward return it"):
        bp.check_gradients(NoReturn(3, 2, dtype=F64, rng=0), _x())


def test_check_gradients_names_a_layer_class_given_for_an_instance():
    with pytest.raises(TypeError, match=r"got the class Dense: pass an instance"):
        bp.check_gradients(bp.Dense, _x())


def test_check_gradients_names_a_parameter_registered_as_a_float():
    class Scale(bp.Layer):
        _cache_attrs = ("_x",)

        def __init__(self):
            super().__init__(dtype=F64)
            self.add_param("s", np.float64(1.5))  # a scalar, not an array: not perturbable

        def forward(self, x, *, training=False):
            if training:
                self._x = x
            return x * self.params["s"]

        def backward(self, dy):
            self.grads["s"][...] = (dy * self._pop("_x")).sum()
            return dy * self.params["s"]

    with pytest.raises(TypeError, match=r"expected every parameter as a numpy array, got "
                                        r"float64 for 's' .*np.asarray"):
        bp.check_gradients(Scale(), _x())


# -- formulas ---------------------------------------------------------------------------
def test_formulas_of_every_layer_class_and_of_a_factory_by_name():
    from backprop.layers.base import Layer

    classes = [c for c in vars(bp).values() if isinstance(c, type) and issubclass(c, Layer)
               and c not in (bp.Layer, bp.Container)]
    assert len(classes) > 90
    for cls in classes:
        text = bp.formulas(cls)
        assert text.startswith("Forward:") and "Backward:" in text, cls.__name__
        assert bp.formulas(cls.__name__) == text
    with pytest.raises(ValueError, match=r"got 'TransformerEncoderLayer', a function: pass "
                                         r"what it builds, formulas\(bp.TransformerEncoder"):
        bp.formulas("TransformerEncoderLayer")
    with pytest.raises(TypeError, match=r"pass what it builds, formulas\(TransformerEncoder"):
        bp.formulas(bp.TransformerEncoderLayer)
    assert bp.formulas(bp.TransformerEncoderLayer(4, 2, 8)) == bp.formulas(bp.Sequential)


# -- History.plot -----------------------------------------------------------------------
def test_history_plot_of_nothing_says_so(_agg):
    with pytest.raises(ValueError, match=r"History.plot: expected a History with at least "
                                         r"one epoch recorded, got an empty one"):
        bp.History().plot()


def test_history_plot_takes_one_key_as_a_string_and_names_an_unknown_one(_agg):
    h = bp.History()
    h.history = {"loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "grad_norm/0": [0.1, 0.2]}
    h.epoch = [0, 1]
    assert [ax.get_title() for ax in h.plot("loss").axes] == ["loss"]
    with pytest.raises(ValueError, match=r"expected keys among \['loss', 'val_loss', "
                                         r"'grad_norm/0'\], got 'nope' not among them"):
        h.plot(["loss", "nope"])
    with pytest.raises(TypeError, match=r"expected keys as a list of names, got int"):
        h.plot(3)
    only = bp.History()
    only.history, only.epoch = {"grad_norm/0": [0.1]}, [0]
    with pytest.raises(ValueError, match=r"no quantity without a '/' .*keys=\['grad_norm/0'\]"):
        only.plot()


def test_activation_histograms_name_a_call_out_of_range(_agg):
    model = _mlp()
    with bp.trace(model, keep_arrays=True) as tr:
        model.forward(_x())
    assert len(bp.plot_activation_histograms(tr, call=0).axes) >= 3
    with pytest.raises(ValueError, match=r"expected call in \[-1, 1\) \(the forward calls "
                                         r"kept for \(0\) Dense.*got 5"):
        bp.plot_activation_histograms(tr, call=5)
    with pytest.raises(TypeError, match=r"expected call to be an int, got '0'"):
        bp.plot_activation_histograms(tr, call="0")


# -- GradientFlowMonitor ----------------------------------------------------------------
def test_monitor_records_the_epoch_means_a_trace_of_the_same_fit_sees():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6)).astype(np.float32), rng.integers(0, 2, 40)
    model = bp.Sequential([bp.Dense(6, 8, rng=0), bp.ReLU(),
                           bp.Residual(bp.Sequential([bp.Dense(8, 8, rng=1), bp.Tanh()])),
                           bp.Dense(8, 2, rng=2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy net: no GradientFlowWarning
        with bp.trace(model) as tr:
            hist = bp.fit(model, x, y, loss=bp.SoftmaxCrossEntropy(),
                          optimizer=bp.SGD(model, lr=0.1), epochs=2, batch_size=16,
                          callbacks=[bp.GradientFlowMonitor()], progress=False, seed=0)
    for path in ("0", "2.block.0", "3"):
        per_step = [np.sqrt(sum(v * v for v in b.grad_norms.values()))
                    for b in tr[path].backward]
        assert len(per_step) == 6  # 3 steps an epoch, no probe
        np.testing.assert_allclose(hist.history[f"grad_norm/{path}"],
                                   [np.mean(per_step[:3]), np.mean(per_step[3:])], rtol=1e-6)
