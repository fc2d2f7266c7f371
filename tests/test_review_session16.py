"""Regressions found by the session-16 review's differential fuzz against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_embedding_scale_grad_by_freq_with_unread_rows_warns_nothing():
    # indices 0 and 2 leave row 1 unread: its count 0 must not be inverted (1 / 0 warned,
    # an error under filterwarnings=error)
    emb = bp.Embedding(4, 3, scale_grad_by_freq=True, dtype=np.float64, rng=0)
    emb.forward(np.array([[0, 2, 2]]), training=True)
    emb.backward(np.ones((1, 3, 3)))
    np.testing.assert_array_equal(emb.grads["W"], [[1.0] * 3, [0.0] * 3, [1.0] * 3, [0.0] * 3])


def test_embedding_max_norm_norm_in_the_weights_dtype_as_torch():
    torch = pytest.importorskip("torch")
    # a float32 row renormed to max_norm=1e-3 reads back a float32 norm of
    # float32(1e-3) > 1e-3: PyTorch shrinks it again (by 1e-7 / 1e-3 = 1e-4 relative)
    w = np.array([[-2.3, -0.2, -1.2], [0.5, -1.0, 2.0]], np.float32)
    t = torch.nn.Embedding(2, 3, max_norm=1e-3)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(w))
    emb = bp.Embedding(2, 3, max_norm=1e-3, rng=0)
    emb.params["W"][...] = w
    idx = np.array([[0, 1]])
    for _ in range(3):
        y = emb.forward(idx)
        ty = t(torch.tensor(idx)).detach().numpy()
        np.testing.assert_allclose(y, ty, rtol=1e-6, atol=0)
        np.testing.assert_allclose(emb.params["W"], t.weight.detach().numpy(), rtol=1e-6,
                                   atol=0)


# -- the code review's findings ----------------------------------------------------------------
def test_reduce_on_plateau_floors_each_parameter_group_as_torch():
    torch = pytest.importorskip("torch")
    model = bp.Sequential([bp.Dense(2, 2, rng=0), bp.Dense(2, 2, rng=1)])
    opt = bp.SGD([{"params": model[0].parameters(), "lr": 0.01},
                  {"params": model[1].parameters()}], lr=0.1)
    cb = bp.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_lr=0.05)
    cb.optimizer = opt
    ts = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    topt = torch.optim.SGD([{"params": [ts[0]], "lr": 0.01}, {"params": [ts[1]]}], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=0,
                                                       min_lr=0.05)
    for value in [1.0, 2.0, 3.0, 4.0, 0.5, 0.6, 0.7]:
        cb.on_epoch_end(0, {"loss": value})
        sched.step(value)
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                   [g["lr"] for g in topt.param_groups], rtol=1e-15)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.05]  # the lower group not lowered


def test_reduce_on_plateau_without_groups_is_unchanged():
    model = bp.Sequential([bp.Dense(2, 2, rng=0)])
    opt = bp.SGD(model.parameters(), lr=0.1)
    cb = bp.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_lr=0.03)
    cb.optimizer = opt
    for value in [1.0, 2.0, 3.0, 4.0]:
        cb.on_epoch_end(0, {"loss": value})
    assert opt.lr == 0.03 and "reduced" not in repr(cb.plateau)


@pytest.mark.parametrize("groups", [1, 4])
def test_channel_shuffle_returns_new_arrays_when_it_moves_nothing(groups):
    x = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    layer = bp.ChannelShuffle(groups)
    y = layer.forward(x, training=True)
    dy = np.ones_like(y)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x) and not np.shares_memory(dx, dy)


def test_fold_refuses_an_input_without_rows():
    with pytest.raises(ValueError, match=r"C >= 1.*got \(2, 0, 30\)"):
        bp.Fold((4, 5), 2, padding=1).forward(np.zeros((2, 0, 30), np.float32))


def test_conv_transpose_1d_output_size_message_says_one_int():
    with pytest.raises(ValueError, match=r"expected output_size as one int \(the spatial size\)"):
        bp.ConvTranspose1D(2, 2, 3).forward(np.zeros((1, 2, 4), np.float32), (5, 6))


def test_a_refused_param_group_leaves_a_plain_optimizer_as_it_was():
    model = bp.Sequential([bp.Dense(2, 3, rng=0), bp.Dense(3, 2, rng=1)])
    opt = bp.SGD(model.parameters(), lr=0.1, clip_norm=1.0)
    clipped = opt._clipped
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": model[0].parameters()})
    assert opt._clipped is clipped and len(opt.param_groups) == 1


def test_bench_refuses_a_grouped_optimizer_of_another_model():
    model = bp.Sequential([bp.Dense(3, 3, rng=0), bp.Dense(3, 3, rng=1)])
    other = bp.Sequential([bp.Dense(3, 3, rng=2), bp.Dense(3, 3, rng=3)])
    opt = bp.SGD([{"params": other[1].parameters(), "lr": 0.5},
                  {"params": other[0].parameters()}], lr=0.1)
    with pytest.raises(ValueError, match="bench: expected an optimizer over model.parameters"):
        bp.bench(model, (3,), 4, optimizer=opt, steps=1)
