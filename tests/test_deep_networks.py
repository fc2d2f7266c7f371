"""End-to-end: CNNs learn real and synthetic data; depth needs BatchNorm or skip connections.

These train real models (a few seconds each), with fixed seeds so the numbers
are reproducible. Tiny GEMMs run faster on one BLAS thread, and a busy machine
makes multi-threaded BLAS far slower still, so the models here use one.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import backprop as bp


@pytest.fixture(autouse=True)
def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dev dependency
        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(1, user_api="blas")
    with limit:
        yield


def _fit(model, x, y, stages, seed=0, batch_size=32):
    """Adam through ``stages`` of ``(lr, epochs)``: a step-decayed learning rate."""
    opt = bp.Adam(model.parameters(), lr=stages[0][0])
    for lr, epochs in stages:
        opt.lr = lr
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=epochs,
                  batch_size=batch_size, seed=seed, progress=False)
    return model


def _accuracy(model, x, y):
    return model.evaluate(x, y, loss=bp.SoftmaxCrossEntropy(), metrics=["accuracy"])["accuracy"]


# -- a 2-D CNN on real handwritten digits ------------------------------------------------
def _shifted_copies(x, y):
    """The images plus their four one-pixel shifts: cheap, label-preserving augmentation."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2:]
    shifts = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    moved = [xp[:, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in shifts]
    return np.concatenate([x, *moved]), np.tile(y, 1 + len(shifts))


def test_cnn_reaches_98_percent_on_real_digits():
    (x_train, y_train), (x_test, y_test) = bp.datasets.digits(images=True, seed=0)  # 80/20
    assert x_train.shape[1:] == (1, 8, 8) and x_train.max() <= 1.0  # pixels / 16
    model = bp.Sequential([
        bp.Conv2D(1, 16, 3, padding=1, rng=0), bp.ReLU(),                    # 16 x 8 x 8
        bp.Conv2D(16, 32, 3, padding=1, rng=1), bp.ReLU(), bp.MaxPool2D(2),  # 32 x 4 x 4
        bp.Flatten(), bp.Dropout(0.3, rng=0), bp.Dense(512, 10, rng=2),
    ])
    x_aug, y_aug = _shifted_copies(x_train, y_train)
    _fit(model, x_aug, y_aug, [(2e-3, 5), (2e-4, 3)])
    accuracy = _accuracy(model, x_test, y_test)
    print(f"CNN digits test accuracy: {accuracy:.4f}")
    assert accuracy >= 0.98


# -- a 1-D CNN against an MLP of the same size on shifted waveforms --------------------------
def _waveforms(n, rng, length=64, width=16, noise=0.4):
    """One of four 16-sample motifs at a random position in Gaussian noise; label = motif."""
    t = np.arange(width) / width
    motifs = np.stack([np.sin(2 * np.pi * t), np.where(t < 0.5, 1.0, -1.0),
                       1 - 4 * np.abs(t - 0.5), 2 * t - 1])
    y = rng.integers(0, len(motifs), n)
    start = rng.integers(0, length - width + 1, n)
    x = rng.standard_normal((n, length)) * noise
    x[np.arange(n)[:, None], start[:, None] + np.arange(width)] += \
        motifs[y] * rng.uniform(0.8, 1.2, (n, 1))
    return x.astype(np.float32), y


def test_conv1d_beats_a_same_size_mlp_on_shifted_patterns():
    rng = np.random.default_rng(0)
    x_train, y_train = _waveforms(500, rng)
    x_test, y_test = _waveforms(1000, rng)
    cnn = bp.Sequential([
        bp.Conv1D(1, 8, 9, padding=4, rng=0), bp.ReLU(), bp.MaxPool1D(2),
        bp.Conv1D(8, 16, 5, padding=2, rng=1), bp.ReLU(), bp.GlobalAvgPool(),
        bp.Dense(16, 4, rng=2),
    ])
    hidden = -(-(cnn.num_params - 4) // (64 + 1 + 4))  # the smallest MLP at least as large
    mlp = bp.Sequential([bp.Dense(64, hidden, rng=0), bp.ReLU(), bp.Dense(hidden, 4, rng=1)])
    assert cnn.num_params <= mlp.num_params < 1.1 * cnn.num_params
    _fit(cnn, x_train[:, None, :], y_train, [(1e-2, 40)])
    _fit(mlp, x_train, y_train, [(1e-2, 40)])
    cnn_acc = _accuracy(cnn, x_test[:, None, :], y_test)
    mlp_acc = _accuracy(mlp, x_test, y_test)
    print(f"held-out accuracy: 1-D CNN {cnn_acc:.3f} ({cnn.num_params} params), "
          f"MLP {mlp_acc:.3f} ({mlp.num_params} params)")
    assert cnn_acc >= 0.8
    assert cnn_acc >= mlp_acc + 0.2


# -- vanishing gradients in a 30-layer sigmoid MLP, and two cures ----------------------------
DEPTH, WIDTH = 30, 32


def _plain(rng=0):
    layers = [bp.Dense(64, WIDTH, rng=rng), bp.Sigmoid()]
    for i in range(1, DEPTH):
        layers += [bp.Dense(WIDTH, WIDTH, rng=rng + i), bp.Sigmoid()]
    return bp.Sequential([*layers, bp.Dense(WIDTH, 10, rng=rng + DEPTH)])


def _batchnorm(rng=0):
    layers = []
    for i in range(DEPTH):
        layers += [bp.Dense(64 if i == 0 else WIDTH, WIDTH, bias=False, rng=rng + i),
                   bp.BatchNorm(WIDTH), bp.Sigmoid()]
    return bp.Sequential([*layers, bp.Dense(WIDTH, 10, rng=rng + DEPTH)])


def _residual(rng=0):
    blocks = [bp.Residual(bp.Sequential([bp.Sigmoid(), bp.Dense(WIDTH, WIDTH, rng=rng + i)]))
              for i in range(1, DEPTH)]  # pre-activation blocks: x + W·sigmoid(x)
    return bp.Sequential([bp.Dense(64, WIDTH, rng=rng), *blocks, bp.Sigmoid(),
                          bp.Dense(WIDTH, 10, rng=rng + DEPTH)])


def _first_to_last_gradient_ratio(model, x, y):
    """``||dW_first|| / ||dW_last||`` of the weight matrices, for one batch."""
    loss = bp.SoftmaxCrossEntropy()
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())
    weights = [p for p in model.parameters() if p.name.endswith("W")]
    return float(np.linalg.norm(weights[0].grad) / np.linalg.norm(weights[-1].grad))


def _sgd_loss_drop(model, x, y):
    loss = bp.SoftmaxCrossEntropy()
    before = model.evaluate(x, y, loss=loss)["loss"]
    opt = bp.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.fit(x, y, loss=loss, optimizer=opt, epochs=5, batch_size=64, seed=0, progress=False)
    return before, model.evaluate(x, y, loss=loss)["loss"]


@pytest.mark.parametrize("cure", [_batchnorm, _residual], ids=["BatchNorm", "Residual"])
def test_deep_sigmoid_gradient_vanishes_and_batchnorm_or_residual_cures_it(cure):
    (x, y), _ = bp.datasets.digits(seed=0)
    plain, fixed = _plain(), cure()
    assert sum(isinstance(m, bp.Dense) for m in plain) == DEPTH + 1
    plain_ratio = _first_to_last_gradient_ratio(plain, x[:256], y[:256])
    fixed_ratio = _first_to_last_gradient_ratio(fixed, x[:256], y[:256])
    print(f"||dW_first|| / ||dW_last||: plain {plain_ratio:.1e}, "
          f"{cure.__name__[1:]} {fixed_ratio:.1e}")
    assert plain_ratio < 1e-3
    assert fixed_ratio > 1e-2
    plain_before, plain_after = _sgd_loss_drop(plain, x, y)
    before, after = _sgd_loss_drop(fixed, x, y)
    print(f"SGD, 5 epochs, train loss: plain {plain_before:.3f} -> {plain_after:.3f}, "
          f"{cure.__name__[1:]} {before:.3f} -> {after:.3f}")
    assert plain_after > 0.9 * np.log(10)  # the plain stack learns nothing: chance level
    assert after < 0.5 * before and after < 1.0
