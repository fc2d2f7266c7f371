"""Gradient checks and the Layer/Loss contract, for every row of tests/table.py."""

from __future__ import annotations

import numpy as np
import pytest
from table import LAYERS, LOSSES, LayerCase, LossCase

import backprop as bp

layer_cases = pytest.mark.parametrize("case", LAYERS, ids=[c.name for c in LAYERS])
loss_cases = pytest.mark.parametrize("case", LOSSES, ids=[c.name for c in LOSSES])


def _x(case: LayerCase, dtype=np.float32, seed=0) -> np.ndarray:
    return case.draw(np.random.default_rng(seed), case.in_shape).astype(dtype)


def _out(case: LossCase, rng: np.random.Generator) -> np.ndarray:
    """A loss's outputs: the case's own draw (probabilities for BCELoss), else normal."""
    return (rng.standard_normal(case.out_shape) if case.draw is None
            else case.draw(rng, case.out_shape))


def _dy(case: LayerCase, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(case.out_shape).astype(dtype)


@layer_cases
def test_layer_gradients_match_central_differences(case):
    result = bp.check_gradients(case.make(np.float64), _x(case, np.float64))
    assert result.passed, str(result)


@layer_cases
def test_layer_gradients_inside_a_stack(case):
    result = bp.check_gradients(case.make(np.float64), _x(case, np.float64), stack=True)
    assert result.passed, str(result)


@layer_cases
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_keeps_dtype_and_shapes(case, dtype):
    layer = case.make(dtype)
    y = layer.forward(_x(case, dtype), training=True)
    assert y.shape == case.out_shape and y.dtype == dtype
    dx = layer.backward(_dy(case, dtype))
    assert dx.shape == case.in_shape and dx.dtype == dtype
    for k in layer.params:
        assert layer.grads[k].dtype == dtype and layer.params[k].dtype == dtype


@layer_cases
def test_layer_passes_an_empty_batch_through(case):
    # a batch of 0 samples gives 0 outputs and 0 input gradients (MaxPool's contiguous
    # route used to fail to reshape it); BatchNorm needs samples to normalize over
    layer = case.make(np.float32)
    x = np.zeros((0, *case.in_shape[1:]), np.float32)
    if isinstance(layer, bp.BatchNorm) and not layer.use_running_stats:
        with pytest.raises(ValueError, match="BatchNorm"):
            layer.forward(x, training=True)
        return
    y = layer.forward(x, training=True)
    assert y.shape == (0, *case.out_shape[1:]) and y.dtype == np.float32
    dx = layer.backward(np.zeros_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32


@layer_cases
def test_layer_params_and_grads_agree(case):
    layer = case.make(np.float32)
    assert layer.params.keys() == layer.grads.keys()
    for k, p in layer.params.items():
        assert p.shape == layer.grads[k].shape and p.dtype == layer.grads[k].dtype


@layer_cases
def test_layer_inference_keeps_no_cache(case):
    layer = case.make(np.float32)
    layer.forward(_x(case))
    assert not layer.has_cache
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(_dy(case))


@layer_cases
def test_layer_backward_without_forward_raises(case):
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a preceding training forward; "
                                           r"got none \(inference forwards keep no cache"):
        case.make(np.float32).backward(_dy(case))


@layer_cases
def test_layer_backward_frees_cache(case):
    layer = case.make(np.float32)
    layer.forward(_x(case), training=True)
    assert layer.has_cache
    layer.backward(_dy(case))
    assert not layer.has_cache
    with pytest.raises(RuntimeError):
        layer.backward(_dy(case))


@layer_cases
@pytest.mark.parametrize("bad", ["shape", "dtype"])
def test_layer_refused_dy_keeps_cache(case, bad):
    """A refused dy leaves the cache: the corrected call gives the same gradients."""
    layer = case.make(np.float32)
    x = _x(case)
    layer.forward(x, training=True)
    dy = _dy(case)
    cast = np.complex64 if case.casts_input else np.float64  # a model casts float64 dy
    wrong = np.concatenate([dy, dy]) if bad == "shape" else dy.astype(cast)
    with pytest.raises((ValueError, TypeError), match="dy"):
        layer.backward(wrong)
    assert layer.has_cache
    dx = layer.backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    fresh = case.make(np.float32)
    fresh.forward(x, training=True)
    np.testing.assert_array_equal(fresh.backward(dy), dx)
    for k, g in fresh.grads.items():
        np.testing.assert_array_equal(g, grads[k], err_msg=k)
    assert not layer.has_cache


@layer_cases
def test_layer_does_not_mutate_inputs_or_rebind_params(case):
    layer = case.make(np.float32)
    x, dy = _x(case), _dy(case)
    x0, dy0 = x.copy(), dy.copy()
    ids = {k: id(v) for k, v in layer.params.items()}
    layer.forward(x, training=True)
    layer.backward(dy)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    assert ids == {k: id(v) for k, v in layer.params.items()}


@layer_cases
def test_layer_rejects_mismatched_dtype(case):
    layer = case.make(np.float32)
    if case.casts_input:
        assert layer.forward(_x(case, np.float64)).dtype == np.float32
        return
    with pytest.raises(TypeError, match="expected input of dtype float32, got float64"):
        layer.forward(_x(case, np.float64))


@layer_cases
def test_layer_rejects_wrong_dy_shape(case):
    layer = case.make(np.float32)
    layer.forward(_x(case), training=True)
    bad = np.zeros((case.out_shape[0] + 1,) + case.out_shape[1:], dtype=np.float32)
    with pytest.raises(ValueError, match="expected dy of shape"):
        layer.backward(bad)


@layer_cases
def test_layer_rebuilds_from_its_config(case):
    """Saving relies on it: the class plus get_config() gives the same layer (sans weights)."""
    layer = case.make(np.float32)
    if layer.children():  # containers are rebuilt from their children by the saver
        return
    again = type(layer)(**layer.get_config())
    assert repr(again) == repr(layer)
    assert {k: v.shape for k, v in again.params.items()} == \
        {k: v.shape for k, v in layer.params.items()}


@layer_cases
def test_layer_float64_copy_is_equal_in_float64(case):
    layer = case.make(np.float32)
    copy64 = layer.astype(np.float64)
    assert copy64.dtype == np.float64
    for k, p in layer.params.items():
        assert copy64.params[k].dtype == np.float64
        np.testing.assert_array_equal(copy64.params[k], p.astype(np.float64))


@loss_cases
def test_loss_gradients_match_central_differences(case: LossCase):
    rng = np.random.default_rng(0)
    out = _out(case, rng)
    result = bp.check_gradients(case.make(), out, case.target(rng))
    assert result.passed, str(result)


@loss_cases
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_returns_python_float_and_keeps_dtype(case, dtype):
    rng = np.random.default_rng(0)
    out = _out(case, rng).astype(dtype)
    loss = case.make()
    value = loss.forward(out, case.target(rng))
    if loss.reduction == "none":  # the array of losses, in the output's dtype
        assert type(value) is np.ndarray and value.dtype == dtype
        assert np.isfinite(value).all() and value.shape[0] == out.shape[0]
    else:
        assert type(value) is float and np.isfinite(value)
    grad = _backward(loss, value)
    assert grad.shape == out.shape and grad.dtype == dtype


@loss_cases
def test_loss_backward_without_forward_raises(case):
    """A loss has no training mode: its message says forward, and nothing of inference."""
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a preceding forward; got none "
                                           r"\(each forward serves one backward\)$"):
        case.make().backward()


@loss_cases
def test_loss_does_not_mutate_inputs(case):
    rng = np.random.default_rng(0)
    out = _out(case, rng).astype(np.float32)
    target = case.target(rng)
    out0, t0 = out.copy(), np.array(target, copy=True)
    loss = case.make()
    _backward(loss, loss.forward(out, target))
    np.testing.assert_array_equal(out, out0)
    np.testing.assert_array_equal(target, t0)


@loss_cases
def test_loss_sample_weight_of_ones_changes_nothing(case):
    rng = np.random.default_rng(0)
    out = _out(case, rng)
    target = case.target(rng)
    a, b = case.make(), case.make()
    ones = np.ones(case.out_shape[0])
    va, vb = a.forward(out, target), b.forward(out, target, ones)
    np.testing.assert_allclose(va, vb, rtol=1e-12)
    np.testing.assert_allclose(_backward(a, va), _backward(b, vb))


def _backward(loss: bp.Loss, value) -> np.ndarray:
    """The gradient of the loss's value, or of the sum of its losses for 'none'."""
    return loss.backward(np.ones_like(value)) if loss.reduction == "none" else loss.backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_dx_of_a_thin_batch_matches_the_plain_product(dtype):
    # float32 batches of <= 32 rows with big weights take dx.T = W @ dy.T (faster in
    # OpenBLAS); float64 and wider batches dy @ W.T: both must give the same dx
    layer = bp.Dense(300, 200, rng=0, dtype=dtype)  # 60,000 weights: the thin route
    assert layer.params["W"].size >= 32768
    rng = np.random.default_rng(0)
    for n in (1, 7, 32, 33):  # 33: the plain route
        x = rng.standard_normal((n, 300)).astype(dtype)
        dy = rng.standard_normal((n, 200)).astype(dtype)
        layer.forward(x, training=True)
        dx = layer.backward(dy)
        assert dx.dtype == dtype and dx.shape == (n, 300) and dx.flags.c_contiguous
        exact = dy.astype(np.float64) @ layer.params["W"].astype(np.float64).T
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(dx, exact, rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.grads["W"], x.T.astype(np.float64) @ dy, rtol=tol,
                                   atol=tol)


def test_every_public_name_and_its_public_members_have_a_docstring():
    import inspect
    missing = []
    for name in bp.__all__:
        obj = getattr(bp, name)
        if inspect.ismodule(obj):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        for attr, value in (vars(obj).items() if inspect.isclass(obj) else ()):
            if attr.startswith("_") or not (callable(value) or isinstance(value, property)):
                continue
            doc = value.__doc__ if isinstance(value, property) else \
                inspect.getdoc(getattr(obj, attr))  # inherited from the base class counts
            if not doc:
                missing.append(f"{name}.{attr}")
    assert missing == []
