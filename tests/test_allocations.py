"""A steady-state training step allocates no parameter-sized arrays.

A step legitimately allocates activations and deltas (their size scales with the
batch); parameter-sized arrays (a weight matrix, the flat buffer) must not be
allocated: gradients are written into their preallocated buffers, and optimizers
update in place with state and scratch made once. With a batch of one sample every
activation here is eight times smaller than the smallest weight matrix, so the
tracemalloc peak during ``backward`` or ``step`` separates the two cleanly.
"""

import tracemalloc
from functools import partial

import numpy as np
import pytest

import backprop as bp

OPTIMIZERS = {
    "sgd": lambda p: bp.SGD(p, lr=0.01),
    "sgd_momentum": lambda p: bp.SGD(p, lr=0.01, momentum=0.9),
    "sgd_nesterov_wd": lambda p: bp.SGD(p, lr=0.01, momentum=0.9, nesterov=True,
                                        weight_decay=1e-4),
    "sgd_dampening_clip": lambda p: bp.SGD(p, lr=0.01, momentum=0.9, dampening=0.1,
                                           clip_norm=0.5),
    "adam": lambda p: bp.Adam(p, lr=1e-3),
    "adam_amsgrad_wd": lambda p: bp.Adam(p, lr=1e-3, amsgrad=True, weight_decay=1e-4),
    "adamw": lambda p: bp.AdamW(p, lr=1e-3),
    "rmsprop": lambda p: bp.RMSProp(p, lr=1e-3),
    "rmsprop_centered_momentum_wd": lambda p: bp.RMSProp(p, lr=1e-3, centered=True,
                                                         momentum=0.9, weight_decay=1e-4),
    "adagrad_wd_decay": lambda p: bp.Adagrad(p, lr=0.01, weight_decay=1e-4, lr_decay=1e-3),
    "nadam_wd": lambda p: bp.NAdam(p, lr=1e-3, weight_decay=1e-4),
    "nadam_decoupled": lambda p: bp.NAdam(p, lr=1e-3, weight_decay=1e-2,
                                          decoupled_weight_decay=True),
    "adamax_wd": lambda p: bp.Adamax(p, lr=1e-3, weight_decay=1e-4),
    "radam_wd": lambda p: bp.RAdam(p, lr=1e-3, weight_decay=1e-4),
    "radam_decoupled": lambda p: bp.RAdam(p, lr=1e-3, weight_decay=1e-2,
                                          decoupled_weight_decay=True),
    "adadelta_wd": lambda p: bp.Adadelta(p, weight_decay=1e-4),
}


def mlp():
    return bp.Sequential([bp.Dense(32, 256, rng=0), bp.ReLU(), bp.Dense(256, 128, rng=1),
                          bp.ReLU(), bp.Dense(128, 16, rng=2)])


def smallest_weight_bytes(model):
    return min(p.value.nbytes for p in model.parameters() if p.value.ndim == 2)


def peak_growth(fn):
    """Bytes ``fn`` had alive at its peak beyond what was alive before, and after it."""
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    fn()
    after, peak = tracemalloc.get_traced_memory()
    return peak - before, after - before


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_step_allocates_no_parameter_sized_arrays(name):
    model, loss = mlp(), bp.SoftmaxCrossEntropy()
    optimizer = OPTIMIZERS[name](model.parameters())
    x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    y = np.array([3])
    limit = smallest_weight_bytes(model)
    assert max(256 * x.itemsize, 16 * x.itemsize) * 8 <= limit  # activations are far smaller
    views = [(p.value.__array_interface__["data"][0], p.grad.__array_interface__["data"][0])
             for p in model.parameters()]
    tracemalloc.start()
    try:
        for i in range(5):  # two warm-up steps, then three measured ones
            loss.forward(model.forward(x, training=True), y)
            dy = loss.backward()
            backward = peak_growth(partial(model.backward, dy, input_grad=False))
            step = peak_growth(optimizer.step)
            if i >= 2:
                assert backward[0] < limit, f"backward allocated {backward[0]} bytes at peak"
                assert step[0] < limit, f"{name}.step() allocated {step[0]} bytes at peak"
                assert step[1] < limit, f"{name}.step() kept {step[1]} new bytes alive"
    finally:
        tracemalloc.stop()
    assert views == [(p.value.__array_interface__["data"][0], p.grad.__array_interface__["data"][0])
                     for p in model.parameters()]  # nothing rebound: still the flat buffers


def test_allocation_check_catches_a_parameter_sized_temporary():
    model = mlp()
    grads = model.flat_grads
    tracemalloc.start()
    try:
        peak, _ = peak_growth(lambda: grads * 2.0)
    finally:
        tracemalloc.stop()
    assert peak >= smallest_weight_bytes(model)
