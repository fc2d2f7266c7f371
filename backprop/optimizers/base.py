"""The Optimizer base class (state created once, one update per flat buffer); gradient
clipping is in :mod:`.clip`, the update rules in :mod:`.rules`, the design in the
package docstring (:mod:`backprop.optimizers`).
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from .._validate import in_range, nonneg_int
from ..layers._flat import copy_flat_views, flat_base
from ..layers.base import Layer, Parameter
from . import groups
from .clip import _ALIASES, _NONNEGATIVE, _a, _clip, _clip_norm, _finite, _parameters, _saved_array

__all__ = ["Optimizer"]


class Optimizer:
    """Base class: takes the parameters once, creates all state eagerly.

    Hyperparameters are plain attributes that may be changed between steps (a schedule
    sets ``lr``); each assignment is checked as the constructor checks it, alone and
    together with the others (ValueError naming the value; the old value stays).
    Turning on one that needs state of its own creates that state: SGD's momentum
    buffer starts from the next gradient, as in PyTorch; Adam's ``amsgrad`` maximum and
    RMSprop's ``centered``/``momentum`` averages start at zero (PyTorch raises a
    KeyError there). Turning one off drops its state, so turning it on again starts
    afresh (PyTorch keeps SGD's old buffer and goes on with it).

    Parameter groups, as in PyTorch (``SGD([{"params": model[0].parameters(), "lr": 0.1},
    {"params": model[2].parameters()}], lr=0.01)``): each group is updated as a separate
    optimizer with its settings would update it; ``opt.param_groups[i]["lr"]`` reads and
    writes one group's, ``opt.momentum = 0.5`` sets every group's, and ``opt.lr = v``
    scales every group's lr by ``v / opt.lr`` (see :mod:`.groups`).

    Args:
        params: ``model.parameters()`` (or a model/layer, whose parameters are used), or a
            list of parameter groups: dicts with ``"params"`` and any of the optimizer's
            settings (``"lr"``, ``"momentum"``, ``"betas"``, ...), no parameter in two.
        lr: Learning rate, > 0 (a schedule may later bring it to 0, which leaves the
            parameters as they are, as in PyTorch; an inf gradient too, where PyTorch's
            0·inf gives NaN).
        clip_norm: When set, gradients are clipped to this global norm before
            each step (see :func:`clip_grad_norm`).
    """

    _hyper: ClassVar[tuple[str, ...]] = ("lr",)
    _state_keys: ClassVar[tuple[str, ...]] = ()
    _state_flags: ClassVar[tuple[str, ...]] = ()  # the hyperparameters that decide the state
    # the check of each hyperparameter, (value, name, who) -> value, on every assignment
    _checks: ClassVar[dict[str, Any]] = {"lr": _finite, "clip_norm": _clip_norm}

    def __setattr__(self, name: str, value: Any) -> None:
        check = self._checks.get(name)
        if check is None:
            if name in _ALIASES:
                raise AttributeError(f"{type(self).__name__}: {name!r} is not a setting here; "
                                     f"{_ALIASES[name]}")
            self._refuse_misspelt(name)
            object.__setattr__(self, name, value)
            if name == "steps":
                for child in getattr(self, "_children", ()):
                    child.steps = value
            return
        value = check(value, name, type(self).__name__)
        # getattr, not self.__dict__: touching __dict__ would slow every later attribute
        # read (CPython then drops the object's inline attribute values)
        built, before = getattr(self, "_groups", None) is not None, getattr(self, name, None)
        object.__setattr__(self, name, value)
        if not built:  # the constructor checks the settings together once all are set
            return
        try:
            self._check_together()
            if self._children:  # parameter groups: each group's too (lr scaled), or none
                groups.set_every_group(self, name, value)
        except (TypeError, ValueError):
            object.__setattr__(self, name, before)
            raise
        if not self._children and name in self._state_flags and bool(before) != bool(value):
            self._remake_state()

    def _refuse_misspelt(self, name: str) -> None:
        """A new public attribute on one of backprop's optimizers that is close to one of
        its settings (``opt.momentun = 0.9``) would change nothing: say so."""
        if (name.startswith("_") or not type(self).__module__.startswith("backprop.")
                or getattr(self, "_groups", None) is None or hasattr(self, name)):
            return
        close = difflib.get_close_matches(name, [*self._hyper, "clip_norm"], n=1, cutoff=0.8)
        if close:
            raise AttributeError(f"{type(self).__name__}: {name!r} is not one of its settings "
                                 f"(it would change nothing); did you mean {close[0]!r}?")

    def _check_together(self) -> None:
        """Refuse settings that are valid alone but not together (SGD's nesterov)."""

    def _remake_state(self) -> None:
        """State for the current flags: the arrays kept under the same keys, new ones zero."""
        old = self._group_state
        self._make_groups()
        for before, now in zip(old, self._group_state, strict=True):
            for k in before.keys() & now.keys():
                np.copyto(now[k], before[k])
        self._state_since = self.steps  # an SGD momentum buffer starts from the next grad

    def __init__(self, params: Iterable[Parameter] | Layer, lr: float, *,
                 clip_norm: float | None = None) -> None:
        who = type(self).__name__
        self._children: list[Optimizer] = []  # one per parameter group, if built with groups
        params, dicts = groups.split_groups(params, who)
        if dicts is None:
            self.params = _parameters(params, who)
        if not (self.params if dicts is None else dicts):
            raise ValueError(f"{who}: expected a non-empty list of parameters "
                             "(model.parameters()), got an empty one")
        if isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool) \
                and lr == 0:
            raise ValueError(f"{who}: expected lr > 0, got {lr!r}: built with lr 0 an optimizer "
                             "trains nothing, so it is taken for a slip (PyTorch accepts it); "
                             "to hold the weights on purpose, set opt.lr = 0 after building it")
        self.lr = _finite(lr, "lr", who, positive=True)
        self.clip_norm = clip_norm
        self._check_together()
        self.steps = self._state_since = 0
        if dicts is None:
            self._make_groups()
            return
        self._scales: list[float] = []  # each group's lr over self.lr, see set_every_group
        for i, group in enumerate(dicts):
            groups.add_group(self, group, i)
        if not any(child.lr for child in self._children):
            raise ValueError(f"{who}: expected some parameter group with lr > 0, got lr 0 in "
                             "every group: nothing would train, taken for a slip (a group of "
                             "lr 0 beside others holds its parameters still)")
        self._groups, self._group_state, self._scratch = [], [], []

    def __deepcopy__(self, memo: dict[int, Any]) -> Optimizer:
        """A copy whose parameters, gradients and state stay views of one buffer each,
        shared with a model copied along (``copy.deepcopy((model, opt))``, as PyTorch)."""
        if self._children:
            groups.deepcopy_children(self, memo)
        copy_flat_views(memo, [p.value for p in self.params], part=True)
        copy_flat_views(memo, [p.grad for p in self.params], part=True)
        if self._group_state is not self.state and self._group_state:  # flat, with views
            for key in self._group_state[0]:
                copy_flat_views(memo, [s[key] for s in self.state])
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))  # past __setattr__'s checks
        pair = flat_base([p.value for p in new.params]), flat_base([p.grad for p in new.params])
        if (not self._children and self._group_state is not self.state
                and all(a is not None for a in pair)):  # (grouped: the children's pairs)
            new._groups = [pair]  # over part of a buffer the old pair is no view of the copy
        return new

    def _make_groups(self) -> None:
        self._clipped = self.params  # in memory order with groups: one norm over one buffer
        values = [p.value for p in self.params]
        flat_p, flat_g = flat_base(values), flat_base([p.grad for p in self.params])
        if flat_p is not None and flat_g is not None:
            self._groups = [(flat_p, flat_g)]
            flat_state = self.init_state(flat_p)
            self.state = []
            offset = 0
            for v in values:  # per-parameter views of the one flat state
                self.state.append({k: s[offset:offset + v.size].reshape(v.shape)
                                   for k, s in flat_state.items()})
                offset += v.size
            self._group_state = [flat_state]
        else:
            self._groups = [(p.value, p.grad) for p in self.params]
            self.state = [self.init_state(p.value) for p in self.params]
            self._group_state = self.state
        self._scratch = [(np.empty_like(p), np.empty_like(p)) for p, _ in self._groups]

    # -- what a subclass writes ---------------------------------------------------------
    def init_state(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """Create this optimizer's state for parameter array ``p`` (zeros by default)."""
        return {k: np.zeros_like(p) for k in self._state_keys}

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray],
               tmp: tuple[np.ndarray, np.ndarray]) -> None:
        """Update ``p`` in place from ``g``; ``tmp`` are two scratch arrays like ``p``."""
        raise NotImplementedError

    # -- the public protocol ------------------------------------------------------------
    def step(self) -> None:
        """Apply one update to every parameter from its current gradient.

        Raises:
            RuntimeError: a parameter array was replaced since this optimizer was built
                (it would update a dead copy); nothing is changed.
        """
        for p in self.params:  # re-homed arrays are marked read-only by flatten_parameters
            if not p.value.flags.writeable:
                raise self._stale(p)
        if self.clip_norm is not None:  # (the scale: GradientFlowMonitor undoes it)
            scale = _clip(self._clipped, self.clip_norm, type(self).__name__)[1]
            object.__setattr__(self, "_clip_scale", scale)
        object.__setattr__(self, "steps", self.steps + 1)  # past __setattr__'s checks
        # g² past the range, 0/0 with eps = 0: inf or NaN, quietly as PyTorch's (a warning
        # turned error would leave a half-done step)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for (p, g), state, tmp in zip(self._groups, self._group_state, self._scratch,
                                          strict=True):
                self.update(p, g, state, tmp)
        for child in self._children:  # parameter groups (then self._groups is empty)
            child.step()

    def _stale(self, p: Parameter) -> RuntimeError:
        who = type(self).__name__
        return RuntimeError(
            f"{who}: parameter {p.name!r} is no longer the model's (its array was replaced "
            "when the layers were put into a new Sequential, or by add()/astype(); or the "
            "model and this optimizer went through pickle, which rebuilds the model's "
            "buffers: copy.deepcopy((model, opt)) keeps the pair together); build the "
            f"optimizer after the model is complete: {who}(model.parameters(), ...), and "
            "load_state_dict an old one's state_dict() to carry its state over")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to do: backward overwrites the gradients (nothing unset, whatever PyTorch's
        ``set_to_none`` says: see the README)."""

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's settings by name (``type(opt)(params, **opt.hyperparameters())``
        builds a twin), without ``clip_norm``; with parameter groups, the groups' defaults
        (``param_groups`` has each group's)."""
        return {k: getattr(self, k) for k in self._hyper}

    @property
    def param_groups(self) -> list[groups.ParamGroup]:
        """One dict-like entry per parameter group (one for plain ``model.parameters()``):
        ``"params"`` lists the group's parameters, and its settings (``"lr"``, ...) read
        and write the group's, checked as the optimizer's attributes are."""
        return [groups.ParamGroup(self, i) for i in range(max(1, len(self._children)))]

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a parameter group (a dict as the constructor takes), with the optimizer's
        current settings where it leaves one out (a plain optimizer's parameters become
        group 0, their state carried on). Raises as the constructor for a bad group."""
        undo = None if self._children else groups.make_grouped(self)
        try:
            groups.add_group(self, group, len(self._children))
        except (TypeError, ValueError):
            if undo:
                undo()
            raise

    def state_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """Copies (``copy=False``: the live arrays) of all it needs to go on bit for bit
        (``"state_since"``: the step a setting turned on later made its state, if one did;
        with parameter groups, ``"groups"`` has each group's settings and such state)."""
        if self._children:
            return groups.grouped_state_dict(self, copy)
        state = {
            "type": type(self).__name__,
            "hyper": {**self.hyperparameters(), "clip_norm": self.clip_norm},
            "steps": self.steps,
            "state": {name: {k: v.copy() if copy else v for k, v in s.items()}
                      for name, s in zip(self._state_names(), self.state, strict=True)},
        }
        if self._state_since:
            state["state_since"] = self._state_since
        state.update(self._scalar_state())
        return state

    def _state_names(self) -> list[str]:
        """The keys of ``state_dict()["state"]``: the parameters' names, or, where two
        share one (loose layers' ``"W"``), every name prefixed by its position (``"0.W"``,
        ``"1.b"``, ...), as PyTorch keys its state by position."""
        names = [p.name for p in self.params]
        return names if len(set(names)) == len(names) else [f"{i}.{n}"
                                                             for i, n in enumerate(names)]

    def _scalar_state(self) -> dict[str, float]:
        """State that is one number for the whole optimizer, not an array per parameter
        (NAdam's running product of mu), saved beside ``steps``; none by default."""
        return {}

    def _load_scalar_state(self, values: dict[str, float]) -> None:
        """Restore what :meth:`_scalar_state` gave (each checked by :meth:`_check_scalar`)."""

    def _check_scalar(self, name: str, value: Any, who: str) -> None:
        """Refuse a saved scalar state that is no finite number (TypeError: not a number;
        ValueError: NaN or inf); a subclass narrows the range."""
        in_range(value, f"{name} in the state", who, -math.inf)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output into this optimizer's existing arrays.

        Everything is checked before anything changes, so a rejected state leaves the
        optimizer as it was. The saved hyperparameters replace the current ones; those
        that decide which state exists (``_state_flags``) must agree with this optimizer's.

        A state array of another float dtype (saved before ``model.astype``) is cast to
        its parameter's dtype, as PyTorch's ``load_state_dict`` casts.

        Raises:
            TypeError: ``state`` is not a state dict, or a value in it has the wrong type
                (a state array not of a float dtype).
            ValueError: it belongs to another optimizer, its hyperparameters are unknown,
                missing or invalid, or its parameters, state keys or shapes differ.
        """
        if self._children or isinstance(state, dict) and "groups" in state:
            groups.load_groups(self, state)
            return
        saved = self._saved_settings(state)
        self._apply_state(state, saved, self._saved_arrays(state["state"], saved))

    def _apply_state(self, state: dict[str, Any], saved: Optimizer,
                     pairs: list[tuple[np.ndarray, Any]]) -> None:
        """Write a checked state (:meth:`_saved_settings`, :meth:`_saved_arrays`)."""
        for dst, src in pairs:
            dst[...] = src
        # as a whole: the throwaway optimizer checked them together, while one at a time
        # through __setattr__ an in-between mix (nesterov with the saved dampening) fails
        for k in (*self._hyper, "clip_norm"):
            object.__setattr__(self, k, getattr(saved, k))
        self.steps = int(state["steps"])
        self._state_since = int(state.get("state_since", 0))
        self._load_scalar_state({k: float(state[k]) for k in self._scalar_state()})

    def _saved_settings(self, state: Any) -> Optimizer:
        """A throwaway optimizer built with the saved settings: the constructor checks them."""
        who = type(self).__name__
        keys = sorted(["hyper", "state", "steps", "type", *self._scalar_state()])
        if not isinstance(state, dict):
            raise TypeError(f"{who}: expected a dict from state_dict() with keys {keys}, "
                            f"got {type(state).__name__}")
        if "type" in state and state["type"] != who:  # before the keys: the likelier slip
            raise ValueError(f"{who}: expected {_a(who)} {who} state, got {state['type']!r}")
        if sorted(map(str, state)) not in (keys, sorted([*keys, "state_since"])):
            torch = (": a torch.optim state_dict does not load (its layout and names "
                     "differ); the optimizer's own state_dict() does"
                     if "param_groups" in state else "")
            raise ValueError(f"{who}: expected a state dict with keys {keys} (and "
                             f"'state_since'), got {sorted(map(str, state))}{torch}")
        if "state_since" in state:
            nonneg_int(state["state_since"], "state_since", who)
        for k in self._scalar_state():
            self._check_scalar(k, state[k], who)
        hyper, names = state["hyper"], sorted({*self._hyper, "clip_norm"})
        got = sorted(map(str, hyper)) if isinstance(hyper, dict) else type(hyper).__name__
        if got != names:
            raise ValueError(f"{who}: expected hyperparameters {names}, got {got}")
        nonneg_int(state["steps"], "steps", who)
        dt = self.params[0].value.dtype
        probe = [Parameter("probe", np.zeros(1, dt), np.zeros(1, dt))]
        try:  # a schedule may have left lr at 0, which only the constructor refuses
            made = type(self)(probe, **{**hyper, "lr": 1.0})
            made.lr = hyper["lr"]
            return made
        except (TypeError, ValueError) as err:
            raise type(err)(f"{err} (in the saved hyperparameters)") from err

    def _saved_arrays(self, saved: Any, probe: Optimizer) -> list[tuple[np.ndarray, Any]]:
        """(destination, saved array) pairs, once every name, key, shape and dtype agrees."""
        who, ours, implied = type(self).__name__, set(self.state[0]), set(probe.state[0])
        if implied != ours:
            missing, extra = sorted(ours - implied), sorted(implied - ours)
            what = " and ".join([f"with {', '.join(missing)}"] * bool(missing)
                                + [f"without {', '.join(extra)}"] * bool(extra))
            raise ValueError(f"{who}: expected state {what} ({self._flags(self)}), got one "
                             f"saved with {self._flags(probe)}: build the optimizer with "
                             "those settings to load it")
        names = self._state_names()
        got = sorted(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
        if got != sorted(names):
            raise ValueError(f"{who}: expected state for parameters {names}, got {got}")
        pairs = []
        for name, s in zip(names, self.state, strict=True):
            entry = saved[name]
            if not isinstance(entry, dict) or set(entry) != ours:
                got = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
                raise ValueError(f"{who}: expected state for {name!r} with keys "
                                 f"{sorted(ours)} ({self._flags(self)}), got {got}")
            for k, arr in s.items():
                pairs.append((arr, _saved_array(entry[k], arr, f"{who}: expected state "
                                                f"{name}.{k}", _NONNEGATIVE.get(k))))
        return pairs

    def _flags(self, opt: Optimizer) -> str:
        """``opt``'s settings that decide which state exists, as ``momentum=0.9``."""
        return ", ".join(f"{k}={getattr(opt, k)!r}" for k in self._state_flags or self._hyper)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        listed = f", param_groups={groups.describe_groups(self)}" if self._children else ""
        return f"{type(self).__name__}({args}{listed})"
