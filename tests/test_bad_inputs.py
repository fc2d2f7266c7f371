"""Bad input gets a clear error that names who, what was expected and what was received."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_dense_wrong_width_names_expected_and_received():
    with pytest.raises(ValueError, match=r"Dense\(64, 128\): expected input of shape "
                                         r"\(N, 64\), got \(32, 63\)"):
        bp.Dense(64, 128).forward(np.zeros((32, 63), np.float32))


def test_dense_wrong_ndim():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4\), got \(4,\)"):
        bp.Dense(4, 2).forward(np.zeros(4, np.float32))


def test_dense_wrong_dtype():
    with pytest.raises(TypeError, match=r"Dense\(4, 2\): expected input of dtype float32, "
                                        r"got float64"):
        bp.Dense(4, 2).forward(np.zeros((3, 4)))


def test_layer_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected input as an array, got list"):
        bp.Dense(2, 2).forward([[1.0, 2.0]])


def test_dense_rejects_bad_sizes_and_initializers():
    with pytest.raises(ValueError, match="expected in_features >= 1, got 0"):
        bp.Dense(0, 3)
    with pytest.raises(TypeError, match="expected out_features to be a positive int"):
        bp.Dense(3, 2.5)
    with pytest.raises(ValueError, match=r"expected the initializer of 'W' as a name in "):
        bp.Dense(3, 2, init="nope")
    with pytest.raises(ValueError, match=r"expected the initializer of 'b' as a name in .* "
                                         r"got 'nope'"):
        bp.Dense(3, 2, bias_init="nope")
    with pytest.raises(TypeError, match="expected a floating dtype"):
        bp.Dense(3, 2, dtype=np.int32)


def test_labels_out_of_range():
    loss = bp.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"expected class indices in \[0, 3\), got values "
                                         r"from 0 to 3"):
        loss.forward(np.zeros((2, 3), np.float32), np.array([0, 3]))


def test_negative_labels():
    with pytest.raises(ValueError, match="got values from -1 to 1"):
        bp.SoftmaxCrossEntropy().forward(np.zeros((2, 3), np.float32), np.array([-1, 1]))


def test_label_count_differs_from_batch():
    with pytest.raises(ValueError, match=r"expected 4 class indices of shape \(4,\) for "
                                         r"logits \(4, 3\), got \(3,\)"):
        bp.SoftmaxCrossEntropy().forward(np.zeros((4, 3), np.float32), np.array([0, 1, 2]))


def test_float_labels_are_a_type_error_with_a_hint():
    with pytest.raises(TypeError, match=r"expected integer class indices.*astype\(int\)"):
        bp.SoftmaxCrossEntropy().forward(np.zeros((2, 3), np.float32), np.array([0.0, 1.0]))


def test_regression_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"expected target of shape \(4, 2\), got \(4, 3\)"):
        bp.MeanSquaredError().forward(np.zeros((4, 2), np.float32), np.zeros((4, 3)))


def test_bce_targets_outside_unit_interval():
    with pytest.raises(ValueError, match=r"expected targets in \[0, 1\]"):
        bp.BinaryCrossEntropyWithLogits().forward(np.zeros((2, 1), np.float32),
                                                  np.array([[0.0], [2.0]]))


def test_loss_with_fixed_dtype_rejects_other_outputs():
    with pytest.raises(TypeError, match="expected output of dtype float64, got float32"):
        bp.MeanSquaredError(dtype=np.float64).forward(np.zeros((2, 1), np.float32),
                                                       np.zeros((2, 1)))


def test_bad_hyperparameters_name_the_value():
    with pytest.raises(ValueError, match=r"label_smoothing in \[0.0, 1.0\] \(finite\), "
                                         r"got 1.5"):
        bp.SoftmaxCrossEntropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"delta in \(0.0, inf[\])]( \(finite\))?, got -1"):
        bp.Huber(-1)
    with pytest.raises(ValueError, match=r"LeakyReLU: expected negative_slope in \(-inf, inf\) "
                                         r"\(finite\), got nan"):
        bp.LeakyReLU(float("nan"))
    with pytest.raises(ValueError, match=r"ELU: expected alpha .*got inf"):
        bp.ELU(float("inf"))
    with pytest.raises(ValueError, match=r"Dropout: expected rate in \[0.0, 1.0\] .*got 1.01"):
        bp.Dropout(1.01)


def test_sequential_rejects_non_layers_and_mixed_dtypes():
    with pytest.raises(TypeError, match="expected layer 1 to be a backprop Layer, got function"):
        bp.Sequential([bp.Dense(2, 2), lambda x: x])
    with pytest.raises(TypeError, match="expected every layer in float32, got layer 1"):
        bp.Sequential([bp.Dense(2, 2), bp.Dense(2, 2, dtype=np.float64)])


class _Uninitialised(bp.layers.Layer):
    def __init__(self):  # forgets super().__init__()
        self.scale = 2.0

    def forward(self, x, *, training=False):
        return x * self.scale

    def backward(self, dy):
        return dy * self.scale


def test_a_layer_whose_init_skips_super_init_is_named_not_an_attribute_error():
    want = r"expected {} to be an initialised Layer, got a _Uninitialised whose __init__ " \
           r"does not call super\(\).__init__\(\)"
    with pytest.raises(TypeError, match=want.format("layer 1")):
        bp.Sequential([bp.Dense(2, 2), _Uninitialised()])
    model = bp.Sequential([bp.Dense(2, 2)])
    with pytest.raises(TypeError, match=want.format("the layer")):
        model.add(_Uninitialised())
    assert len(model.layers) == 1
    with pytest.raises(TypeError, match=want.format("block")):
        bp.Residual(_Uninitialised())


@pytest.mark.parametrize("schedule", [bp.StepLR(0.1, 2), bp.ExponentialLR(0.1, 0.9),
                                      bp.CosineAnnealingLR(0.1, 10), bp.LinearWarmup(0.1, 3)])
def test_schedules_refuse_an_epoch_that_is_not_an_int_at_least_0(schedule):
    name = type(schedule).__name__
    for bad in ("3", 2.5, True, None):
        with pytest.raises(TypeError, match=f"{name}: expected epoch to be an int >= 0, got"):
            schedule(bad)
    with pytest.raises(ValueError, match=f"{name}: expected epoch >= 0, got -1"):
        schedule(-1)
    assert schedule(np.int64(2)) == schedule(2)


def test_sequential_wrong_width_names_the_layer():
    model = bp.Sequential([bp.Dense(4, 3), bp.ReLU(), bp.Dense(3, 2)])
    with pytest.raises(ValueError, match=r"Dense\(4, 3\): expected input of shape \(N, 4\)"):
        model.forward(np.zeros((2, 5)))


# -- fit: checked before the first step ------------------------------------------------------
def _bn_model(conv=False):
    if conv:
        return bp.Sequential([bp.Conv2D(1, 2, 3, padding=1, rng=0), bp.BatchNorm(2), bp.ReLU(),
                              bp.GlobalAvgPool(), bp.Dense(2, 3, rng=1)])
    inner = bp.Sequential([bp.Dense(4, 8, rng=0), bp.BatchNorm(8), bp.ReLU()])
    return bp.Sequential([inner, bp.Dense(8, 3, rng=1)])  # BatchNorm one level down


def _fit(model, n=65, **kwargs):
    rng = np.random.default_rng(0)
    shape = (n, 1, 4, 4) if isinstance(model[0], bp.Conv2D) else (n, 4)
    x, y = rng.standard_normal(shape).astype(np.float32), rng.integers(0, 3, n)
    args = dict(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), 0.1),
                epochs=1, batch_size=32, seed=0, progress=False)
    return model.fit(x, y, **{**args, **kwargs})


def test_fit_rejects_a_last_batch_of_one_sample_for_batchnorm_before_training():
    model = _bn_model()
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match=r"fit: expected training batches of 2 or more samples "
                                         r"for BatchNorm\(8\).*got 65 training sample\(s\) in "
                                         r"batches of 32, which leaves a last batch of 1; use "
                                         r"batch_size=31 or batch_size=33"):
        _fit(model)
    np.testing.assert_array_equal(model.flat_params, before)
    with pytest.raises(ValueError, match="got 52 training sample"):  # counted after the split
        _fit(_bn_model(), validation_split=0.2, batch_size=51)
    with pytest.raises(ValueError, match=r"batches of 1, .*use batch_size=3,"):
        _fit(_bn_model(), batch_size=1)


def test_fit_allows_a_last_batch_of_one_when_batchnorm_sees_more_values():
    _fit(_bn_model(), batch_size=33)  # last batch of 32
    _fit(_bn_model(conv=True))  # a batch of one image still has 16 values per channel
    frozen = bp.Sequential([bp.Dense(4, 8, rng=0), bp.BatchNorm(8, use_running_stats=True),
                            bp.Dense(8, 3, rng=1)])
    _fit(frozen)  # running statistics: no batch variance needed


def test_fit_accepts_a_single_callback_and_a_single_metric():
    h = _fit(bp.Sequential([bp.Dense(4, 3, rng=0)]), callbacks=bp.EarlyStopping("loss"),
             metrics="accuracy")
    assert "accuracy" in h.history


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(callbacks=3), TypeError, "fit: expected callbacks as a list of bp.Callback "
                                   "instances, got int"),
    (dict(metrics=3), TypeError, r"fit: expected metrics as a name, a callable .* got int"),
    (dict(sample_weight="abc"), TypeError, "fit: expected sample_weight as a real numeric "
                                           "array"),
    (dict(sample_weight=[[1.0], [1.0, 2.0]]), TypeError, "fit: expected sample_weight as a "
                                                         "numeric array, got list"),
    (dict(metrics=[lambda y, out: "0.5"]), TypeError, r"fit: expected metric '<lambda>' to "
                                                      r"return one real number, got str"),
    (dict(metrics=[lambda y, out: np.zeros(len(y))]), TypeError,
     r"return one real number, got ndarray of shape \(2,\)"),
])
def test_fit_argument_types_fail_before_training(kwargs, error, message):
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    before = model.flat_params.copy()
    with pytest.raises(error, match=message):
        _fit(model, **kwargs)
    np.testing.assert_array_equal(model.flat_params, before)


def test_metric_that_fails_on_two_samples_is_left_to_the_loop():
    def needs_a_batch(y, out):
        if len(y) < 3:
            raise ValueError("needs three")
        return 1.0

    assert _fit(bp.Sequential([bp.Dense(4, 3, rng=0)]), metrics=[needs_a_batch],
                batch_size=30).history["needs_a_batch"] == [1.0]


@pytest.mark.parametrize("make", [bp.ReduceLROnPlateau, bp.EarlyStopping])
def test_monitor_must_be_a_string(make):
    with pytest.raises(TypeError, match=r"expected monitor to be a log key \(str\), got 3"):
        make(monitor=3)


def test_ragged_nested_lists_get_a_named_error_everywhere_arrays_come_in():
    ragged, out = [[1.0, 2.0], [1.0]], np.zeros((2, 2), np.float32)
    cases = [
        ("check_gradients: expected x", lambda: bp.check_gradients(bp.Dense(2, 2), ragged)),
        (r"SoftmaxCrossEntropy\(\): expected target",
         lambda: bp.SoftmaxCrossEntropy()(out, [[0], [1, 2]])),
        (r"MeanSquaredError\(\): expected target", lambda: bp.MeanSquaredError()(out, ragged)),
        (r"MeanSquaredError\(\): expected sample_weight",
         lambda: bp.MeanSquaredError()(out, np.zeros((2, 2)), sample_weight=ragged)),
        ("accuracy: expected y_true", lambda: bp.metrics.accuracy(ragged, out)),
        ("accuracy: expected output", lambda: bp.metrics.accuracy([0, 1], ragged)),
        ("confusion_matrix: expected y_pred", lambda: bp.metrics.confusion_matrix([0, 1], ragged)),
        ("train_test_split: expected x", lambda: bp.data.train_test_split(ragged, [0, 1])),
        ("one_hot: expected labels", lambda: bp.data.one_hot(ragged, 3)),
        ("Standardizer.fit: expected x", lambda: bp.data.Standardizer().fit(ragged)),
        ("minibatches: expected array 0", lambda: list(bp.data.minibatches((ragged,), 1))),
        ("minibatches: expected the array", lambda: list(bp.data.minibatches(ragged, 1))),
    ]
    for want, call in cases:
        with pytest.raises(TypeError, match=want + " as a numeric array, got list that NumPy "
                                                   "cannot read as one"):
            call()


def test_complex_sample_weight_is_refused_not_cut_to_its_real_part():
    loss = bp.MeanSquaredError()
    with pytest.raises(TypeError, match=r"MeanSquaredError\(\): expected sample_weight as a "
                                        r"real numeric array \(N,\), got ndarray of dtype "
                                        r"complex128"):
        loss.forward(np.zeros((2, 1)), np.zeros((2, 1)), np.array([1 + 1j, 1]))


def test_dtype_none_means_the_default_float32_as_in_pytorch():
    # np.dtype(None) is float64: a layer built with dtype=None used to be float64
    assert bp.Dense(2, 2, dtype=None).dtype == np.float32
    assert bp.Sequential([bp.Dense(2, 2, dtype=None), bp.ReLU(dtype=None)]).dtype == np.float32
    with pytest.raises(TypeError, match=r"expected a floating dtype \(float32 or float64\), "
                                        r"got None"):
        bp.Dense(2, 2).astype(None)


@pytest.mark.parametrize("name, ours", [("Linear", "Dense"), ("Conv2d", "Conv2D"),
                                        ("CrossEntropyLoss", "SoftmaxCrossEntropy"),
                                        ("BatchNormalization", "BatchNorm"),
                                        ("BCEWithLogitsLoss", "BinaryCrossEntropyWithLogits")])
def test_other_frameworks_names_point_at_ours(name, ours):
    """bp.Linear (a PyTorch habit) is an AttributeError that names Dense; every name it
    points at exists."""
    with pytest.raises(AttributeError, match=rf"no attribute '{name}'; backprop calls it {ours}\b"):
        getattr(bp, name)
    assert not hasattr(bp, name)
    from backprop._other_names import OTHER_NAMES
    assert all(hasattr(bp, ours) and ours in bp.__all__ for ours, _ in OTHER_NAMES.values())


@pytest.mark.parametrize("name, hint", [
    ("eval", r"forward\(x, training=True\)"), ("train", r"training=False"),
    ("named_parameters", r"model\.params maps names"), ("count_params", r"model\.num_params"),
    ("get_weights", r"model\.state_dict\(\)"), ("set_weights", r"load_state_dict"),
    ("compile", r"fit\(\) takes loss="), ("cuda", r"astype\(np\.float64\)"),
    ("modules", r"named_layers\(\)"), ("save_weights", r"bp\.load\(path\)"),
    ("optimizer", r"a callback has the fit's as self\.optimizer")])
def test_other_frameworks_model_methods_point_at_ours(name, hint):
    """model.eval() and other PyTorch/Keras habits: an AttributeError saying what to use."""
    model = bp.Sequential([bp.Dense(2, 3), bp.ReLU()])
    with pytest.raises(AttributeError, match=rf"^'Sequential' object has no attribute "
                                             rf"'{name}'; .*{hint}"):
        getattr(model, name)
    with pytest.raises(AttributeError, match=rf"^'ReLU' object has no attribute '{name}'; "):
        getattr(model[1], name)
    for ours in ("num_params", "state_dict", "load_state_dict", "params", "parameters",
                 "named_layers", "children", "astype", "save", "forward"):
        assert hasattr(model, ours)


def test_attribute_hints_leave_real_attributes_alone():
    """The hints are class descriptors: an instance attribute, a subclass's method and a
    mixin after Layer in the MRO all win, and dir() does not offer the hinted names."""
    class Mixin:
        def to(self, device):
            return device

    class Mine(bp.Layer, Mixin):
        def __init__(self):
            super().__init__()
            self.weights = "own"

        def train(self):
            return "trained"

        def forward(self, x, *, training=False):
            return x

        def backward(self, dy):
            return dy

    layer = Mine()
    assert (layer.to("cpu"), layer.weights, layer.train()) == ("cpu", "own", "trained")
    model = bp.Sequential([bp.Dense(2, 3)])
    assert "eval" not in dir(model) and "forward" in dir(model)
    assert "defaults" not in dir(bp.SGD(model.parameters(), lr=0.1))
    assert "param_groups" in dir(bp.SGD(model.parameters(), lr=0.1))
    with pytest.raises(AttributeError, match=r"^type object 'Layer' has no attribute 'eval'; "):
        bp.Layer.eval  # noqa: B018


def test_other_frameworks_optimizer_attributes_point_at_ours():
    opt = bp.SGD(bp.Dense(2, 3).parameters(), lr=0.1)
    with pytest.raises(AttributeError, match=r"^'SGD' object has no attribute 'defaults'; "
                                             r"opt\.hyperparameters\(\) gives"):
        opt.defaults  # noqa: B018
    opt.lr = 0.05
    assert opt.hyperparameters()["lr"] == 0.05
    with pytest.raises(AttributeError, match=r"^'SGD' object has no attribute 'nope'$"):
        opt.nope  # noqa: B018


def test_model_zero_grad_is_a_no_op_kept_for_pytorch_habits():
    model = bp.Sequential([bp.Dense(2, 3, rng=0)])
    model.forward(np.ones((4, 2), np.float32), training=True)
    model.backward(np.ones((4, 3), np.float32))
    before = model.flat_grads.copy()
    model.zero_grad()
    model[0].zero_grad()
    np.testing.assert_array_equal(model.flat_grads, before)  # backward overwrites, no sum


def test_a_layer_property_that_raises_attribute_error_keeps_its_own_message():
    """The hints' __getattr__ must not hide the AttributeError raised inside a property."""
    class Broken(bp.Layer):
        @property
        def width(self):
            return self.missing_setting  # an AttributeError inside the getter

    with pytest.raises(AttributeError, match=r"'Broken' object has no attribute "
                                             r"'missing_setting'"):
        Broken().width  # noqa: B018
    with pytest.raises(AttributeError, match=r"^'Broken' object has no attribute 'nope'$"):
        Broken().nope  # noqa: B018


@pytest.mark.parametrize("make, hint", [
    (lambda: bp.Dropout(p=0.5), r"'p'; backprop calls it rate$"),
    (lambda: bp.Dense(units=3), r"'units'; Dense\(in_features, out_features\) takes both"),
    (lambda: bp.Dense(4, 3, activation="relu"), r"'activation'; add the activation as its "
                                                r"own layer"),
    (lambda: bp.Conv2D(1, filters=8, kernel_size=3), r"'filters'; backprop calls it "
                                                     r"out_channels"),
    (lambda: bp.MaxPool2D(pool_size=2), r"'pool_size'; backprop calls it kernel_size$"),
    (lambda: bp.LeakyReLU(alpha=0.2), r"'alpha'; backprop calls it negative_slope"),
    (lambda: bp.BatchNorm(8, epsilon=1e-3), r"'epsilon'; backprop calls it eps$"),
    (lambda: bp.EarlyStopping(restore_best_weights=True), r"'restore_best_weights'; "
                                                          r"backprop calls it restore_best"),
    (lambda: bp.Adam(bp.Dense(2, 2).parameters(), learning_rate=1e-3),
     r"'learning_rate'; backprop calls it lr$"),
    (lambda: bp.ReLU(inplace=True), r"'inplace'; backprop's layers never overwrite their input"),
    (lambda: bp.LeakyReLU(0.1, inplace=True), r"'inplace'; backprop's layers never overwrite"),
    (lambda: bp.Softmax(dim=1), r"'dim'; backprop calls it axis"),
    (lambda: bp.MaxPool1D(2, return_indices=True), r"'return_indices'; a training forward keeps "
                                                   r"the argmax"),
    (lambda: bp.Sequential(bp.Dense(2, 2)).fit(np.zeros((4, 2), np.float32), np.zeros(4, int),
                                               loss=bp.SoftmaxCrossEntropy(), verbose=0,
                                               optimizer=bp.SGD(bp.Dense(2, 2).parameters())),
     r"'verbose'; backprop calls it progress"),
    (lambda: bp.Sequential(bp.Dense(2, 2)).predict(np.zeros((4, 2), np.float32), verbose=0),
     r"'verbose'; predict prints nothing$")])
def test_other_frameworks_keywords_point_at_ours(make, hint):
    """Dropout(p=0.5) and other PyTorch/Keras spellings: a TypeError naming backprop's."""
    with pytest.raises(TypeError, match=r"^\w+\(\) got an unexpected keyword argument " + hint):
        make()


def test_keyword_hints_leave_signatures_and_other_errors_as_they_were():
    import inspect
    assert list(inspect.signature(bp.Dropout).parameters) == ["rate", "rng", "dtype"]
    assert bp.Dropout(0.3, rng=1).rate == 0.3
    with pytest.raises(TypeError, match=r"got an unexpected keyword argument 'nope'$"):
        bp.Dense(2, 2, nope=1)
    from backprop._other_names import KEYWORD_HINTS
    for name, hints in KEYWORD_HINTS.items():  # a hint never hides a real argument
        assert not set(hints) & set(inspect.signature(getattr(bp, name)).parameters), name
    from backprop._other_names import FUNCTION_HINTS
    for name, hints in FUNCTION_HINTS.items():
        assert not set(hints) & set(inspect.signature(getattr(bp, name)).parameters), name
        assert getattr(bp, name) is getattr(bp.training, name)  # the methods call the same


def test_a_schedule_given_an_optimizer_says_how_schedules_are_used():
    opt = bp.SGD(bp.Dense(2, 2).parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"^StepLR: expected the initial learning rate \(a "
                                        r"number\), got the optimizer SGD; .*callbacks=\["
                                        r"bp\.LearningRateScheduler\(bp\.StepLR\(0\.1"):
        bp.StepLR(opt, step_size=2)


def test_conv_input_with_channels_last_gets_the_transpose_that_fixes_it():
    # on Python 3.11+ predict's note follows the layer's message, after a newline
    with pytest.raises(ValueError, match=r"got \(10, 8, 8, 1\); channels last\? backprop takes "
                                         r"channels first, \(N, C, H, W\): "
                                         r"x\.transpose\(0, 3, 1, 2\), or in a "
                                         r"Sequential a layer bp\.Permute\(\(3, 1, 2\)\) "
                                         r"before this one(\n|$)"):
        bp.Sequential([bp.Conv2D(1, 4, 3)]).predict(np.zeros((10, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, L\): x\.transpose\(0, 2, 1\), or in a "
                                         r"Sequential a layer bp\.Permute\(\(2, 1\)\) "
                                         r"before this one$"):
        bp.Conv1D(3, 4, 3).forward(np.zeros((2, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r"got \(2, 5, 8, 8\)$"):  # no channel axis fits
        bp.Conv2D(1, 4, 3).forward(np.zeros((2, 5, 8, 8), np.float32))


def test_summary_with_a_batch_axis_in_input_shape_says_to_leave_it_out():
    model = bp.Sequential([bp.Conv2D(1, 4, 3), bp.ReLU()])
    with pytest.raises(ValueError, match=r"got \(2, 32, 1, 8, 8\) \(summary: input_shape="
                                         r"\(32, 1, 8, 8\) is taken as one sample's shape, "
                                         r"the batch axis left out\)$"):
        model.summary((32, 1, 8, 8))


def test_evaluate_with_nothing_to_compute_and_check_gradients_of_a_loss_without_target():
    model = bp.Sequential([bp.Dense(2, 3)])
    with pytest.raises(ValueError, match=r"^evaluate: expected loss= and/or metrics= .*got "
                                         r"neither: nothing to compute$"):
        model.evaluate(np.ones((4, 2), np.float32), np.zeros(4, int))
    with pytest.raises(TypeError, match=r"^check_gradients: expected the target of "
                                        r"MeanSquaredError\(\) too"):
        bp.check_gradients(bp.MeanSquaredError(), np.ones((2, 2)))


def test_a_parameter_prints_its_shape_not_its_arrays():
    p = bp.Dense(784, 512).parameters()[0]
    assert repr(p) == "Parameter(name='W', shape=(784, 512), dtype=float32)"
    name, value, grad = p  # still a tuple of the three
    assert value.shape == grad.shape == (784, 512)


def test_an_unknown_name_is_a_plain_attribute_error():
    with pytest.raises(AttributeError, match=r"^module 'backprop' has no attribute 'Nope'$"):
        bp.Nope  # noqa: B018


class _Table:
    """The two things as_array reads from a pandas DataFrame: its NumPy view (objects,
    for mixed float and bool columns) and its column dtypes; plus to_numpy."""

    def __init__(self, columns):
        self.columns = columns
        self.dtypes = {name: np.asarray(col).dtype for name, col in columns.items()}

    def __array__(self, dtype=None, copy=None):
        return np.array(list(zip(*self.columns.values(), strict=True)), dtype=object)

    def to_numpy(self, dtype, na_value):
        return np.column_stack([np.asarray(c, dtype) for c in self.columns.values()])


def test_a_table_of_float_and_bool_columns_trains_and_other_columns_are_named():
    x = np.linspace(-1, 1, 40)
    table = _Table({"x": x, "red": x > 0, "blue": x <= 0})
    assert np.asarray(table).dtype == object  # what fit receives from NumPy alone
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    y = (x > 0).astype(int)
    model.fit(table, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(),
              lr=0.5), epochs=30, progress=False, seed=0)
    np.testing.assert_array_equal(model.predict(table),
                                  model.predict(np.column_stack([x, x > 0, x <= 0])))
    assert np.mean(model.predict(table).argmax(1) == y) > 0.9
    with pytest.raises(TypeError, match=r"fit: expected x with numeric or bool columns, got "
                                        r"column 'color' of dtype <U4 \(encode it first"):
        model.fit(_Table({"x": x, "color": ["blue"] * 40}), y, loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model.parameters()), progress=False)


def test_pandas_get_dummies_and_nullable_columns():
    pd = pytest.importorskip("pandas")
    x = pd.get_dummies(pd.DataFrame({"x": np.linspace(0, 1, 40), "color": ["r", "b"] * 20}))
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    y = pd.Series(np.arange(40) % 2, dtype="Int64")
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
              progress=False)
    x["n"] = pd.array([1] + [None] * 39, dtype="Int64")
    with pytest.raises(ValueError, match="expected finite values in x"):
        bp.Sequential([bp.Dense(4, 2)]).predict(x)


def test_a_layer_too_large_to_allocate_names_itself_and_the_size():
    def no_memory(shape, rng, dtype):  # what NumPy raises for 7 TiB (simulated: a host
        raise MemoryError("Unable to allocate 7.28 TiB")  # that overcommits would try)

    with pytest.raises(MemoryError, match=r"Dense: cannot allocate 'W' of shape \(1000000, "
                                          r"1000000\) \(3,725.3 GiB of float32"):
        bp.Dense(10**6, 10**6, init=no_memory)


def test_fit_names_the_dtype_y_came_in_when_it_cast_it():
    model = bp.Sequential([bp.Dense(4, 3)])
    x, y = np.ones((6, 4), np.float32), np.arange(6) % 3
    kwargs = dict(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                  progress=False)
    cast = r"got dtype float32 \(convert with y.astype\(int\)\) \({} was given as float64; {} " \
           r"casts floating targets to the model's float32\)"
    with pytest.raises(TypeError, match=cast.format("y", "fit")):
        model.fit(x, y.astype(np.float64), **kwargs)
    with pytest.raises(TypeError, match=cast.format("y", "fit")):
        model.fit(x, [float(v) for v in y], **kwargs)  # a list: the dtype NumPy reads
    with pytest.raises(TypeError, match=cast.format("validation y", "fit")):
        model.fit(x, y, validation_data=(x, y.astype(np.float64)), **kwargs)
    with pytest.raises(TypeError, match=cast.format("y", "evaluate")):
        model.evaluate(x, y.astype(np.float64), loss=bp.SoftmaxCrossEntropy())
    with pytest.raises(TypeError, match=r"got dtype float32 \(convert with y.astype\(int\)\)$"):
        model.fit(x, y.astype(np.float32), **kwargs)  # not cast: nothing to add


@pytest.mark.parametrize("layer, x, hint", [
    (bp.Dense(64, 10), np.zeros(64, np.float32), r"got \(64,\) \(one sample\? add the batch "
                                                 r"axis: x\[None\]\)"),
    (bp.Conv2D(3, 4, 3), np.zeros((3, 8, 8), np.float32), r"got \(3, 8, 8\) \(one sample\?"),
    (bp.Dense(64, 10), np.zeros((2, 1, 8, 8), np.float32), r"got \(2, 1, 8, 8\) \(images or "
                                                          r"sequences as rows\? put a Flatten\(\)"),
])
def test_shape_errors_say_what_fixes_the_usual_slip(layer, x, hint):
    with pytest.raises(ValueError, match=hint):
        layer.forward(x)


def test_no_one_sample_hint_where_nothing_tells_a_sample_from_a_batch():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, H, W\), got "
                                         r"\(32, 28, 28\)$"):
        bp.MaxPool2D(2).forward(np.zeros((32, 28, 28), np.float32))  # channels missing


def test_string_labels_get_told_how_to_number_them():
    model = bp.Sequential(bp.Dense(2, 3))
    with pytest.raises(TypeError, match=r"expected numeric targets y, got dtype <U3 \(class "
                                        r"names: number them, e\.g\. classes, y = np\.unique"):
        model.fit(np.zeros((3, 2), np.float32), np.array(["cat", "dog", "cat"]),
                  loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()))


def test_evaluate_without_targets_points_at_predict():
    model = bp.Sequential([bp.Dense(2, 3, rng=0)])
    x = np.zeros((4, 2), np.float32)
    for kwargs in ({"loss": bp.SoftmaxCrossEntropy()}, {"metrics": ["accuracy"]}):
        with pytest.raises(TypeError, match=r"^evaluate: expected targets y to score against, "
                                            r"got None \(predict\(x\) gives the outputs"):
            model.evaluate(x, None, **kwargs)


def test_fit_names_a_dict_of_callbacks_and_bench_a_model_without_parameters():
    model = bp.Sequential([bp.Dense(2, 3, rng=0)])
    with pytest.raises(TypeError, match=r"expected callbacks as a list of bp.Callback "
                                        r"instances, got dict"):
        model.fit(np.zeros((4, 2), np.float32), np.zeros(4, int), loss=bp.SoftmaxCrossEntropy(),
                  optimizer=bp.SGD(model), progress=False,
                  callbacks={"stop": bp.EarlyStopping("loss")})
    with pytest.raises(ValueError, match=r"^bench: expected a model with parameters to train"):
        bp.bench(bp.Sequential([bp.ReLU()]), (4,), batch_size=2)


def test_train_test_split_takes_scikit_learns_stratify_none():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 2
    parts = bp.data.train_test_split(x, y, 0.2, stratify=None, rng=0)
    np.testing.assert_array_equal(parts[0], bp.data.train_test_split(x, y, 0.2, rng=0)[0])


def _fit_sce(model, x, y, **kwargs):
    return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), progress=False,
                     optimizer=bp.SGD(model.parameters(), lr=0.1), **kwargs)


@pytest.mark.parametrize("make, x, y, kwargs, error, message", [
    (lambda: bp.Sequential([bp.Dense(3, 2)]), "sparse", np.zeros(8, int), {}, TypeError,
     r"fit: expected x as a dense numeric array, got a sparse csr_matrix \(call "
     r"\.toarray\(\)"),
    (lambda: bp.Sequential([bp.Dense(1, 2)]), np.ones(8, np.float32), np.zeros(8, int), {},
     ValueError, r"got \(2,\) \(one feature per sample\? x\.reshape\(-1, 1\)\)"),
    (lambda: bp.Sequential([bp.Dense(3, 1)]), np.ones((8, 3), np.float32), np.arange(8) % 2,
     {}, ValueError, r"\[0, 1\), got values from 0 to 1 \(one output column: two classes "
                     r"need two outputs"),
    (lambda: bp.Sequential([bp.Dense(3, 3)]), np.ones((8, 3), np.float32), np.arange(8) % 3 + 1,
     {}, ValueError, r"got values from 1 to 3 \(labels counted from 1\? number them from 0\)"),
    (lambda: bp.Sequential([bp.Dense(3, 3)]), np.ones((8, 3), np.float32), np.arange(8) % 3,
     {"metrics": {"out": "acc"}}, TypeError, r"got a dict \(Keras' metrics per output: .* "
                                             r"pass the list, e\.g\. \['acc'\]\)"),
    (lambda: bp.Sequential([bp.Dense(3, 3)]), np.ones((8, 3), np.float32), np.arange(8) % 3,
     {"metrics": ["AUC"]}, ValueError, r"got 'AUC'; did you mean 'auc'\?"),
])
def test_data_slips_of_other_frameworks_users_get_the_fix(make, x, y, kwargs, error, message):
    if isinstance(x, str):
        sparse = pytest.importorskip("scipy.sparse")
        x = sparse.csr_matrix(np.ones((8, 3), np.float32))
    with pytest.raises(error, match=message):
        _fit_sce(make(), x, y, **kwargs)


def test_xor_says_its_four_blobs_need_four_samples():
    with pytest.raises(ValueError, match=r"xor: expected n_samples >= its four blobs \(4\), "
                                         r"got 3"):
        bp.datasets.xor(3)


def test_masked_entries_are_refused_not_trained_on():
    """np.asarray drops a mask: the hidden values beneath it were trained on silently."""
    x = np.ma.masked_array(np.ones((8, 3), np.float32), mask=np.zeros((8, 3), bool))
    x.mask[2, 1] = True
    y = np.arange(8) % 2
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    match = r"expected (x|input) without masked entries, got a masked array with 1 masked"
    for call in (lambda: model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), epochs=1,
                                   optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False),
                 lambda: model.predict(x), lambda: model.forward(x),
                 lambda: model.evaluate(x, y, loss=bp.SoftmaxCrossEntropy())):
        with pytest.raises(ValueError, match=match):
            call()
    x.mask[...] = False  # nothing masked: taken as the plain array
    np.testing.assert_array_equal(model.predict(x), model.predict(np.asarray(x)))


def test_string_labels_in_a_pandas_series_get_the_number_them_hint():
    pd = pytest.importorskip("pandas")
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    with pytest.raises(TypeError, match=r"expected y of numbers, got a Series of dtype .*"
                                        r"class names: number them"):
        model.fit(np.zeros((4, 3), np.float32), pd.Series(["a", "b", "a", "b"]),
                  loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1),
                  epochs=1, progress=False)


def test_huge_finite_targets_get_fits_clear_error_not_a_numpy_warning():
    """fit's check of y against the loss (on zero outputs) overflowed a squared error for
    targets of 1e200 and raised NumPy's RuntimeWarning (an error under warnings-as-errors)
    before the first step; the steps' own check says what happened."""
    model = bp.Sequential([bp.Dense(3, 2, dtype=np.float64, rng=0)])
    x = np.random.default_rng(0).standard_normal((8, 3))
    with pytest.raises(RuntimeError, match=r"non-finite loss \(inf\) at epoch 0, batch 0"):
        model.fit(x, np.full((8, 2), 1e200), loss=bp.MeanSquaredError(),
                  optimizer=bp.SGD(model, lr=0.1), progress=False)


def test_a_torch_tensor_is_named_as_such_with_the_conversion_not_an_astype_hint():
    """A torch.Tensor has .shape and .dtype: the dtype check read its torch.float32 as a wrong
    NumPy dtype and suggested .astype, which tensors do not have."""
    torch = pytest.importorskip("torch")
    want = (r"expected {} as a NumPy array of dtype float32, got a torch.Tensor of dtype "
            r"torch.float32 \(convert with t.detach\(\).cpu\(\).numpy\(\)\)")
    with pytest.raises(TypeError, match=r"GRU\(3, 4\): " + want.format("input")):
        bp.GRU(3, 4)(torch.zeros(2, 5, 3))
    with pytest.raises(TypeError, match=want.format("initial_state's h0")):
        bp.GRU(3, 4)(np.zeros((2, 5, 3), np.float32), torch.zeros(2, 4))
    with pytest.raises(TypeError, match=r"Dense\(3, 2\): " + want.format("input")):
        bp.Dense(3, 2)(torch.zeros(2, 3))
