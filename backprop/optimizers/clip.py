"""Gradient clipping, the parameter lists optimizers take and the checks of their
settings and saved state (see :mod:`.base`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .._validate import boolean, in_range
from ..backend import axpby, sumsq
from ..layers._flat import flat_base
from ..layers.base import Layer, Parameter

# what other frameworks call a setting: optimizer.<name> = ... points at ours
_ALIASES = {"learning_rate": "backprop calls it lr",
                "betas": "backprop calls it beta1 and beta2",
                "param_groups": ("the list is read-only: write a group's settings through it "
                                 "(opt.param_groups[i]['lr'] = ...), set every group's on the "
                                 "optimizer (opt.lr = ...), add a group with "
                                 "opt.add_param_group({'params': ..., ...})")}


def _finite(value: Any, name: str, who: str, positive: bool = False) -> float:
    """A finite hyperparameter >= 0 (> 0 when ``positive``) as a Python float."""
    return in_range(value, name, who, 0.0, math.inf, low_open=positive, high_open=True)


# state that is never negative: a negative entry of an average of squared gradients makes
# its sqrt NaN, one of Adamax's maximum of |g| flips the sign of a step
_NONNEGATIVE = {**dict.fromkeys(("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum"),
                                "an average of squares"),
                "exp_inf": "a running maximum of |g|"}


def _a(word: str) -> str:
    """The article before ``word``: "an Adam", "a SGD" (by its first letter)."""
    return "an" if word[:1].lower() in ("a", "e", "i", "o", "u") else "a"


def _check_values(a: np.ndarray, what: str, nonnegative: str | None) -> None:
    """Saved optimizer state must be finite (and >= 0 where ``nonnegative`` says what it
    is): a NaN there would turn the first update after loading into NaN weights. A
    ``nonnegative`` state (an average of squares, a running maximum) may be +inf: a square
    past the float range, which PyTorch keeps too, stops that entry's updates (g / inf)."""
    if not (np.isfinite(a) | (a == np.inf) if nonnegative else np.isfinite(a)).all():
        raise ValueError(f"{what} to be finite{' or +inf' * bool(nonnegative)}, got NaN or "
                         f"{'-' * bool(nonnegative)}inf")
    if nonnegative and (a < 0).any():
        raise ValueError(f"{what} ({nonnegative}) to be >= 0, got {a.min()}")


def _saved_array(src: Any, arr: np.ndarray, what: str, nonnegative: str | None) -> np.ndarray:
    """A saved state array ``src`` checked to replace ``arr``: a float array of its shape
    (another float dtype is cast to ``arr``'s, as PyTorch's ``load_state_dict`` casts),
    finite (and >= 0 where ``nonnegative`` says what it is); ``what`` starts each error."""
    if not isinstance(src, np.ndarray) or src.dtype.kind != "f":
        raise TypeError(f"{what} as a float array (cast to the parameter's {arr.dtype}), "
                        f"got {getattr(src, 'dtype', type(src).__name__)}")
    if src.shape != arr.shape:
        raise ValueError(f"{what} of shape {arr.shape}, got {src.shape}")
    if src.dtype != arr.dtype:
        with np.errstate(over="ignore"):  # past float32's range: inf, refused below
            src, what = src.astype(arr.dtype), f"{what} (cast from {src.dtype} to {arr.dtype})"
    _check_values(src, what, nonnegative)
    return src


def clip_grad_norm(parameters: Iterable[Parameter] | Parameter | Layer, max_norm: float,
                   norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> float:
    """Scale all gradients in place so their global ``norm_type``-norm is at most
    ``max_norm``.

    Same rule and arguments as ``torch.nn.utils.clip_grad_norm_`` (``norm_type`` > 0 or
    inf; PyTorch also takes 0 and negative orders): multiply by
    ``max_norm / (norm + 1e-6)`` when that is below 1 (or NaN: a NaN gradient
    makes them all NaN, as PyTorch's does by default). The norm is the p-norm of every
    gradient entry at once (``norm_type`` p; ``inf``: the largest ``|g|``), measured
    without a temporary as large as the gradients (as PyTorch's ``vector_norm``).

    ``max_norm=math.inf`` clips nothing and returns the norm, PyTorch's idiom for
    logging it, even where the norm is inf or NaN (PyTorch's inf/inf then makes every
    gradient NaN).

    Args:
        parameters: ``model.parameters()`` (or one Parameter), or a model or layer.
        max_norm: The largest global norm kept, > 0 (``math.inf``: measure only).
        norm_type: p > 0 of the p-norm, ``math.inf`` or ``"inf"`` (2: the L2 norm).
        error_if_nonfinite: Raise instead of clipping when the norm is NaN or inf.
        foreach: Taken for PyTorch's signature; backprop clips its flat gradient
            buffer in one pass either way.

    Returns:
        The global norm before clipping (a Python float).

    Raises:
        TypeError / ValueError: ``max_norm`` is not a number > 0 (finite, or inf), or
            ``norm_type`` not one > 0.
        RuntimeError: the norm is NaN or inf and ``error_if_nonfinite`` is True (the
            gradients are left as they were).
        TypeError: a parameter or gradient is not a float ndarray.
        ValueError: a gradient of another shape than its parameter, or read-only.
    """
    who = "clip_grad_norm"
    max_norm = _positive_or_inf(max_norm, "max_norm", who, "math.inf: measure only")
    p = _positive_or_inf(norm_type, "norm_type", who, "math.inf or 'inf': the largest |g|")
    error_if_nonfinite = boolean(error_if_nonfinite, "error_if_nonfinite", who)
    if foreach is not None:
        boolean(foreach, "foreach", who)
    params = _parameters(parameters, who, "grad")
    return _clip(params, float(max_norm), who, p, error_if_nonfinite)[0]


def _positive_or_inf(value: Any, name: str, who: str, inf: str) -> float:
    """A number > 0, or inf (also PyTorch's string ``"inf"``), as a Python float."""
    if isinstance(value, str) and value.lower() == "inf":
        return math.inf
    if isinstance(value, (float, np.floating)) and value == math.inf:
        return math.inf
    try:
        return _finite(value, name, who, positive=True)
    except ValueError:
        raise ValueError(f"{who}: expected {name} > 0 (or {inf}), got {value!r}") from None


def clip_grad_value(parameters: Iterable[Parameter] | Parameter | Layer, clip_value: float
                    ) -> None:
    """Clamp every gradient in place to ``[-clip_value, clip_value]``, element by element.

    Same rule as ``torch.nn.utils.clip_grad_value_``: ``g = clip(g, -clip_value,
    clip_value)``; a NaN entry stays NaN (as ``torch.clamp_``), ``±inf`` becomes
    ``±clip_value``. Unlike :func:`clip_grad_norm` it changes the gradient's direction;
    it bounds each step of plain SGD to ``lr · clip_value`` per entry.

    Args:
        parameters: ``model.parameters()`` (or a list of Parameters, or one), or a model
            or layer.
        clip_value: The largest magnitude kept, >= 0 (0 zeroes every gradient;
            ``math.inf`` clips nothing).

    Returns:
        None, as PyTorch's.

    Raises:
        TypeError: ``clip_value`` is not a number (PyTorch takes ``"1"`` and ``True``),
            or ``parameters`` is not Parameters or a model.
        ValueError: ``clip_value`` is negative or NaN (PyTorch would set every entry to
            ``-|clip_value|``, or to NaN), or a parameter is listed twice; a gradient of
            another shape than its parameter, or read-only (TypeError: not a float
            ndarray).
    """
    if not (isinstance(clip_value, (float, np.floating)) and clip_value == math.inf):
        try:
            clip_value = _finite(clip_value, "clip_value", "clip_grad_value")
        except ValueError:  # its message would say finite, but inf is taken
            raise ValueError(f"clip_grad_value: expected clip_value >= 0 (math.inf clips "
                             f"nothing), got {clip_value!r}") from None
    grads = [p.grad for p in _parameters(parameters, "clip_grad_value", "grad")]
    if clip_value == math.inf:
        return
    chunks = [flat] if (flat := flat_base(grads)) is not None else grads  # one pass
    for c in chunks:
        np.clip(c, -clip_value, clip_value, out=c)


def _parameters(params: Any, who: str, writes: str = "value") -> list[Parameter]:
    """``params`` (``model.parameters()`` or a model) as a list, each parameter once, each
    a float ndarray with a gradient of its shape; ``writes`` (``"value"`` or ``"grad"``)
    must be writeable."""
    if isinstance(params, Layer):
        return params.parameters()
    if isinstance(params, Parameter):  # a named tuple: iterating it gives its name first
        if writes == "grad":  # clipping: one parameter is fine, as PyTorch's one tensor
            params = [params]
        else:
            raise TypeError(f"{who}: expected model.parameters() (Parameter tuples) or a "
                            f"model, got one Parameter {params.name!r}: wrap it in a list, "
                            "[p]")
    if isinstance(params, (str, bytes, np.ndarray)) or not isinstance(params, Iterable):
        raise TypeError(f"{who}: expected model.parameters() (Parameter tuples) or a model, "
                        f"got {type(params).__name__}")
    out, seen = list(params), {}
    for i, p in enumerate(out):
        if not isinstance(p, Parameter):
            raise TypeError(f"{who}: expected model.parameters() (Parameter tuples), "
                            f"got an element of type {type(p).__name__}")
        if id(p.value) in seen:  # it would be updated (or clipped) twice per step
            raise ValueError(f"{who}: expected each parameter once, got {p.name!r} at "
                             f"positions {seen[id(p.value)]} and {i}")
        seen[id(p.value)] = i
        _check_arrays(p, who, writes)
    return out


def _check_arrays(p: Parameter, who: str, writes: str) -> None:
    """Refuse what the updates cannot write or would misread (found by a review: an int
    parameter failed in its first step() with NumPy's casting error, after counting it;
    an np.matrix multiplied as matrices)."""
    for arr, what in ((p.value, "value"), (p.grad, "gradient")):
        if not isinstance(arr, np.ndarray) or isinstance(arr, np.matrix):
            raise TypeError(f"{who}: expected the {what} of parameter {p.name!r} as an "
                            f"ndarray, got {type(arr).__name__}")
    if p.value.dtype.kind != "f" or p.grad.dtype.kind != "f":
        raise TypeError(f"{who}: expected parameter {p.name!r} of a float dtype, got value "
                        f"{p.value.dtype} and gradient {p.grad.dtype} (an integer array "
                        "takes no fractional update, nor a clipped gradient; PyTorch refuses "
                        "requires_grad on one)")
    if p.grad.shape != p.value.shape:
        raise ValueError(f"{who}: expected the gradient of parameter {p.name!r} of its "
                         f"shape {p.value.shape}, got {p.grad.shape}")
    arr = p.value if writes == "value" else p.grad
    if not arr.flags.writeable:
        what = "value" if writes == "value" else "gradient"
        raise ValueError(
            f"{who}: expected the {what} of parameter {p.name!r} writeable (updated in place), "
            "got a read-only array" + (" (np.memmap opened with mode='r', flags.writeable "
                                       "False; or a model's old array, made read-only when "
                                       "the model re-homed its parameters: build the "
                                       "optimizer on model.parameters() of the complete "
                                       "model)" if writes == "value" else ""))


def _clip(params: list[Parameter], max_norm: float, who: str = "clip_grad_norm",
          p: float = 2.0, error_if_nonfinite: bool = False) -> tuple[float, float]:
    """:func:`clip_grad_norm` without the argument checks (``max_norm`` and ``p`` already
    valid); returns the norm and the scale applied (:func:`clip_scale`)."""
    grads = [q.grad for q in params]
    for q in params:  # an optimizer's clip_norm: its gradients were not checked for writes
        if not q.grad.flags.writeable:
            raise ValueError(f"{who}: expected the gradient of parameter {q.name!r} "
                             "writeable (clip_norm scales it in place), got a read-only array")
    chunks = [flat] if (flat := flat_base(grads)) is not None else grads  # scaled in place
    norm = math.sqrt(sum(sumsq(c) for c in chunks)) if p == 2.0 else _p_norm(chunks, p)
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(f"{who}: the total norm of order {p} of the gradients is {norm}, "
                           "so it cannot be clipped (error_if_nonfinite=True; False scales "
                           "the gradients by it anyway, as PyTorch)")
    coef = clip_scale(max_norm, norm)
    if coef != 1.0:  # also for a NaN norm: every gradient becomes NaN, as in PyTorch
        with np.errstate(invalid="ignore"):  # an inf entry times 0 (an inf norm): NaN, quietly
            for c in chunks:
                c *= coef
    return norm, coef


_CHUNK = 1 << 16  # elements per block of _p_norm: a 256 KB float32 scratch, in L2


def _p_norm(chunks: list[np.ndarray], p: float) -> float:
    """The ``p``-norm (``p`` > 0, != 2, or inf) of every entry of ``chunks`` at once, with
    no temporary larger than one block of :data:`_CHUNK` entries (``np.linalg.norm``
    builds ``|g|`` as large as the whole buffer): ``|g|**p`` is summed in ``g``'s dtype
    within each block (pairwise, as NumPy's), the blocks' sums exactly (``math.fsum``).
    NaN anywhere gives NaN, an inf entry inf; ``|g|**p`` or a norm past the dtype's
    range is inf (as PyTorch's, whose norm is in that dtype)."""
    if p == math.inf:  # max |g| without |g|: NaN propagates through max and min
        peaks = [max(float(c.max()), -float(c.min())) for c in chunks if c.size]
        return float(np.max(peaks)) if peaks else 0.0
    sums = []
    with np.errstate(over="ignore"):
        for c in chunks:
            flat = c.reshape(-1)
            scratch = np.empty(min(flat.size, _CHUNK), flat.dtype)
            for i in range(0, flat.size, _CHUNK):
                block = np.abs(flat[i:i + _CHUNK], out=scratch[:min(_CHUNK, flat.size - i)])
                if p != 1.0:
                    block **= p  # (NumPy's ** takes sqrt for 0.5: 3x faster than power)
                sums.append(float(block.sum()))
    try:  # (Python's floats raise where NumPy's give inf: float64 sums past its range)
        total = math.fsum(sums)
        norm = total if p == 1.0 else total ** (1.0 / p)
    except OverflowError:
        return math.nan if any(math.isnan(s) for s in sums) else math.inf
    top = max((float(np.finfo(c.dtype).max) for c in chunks), default=math.inf)
    return math.inf if norm > top else norm  # past the dtype's range, as PyTorch's norm


def clip_scale(max_norm: float, norm: float) -> float:
    """What :func:`clip_grad_norm` multiplies the gradients by: ``max_norm / (norm + 1e-6)``
    when that is below 1 (NaN for a NaN norm, 0 for an inf one), else 1; 1 always for
    ``max_norm = inf`` (it clips nothing, as documented: PyTorch's inf/inf makes every
    gradient NaN where the norm overflows, the logging idiom destroying the gradients)."""
    if max_norm == math.inf:
        return 1.0
    coef = max_norm / (norm + 1e-6)
    return coef if not coef >= 1.0 else 1.0


def _clip_norm(value: Any, name: str, who: str) -> float | None:
    return None if value is None else _finite(value, name, who, positive=True)


def _decayed(g, p, weight_decay: float, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """``g + weight_decay * p`` in ``out`` (the gradient buffer itself is left alone)."""
    np.copyto(out, g)
    axpby(weight_decay, p, 1.0, out, scratch)
    return out
