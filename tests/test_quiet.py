"""Layers give inf and NaN without NumPy's floating-point warnings, as PyTorch (see _quiet)."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from table import LAYERS

import backprop as bp
from backprop._quiet import inside

_VALUES = {"inf": np.inf, "-inf": -np.inf, "nan": np.nan, "huge": None}


def _spiked(case, dtype, kind):
    """The case's input with every third element replaced by ``kind``."""
    x = np.array(case.draw(np.random.default_rng(0), case.in_shape), dtype=dtype)
    flat = x.reshape(-1)
    value = _VALUES[kind] if kind != "huge" else np.finfo(dtype).max / 4
    flat[::max(1, flat.size // 3)] = value
    return x, value


@pytest.mark.parametrize("kind", list(_VALUES))
@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_no_floating_point_warnings_at_inf_nan_and_huge(case, kind):
    dtype = np.float32
    x, value = _spiked(case, dtype, kind)
    layer = case.make(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning fails the test
        try:
            y = layer.forward(x, training=True)
        except ValueError as err:  # Embedding's indices: refused, not computed
            assert "indices" in str(err)
            return
        dy = np.full_like(y, value) if kind == "huge" else np.ones_like(y)
        layer.backward(dy)


def test_values_are_those_numpy_computes_and_pytorchs():
    torch = pytest.importorskip("torch")
    x = np.array([[np.inf, 1.0, -2.0], [3.0, np.nan, 1e38]], np.float32)
    dense = bp.Dense(3, 2, rng=0)
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(dense.params["W"].T.copy()))
        lin.bias.copy_(torch.from_numpy(dense.params["b"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = dense.forward(x)
    np.testing.assert_array_equal(y, lin(torch.from_numpy(x)).detach().numpy())
    with np.errstate(all="ignore"):
        expected = x @ dense.params["W"] + dense.params["b"]
    np.testing.assert_array_equal(y, expected)


def test_a_setting_the_caller_chose_is_kept():
    """np.seterr(all="raise"), the NumPy way to find where a NaN starts, still raises."""
    dense = bp.Dense(3, 2, rng=0)
    x = np.full((2, 3), 3e38, np.float32)
    with np.errstate(over="raise", invalid="raise"), pytest.raises(FloatingPointError):
        dense.forward(x)
    with np.errstate(all="ignore"):  # and after it, the caller's settings are back
        pass
    assert np.geterr()["over"] == "warn"


def test_own_layers_code_keeps_numpys_warnings_when_called_alone():
    class Doubler(bp.Layer):
        def forward(self, x, *, training=False):
            return x * np.float32(2)

        def backward(self, dy):
            return dy * np.float32(2)

    x = np.full((1, 2), 3e38, np.float32)
    with pytest.warns(RuntimeWarning, match="overflow"):
        Doubler().forward(x)
    with warnings.catch_warnings():  # inside a model: quiet as the model's other layers
        warnings.simplefilter("error")
        y = bp.Sequential([Doubler()]).forward(x)
    assert np.isinf(y).all()


def test_each_thread_quiets_its_own_calls():
    """The flag that skips the errstate of nested passes is per thread: a thread's
    errstate is its own, so a flag set by another thread must not skip it."""
    dense, x = bp.Dense(3, 2, rng=0), np.full((2, 3), np.inf, np.float32)
    caught: list[BaseException] = []

    def run():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                dense.forward(x)
        except BaseException as err:  # noqa: BLE001 - reported to the main thread
            caught.append(err)

    with inside():  # this thread as if in fit's steps
        t = threading.Thread(target=run)
        t.start()
        t.join()
    assert caught == []


def test_fit_callbacks_run_under_the_callers_settings_and_layers_stay_quiet():
    seen: list[bool] = []
    probe = bp.Dense(2, 2, rng=0)

    class Probe(bp.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(np.geterr()["over"] == "warn")  # the caller's setting
            probe.forward(np.full((1, 2), np.inf, np.float32))  # no warning from it

    model = bp.Sequential([bp.Dense(2, 1, rng=0)])
    x = np.ones((4, 2), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, np.ones((4, 1), np.float32), loss=bp.MeanSquaredError(),
                  optimizer=bp.SGD(model.parameters(), lr=0.01), epochs=1, batch_size=2,
                  progress=False, callbacks=[Probe()])
    assert seen == [True, True]


def test_wrapped_passes_keep_their_names_docs_and_signatures():
    import inspect

    assert bp.Dense.forward.__name__ == "forward"
    assert bp.Dense.forward.__doc__ == bp.Dense.forward.__wrapped__.__doc__
    assert list(inspect.signature(bp.Dense.forward).parameters) == ["self", "x", "training"]
    assert bp.ReLU.backward.__qualname__.endswith("ReLU.backward")


@pytest.mark.parametrize("make", [lambda: bp.Dense(4, 2), bp.ReLU, lambda: bp.LayerNorm(4),
                                  lambda: bp.Sequential([bp.Dense(4, 2)])])
def test_forward_refuses_a_training_flag_that_is_no_bool(make):
    """A string is truthy: "False" would cache (or train a Dropout). np.bool_ is fine."""
    layer, x = make(), np.ones((2, 4), np.float32)
    with pytest.raises(TypeError, match=r"\.forward: expected training to be True or False, "
                                        r"got str 'False'"):
        layer.forward(x, training="False")
    assert not layer.has_cache
    layer.forward(x, training=np.bool_(True))
    assert layer.has_cache
