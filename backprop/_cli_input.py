"""The samples ``evaluate`` hands a saved model: images ``(N, C, H, W)`` or flattened rows,
whichever layout the model takes (see :mod:`.__main__`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import Flatten
from .layers._stateful import states_kept
from .trace import paused


def flat_first(model: Any) -> bool:
    """Whether the model's first layer with weights (after any Dropout, Identity or
    activation) is Dense: it most likely takes flattened samples."""
    for layer in (model, *(la for _, la in model.named_layers())):
        if layer.children():  # a container: its layers come next
            continue
        if layer.params or hasattr(layer, "in_channels") or isinstance(layer, Flatten):
            return hasattr(layer, "in_features")
    return False


def _refusal(model: Any, x: np.ndarray) -> Exception | None:
    """The error the model raises on the first two samples of ``x`` (None: it takes them),
    from one inference forward that records no trace and moves no state."""
    try:
        with paused(), states_kept(model), np.errstate(all="ignore"):
            model.forward(x[:2], training=False)
    except (ValueError, TypeError) as err:
        return err
    return None


def fit_input(model: Any, x: np.ndarray, spec: str, given: bool) -> np.ndarray:
    """``x`` in the layout the model takes: images, or rows for a model that refuses the
    images but takes them flattened (a Dense first, or a BatchNorm(64) / LayerNorm(64)
    before one); rows stay as they are. The layout of the first layer with weights is tried
    first. If the model takes neither, a ValueError names the data, and, when ``--data``
    was not ``given``, says that it defaulted to the digits and which option to pass."""
    if x.ndim == 2:  # rows already: the model's own checks speak for it
        return x
    flat = x.reshape(len(x), -1)
    errors = []
    for candidate in [flat, x] if flat_first(model) else [x, flat]:
        err = _refusal(model, candidate)
        if err is None:
            return candidate
        errors.append(err)
    hint = ("; --data defaulted to 'digits': pass the data the model was trained on with "
            "--data PATH (an .npz or a folder of MNIST IDX files)" if not given else "")
    raise ValueError(f"--data: expected samples the model takes, got x of shape {x.shape} "
                     f"from {spec}, refused as it is and flattened to {flat.shape}: "
                     f"{errors[0]}{hint}")
