"""The running means of an epoch in ``fit``: its loss and its metrics."""

from __future__ import annotations

import math
from typing import Any


class EpochMeter:
    """Running means over an epoch: of the batch losses weighted by what each was divided
    by (its size, or the summed class weights of a weighted loss: so the epoch's value is
    the loss over all its samples at once), and of the metrics weighted by the samples
    they scored. A loss with ``reduction='sum'`` (``summed``) adds its batch sums: the
    epoch's value is again that of all its samples at once. A metric with
    ``partial``/``merge``/``finish`` (``r2``, ``f1``, ``auc``...) is instead accumulated
    from each batch's statistics: its value is that of all samples at once."""

    def __init__(self, metrics: tuple[Any, ...], summed: bool = False) -> None:
        self.loss, self.weight, self.n, self.steps = 0.0, 0.0, 0, 0
        self.summed = summed
        self.metrics: list[Any] = [None if hasattr(m, "partial") else 0.0 for m in metrics]
        self.merges = [getattr(m, "merge", None) for m in metrics]
        self.finishes = [getattr(m, "finish", None) for m in metrics]

    def add(self, value: float, weight: float, scores: list[Any], size: int) -> None:
        self.loss += value if self.summed else value * weight
        self.weight += weight
        self.n += size
        self.steps += 1
        for i, s in enumerate(scores):
            merge = self.merges[i]
            if merge is None:  # a user's metric may give a NumPy float32: sum a Python float
                self.metrics[i] += float(s) * size
            elif size:  # statistics, merged
                self.metrics[i] = s if self.metrics[i] is None else merge(self.metrics[i], s)

    def epoch_loss(self) -> float:
        if self.summed:
            return self.loss if self.steps else math.nan
        if self.weight:
            return self.loss / self.weight
        # steps whose targets all weighed 0 (every label ignored): 0, as each batch's loss
        return 0.0 if self.steps else math.nan  # no step taken (all skipped): NaN

    def logs(self, names: tuple[str, ...]) -> dict[str, float]:
        n = self.n or math.nan  # nothing scored: NaN, not a division error
        values = [s / n if finish is None else math.nan if s is None else float(finish(s))
                  for s, finish in zip(self.metrics, self.finishes, strict=True)]
        return {"loss": self.epoch_loss(), **dict(zip(names, values, strict=True))}
