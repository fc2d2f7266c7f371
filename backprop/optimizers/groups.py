"""Parameter groups (``torch.optim``'s ``param_groups``) for every optimizer.

An optimizer built over a list of group dicts holds one optimizer of its own class per
group (its *children*), each built over the group's parameters with the group's
settings, the others taken from the constructor. The outer optimizer clips the
gradients of all of them at once (``clip_norm`` is global, as ``clip_grad_norm_``),
counts the steps and steps each child: a group is updated bit for bit as a separate
optimizer with its settings would update it, in one vectorised pass over its part of
the model's flat buffer when its parameters lie next to each other there (a run of
layers). Its own attributes are the groups' defaults: ``opt.momentum = 0.5`` sets every
group's, and ``opt.lr = v`` sets every group's lr to ``v`` times the group's *scale*,
its lr over ``opt.lr`` (kept from when either was last written), so a multiplicative
schedule scales each group as PyTorch's schedulers do (StepLR, MultiStepLR, ExponentialLR,
ConstantLR, LinearWarmup, PolynomialLR, cosine with ``eta_min=0``; the ReduceLROnPlateau
callback also floors each group at its ``min_lr``, as PyTorch's). Where PyTorch computes a
group's lr otherwise, ``LearningRateScheduler`` sets each group's lr from the schedule's
:meth:`~backprop.schedules.Schedule.group_rates` after ``opt.lr``, leaving the scales as
they were: cosine annealing (and warm restarts) with ``eta_min > 0`` anneals each group
from its own base, the schedule's lr times the group's scale, to the shared ``eta_min``;
CyclicLR and OneCycleLR give every group the same rate, as PyTorch's do with one
``max_lr``, or each group its own cycle given a list of rates, one per group.
``opt.lr`` itself reads the constructor's lr as scaled since (a group's lr written
through ``param_groups`` changes that group's scale, not ``opt.lr``; while ``opt.lr`` is
0 the scales stay as they were).
A group's lr may be 0 (its parameters held still, as PyTorch allows, until a schedule
gives it a rate: cosine with ``eta_min > 0``, one CyclicLR/OneCycleLR rate for all), not
every group's (nothing would train: taken for a slip, as an optimizer built with lr 0).
Each group counts its own steps, as PyTorch keeps a step per parameter: one added by
:meth:`~.base.Optimizer.add_param_group` starts its bias corrections (and SGD its
momentum buffer) afresh; ``opt.steps`` counts the optimizer's, and setting it sets every
group's. A plain ``model.parameters()`` builds no children: its step stays one update
over the flat buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers._flat import copy_flat_views
from ..layers.base import Layer, Parameter
from .clip import _a, _parameters

if TYPE_CHECKING:
    from .base import Optimizer


def split_groups(params: Any, who: str) -> tuple[Any, list[dict[str, Any]] | None]:
    """``(params, groups)``: groups is the list of group dicts, or None for plain
    parameters (``params`` then a list, or what :func:`._parameters` will refuse)."""
    if isinstance(params, dict):
        raise TypeError(f"{who}: expected model.parameters() or a list of parameter groups "
                        f"([{{'params': ..., 'lr': ...}}, ...]), got one dict: put it in a list")
    if (isinstance(params, (Layer, Parameter, str, bytes, np.ndarray))  # (a Parameter:
            or not isinstance(params, Iterable)):  # a named tuple, refused by name there)
        return params, None
    items = list(params)
    dicts = [isinstance(p, dict) for p in items]
    if not any(dicts):
        return items, None
    if not all(dicts):
        i = dicts.index(False)
        raise TypeError(f"{who}: expected a list of parameter groups, each a dict "
                        f"({{'params': ..., 'lr': ...}}), got a mix of dicts and a "
                        f"{type(items[i]).__name__} at position {i}: put such parameters "
                        f"in a group of their own")
    return items, items


def setting_names(opt: Optimizer) -> list[str]:
    """The keys a group dict may hold besides ``"params"``."""
    return [*opt._hyper, *(["betas"] if "beta1" in opt._hyper else [])]


def add_group(opt: Optimizer, group: Any, i: int) -> None:
    """Check ``group`` (the ``i``-th) and append a child optimizer built over it."""
    who = type(opt).__name__
    if not isinstance(group, dict):
        raise TypeError(f"{who}: expected a parameter group as a dict ({{'params': ..., "
                        f"'lr': ...}}), got {type(group).__name__}")
    if "params" not in group:
        raise ValueError(f"{who}: expected parameter group {i} to have a 'params' key (its "
                         f"parameters), got keys {sorted(map(str, group))}")
    allowed = setting_names(opt)
    unknown = sorted(str(k) for k in group if k != "params" and k not in allowed)
    if unknown:
        hint = (" (clip_norm is one setting over all parameters: give it to the optimizer)"
                if "clip_norm" in unknown else " (PyTorch keeps any other key, a 'name' say, "
                "as a label; backprop refuses them, so a misspelt setting is never ignored)")
        raise ValueError(f"{who}: expected the settings of parameter group {i} among "
                         f"{allowed}, got {unknown}{hint}")
    given = group["params"]
    params = _parameters([given] if isinstance(given, Parameter) else given, who)
    if not params:
        raise ValueError(f"{who}: expected parameter group {i} to hold parameters, got an "
                         "empty 'params'")
    where = {id(p.value): j for j, c in enumerate(opt._children) for p in c.params}
    for p in params:
        if id(p.value) in where:
            raise ValueError(f"{who}: expected each parameter in one group, got {p.name!r} "
                             f"in groups {where[id(p.value)]} and {i} (some parameters "
                             "appear in more than one parameter group)")
    settings = {k: v for k, v in group.items() if k != "params"}
    child = _child(opt, params, settings, i)
    opt._children.append(child)
    opt._scales.append(child.lr / opt.lr if "lr" in settings and opt.lr else 1.0)
    refresh(opt)


def _child(opt: Optimizer, params: list[Parameter], settings: dict[str, Any],
           i: int) -> Optimizer:
    """An optimizer of ``opt``'s class over ``params``, with ``settings`` over ``opt``'s."""
    kwargs = opt.hyperparameters()
    if "betas" in settings:
        del kwargs["beta1"], kwargs["beta2"]
    kwargs.update(settings)
    # opt's lr, which a schedule may have brought to 0; or a group's lr of 0, PyTorch's
    # way to hold some layers still (an optimizer's own lr of 0 is taken for a slip)
    zero = "lr" in settings and _is_zero(settings["lr"])
    if "lr" not in settings or zero:
        kwargs["lr"] = 1.0
    try:
        child = type(opt)(params, **kwargs)
        if zero:
            child.lr = settings["lr"]
    except (TypeError, ValueError) as err:
        raise type(err)(f"{err} (in parameter group {i})") from err
    if "lr" not in settings:
        child.lr = opt.lr
    return child


def _is_zero(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and value == 0)


def refresh(opt: Optimizer) -> None:
    """``opt.params`` and ``opt.state``: its children's, in group order."""
    object.__setattr__(opt, "params", [p for c in opt._children for p in c.params])
    object.__setattr__(opt, "state", [s for c in opt._children for s in c.state])
    # clipped in memory order: groups that cover a model give one norm over its buffer,
    # the plain optimizer's to the last bit
    object.__setattr__(opt, "_clipped", sorted(opt.params, key=lambda p: _address(p.grad)))


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def set_every_group(opt: Optimizer, name: str, value: Any) -> None:
    """``opt.<name> = value`` (checked and set on ``opt``) on every group: ``lr`` times
    each group's scale. Every group is checked before any changes."""
    if name == "clip_norm":
        return
    new = [value * s for s in opt._scales] if name == "lr" else [value] * len(opt._children)
    for i, (child, v) in enumerate(zip(opt._children, new, strict=True)):
        before = getattr(child, name)
        try:
            object.__setattr__(child, name, child._checks[name](v, name, type(opt).__name__))
            child._check_together()
        except (TypeError, ValueError) as err:
            raise type(err)(f"{err} (in parameter group {i})") from err
        finally:
            object.__setattr__(child, name, before)
    for child, v in zip(opt._children, new, strict=True):
        setattr(child, name, v)
    refresh(opt)


class ParamGroup(MutableMapping):
    """One entry of ``opt.param_groups``: ``"params"`` (the group's parameters) and its
    settings by name (``"betas"`` too where there are ``beta1``/``beta2``), read from and
    written to the group itself, each write checked as the optimizer's attributes are."""

    def __init__(self, owner: Optimizer, index: int) -> None:
        self._owner, self._index = owner, index

    def _target(self) -> Optimizer:
        owner = self._owner
        return owner._children[self._index] if owner._children else owner

    def __getitem__(self, key: str) -> Any:
        target = self._target()
        if key == "params":
            return list(target.params)
        if key == "betas" and "beta1" in target._hyper:
            return (target.beta1, target.beta2)
        if key in target._hyper:
            return getattr(target, key)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        owner, target, who = self._owner, self._target(), type(self._owner).__name__
        if key == "params":
            raise TypeError(f"{who}: a group's 'params' are fixed; add_param_group adds "
                            "others, and a new optimizer takes other groups")
        if key not in setting_names(owner):
            raise ValueError(f"{who}: expected a setting among {setting_names(owner)}, "
                             f"got {key!r} (a typo would otherwise be stored and ignored; "
                             f"PyTorch keeps any key)")
        try:
            if key == "betas":
                _set_betas(target, value, who)
            else:
                setattr(target, key, value)
        except (TypeError, ValueError) as err:
            if not owner._children:
                raise
            raise type(err)(f"{err} (in parameter group {self._index})") from err
        if owner._children:
            if key == "lr" and owner.lr:
                owner._scales[self._index] = target.lr / owner.lr
            refresh(owner)

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"{type(self._owner).__name__}: a group's settings cannot be "
                        f"removed, got del group[{key!r}]")

    def __iter__(self) -> Iterator[str]:
        return iter(["params", *self._target()._hyper])

    def __len__(self) -> int:
        return 1 + len(self._target()._hyper)

    def __repr__(self) -> str:
        items = [f"'params': {[p.name for p in self['params']]}"]
        items += [f"{k!r}: {self[k]!r}" for k in self._target()._hyper]
        return "{" + ", ".join(items) + "}"


def _set_betas(target: Optimizer, value: Any, who: str) -> None:
    """``group["betas"] = (beta1, beta2)``: both checked before either is set."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{who}: expected betas as a pair of numbers in [0, 1), got {value!r}")
    pair = [target._checks[k](v, k, who) for k, v in zip(("beta1", "beta2"), value,
                                                          strict=True)]
    target.beta1, target.beta2 = pair


def make_grouped(opt: Optimizer) -> Callable[[], None]:
    """Turn a plain optimizer into one with a single group that carries its state on
    (:meth:`~.base.Optimizer.add_param_group` on a plain one); returns the undo."""
    child = type(opt)(opt.params, **{**opt.hyperparameters(), "lr": 1.0})
    state = opt.state_dict()
    state["hyper"]["clip_norm"] = None  # clipping stays the outer optimizer's
    child.load_state_dict(state)
    keys = ("_children", "_groups", "_group_state", "_scratch", "params", "state", "_clipped")
    before = {k: getattr(opt, k) for k in keys}
    for k in keys[1:4]:
        object.__setattr__(opt, k, [])
    opt._children, opt._scales = [child], [1.0]
    refresh(opt)
    return lambda: [object.__setattr__(opt, k, v) for k, v in before.items()] and None


def deepcopy_children(opt: Optimizer, memo: dict[int, Any]) -> None:
    """Put copies of the children into ``memo`` before the outer optimizer's dict is
    copied, so its ``state`` stays views of theirs; the parameters are registered in
    memory order, so groups listed out of the model's order still share its buffer."""
    import copy

    for arrays in ([p.value for p in opt.params], [p.grad for p in opt.params]):
        copy_flat_views(memo, sorted(arrays, key=_address), part=True)
    copy.deepcopy(opt._children, memo)


def regroup(opt: Optimizer, params: list[Parameter]) -> list[Any]:
    """``params`` (parallel to ``opt.params``) as ``opt``'s constructor took them: in
    groups of the same sizes and settings (lr aside: ``load_state_dict`` restores it)."""
    if not opt._children:
        return params
    groups, start = [], 0
    for child in opt._children:
        n = len(child.params)
        hyper = {k: v for k, v in child.hyperparameters().items() if k != "lr"}
        groups.append({"params": params[start:start + n], **hyper})
        start += n
    return groups


def describe_groups(opt: Optimizer) -> str:
    """``[(2 params, lr=0.1), (2 params)]``: each group's size and the settings in which it
    differs from the optimizer's own."""
    own = opt.hyperparameters()
    parts = []
    for child in opt._children:
        diff = [f"{k}={v!r}" for k, v in child.hyperparameters().items() if v != own[k]]
        parts.append("(" + ", ".join([f"{len(child.params)} params", *diff]) + ")")
    return "[" + ", ".join(parts) + "]"


def grouped_state_dict(opt: Optimizer, copy: bool = True) -> dict[str, Any]:
    """The plain state dict (the arrays of all groups under ``"state"``, the optimizer's
    own settings under ``"hyper"``) and ``"groups"``: per group, the positions of its
    parameters in ``opt.params``, its settings, lr scale and step-keyed state."""
    state = {
        "type": type(opt).__name__,
        "hyper": {**opt.hyperparameters(), "clip_norm": opt.clip_norm},
        "steps": opt.steps,
        "state": {name: {k: v.copy() if copy else v for k, v in s.items()}
                  for name, s in zip(opt._state_names(), opt.state, strict=True)},
        "groups": [],
    }
    start = 0
    for child, scale in zip(opt._children, opt._scales, strict=True):
        n = len(child.params)
        entry = {"params": list(range(start, start + n)), "hyper": child.hyperparameters(),
                 "lr_scale": scale, "steps": child.steps, **child._scalar_state()}
        if child._state_since:
            entry["state_since"] = child._state_since
        state["groups"].append(entry)
        start += n
    return state


def load_groups(opt: Optimizer, state: Any) -> None:
    """:meth:`~.base.Optimizer.load_state_dict` for a grouped optimizer or state: all is
    checked (each group by its child, as a plain state) before anything changes."""
    who = type(opt).__name__
    keys = ["groups", "hyper", "state", "steps", "type"]
    if not isinstance(state, dict):
        raise TypeError(f"{who}: expected a dict from state_dict() with keys {keys}, "
                        f"got {type(state).__name__}")
    if "groups" not in state or not opt._children:
        saved = len(state["groups"]) if isinstance(state.get("groups"), list) else 0
        raise ValueError(f"{who}: expected a state with {len(opt._children) or 'no'} parameter "
                         f"groups, got one with {saved or 'no'} parameter groups: build the "
                         f"optimizer with the same groups to load it")
    if "type" in state and state["type"] != who:
        raise ValueError(f"{who}: expected {_a(who)} {who} state, got {state['type']!r}")
    if sorted(map(str, state)) != keys:
        raise ValueError(f"{who}: expected a state dict with keys {keys}, got "
                         f"{sorted(map(str, state))}")
    outer = opt._saved_settings({"type": who, "hyper": state["hyper"], "steps": state["steps"],
                                 "state": {}, **opt._scalar_state()})
    groups, names, saved = state["groups"], opt._state_names(), state["state"]
    if not isinstance(groups, list) or len(groups) != len(opt._children):
        got = len(groups) if isinstance(groups, list) else type(groups).__name__
        raise ValueError(f"{who}: expected {len(opt._children)} parameter groups, got {got}")
    got = sorted(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
    if got != sorted(names):
        raise ValueError(f"{who}: expected state for parameters {names}, got {got}")
    plans, start = [], 0
    for i, (child, entry) in enumerate(zip(opt._children, groups, strict=True)):
        n = len(child.params)
        sub = _group_state(child, entry, {c: saved[names[start + j]] for j, c in
                                          enumerate(child._state_names())}, i)
        if sub["params"] != list(range(start, start + n)):
            raise ValueError(f"{who}: expected parameter group {i} over parameters "
                             f"{list(range(start, start + n))}, got {sub['params']}")
        try:
            probe = child._saved_settings(sub["state_dict"])
            plans.append((child, sub, probe, child._saved_arrays(sub["state_dict"]["state"],
                                                                 probe)))
        except (TypeError, ValueError) as err:
            raise type(err)(f"{err} (in parameter group {i})") from err
        start += n
    for k in (*opt._hyper, "clip_norm"):
        object.__setattr__(opt, k, getattr(outer, k))
    object.__setattr__(opt, "steps", int(state["steps"]))
    for i, (child, sub, probe, pairs) in enumerate(plans):
        child._apply_state(sub["state_dict"], probe, pairs)
        opt._scales[i] = sub["lr_scale"]
    refresh(opt)


def _group_state(child: Optimizer, entry: Any, arrays: dict[str, Any],
                 i: int) -> dict[str, Any]:
    """One saved group as ``{"params", "lr_scale", "state_dict"}``, the last a plain state
    dict for ``child`` (with the group's own step count)."""
    who = type(child).__name__
    keys = sorted(["hyper", "lr_scale", "params", "steps", *child._scalar_state()])
    got = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
    if got not in (keys, sorted([*keys, "state_since"])):
        raise ValueError(f"{who}: expected parameter group {i} saved with keys {keys} (and "
                         f"'state_since'), got {got}")
    scale = entry["lr_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
            or not 0 <= scale < float("inf"):
        raise ValueError(f"{who}: expected lr_scale of parameter group {i} as a finite "
                         f"number >= 0, got {scale!r}")
    hyper = entry["hyper"]
    sub = {"type": who, "hyper": {**hyper, "clip_norm": None} if isinstance(hyper, dict)
           else hyper, "steps": entry["steps"], "state": arrays,
           **{k: entry[k] for k in (*child._scalar_state(), "state_since") if k in entry}}
    return {"params": entry["params"], "lr_scale": float(scale), "state_dict": sub}
