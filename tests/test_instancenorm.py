"""InstanceNorm1D/2D against torch.nn.InstanceNorm1d/2d, and Dropout1D/2D's channel masks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")

OPTIONS = list(itertools.product([1, 2], [False, True], [False, True], [0.1, None]))


def _pair(d, c, affine, running, momentum, seed=0):
    ours = (bp.InstanceNorm1D if d == 1 else bp.InstanceNorm2D)(
        c, eps=1e-4, momentum=momentum, affine=affine, track_running_stats=running,
        dtype=np.float64)
    theirs = (torch.nn.InstanceNorm1d if d == 1 else torch.nn.InstanceNorm2d)(
        c, eps=1e-4, momentum=momentum, affine=affine, track_running_stats=running,
        dtype=torch.float64)
    if affine:
        rng = np.random.default_rng(seed)
        gamma, beta = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
        ours.params["gamma"][...], ours.params["beta"][...] = gamma, beta
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(gamma))
            theirs.bias.copy_(torch.tensor(beta))
    return ours, theirs


@pytest.mark.parametrize(("d", "affine", "running", "momentum"), OPTIONS)
def test_instance_norm_matches_torch_over_training_and_eval_steps(d, affine, running, momentum):
    c = 3
    ours, theirs = _pair(d, c, affine, running, momentum)
    rng = np.random.default_rng(1)
    shape = (4, c, 6) if d == 1 else (4, c, 3, 5)
    for step in range(3):  # training steps: outputs, gradients, running statistics
        x = rng.standard_normal(shape) * (step + 1) + step
        dy = rng.standard_normal(shape)
        theirs.train()
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.tensor(dy))
        y = ours.forward(x, training=True)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        if affine:
            np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad, rtol=1e-10)
            np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad, rtol=1e-10)
            theirs.zero_grad()
        if running:
            np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean,
                                       rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var,
                                       rtol=1e-12)
        theirs.eval()  # inference: the running statistics (or the sample's own without)
        x = rng.standard_normal(shape) + 0.5
        with torch.no_grad():
            want = theirs(torch.tensor(x)).numpy()
        np.testing.assert_allclose(ours.forward(x), want, rtol=1e-12, atol=1e-12)
    assert ("running_mean" in ours.buffers) == running
    if running and momentum is not None:  # the statistics did move: the check above bites
        assert not np.allclose(ours.buffers["running_mean"], 0)


def test_instance_norm_float32_stays_float32_and_matches_torch():
    ours = bp.InstanceNorm2D(2, affine=True, track_running_stats=True)
    theirs = torch.nn.InstanceNorm2d(2, affine=True, track_running_stats=True)
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4)).astype(np.float32)
    y = ours.forward(x, training=True)
    assert y.dtype == np.float32 and ours.buffers["running_var"].dtype == np.float32
    np.testing.assert_allclose(y, theirs(torch.tensor(x)).detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var, rtol=1e-6)


def test_instance_norm_running_variance_is_exact_for_tiny_variances():
    # var far below eps: recovering it as 1/inv_std² - eps would cancel away its digits
    ours, theirs = _pair(1, 2, False, True, 1.0)
    x = np.random.default_rng(3).standard_normal((2, 2, 8)) * 1e-5 + 3.0
    ours.forward(x, training=True)
    theirs.train()
    theirs(torch.tensor(x))
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var, rtol=1e-12)


def test_instance_norm_loads_torch_weights_and_running_statistics():
    theirs = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3),
                                 torch.nn.InstanceNorm1d(3, affine=True,
                                                         track_running_stats=True))
    theirs.train()
    theirs(torch.randn(4, 2, 9))  # running statistics away from 0 and 1
    with torch.no_grad():
        theirs[1].weight.uniform_(0.5, 1.5)
        theirs[1].bias.normal_()
    theirs.eval()
    model = bp.Sequential([bp.Conv1D(2, 3, 3, rng=0, dtype=np.float64),
                           bp.InstanceNorm1D(3, affine=True, track_running_stats=True,
                                             dtype=np.float64)])
    state = {k: v.double() for k, v in theirs.state_dict().items()}
    model.load_state_dict(bp.from_torch(model, state))
    x = np.random.default_rng(0).standard_normal((2, 2, 7))
    with torch.no_grad():
        want = theirs.double()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-12, atol=1e-12)


def test_from_torch_names_instance_norm_running_stats_that_differ():
    theirs = torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    with pytest.raises(ValueError, match="track_running_stats=True"):
        bp.from_torch(bp.InstanceNorm2D(3, affine=True), theirs.state_dict())


def test_instance_norm_save_load_and_repr(tmp_path):
    layer = bp.InstanceNorm2D(3, momentum=0.2, affine=True, track_running_stats=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    layer.forward(x, training=True)
    assert repr(layer) == "InstanceNorm2D(3, momentum=0.2, affine=True, track_running_stats=True)"
    assert repr(bp.InstanceNorm1D(4)) == "InstanceNorm1D(4)"
    bp.save(layer, tmp_path / "layer.npz")
    loaded = bp.load(tmp_path / "layer.npz")
    assert type(loaded) is bp.InstanceNorm2D and loaded.get_config() == layer.get_config()
    np.testing.assert_array_equal(loaded.forward(x), layer.forward(x))


def test_instance_norm_refuses_unbatched_and_single_positions():
    with pytest.raises(ValueError, match=r"InstanceNorm1D.*unbatched.*\(3, 5\).*x\[None\]"):
        bp.InstanceNorm1D(3).forward(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"InstanceNorm2D.*expected.*\(N, 3, H, W\)"):
        bp.InstanceNorm2D(3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match="InstanceNorm2D.*more than 1 position"):
        bp.InstanceNorm2D(3).forward(np.zeros((2, 3, 1, 1), np.float32), training=True)
    # with running statistics, inference on one position is fine (as in PyTorch)
    bp.InstanceNorm2D(3, track_running_stats=True).forward(np.zeros((2, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match="InstanceNorm1D.*momentum"):
        bp.InstanceNorm1D(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"InstanceNorm2D: expected eps in \[0.0, inf\)"):
        bp.InstanceNorm2D(3, eps=-1e-5)  # 0 is allowed, as in PyTorch


def test_torch_names_point_at_the_new_layers():
    for theirs, ours in [("InstanceNorm1d", "InstanceNorm1D"), ("InstanceNorm2d", "InstanceNorm2D"),
                         ("Dropout1d", "Dropout1D"), ("Dropout2d", "Dropout2D"),
                         ("SpatialDropout2D", "Dropout2D")]:
        with pytest.raises(AttributeError, match=f"backprop calls it {ours}"):
            getattr(bp, theirs)
    with pytest.raises(TypeError, match="Dropout2D.*backprop calls it rate"):
        bp.Dropout2D(p=0.2)


# -- Dropout1D / Dropout2D ------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "shape"), [(bp.Dropout1D, (200, 30, 7)),
                                            (bp.Dropout2D, (200, 30, 3, 4))])
def test_channel_dropout_zeroes_whole_channels_and_scales_survivors(cls, shape):
    layer = cls(0.3, rng=0)
    x = np.random.default_rng(1).uniform(1, 2, shape).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    ratio = (y / x).reshape(*shape[:2], -1)
    zero = (y == 0).reshape(ratio.shape)
    assert (zero == zero[..., :1]).all()  # whole channels dropped
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[..., :1], ratio.shape), rtol=1e-6)
    kept = ratio[..., 0] != 0
    np.testing.assert_allclose(ratio[..., 0][kept], 1 / 0.7, rtol=1e-6)
    assert abs(1 - kept.mean() - 0.3) < 0.03  # 6000 channels: 4 standard deviations
    dy = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy), dy * (y / x), rtol=1e-6)
    assert layer.forward(x) is x  # inference: the identity


def test_channel_dropout_masks_repeat_with_the_seed_and_differ_between_calls():
    x = np.ones((4, 8, 3, 3), np.float32)
    a, b = bp.Dropout2D(0.5, rng=3), bp.Dropout2D(0.5, rng=3)
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))


def test_channel_dropout_refuses_wrong_ranks_and_rates():
    with pytest.raises(ValueError, match=r"Dropout2D.*unbatched.*use Dropout1D"):
        bp.Dropout2D().forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"Dropout1D.*\(N, C, L\)"):
        bp.Dropout1D().forward(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="Dropout1D.*rate"):
        bp.Dropout1D(1.5)


def test_channel_dropout_saves_its_generator(tmp_path):
    layer = bp.Dropout1D(0.5, rng=4)
    bp.save(layer, tmp_path / "d.npz")
    loaded = bp.load(tmp_path / "d.npz")
    x = np.ones((3, 6, 2), np.float32)
    np.testing.assert_array_equal(loaded.forward(x, training=True),
                                  layer.forward(x, training=True))
    assert repr(loaded) == repr(layer) == "Dropout1D()"
