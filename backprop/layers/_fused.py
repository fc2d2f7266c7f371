"""Sequential's forward loop, which runs a ReLU followed by max pooling as the pool first.

The maximum is monotone, so ``max(relu(x)) = relu(max(x))``: pooling the ReLU's input and
rectifying the pooled output gives the same ``y``, with the ReLU's passes on the pool's
output (a quarter of the elements under a 2x2 pool) instead of its input. The backward
then runs the ReLU first (``dz = dy · (y != 0)``, on the pooled shape) and routes ``dz``
to each window's argmax of ``x``. The gradient has the same values: where a window's
maximum is positive, ``x`` and ``relu(x)`` have the same first maximum, which gets ``dy``
either way; where it is 0 or negative, both give the window zeros (their signs may differ:
``0·dy`` is -0.0 for a negative ``dy``). A NaN is the maximum of both and passes ``dy``;
a window of ``-inf`` gets zeros. ReLU and MaxPool2D(2), forward + backward, float32, 2-core
AMD EPYC (medians of 15 interleaved rounds): 64x32x28x28 4.25 -> 2.91 ms, 64x64x14x14 2.12
-> 1.75 ms (the benchmark CNN's two pairs; its training step ~1.5 ms faster).

Only backprop's own ReLU and MaxPool1D/2D/3D are paired, and only while neither has a
method replaced on the instance (:func:`backprop.trace`, ``bp.bench``'s per-layer timing):
those see each layer run on its own. Their caches then hold the pooled shapes: the
ReLU's ``y`` is the rectified pool output, the pool's argmax is that of ``x``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._blame import blame_output
from ._masks import masked_forward
from .activations import ReLU
from .base import Layer
from .pooling import MaxPool1D, MaxPool2D, MaxPool3D

_POOLS = (MaxPool1D, MaxPool2D, MaxPool3D)
_METHODS = ("forward", "backward", "backward_params")


def pools_first(layers: list[Layer], i: int) -> bool:
    """Whether ``layers[i]`` is a ReLU that ``layers[i + 1]``, a max pool, can run after
    (not the first layer: the backward's last layer runs on its own, see
    :meth:`Sequential.backward`)."""
    if (not 0 < i < len(layers) - 1 or type(layers[i]) is not ReLU
            or type(layers[i + 1]) not in _POOLS):
        return False
    return not any(m in la.__dict__ for la in layers[i:i + 2] for m in _METHODS)


def run(model: Any, x: np.ndarray, mask: np.ndarray | None, training: bool
        ) -> tuple[np.ndarray, np.ndarray | None]:
    """``model``'s layers on ``x`` in order (:meth:`Sequential.forward`'s loop): ``(y, the
    mask of y)``. A training forward notes the ReLUs it ran after their pools in
    ``model._pooled_first`` (for :func:`backward_order`). A layer that raises is named (see
    :func:`._blame.blame_output`), after a training forward drops every layer's cache."""
    layers, pooled, skip = model.layers, [], False
    try:
        for i, layer in enumerate(layers):
            if skip:  # the pool, already run before its ReLU
                skip = False
            elif mask is None and not layer.makes_mask:
                if skip := pools_first(layers, i):
                    pooled.append(i)
                    layer = layers[i + 1]  # named if it refuses x
                    x = layers[i].forward(layer.forward(x, training=training),
                                          training=training)
                else:
                    x = layer.forward(x, training=training)
            else:
                x, mask = masked_forward(model, layer, x, mask, training)
    except BaseException as err:
        if training:  # else the layers below hold this batch's caches, those above
            model.clear_cache()  # an older one's: a backward would mix the two
        blame_output(model, layer, x, err)  # x: what the layer before handed on
        raise
    if training:
        model._pooled_first = tuple(pooled)
    return x, mask


def backward_order(layers: list[Layer], pooled_first: tuple[int, ...], stop: int
                   ) -> list[Layer]:
    """The layers above ``stop`` from the top down, each pair that the last training
    forward ran pool first (the indices of its ReLUs) in its ReLU, pool order."""
    order = layers[stop + 1:]
    for i in pooled_first:
        if i > stop:
            j = i - stop - 1
            order[j], order[j + 1] = order[j + 1], order[j]
    return order[::-1]

