"""GradientFlowMonitor: watch per-layer gradient norms and update sizes during ``fit``.

Vanishing gradients show as layers near the input learning orders of magnitude
slower than those near the output (deep sigmoid stacks: each layer multiplies δ by
σ′ ≤ 1/4; tanh′ ≤ 1, and well below 1 once units saturate); exploding ones as huge
or non-finite norms. The monitor measures both, records them in History, and warns
once per kind per fit with the usual remedies.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._validate import boolean, caller_level, in_range
from .callbacks import Callback
from .trace import sumsq

__all__ = ["GradientFlowMonitor", "GradientFlowWarning"]

_VANISH_REMEDIES = ("He (ReLU) or Glorot (sigmoid/tanh) initialization, ReLU-family "
                    "activations instead of sigmoid/tanh, BatchNorm, or residual "
                    "connections (bp.Residual)")
_DEAD_REMEDIES = ("a lower learning rate, He initialization (bp.Dense(..., init='he_uniform')), "
                  "LeakyReLU or ELU, or BatchNorm before the ReLU")
_EXPLODE_REMEDIES = ("gradient clipping (clip_norm=... on the optimizer), a lower learning "
                     "rate, He/Glorot initialization, or BatchNorm")


class GradientFlowWarning(UserWarning):
    """Gradients vanish toward the input or explode (see :class:`GradientFlowMonitor`)."""


class GradientFlowMonitor(Callback):
    """Record per-layer gradient norms and update/weight ratios; warn when flow breaks.

    For every layer with parameters (named by its path in the model, ``"0"``,
    ``"3.block.0"``) it adds two keys to each epoch's logs, which History records:

    * ``history.history["grad_norm/<layer>"]``: the layer's gradient norm
      ``sqrt(Σ_p ‖∂L/∂p‖²)`` over all its parameters, read from ``layer.grads``
      after every step and **averaged over the epoch's batches**;
    * ``history.history["update_ratio/<layer>"]``: ``‖w_end - w_begin‖ / ‖w_begin‖``
      over the epoch, ``w`` all of the layer's parameters (NaN when ``‖w_begin‖ = 0``).
      A healthy per-step ratio is around 1e-3, so per epoch expect roughly
      ``steps x 1e-3`` early in training.

    * ``history.history["dead_relu/<ReLU layer>"]``: for a ReLU right after a layer with a
      bias (Dense, Conv), the fraction of its units (channels) that passed no gradient in
      any batch of the epoch: the bias gradient ``db_j = Σ_n δ_nj`` is exactly 0 only
      when unit ``j`` was inactive for every sample (read from ``db``, no extra pass).
      Batches in which a ReLU layer nearer the output passed no gradient at all do not
      count for the layers below it (NaN when no batch counted). When a Dense reads the
      ReLU, its ``dW`` row ``j`` is read instead (0 only when unit ``j`` output 0 for
      every sample), so a unit whose gradient was merely blocked above (a zero weight)
      is not called dead. Units are counted per feature or channel (the trace counts
      each position).

    Warnings (:class:`GradientFlowWarning`, at most one per kind per fit):

    * **vanishing**, checked at each epoch end: the first trainable layer's
      epoch-mean norm is below ``vanish_ratio`` times the last one's (unless a ReLU
      layer whose units are all dead explains it: that warning names it instead);
    * **exploding**, checked after every step: some layer's norm is non-finite, or has
      grown to more than ``explode_growth`` times its norm at the fit's first step while
      the batch loss is above that step's (a diverging run; in a healthy one a layer
      that starts with tiny gradients, behind a small output layer, may grow 100-fold
      while the loss falls), or, when ``explode_threshold`` is given, is above it;
    * **dead ReLUs**, checked at each epoch end: at least ``dead_fraction`` of a ReLU
      layer's units were dead for the whole epoch.

    Growth, not size, is the default rule: a regression on raw targets of scale 100
    has gradient norms in the thousands from the first step and is not exploding (a
    fixed limit of 1e3, the default before, called it so). A fit resumed from a
    checkpoint keeps the first step's norms and the warnings already given.

    Args:
        vanish_ratio: Threshold of ``norm(first) / norm(last)``, below which it warns.
        explode_threshold: Largest acceptable per-layer gradient norm (default None:
            no fixed limit).
        warn: Emit warnings (False: record only).
        explode_growth: How many times its first step's norm a layer's norm may grow
            to (> 1) while the loss is above the first step's.
        dead_fraction: Fraction of a ReLU layer's units dead for a whole epoch from which
            it warns (in (0, 1]).
    """

    def __init__(self, vanish_ratio: float = 1e-3, explode_threshold: float | None = None,
                 warn: bool = True, explode_growth: float = 100.0,
                 dead_fraction: float = 0.9) -> None:
        who = "GradientFlowMonitor"
        self.vanish_ratio = in_range(vanish_ratio, "vanish_ratio", who, 0.0, low_open=True)
        self.explode_threshold = None if explode_threshold is None else in_range(
            explode_threshold, "explode_threshold", who, 0.0, low_open=True)
        self.explode_growth = in_range(explode_growth, "explode_growth", who, 1.0,
                                       low_open=True)
        self.dead_fraction = in_range(dead_fraction, "dead_fraction", who, 0.0, 1.0,
                                      low_open=True)
        self._first: list[float] = []
        self._first_loss = math.nan
        self.warn = boolean(warn, "warn", who)
        self._layers: list[tuple[str, Any]] = []
        self._scaled: set[int] = set()  # indices in _layers of those clip_norm scales
        self._relus: list[tuple[str, Any, Any]] = []
        self._warned: set[str] = set()

    _order = -1  # before the others: they may monitor its keys wherever it is listed

    @property
    def _adds_log_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        """The keys it will log for the model of the running fit (others may monitor them)."""
        if self.model is None:
            return ()
        return (*(f"{kind}/{name}" for name, _ in trainable_layers(self.model)
                  for kind in ("grad_norm", "update_ratio")),
                *(f"dead_relu/{name}" for name, _, _ in relus_after_a_bias(self.model)))

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        from .layers.dense import Dense

        self._layers = trainable_layers(self.model)
        self._scaled = self._clipped()
        self._relus = relus_after_a_bias(self.model)
        self._blocks = [_on_the_only_path(self.model, path) for path, _, _ in self._relus]
        # a Dense after reads the units of a Dense before (the last axis), not a
        # convolution's channels (axis 1): those are judged by the bias alone
        self._after = [_dense_after(self.model, path) if isinstance(before, Dense) else None
                       for path, _, before in self._relus]
        self._warned = set()
        self._first = []

    def state_dict(self) -> dict[str, Any]:
        """The fit's first-step norms and loss (the growth rule's baseline) and the kinds
        already warned of: a resumed fit measures against the run's own first step."""
        return {"first": list(self._first), "first_loss": self._first_loss,
                "warned": sorted(self._warned)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "first" in state:  # (checkpoints before these keys held none)
            self._first = [float(n) for n in state["first"]]
            self._first_loss = float(state["first_loss"])
            self._warned = {str(kind) for kind in state["warned"]}

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        self._sums = [0.0] * len(self._layers)
        self._steps = 0
        self._start = [[v.copy() for v in layer.params.values()] for _, layer in self._layers]
        self._alive = [np.zeros(before.grads["b"].shape, bool) for _, _, before in self._relus]
        self._seen = [0] * len(self._relus)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        norms = self._grad_norms()
        for i, n in enumerate(norms):
            self._sums[i] += n
        self._steps += 1
        # from the output down: a ReLU layer that passed no gradient at all (and that no
        # skip connection goes around) leaves every layer below it without any, which says
        # nothing of their units (not counted)
        for k in range(len(self._relus) - 1, -1, -1):
            after, below = self._after[k], self._relus[k][2].grads["b"]
            if after is None:  # units some sample passed gradient through
                self._alive[k] |= below != 0
                self._seen[k] += 1
            elif after.grads["b"].any():  # a Dense reads the ReLU: its dW row j is 0 iff
                unknown = ~self._alive[k]  # unit j output 0 for every sample (that got δ)
                dw = after.grads["W"]
                if 2 * np.count_nonzero(unknown) >= unknown.size:  # (no copy of most of dW:
                    self._alive[k] |= dw.any(axis=1)  # every row read in place, faster too)
                else:  # a few rows: gathered (a copy of them), not all of dW read
                    self._alive[k][unknown] = dw[unknown].any(axis=1)
                self._seen[k] += 1
            if self._blocks[k] and not below.any():
                break
        if "explode" in self._warned or not self.warn:
            return
        loss = logs.get("loss", math.nan)
        if not self._first:  # the fit's first step: what growth is measured against
            self._first, self._first_loss = norms, loss
        limit = math.inf if self.explode_threshold is None else self.explode_threshold
        bad = [i for i, n in enumerate(norms) if not n <= limit]  # NaN too
        rising = not loss <= self._first_loss  # NaN too: a loss that is no longer falling
        grown = [i for i, (n, n0) in enumerate(zip(norms, self._first, strict=True))
                 if rising and n0 > 0 and n > self.explode_growth * n0]
        if bad or grown:
            worst = max(bad or grown,
                        key=lambda i: norms[i] if math.isfinite(norms[i]) else math.inf)
            self._explode(worst, norms[worst], batch, None if bad else self._first[worst])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        means = [s / self._steps if self._steps else math.nan for s in self._sums]
        for (name, layer), mean, start in zip(self._layers, means, self._start, strict=True):
            logs[f"grad_norm/{name}"] = mean
            logs[f"update_ratio/{name}"] = _ratio(list(layer.params.values()), start)
        dead = [1.0 - float(alive.mean()) if seen else math.nan
                for alive, seen in zip(self._alive, self._seen, strict=True)]
        for (name, _, _), frac in zip(self._relus, dead, strict=True):
            logs[f"dead_relu/{name}"] = frac
        worst = max((i for i in range(len(dead)) if dead[i] >= 0), key=lambda i: dead[i],
                    default=None)  # NaN: never reached by any gradient this epoch
        if worst is not None and dead[worst] >= self.dead_fraction:
            self._dead(worst, dead[worst], epoch)
        all_dead = worst is not None and dead[worst] == 1.0
        if (len(means) >= 2 and means[-1] > 0 and means[0] / means[-1] < self.vanish_ratio
                and not all_dead):
            self._vanish(means[0], means[-1], epoch)

    def _grad_norms(self) -> list[float]:
        """Each layer's gradient norm before the optimizer's ``clip_norm`` scaled it: what
        backward gave (clipping is the cure for an explosion, not a reason to miss it)."""
        scale = (getattr(self.optimizer, "_clip_scale", 1.0)
                 if getattr(self.optimizer, "clip_norm", None) is not None else 1.0)
        norms = [_norm(layer.grads.values()) for _, layer in self._layers]
        if scale == 1.0 or scale != scale:  # none, or a NaN norm (NaN gradients anyway)
            return norms
        return [(n / scale if scale > 0 else math.inf) if k in self._scaled else n
                for k, n in enumerate(norms)]  # only the optimizer's own were scaled

    def _clipped(self) -> set[int]:
        """The indices (in ``_layers``) of the layers whose gradients the optimizer clips."""
        grads = [p.grad for p in getattr(self.optimizer, "_clipped", ())]
        return {k for k, (_, layer) in enumerate(self._layers)
                if any(np.shares_memory(g, mine) for g in grads for mine in layer.grads.values())}

    # -- the warnings -----------------------------------------------------------------
    def _explode(self, i: int, norm: float, batch: int, first: float | None = None) -> None:
        self._warned.add("explode")
        if not math.isfinite(norm):
            what = "non-finite"
        elif first is not None:
            what = (f"{norm:.3g}, {norm / first:.3g} times its norm at the first step "
                    f"({first:.3g}; explode_growth={self.explode_growth:g})")
        else:
            what = f"{norm:.3g}, above explode_threshold={self.explode_threshold:g}"
        warnings.warn(
            f"GradientFlowMonitor: exploding gradients in layer {self._label(i)} at epoch "
            f"{self.fit_state.epoch if self.fit_state else '?'}, batch {batch}: gradient norm "
            f"{what}. Try {_EXPLODE_REMEDIES}.", GradientFlowWarning,
            stacklevel=caller_level())

    def _dead(self, i: int, frac: float, epoch: int) -> None:
        if not self.warn or "dead" in self._warned:
            return
        self._warned.add("dead")
        name, relu, before = self._relus[i]
        units = before.grads["b"].size
        b = before.params["b"]
        warnings.warn(
            f"GradientFlowMonitor: dead ReLUs at epoch {epoch}: {frac:.0%} of the {units} "
            f"units of layer {name} {relu!r} passed no gradient in any batch (their input, "
            f"from {before!r}, was <= 0 for every sample; its bias runs from {b.min():.3g} to "
            f"{b.max():.3g}), so the layers below it learn little or nothing. Try "
            f"{_DEAD_REMEDIES}.", GradientFlowWarning, stacklevel=caller_level())

    def _vanish(self, first: float, last: float, epoch: int) -> None:
        if not self.warn or "vanish" in self._warned:
            return
        self._warned.add("vanish")
        warnings.warn(
            f"GradientFlowMonitor: vanishing gradients at epoch {epoch}: the first trainable "
            f"layer {self._label(0)} has gradient norm {first:.3g}, {first / last:.3g} times "
            f"that of the last one, {self._label(-1)} ({last:.3g}; vanish_ratio="
            f"{self.vanish_ratio:g}), so it barely learns. Try {_VANISH_REMEDIES}.",
            GradientFlowWarning, stacklevel=caller_level())

    def _label(self, i: int) -> str:
        name, layer = self._layers[i]
        return f"{name} {layer!r}"


def relus_after_a_bias(model: Any) -> list[tuple[str, Any, Any]]:
    """``(path, relu, layer before it)`` for each ReLU that follows a Dense or a convolution
    with a bias in the same container (its units' gradients are that bias's gradients: one
    entry per output feature or channel; a recurrent layer's ``b`` holds its gates'), in
    model order (the order of the forward pass, nested containers included)."""
    from .layers import ReLU
    from .layers._conv import _Conv
    from .layers._conv_transpose import _ConvTranspose
    from .layers.dense import Dense

    order = {id(layer): i for i, (_, layer) in enumerate(model.named_layers())}
    out = []
    containers = [("", model), *((f"{path}.", layer) for path, layer in model.named_layers())]
    for prefix, box in containers:
        layers = getattr(box, "layers", None) or []
        for i in range(1, len(layers)):
            before, relu = layers[i - 1], layers[i]
            if (type(relu) is ReLU and isinstance(before, (Dense, _Conv, _ConvTranspose))
                    and before.grads.get("b") is not None):
                out.append((f"{prefix}{i}", relu, before))
    return sorted(out, key=lambda item: order[id(item[1])])


def _dense_after(model: Any, path: str) -> Any:
    """The Dense with a bias right after the ReLU at ``path`` in its container, or None."""
    from .layers import Dense

    parent, _, index = path.rpartition(".")
    box = dict(model.named_layers())[parent] if parent else model
    layers = box.layers
    nxt = layers[int(index) + 1] if int(index) + 1 < len(layers) else None
    return nxt if isinstance(nxt, Dense) and nxt.bias else None


def _on_the_only_path(model: Any, path: str) -> bool:
    """Whether no Residual holds the layer at ``path``: then every gradient that reaches
    the layers below it has passed through it (a skip connection goes around)."""
    layers = dict(model.named_layers())
    parts = path.split(".")
    return not any(type(layers[".".join(parts[:i])]).__name__ == "Residual"
                   for i in range(1, len(parts)))


def trainable_layers(model: Any) -> list[tuple[str, Any]]:
    """``(path, layer)`` of every leaf layer with parameters, in model order."""
    out: list[tuple[str, Any]] = []
    for full, layer, key in model.named_slots():
        if not out or out[-1][1] is not layer:
            out.append((full[: len(full) - len(key)].rstrip(".") or type(layer).__name__, layer))
    return out


def _norm(arrays: Any) -> float:
    """``sqrt(Σ ‖a‖²)`` over several arrays (see :func:`backprop.trace.sumsq`)."""
    with np.errstate(all="ignore"):
        return math.sqrt(sum(sumsq(a) for a in arrays))


def _ratio(now: list[np.ndarray], start: list[np.ndarray]) -> float:
    with np.errstate(all="ignore"):
        change = math.sqrt(sum(sumsq(a.astype(np.float64) - b)
                               for a, b in zip(now, start, strict=True)))
    base = _norm(start)
    return change / base if base > 0 else math.nan
