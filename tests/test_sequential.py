"""Sequential: container protocol, flat buffers, summary, training step."""

from __future__ import annotations

import copy
import inspect
import re

import numpy as np
import pytest

import backprop as bp


def _mlp(dtype=np.float32):
    return bp.Sequential([bp.Dense(2, 16, dtype=dtype, rng=0), bp.Tanh(dtype=dtype),
                          bp.Dense(16, 3, dtype=dtype, rng=1)])


def test_container_protocol():
    model = _mlp()
    assert len(model) == 3
    assert isinstance(model[1], bp.Tanh)
    assert [type(layer).__name__ for layer in model] == ["Dense", "Tanh", "Dense"]
    assert len(model[1:]) == 2
    assert repr(model).startswith("Sequential([\n  (0) Dense(2, 16)")


def test_parameters_are_views_of_one_flat_buffer():
    model = _mlp()
    params = model.parameters()
    assert [p.name for p in params] == ["0.W", "0.b", "2.W", "2.b"]
    assert model.flat_params.size == model.num_params == 2 * 16 + 16 + 16 * 3 + 3
    for p in params:
        assert np.shares_memory(p.value, model.flat_params)
        assert np.shares_memory(p.grad, model.flat_grads)
    model.flat_params[:] = 0.5
    assert np.all(model[0].params["W"] == 0.5)


def test_flattening_preserves_initial_weights():
    w = bp.Dense(2, 3, rng=7).params["W"].copy()
    np.testing.assert_array_equal(bp.Sequential([bp.Dense(2, 3, rng=7)])[0].params["W"], w)


def test_forward_casts_input_once_to_the_model_dtype():
    model = _mlp()
    assert model.forward(np.ones((4, 2), dtype=np.float64)).dtype == np.float32
    assert model.forward([[1, 2]]).dtype == np.float32
    assert _mlp(np.float64).forward(np.ones((4, 2), np.float32)).dtype == np.float64


def test_training_backward_skips_the_input_gradient_but_fills_all_grads():
    model, loss = _mlp(np.float64), bp.SoftmaxCrossEntropy()
    x, y = np.random.default_rng(0).standard_normal((5, 2)), np.array([0, 1, 2, 0, 1])
    loss.forward(model.forward(x, training=True), y)
    dx = model.backward(loss.backward())
    full = model.flat_grads.copy()
    loss.forward(model.forward(x, training=True), y)
    assert model.backward(loss.backward(), input_grad=False) is None
    np.testing.assert_array_equal(model.flat_grads, full)
    assert dx.shape == x.shape and not model.has_cache


def test_summary_lists_shapes_and_counts():
    text = str(_mlp().summary())
    assert "(0) Dense(2, 16)" in text and "(N, 16)" in text and "(N, 3)" in text
    assert "Total trainable parameters: 99" in text
    assert "<table>" in _mlp().summary()._repr_html_()


def test_add_appends_and_reflattens():
    model = bp.Sequential([bp.Dense(2, 4, rng=0)])
    model.add(bp.ReLU())
    model.add(bp.Dense(4, 1, rng=1))
    assert len(model) == 3 and model.flat_params.size == 2 * 4 + 4 + 4 + 1
    assert np.shares_memory(model[2].params["W"], model.flat_params)


def test_astype_gives_an_equal_float64_model():
    model = _mlp()
    m64 = model.astype(np.float64)
    assert m64.dtype == np.float64 and m64.flat_params.dtype == np.float64
    x = np.random.default_rng(0).standard_normal((3, 2))
    np.testing.assert_allclose(m64.forward(x), model.forward(x), rtol=1e-5, atol=1e-6)
    assert np.shares_memory(m64[0].params["W"], m64.flat_params)


def _spiral(n_per_class: int, classes: int, rng: np.random.Generator):
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.1, n_per_class)
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def test_two_layer_mlp_fits_64_spiral_points_exactly():
    """Done-when of the core: a 2-layer MLP fits 64 points of a 3-class spiral to 100%."""
    x, y = _spiral(22, 3, np.random.default_rng(0))
    x, y = x[:64], y[:64]
    model = bp.Sequential([bp.Dense(2, 64, init="he_uniform", rng=0), bp.ReLU(),
                           bp.Dense(64, 3, rng=1)])
    loss = bp.SoftmaxCrossEntropy()
    for _ in range(3000):  # full-batch gradient descent, written out by hand
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        model.flat_params -= 0.5 * model.flat_grads
    accuracy = np.mean(model.forward(x).argmax(1) == y)
    assert accuracy == 1.0


def test_summary_without_known_input_shows_question_marks():
    model = bp.Sequential([bp.ReLU(), bp.Dense(2, 2)])
    assert "?" in str(model.summary())
    assert "(N, 2)" in str(model.summary(input_shape=(2,)))


def test_empty_model_is_identity():
    model = bp.Sequential()
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(model.forward(x), x)
    with pytest.raises(TypeError):
        model.add("not a layer")


def test_nested_model_flat_buffers_are_slices_of_the_outer_ones():
    inner = bp.Sequential([bp.Dense(3, 3, rng=0), bp.Tanh(), bp.Dense(3, 3, rng=1)])
    outer = bp.Sequential([bp.Dense(2, 3, rng=2), bp.Residual(inner), bp.Dense(3, 1, rng=3)])
    assert inner.flat_params.size == inner.num_params
    assert np.shares_memory(inner.flat_params, outer.flat_params)
    inner.flat_params[...] = 7.0
    assert np.all(inner[0].params["W"] == 7.0) and np.all(outer[1].block[2].params["b"] == 7.0)
    opt = bp.SGD(inner.parameters(), lr=0.1)  # one vectorised group over the inner slice
    assert len(opt._groups) == 1 and np.shares_memory(opt._groups[0][0], outer.flat_params)


def test_a_layer_object_at_two_places_is_refused_with_both_places_named():
    relu = bp.ReLU()
    with pytest.raises(ValueError, match=r"same ReLU object at layer 1 and at layer 3"):
        bp.Sequential([bp.Dense(4, 4), relu, bp.Dense(4, 4), relu])
    dense = bp.Dense(4, 4)
    with pytest.raises(ValueError, match=r"same Dense object at layer 0 and at layer 2.block"):
        bp.Sequential([dense, bp.Tanh(), bp.Residual(dense)])
    inner = bp.Sequential([bp.Dense(4, 4), bp.ReLU()])
    with pytest.raises(ValueError, match=r"same Sequential object at layer 0 and at layer 1"):
        bp.Sequential([inner, inner])


def test_add_refuses_a_layer_already_in_the_model_or_the_model_itself():
    model = bp.Sequential([bp.Dense(4, 4), bp.ReLU()])
    before = model.flat_params.copy()
    for bad in (model, model[1]):
        with pytest.raises(ValueError, match="Sequential.add: expected each layer object once"):
            model.add(bad)
        assert len(model) == 2
    np.testing.assert_array_equal(model.flat_params, before)
    model.add(bp.ReLU())  # a new instance is fine
    assert len(model) == 3


@pytest.mark.parametrize("bad,match", [
    (np.array([[None] * 4]), "got dtype object"),
    (np.ones((2, 4), complex), "got dtype complex128"),
    ("abcd", "got dtype <U4"),
    ([[1.0, 2.0], [3.0]], "NumPy cannot read as one"),
])
def test_forward_refuses_input_that_is_not_real_numbers(bad, match):
    model = bp.Sequential([bp.Dense(4, 3)])
    with pytest.raises(TypeError, match=f"Sequential: expected input .*{match}"):
        model.forward(bad)


def test_forward_still_casts_ints_bools_and_lists():
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    want = model.forward(np.array([[1.0, 0.0, 2.0, 1.0]], np.float32))
    for x in (np.array([[1, 0, 2, 1]]), [[1, 0, 2, 1]], np.array([[1.0, 0, 2, 1]])):
        np.testing.assert_array_equal(model.forward(x), want)
    assert model.forward(np.array([[True, False, True, True]])).dtype == np.float32


def test_arrays_replaced_by_flattening_become_read_only():
    dense = bp.Dense(4, 3, rng=0)
    w_old, g_old = dense.params["W"], dense.grads["W"]
    model = bp.Sequential([dense, bp.ReLU()])
    assert not w_old.flags.writeable and not g_old.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        w_old[...] = 0  # a dead copy: writing it would change nothing the model uses
    assert dense.params["W"].flags.writeable and np.shares_memory(dense.params["W"],
                                                                   model.flat_params)
    np.testing.assert_array_equal(dense.params["W"], w_old)


def test_an_optimizer_made_before_the_model_was_assembled_refuses_to_step():
    enc = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU()])
    opt = bp.Adam(enc.parameters(), lr=0.1)
    model = bp.Sequential([enc, bp.Dense(8, 3, rng=1)])
    loss = bp.SoftmaxCrossEntropy()
    x, y = np.ones((5, 4), np.float32), np.arange(5) % 3
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())
    before = model.flat_params.copy()
    with pytest.raises(RuntimeError, match="Adam"):
        opt.step()
    np.testing.assert_array_equal(model.flat_params, before)


def test_flat_params_assignment_checks_what_it_copies():
    model = bp.Sequential([bp.Dense(3, 3, rng=0), bp.Dense(3, 1, rng=1)])  # 16 parameters
    before = model.flat_params.copy()
    for bad, error, message in [
        (None, TypeError, "expected real numbers, got dtype object"),
        (np.float32(7), ValueError, r"expected 16 values of shape \(16,\) .*got shape \(\)"),
        (np.zeros(3), ValueError, r"expected 16 values .*got shape \(3,\)"),
        (np.zeros((2, 8)), ValueError, r"expected 16 .*got shape \(2, 8\)"),
        (np.zeros(16, complex), TypeError, "expected real numbers, got dtype complex128"),
        (["a"] * 16, TypeError, "expected real numbers, got dtype <U1"),
    ]:
        with pytest.raises(error, match="Sequential.flat_params: " + message):
            model.flat_params = bad
    assert np.array_equal(model.flat_params, before)  # nothing was written
    model.flat_params = np.arange(16)  # ints are cast, as before
    assert model.flat_params.dtype == np.float32 and model.flat_params[5] == 5.0
    with pytest.raises(ValueError, match="expected a model with parameters, got one without"):
        bp.Sequential([bp.ReLU()]).flat_params = np.zeros(0)


def test_indexing_names_the_allowed_range_and_refuses_other_keys():
    model = bp.Sequential([bp.Dense(2, 2), bp.ReLU(), bp.Dense(2, 1)])
    assert model[-3] is model.layers[0] and model[np.int64(2)] is model.layers[2]
    for index in (3, -4):
        with pytest.raises(IndexError, match=rf"expected a layer index in \[-3, 3\), got {index}"):
            model[index]
    for key in ("0", True, 1.0, None):
        with pytest.raises(TypeError, match="expected an int index or a slice, got"):
            model[key]
    assert [type(layer).__name__ for layer in model] == ["Dense", "ReLU", "Dense"]


@pytest.mark.parametrize("shape, error", [
    ((None, 4), TypeError), ("4", TypeError), ((-1, 4), ValueError), ((), ValueError),
])
def test_summary_rejects_a_bad_input_shape_by_name(shape, error):
    model = bp.Sequential([bp.Flatten(), bp.Dense(4, 2)])
    with pytest.raises(error, match=r"Sequential.summary: expected input_shape as a tuple of "
                                    r"positive ints"):
        model.summary(shape)
    assert "(N, 2)" in str(model.summary(4))  # a bare int is one axis, as in bp.bench


def test_fit_evaluate_predict_save_show_the_signatures_and_docs_of_what_they_call():
    """help(model.fit) and editors list every argument, not ``**kwargs``."""
    from backprop import serialization, training

    model = bp.Sequential([bp.Dense(2, 3)])
    for method, func in ((model.fit, training.fit), (model.evaluate, training.evaluate),
                         (model.predict, training.predict), (model.save, serialization.save)):
        want = list(inspect.signature(func).parameters.values())[1:]  # without the model
        assert list(inspect.signature(method).parameters.values()) == want
        assert "kwargs" not in inspect.signature(method).parameters
        doc = method.__doc__  # the function's, its model being self: no 'model:' entry
        assert doc and "``model``" not in doc
        entry = re.compile(r"\n\s+model: ")  # (Python 3.13 dedents docstrings)
        assert entry.search(func.__doc__) and not entry.search(doc)
        assert len(doc) > 0.9 * len(func.__doc__)
    with pytest.raises(TypeError, match="epoch"):  # a misspelt keyword still fails loudly
        model.fit(np.zeros((2, 2), np.float32), np.zeros(2, np.int64), epoch=1,
                  loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1))


def _bn_model(seed):
    return bp.Sequential([bp.Dense(4, 8, rng=seed), bp.BatchNorm(8), bp.ReLU(),
                          bp.Dense(8, 3, rng=seed + 1)])


def test_state_dict_round_trip_into_another_model_in_place():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    src = _bn_model(0)
    src.forward(x, training=True)  # moves the running statistics off their defaults
    state = src.state_dict()
    assert list(state) == ["0.W", "0.b", "1.gamma", "1.beta", "3.W", "3.b",
                           "1.running_mean", "1.running_var"]
    state["0.W"][...] = 7.0  # a copy: the model is untouched
    assert not np.any(src.params["0.W"] == 7.0)
    state = src.state_dict()

    dst = _bn_model(5)
    before = {k: v for k, v in dst.params.items()}  # the arrays optimizers hold
    opt = bp.SGD(dst.parameters(), lr=0.1)
    assert dst.load_state_dict(state) == ([], [])
    for k, v in {**src.params, **src.buffers}.items():
        np.testing.assert_array_equal({**dst.params, **dst.buffers}[k], v)
    assert all(dst.params[k] is v for k, v in before.items())
    np.testing.assert_array_equal(dst.flat_params, src.flat_params)  # views of the flat buffer
    np.testing.assert_array_equal(dst.predict(x), src.predict(x))
    for g in dst.grads.values():
        g[...] = 1.0
    opt.step()  # still updates the model's own weights
    np.testing.assert_allclose(dst.params["3.b"], src.params["3.b"] - 0.1)


def test_load_state_dict_casts_float64_and_loads_partial_states_when_not_strict():
    layer = bp.Dense(2, 3, rng=0)
    w = np.arange(6, dtype=np.float64).reshape(2, 3) / 3
    keys = layer.load_state_dict({"W": w}, strict=False)
    assert keys.missing_keys == ["b"] and keys.unexpected_keys == []
    assert layer.params["W"].dtype == np.float32
    np.testing.assert_array_equal(layer.params["W"], w.astype(np.float32))
    keys = layer.load_state_dict({"W": w, "b": [1, 2, 3], "extra": 0}, strict=False)
    assert keys == ([], ["extra"])
    np.testing.assert_array_equal(layer.params["b"], [1, 2, 3])


@pytest.mark.parametrize("bad, error, match", [
    ([("W", 1)], TypeError, "expected a mapping"),
    ({"W": np.zeros((2, 3))}, ValueError, r"missing \['b'\]"),
    ({"W": np.zeros((2, 3)), "b": np.zeros(3), "c": 1}, ValueError, r"unexpected \['c'\]"),
    ({"W": np.zeros((3, 2)), "b": np.zeros(3)}, ValueError, r"'W' of shape \(2, 3\), got \(3, 2\)"),
    ({"W": np.zeros((2, 3), complex), "b": np.zeros(3)}, TypeError, "complex128"),
    ({"W": np.full((2, 3), "a"), "b": np.zeros(3)}, TypeError, "castable to float32"),
    ({"W": [[1, 2], [3]], "b": np.zeros(3)}, TypeError, "expected an array for 'W'"),
    ({"W": np.zeros((2, 3)), "b": np.zeros(4)}, ValueError, r"'b' of shape \(3,\)"),  # W first
])
def test_load_state_dict_refuses_bad_states_before_writing_anything(bad, error, match):
    layer = bp.Dense(2, 3, rng=0)
    layer.params["b"][...] = 5.0
    before = layer.state_dict()
    with pytest.raises(error, match=match) as info:
        layer.load_state_dict(bad)
    assert "Dense(2, 3).load_state_dict" in str(info.value)
    for k, v in before.items():  # a valid b (zeros) is not written either
        np.testing.assert_array_equal(layer.params[k], v)
    with pytest.raises(TypeError, match="strict"):
        layer.load_state_dict(before, strict="no")


def test_assigning_a_parameter_writes_into_the_array_optimizers_train():
    """``layer.params["W"] = new`` (a PyTorch/Keras habit) used to rebind the name: the
    optimizer kept training the old array while forward used the new one."""
    model = bp.Sequential([bp.Dense(2, 2, rng=0), bp.ReLU(), bp.Dense(2, 1, rng=1)])
    opt = bp.SGD(model.parameters(), lr=0.5)
    w = model[0].params["W"]
    model[0].params["W"] = np.array([[1, 2], [3, 4]], np.float64)  # cast into float32
    model.params["2.b"] = [0.25]  # the model's merged dict writes into the layer's array
    model[2].params.update(W=np.ones((2, 1)))
    assert model[0].params["W"] is w and w.dtype == np.float32
    np.testing.assert_array_equal(model.flat_params[:4], [1, 2, 3, 4])
    np.testing.assert_array_equal(model[2].params["b"], [0.25])
    np.testing.assert_array_equal(model[2].params["W"], np.ones((2, 1)))
    x = np.array([[1.0, 1.0]], np.float32)
    loss = bp.MeanSquaredError()
    loss.forward(model.forward(x, training=True), np.zeros((1, 1), np.float32))
    model.backward(loss.backward())
    opt.step()
    assert not np.array_equal(model[0].params["W"], [[1, 2], [3, 4]])  # it trains
    with pytest.raises(ValueError, match=r"Dense: params: expected 'W' of shape \(2, 2\)"):
        model[0].params["W"] = np.zeros((3, 3))
    with pytest.raises(TypeError, match="castable to float32"):
        model[0].params["b"] = np.zeros(2, complex)
    with pytest.raises(KeyError, match="add_param"):
        model.params["extra"] = np.zeros(2)
    # the library's own re-homing still rebinds: astype and copies get their own arrays
    copy64 = model.astype(np.float64)
    assert copy64[0].params["W"].dtype == np.float64
    np.testing.assert_array_equal(copy64.flat_params, model.flat_params)


def test_summary_gives_a_nested_block_indented_rows_of_its_own():
    model = bp.Sequential([bp.Dense(4, 4), bp.Residual(bp.Sequential([bp.Dense(4, 4), bp.ReLU()])),
                           bp.Residual(bp.Dense(4, 4)), bp.Dense(4, 2)])
    lines = str(model.summary()).splitlines()
    assert [line.strip().split("  ")[0] for line in lines[2:9]] == [
        "(0) Dense(4, 4)", "(1) Residual", "(1.block) Sequential", "(1.block.0) Dense(4, 4)",
        "(1.block.1) ReLU()", "(2) Residual(Dense(4, 4))", "(3) Dense(4, 2)"]
    assert len({len(line) for line in lines[:9]}) == 1  # one aligned table
    assert lines[-1].endswith(f"{model.num_params}")


def test_deepcopy_and_pickle_give_a_model_with_its_own_flat_buffer():
    """copy.deepcopy(model) (a PyTorch habit for a best-model snapshot) copied every
    array on its own: the copy's flat_params was None and fit refused it."""
    import copy
    import pickle

    model = bp.Sequential([bp.Dense(2, 3, rng=0), bp.Residual(bp.Sequential([bp.Dense(3, 3)])),
                           bp.BatchNorm(3)])
    before = model.flat_params.copy()
    x, y = np.random.default_rng(0).random((8, 2), dtype=np.float32), np.arange(8) % 3
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(clone.flat_params, before)
        for p in clone.parameters():  # every parameter a view of the clone's own buffer
            assert np.shares_memory(p.value, clone.flat_params)
            assert not np.shares_memory(p.value, model.flat_params)
        clone.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(clone.parameters(),
                  lr=0.5), epochs=2, progress=False)
        assert not np.array_equal(clone.flat_params, before)
    np.testing.assert_array_equal(model.flat_params, before)  # the original is untouched


def test_array_dicts_write_in_place_through_every_door_and_stay_cheap_to_copy():
    import copy
    import gc
    import weakref

    model = bp.Sequential([bp.Dense(2, 2, rng=0), bp.Dense(2, 1, rng=1)])
    w = model[0].params["W"]
    model[0].params |= {"W": np.full((2, 2), 3.0)}  # dict's |= would have rebound it
    assert model[0].params["W"] is w and np.all(w == 3.0)
    before = model.flat_params.copy()
    with pytest.raises(KeyError, match="add_param"):  # checked before anything is written
        model.params.update({"0.b": [9.0, 9.0], "nope": 1.0})
    with pytest.raises(ValueError, match="'b' of shape"):
        model[1].params.update(W=np.zeros((2, 1)), b=np.zeros(3))
    np.testing.assert_array_equal(model.flat_params, before)
    merged = copy.deepcopy(model.params)  # copies of the merged view are plain dicts
    assert type(merged) is dict and merged["0.W"] is not w
    assert type(copy.copy(model.buffers)) is dict

    shallow = copy.copy(model)  # shares the layers: the original's optimizer still steps
    opt = bp.SGD(model.parameters(), lr=0.1)
    assert shallow.flat_params is not None
    opt.step()

    ref = weakref.ref(model[0])  # no reference cycle: a dropped model is freed at once
    gc.disable()
    try:
        del model, shallow, opt, w
        assert ref() is None
    finally:
        gc.enable()


def test_a_user_layer_with_plain_dicts_gets_in_place_assignment_in_a_model():
    class Scale(bp.Layer):
        def __init__(self):
            super().__init__()
            self.params = {"s": np.ones(3, np.float32)}  # plain dicts, as DESIGN allows
            self.grads = {"s": np.zeros(3, np.float32)}

        def forward(self, x, *, training=False):
            return x * self.params["s"]

    model = bp.Sequential([Scale()])
    s = model[0].params["s"]
    model[0].params["s"] = [2.0, 2.0, 2.0]
    assert model[0].params["s"] is s and np.shares_memory(s, model.flat_params)
    np.testing.assert_array_equal(model.flat_params, [2, 2, 2])


def test_load_state_dict_of_the_models_own_arrays_swapped_and_odd_keys():
    model = bp.Sequential([bp.Dense(2, 2, rng=0), bp.Dense(2, 2, rng=1)])
    w0, w1 = model[0].params["W"].copy(), model[1].params["W"].copy()
    swapped = {**model.params, "0.W": model[1].params["W"], "1.W": model[0].params["W"]}
    model.load_state_dict(swapped)  # sources copied first: no layer reads a half-written one
    np.testing.assert_array_equal(model[0].params["W"], w1)
    np.testing.assert_array_equal(model[1].params["W"], w0)
    keys = model.load_state_dict({**model.state_dict(), 0: 1, "z": 2}, strict=False)
    assert keys.unexpected_keys == [0, "z"]  # as given, not turned into strings


def test_layers_without_state_take_the_model_dtype_and_layers_with_state_must_match():
    relu, pool = bp.ReLU(), bp.MaxPool1D(2)
    model = bp.Sequential([pool, bp.Flatten(), bp.Dense(4, 2, dtype=np.float64, rng=0), relu,
                           bp.Sequential([bp.Tanh(), bp.Dropout(0.2, rng=0)])])
    assert model.dtype == np.float64  # the first layer with parameters decides
    assert relu.dtype == pool.dtype == np.float64
    assert all(layer.dtype == np.float64 for _, layer in model.named_layers())
    x = np.random.default_rng(0).standard_normal((3, 1, 8))
    assert model.forward(x, training=True).dtype == np.float64
    assert bp.check_gradients(bp.Sequential([bp.Dense(3, 2, dtype=np.float64, rng=0),
                                             bp.Sigmoid()]), x[:, 0, :3]).passed
    model.add(bp.GELU())
    assert model[-1].dtype == np.float64
    relu2 = bp.ReLU()
    with pytest.raises(TypeError, match=r"expected every layer in float64, got layer 2 "
                                        r"BatchNorm\(2\) in float32"):
        bp.Sequential([bp.Dense(4, 2, dtype=np.float64), relu2, bp.BatchNorm(2)])
    assert relu2.dtype == np.float32  # a model that is refused recasts nothing
    with pytest.raises(ValueError):  # the same layer twice: refused, nothing recast
        bp.Sequential([bp.Dense(4, 2, dtype=np.float64), relu2, relu2])
    assert relu2.dtype == np.float32

    class Scale(bp.Layer):  # a user's layer: its dtype is the user's choice, never changed
        def forward(self, x, *, training=False):
            return 2 * x

        def backward(self, dy):
            return 2 * dy

    with pytest.raises(TypeError, match="got layer 1 Scale"):
        bp.Sequential([bp.Dense(4, 2, dtype=np.float64), Scale()])


def test_layers_may_be_given_as_separate_arguments_as_in_pytorch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    listed = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 2, rng=1)])
    spread = bp.Sequential(bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 2, rng=1))
    assert repr(spread) == repr(listed)
    np.testing.assert_array_equal(spread.forward(x), listed.forward(x))
    inner = bp.Sequential(bp.Dense(4, 4, rng=0))
    assert bp.Sequential(inner).layers == [inner]  # one model: nested, as in PyTorch
    with pytest.raises(TypeError, match=r"^Sequential: expected the layers as one list or as "
                                        r"separate arguments, got a list followed by 1 more"):
        bp.Sequential([bp.Dense(4, 8)], bp.ReLU())
    with pytest.raises(TypeError, match=r"^Sequential: expected a list of layers, got int$"):
        bp.Sequential(5)


def test_a_layer_class_instead_of_a_layer_says_to_create_one():
    with pytest.raises(TypeError, match=r"expected layer 1 to be a backprop Layer, got the "
                                        r"class ReLU itself; create one: ReLU\(\.\.\.\)"):
        bp.Sequential([bp.Dense(4, 8), bp.ReLU])


class _Scale(bp.Layer):
    """A user's layer that registers its weight by assignment, not add_param."""

    def __init__(self, n, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.n = n
        self.params["a"] = np.linspace(0.5, 1.5, n).astype(dtype)

    def forward(self, x, *, training=False):
        if training:
            self._x = x
        return x * self.params["a"]

    def backward(self, dy):
        x, self._x = self._x, None
        np.sum(dy * x, axis=0, out=self.grads["a"])
        return dy * self.params["a"]


def test_a_parameter_assigned_into_params_gets_its_gradient_buffer_as_with_add_param():
    """``self.params["a"] = ...`` used to leave grads without "a": a bare KeyError."""
    layer = _Scale(3, dtype=np.float64)
    assert list(layer.grads) == ["a"] and not layer.grads["a"].any()
    assert bp.check_gradients(layer, np.random.default_rng(0).standard_normal((4, 3)))
    model = bp.Sequential([_Scale(3), bp.Dense(3, 2, rng=0)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    before = model.params["0.a"].copy()
    model.fit(np.ones((8, 3), np.float32), np.zeros(8, int), loss=bp.SoftmaxCrossEntropy(),
              optimizer=opt, epochs=1, progress=False)
    assert not np.array_equal(model.params["0.a"], before)  # it trains
    copied = copy.deepcopy(_Scale(2))
    copied.params["b"] = np.ones(4, np.float32)  # a copy keeps the link to its own grads
    assert list(copied.grads) == ["a", "b"]


def test_a_built_in_layers_params_refuse_a_new_or_removed_name(tmp_path):
    """A typo (``params["w"]`` for ``"W"``) used to add an array nothing used, leave the
    model without a flat buffer and make save write a file load refused."""
    model = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 3, rng=1)])
    model.save(tmp_path / "good.npz")
    before = model.flat_params.copy()
    with pytest.raises(KeyError, match=r"Dense: params has no 'w': its parameters are "
                                       r"\['W', 'b'\]"):
        model[0].params["w"] = np.zeros((4, 8), np.float32)
    for remove in (lambda p: p.__delitem__("b"), lambda p: p.pop("b"), lambda p: p.clear(),
                   lambda p: p.popitem()):
        with pytest.raises(TypeError, match=r"Dense: params cannot lose '[Wb]'"):
            remove(model[0].params)
    with pytest.raises(TypeError, match="cannot lose"):
        del model.params["0.W"]
    assert list(model[0].params) == ["W", "b"] and model.flat_params is not None
    np.testing.assert_array_equal(model.flat_params, before)
    model.save(tmp_path / "good.npz")
    np.testing.assert_array_equal(bp.load(tmp_path / "good.npz").flat_params, before)
    copied = copy.deepcopy(model[2])  # copies stay closed
    with pytest.raises(KeyError, match="has no 'B'"):
        copied.params["B"] = np.zeros(3, np.float32)


def test_fit_on_a_model_whose_layers_a_later_model_took_says_so():
    model = bp.Sequential([bp.Dense(4, 8, rng=0), bp.ReLU(), bp.Dense(8, 2, rng=1)])
    bp.Sequential([model[0], model[1], bp.Dense(8, 3, rng=2)])  # takes model[0]'s arrays
    with pytest.raises(ValueError, match=r"^fit: expected a model whose parameters are its "
                                         r"own \(one flat buffer\), got one whose layers "
                                         r"were also put into a "
                                         r"model built later.*copy\.deepcopy\(layer\)$"):
        model.fit(np.ones((8, 4), np.float32), np.zeros(8, int), loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)
