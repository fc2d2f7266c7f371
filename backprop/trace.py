"""Look inside a model: every layer's activations, deltas and gradients, per call.

::

    with bp.trace(model) as t:
        value = loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
    print(t.table())                 # one row per layer: |y|, zeros, saturation, |dy|, |dx|, |dW|
    t[0].backward[-1].grad_norms     # {"W": ..., "b": ...}

While the block runs, each traced layer gets *instance attributes* ``forward``,
``backward`` and ``backward_params`` that call the class methods and note what
went in and out: the input ``x``, the output ``y``, the incoming ``dy = ∂L/∂y``,
the outgoing ``dx`` and the parameter gradients (and ``forward_masked``, which notes
the padding mask a Sequential hands the layer: the "dead" column leaves padded steps
out). In the recursion
``δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ f′(z⁽ˡ⁾)`` (textbook W; ``(dy @ W.T) * f′(z)`` for Dense's
``W`` (in, out)), Dense layer l+1 gets ``dy = δ⁽ˡ⁺¹⁾`` (its output is z) and returns
``dx = W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾ = ∂L/∂a⁽ˡ⁾``, the ``dy`` of the activation before it, whose
``dx`` is δ⁽ˡ⁾, the ``dy`` of Dense layer l.

On exit, also after an exception, the attributes are deleted and the class methods
show through again; no layer class is ever edited. The wrappers pass every argument
and result on untouched, so outputs and gradients are bit-identical with and
without tracing.

Several traces may be active on the same layers at once (a model and one of its
blocks, say), each recording every call, and they may exit in any order: a trace
records nothing once it has exited, and each removes exactly the wrappers it
installed. One whose wrapper is still covered by a later trace's is left in
place as a pass-through, and removed when the trace above exits.

Around ``fit``, ``evaluate`` or ``predict``, the 2-sample forward with which they
check ``x`` before they start is not recorded: the first record is the first batch
(nor is the forward on zeros with which ``summary`` finds the output shapes).

By default only statistics are kept (norms, mean, std, fractions; O(1) memory per
call). ``keep_arrays=True`` also keeps copies of every array, for histograms.
A copy made inside the block (``copy.deepcopy``, ``astype``, the copies
:func:`~backprop.check_gradients` runs) is not traced: it runs its own class's methods
on its own weights. Every norm is taken of the array as the call got it (a ``dy``
made in place from the output, ``y -= t``, is measured as such).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._trace_stats import (
    SATURATION,
    BackwardStats,
    ForwardStats,
    LayerRecord,
    forward_stats,
    norm,
    sumsq,
)
from ._validate import boolean
from .display import TraceTable, trace_row
from .layers._as_layer import as_layer
from .layers.base import Container, Layer

__all__ = ["trace", "Trace", "LayerRecord", "ForwardStats", "BackwardStats", "TraceTable",
           "SATURATION", "sumsq"]

_METHODS = ("forward", "backward", "backward_params", "forward_masked")
_MISSING = object()
_PAUSED = threading.local()  # .n > 0 while fit/evaluate/predict check their inputs (in
# that thread: another's calls still record): not the user's calls


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Record nothing inside the block (the 2-sample forward with which ``fit``,
    ``evaluate`` and ``predict`` check ``x`` before they start is not a step)."""
    _PAUSED.n = getattr(_PAUSED, "n", 0) + 1
    try:
        yield
    finally:
        _PAUSED.n -= 1


class Trace:
    """The context manager :func:`trace` returns; index it for a layer's record.

    ``t[i]`` is the record of the container's i-th child (``model[i]``), ``t["3.block.0"]``
    of the layer at that path, ``t[layer]`` of that layer object. Iterating gives
    every record, depth first.
    """

    def __init__(self, model: Layer, *, keep_arrays: bool = False, recursive: bool = True
                 ) -> None:
        if not isinstance(model, Layer):
            raise TypeError(f"trace: expected a backprop Layer or Sequential, got "
                            f"{type(model).__name__}")
        as_layer(model, "trace", "model")  # one whose __init__ skips super().__init__()
        self.model = model
        self.keep_arrays = boolean(keep_arrays, "keep_arrays", "trace")
        self.recursive = recursive = boolean(recursive, "recursive", "trace")
        self.records: list[LayerRecord] = []
        seen: set[int] = set()
        for name, layer in _walk(model, recursive):
            if id(layer) not in seen:  # a layer used twice is traced once
                seen.add(id(layer))
                self.records.append(LayerRecord(name, layer, self.keep_arrays))
        self._saved: list[tuple[Layer, str, Any]] = []  # (layer, method, our wrapper)
        self._live = [False]  # shared with this entry's wrappers; False: pass through

    # -- entering and leaving -------------------------------------------------------
    def __enter__(self) -> Trace:
        if self._saved:
            raise RuntimeError("trace: expected a trace that is not active, got one already "
                               "inside its with-block")
        self._live = [True]  # a fresh cell: wrappers of an earlier entry stay dead
        try:
            for rec in self.records:
                for method in _METHODS:
                    self._install(rec, method)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()

    def _install(self, rec: LayerRecord, method: str) -> None:
        layer = rec.layer
        original = getattr(layer, method)
        kind = _MaskWrapper if method == "forward_masked" else _Wrapper
        wrapper = kind(rec, method, original, _NOTES[method](self, rec, original),
                       self._live, layer.__dict__.get(method, _MISSING))
        setattr(layer, method, wrapper)
        self._saved.append((layer, method, wrapper))

    def _restore(self) -> None:
        """Stop recording and take our wrappers off, whichever traces came and went since.

        A wrapper still under another trace's is left as a pass-through; the trace
        that unwraps it later skips every dead wrapper below its own.
        """
        self._live[0] = False
        while self._saved:
            layer, method, wrapper = self._saved.pop()
            if layer.__dict__.get(method, _MISSING) is not wrapper:
                continue  # covered by a later trace's wrapper (or replaced by the user)
            before = wrapper._trace_before
            while not getattr(before, "_trace_live", [True])[0]:  # an exited trace's wrapper
                before = before._trace_before
            if before is _MISSING:
                layer.__dict__.pop(method, None)
            else:
                layer.__dict__[method] = before

    # -- what the wrappers note -----------------------------------------------------
    @staticmethod
    def _norm_of(a: np.ndarray) -> float:
        """Norm of ``a`` as it is now: never one noted before for the same array object,
        which the caller may have changed in place since (``y -= t; model.backward(y)``)."""
        with np.errstate(all="ignore"):
            return norm(a)

    def _note_forward(self, rec: LayerRecord, x: Any, y: Any, training: bool) -> None:
        xa, ya = np.asarray(x), np.asarray(y)
        stats = forward_stats(rec.layer, ya, training, tuple(xa.shape), self._norm_of(xa),
                              rec._masks.get(threading.get_ident()))
        rec.forward.append(stats)
        if self.keep_arrays:
            rec.x.append(xa.copy())
            rec.y.append(ya.copy())

    def _note_backward(self, rec: LayerRecord, dy: Any, dx: Any) -> None:
        dya = np.asarray(dy)
        dxa = None if dx is None else np.asarray(dx)
        # a container's gradients are its sub-layers' to report, unless they go untraced
        grads = {} if isinstance(rec.layer, Container) and self.recursive else rec.layer.grads
        dy_norm = self._norm_of(dya)
        with np.errstate(all="ignore"):
            stats = BackwardStats(dy_norm, None if dxa is None else norm(dxa),
                                  {k: norm(g) for k, g in grads.items()})
        rec.backward.append(stats)
        if self.keep_arrays:
            rec.dy.append(dya.copy())
            rec.dx.append(None if dxa is None else dxa.copy())
            rec.grads.append({k: g.copy() for k, g in grads.items()})

    # -- reading --------------------------------------------------------------------
    def __getitem__(self, key: int | str | Layer) -> LayerRecord:
        if isinstance(key, Layer):
            found = [r for r in self.records if r.layer is key]
        elif isinstance(key, str):
            found = [r for r in self.records if r.name == key]
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            kids = (self.model.children() if isinstance(self.model, Container)
                    else [("", self.model)])
            if not -len(kids) <= key < len(kids):
                raise IndexError(f"trace: expected a layer index in [{-len(kids)}, "
                                 f"{len(kids)}), got {key}")
            return self[kids[key][1]]
        else:
            raise TypeError(f"trace: expected an int, a layer path or a Layer, got {key!r}")
        if not found:
            raise KeyError(f"trace: expected one of the traced layers "
                           f"{[r.name for r in self.records]}, got {key!r}")
        return found[0]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Any:
        return iter(self.records)

    def clear(self) -> None:
        """Forget every recorded call (keeps tracing if active)."""
        for rec in self.records:
            rec.clear()

    def table(self, call: int = -1) -> TraceTable:
        """Per-layer summary of forward call ``call`` and backward call ``call``
        (default: the last of each: the latest training step, unless inference forwards
        came after it, as fit's validation or a predict; ``clear()`` before a step to
        see that step alone).

        Raises:
            TypeError: ``call`` is not an int.
            ValueError: ``call`` is outside ``[-n, n)``, ``n`` the most calls any
                layer recorded (``-1`` and ``0`` always work: an empty table).
        """
        if isinstance(call, bool) or not isinstance(call, (int, np.integer)):
            raise TypeError(f"Trace.table: expected call to be an int, got {call!r}")
        n = max([1, *(max(len(r.forward), len(r.backward)) for r in self.records)])
        if not -n <= call < n:
            raise ValueError(f"Trace.table: expected call in [{-n}, {n}) (calls recorded "
                             f"per layer, at most), got {call}")
        return TraceTable([trace_row(rec, int(call)) for rec in self.records])

    def __repr__(self) -> str:
        state = "active" if self._saved else "inactive"
        return (f"Trace({len(self.records)} layers, {state}, keep_arrays={self.keep_arrays})")

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def trace(model: Layer, *, keep_arrays: bool = False, recursive: bool = True) -> Trace:
    """Record every layer's activations, deltas and gradients inside a with-block.

    Args:
        model: A Sequential (every layer, nested containers included, is traced)
            or a single layer.
        keep_arrays: Also keep copies of ``x``, ``y``, ``dy``, ``dx`` and the
            gradients of every call (memory grows with every step).
        recursive: Trace the layers inside nested containers (Residual blocks,
            inner Sequentials) too; False traces the top-level layers only (a
            container's row then holds its sub-layers' gradient norms).

    Returns:
        A :class:`Trace`; use it as ``with bp.trace(model) as t: ...``. Traces of
        the same layers may overlap and exit in any order (see the module notes);
        an exited trace records nothing more.
    """
    return Trace(model, keep_arrays=keep_arrays, recursive=recursive)


# -- the wrappers: call the original, pass everything on untouched, then take notes -----
class _Wrapper:
    """``original`` with ``note(first_arg, result, args, kwargs)`` called after it.

    A call made from inside the layer's own traced method (``Dense.backward``
    calls ``backward_params``) is passed straight through: one call, one record.
    So is every call once the trace has exited (``_trace_live[0]`` False).
    ``_trace_before`` is what the layer's ``__dict__`` held before: what we restore.
    """

    def __init__(self, rec: LayerRecord, method: str, original: Any, note: Any,
                 live: list[bool], before: Any) -> None:
        self.rec, self.method, self.original, self.note = rec, method, original, note
        self._trace_live, self._trace_before = live, before
        self.first = _first_name(_unwrapped(original))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        rec, me = self.rec, threading.get_ident()  # busy per thread: threads may predict
        if me in rec._busy or not self._trace_live[0] or getattr(_PAUSED, "n", 0):
            return self.original(*args, **kwargs)
        rec._busy.add(me)
        try:
            out = self.original(*args, **kwargs)
        finally:
            rec._busy.discard(me)
        if args:
            self.note(args[0], out, args[1:], kwargs)
        elif self.first in kwargs:  # layer.forward(x=x): the same call, by keyword
            self.note(kwargs[self.first], out, (), kwargs)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        """A copy of the layer (deepcopy, astype) gets what the layer holds without any
        trace: its class's method, bound to the copy (or the user's own attribute)."""
        before = self._trace_before
        while isinstance(before, _Wrapper):
            before = before._trace_before
        return (_untraced, (self.rec.layer, self.method, None if before is _MISSING else before))


class _MaskWrapper(_Wrapper):
    """``forward_masked``: notes nothing itself, but holds the call's padding mask (N, T)
    while it runs, for the note of the ``forward`` it calls (a dead unit is one zero at
    every real step). The layers with ``dead_frac`` pass the mask on: it is ``y``'s too."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._trace_live[0] or getattr(_PAUSED, "n", 0):
            return self.original(*args, **kwargs)
        masks, me = self.rec._masks, threading.get_ident()
        before = masks.get(me, _MISSING)
        masks[me] = args[1] if len(args) > 1 else kwargs.get("mask")
        try:
            return self.original(*args, **kwargs)
        finally:
            if before is _MISSING:
                masks.pop(me, None)
            else:
                masks[me] = before


def _untraced(layer: Layer, method: str, before: Any) -> Any:
    return getattr(type(layer), method).__get__(layer) if before is None else before


def _unwrapped(method: Any) -> Any:
    while isinstance(method, _Wrapper):  # another trace's wrapper: the method under it
        method = method.original
    return method


def _params(method: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return []


def _first_name(method: Any) -> str | None:
    """The name of ``method``'s first parameter (``x``, ``dy``), for calls by keyword."""
    return next((p.name for p in _params(method)), None)


def _forward_note(tr: Trace, rec: LayerRecord, method: Any) -> Any:
    """The note of a forward: ``training`` by keyword, or by position where the method
    takes it so (a custom layer's ``forward(x, training=False)``); never another
    argument's place (ConvTranspose's ``forward(x, output_size)``)."""
    names = [p.name for p in _params(_unwrapped(method))
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    at = names.index("training") - 1 if "training" in names[1:] else None  # in args[1:]

    def note(x: Any, y: Any, args: tuple, kwargs: dict) -> None:
        given = args[at] if at is not None and at < len(args) else False
        tr._note_forward(rec, x, y, bool(kwargs.get("training", given)))
    return note


_NOTES = {
    "forward": _forward_note,
    "backward": lambda tr, rec, _: lambda dy, dx, a, k: tr._note_backward(rec, dy, dx),
    "backward_params": lambda tr, rec, _: lambda dy, _, a, k: tr._note_backward(rec, dy, None),
    "forward_masked": lambda tr, rec, _: None,  # (a _MaskWrapper: it notes the mask only)
}


def _walk(model: Layer, recursive: bool) -> list[tuple[str, Layer]]:
    if not isinstance(model, Container):
        return [("", model)]
    return list(model.named_layers() if recursive else model.children())
