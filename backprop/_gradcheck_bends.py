"""Where :func:`backprop.check_gradients`' objective bends: probes of an entry's
one-sided slopes (see :mod:`._gradcheck_compare`, which re-measures failing entries)."""

from __future__ import annotations


def kink(arr, i, objective, eps, diff, base) -> bool:
    """Whether the objective bends at ``arr[i]`` within ``±eps``: its one-sided slopes
    differ by at least ``diff`` (a straddled kink makes the central slope their mean, off
    by half their difference from the one-sided derivative backward gives), or by as much
    at a step 16 times smaller, well above round-off. A smooth objective's differ by only
    ``eps·|f''|``, shrinking with the step, so a wrong gradient there is no kink, however
    small: the smaller steps' growing round-off allowance is not given to it. The second
    test catches an entry feeding several kinks at once (a blank sample through ReLUs of
    zero bias, tied max-pool windows), whose one-sided slopes can both lie on one side of
    the subgradient backward gives: then their difference is less than ``diff``, but it
    stays as the step shrinks."""
    jump = one_sided_gap(arr, i, objective, eps)
    if jump >= diff:
        return True
    return one_sided_gap(arr, i, objective, eps / 16) >= max(0.5 * jump, 64 * base)


def at_x(arr, i, objective, eps, base) -> bool:
    """Whether the bend is at ``arr[i]`` itself, at steps ``eps``, ``eps/16`` and
    ``eps/256``: a kink, whose one-sided slopes differ by the same at every step (within
    2x: a ReLU input of exactly 0, a tie), or a jump, whose values on either side differ
    by the same (Hardshrink or Threshold at its threshold, Softplus at its switch), well
    above round-off. A steep smooth spot's differences shrink with the step, and its
    round-off's slope difference grows as 1/step (a norm's constant row at a tiny eps
    looks like a bend at the smaller steps): neither is at ``x``. Only a failure at such
    a bend may be judged at a nearby x instead."""
    gaps, apart, middle = [], [], objective()  # (the objective at x: once for the 3 steps)
    for k in (1, 16, 256):
        plus, _, minus = _sides(arr, i, objective, eps / k, middle)
        gaps.append(abs((plus - middle) - (middle - minus)) * k / eps)
        apart.append(plus - minus)
    kink = min(gaps) >= max(0.5 * max(gaps), 64 * base)
    # the jump: f(x+h) - f(x-h) = J + h (f'(x+) + f'(x-)) + O(h²), less its linear part
    # (Richardson's, from steps h and h/16): Softplus' 2e-9 at its switch at 20 is far
    # below the 2h·f' of the values' difference, which shrinks with the step
    jumps = [abs(16 * b - a) / 15 for a, b in zip(apart, apart[1:], strict=False)]
    return kink or min(jumps) >= max(0.5 * max(jumps), 1e4 * base * eps)


def _sides(arr, i, objective, eps, middle=None) -> tuple[float, float, float]:
    """The objective at ``arr[i] + eps``, at ``arr[i]`` (``middle`` when given) and at
    ``arr[i] - eps``."""
    old = arr[i]
    middle = objective() if middle is None else middle
    arr[i] = old + eps
    plus = objective()
    arr[i] = old - eps
    minus = objective()
    arr[i] = old
    return plus, middle, minus


def one_sided_gap(arr, i, objective, eps) -> float:
    """``|f'(x+) - f'(x-)|`` at ``arr[i]``, by one-sided differences at step ``eps``."""
    plus, middle, minus = _sides(arr, i, objective, eps)
    return abs((plus - middle) - (middle - minus)) / eps
