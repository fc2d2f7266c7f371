"""GradientFlowMonitor: records per-layer flow in History, warns on vanishing/exploding."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import backprop as bp


def _deep_sigmoid(depth=24, width=16):
    layers = [bp.Dense(4, width, rng=0), bp.Sigmoid()]
    for i in range(depth - 2):
        layers += [bp.Dense(width, width, rng=i + 1), bp.Sigmoid()]
    return bp.Sequential([*layers, bp.Dense(width, 2, rng=depth)])


def _shallow_relu():
    return bp.Sequential([bp.Dense(4, 16, init="he_uniform", rng=0), bp.ReLU(),
                          bp.Dense(16, 2, rng=1)])


def _fit(model, monitor, scale=1.0, lr=0.05, epochs=2):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)) * scale
    y = (x[:, 0] > 0).astype(np.int64)
    return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(
        model.parameters(), lr=lr), epochs=epochs, batch_size=16, callbacks=[monitor],
        progress=False, seed=0)


def test_monitor_warns_once_about_vanishing_gradients_in_a_deep_sigmoid_net():
    model = _deep_sigmoid()
    with pytest.warns(bp.GradientFlowWarning, match="vanishing") as record:
        history = _fit(model, bp.GradientFlowMonitor())
    messages = [str(w.message) for w in record if w.category is bp.GradientFlowWarning]
    assert len(messages) == 1  # two epochs, one warning per kind per fit
    assert "layer 0 Dense(4, 16)" in messages[0] and "Residual" in messages[0]
    assert "initialization" in messages[0] and "BatchNorm" in messages[0]
    first, last = history.history["grad_norm/0"], history.history[f"grad_norm/{len(model) - 1}"]
    assert len(first) == 2 and first[0] / last[0] < 1e-3


def test_monitor_stays_silent_and_records_a_healthy_shallow_relu_net():
    model = _shallow_relu()
    history = _fit(model, bp.GradientFlowMonitor())  # any warning fails (filterwarnings=error)
    h = history.history
    assert {"grad_norm/0", "grad_norm/2", "update_ratio/0", "update_ratio/2"} <= set(h)
    assert len(h["grad_norm/0"]) == len(h["loss"]) == 2
    assert all(0 < v < 10 for v in h["grad_norm/0"] + h["grad_norm/2"])
    assert all(0 < v < 1 for v in h["update_ratio/0"] + h["update_ratio/2"])


def test_monitor_grad_norm_is_the_epoch_mean_and_update_ratio_the_epoch_change():
    model = _shallow_relu()
    w0 = [model[0].params["W"].copy(), model[0].params["b"].copy()]
    norms = []

    class Spy(bp.Callback):
        def on_batch_end(self, batch, logs):
            g = model[0].grads
            norms.append(math.sqrt(np.sum(g["W"].astype(np.float64) ** 2)
                                   + np.sum(g["b"].astype(np.float64) ** 2)))

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)), rng.integers(0, 2, 64)
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(
        model.parameters(), lr=0.05), epochs=1, batch_size=16,
        callbacks=[bp.GradientFlowMonitor(), Spy()], progress=False, seed=0)
    assert history.history["grad_norm/0"][0] == pytest.approx(np.mean(norms), rel=1e-6)
    w1 = [model[0].params["W"], model[0].params["b"]]
    change = math.sqrt(sum(np.sum((a.astype(np.float64) - b) ** 2)
                           for a, b in zip(w1, w0, strict=True)))
    base = math.sqrt(sum(np.sum(b.astype(np.float64) ** 2) for b in w0))
    assert history.history["update_ratio/0"][0] == pytest.approx(change / base, rel=1e-6)


def test_monitor_warns_about_exploding_gradients_naming_the_layer():
    model = _shallow_relu()
    named = r"exploding gradients in layer 2 Dense\(16, 2\)"  # the largest norm
    with pytest.warns(bp.GradientFlowWarning, match=named) as record:
        _fit(model, bp.GradientFlowMonitor(explode_threshold=10.0), scale=1e3, lr=1e-9)
    message = str(record[0].message)
    assert "clip_norm" in message and "learning rate" in message
    assert sum(w.category is bp.GradientFlowWarning for w in record) == 1


def test_monitor_warns_when_gradients_grow_during_training():
    """A learning rate far too large: the norms grow step after step (and diverge)."""
    model = bp.Sequential([bp.Dense(4, 16, rng=0), bp.ReLU(), bp.Dense(16, 16, rng=1),
                           bp.ReLU(), bp.Dense(16, 2, rng=2)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4))
    with pytest.warns(bp.GradientFlowWarning, match=r"exploding gradients in layer \d Dense.* "
                                                    r"times its norm at the first step \(.*; "
                                                    r"explode_growth=100\)"):
        model.fit(x, (x[:, 0] > 0).astype(np.int64), loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model.parameters(), lr=2.0, momentum=0.9), epochs=5,
                  batch_size=16, callbacks=[bp.GradientFlowMonitor(vanish_ratio=1e-9)],
                  progress=False, seed=0)


def test_large_gradients_at_every_layer_are_not_called_exploding():
    """Regression on raw targets of scale ~300 (as diabetes'): gradient norms in the
    thousands from the first step, a healthy run; a fixed limit of 1e3 used to warn."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 10))
    y = (x @ rng.standard_normal((10, 1)) * 100 + 300).astype(np.float64)
    model = bp.Sequential([bp.Dense(10, 32, rng=0, dtype=np.float64), bp.ReLU(),
                           bp.Dense(32, 1, rng=1, dtype=np.float64)])
    monitor = bp.GradientFlowMonitor()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.Adam(
            model.parameters(), lr=1e-2), epochs=5, batch_size=32, callbacks=[monitor],
            progress=False, seed=0)
    assert history.history["grad_norm/2"][0] > 1e3  # what the old fixed limit flagged
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_monitor_with_warn_false_records_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = _fit(_deep_sigmoid(), bp.GradientFlowMonitor(warn=False), epochs=1)
    assert "grad_norm/0" in history.history


def test_monitor_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="vanish_ratio"):
        bp.GradientFlowMonitor(vanish_ratio=0)
    with pytest.raises(TypeError, match="explode_threshold"):
        bp.GradientFlowMonitor(explode_threshold="big")
    with pytest.raises(ValueError, match="explode_growth"):
        bp.GradientFlowMonitor(explode_growth=1.0)


def test_plot_gradient_flow_from_a_history():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = _fit(_shallow_relu(), bp.GradientFlowMonitor())
    fig = bp.plot_gradient_flow(history)
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close(fig)
    with pytest.raises(ValueError, match="GradientFlowMonitor"):
        bp.plot_gradient_flow(bp.History())


def test_gradients_that_grow_from_a_tiny_start_while_the_loss_falls_are_not_exploding():
    """A small-initialized output layer: the layers below start with tiny gradients that
    grow 100-fold and more as it learns, in a healthy run (growth alone used to warn)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 16)).astype(np.float32)
    y = (x[:, :4].sum(axis=1) > 0).astype(int) + (x[:, 4] > 0.5)
    last = bp.Dense(32, 3, rng=2)
    last.params["W"][...] *= 1e-3
    model = bp.Sequential([bp.Dense(16, 64, rng=0), bp.ReLU(), bp.Dense(64, 32, rng=1),
                           bp.ReLU(), last])
    norms = []

    class Spy(bp.Callback):
        def on_batch_end(self, batch, logs):
            norms.append(float(np.linalg.norm(self.model[0].grads["W"])))

    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(
        model.parameters(), lr=1e-2), epochs=4, batch_size=32, progress=False, seed=0,
        callbacks=[bp.GradientFlowMonitor(), Spy()])  # a warning would fail the test
    assert max(norms) > 100 * norms[0]  # what the growth rule alone called exploding
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_monitor_finds_the_dead_relu_layer_and_says_so_instead_of_vanishing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    killed = bp.Dense(16, 16, rng=1)
    killed.params["b"][...] = -1e3  # every unit of the ReLU after it is dead
    model = bp.Sequential([bp.Dense(8, 16, rng=0), bp.ReLU(), killed, bp.ReLU(),
                           bp.Dense(16, 2, rng=2)])
    with pytest.warns(bp.GradientFlowWarning) as record:
        history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=2, batch_size=16,
                            optimizer=bp.Adam(model.parameters(), lr=1e-3), progress=False,
                            callbacks=[bp.GradientFlowMonitor()], seed=0)
    assert len(record) == 1  # not "vanishing": the dead layer explains the zero gradients
    assert re.search(r"dead ReLUs at epoch 0: 100% of the 16 units of layer 3 ReLU\(\) "
                     r"passed no gradient .* its bias runs from -1e\+03 to -1e\+03",
                     str(record[0].message))
    assert history.history["dead_relu/3"] == [1.0, 1.0]
    assert all(math.isnan(v) for v in history.history["dead_relu/1"])  # no gradient reached it


def test_dead_relu_fraction_counts_units_no_sample_passed():
    model = _shallow_relu()
    model[0].params["b"][:4] = -1e3  # 4 of 16 units dead
    history = _fit(model, bp.GradientFlowMonitor(), epochs=1)
    assert history.history["dead_relu/1"] == [0.25]
    with pytest.raises(TypeError, match=r"GradientFlowMonitor: expected warn to be True or "
                                        r"False"):
        bp.GradientFlowMonitor(warn="no")
    with pytest.raises(ValueError, match=r"expected dead_fraction in \(0\.0, 1\.0\]"):
        bp.GradientFlowMonitor(dead_fraction=0)


def test_dead_relus_are_found_in_nested_models_and_beside_skip_connections():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    fit = dict(loss=bp.SoftmaxCrossEntropy(), epochs=1, progress=False, seed=0)
    dead = bp.Dense(8, 8, rng=2)
    dead.params["b"][...] = -100.0
    nested = bp.Sequential([bp.Sequential([bp.Dense(4, 8, rng=1), bp.ReLU()]), dead, bp.ReLU(),
                            bp.Dense(8, 3, rng=3)])
    with pytest.warns(bp.GradientFlowWarning, match=r"100% of the 8 units of layer 2 ReLU"):
        history = nested.fit(x, y, optimizer=bp.Adam(nested.parameters()),
                             callbacks=[bp.GradientFlowMonitor()], **fit)
    assert history.history["dead_relu/2"] == [1.0]
    assert math.isnan(history.history["dead_relu/0.1"][0])  # nothing reached it
    dead = bp.Dense(8, 8, rng=2)
    dead.params["b"][...] = -100.0
    skipped = bp.Sequential([bp.Dense(4, 8, rng=1), bp.ReLU(), bp.Residual(bp.Sequential(
        [dead, bp.ReLU(), bp.Dense(8, 8, rng=4)])), bp.Dense(8, 3, rng=3)])
    with pytest.warns(bp.GradientFlowWarning, match=r"of layer 2\.block\.1 ReLU"):
        history = skipped.fit(x, y, optimizer=bp.Adam(skipped.parameters()),
                              callbacks=[bp.GradientFlowMonitor()], **fit)
    assert history.history["dead_relu/2.block.1"] == [1.0]
    assert history.history["dead_relu/1"] == [0.0]  # the skip still reaches it


def test_the_monitors_keys_can_be_monitored():
    model = _shallow_relu()
    history = _fit(model, bp.GradientFlowMonitor(), epochs=2)  # the keys it logs
    assert {"grad_norm/0", "grad_norm/2", "update_ratio/0", "dead_relu/1"} <= set(
        history.history)
    stop = bp.EarlyStopping("grad_norm/0", mode="min", patience=0, restore_best=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4))
    watched = model.fit(x, (x[:, 0] > 0).astype(np.int64), loss=bp.SoftmaxCrossEntropy(),
                        optimizer=bp.SGD(model.parameters(), lr=0.05), epochs=2,
                        progress=False, callbacks=[bp.GradientFlowMonitor(), stop])
    # accepted at train begin, then read from each epoch's logs
    assert stop.best == watched.history["grad_norm/0"][stop.best_epoch]
    assert stop.best == min(watched.history["grad_norm/0"])


def test_a_unit_whose_gradient_is_blocked_above_is_not_called_dead():
    """A zero-initialized last layer passes no gradient down at its first step: the ReLU's
    units are alive (the last layer's dW rows say so), not dead."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    model = bp.Sequential([bp.Dense(6, 16, rng=0), bp.ReLU(), bp.Dense(16, 3, init="zeros")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bp.GradientFlowWarning)  # vanishing at epoch 0: true
        history = model.fit(x, rng.integers(0, 3, 64), loss=bp.SoftmaxCrossEntropy(),
                            optimizer=bp.SGD(model.parameters(), lr=0.1), epochs=2,
                            batch_size=64, progress=False, callbacks=[bp.GradientFlowMonitor()])
    assert history.history["dead_relu/1"] == [0.0, 0.0]
