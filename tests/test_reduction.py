"""Losses' reduction='mean' | 'sum' | 'none', against PyTorch's, and in fit/evaluate."""

import numpy as np
import pytest

import backprop as bp

REDUCTIONS = ["mean", "sum", "none"]
W4 = [1.0, 2.0, 0.5, 3.0]


def _cases(rng):
    """(name, backprop loss maker, torch loss maker, logits, target) in float64."""
    torch = pytest.importorskip("torch")
    nn, t64 = torch.nn, (lambda a: torch.tensor(a, dtype=torch.float64))
    labels = rng.integers(0, 4, 7)
    ignored = np.where(np.arange(7) % 3 == 0, -1, labels)
    pixels = rng.integers(0, 4, (3, 2, 5))
    return [
        ("ce", lambda r: bp.SoftmaxCrossEntropy(reduction=r),
         lambda r: nn.CrossEntropyLoss(reduction=r), rng.standard_normal((7, 4)), labels),
        ("ce-weight-ignore-smoothing",
         lambda r: bp.SoftmaxCrossEntropy(0.1, weight=W4, ignore_index=-1, reduction=r),
         lambda r: nn.CrossEntropyLoss(weight=t64(W4), ignore_index=-1, label_smoothing=0.1,
                                       reduction=r),
         rng.standard_normal((7, 4)), ignored),
        ("ce-probabilities-weight", lambda r: bp.SoftmaxCrossEntropy(weight=W4, reduction=r),
         lambda r: nn.CrossEntropyLoss(weight=t64(W4), reduction=r),
         rng.standard_normal((7, 4)), rng.dirichlet(np.ones(4), 7)),
        ("ce-per-pixel", lambda r: bp.SoftmaxCrossEntropy(weight=W4, reduction=r),
         lambda r: nn.CrossEntropyLoss(weight=t64(W4), reduction=r),
         rng.standard_normal((3, 4, 2, 5)), pixels),
        ("mse", lambda r: bp.MeanSquaredError(reduction=r), lambda r: nn.MSELoss(reduction=r),
         rng.standard_normal((7, 2, 3)), rng.standard_normal((7, 2, 3))),
        ("huber", lambda r: bp.Huber(0.6, reduction=r),
         lambda r: nn.HuberLoss(delta=0.6, reduction=r),
         2 * rng.standard_normal((7, 3)), rng.standard_normal((7, 3))),
        ("bce-pos_weight",
         lambda r: bp.BinaryCrossEntropyWithLogits(pos_weight=[0.5, 2.0, 3.0], reduction=r),
         lambda r: nn.BCEWithLogitsLoss(pos_weight=t64([0.5, 2.0, 3.0]), reduction=r),
         3 * rng.standard_normal((7, 3)), rng.uniform(0, 1, (7, 3))),
    ]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_values_and_gradients_match_torch(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for name, ours, theirs, z, t in _cases(rng):
        loss = ours(reduction)
        value = loss.forward(z, t)
        zt = torch.tensor(z, requires_grad=True)
        want = theirs(reduction)(zt, torch.tensor(t))
        g = None
        if reduction == "none":
            g = rng.standard_normal(want.shape)
            want.backward(torch.tensor(g))
        else:
            want.backward()
        assert np.shape(value) == tuple(want.shape), name
        np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-12, atol=1e-14,
                                   err_msg=name)
        np.testing.assert_allclose(loss.backward(g), zt.grad.numpy(), rtol=1e-10,
                                   atol=1e-15, err_msg=name)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sample_weight_scales_each_samples_losses(reduction):
    rng = np.random.default_rng(1)
    for name, ours, _, z, t in _cases(rng):
        w = rng.uniform(0, 2, len(z))
        plain = ours("none").forward(z, t)
        weighted = plain * w.reshape((-1,) + (1,) * (plain.ndim - 1))
        value = ours(reduction).forward(z, t, w)
        if reduction == "none":
            np.testing.assert_allclose(value, weighted, rtol=1e-12, err_msg=name)
        elif reduction == "sum":
            assert value == pytest.approx(weighted.sum(), rel=1e-12), name
        else:  # the mean's divisor is the same as unweighted (Keras' sum_over_batch_size)
            mean = ours("mean").forward(z, t)
            assert value == pytest.approx(weighted.sum() / plain.sum() * mean, rel=1e-12), name


def test_sum_of_unreduced_losses_is_the_sum_and_their_mean_the_mean_without_weights():
    rng = np.random.default_rng(2)
    cases = _cases(rng)
    for name, ours, _, z, t in cases[:1] + cases[4:]:  # the ones without class weights
        losses = ours("none").forward(z, t)
        assert ours("sum").forward(z, t) == pytest.approx(losses.sum(), rel=1e-12), name
        assert ours("mean").forward(z, t) == pytest.approx(losses.mean(), rel=1e-12), name


def test_float32_stays_float32_for_every_reduction():
    z = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
    for r in REDUCTIONS:
        loss = bp.SoftmaxCrossEntropy(reduction=r)
        value = loss.forward(z, np.array([0, 1, 2, 0, 1]))
        g = np.ones(5, np.float32) if r == "none" else None
        assert loss.backward(g).dtype == np.float32
        assert (value.dtype == np.float32) if r == "none" else type(value) is float


def test_backward_of_unreduced_losses_needs_their_gradient():
    loss = bp.MeanSquaredError(reduction="none")
    z = np.ones((4, 3))
    loss.forward(z, np.zeros((4, 3)))
    with pytest.raises(RuntimeError, match=r"needs grad_output, their gradient of shape "
                                           r"\(4, 3\) \(np.ones\(\(4, 3\)\) for their sum\)"):
        loss.backward()
    assert loss.has_cache  # the error took nothing: the right call still works
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(4, 3\), one per "
                                         r"loss, got \(4,\)"):
        loss.backward(np.ones(4))
    assert loss.has_cache  # a refused grad_output takes nothing either
    with pytest.raises(TypeError, match="expected grad_output as real numbers"):
        loss.backward(np.full((4, 3), "a"))
    np.testing.assert_array_equal(loss.backward(np.full((4, 3), 0.5)), np.ones((4, 3)))


def test_a_reduced_losss_backward_takes_an_optional_scale():
    z, y = np.random.default_rng(4).standard_normal((4, 3)), np.array([0, 1, 2, 1])
    loss = bp.SoftmaxCrossEntropy()
    loss.forward(z, y)
    plain = loss.backward()
    loss.forward(z, y)
    np.testing.assert_allclose(loss.backward(2.0), 2 * plain)
    loss.forward(z, y)
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(\), a single "
                                         r"number \(the loss is one\), got \(4,\)"):
        loss.backward(np.ones(4))
    np.testing.assert_allclose(loss.backward(), plain)  # the refused call took nothing


@pytest.mark.parametrize("bad", ["average", "SUM", None, 1])
def test_an_unknown_reduction_is_refused(bad):
    with pytest.raises(ValueError, match=r"^Huber: expected reduction 'mean', 'sum' or "
                                         r"'none', got "):
        bp.Huber(reduction=bad)
    with pytest.raises(ValueError, match=r"Keras' 'sum_over_batch_size' is 'mean' here"):
        bp.Huber(reduction="sum_over_batch_size")


@pytest.mark.parametrize("make", [bp.MeanSquaredError, bp.Huber,
                                  bp.BinaryCrossEntropyWithLogits])
def test_unreduced_float32_losses_stay_float32_with_float64_weights(make):
    rng = np.random.default_rng(7)
    z = rng.standard_normal((5, 3)).astype(np.float32)
    t = rng.uniform(0, 1, (5, 3)).astype(np.float32)
    loss = make(reduction="none")
    value = loss.forward(z, t, rng.uniform(0, 2, 5))  # float64 weights
    assert value.dtype == np.float32
    assert loss.backward(np.ones((5, 3))).dtype == np.float32


def test_a_batch_of_only_ignored_labels_sums_to_zero_with_zero_gradients():
    z = np.random.default_rng(8).standard_normal((3, 4)).astype(np.float32)
    for reduction in REDUCTIONS:
        loss = bp.SoftmaxCrossEntropy(ignore_index=-1, reduction=reduction)
        value = loss.forward(z, np.array([-1, -1, -1]))
        g = np.ones(3, np.float32) if reduction == "none" else None
        np.testing.assert_array_equal(value, np.zeros(3) if g is not None else 0.0)
        grad = loss.backward(g)
        assert grad.dtype == np.float32 and not grad.any()


def test_repr_names_a_reduction_other_than_the_mean():
    assert repr(bp.MeanSquaredError()) == "MeanSquaredError()"
    assert repr(bp.SoftmaxCrossEntropy(0.1, reduction="sum")) == (
        "SoftmaxCrossEntropy(label_smoothing=0.1, reduction='sum')")


def test_a_users_loss_of_per_sample_losses_reduces_as_well():
    class L1PerSample(bp.Loss):  # one loss per sample, the gradient of their sum
        def _forward(self, output, target):
            d = output - target
            return np.abs(d).sum(axis=1), np.sign(d)

    z = np.random.default_rng(5).standard_normal((6, 2))
    per = np.abs(z).sum(axis=1)
    assert L1PerSample().forward(z, 0 * z) == pytest.approx(per.mean())
    assert L1PerSample(reduction="sum").forward(z, 0 * z) == pytest.approx(per.sum())
    loss = L1PerSample(reduction="none")
    np.testing.assert_allclose(loss.forward(z, 0 * z), per)
    g = np.arange(6.0)
    np.testing.assert_allclose(loss.backward(g), np.sign(z) * g[:, None])
    assert bp.check_gradients(L1PerSample(reduction="none"), z, 0 * z).passed


def _data(n=30):
    rng = np.random.default_rng(6)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def test_fit_and_evaluate_refuse_unreduced_losses():
    x, y = _data()
    model = bp.Sequential([bp.Dense(4, 3, rng=0, dtype=np.float64)])
    loss = bp.SoftmaxCrossEntropy(reduction="none")
    with pytest.raises(ValueError, match=r"^fit: expected a loss that gives one number "
                                         r"\(reduction 'mean' or 'sum'\), got "
                                         r"SoftmaxCrossEntropy\(reduction='none'\)"):
        model.fit(x, y, loss=loss, optimizer=bp.SGD(model.parameters()), progress=False)
    with pytest.raises(ValueError, match=r"^evaluate: expected a loss that gives one number"):
        model.evaluate(x, y, loss=loss)


def test_fit_with_a_summed_loss_reports_sums_over_all_samples():
    x, y = _data()
    model = bp.Sequential([bp.Dense(4, 3, rng=0, dtype=np.float64)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0  # steps change nothing: the epoch's loss is evaluate's on the same data
    loss = bp.SoftmaxCrossEntropy(reduction="sum")
    history = model.fit(x[:20], y[:20], loss=loss, optimizer=opt, batch_size=8, epochs=2,
                        validation_data=(x[20:], y[20:]), progress=False)
    train = model.evaluate(x[:20], y[:20], loss=loss)["loss"]
    val = model.evaluate(x[20:], y[20:], loss=loss)["loss"]
    assert history.history["loss"] == pytest.approx([train, train], rel=1e-12)
    assert history.history["val_loss"] == pytest.approx([val, val], rel=1e-12)
    mean = model.evaluate(x[:20], y[:20], loss=bp.SoftmaxCrossEntropy())["loss"]
    assert train == pytest.approx(20 * mean, rel=1e-12)


def test_fit_sums_only_the_counted_labels_with_ignore_index():
    x, y = _data()
    y = np.where(np.arange(len(y)) % 4 == 0, -1, y)
    model = bp.Sequential([bp.Dense(4, 3, rng=0, dtype=np.float64)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    opt.lr = 0.0
    loss = bp.SoftmaxCrossEntropy(ignore_index=-1, reduction="sum")
    history = model.fit(x, y, loss=loss, optimizer=opt, batch_size=7, progress=False)
    assert history.history["loss"][0] == pytest.approx(
        model.evaluate(x, y, loss=loss)["loss"], rel=1e-12)


def test_a_summed_loss_steps_as_the_mean_with_a_batch_times_larger_lr():
    x, y = _data(32)
    weights = []
    for reduction, lr in [("sum", 0.01), ("mean", 0.08)]:
        model = bp.Sequential([bp.Dense(4, 3, rng=0, dtype=np.float64)])
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(reduction=reduction), batch_size=8,
                  optimizer=bp.SGD(model.parameters(), lr=lr), seed=0, progress=False)
        weights.append(model.flat_params.copy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-12)


def test_bench_refuses_unreduced_losses():
    model = bp.Sequential([bp.Dense(4, 3, rng=0)])
    with pytest.raises(ValueError, match=r"^bench: expected a loss that gives one number"):
        bp.bench(model, (4,), loss=bp.MeanSquaredError(reduction="none"))


def test_a_bool_grad_output_is_refused_and_a_losss_repr_names_its_dtype():
    loss = bp.MeanSquaredError(dtype=np.float64)
    assert repr(loss) == "MeanSquaredError(dtype='float64')"
    loss.forward(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="expected grad_output as real numbers, got dtype bool"):
        loss.backward(True)
