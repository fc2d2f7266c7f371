"""Session 36: defects found by its reviews and by the session itself, each test failing
before its fix."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

NORMS = {
    "BatchNorm (N, C)": (lambda dt: bp.BatchNorm(4, dtype=dt), (6, 4)),
    "BatchNorm (N, C, H, W)": (lambda dt: bp.BatchNorm(3, dtype=dt), (4, 3, 2, 2)),
    "LayerNorm": (lambda dt: bp.LayerNorm(6, dtype=dt), (4, 6)),
    "LayerNorm affine=False": (lambda dt: bp.LayerNorm((2, 3), elementwise_affine=False,
                                                       dtype=dt), (4, 2, 3)),
    "GroupNorm": (lambda dt: bp.GroupNorm(1, 3, dtype=dt), (4, 3, 2, 2)),
    "GroupNorm affine=False": (lambda dt: bp.GroupNorm(1, 3, affine=False, dtype=dt),
                               (4, 3, 5)),
    "InstanceNorm1D": (lambda dt: bp.InstanceNorm1D(3, affine=True, dtype=dt), (2, 3, 5)),
}


@pytest.mark.parametrize("name", NORMS)
def test_norm_backward_stays_finite_near_float32_max(name):
    """Rows (channels) of std ~1e37: Σ dy·xc overflowed float32, so dx and dgamma were
    ±inf where float64's are finite (PyTorch's float32 kernels give NaN); the backward
    now scales such rows by a power of two (exact). One row stays ordinary."""
    make, shape = NORMS[name]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 7.5e37).astype(np.float32)
    x[0] *= 1e-37
    dy = rng.standard_normal(shape).astype(np.float32)
    ours, ref = make(np.float32), make(np.float64)
    ours.forward(x, training=True)
    ref.forward(x.astype(np.float64), training=True)
    dx, dx64 = ours.backward(dy), ref.backward(dy.astype(np.float64))
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, dx64, rtol=0, atol=1e-5 * np.abs(dx64).max())
    for key, g in ours.grads.items():
        np.testing.assert_allclose(g, ref.grads[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_layernorm_backward_at_plus_minus_float32_max():
    x = np.array([[3e38, -3e38, 1.0, 2.0]], np.float32)
    dy = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    ours, ref = bp.LayerNorm(4), bp.LayerNorm(4, dtype=np.float64)
    ours.forward(x, training=True)
    ref.forward(x.astype(np.float64), training=True)
    dx, dx64 = ours.backward(dy), ref.backward(dy.astype(np.float64))
    assert np.isfinite(dx).all() and np.abs(dx64).max() < 1e-38
    np.testing.assert_allclose(dx, dx64, rtol=1e-5, atol=1e-44)


@pytest.mark.parametrize("shape", [(64, 4), (32, 3, 8, 8)])
def test_batchnorm_channel_far_from_zero_is_centred_twice(shape):
    """A float32 channel 1e6 + N(0, 1): the mean's round-off shifted every centred value
    (outputs 0.083 off float64, PyTorch's float32 kernel 0.127); now within 1e-5, with
    dx and the running variance as close."""
    rng = np.random.default_rng(0)
    x = (1e6 + rng.standard_normal(shape)).astype(np.float32)
    x[:, 0] -= 1e6  # an ordinary channel beside them
    dy = rng.standard_normal(shape).astype(np.float32)
    ours, ref = bp.BatchNorm(shape[1]), bp.BatchNorm(shape[1], dtype=np.float64)
    y, y64 = ours.forward(x, training=True), ref.forward(x.astype(np.float64), training=True)
    np.testing.assert_allclose(y, y64, atol=1e-5)
    dx, dx64 = ours.backward(dy), ref.backward(dy.astype(np.float64))
    np.testing.assert_allclose(dx, dx64, atol=1e-5 * np.abs(dx64).max())
    np.testing.assert_allclose(ours.buffers["running_var"], ref.buffers["running_var"],
                               rtol=1e-5)


def test_two_training_forwards_of_freed_float64_batches_warn():
    """A GAN's real and fake batches as float64 temporaries: each is freed after its cast,
    the second often got the first's id, and the two forwards counted as one (no warning,
    the gradients silently the second batch's alone). Inputs are known by a weak
    reference now; the same array again still counts once, and a pickle or deepcopy of
    the model starts its count afresh."""
    import copy
    import pickle
    import warnings

    model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.ReLU(), bp.Dense(4, 2, rng=1)])
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="training forwards of 2 inputs"):
        for _ in range(2):
            batch = rng.standard_normal((4, 3))  # float64, cast by the model
            model.forward(batch, training=True)
            del batch  # freed: the next batch may take its id
        model.backward(np.ones((4, 2), np.float32))
    x = rng.standard_normal((4, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.forward(x, training=True)
        model.forward(x, training=True)  # a notebook cell run twice: one input
        for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert other._forwards == 0
        model.backward(np.ones((4, 2), np.float32))


@pytest.mark.parametrize("shape", [(2, 65536), (1, 131072)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_a_float32_loss_past_its_range_is_inf_on_both_sides_of_the_wide_row_switch(
        shape, reduction):
    """Rows past 65,536 entries were summed in float64 and returned 2.9e43 (a sum that is
    no float32 number) or a finite mean where PyTorch's float32 loss is inf; the blocks'
    float64 total is rounded to float32 now."""
    y = np.full(shape, 1.5e19, np.float32)  # squares 2.25e38: finite, their sum is not
    loss = bp.MeanSquaredError(reduction=reduction).forward(y, np.zeros(shape, np.float32))
    assert loss == np.inf


def test_adam_second_moment_square_falls_back_only_where_it_overflows():
    """g² of float32 gradients (one BLAS-free pass) unless it overflows; then (c g) g,
    PyTorch's order (a6d3ac5), without the pass more on every step."""
    from backprop.backend import square_into

    g = np.array([3.0, -2e19], np.float32)
    out = np.empty_like(g)
    assert square_into(g[:1], 0.001, out[:1]) == 0.001 and out[0] == 9.0
    assert square_into(g, 0.001, out) == 1.0
    np.testing.assert_array_equal(out, (g * np.float32(0.001)) * g)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("n, mean, std", [(1000, 1e8, 1e-5), (100_000, 1e6, 1e-5),
                                          (10_000, 1.0, 1e-13)])
def test_r2_keeps_the_score_of_a_column_whose_spread_is_far_below_its_mean(n, mean, std):
    """b809162 read a column as constant below a worst-case bound of its mean's round-off,
    so float64 targets 1e8 + N(0, 1e-5) scored 0.0 (scikit-learn 0.726); a column is
    constant when its least and greatest values are equal. Merged batches (fit) agree."""
    rng = np.random.default_rng(0)
    y = mean + std * rng.standard_normal(n)
    out = y + 0.5 * std * rng.standard_normal(n)
    want = 1 - np.sum((out - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert bp.metrics.r2(y, out) == pytest.approx(want, rel=1e-6)
    halves = [bp.metrics.r2.partial(y[s], out[s]) for s in (slice(0, n // 3),
                                                            slice(n // 3, None))]
    merged = bp.metrics.r2.finish(bp.metrics.r2.merge(*halves))
    assert merged == pytest.approx(want, rel=1e-5)  # the merge's own round-off
    constant = np.full(7, 0.1)
    parts = [bp.metrics.r2.partial(constant[:3], constant[:3] + 1e-3),
             bp.metrics.r2.partial(constant[3:], constant[3:] + 1e-3)]
    assert bp.metrics.r2.finish(bp.metrics.r2.merge(*parts)) == 0.0


def test_check_gradients_passes_softplus_exactly_at_its_default_switch():
    """Softplus jumps by 2e-9 at x = 20 (PyTorch's too); the values' difference across x
    is dominated by 2h·f', so the jump test failed it: the jump is now that difference
    less its linear part (from steps h and h/16), and x is judged nearby."""
    result = bp.check_gradients(bp.Softplus(), np.array([[20.0, -1.0]]))
    assert result.passed, result
    assert any("kinks or jumps" in n for n in result.notes)

    class WrongSlope(bp.Softplus):
        def backward(self, dy):
            return super().backward(dy) * 1.01

    assert not bp.check_gradients(WrongSlope(), np.array([[20.0, -1.0]])).passed


def test_check_gradients_float32_half_still_fails_a_float32_bug_in_a_small_gradient():
    """A floor from r's size (eps32 · max|r|) let the float32 half pass Softmax on a
    saturated row, but also a 50% float32-only error in y = 1e-7 x: it was taken out.
    The saturated Softmax fails with the note naming round-off of cancelling terms."""

    class Scaled(bp.Layer):
        def forward(self, x, *, training=False):
            return x * 1e-7

        def backward(self, dy):
            dx = dy * 1e-7
            return dx * np.float32(1.5) if dx.dtype == np.float32 else dx

    x = np.random.default_rng(0).standard_normal((4, 3))
    result = bp.check_gradients(Scaled(), x)
    assert not result.passed and result.tensor == "x (float32)"
    saturated = bp.check_gradients(bp.Softmax(), np.array([[0.0, 20.0]]))
    assert any("round-off of a gradient whose terms cancel" in n for n in saturated.notes)


@pytest.mark.parametrize("last, cached", [(bp.Sigmoid, True), (bp.Softmax, True),
                                          (bp.ReLU, True), (lambda: bp.Dense(2, 2), False)])
def test_training_output_kept_as_a_cache_is_read_only(last, cached):
    """y -= t between a training forward and its backward silently changed the last
    layer's dx where it keeps y (PyTorch raises for such an in-place change); y is a
    read-only view then, writable where the last layer keeps none of it, and inference
    outputs stay writable."""
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.Sequential([last()])])
    x = np.ones((4, 3), np.float32)
    y = model.forward(x, training=True)
    assert y.flags.writeable is not cached
    if cached:
        with pytest.raises(ValueError, match="read-only"):
            y -= 1.0
    else:
        y -= 1.0
    model.backward(np.ones_like(y))
    assert model.forward(x).flags.writeable


@pytest.mark.parametrize("after", [lambda: bp.Reshape((1, 2)), bp.Flatten, bp.Identity,
                                   lambda: bp.Dropout(0.0)])
def test_training_output_viewing_a_cache_through_later_layers_is_read_only(after):
    """An autoencoder ending in Sigmoid -> Reshape handed on a writable view of Sigmoid's
    cache (the first version looked at the last layer alone): y -= t changed dW."""
    model = bp.Sequential([bp.Dense(3, 2, rng=0), bp.Sigmoid(), after()])
    y = model.forward(np.ones((4, 3), np.float32), training=True)
    with pytest.raises(ValueError, match="read-only"):
        y -= 1.0


def test_cli_threads_apply_without_threadpoolctl(monkeypatch):
    """--threads (default 1) went through threadpoolctl alone and did nothing where it is
    not installed (the README's install); NumPy's OpenBLAS is set directly now."""
    import sys

    from backprop.__main__ import blas_threads
    try:
        before = bp.get_num_threads()
    except RuntimeError:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    bp.set_num_threads(2)
    try:
        with blas_threads(1):
            assert bp.get_num_threads() == 1
        assert bp.get_num_threads() == 2
    finally:
        bp.set_num_threads(before)


def test_schedules_and_initializers_star_import_public_names_only():
    """Both modules lacked __all__: ``from backprop.schedules import *`` brought in
    positive_int, np, math; initializers fits, prod, sqrt."""
    import backprop.initializers as inits
    import backprop.schedules as schedules

    for module in (schedules, inits):
        names: dict = {}
        exec(f"from {module.__name__} import *", names)
        public = {n for n in names if not n.startswith("__")}
        assert public == set(module.__all__)
        assert not public & {"np", "math", "positive_int", "fits", "prod", "sqrt"}
    assert {"OneCycleLR", "ReduceLROnPlateau", "Schedule"} <= set(schedules.__all__)
    assert {"make_rng", "he_uniform", "get"} <= set(inits.__all__)


def test_ctrl_c_during_validation_keeps_the_epoch_it_trained():
    """The first Ctrl-C only asks fit to stop; one during an epoch's validation let the
    validation finish, then dropped that fully trained and scored epoch (no History
    entry, no on_epoch_end: no checkpoint of it). It is recorded now, then fit stops."""
    import os
    import signal

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    xv = rng.standard_normal((50, 4)).astype(np.float32)
    yv = (xv[:, 0] > 0).astype(np.int64)
    calls = []

    def probe(y_true, out):  # 50 rows: validation's
        if len(y_true) == 50:
            calls.append(1)
            if len(calls) == 2:  # during the second epoch's validation
                os.kill(os.getpid(), signal.SIGINT)
        return 0.0

    ends = []

    class Log(bp.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append((epoch, sorted(logs)))

    model = bp.Sequential([bp.Dense(4, 2, rng=0)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=5,
                        batch_size=32, validation_data=(xv, yv), metrics=[probe], seed=0,
                        progress=False, callbacks=[Log()])
    assert opt.steps == 4 and history.interrupted
    assert history.epoch == [0, 1] and [e for e, _ in ends] == [0, 1]
    assert "val_loss" in ends[1][1]


def test_one_callback_in_fits_of_two_threads_at_once_is_refused():
    """fit binds each callback to its model; an EarlyStopping shared by two threads' fits
    followed the later one, mixed their counters and restored one model's best weights
    into the other. A fit in another thread using the callback is refused by name, as a
    shared model, loss or optimizer is; one after the other is fine."""
    import threading

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    shared = bp.EarlyStopping("loss", patience=100)
    started, release = threading.Event(), threading.Event()

    class Hold(bp.Callback):
        def on_train_begin(self, logs=None):
            started.set()
            release.wait(30)

    def fit(callbacks):
        model = bp.Sequential([bp.Dense(4, 2, rng=0)])
        return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=2, batch_size=32,
                         optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False,
                         callbacks=callbacks)

    other = threading.Thread(target=fit, args=([shared, Hold()],))
    other.start()
    try:
        assert started.wait(30)
        with pytest.raises(RuntimeError, match="callback no other thread is training with"):
            fit([shared])
    finally:
        release.set()
        other.join()
    assert len(fit([shared]).epoch) == 2  # the other fit is over: free again


@bp.register_layer
class _Noisy(bp.Layer):
    """One Generator under two names (self._a first, then self.rng)."""

    def __init__(self, seed=0, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.seed = seed
        self._a = np.random.default_rng(seed)
        self.rng = self._a

    def forward(self, x, *, training=False):
        return x + 0.1 * self._a.standard_normal(x.shape).astype(x.dtype) if training else x


def test_save_keeps_one_generator_held_under_two_names_of_one_layer(tmp_path):
    """771c4cb stored the aliases in attribute order (_a, then rng as same_as '1._a') and
    restored rng first: save refused the layer ('shared with an earlier layer')."""
    model = bp.Sequential([bp.Dense(3, 3, rng=0), _Noisy(1)])
    model[1]._a.standard_normal(5)  # a state of its own, not the seed's
    want = model[1]._a.bit_generator.state
    model.save(tmp_path / "m.npz")
    back = bp.load(tmp_path / "m.npz")
    assert back[1].rng is back[1]._a
    assert back[1]._a.bit_generator.state == want


class _Lazy(bp.Layer):
    """PyTorch's LazyLinear habit: W made at the first forward."""

    def __init__(self, out=2, *, dtype=np.float32, item=False):
        super().__init__(dtype=dtype)
        self.out, self.item = out, item

    def forward(self, x, *, training=False):
        if "W" not in self.params:
            w = np.full((x.shape[1], self.out), 0.1, self.dtype)
            if self.item:
                self.params["W"] = w
            else:
                self.add_param("W", w)
        return x @ self.params["W"]


@pytest.mark.parametrize("item", [False, True])
def test_a_parameter_added_inside_a_live_model_is_refused_and_elsewhere_allowed(item):
    """add_param, or params['W'] = ... (which bypassed it), on a layer inside a model is
    refused; the mark is no longer a flag on the layer, so a deepcopy of it, or the layer
    after its model is gone, takes parameters again (35cdfd7 refused both)."""
    import copy
    import gc

    layer = _Lazy(item=item)
    model = bp.Sequential([bp.Dense(3, 3, rng=0), layer])
    with pytest.raises(RuntimeError, match="expected parameters registered in __init__"):
        model.forward(np.ones((2, 3), np.float32))
    twin = copy.deepcopy(layer)
    assert twin.forward(np.ones((2, 3), np.float32)).shape == (2, 2)
    del model
    gc.collect()
    assert layer.forward(np.ones((2, 3), np.float32)).shape == (2, 2)


class _DictState(bp.Layer):
    """A stateful layer of one's own keeping its state in a dict and a list."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.stats = {"mean": np.full(3, 7.0, np.float32)}
        self.seen = [1]

    def forward(self, x, *, training=False):
        self.stats["mean"] = x.mean(0)
        self.seen.append(len(x))
        return x - self.stats["mean"]


def test_probe_forwards_leave_a_custom_layers_dict_and_list_state_as_it_was():
    """states_kept (summary's and fit/evaluate's probe forwards) copied a custom layer's
    attributes shallowly: state kept in a dict or list was still moved (7 -> 0)."""
    layer = _DictState()
    stats, seen = layer.stats, layer.seen
    model = bp.Sequential([bp.Dense(3, 3, rng=0), layer])
    model.summary(input_shape=(3,))
    assert layer.stats is stats and layer.seen is seen  # refilled in place
    np.testing.assert_array_equal(layer.stats["mean"], 7.0)
    assert layer.seen == [1]


def test_permute_ending_a_mask_must_be_the_last_layer():
    """Permute((2, 1)) ends a padding mask; a layer after it got no mask, so nothing
    refused it, and the padded steps leaked in (Permute -> Conv1D -> Permute -> LSTM: a
    padded row's output moved by 1.7e-2 with more padding). Only the last layer may."""
    x = np.array([[3, 1, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    leak = bp.Sequential([bp.Embedding(8, 4, mask_zero=True, rng=0), bp.Permute((2, 1)),
                          bp.Conv1D(4, 4, 1, rng=1), bp.Permute((2, 1)),
                          bp.LSTM(4, 3, rng=2)])
    with pytest.raises(ValueError, match="expected to be the model's last layer"):
        leak.forward(x)
    last = bp.Sequential([bp.Embedding(8, 4, mask_zero=True, rng=0), bp.Dense(4, 5, rng=1),
                          bp.Permute((2, 1))])
    assert last.forward(x).shape == (2, 5, 6) and last.output_mask is None


def test_check_gradients_holds_a_leading_maskings_padded_steps_at_zero():
    """A finite-difference step turns a padded step (all features at mask_value) into a
    real one, so a correct Masking -> LSTM model failed at those entries (analytic 0,
    numeric 0.04); they are now checked to be exactly 0, as Embedding's padding row."""
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    x[1, 2:] = 0.0
    model = bp.Sequential([bp.Masking(dtype=np.float64), bp.LSTM(3, 2, dtype=np.float64,
                                                                 rng=0)])
    result = bp.check_gradients(model, x)
    assert result.passed, result
    assert any("held at a zero gradient by rule" in n for n in result.notes)

    class Leaky(bp.Masking):
        def forward(self, x, *, training=False):
            self._pad = np.all(x == 0.0, axis=-1)
            return super().forward(x, training=training)

        def backward(self, dy):
            dx = super().backward(dy)
            dx[self._pad] = 0.5  # a gradient at padded steps, where the rule says 0
            return dx

    leaky = bp.Sequential([Leaky(dtype=np.float64), bp.LSTM(3, 2, dtype=np.float64, rng=0)])
    assert not bp.check_gradients(leaky, x).passed


def test_fit_says_how_to_fix_validation_sequences_of_another_length():
    x = np.random.default_rng(0).integers(1, 8, (16, 6))
    xv = np.random.default_rng(1).integers(1, 8, (4, 9))
    y, yv = np.zeros(16, np.int64), np.zeros(4, np.int64)
    model = bp.Sequential([bp.Embedding(8, 4, mask_zero=True, rng=0), bp.LSTM(4, 3, rng=1),
                           bp.Dense(3, 2, rng=2)])
    with pytest.raises(ValueError, match=r"sequences of 9 steps, not 6: pad them, or cut"):
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=1, progress=False,
                  optimizer=bp.SGD(model.parameters(), lr=0.1), validation_data=(xv, yv))


def test_a_mask_of_integers_other_than_0_and_1_is_a_value_error():
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    x = np.ones((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match="int64 values from 2 to 2"):
        model.forward(x, mask=np.full((2, 5), 2))
    with pytest.raises(TypeError, match="got dtype complex128"):
        model.forward(x, mask=np.ones((2, 5), complex))


@pytest.mark.parametrize("make", [lambda: bp.LayerNorm(6), lambda: bp.GroupNorm(1, 6),
                                  lambda: bp.InstanceNorm1D(1)])
def test_norm_of_huge_tightly_grouped_values_is_centred_twice(make):
    """|mean| ~1e25 with a spread of one float32 step: the far-row test squared the mean
    (inf > inf), so the row was neither centred twice nor widened and the output came out
    finite and wrong ([1.095, ..., 0, ...] for [0.447, ..., -2.236, ...])."""
    a = np.float32(-9.641392e24)
    b = np.nextafter(a, np.float32(-np.inf))
    x = np.array([[a, a, a, b, a, a]], np.float32)
    x = x if isinstance(make(), bp.LayerNorm) else x.reshape(1, -1, 6)[:, :1]
    layer = make()
    y = layer.forward(x if not isinstance(layer, bp.GroupNorm) else x.reshape(1, 6, 1))
    want = np.array([0.4472136] * 3 + [-2.236068] + [0.4472136] * 2, np.float32)
    np.testing.assert_allclose(y.reshape(-1), want, rtol=1e-5)


def test_batchnorm_of_a_huge_tightly_grouped_channel_is_centred_twice():
    a = np.float32(-9.641392e24)
    b = np.nextafter(a, np.float32(-np.inf))
    x = np.array([a, a, a, b, a, a], np.float32).reshape(6, 1)
    y = bp.BatchNorm(1).forward(x, training=True)
    np.testing.assert_allclose(y[:, 0], [0.4472136] * 3 + [-2.236068] + [0.4472136] * 2,
                               rtol=1e-5)


class _Aliased(bp.Layer):
    """State under two names (an attribute and a dict entry), in a tuple, a Generator in a
    list and a lock: nothing a probe forward may swap or fail on."""

    def __init__(self, *, dtype=np.float32):
        import threading

        super().__init__(dtype=dtype)
        self._mean = np.zeros(3, np.float32)
        self.stats = {"mean": self._mean, "lock": threading.Lock()}
        self.pair = (np.zeros(3, np.float32), [0])
        self.rngs = [np.random.default_rng(0)]

    def forward(self, x, *, training=False):
        self._mean[...] = x.mean(0)
        self.pair[0][...] = 1.0
        self.pair[1].append(1)
        return x - self._mean


def test_probe_forwards_put_state_back_into_the_same_objects():
    """4b8f077 refilled dicts and lists with deep copies: an array under two names became
    two arrays, two names of one Generator two Generators, and a lock could not be copied
    (summary and fit failed, blaming the data). Values are now written back into the
    same objects, tuples included."""
    layer = _Aliased()
    ids = (id(layer._mean), id(layer.stats["mean"]), id(layer.rngs[0]), id(layer.pair[0]))
    model = bp.Sequential([bp.Dense(3, 3, rng=0), layer])
    model.summary(input_shape=(3,))
    assert ids == (id(layer._mean), id(layer.stats["mean"]), id(layer.rngs[0]),
                   id(layer.pair[0]))
    assert layer.stats["mean"] is layer._mean
    np.testing.assert_array_equal(layer._mean, 0.0)
    np.testing.assert_array_equal(layer.pair[0], 0.0)
    assert layer.pair[1] == [0]


def test_a_parameter_added_is_refused_while_any_model_holding_the_layer_lives():
    """The registry kept the last model only: a layer also put in a second, dropped model
    took a lazy parameter inside the first, live one (its fit then crashed)."""
    import gc

    layer = _Lazy()
    first = bp.Sequential([bp.Dense(3, 3, rng=0), layer])
    bp.Sequential([layer])  # built and dropped
    gc.collect()
    with pytest.raises(RuntimeError, match="expected parameters registered in __init__"):
        first.forward(np.ones((2, 3), np.float32))


class _Head(bp.Container):
    """A container of one's own ending in Sigmoid."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.fc, self.act = bp.Dense(3, 2, rng=0, dtype=dtype), bp.Sigmoid(dtype=dtype)

    def children(self):
        return [("fc", self.fc), ("act", self.act)]

    def forward(self, x, *, training=False):
        return self.act.forward(self.fc.forward(x, training=training), training=training)

    def backward(self, dy):
        return self.fc.backward(self.act.backward(dy))


def test_training_output_kept_inside_a_container_of_ones_own_is_read_only():
    model = bp.Sequential([_Head()])
    y = model.forward(np.ones((4, 3), np.float32), training=True)
    with pytest.raises(ValueError, match="read-only"):
        y -= 1.0


@pytest.mark.parametrize("inside", [False, True])
def test_check_gradients_refuses_a_parameter_made_at_the_first_forward(inside):
    """check_gradients listed the parameters before its copies' forwards made W, so a
    lazy layer's wrong backward of W passed unchecked."""
    layer = _Lazy(dtype=np.float64)
    f = bp.Sequential([bp.Dense(3, 3, rng=0, dtype=np.float64), layer]) if inside else layer
    with pytest.raises(RuntimeError, match=r"added at its first forward"):
        bp.check_gradients(f, np.random.default_rng(0).standard_normal((2, 3)))


def test_a_sequential_subclass_with_eq_can_be_built():
    """The add_param registry's WeakSet hashed the model: a Sequential subclass defining
    __eq__ (no hash) could not be built. It is keyed by identity now."""

    class Named(bp.Sequential):
        def __eq__(self, other):
            return isinstance(other, Named)

    model = Named([bp.Dense(2, 2, rng=0)])
    assert model.forward(np.ones((1, 2), np.float32)).shape == (1, 2)
