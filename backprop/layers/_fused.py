"""Sequential's forward loop, which runs a ReLU followed by max pooling inside the pool.

The maximum is monotone, so ``max(relu(x)) = relu(max(x))``: pooling the ReLU's input
and rectifying the pooled output gives the same ``y``, with the ReLU's passes on the
pool's output (a quarter of the elements under a 2x2 pool) instead of its input. The
pool holds the fusion (``_MaxPool._relu_forward``): its cache is the one it would have
after the ReLU (the argmax of ``relu(x)``), plus the ReLU's mask ``keep = y != 0`` on the
pooled shape, which its backward applies to ``dy`` (``dy · keep``, as the ReLU's own
backward multiplies) before routing it; the ReLU's cache is a :class:`._cached.Fused`
marker, and its backward checks ``dy`` against its input's shape and passes it through.
Each layer's cache is its own, so any order of backward calls works as unfused: the
model's, a loop over ``reversed(model.layers)``, slices (``model[2:]``, then
``model[:2]``), ``input_grad=False``. The values are those of the layers run apart, bit
for bit (y, dx, every gradient, NaN and inf too, the pool's ``arg``), but for the sign of
a zero in ``dx`` where overlapping windows (stride < kernel) meet at an input <= 0 (the
layers apart sum the windows' ``dy`` and then mask the sum, the pool masks each term).

Only backprop's own ReLU and MaxPool1D/2D/3D are fused (the exact classes), with no
padding (offset 0 of every window is then an input, and none lies wholly in the ``-inf``
padding, where ``relu(max) = 0`` but ``max(relu) = -inf``), no padding mask flowing, and
neither layer with a method replaced on the instance or on its class: :func:`backprop.trace`,
``bp.bench``'s per-layer timing and the GEMM walk see each layer run on its own
(``GradientFlowMonitor`` reads the gradients only, which are the same). A forward by hand
(``relu.forward``, then ``pool.forward``) is never fused. Float32, 2-core AMD EPYC (busy),
interleaved medians of per-round ratios, with ``fit``'s malloc settings: ReLU +
MaxPool2D(2) forward + backward 64x32x28x28 4.49 -> 3.52 ms (0.80), 64x64x14x14 2.15 ->
1.86 ms (0.85) on one thread; the benchmark CNN's training step (batch 64) 0.94-0.95 of
the time before on one thread, 0.92-0.96 on two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._blame import blame_output
from ._cached import Fused
from ._masks import masked_forward
from .activations import ReLU
from .base import Layer
from .pooling import MaxPool1D, MaxPool2D, MaxPool3D

_METHODS = ("forward", "backward", "backward_params", "forward_masked")
_ORIGINAL = {cls: tuple(getattr(cls, m) for m in _METHODS)
             for cls in (ReLU, MaxPool1D, MaxPool2D, MaxPool3D)}


def _as_written(layer: Layer) -> bool:
    """Whether ``layer`` runs its class's own methods (none replaced on it or its class)."""
    return (not any(m in layer.__dict__ for m in _METHODS)
            and all(getattr(type(layer), m) is f
                    for m, f in zip(_METHODS, _ORIGINAL[type(layer)], strict=True)))


def fuses(layers: list[Layer], i: int) -> bool:
    """Whether ``layers[i]``, a ReLU, runs fused into ``layers[i + 1]``, a max pool."""
    if i + 1 >= len(layers) or type(layers[i + 1]) not in (MaxPool1D, MaxPool2D, MaxPool3D):
        return False
    pool = layers[i + 1]
    return not any(pool._p) and _as_written(layers[i]) and _as_written(pool)


def run(model: Any, x: np.ndarray, mask: np.ndarray | None, training: bool
        ) -> tuple[np.ndarray, np.ndarray | None]:
    """``model``'s layers on ``x`` in order (:meth:`Sequential.forward`'s loop): ``(y, the
    mask of y)``. A layer that raises is named (see :func:`._blame.blame_output`), after
    a training forward drops every layer's cache."""
    layers, skip = model.layers, False
    try:
        for i, layer in enumerate(layers):
            if skip:  # the pool, run with the ReLU before it
                skip = False
            elif mask is None and not layer.makes_mask:
                if type(layer) is ReLU and fuses(layers, i):
                    layer._check_batched(x)  # what the ReLU refuses, it names
                    relu, layer, skip = layer, layers[i + 1], True
                    y = layer._relu_forward(x, training)
                    if training:
                        relu._y = Fused(x.shape, type(layer).__name__)
                    x = y
                else:
                    x = layer.forward(x, training=training)
            else:
                x, mask = masked_forward(model, layer, x, mask, training)
    except BaseException as err:
        if training:  # else the layers below hold this batch's caches, those above
            model.clear_cache()  # an older one's: a backward would mix the two
        blame_output(model, layer, x, err)  # x: what the layer before handed on
        raise
    return x, mask
