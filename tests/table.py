"""The one table of every layer and loss. Adding a layer means adding one line here.

It drives the gradient checks and the contract tests in ``test_contract.py``.
Inputs are drawn away from kinks (ReLU at 0) and ties (max-pool) so central
differences are meaningful.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import backprop as bp


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal draws pushed at least 0.1 away from 0 (ReLU-family kinks)."""
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.1


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random permutation of well-separated values: no ties for max-pooling."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * (4.0 / n) + 0.01


@dataclass
class LayerCase:
    name: str
    make: Callable[[Any], bp.Layer]  # dtype -> a fresh layer
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] = away_from_zero
    tol: float = 1e-6
    casts_input: bool = False  # models cast their input once instead of rejecting it


@dataclass
class LossCase:
    name: str
    make: Callable[[], bp.Loss]
    out_shape: tuple[int, ...]
    target: Callable[[np.random.Generator], Any]


def _seq(dt):
    return bp.Sequential([bp.Dense(5, 7, dtype=dt, rng=0), bp.Tanh(dtype=dt),
                          bp.Dense(7, 3, dtype=dt, rng=1)])


LAYERS: list[LayerCase] = [
    # -- core (dense, activations, containers) ------------------------------------
    LayerCase("Dense", lambda dt: bp.Dense(5, 4, dtype=dt, rng=0), (6, 5), (6, 4)),
    LayerCase("Dense-nobias", lambda dt: bp.Dense(5, 4, bias=False, dtype=dt, rng=0),
              (6, 5), (6, 4)),
    LayerCase("Identity", lambda dt: bp.Identity(dtype=dt), (6, 5), (6, 5)),
    LayerCase("ReLU", lambda dt: bp.ReLU(dtype=dt), (6, 5), (6, 5)),
    LayerCase("ReLU-4d", lambda dt: bp.ReLU(dtype=dt), (2, 3, 4, 4), (2, 3, 4, 4)),
    LayerCase("LeakyReLU", lambda dt: bp.LeakyReLU(0.1, dtype=dt), (6, 5), (6, 5)),
    LayerCase("ELU", lambda dt: bp.ELU(0.7, dtype=dt), (6, 5), (6, 5)),
    LayerCase("GELU", lambda dt: bp.GELU(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Sigmoid", lambda dt: bp.Sigmoid(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Tanh", lambda dt: bp.Tanh(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Softmax", lambda dt: bp.Softmax(dtype=dt), (6, 5), (6, 5)),
    LayerCase("Sequential", _seq, (6, 5), (6, 3), casts_input=True),
    # -- layers issue (conv, pooling, reshape, normalization, dropout, residual) --
]

_labels = lambda rng: rng.integers(0, 4, size=6)  # noqa: E731

LOSSES: list[LossCase] = [
    LossCase("MeanSquaredError", bp.MeanSquaredError, (6, 3),
             lambda rng: rng.standard_normal((6, 3))),
    LossCase("Huber", lambda: bp.Huber(0.5), (6, 3), lambda rng: rng.standard_normal((6, 3))),
    LossCase("BinaryCrossEntropyWithLogits", bp.BinaryCrossEntropyWithLogits, (6, 3),
             lambda rng: rng.uniform(0, 1, (6, 3))),
    LossCase("SoftmaxCrossEntropy", bp.SoftmaxCrossEntropy, (6, 4), _labels),
    LossCase("SoftmaxCrossEntropy-smoothing", lambda: bp.SoftmaxCrossEntropy(0.2), (6, 4),
             _labels),
    LossCase("SoftmaxCrossEntropy-soft", bp.SoftmaxCrossEntropy, (6, 4),
             lambda rng: rng.dirichlet(np.ones(4), size=6)),
]
