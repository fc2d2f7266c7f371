"""How :func:`backprop.check_gradients` judges: its result, the objective it takes
slopes of, the central-difference slope, and the comparison of analytic gradients with
slopes (and with each other)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._gradcheck_bends import at_x as _at_x
from ._gradcheck_bends import kink as _kink


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
        on_kinks_only: Every failing entry sat where the objective bends (its one-sided
            slopes differ: a ReLU input or a max-pool tie within the step); False when
            one failed where it is smooth, a wrong gradient wherever ``x`` is.
    """

    passed: bool
    max_error: float
    tensor: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    errors: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    on_kinks_only: bool = True

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        per = ", ".join(f"{k}: {v:.1e}" for k, v in self.errors.items())
        text = (f"gradient check {verdict}: max relative error {self.max_error:.2e} in "
                f"{self.tensor}{list(self.index)} (analytic {self.analytic:.6g}, numeric "
                f"{self.numeric:.6g}); per tensor: {per}")
        return "\n".join([text, *self.notes])


def _objective(f, x: np.ndarray, r: np.ndarray, with_x: bool, reuse: bool = True):
    """``objective() -> sum(forward(x) * r)``, as a fresh copy of ``f`` with its current
    parameters (perturbed in place by the check) gives it.

    A deepcopy per evaluation makes every call start from the same state (Dropout's
    generator, running statistics), but costs ~6x the forward of a small model. So one
    working copy is reused, its parameters copied from ``f`` before each forward, when
    it gives bit for bit what fresh copies give: twice in a row, and after each of ``x``
    (unless it holds indices) and every parameter was changed whole, and holds no random
    generator: a layer that draws random numbers (Dropout), or keeps something computed
    from its parameters, gets a fresh copy per evaluation. The returned function's
    ``drifted()`` tells, after the slopes, whether the reused copy still gives what a
    fresh one gives (a state that changes only after many calls); the check then runs
    again with ``reuse=False``.
    """
    def fresh() -> np.ndarray:
        return copy.deepcopy(f).forward(x.copy(), training=True)

    work = copy.deepcopy(f)
    pairs = [(q.value, p.value) for p, q in zip(f.parameters(), work.parameters(),
                                                 strict=True)]

    def reused() -> np.ndarray:
        for dst, src in pairs:
            np.copyto(dst, src)
        return work.forward(x.copy(), training=True)

    def same() -> bool:
        want = fresh()
        return all(np.array_equal(want, reused(), equal_nan=True) for _ in range(2))

    def repeatable() -> bool:
        if not same():
            return False
        for arr in [x] * with_x + [p.value for p in f.parameters()]:
            if arr.size:
                old = arr.copy()
                arr *= 1.5
                arr += 0.5
                try:
                    if not same():
                        return False
                finally:
                    arr[...] = old
        return True  # a state that changes later: drifted(), after the slopes

    try:  # a layer holding a generator may draw the same few numbers twice by chance
        ok = reuse and not _holds_generator(f) and repeatable()
    except Exception:  # noqa: BLE001 - a changed input it refuses: keep fresh copies
        ok = False
    run = reused if ok else fresh

    def objective() -> float:
        return float(np.sum(run() * r))

    objective.drifted = (lambda: not same()) if ok else (lambda: False)  # type: ignore[attr-defined]
    return objective


_RANDOM = (np.random.Generator, np.random.BitGenerator, np.random.RandomState)


def _holds_generator(f: Any) -> bool:
    """Whether ``f`` or a layer inside it keeps random state (Dropout's ``rng``): its
    forward draws anew on a reused copy, though a few draws (3 masked values) can repeat."""
    return any(isinstance(v, _RANDOM) for layer in [f, *(lay for _, lay in f.named_layers())]
               for v in vars(layer).values())


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
# A tensor whose gradients all lie within this many times the objective's round-off per
# slope (x ~ 1e10 into a Dense) is not measured at all: a 50% wrong dx passed there.
# Correct layers on digits pixels keep a margin of ~1e5.
_MEASURABLE = 100


def relative(a, b, floor) -> np.ndarray:
    """``|a - b| / max(|a|, |b|, floor)`` elementwise, as an array even for 0-d inputs
    (a learnable scalar); NaN where either is NaN."""
    return np.asarray(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor))


def worst_entry(d: np.ndarray) -> tuple[int, ...]:
    """The index of ``d``'s largest entry (NaN counts as the largest)."""
    d = np.where(np.isnan(d), np.inf, d)
    return tuple(int(k) for k in np.unravel_index(int(np.argmax(d)), d.shape))


def _compare(tensors, analytic, objective, eps, tol, floor, notes, ruled=None,
             others=None, noise=0.0) -> GradCheckResult:
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
    ``others`` maps a label to more gradients that must equal ``analytic`` (another
    path to the same numbers): an entry off by more than ``tol`` relative fails as
    ``"W (label)"``. ``noise`` is the objective's round-off as an absolute error of a
    slope: a difference below it passes (a large objective's slopes carry more).
    """
    ruled, others = ruled or {}, others or {}
    worst = (-1.0, "", (), 0.0, 0.0)
    errors = {}
    rechecked: list[str] = []
    confirmed: list[tuple] = []   # entries that disagree at every step: real failures
    differs: list[tuple] = []     # entries where another path (others) gives other numbers
    lost_in_noise = 0             # entries over tol but within the objective's round-off
    unmeasured: list[str] = []    # tensors whose every slope is lost in that round-off
    for name, arr in tensors.items():
        a = analytic[name]
        if a is None or a.shape != arr.shape:
            got = "None (does backward return it?)" if a is None else f"shape {a.shape}"
            raise ValueError(f"check_gradients: expected backward to give the {name} "
                             f"gradient of shape {arr.shape}, got {got}")
        numeric, rule = np.zeros_like(arr), ruled.get(name)
        for idx in np.ndindex(arr.shape):
            if rule is None or not rule[idx]:
                numeric[idx] = _slope(arr, idx, objective, eps)
        err = relative(a, numeric, floor)  # entries are re-judged in place below
        within = np.asarray(np.abs(a - numeric) <= noise)  # round-off (NaN: False)
        lost = int(np.count_nonzero(within & ~(err <= tol)))
        lost_in_noise += lost
        scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(numeric).max(initial=0.0)))
        if lost and not scale > _MEASURABLE * noise:  # (NaN: unmeasured too)
            unmeasured.append(f"{name} (largest |gradient| {scale:.3g})")
        for label, grads in others.items():
            if name in grads:
                _same(f"{name} ({label})", a, grads[name], numeric, (tol, floor), errors,
                      differs)
        for i in np.ndindex(err.shape):
            if rule is not None and rule[i]:
                if a[i] != 0:  # the rule is exact: no step size to retry
                    confirmed.append((float(err[i]), name, tuple(int(k) for k in i),
                                      float(a[i]), 0.0, False))
            elif not err[i] <= tol and not within[i] and len(confirmed) < _CONFIRM:  # NaN
                _recheck(name, arr, a, (numeric, err), i, objective,
                         (eps, tol, floor, noise), rechecked, confirmed)
        if err.size:
            i = np.unravel_index(int(np.argmax(err)), err.shape)
            errors[name] = float(err[i])
            if err[i] > worst[0]:
                worst = (float(err[i]), name, tuple(int(k) for k in i), float(a[i]),
                         float(numeric[i]))
    for label, why in _OTHER_PATHS.items():
        if any(c[1].endswith(f"({label})") for c in differs):
            notes.append(why)
    if lost_in_noise:
        notes.append(f"{lost_in_noise} entr{'y' if lost_in_noise == 1 else 'ies'} differed by "
                     f"more than tol relative but by less than {noise:.1e} absolute, the "
                     "objective's float64 round-off per slope (a sum of large terms): "
                     "those pass")
    if unmeasured:
        notes.append(f"the objective's float64 round-off per slope ({noise:.1e}) is within "
                     f"{_MEASURABLE}x of every gradient of {', '.join(unmeasured)}: no "
                     "difference measured them, so the check cannot pass (a wrong backward "
                     "would pass too); check at an x of scale ~1, or fewer, smaller outputs")
    passed = not confirmed and not differs and not unmeasured  # others: a smaller step
    if len(confirmed) >= _CONFIRM:
        notes.append(f"after {_CONFIRM} entries failed at every step the rest were not "
                     "re-measured, so the per-tensor errors may include entries that only "
                     "straddled a kink; the headline error is the worst confirmed one")
    moving = [c for c in confirmed if len(c) > 6 and c[6] is not None]
    if moving:
        _, name, i, *_, (eps, slopes) = moving[0]
        steps = ", ".join(f"{eps * f:g}: {v:.6g}" for f, v in zip((1, *_KINK_STEPS), slopes,
                                                                        strict=True))
        notes.append(
            f"the numeric slope of {name}{list(i)} still moves toward backward's value as "
            f"the step shrinks ({steps})"
            + (f", as at {len(moving) - 1} more failing entr{'y' if len(moving) == 2 else 'ies'}"
               if len(moving) > 1 else "") + ": the objective bends there on a scale at or "
            "below the step (a kink, or a smooth spot steeper than the step resolves: a "
            "tiny beta or eps, a constant row), where a correct backward can fail too; "
            "check again with a smaller eps= or at an x away from that spot")
    if confirmed or differs:  # a real failure, not an entry that was never re-measured;
        worst = max(confirmed or differs)  # a wrong derivative before another path's
    if rechecked:
        shown = "; ".join(rechecked[:5]) + (f"; and {len(rechecked) - 5} more"
                                            if len(rechecked) > 5 else "")
        notes.append(f"{len(rechecked)} entr{'y' if len(rechecked) == 1 else 'ies'} "
                     "agreed when re-measured with a smaller step (a kink within the step, "
                     "a ReLU at 0 or a max-pool tie; or a steep smooth spot): "
                     f"{shown}")
    max_err, tensor, index, av, nv = worst[:5]
    # whether every confirmed failure sits on a kink (check_gradients may then retry a
    # nearby x); one where the objective is smooth is a wrong gradient wherever x is
    return GradCheckResult(passed, max(max_err, 0.0), tensor, index, av, nv, errors, notes,
                           all(c[5] for c in confirmed))


def _same(label, a, b, numeric, settings, errors, differs) -> None:
    """Note in ``differs`` (and ``errors``) the worst entry where ``b``, another path's
    gradient, differs from ``a`` by more than ``tol`` relative (``floor`` as in
    :func:`_compare`); a missing ``b`` differs whole."""
    tol, floor = settings
    if b is None or b.shape != a.shape:
        errors[label] = float("inf")
        differs.append((float("inf"), label, (), float("nan"), float("nan")))
        return
    d = relative(a, b, floor)
    d[np.isnan(a) & np.isnan(b)] = 0.0  # NaN in both paths is judged once, above
    if d.size and not d.max() <= tol:  # NaN (a gradient left NaN on one path) too
        i = worst_entry(d)
        errors[label] = float(d[i]) if not np.isnan(d[i]) else float("inf")
        differs.append((errors[label], label, i, float(b[i]), float(numeric[i])))


_OTHER_PATHS = {
    "its second call": "backward gave other gradients on a second forward/backward than on "
                       "the first (state kept between calls, a gradient computed once?)",
    "backward_params": "backward_params, which training runs for a model's first layer "
                       "(fit, model.backward(dy, input_grad=False)), gave other gradients "
                       "than backward",
}


def _recheck(name, arr, a, judged, i, objective, settings, rechecked, confirmed) -> None:
    """Re-measure failing entry ``i`` at the smaller steps (see :func:`_compare`).

    The first step that agrees replaces the entry's slope and error in ``judged``
    (``numeric, err``) and is noted in ``rechecked``; an entry wrong at every step
    keeps the smallest step's numbers and goes to ``confirmed``. Where the objective
    bends (a kink within the step) the allowed round-off grows as the step shrinks;
    where it is smooth, a smaller step only cuts the central difference's truncation
    error (steep spots, e.g. BatchNorm over a batch of 2), so the allowance stays.
    """
    numeric, err = judged
    eps, tol, floor, noise = settings
    base = max(tol * floor, noise)  # absolute round-off of a slope at step eps
    kink = not np.isfinite(a[i]) or _kink(arr, i, objective, eps, abs(a[i] - numeric[i]),
                                          base)
    slopes = [float(numeric[i])]  # at eps, then at each smaller step
    for frac in _KINK_STEPS:
        n = _slope(arr, i, objective, eps * frac)
        slopes.append(float(n))
        diff, size = abs(a[i] - n), max(abs(a[i]), abs(n))
        e = diff / max(size, floor)
        if diff <= tol * size + (base / frac if kink else base):
            where = "straddled a kink" if kink else "smooth, steep"
            rechecked.append(f"{name}{[int(k) for k in i]} ({where}: error {err[i]:.1e} at "
                             f"step {eps:g}, {e:.1e} at {eps * frac:g})")
            numeric[i], err[i] = n, e   # judged at the smaller step
            return
    if not kink:  # the central slope at eps stands (the smaller steps are noisier)
        n, e = numeric[i], err[i]
    numeric[i], err[i] = n, e
    worst = float(e) if not np.isnan(e) else float("inf")  # a NaN gradient: the worst
    spread = max(slopes) - min(slopes)  # a slope that still moves with the step, toward
    off = [abs(a[i] - v) for v in slopes]  # backward's value: the objective bends within it
    moving = (spread > tol * max(max(map(abs, slopes)), floor) + base / _KINK_STEPS[-1]
              and off[0] > off[1] > off[2]  # and still by a fair part of what is left,
              and off[1] - off[2] >= 0.02 * off[2])  # not settled short of it (a bug)
    confirmed.append((worst, name, tuple(int(k) for k in i), float(a[i]), float(n),
                      kink and _at_x(arr, i, objective, eps, base),
                      (eps, slopes) if moving else None))


def cache_notes(f: Any, x: np.ndarray) -> list[str]:
    """Notes on layers of one's own (not backprop's) inside ``f`` that keep their cache in
    an inference forward, or keep arrays outside ``_cache_attrs`` in a training one:
    ``layer.cache`` and ``clear_cache()`` know only the listed names."""
    def own_layers(model: Any) -> list[Any]:
        tree = [model, *(la for _, la in model.named_layers())] \
            if hasattr(model, "named_layers") else [model]
        return [la for la in tree if not type(la).__module__.startswith("backprop.")]

    if not own_layers(f):  # backprop's own layers alone: no copy, no forward
        return []
    probe = copy.deepcopy(f)
    own = own_layers(probe)
    arrays = lambda la: {k: v for k, v in vars(la).items()  # noqa: E731
                         if isinstance(v, np.ndarray) and k not in la._cache_attrs}
    before = [arrays(la) for la in own]
    loose_notes = []
    for la, held in zip(own, before, strict=True):  # weights the check cannot see
        registered = [*la.params.values(), *la.grads.values(), *la.buffers.values()]
        loose = sorted(k for k, v in held.items() if v.dtype.kind == "f" and v.ndim
                       and not any(np.shares_memory(v, p) for p in registered))
        if loose:
            loose_notes.append(f"{la!r} holds float arrays {loose} outside its params: the check "
                         f"perturbs only params (optimizers, save and summary see only "
                         f"them too); register a weight with self.add_param(name, value)")
    probe.forward(x.copy(), training=False)
    notes = loose_notes + [
        f"{la!r}: an inference forward (training=False) kept its cache {kept}: keep it only "
        f"when training, or predict() on large data holds it" for la in own
        if (kept := [n for n in la._cache_attrs if la.__dict__.get(n) is not None])]
    probe.forward(x.copy(), training=True)
    for la, was in zip(own, before, strict=True):
        new = sorted(k for k, v in arrays(la).items() if was.get(k) is not v)
        if new:
            notes.append(f"{la!r}: a training forward set arrays {new} that _cache_attrs does "
                         "not list: if backward reads them, list them there, so layer.cache "
                         "shows them and clear_cache() drops them")
    return notes


def first_forward(f: Any, x: np.ndarray, who: str) -> Any:
    """A fresh copy's training forward of ``x``; a RuntimeError when parameters appear in
    it (PyTorch's lazy layers' habit): the check lists them before, so a wrong backward
    of such a weight passed; fit, evaluate and predict refuse it by name."""
    twin = copy.deepcopy(f)
    names = [n for n, _, _ in twin.named_slots()]
    y = twin.forward(x.copy(), training=True)
    if [n for n, _, _ in twin.named_slots()] != names:
        raise RuntimeError(f"{who}: expected {f!r}'s parameters registered in __init__, got "
                           f"{sorted({n for n, _, _ in twin.named_slots()} - set(names))} "
                           f"added at its first forward (a weight no check, model or "
                           f"optimizer would see): add them in __init__")
    return y
