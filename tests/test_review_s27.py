"""Session 27: a training forward that fails part-way, and dy of the wrong kind."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_a_training_forward_refused_part_way_leaves_no_mixed_caches():
    model = bp.Sequential([bp.ReLU(), bp.Flatten(), bp.Dense(6, 2)])
    rng = np.random.default_rng(0)
    model(rng.normal(size=(5, 2, 3)).astype(np.float32), training=True)
    assert all(layer.has_cache for layer in model.layers)
    with pytest.raises(ValueError, match=r"Dense\(6, 2\): expected input"):
        model(rng.normal(size=(5, 3, 3)).astype(np.float32), training=True)  # 9 != 6
    # ReLU and Flatten had taken the refused batch, Dense kept the earlier one: a
    # backward would have returned dx of the refused batch's shape from the other's dy
    assert not any(layer.has_cache for layer in model.layers)
    with pytest.raises(RuntimeError, match="needs a preceding training forward"):
        model.backward(np.ones((5, 2), np.float32))


def test_an_inference_forward_refused_part_way_keeps_a_pending_training_cache():
    model = bp.Sequential([bp.ReLU(), bp.Flatten(), bp.Dense(6, 2)])
    x = np.random.default_rng(1).normal(size=(5, 2, 3)).astype(np.float32)
    model(x, training=True)
    with pytest.raises(ValueError, match=r"Dense\(6, 2\)"):
        model(np.ones((5, 3, 3), np.float32))  # inference caches nothing, drops nothing
    assert model.backward(np.ones((5, 2), np.float32)).shape == (5, 2, 3)


@pytest.mark.parametrize("dy", [np.ones((4, 2), int), np.ones((4, 2), bool), [[1, 0]] * 4])
def test_sequential_backward_refuses_a_gradient_of_ints_or_bools(dy):
    model = bp.Sequential([bp.Dense(3, 2)])
    model(np.ones((4, 3), np.float32), training=True)
    with pytest.raises(TypeError, match=r"Sequential: expected dy of floats \(cast to the "
                                        r"model's float32\), got dtype (int64|bool)"):
        model.backward(dy)


def test_sequential_backward_casts_a_float64_gradient():
    model = bp.Sequential([bp.Dense(3, 2)])
    model(np.ones((4, 3), np.float32), training=True)
    dx = model.backward(np.ones((4, 2)))
    assert dx.dtype == np.float32 and dx.shape == (4, 3)


@pytest.mark.parametrize("third", ["0.2", None, b"0.2"])
def test_train_test_split_names_a_test_share_given_as_a_string_or_none(third):
    x, y = np.ones((10, 2)), np.arange(10)
    with pytest.raises(TypeError, match=r"expected arrays of samples, got (str|NoneType|bytes) "
                                        r".* as argument 3 \(the test share goes in test_size="):
        bp.data.train_test_split(x, y, third)
    assert len(bp.data.train_test_split(x, y, 0.2)) == 4  # a number: the older call


@pytest.mark.parametrize("init", [lambda: 1, lambda shape, rng: 1, lambda a, b, c, d: 1])
def test_an_initializer_callable_of_the_wrong_arity_is_named_with_its_signature(init):
    with pytest.raises(TypeError, match=r"Dense\(3, 2\): expected the initializer of 'W' as "
                                        r"a callable init\(shape, rng, dtype\), got "
                                        r"'<lambda>' with signature \("):
        bp.Dense(3, 2, init=init)


def test_an_initializer_callable_taking_shape_rng_dtype_is_used():
    layer = bp.Dense(3, 2, init=lambda shape, rng, dtype: np.full(shape, 0.5, dtype))
    assert np.all(layer.params["W"] == 0.5)
    layer = bp.Dense(3, 2, bias_init=lambda *args, **kw: np.ones(args[0]))
    assert np.all(layer.params["b"] == 1.0)


def test_the_epoch_loss_with_weights_is_as_the_fit_docstring_says():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (rng.random(64) < 0.3).astype(int)
    model = bp.Sequential([bp.Dense(3, 2)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0  # the weights held: the epoch's loss is that of the final weights
    kw = {"optimizer": opt, "batch_size": 16, "progress": False, "shuffle": False}
    each = bp.SoftmaxCrossEntropy(reduction="none").forward(model.predict(x), y)
    w = np.where(y == 1, 5.0, 1.0)
    keras = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), class_weight={1: 5.0}, **kw)
    assert keras.history["loss"][0] == pytest.approx((w * each).sum() / 64, rel=1e-5)
    torch_like = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(weight=np.array([1, 5.0],
                                                                            np.float32)), **kw)
    assert torch_like.history["loss"][0] == pytest.approx((w * each).sum() / w.sum(), rel=1e-5)


def test_standardizer_scale_is_scikit_learns():
    sklearn = pytest.importorskip("sklearn.preprocessing")
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(50, 3))
    x[:, 1] = 7.0  # constant: scale 1 in both
    ours = bp.data.Standardizer().fit(x)
    np.testing.assert_allclose(ours.scale_, sklearn.StandardScaler().fit(x).scale_, rtol=1e-12)
    assert bp.data.Standardizer().scale_ is None


@pytest.mark.parametrize(("name", "says"), [
    ("predict_proba", r"bp\.Softmax\(\)\(model\.predict\(x\)\) gives probabilities"),
    ("predict_classes", r"model\.predict\(x\)\.argmax\(-1\)")])
def test_keras_and_sklearn_prediction_methods_point_at_backprops_way(name, says):
    model = bp.Sequential([bp.Dense(2, 2)])
    with pytest.raises(AttributeError, match=f"no attribute '{name}'; .*{says}"):
        getattr(model, name)
    assert name not in dir(model)


def test_load_model_points_at_load():
    with pytest.raises(AttributeError, match=r"'load_model'; backprop calls it load \(bp\.load"):
        bp.load_model  # noqa: B018


@pytest.mark.parametrize(("lr", "error"), [(-1, ValueError), (float("nan"), ValueError),
                                           ("0.1", TypeError)])
def test_plateau_rule_step_refuses_a_rate_that_is_not_one(lr, error):
    rule = bp.schedules.ReduceLROnPlateau(patience=0)
    with pytest.raises(error, match=r"ReduceLROnPlateau\.step: expected lr"):
        rule.step(1.0, lr)
    assert rule.step(1.0, 0.1) == 0.1 and rule.step(1.0, 0.1) == pytest.approx(0.01)


@pytest.mark.parametrize("value", [None, {}, object()])
def test_sequential_names_a_non_array_input_or_gradient_by_its_type(value):
    model = bp.Sequential([bp.Dense(3, 2)])
    with pytest.raises(TypeError, match=r"Sequential: expected input as an array, got "
                                        f"{type(value).__name__}$"):
        model(value)
    model(np.ones((2, 3), np.float32), training=True)
    with pytest.raises(TypeError, match=r"Sequential: expected dy as an array, got "):
        model.backward(value)


@pytest.mark.parametrize("reduction", [np.array(["mean", "sum"]), ["mean"], None, 1])
def test_a_loss_reduction_that_is_not_a_string_is_named(reduction):
    with pytest.raises(ValueError, match=r"MeanSquaredError: expected reduction 'mean', 'sum' "
                                         r"or 'none', got "):
        bp.MeanSquaredError(reduction=reduction)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1, 3.0, 0.5, float("inf"), "inf"])
def test_clip_grad_norm_of_any_order_is_torchs(dtype, norm_type):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    model = bp.Sequential([bp.Dense(4, 6, dtype=dtype), bp.ReLU(), bp.Dense(6, 3, dtype=dtype)])
    theirs = []
    for p in model.parameters():
        p.grad[...] = rng.normal(size=p.grad.shape) * 5
        t = torch.nn.Parameter(torch.tensor(p.value.copy()))
        t.grad = torch.tensor(p.grad.copy())
        theirs.append(t)
    norm = bp.clip_grad_norm(model.parameters(), 1.0, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert norm == pytest.approx(float(expected), rel=tol)
    for p, t in zip(model.parameters(), theirs, strict=True):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=tol, atol=0)


def test_clip_grad_norm_error_if_nonfinite_leaves_the_gradients():
    model = bp.Sequential([bp.Dense(2, 2)])
    model.parameters()[0].grad[...] = 1.0
    model.parameters()[0].grad[0, 0] = np.inf
    before = model.flat_grads.copy()
    with pytest.raises(RuntimeError, match=r"clip_grad_norm: the total norm of order 2\.0 of "
                                           r"the gradients is inf, so it cannot be clipped"):
        bp.clip_grad_norm(model, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(model.flat_grads, before)
    assert bp.clip_grad_norm(model, 1.0, foreach=True) == np.inf  # PyTorch's default: scale


@pytest.mark.parametrize(("value", "error", "says"), [
    (0, ValueError, r"expected norm_type > 0 \(or math\.inf or 'inf'"),
    (float("nan"), ValueError, r"expected norm_type > 0"),
    ("two", TypeError, r"expected norm_type to be a number, got 'two'")])
def test_clip_grad_norm_refuses_a_norm_type_that_is_not_one(value, error, says):
    with pytest.raises(error, match=f"clip_grad_norm: {says}"):
        bp.clip_grad_norm(bp.Dense(2, 2), 1.0, value)


def test_one_parameter_is_clipped_as_torchs_one_tensor_but_an_optimizer_asks_for_a_list():
    p = bp.Dense(2, 2).parameters()[0]
    p.grad[...] = 3.0
    assert bp.clip_grad_norm(p, 1.0) == pytest.approx(6.0)
    bp.clip_grad_value(p, 0.1)
    np.testing.assert_array_equal(p.grad, np.full((2, 2), 0.1, np.float32))
    with pytest.raises(TypeError, match=r"SGD: expected model\.parameters\(\) .* got one "
                                        r"Parameter 'W': wrap it in a list, \[p\]"):
        bp.SGD(p, lr=0.1)


def test_sgd_takes_torchs_positional_order():
    torch = pytest.importorskip("torch")
    ours = bp.SGD(bp.Dense(2, 2).parameters(), 0.1, 0.9, 0.0, 1e-4, True)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], 0.1, 0.9, 0.0, 1e-4, True)
    assert (ours.weight_decay, ours.nesterov) == (theirs.defaults["weight_decay"],
                                                  theirs.defaults["nesterov"]) == (1e-4, True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multilabel_soft_margin_is_torchs_where_it_saturates_and_at_inf(dtype):
    torch = pytest.importorskip("torch")
    x = np.array([[np.inf, -np.inf, np.inf, -np.inf, 3.0, -44.0, 66.55, -22.55, 7.59]], dtype)
    y = np.array([[1, 1, 0, 0, 0.5, 0, 1, 0, 1]], dtype)
    loss = bp.MultiLabelSoftMarginLoss(reduction="none")
    for i in range(x.shape[1]):  # one class per row: the inf columns would NaN the mean
        value = loss.forward(x[:, i:i + 1], y[:, i:i + 1])
        grad = loss.backward(np.ones(1, dtype))
        t = torch.tensor(x[:, i:i + 1], requires_grad=True)
        expected = torch.nn.functional.multilabel_soft_margin_loss(
            t, torch.tensor(y[:, i:i + 1]), reduction="none")
        expected.sum().backward()
        np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-6, atol=0)
        np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("weight", [np.array([0.5, 2.0, 0.0]), np.array([[1.0], [3.0]]), 2.5])
@pytest.mark.parametrize("pos_weight", [None, np.array([1.0, 3.0, 0.5])])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_weight_is_torchs(weight, pos_weight, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    z = rng.normal(size=(2, 3)) * 3
    t = rng.random((2, 3))
    loss = bp.BinaryCrossEntropyWithLogits(weight, pos_weight=pos_weight, reduction=reduction)
    value = loss.forward(z, t)
    grad = loss.backward(np.ones((2, 3)) if reduction == "none" else None)
    zt = torch.tensor(z, requires_grad=True)
    expected = torch.nn.BCEWithLogitsLoss(
        weight=torch.as_tensor(weight), reduction=reduction,
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight))(zt, torch.tensor(t))
    expected.sum().backward()
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"expected outputs that weight .* broadcasts to"):
        bp.BinaryCrossEntropyWithLogits(np.ones(4)).forward(z, t)


def test_batchnorm_takes_torchs_0d_num_batches_tracked():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm1d(3, momentum=None)
    theirs(torch.randn(4, 3))
    ours = bp.BatchNorm(3, momentum=None)
    state = {k: v.numpy() for k, v in theirs.state_dict().items() if k != "weight"
             and k != "bias"}
    assert state["num_batches_tracked"].shape == ()
    ours.load_state_dict({"gamma": theirs.weight.detach().numpy(),
                          "beta": theirs.bias.detach().numpy(), **state})
    assert ours.state_dict()["num_batches_tracked"].tolist() == [1]
    with pytest.raises(ValueError, match=r"expected 'running_mean' of shape \(3,\), got \(\)"):
        ours.load_state_dict({**ours.state_dict(), "running_mean": np.array(0.0)})


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_threads_predicting_with_one_conv_model_get_its_outputs(groups):
    import threading

    model = bp.Sequential([bp.Conv2D(4, 4, 3, padding=1, groups=groups, rng=1)])
    xs = [np.random.default_rng(i).normal(size=(64, 4, 10, 10)).astype(np.float32)
          for i in range(4)]
    want = [model.predict(x) for x in xs]
    wrong = []

    def run(i):
        for _ in range(15):
            wrong.append(not np.array_equal(model.predict(xs[i]), want[i]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wrong) == 60 and not any(wrong)  # shared scratch gave 6-14 of 60 wrong
    owners = {owner for owner, _ in model.layers[0]._ws}
    assert len(owners) >= 2  # each thread wrote its own scratch


def test_a_loss_or_model_in_another_threads_fit_is_refused_by_name():
    import threading

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)).astype(np.float32), rng.integers(0, 2, 64)
    loss = bp.SoftmaxCrossEntropy()
    model = bp.Sequential([bp.Dense(3, 2, rng=0)])
    started, release = threading.Event(), threading.Event()

    class Hold(bp.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.set()
            release.wait(10)

    def first():
        model.fit(x, y, loss=loss, optimizer=bp.SGD(model.parameters(), lr=0.1),
                  callbacks=[Hold()], progress=False)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(10)
        other = bp.Sequential([bp.Dense(3, 2, rng=1)])
        with pytest.raises(RuntimeError, match=r"fit: expected a loss no other thread is "
                                               r"training with, got one .* copy\.copy\(loss\)"):
            other.fit(x, y, loss=loss, optimizer=bp.SGD(other.parameters(), lr=0.1),
                      progress=False)
        with pytest.raises(RuntimeError, match=r"fit: expected a model no other thread .* "
                                               r"copy\.deepcopy\(model\)"):
            model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), progress=False,
                      optimizer=bp.SGD(model.parameters(), lr=0.1))
        with pytest.raises(RuntimeError, match=r"evaluate: expected a loss no other thread"):
            other.evaluate(x, y, loss=loss)
        other.evaluate(x, y, loss=bp.SoftmaxCrossEntropy())  # its own loss: fine
    finally:
        release.set()
        thread.join()
    history = other.fit(x, y, loss=loss, optimizer=bp.SGD(other.parameters(), lr=0.1),
                        progress=False)  # that fit is over: the loss is free again
    assert np.isfinite(history.history["loss"][0])


def test_a_trace_records_every_call_while_another_thread_evaluates():
    import threading

    rng = np.random.default_rng(0)
    traced = bp.Sequential([bp.Dense(3, 2, rng=0)])
    other = bp.Sequential([bp.Dense(3, 2, rng=1)])
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.integers(0, 2, 8)
    stop = threading.Event()

    def evaluate_forever():  # each evaluate pauses tracing for its input check
        while not stop.is_set():
            other.evaluate(x, y, loss=bp.SoftmaxCrossEntropy())

    thread = threading.Thread(target=evaluate_forever)
    thread.start()
    try:
        with bp.trace(traced) as t:
            for _ in range(2000):
                traced(x)
    finally:
        stop.set()
        thread.join()
    assert len(t[0].forward) == 2000  # a global pause had dropped some


def test_keras_options_backprop_lacks_get_a_hint():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'verbose'; the rate of "
                                        r"each epoch is logged as 'lr'"):
        bp.LearningRateScheduler(lambda epoch, lr: lr, verbose=1)
    with pytest.raises(TypeError, match=r"'initial_value_threshold'; not offered"):
        bp.ModelCheckpoint("m.npz", initial_value_threshold=1.0)
    model = bp.Sequential([bp.Dense(2, 2)])
    with pytest.raises(TypeError, match=r"fit\(\) got an unexpected keyword argument "
                                        r"'validation_batch_size'; fit scores"):
        model.fit(np.ones((4, 2), np.float32), np.zeros(4, int), validation_batch_size=3,
                  loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1))


def test_a_slice_sharing_the_layers_of_a_model_in_another_threads_fit_is_refused():
    import threading

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype(np.float32), rng.integers(0, 2, 32)
    model = bp.Sequential([bp.Dense(3, 4, rng=0), bp.ReLU(), bp.Dense(4, 2, rng=1)])
    started, release = threading.Event(), threading.Event()

    class Hold(bp.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=lambda: model.fit(
        x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1),
        callbacks=[Hold()], progress=False))
    thread.start()
    try:
        assert started.wait(10)
        tail = model[1:]  # a new Sequential over the same layer objects
        with pytest.raises(RuntimeError, match=r"fit: expected a model no other thread"):
            tail.fit(rng.normal(size=(32, 4)).astype(np.float32), y, progress=False,
                     loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(tail.parameters(), lr=0.1))
    finally:
        release.set()
        thread.join()


def test_a_finished_threads_conv_scratch_goes_at_the_next_allocation():
    import threading

    conv = bp.Conv2D(2, 3, 3, padding=1, rng=0)
    x = np.ones((2, 2, 6, 6), np.float32)
    worker = threading.Thread(target=lambda: conv(x))
    worker.start()
    worker.join()
    assert {owner for owner, _ in conv._ws} == {worker.ident}
    conv(np.ones((2, 2, 7, 7), np.float32))  # this thread's first scratch
    assert {owner for owner, _ in conv._ws} == {threading.get_ident()}


def test_clip_grad_norm_of_order_3_past_float32_is_inf_quietly_as_torchs():
    model = bp.Sequential([bp.Dense(2, 2)])
    model.parameters()[0].grad[...] = np.float32(1e20)  # 1e60 past float32's range
    assert bp.clip_grad_norm(model, 1.0, 3) == np.inf  # (filterwarnings=error: no warning)
