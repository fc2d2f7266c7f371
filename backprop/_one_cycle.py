"""PyTorch's ``OneCycleLR`` (the 1cycle policy), per optimizer step.

Re-exported by :mod:`backprop.schedules`.
"""

from __future__ import annotations

import inspect
import math

from ._validate import boolean, in_range, nonneg_int, positive_int
from .schedules import Schedule, _check_groups, _group_count, _of_group, _rates


class OneCycleLR(Schedule):
    """The 1cycle policy (PyTorch's ``OneCycleLR``): warm up to ``max_lr``, then anneal
    far below the start, over ``total_steps`` optimizer steps (not epochs).

    ``t`` counts optimizer steps from 0 (``optimizer.steps`` before the batch's step),
    ``lr0 = max_lr / div_factor``, ``lr_min = lr0 / final_div_factor``, ``a = pct_start``,
    ``T = total_steps``. Each phase anneals from its start to its end as ``p`` goes
    from 0 to 1 (``'cos'``: ``end + (start - end) (1 + cos(pi p)) / 2``; ``'linear'``)::

        phase         ends at step        lr                momentum (cycle_momentum)
        warm-up       a T - 1             lr0 -> max_lr     max_momentum -> base_momentum
        annealing     T - 1               max_lr -> lr_min  base_momentum -> max_momentum
        (three_phase: warm-up; back to lr0 by step 2 a T - 2; then lr0 -> lr_min, momentum
        held at max_momentum)

    ``p = (t - phase start) / (phase end - phase start)``, with each phase starting where
    the one before ends (the first at 0). A phase of length 0 (``a T = 1``) is at its end
    (PyTorch divides by zero there). Steps up to ``T`` are allowed, as in PyTorch.

    Pass it to ``bp.LearningRateScheduler``: it sets ``optimizer.lr`` (and, with
    ``cycle_momentum``, SGD's or RMSProp's ``momentum`` or the Adam family's ``beta1``,
    as PyTorch does) before every batch.

    Args:
        max_lr: The peak rate; or, as PyTorch's, a list of one peak per parameter group
            of the optimizer (each group then runs its own cycle; with one peak every
            group gets the same rates, whatever its own lr was).
        total_steps: The number of optimizer steps of the cycle (it wins when
            ``epochs`` and ``steps_per_epoch`` are given too, as in PyTorch).
        epochs: With ``steps_per_epoch``, instead of ``total_steps``: the cycle is
            ``epochs * steps_per_epoch`` steps.
        steps_per_epoch: Batches per epoch, ``ceil(N / batch_size)`` (``N // batch_size``
            with ``fit(drop_last=True)``).
        pct_start: ``a``, the fraction of the steps spent warming up (default 0.3).
        anneal_strategy: ``'cos'`` (default) or ``'linear'``.
        cycle_momentum: Cycle the optimizer's momentum inversely to the rate (default
            True, as PyTorch; an optimizer with neither momentum nor beta1 is refused).
        base_momentum, max_momentum: The momentum's range (default 0.85 to 0.95).
        div_factor: ``max_lr / lr0`` (default 25).
        final_div_factor: ``lr0 / lr_min`` (default 1e4).
        three_phase: The three-phase variant above (default False).
    """

    per_step = True

    def __init__(self, max_lr: float, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85,
                 max_momentum: float = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        who = "OneCycleLR"
        self.max_lr = _rates(max_lr, "max_lr", who)
        if total_steps is None and (epochs is None or steps_per_epoch is None):
            raise ValueError("OneCycleLR: expected total_steps, or epochs and steps_per_epoch "
                             f"(batches per epoch), got total_steps={total_steps}, "
                             f"epochs={epochs}, steps_per_epoch={steps_per_epoch}")
        if total_steps is None:  # as PyTorch, total_steps wins when both are given
            total_steps = (positive_int(epochs, "epochs", who)
                           * positive_int(steps_per_epoch, "steps_per_epoch", who))
        self.total_steps = positive_int(total_steps, "total_steps", who)
        self.pct_start = in_range(pct_start, "pct_start", who, 0.0, 1.0)
        if not isinstance(anneal_strategy, str) or anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: expected anneal_strategy 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = boolean(cycle_momentum, "cycle_momentum", who)
        self.base_momentum = in_range(base_momentum, "base_momentum", who, -math.inf)
        self.max_momentum = in_range(max_momentum, "max_momentum", who, -math.inf)
        self.div_factor = in_range(div_factor, "div_factor", who, 0.0, low_open=True)
        self.final_div_factor = in_range(final_div_factor, "final_div_factor", who, 0.0,
                                         low_open=True)
        self.three_phase = boolean(three_phase, "three_phase", who)

    @property
    def lr(self) -> float:  # type: ignore[override]
        """The initial rate, ``max_lr / div_factor`` (every Schedule has ``lr``; the first
        group's with one ``max_lr`` per group)."""
        return _of_group(self.max_lr, 0) / self.div_factor

    def __repr__(self) -> str:  # the settings that differ from PyTorch's defaults
        defaults = inspect.signature(OneCycleLR.__init__).parameters
        args = [f"{self.max_lr!r}", f"total_steps={self.total_steps}"] + [
            f"{k}={v!r}" for k, v in vars(self).items() if k in defaults
            and k not in ("max_lr", "total_steps") and v != defaults[k].default]
        return f"OneCycleLR({', '.join(args)})"

    def _phases(self, top: float) -> list[tuple[float, float, float, float, float]]:
        """``(last step, lr from, lr to, momentum from, momentum to)`` of each phase, for
        the peak rate ``top``."""
        lr0 = top / self.div_factor
        low, peak, base = lr0 / self.final_div_factor, self.max_momentum, self.base_momentum
        a, last = self.pct_start * self.total_steps, self.total_steps - 1
        if self.three_phase:
            return [(a - 1, lr0, top, peak, base), (2 * a - 2, top, lr0, base, peak),
                    (last, lr0, low, peak, peak)]
        return [(a - 1, lr0, top, peak, base), (last, top, low, base, peak)]

    def _at(self, step: int, group: int = 0) -> tuple[float, float, float, float, float]:
        """``(p, lr from, lr to, momentum from, momentum to)`` of ``step``'s phase, with
        the peak rate of ``group``."""
        t = nonneg_int(step, "step", "OneCycleLR")
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: step {t} is past total_steps={self.total_steps}: "
                             "build it with the total number of optimizer steps of the fit "
                             "(epochs x batches per epoch)")
        phases, start = self._phases(_of_group(self.max_lr, group)), 0.0
        for phase in phases[:-1]:  # each phase starts where the one before ends
            if t <= phase[0]:
                break
            start = phase[0]
        else:
            phase = phases[-1]
        end = phase[0]
        pct = 1.0 if end == start else (t - start) / (end - start)
        return (pct, *phase[1:])  # type: ignore[return-value]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def __call__(self, step: int, *, group: int = 0) -> float:
        """The rate of ``step`` (of parameter group ``group`` with one ``max_lr`` each)."""
        pct, lr_from, lr_to, _, _ = self._at(step, group)
        return self._anneal(lr_from, lr_to, pct)

    def group_rates(self, step: int, scales: list[float]) -> list[float] | None:
        """As PyTorch's ``OneCycleLR``: one ``max_lr`` gives every group the same rate
        (whatever its own lr was); a list, each group its own cycle."""
        _check_groups(self, len(scales))
        return [self(step, group=i if self.group_count() else 0) for i in range(len(scales))]

    def group_count(self) -> int | None:
        return _group_count(self.max_lr)

    def momentum(self, step: int) -> float | None:
        """The momentum (or beta1) of ``step``; None without ``cycle_momentum``."""
        if not self.cycle_momentum:
            return None
        pct, _, _, m_from, m_to = self._at(step)
        return self._anneal(m_from, m_to, pct)

    def momentum_bounds(self) -> tuple[float, ...]:
        return (self.base_momentum, self.max_momentum) if self.cycle_momentum else ()
