"""Gradient checking by central differences, for built-in and user-written layers.

For a layer, the scalar checked is ``L = sum(y * r)`` with ``r`` drawn at random:
a uniform ``r`` would cancel in layers that normalise over the batch (BatchNorm's
gradient of ``sum(y)`` is exactly zero) and hide bugs. Every element of the input
and of every parameter is perturbed by ``±eps`` and the slope compared with what
``backward`` returned. Everything runs in float64: float32 central differences
carry errors near 1e-3 and are the classic false alarm, so float32 layers are
copied to float64 first (or refused, with ``promote=False``).

An entry whose difference straddles a kink (a ReLU input within ``eps`` of 0,
common in trained networks) is re-measured with smaller steps before it is called
wrong; the result's notes list every such entry. An input lying exactly on kinks
(image pixels of 0 through zero padding and a zero bias: ReLU inputs of exactly 0)
has one-sided derivatives that no step can match, so a check that fails at an ``x``
holding zeros or repeated values is run again at ``x`` plus noise of 1e-3 of its
largest entry; when that passes, the result is that check's, and a note says so.

Each evaluation runs on a fresh copy of the layer, so random state (Dropout's
mask) and running statistics are identical in every call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validate import as_array, boolean, in_range
from .initializers import make_rng
from .layers.base import Layer
from .layers.embedding import index_layer
from .losses import Loss

_WHO = "check_gradients"  # names the function in every error message


@dataclass
class GradCheckResult:
    """Outcome of :func:`check_gradients`; truthy when the check passed.

    Attributes:
        passed: Every relative error is below ``tol`` (an entry whose central
            difference straddled a kink is judged at a smaller step instead; see
            ``notes``).
        max_error: The worst relative error ``|a - n| / max(|a|, |n|, floor)``.
        tensor: Where it occurred: ``"x"`` (the input), ``"output"`` (a loss's
            input) or a parameter name such as ``"W"`` or ``"0.b"``.
        index: The element's index in that tensor.
        analytic: The gradient ``backward`` gave there.
        numeric: The central-difference estimate there.
        errors: The worst relative error per tensor.
        notes: Anything done for you (float32 promoted to float64).
    """

    passed: bool
    max_error: float
    tensor: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    errors: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        per = ", ".join(f"{k}: {v:.1e}" for k, v in self.errors.items())
        text = (f"gradient check {verdict}: max relative error {self.max_error:.2e} in "
                f"{self.tensor}{list(self.index)} (analytic {self.analytic:.6g}, numeric "
                f"{self.numeric:.6g}); per tensor: {per}")
        return "\n".join([text, *self.notes])


def check_gradients(
    f: Layer | Loss,
    x: Any,
    target: Any = None,
    *,
    eps: float = 1e-5,
    tol: float = 1e-6,
    floor: float = 1e-3,
    rng: np.random.Generator | int | None = 0,
    promote: bool = True,
    stack: bool = False,
) -> GradCheckResult:
    """Compare a layer's (or a loss's) backward against central differences.

    Args:
        f: A Layer (any model too: Sequential is a Layer) or a Loss.
        x: The input (for a loss, the output it scores): real, finite, and with
            at least one element.
        target: The loss target (losses only; must be None for a layer).
        eps: Finite-difference step (in float64; finite, > 0).
        tol: Largest relative error that passes (finite, > 0).
        floor: Relative errors divide by at least this. The objective's float64
            round-off, divided by ``2 * eps``, leaves ~1e-9 of absolute noise in
            every numeric slope, so tiny gradients (and exact zeros) are judged by
            absolute error instead: with the defaults an entry fails when it is off
            by more than 1e-6 relative or 1e-9 absolute, and a 0.1% bug anywhere
            shows as an error near 1e-3. Finite, > 0.
        rng: Seed or Generator for the random upstream gradient ``r``.
        promote: Copy float32 layers to float64 (default). False raises instead.
        stack: Also exercise the layer inside a small stack, ``Tanh → f → Tanh``,
            so its ``dx`` feeds a real layer below and its ``dy`` is non-trivial
            (``f → Tanh`` for a layer that takes indices, an Embedding, whose ``x`` is
            never perturbed: only its parameters are checked).

    Returns:
        A :class:`GradCheckResult` (``bool(result)`` is ``result.passed``).

    Raises:
        TypeError: ``f`` is float32 and ``promote`` is False, or is not a Layer/Loss;
            ``x`` is not real numbers; ``rng``, ``promote`` or ``stack`` has the wrong type.
        ValueError: ``x`` is empty or not finite (a NaN input makes every slope NaN:
            it would read as a backward bug); ``eps``, ``tol`` or ``floor`` is not
            finite and > 0; ``target`` is given for a layer; ``rng`` is a negative
            seed; the backward returns a gradient of the wrong shape.
    """
    notes: list[str] = []
    promote, stack = boolean(promote, "promote", _WHO), boolean(stack, "stack", _WHO)
    f = _as_float64(f, promote, notes)
    eps, tol, floor = (in_range(v, name, _WHO, 0.0, float("inf"), low_open=True, high_open=True)
                       for v, name in ((eps, "eps"), (tol, "tol"), (floor, "floor")))
    gen = make_rng(rng, _WHO)
    if isinstance(f, Layer) and target is not None:
        raise ValueError(f"{_WHO}: expected target=None for a Layer (targets are for "
                         f"losses), got {type(target).__name__}")
    if isinstance(f, Loss) and target is None:
        raise TypeError(f"{_WHO}: expected the target of {f!r} too: "
                        f"check_gradients(loss, output, target)")
    x = _real_input(x)
    if isinstance(f, Loss):
        return _check_loss(f, x, target, eps, tol, floor, notes)
    indices = index_layer(f) is not None  # an Embedding's x: whole numbers, no gradient
    if indices:
        notes.append(f"{f!r} takes indices: x is not perturbed, only the parameters")
    if stack:
        from .layers.activations import Tanh
        from .sequential import Sequential

        # a copy: stacking re-flattens parameters, which must never detach the
        # user's layer from its own model's buffers (and so from its optimizer)
        below = [] if indices else [Tanh(dtype=np.float64)]
        f = Sequential([*below, copy.deepcopy(f), Tanh(dtype=np.float64)])
        notes.append("checked inside the stack " + ("layer -> Tanh" if indices else
                                                    "Tanh -> layer -> Tanh"))
    r = gen.standard_normal(copy.deepcopy(f).forward(x.copy()).shape)
    result, finite = _check_layer(f, x, r, eps, tol, floor, notes, with_x=not indices)
    if (result.passed or not finite or indices
            or not (np.any(x == 0) or np.unique(x).size < x.size)):
        return result  # a NaN gradient is wrong anywhere; distinct nonzero x is on no kink
    # x exactly on kinks (blank pixels through zero padding and a zero bias give ReLU
    # inputs of exactly 0, and tied max-pool windows): no step is small enough there,
    # as the derivative is one-sided. A wrong backward fails a nearby point as well.
    scale = _JITTER * max(float(np.abs(x).max()), 1.0)
    nearby, _ = _check_layer(f, x + gen.standard_normal(x.shape) * scale, r, eps, tol,
                             floor, list(notes))
    if not nearby.passed:
        result.notes.append(f"at x + noise of scale {scale:.0e} the check fails too, so "
                            "this is not a kink of x")
        return result
    nearby.notes.append(
        f"x as given lies exactly on kinks (a ReLU input of exactly 0, tied max-pool "
        f"maxima): there {result.tensor}{list(result.index)} disagreed at every step "
        f"(analytic {result.analytic:.6g}, numeric {result.numeric:.6g}), as a one-sided "
        f"derivative must; this result is for x + noise of scale {scale:.0e}, where every "
        f"entry agrees")
    return nearby


# Scale of the noise added to an x that sits on kinks, relative to its largest entry.
_JITTER = 1e-3


def _check_layer(f, x, r, eps, tol, floor, notes, with_x=True
                 ) -> tuple[GradCheckResult, bool]:
    """The check at ``x`` (of the parameters only, without ``with_x``), and whether every
    analytic gradient was finite."""
    def objective() -> float:
        return float(np.sum(copy.deepcopy(f).forward(x.copy(), training=True) * r))

    probe = copy.deepcopy(f)
    probe.forward(x.copy(), training=True)
    dx = probe.backward(r.copy())
    analytic = {"x": dx} if with_x else {}
    analytic.update({p.name: p.grad.copy() for p in probe.parameters()})
    tensors = {"x": x} if with_x else {}
    tensors.update({p.name: p.value for p in f.parameters()})
    finite = all(a is None or np.isfinite(a).all() for a in analytic.values())
    ruled = {}  # entries whose gradient is 0 by rule (Embedding's padding row)
    for name, layer, key in f.named_slots():
        where = layer.frozen_entries(key)
        if where is not None:
            ruled[name] = np.zeros(tensors[name].shape, bool)
            ruled[name][where] = True
            notes.append(f"{layer!r}: {name}[{where}] is held at a zero gradient by rule "
                         "(not a derivative): checked to be exactly 0")
    return _compare(tensors, analytic, objective, eps, tol, floor, notes, ruled), finite


def _real_input(x: Any) -> np.ndarray:
    """Our own float64 copy of ``x`` (perturbed in place later), or a named error."""
    raw = as_array(x, _WHO, "x")
    kind = raw.dtype.kind
    if kind not in "biuf":
        what = "complex" if kind == "c" else f"dtype {raw.dtype}"
        raise TypeError(f"{_WHO}: expected x as an array of real numbers, got {what} "
                        f"(central differences need a real input)")
    x = np.array(raw, dtype=np.float64)
    if x.size == 0:
        raise ValueError(f"{_WHO}: expected x with at least one element, got shape "
                         f"{x.shape}: nothing to check")
    if not np.isfinite(x).all():
        raise ValueError(f"{_WHO}: expected a finite x, got {np.count_nonzero(~np.isfinite(x))} "
                         f"non-finite values (NaN/inf); every slope would be NaN and look "
                         f"like a backward bug")
    return x


def _as_float64(f: Any, promote: bool, notes: list[str]) -> Any:
    if not isinstance(f, (Layer, Loss)):
        raise TypeError(f"check_gradients: expected a Layer or a Loss, got {type(f).__name__}")
    if f.dtype is None or f.dtype == np.float64:
        return f
    if not promote:
        raise TypeError(
            f"check_gradients: {f!r} is {f.dtype}; finite differences in float32 carry "
            "errors near 1e-3 and flag correct code. Pass a float64 copy "
            "(layer.astype(np.float64)) or promote=True.")
    notes.append(f"{f!r} is {f.dtype}: checked a float64 copy, since float32 finite "
                 "differences carry errors near 1e-3 (the classic false alarm)")
    if isinstance(f, Layer):
        return f.astype(np.float64)
    g = copy.deepcopy(f)
    g.dtype = np.dtype(np.float64)
    return g


def _check_loss(loss, output, target, eps, tol, floor, notes) -> GradCheckResult:
    probe = copy.deepcopy(loss)
    value = probe.forward(output.copy(), target)
    g = None
    if loss.reduction == "none":  # the objective Σ g·losses, g fixed and random
        g = np.random.default_rng(0).standard_normal(np.shape(value))
        notes.append(f"{loss!r}: checked the gradient of sum(g * losses), g a fixed "
                     "random array of the losses' shape")

    def objective() -> float:
        out = copy.deepcopy(loss).forward(output.copy(), target)
        return out if g is None else float(np.sum(g * out))

    grad = probe.backward() if g is None else probe.backward(g)
    return _compare({"output": output}, {"output": grad}, objective,
                    eps, tol, floor, notes)


def _slope(arr, idx, objective, eps) -> float:
    """Central-difference slope of ``objective`` along ``arr[idx]`` (restored after)."""
    old = arr[idx]
    arr[idx] = old + eps
    plus = objective()
    arr[idx] = old - eps
    minus = objective()
    arr[idx] = old
    return (plus - minus) / (2 * eps)


# A failing entry is re-measured with these smaller steps (as fractions of ``eps``)
# before it is reported (see _compare); after _CONFIRM entries have failed at every
# step the check has failed for good, and the rest are not re-measured.
_KINK_STEPS = (1e-1, 1e-2)
_CONFIRM = 16


def _compare(tensors, analytic, objective, eps, tol, floor, notes, ruled=None
             ) -> GradCheckResult:
    """Judge every entry; entries that fail are re-measured with smaller steps.

    A piecewise-linear layer (ReLU, max-pool) has a kink wherever its input is
    zero (or two inputs tie). A trained network often has a pre-activation
    within ``eps`` of one, and the central difference straddles it: its slope
    mixes both sides and disagrees with the (correct) one-sided derivative by
    O(1). Shrinking the step moves the difference back onto one side, where it
    agrees; a wrong backward disagrees at every step. So an entry that fails at
    ``eps`` is re-measured at ``eps/10`` and ``eps/100`` and passes if one of
    them agrees within ``tol`` relative, plus an absolute allowance for
    round-off that grows as the step shrinks (``tol * floor`` times the step
    ratio): a 0.1% bug still fails by 1e-3 relative.

    ``ruled`` masks, per tensor, entries whose gradient is 0 by rule: their "numeric"
    value is that 0 (never re-measured), so any other analytic value fails.
    """
    ruled = ruled or {}
    worst = (-1.0, "", (), 0.0, 0.0)
    errors = {}
    rechecked: list[str] = []
    confirmed: list[tuple] = []   # entries that disagree at every step: real failures
    for name, arr in tensors.items():
        a = analytic[name]
        if a is None or a.shape != arr.shape:
            got = None if a is None else a.shape
            raise ValueError(f"check_gradients: backward gave {name} gradient of shape "
                             f"{got}, expected {arr.shape}")
        numeric, rule = np.zeros_like(arr), ruled.get(name)
        for idx in np.ndindex(arr.shape):
            if rule is None or not rule[idx]:
                numeric[idx] = _slope(arr, idx, objective, eps)
        err = np.abs(a - numeric) / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), floor)
        for i in np.ndindex(err.shape):
            if rule is not None and rule[i]:
                if a[i] != 0:  # the rule is exact: no step size to retry
                    confirmed.append((float(err[i]), name, tuple(int(k) for k in i),
                                      float(a[i]), 0.0))
            elif not err[i] <= tol and len(confirmed) < _CONFIRM:  # NaN too; else fine
                _recheck(name, arr, a, (numeric, err), i, objective, (eps, tol, floor),
                         rechecked, confirmed)
        if err.size:
            i = np.unravel_index(int(np.argmax(err)), err.shape)
            errors[name] = float(err[i])
            if err[i] > worst[0]:
                worst = (float(err[i]), name, tuple(int(k) for k in i), float(a[i]),
                         float(numeric[i]))
    passed = not confirmed   # every other failing entry agreed at a smaller step
    if len(confirmed) >= _CONFIRM:
        notes.append(f"after {_CONFIRM} entries failed at every step the rest were not "
                     "re-measured, so the per-tensor errors may include entries that only "
                     "straddled a kink; the headline error is the worst confirmed one")
    if confirmed:  # report a real failure, not an entry that was never re-measured
        worst = max(confirmed)
    if rechecked:
        shown = "; ".join(rechecked[:5]) + (f"; and {len(rechecked) - 5} more"
                                            if len(rechecked) > 5 else "")
        notes.append(f"{len(rechecked)} entr{'y' if len(rechecked) == 1 else 'ies'} "
                     "straddled a kink (a ReLU at 0 or a max-pool tie within the step) and "
                     f"agreed when re-measured with a smaller step: {shown}")
    max_err, tensor, index, av, nv = worst
    return GradCheckResult(passed, max(max_err, 0.0), tensor, index, av, nv, errors, notes)


def _recheck(name, arr, a, judged, i, objective, settings, rechecked, confirmed) -> None:
    """Re-measure failing entry ``i`` at the smaller steps (see :func:`_compare`).

    The first step that agrees replaces the entry's slope and error in ``judged``
    (``numeric, err``) and is noted in ``rechecked``; an entry wrong at every step
    keeps the smallest step's (kink-free) numbers and goes to ``confirmed``.
    """
    numeric, err = judged
    eps, tol, floor = settings
    for frac in _KINK_STEPS:
        n = _slope(arr, i, objective, eps * frac)
        diff, size = abs(a[i] - n), max(abs(a[i]), abs(n))
        e = diff / max(size, floor)
        if diff <= tol * size + tol * floor / frac:  # round-off grows as 1/step
            rechecked.append(f"{name}{[int(k) for k in i]} (error {err[i]:.1e} at "
                             f"step {eps:g}, {e:.1e} at {eps * frac:g})")
            numeric[i], err[i] = n, e   # judged at the smaller step
            return
    numeric[i], err[i] = n, e
    confirmed.append((float(e), name, tuple(int(k) for k in i), float(a[i]), float(n)))
