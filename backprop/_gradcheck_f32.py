"""The float32 half of :func:`backprop.check_gradients`: a float32 layer's own backward
against its float64 copy's, so that code only float32 runs is checked too."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ._gradcheck_compare import relative, worst_entry
from .layers.embedding import index_layer

# A float32 layer's own gradients may differ from its float64 copy's by this much,
# relative to the larger of the entry, 1% of its tensor's largest and 0.1% of the
# largest of all: over the layer table the worst was 5e-6 (over digits models with
# BatchNorm, LayerNorm, 15 layers: differences up to 5.5e-7 of the largest), and a
# float32-only bug of 1% shows as 1e-2.
_F32_TOL = 1e-3


def float32_agrees(given: Any, f64: Any, x: np.ndarray, result: Any, backward: Any) -> None:
    """Run the float32 layer's own backward on ``x`` and compare it with the float64
    copy's; a disagreement fails ``result`` (a bug only in float32 code, which the
    float64 slopes never run)."""
    indices = index_layer(given) is not None
    if not indices and np.abs(x).max(initial=0) > np.finfo(np.float32).max:
        result.notes.append("x holds values beyond float32's range, so the float32 "
                            "layer's own gradients were not compared")
        return
    r = np.random.default_rng(1).standard_normal(np.shape(copy.deepcopy(f64).forward(x)))
    x32 = x.astype(np.int64 if indices else np.float32)
    unused: list[str] = []
    y32, dx32, got = backward(given, x32, r.astype(np.float32), unused)
    y64, dx64, want = backward(f64, x, r, unused)
    upcast = [f"{n} in {a.dtype}" for n, a in (("its forward returns y", y32), (
        "its backward returns dx", dx32)) if getattr(a, "dtype", given.dtype) != given.dtype]
    if upcast:  # a Sequential refuses it at once; named here, where the layer is written
        result.passed = False
        result.notes.append(f"the {given.dtype} layer's own passes change the dtype: "
                            f"{' and '.join(upcast)} (float32 stays float32: a float64 "
                            f"constant or an astype upcasts)")
    if not np.allclose(y32, y64, rtol=1e-3, atol=1e-3 * float(np.abs(y64).max())):
        result.notes.append("the float32 layer's forward differs from its float64 copy's "
                            "(random draws in another dtype?), so its float32 gradients were "
                            "not compared")
        return
    if not indices:
        got, want = {"x": dx32, **got}, {"x": dx64, **want}
    worst = _worst(want, got)
    if worst[0] > _F32_TOL and not indices:  # is x itself ill-conditioned for float32?
        u = np.random.default_rng(2).uniform(-1.0, 1.0, x.shape)
        _, dxj, moved = backward(f64, x * (1 + np.finfo(np.float32).eps * u), r, unused)
        shift = _worst(want, {"x": dxj, **moved})[0]
        if worst[0] <= 10 * shift:
            result.notes.append(
                f"the float32 layer's own backward differs from its float64 copy's by "
                f"{worst[0]:.1e} at {worst[1]}{list(worst[2])}, but x is ill-conditioned "
                f"for float32: moving x by float32's precision alone moves the float64 "
                f"gradients by {shift:.1e} (large values of small spread, or terms that "
                f"cancel), so this is not counted as a failure")
            return
    if worst[0] > _F32_TOL:
        d, name, i, a32, a64 = worst
        f64 = "passed" if result.passed else "failed"
        if result.passed:  # else the float64 failure keeps the headline
            result.max_error, result.tensor, result.index = d, f"{name} (float32)", i
            result.analytic, result.numeric = a32, a64
        result.passed = False
        result.notes.append(
            f"the float32 layer's own backward disagrees with its float64 copy's: "
            f"{name}{list(i)} is {a32:.6g} in float32 and {a64:.6g} in float64 (shown as "
            f"'numeric'), off by {d:.1e} > {_F32_TOL:g}: a bug in code only float32 runs? "
            f"(or float32 round-off of a gradient whose terms cancel to near 0, as a "
            f"norm's over 2 values; the float64 check {f64})")


def _worst(want: dict[str, np.ndarray], got: dict[str, np.ndarray]
           ) -> tuple[float, str, tuple, float, float]:
    """``(error, name, index, got, want)`` of the largest disagreement, relative to the
    larger of the entry, 1% of its tensor's largest and 0.1% of the largest of all. (No
    floor from ``r``'s size: Softmax on a saturated row, dx ~1e-9 and 0 in float32, then
    passed, but so did a 50% float32-only error in a layer y = 1e-7 x.)"""
    worst: tuple[float, str, tuple, float, float] = (0.0, "", (), 0.0, 0.0)
    largest = max((float(np.abs(a).max()) for a in want.values() if a.size), default=0.0)
    for name, a in want.items():
        b = np.asarray(got[name], dtype=np.float64)
        scale = float(np.abs(a).max()) if a.size else 0.0
        # float32 round-off of a gradient that cancels to ~0 (a bias before BatchNorm)
        # is that of the terms that cancelled: judged against the model's largest too
        d = relative(a, b, max(0.01 * scale, 1e-3 * largest, 1e-300))
        i = worst_entry(d) if d.size else None
        if i is not None and not d[i] <= worst[0]:  # NaN too
            err = float(d[i]) if not np.isnan(d[i]) else float("inf")
            worst = (err, name, i, float(b[i]), float(a[i]))
    return worst
