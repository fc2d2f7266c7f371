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
wrong, if its one-sided slopes show that the objective bends there (where they agree,
the central slope stands: a wrong gradient is never excused as a kink); the result's
notes list every such entry. An input exactly on kinks (pixels of 0 through zero
padding and a zero bias: ReLU inputs of exactly 0; ReLU6 at 6) has one-sided
derivatives that no step can match, so a check whose failing entries all sat on bends,
at an ``x`` holding zeros or repeated values or failing at an entry of ``x`` that is a
multiple of 0.5 (ReLU6's 6, Hardtanh's ±1), is run again at ``x`` plus noise of 1e-3
of its largest entry (only where, at steps eps, eps/16 and eps/256, every failing
entry's one-sided slopes differ by the same, a kink at ``x``, or its values across ``x``
do, a jump: Hardshrink at its threshold; never where the objective is smooth, nor at a
steep smooth spot, whose difference shrinks with the step, as a norm's constant row at
a tiny eps: that is judged where it was asked);
when that passes, the result is that check's, and a note says so. So a backward that
is wrong only exactly on a kink (a ReLU whose backward gives 5 at an input of exactly 0)
passes there: an entry feeding several kinks at once (a blank pixel through a
convolution of zero bias) can take backward's value far outside its one-sided slopes,
correctly, and no bound found between the two cases kept every correct model passing.
A failure whose numeric slope still moves toward backward's value as the step shrinks
gets a note saying so (a bend sharper than the steps resolve: a tiny beta or eps; check
again with a smaller ``eps``). A float32 layer's ``eps=None`` (RMSNorm's: its dtype's
machine epsilon) keeps float32's value in the float64 copy.

Each evaluation gives what a fresh copy of the layer gives, so random state (Dropout's
mask) and running statistics are identical in every call (one working copy is
reused where that gives the same numbers bit for bit, ~4x faster on small models); a
forward that still differs between two fresh copies (it draws from ``np.random``) is
refused.

Besides the slopes, a layer's backward is held to the contract: its gradients are
filled with NaN before the call (a backward that adds to them, ``+=``, or skips entries
fails), a second forward/backward must give the same gradients as the first (one that
computes a gradient once fails), ``backward_params`` (what training runs for a model's
first layer) must give the same parameter gradients as ``backward``, and neither may
write into its arguments ``x`` or ``dy``. A float32 layer, checked as a float64 copy,
must also give its copy's gradients from its own float32 backward (within 1e-3, see
``_F32_TOL``): code that only float32 runs is checked too. A large objective (many
outputs of large values) carries more float64 round-off in every slope than
``tol * floor``; an entry within that round-off passes, and the notes say how many did,
unless it is within 100x of every gradient of that tensor (``x`` ~ 1e10 into a Dense):
then no slope was measured, and the check fails, saying so.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from ._gradcheck_compare import (
    GradCheckResult,
    _compare,
    _objective,
    cache_notes,
    first_forward,
)
from ._gradcheck_f32 import float32_agrees
from ._validate import as_array, boolean, in_range
from .initializers import make_rng
from .layers._as_layer import as_layer
from .layers.base import Layer
from .layers.embedding import index_layer
from .layers.masking import leading_masking, masked_steps
from .losses import Loss

_WHO = "check_gradients"  # names the function in every error message


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
            never perturbed: only its parameters are checked; and for a model that starts
            with ``Masking``, which reads x's padded steps as given).

    Returns:
        A :class:`GradCheckResult` (``bool(result)`` is ``result.passed``). Its notes also
        name a layer of one's own that keeps its cache in an inference forward, or sets
        arrays in a training forward that ``_cache_attrs`` does not list (``layer.cache``
        and ``clear_cache()`` see only the listed ones); neither fails the check.

    Raises:
        TypeError: ``f`` is float32 and ``promote`` is False, or is not a Layer/Loss
            (a class, not an instance), or holds a parameter that is no numpy array;
            ``x`` is not real numbers; ``rng``, ``promote`` or ``stack`` has the wrong type.
        ValueError: ``x`` is empty or not finite (a NaN input makes every slope NaN:
            it would read as a backward bug); ``eps``, ``tol`` or ``floor`` is not
            finite and > 0; ``target`` is given for a layer; ``rng`` is a negative
            seed; the backward returns a gradient of the wrong shape.
    """
    notes: list[str] = []
    promote, stack = boolean(promote, "promote", _WHO), boolean(stack, "stack", _WHO)
    given, f = f, _as_float64(f, promote, notes)
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
    result = _check_at(f, x, gen, (eps, tol, floor), notes, stack)
    size = (float(np.abs(x).max()) if not result.passed and x.size and x.dtype.kind == "f"
            else math.inf)  # (a failure only: one more pass over x)
    if 0 < size < 100 * eps:  # steps as large as x cross its curvature
        result.notes.append(f"eps {eps:g} is not small against x (largest |x| {size:.3g}): "
                            f"a difference that wide measures no slope; try "
                            f"eps={size / 1000:.0e}, or x of scale ~1")
    if given is not f:  # float32, checked as a float64 copy: its own backward must agree
        float32_agrees(given, f, x, result, _backward)
    return result


def _check_at(f: Layer, x: np.ndarray, gen: np.random.Generator,
              settings: tuple[float, float, float], notes: list[str], stack: bool
              ) -> GradCheckResult:
    """The layer check of :func:`check_gradients`, in float64."""
    eps, tol, floor = settings
    indices = index_layer(f) is not None  # an Embedding's x: whole numbers, no gradient
    if indices:
        notes.append(f"{f!r} takes indices: x is not perturbed, only the parameters")
    if stack:
        from .layers.activations import Tanh
        from .sequential import Sequential

        # a copy: stacking re-flattens parameters, which must never detach the
        # user's layer from its own model's buffers (and so from its optimizer)
        # (nor below a leading Masking: it reads x's padding as given, mask_value and all)
        alone = indices or leading_masking(f) is not None
        below = [] if alone else [Tanh(dtype=np.float64)]
        f = Sequential([*below, copy.deepcopy(f), Tanh(dtype=np.float64)])
        notes.append("checked inside the stack " + ("layer -> Tanh" if alone else
                                                    "Tanh -> layer -> Tanh"))
    first, again = (first_forward(f, x, _WHO) for _ in range(2))
    if not (isinstance(first, np.ndarray) and first.dtype.kind == "f"):  # r needs its shape
        got = f"dtype {first.dtype}" if isinstance(first, np.ndarray) else type(first).__name__
        raise TypeError(f"{_WHO}: expected the forward of {f!r} to return a numpy array of "
                        f"floats, got {got}")
    if not np.array_equal(first, again, equal_nan=True):
        raise ValueError(f"{_WHO}: expected {f!r} to give the same output on two fresh copies "
                         "(same input, training=True), got different ones: its forward draws "
                         "random numbers that copies do not carry (np.random? keep a "
                         "np.random.Generator on the layer, as Dropout's rng=), so no "
                         "difference of two calls measures a slope")
    r = gen.standard_normal(first.shape)
    notes.extend(cache_notes(f, x))
    result, finite = _check_layer(f, x, r, eps, tol, floor, notes, with_x=not indices)
    on_bend = (np.any(x == 0) or np.unique(x).size < x.size  # a hidden ReLU's 0, a tie
               or (result.tensor == "x" and float(x[result.index]) % 0.5 == 0))  # ReLU6's 6
    if result.passed or not finite or indices or not result.on_kinks_only or not on_bend:
        return _offset_note(result, x)  # one off where the objective is smooth is wrong
    # x exactly on kinks (ReLU inputs of exactly 0 from blank pixels, tied max-pool windows,
    # ReLU6 at 6): no step is small enough there, as the derivative is one-sided. A wrong
    # backward fails a nearby point as well.
    scale = _JITTER * max(float(np.abs(x).max()), 1.0)
    nearby, _ = _check_layer(f, x + gen.standard_normal(x.shape) * scale, r, eps, tol,
                             floor, list(notes))
    if not nearby.passed:
        result.notes.append(f"at x + noise of scale {scale:.0e} the check fails too, so "
                            "this is not a kink of x")
        return result
    nearby.notes.append(
        f"x as given lies exactly on kinks or jumps (a ReLU input of exactly 0, ReLU6's 6, "
        f"tied max-pool maxima, Softplus at its threshold): there "
        f"{result.tensor}{list(result.index)} disagreed at every step (analytic "
        f"{result.analytic:.6g}, numeric {result.numeric:.6g}), as a one-sided derivative "
        f"must; this result is for x + noise of scale {scale:.0e}, where every "
        f"entry agrees")
    return nearby


def _offset_note(result: GradCheckResult, x: np.ndarray) -> GradCheckResult:
    """A failed check of an ``x`` far from 0 against its spread gets a note: the float64
    round-off of ``x - mean`` (a norm's) can pass the tolerance there."""
    if result.passed or x.size < 2:
        return result
    with np.errstate(all="ignore"):  # x ~ 1e200: its square overflows (no note then)
        mean, spread = float(np.mean(x)), float(np.std(x))
    if abs(mean) > 100 * spread > 0:
        result.notes.append(f"x lies around {mean:.3g} with a spread of only "
                            f"{spread:.3g}: a layer that centres it (a norm) loses digits "
                            f"to round-off there; check at x - x.mean() too")
    return result


# Scale of the noise added to an x that sits on kinks, relative to its largest entry.
_JITTER = 1e-3


def _check_layer(f, x, r, eps, tol, floor, notes, with_x=True
                 ) -> tuple[GradCheckResult, bool]:
    """The check at ``x`` (of the parameters only, without ``with_x``), and whether every
    analytic gradient was finite."""
    objective = _objective(f, x, r, with_x)
    broken: list[str] = []  # contract breaches the slopes cannot show
    y, dx, grads = _backward(f, x, r, broken)
    analytic = {"x": dx} if with_x else {}
    analytic.update(grads)
    tensors = {"x": x} if with_x else {}
    tensors.update({p.name: p.value for p in f.parameters()})
    finite = all(a is None or np.isfinite(a).all() for a in analytic.values())
    if not finite and any(np.isnan(g).any() for g in grads.values()):
        broken.append("backward left NaN in the gradients. The check fills them with NaN "
                      "before calling it, so a backward that adds to them (+=) or skips "
                      "entries leaves NaN: a backward must overwrite every entry of grads "
                      "(a 0/0 in its formula gives NaN too)")
    # the same, and backward_params (a model's first layer's), must give these gradients
    others = {}
    y2, dx2, grads2 = _backward(f, x, r, broken, calls=2)
    if np.array_equal(y, y2, equal_nan=True):  # a stochastic forward draws anew: skip
        others["its second call"] = {**grads2, **({"x": dx2} if with_x else {})}
    _, _, only = _backward(f, x, r, broken, params_only=True)
    others["backward_params"] = only
    # float64 round-off of the objective, as an absolute error of its slopes
    noise = _ROUNDOFF * float(np.sum(np.abs(y * r))) / (2 * eps)
    ruled = {}  # entries whose gradient is 0 by rule (Embedding's padding row)
    for name, layer, key in f.named_slots():
        where = layer.frozen_entries(key)
        if where is not None:
            ruled[name] = np.zeros(tensors[name].shape, bool)
            ruled[name][where] = True
            notes.append(f"{layer!r}: {name}[{where}] is held at a zero gradient by rule "
                         "(not a derivative): checked to be exactly 0")
    padded = masked_steps(f, x) if with_x else None
    if padded is not None:  # a step nudged off mask_value is real: its slope is not dx's
        ruled["x"] = padded
        notes.append("x's steps that a leading Masking reads as padding are held at a zero "
                     "gradient by rule (a step nudged off mask_value becomes a real one): "
                     "checked to be exactly 0")
    result = _compare(tensors, analytic, objective, eps, tol, floor, list(notes), ruled,
                      others, noise)
    if objective.drifted():  # the reused copy changed over the calls: fresh copies instead
        result = _compare(tensors, analytic, _objective(f, x, r, with_x, reuse=False), eps,
                          tol, floor, list(notes), ruled, others, noise)
    if broken:
        result.passed = False
        result.notes.extend(broken)
    return result, finite


# The objective's float64 round-off: a sum of terms is off by a few units of 2^-52 of
# their absolute sum; this many count as noise in each slope. Correct Dense layers on
# digits pixels (0-16, 64 samples) and on x·10 (128 samples) passed from 2 on, where a
# fixed 1e-9 failed them; a 0.1% bug there is still 100x above it.
_ROUNDOFF = 8 * np.finfo(np.float64).eps


def _backward(f, x, r, broken, calls=1, params_only=False):
    """``(y, dx, grads)`` of the ``calls``-th training forward and backward of a fresh
    copy of ``f``. Its gradients are filled with NaN before each backward (which must
    overwrite them all), and a backward or forward that writes into ``x`` or ``dy``
    is noted in ``broken``. ``params_only`` runs ``backward_params`` (a model's
    ``backward(dy, input_grad=False)``), whose ``dx`` is None."""
    probe = copy.deepcopy(f)
    for _ in range(calls):
        for p in probe.parameters():
            p.grad[...] = np.nan
        xin, dy = x.copy(), r.copy()
        y = probe.forward(xin, training=True)
        if not params_only:
            dx = probe.backward(dy)
        elif hasattr(probe, "layers"):  # a Sequential: its first layer's backward_params
            dx = probe.backward(dy, input_grad=False)
        else:
            dx = probe.backward_params(dy)
        for arg, was, what in ((xin, x, "forward or backward wrote into its input x"),
                               (dy, r, "backward wrote into its argument dy")):
            said = any(b.startswith(what) for b in broken)
            if not said and not np.array_equal(arg, was, equal_nan=True):
                broken.append(f"{what}: a layer must never change its arguments (the "
                              "caller's array would change under it)")
    return y, dx, {p.name: p.grad.copy() for p in probe.parameters()}


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
    if isinstance(f, type) and issubclass(f, (Layer, Loss)):
        raise TypeError(f"check_gradients: expected a Layer or a Loss, got the class "
                        f"{f.__name__}: pass an instance, {f.__name__}(...)")
    if not isinstance(f, (Layer, Loss)):
        raise TypeError(f"check_gradients: expected a Layer or a Loss, got {type(f).__name__}")
    if isinstance(f, Layer):
        as_layer(f, "check_gradients", "the layer")  # one whose __init__ skips super's
        for p in f.parameters():
            if not isinstance(p.value, np.ndarray):  # a float: nothing to perturb in place
                raise TypeError(f"check_gradients: expected every parameter as a numpy "
                                f"array, got {type(p.value).__name__} for {p.name!r} of {f!r} "
                                f"(register it with add_param(name, np.asarray(value)))")
            if p.value.dtype.kind != "f":  # an int array cannot hold x ± eps (nor NaN)
                raise TypeError(f"check_gradients: expected every parameter as an array of "
                                f"floats, got dtype {p.value.dtype} for {p.name!r} of {f!r} "
                                f"(a trainable weight is float: add_param(name, "
                                f"value.astype(dtype)))")
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
        g = f.astype(np.float64)
        for a, b in zip([f, *(la for _, la in f.named_layers())],  # an eps of None is the
                        [g, *(la for _, la in g.named_layers())], strict=True):  # dtype's
            if getattr(a, "eps", 0) is None:  # machine epsilon (RMSNorm): keep f's own
                b.eps = float(np.finfo(a.dtype).eps)
                notes.append(f"{a!r}: eps=None is its dtype's machine epsilon; the float64 "
                             f"copy keeps {a.dtype}'s, {b.eps:.3g}")
        return g
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
