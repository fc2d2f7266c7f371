"""The benchmark workloads: data, our models, and their PyTorch / scikit-learn twins.

Every competitor trains the same network from the same initial weights (ours,
copied into theirs) on the same float data with SGD(lr=0.01, momentum=0.9), so
only the framework differs. Each ``*Trainer.epoch(seed)`` runs one epoch and
returns the wall time in seconds.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import backprop as bp
from backprop.data import batch_indices
from backprop.gemm import gemm_flops

LR, MOMENTUM = 0.01, 0.9


# -- data and models ----------------------------------------------------------------------
def synthetic(n: int, sample_shape: tuple[int, ...], dtype: Any, seed: int = 0,
              classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs labelled by a random linear teacher (plus noise): learnable."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *sample_shape), dtype=np.float32).astype(dtype, copy=False)
    teacher = rng.standard_normal((int(np.prod(sample_shape)), classes)).astype(x.dtype)
    scores = x.reshape(n, -1) @ teacher
    scores += rng.standard_normal(scores.shape, dtype=np.float32) * scores.std()
    return x, scores.argmax(axis=1).astype(np.int64)


def mlp(dtype: Any, seed: int = 0) -> bp.Sequential:
    """784-512-256-10 with ReLU."""
    return bp.Sequential([
        bp.Dense(784, 512, rng=seed, dtype=dtype), bp.ReLU(dtype=dtype),
        bp.Dense(512, 256, rng=seed + 1, dtype=dtype), bp.ReLU(dtype=dtype),
        bp.Dense(256, 10, rng=seed + 2, dtype=dtype),
    ])


def cnn(dtype: Any, seed: int = 0) -> bp.Sequential:
    """Two conv-ReLU-pool blocks on 1x28x28, then 3136-128-10."""
    return bp.Sequential([
        bp.Conv2D(1, 32, 3, padding=1, rng=seed, dtype=dtype), bp.ReLU(dtype=dtype),
        bp.MaxPool2D(2, dtype=dtype),
        bp.Conv2D(32, 64, 3, padding=1, rng=seed + 1, dtype=dtype), bp.ReLU(dtype=dtype),
        bp.MaxPool2D(2, dtype=dtype),
        bp.Flatten(dtype=dtype),
        bp.Dense(3136, 128, rng=seed + 2, dtype=dtype), bp.ReLU(dtype=dtype),
        bp.Dense(128, 10, rng=seed + 3, dtype=dtype),
    ])


# -- ours -----------------------------------------------------------------------------------
class OursTrainer:
    """``model.fit(..., epochs=1)`` per epoch (an explicit loop when fit is missing)."""

    name = "backprop"

    def __init__(self, model: bp.Sequential, x: np.ndarray, y: np.ndarray, batch_size: int):
        self.model, self.x, self.y, self.batch_size = model, x, y, batch_size
        self.loss = bp.SoftmaxCrossEntropy()
        self.optimizer = bp.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        self.uses_fit = hasattr(bp.Sequential, "fit")

    def epoch(self, seed: int, callbacks: tuple = ()) -> float:
        start = time.perf_counter()
        if self.uses_fit:
            self.model.fit(self.x, self.y, loss=self.loss, optimizer=self.optimizer, epochs=1,
                           batch_size=self.batch_size, progress=False, seed=seed,
                           callbacks=list(callbacks))
        else:  # pragma: no cover - the fallback before fit landed
            self.explicit_epoch(seed)
        return time.perf_counter() - start

    def warm(self, steps: int = 2) -> None:
        """A few untimed steps: wakes BLAS threads and refills caches after a competitor ran."""
        xb, yb = self.x[:self.batch_size], self.y[:self.batch_size]
        for _ in range(steps):
            self.loss.forward(self.model.forward(xb, training=True), yb)
            self.model.backward(self.loss.backward(), input_grad=False)
            self.optimizer.step()

    def explicit_epoch(self, seed: int, losses: list[float] | None = None) -> float:
        """The step of fit written out (same batch order as ``fit(seed=seed)``)."""
        start = time.perf_counter()
        model, loss, opt = self.model, self.loss, self.optimizer
        rng = np.random.default_rng(seed)
        for idx in batch_indices(len(self.x), self.batch_size, shuffle=True, rng=rng):
            value = loss.forward(model.forward(self.x[idx], training=True), self.y[idx])
            model.backward(loss.backward(), input_grad=False)
            opt.step()
            if losses is not None:
                losses.append(value)
        return time.perf_counter() - start


# -- PyTorch --------------------------------------------------------------------------------
def torch_mirror(model: bp.Sequential) -> Any:
    """``torch.nn.Sequential`` with our layers' exact weights (Dense W is stored transposed)."""
    import torch
    from torch import nn

    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[model.dtype]
    mods: list[Any] = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            m = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias, dtype=dtype)
            _copy(m, {"weight": layer.params["W"].T, "bias": layer.params.get("b")})
        elif kind == "Conv2D":
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          stride=layer.stride, padding=layer.padding, bias=layer.bias,
                          dtype=dtype)
            _copy(m, {"weight": layer.params["W"], "bias": layer.params.get("b")})
        elif kind == "MaxPool2D":
            m = nn.MaxPool2d(layer.kernel_size, stride=layer.stride)  # None: the kernel
        else:
            m = {"ReLU": nn.ReLU, "Flatten": nn.Flatten, "Sigmoid": nn.Sigmoid,
                 "Tanh": nn.Tanh}[kind]()
        mods.append(m)
    return nn.Sequential(*mods)


def _copy(module: Any, arrays: dict[str, np.ndarray | None]) -> None:
    import torch

    with torch.no_grad():
        for name, a in arrays.items():
            if a is not None:
                getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(a)))


class TorchTrainer:
    """The idiomatic eager loop: index, forward, cross_entropy, zero_grad, backward, step."""

    name = "PyTorch"

    def __init__(self, model: bp.Sequential, x: np.ndarray, y: np.ndarray, batch_size: int):
        import torch

        self.torch = torch
        self.net = torch_mirror(model)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.n, self.batch_size = len(x), batch_size
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM)
        self.loss = torch.nn.CrossEntropyLoss()

    def warm(self, steps: int = 2) -> None:
        """A few untimed steps (PyTorch's thread pool sleeps while ours runs)."""
        for _ in range(steps):
            self._step(self.x[:self.batch_size], self.y[:self.batch_size])

    def _step(self, xb: Any, yb: Any) -> float:
        loss = self.loss(self.net(xb), yb)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()  # fit records every batch loss too

    def epoch(self, seed: int, losses: list[float] | None = None) -> float:
        """Same batches as ``fit(seed=seed)``: one ``default_rng(seed).permutation(n)``."""
        rng = np.random.default_rng(seed)
        batches = [self.torch.from_numpy(idx) for idx in
                   batch_indices(self.n, self.batch_size, shuffle=True, rng=rng)]
        start = time.perf_counter()
        for idx in batches:
            value = self._step(self.x[idx], self.y[idx])
            if losses is not None:
                losses.append(value)
        return time.perf_counter() - start

    def weights(self) -> list[np.ndarray]:
        """Parameters in our layout (Linear weights transposed back)."""
        out = []
        for m in self.net:
            for name, p in m.named_parameters():
                a = p.detach().numpy()
                out.append(a.T if name == "weight" and a.ndim == 2 else a)
        return out


# -- scikit-learn ---------------------------------------------------------------------------
class SklearnTrainer:
    """``MLPClassifier.partial_fit``: one epoch, its own index shuffle, SGD momentum kept.

    ``partial_fit`` is called once untimed (on one batch) to build the network; then
    our initial weights are copied in (its momentum buffers keep that first batch's
    velocity: a throughput measurement, not a curve to compare). It also computes the
    loss of every batch, and each timed ``partial_fit`` validates and binarizes the
    labels of the whole set first (about 28 ms of a 1.2-2.2 s epoch, 1-2 %, measured in
    session 33): counted, as a user of ``MLPClassifier`` pays it.
    """

    name = "sklearn"

    def __init__(self, model: bp.Sequential, x: np.ndarray, y: np.ndarray, batch_size: int):
        from sklearn.neural_network import MLPClassifier

        dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
        self.x, self.y, self.batch_size = x, y, batch_size
        self.clf = MLPClassifier(
            hidden_layer_sizes=tuple(d.out_features for d in dense[:-1]), activation="relu",
            solver="sgd", learning_rate="constant", learning_rate_init=LR, momentum=MOMENTUM,
            nesterovs_momentum=False, alpha=0.0, batch_size=batch_size, max_iter=1,
            shuffle=True, random_state=0, tol=0.0, n_iter_no_change=10**9)
        classes = np.arange(dense[-1].out_features)  # all ours, present in y or not
        self.clf.partial_fit(x[:batch_size], y[:batch_size], classes=classes)
        self.clf.coefs_ = [d.params["W"].copy() for d in dense]
        self.clf.intercepts_ = [d.params["b"].copy() for d in dense]

    def warm(self) -> None:
        self.clf.partial_fit(self.x[:self.batch_size], self.y[:self.batch_size])

    def epoch(self, seed: int) -> float:
        start = time.perf_counter()
        self.clf.partial_fit(self.x, self.y)
        return time.perf_counter() - start


# -- GEMM bound -----------------------------------------------------------------------------
class GemmBound:
    """An "epoch" of only the matrix products, over the epoch's real batches: the GEMM time
    of a full batch's step ``full`` times, plus one step of the last, short batch of
    ``n % batch_size`` samples that ``fit``, PyTorch and scikit-learn end the epoch with."""

    name = "GEMM bound"

    def __init__(self, model: bp.Sequential, x: np.ndarray, batch_size: int):
        from backprop.gemm import gemm_time

        self.gemm_time, self.dtype = gemm_time, model.dtype
        self.full, short = divmod(len(x), batch_size)
        self.shapes = model.gemm_shapes((batch_size, *x.shape[1:]), input_grad=False)
        self.short_shapes = (model.gemm_shapes((short, *x.shape[1:]), input_grad=False)
                             if short else [])
        self.flops = gemm_flops(self.shapes)  # of a full batch's step
        self.epoch_flops = self.full * self.flops + gemm_flops(self.short_shapes)

    def warm(self) -> None:
        for shapes in (self.shapes, self.short_shapes):
            if shapes:
                self.gemm_time(shapes, self.dtype, repeats=1, min_time=0.005)

    def epoch(self, seed: int) -> float:
        seconds = self.full * self.gemm_time(self.shapes, self.dtype, repeats=3, min_time=0.05)
        if self.short_shapes:
            seconds += self.gemm_time(self.short_shapes, self.dtype, repeats=3, min_time=0.05)
        return seconds
