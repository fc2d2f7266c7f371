"""Notebook-friendly views: a layer's formulas, its HTML card, and aligned tables.

Every layer's class docstring carries its math as a Forward/Backward block::

    Forward:   y = x @ W + b              x (N, D_in), W (D_in, D_out), b (D_out,)
    Backward:  dW = x.T @ dy   db = dy.sum(0)   dx = dy @ W.T

:func:`formulas` returns that block as text; :func:`layer_html` is what Jupyter
shows for a layer (``Layer._repr_html_``): class, repr, configuration, parameter
shapes and the formulas. :func:`text_table` / :func:`html_table` render the rows
of :meth:`backprop.trace.Trace.table`.
"""

from __future__ import annotations

import contextlib
import inspect
import textwrap
from collections.abc import Iterator
from html import escape
from typing import Any

import numpy as np

__all__ = ["formulas", "layer_html", "text_table", "html_table", "TraceTable"]

_LABELS = ("Forward:", "Backward:")


def formulas(layer: Any) -> str:
    """The Forward/Backward block of a layer's class docstring, dedented.

    The block starts at the first line beginning with ``Forward:`` (or
    ``Backward:``) and runs to the next blank line, so continuation lines are kept.
    Only the class's own docstring is read: a subclass without one gets ``""``, not
    its parent's math (it may change forward or backward; state your own block).

    Args:
        layer: A layer or loss: an instance, its class, or the class's name in
            ``backprop`` (``"Dense"``); your own subclasses too.

    Returns:
        The block as text, or ``""`` when the docstring has none.

    Raises:
        ValueError: a name that is no class of ``backprop``.
        TypeError: anything else that is not a layer or loss (class or instance).
    """
    cls = _documented_class(layer)
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()  # getdoc would inherit
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith(_LABELS)), None)
    if start is None:
        return ""
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line)
    return textwrap.dedent("\n".join(block))


def _documented_class(layer: Any) -> type:
    """The Layer or Loss class that ``layer`` is, names, or is an instance of."""
    import backprop

    from .layers.base import Layer
    from .losses import Loss

    if isinstance(layer, str):
        found = getattr(backprop, layer, None)
        if not isinstance(found, type):
            builds = (f", a function: pass what it builds, formulas(bp.{layer}(...))"
                      if callable(found) else "")
            raise ValueError(f"formulas: expected the name of a backprop layer or loss, "
                             f"got {layer!r}{builds}")
        layer = found
    cls = layer if isinstance(layer, type) else type(layer)
    if not issubclass(cls, (Layer, Loss)):
        builds = (f": pass what it builds, formulas({layer.__name__}(...))"
                  if callable(layer) and hasattr(layer, "__name__") and not isinstance(
                      layer, type) else "")
        raise TypeError(f"formulas: expected a layer or loss (class or instance), got "
                        f"{cls.__name__} {layer!r:.60}{builds}")
    return cls


def layer_html(layer: Any) -> str:
    """HTML card for a layer: class, repr, config, parameter shapes, formulas, children."""
    name = type(layer).__name__
    parts = [f"<div><b>{escape(name)}</b> <code>{escape(_one_line(repr(layer)))}</code>"]
    config = {k: v for k, v in layer.get_config().items() if not _holds_layers(v)}
    if config:
        rows = "".join(f"<tr><td>{escape(str(k))}</td><td><code>{escape(repr(v))}</code></td>"
                       "</tr>" for k, v in config.items())
        parts.append(f"<table><tbody>{rows}</tbody></table>")
    own = getattr(layer, "params", {}) if not layer.children() else {}
    if own:
        shapes = ", ".join(f"{escape(k)} {tuple(v.shape)}" for k, v in own.items())
        parts.append(f"<div>params: {shapes} ({layer.num_params:,} trainable)</div>")
    text = formulas(layer)
    if text:
        parts.append(f"<pre>{escape(text)}</pre>")
    kids = layer.children()
    if kids:
        items = "".join(f"<li>({escape(n)}) {layer_html(c)}</li>" for n, c in kids)
        parts.append(f"<details><summary>{len(kids)} sub-layer(s)</summary><ul>{items}</ul>"
                     "</details>")
    return "".join(parts) + "</div>"


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines())


def _holds_layers(value: Any) -> bool:
    from .layers.base import Layer

    if isinstance(value, (list, tuple)):
        return any(isinstance(v, Layer) for v in value)
    return isinstance(value, Layer)


def text_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """Aligned text table; columns whose index is in ``right`` are right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    head = line(headers)
    return "\n".join([head, "-" * len(head), *(line(r) for r in rows)])


def html_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """The same table as HTML (Jupyter)."""
    def cell(tag: str, i: int, text: str) -> str:
        style = " style='text-align:right'" if i in right else ""
        indent = len(text) - len(text.lstrip(" "))  # leading spaces (nested rows) kept
        return f"<{tag}{style}>{'&nbsp;' * indent}{escape(text[indent:])}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- the trace table -----------------------------------------------------------------
_COLUMNS = ["Layer", "Output", "|y|", "mean y", "std y", "zeros", "dead", "saturated",
            "|dy|", "|dx|", "gradient norms"]


def trace_row(rec: Any, call: int) -> dict[str, Any]:
    """One row: forward call ``call`` and backward call ``call`` of a ``LayerRecord``."""
    f, b = _pick(rec.forward, call), _pick(rec.backward, call)
    row: dict[str, Any] = {"layer": rec.label, "name": rec.name,
                           "output": None if f is None else ("N", *f.y_shape[1:])}
    for key in ("y_norm", "y_mean", "y_std", "zero_frac", "dead_frac", "saturated_frac"):
        row[key] = None if f is None else getattr(f, key)
    for key in ("dy_norm", "dx_norm"):
        row[key] = None if b is None else getattr(b, key)
    row["grad_norms"] = {} if b is None else dict(b.grad_norms)
    return row


def _pick(calls: list[Any], call: int) -> Any:
    return calls[call] if -len(calls) <= call < len(calls) else None


class TraceTable:
    """Per-layer summary: aligned text (``str``) or HTML in Jupyter.

    ``rows`` holds one dict per layer with keys ``layer``, ``name``, ``output``,
    ``y_norm``, ``y_mean``, ``y_std``, ``zero_frac``, ``dead_frac``,
    ``saturated_frac``, ``dy_norm``, ``dx_norm``, ``grad_norms``; None where the
    layer had no such call (or, for ``saturated_frac``, is not Sigmoid/Tanh).
    """

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def _cells(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            shape = "-" if r["output"] is None else str(r["output"]).replace("'", "")
            grads = "  ".join(f"{k}: {v:.3g}" for k, v in r["grad_norms"].items())
            out.append([r["layer"], shape, *(_num(r[k]) for k in ("y_norm", "y_mean", "y_std")),
                        *(_pct(r[k]) for k in ("zero_frac", "dead_frac", "saturated_frac")),
                        _num(r["dy_norm"]), _num(r["dx_norm"]), grads or "-"])
        return out

    def __str__(self) -> str:
        return text_table(_COLUMNS, self._cells(), set(range(2, 10)))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return html_table(_COLUMNS, self._cells(), set(range(2, 10)))


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


# -- the summary table ---------------------------------------------------------------
def one_line(layer: Any) -> str:
    """The layer's repr, or for a container (whose repr spans lines) its class name: its
    layers get rows of their own (and an error names it so). A str is itself."""
    text = str(layer)
    return type(layer).__name__ if "\n" in text else text


class Summary:
    """The table :meth:`Sequential.summary` returns: text in a console, HTML in Jupyter."""

    def __init__(self, rows: list[tuple[str, str, int]], total: int, note: str = "") -> None:
        self.rows = rows
        self.total = total
        self.note = note  # why the output shapes are "?", where a guessed input failed

    _HEAD = ["Layer", "Output shape", "Params"]

    def _cells(self) -> list[list[str]]:
        return [[a, b, f"{c:,}"] for a, b, c in self.rows]

    def __str__(self) -> str:
        table = text_table(self._HEAD, self._cells(), {2})
        return f"{table}\n{'-' * len(table.splitlines()[1])}\n" \
            f"Total trainable parameters: {self.total:,}" + (f"\n{self.note}" * bool(self.note))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        table = html_table(self._HEAD, [*self._cells(), ["Total", "", f"{self.total:,}"]], {2})
        return table + (f"<p>{escape(self.note)}</p>" if self.note else "")


@contextlib.contextmanager
def _restored(kept: list[tuple[np.ndarray, np.ndarray]]) -> Iterator[None]:
    """Copy each ``(array, saved)`` pair's saved values back into the array on exit."""
    try:
        yield
    finally:
        for array, saved in kept:
            np.copyto(array, saved)


def summary_rows(layers: list[Any], x: Any, input_shape: Any, quiet: Any
                 ) -> list[tuple[str, str, int]]:
    """``Sequential.summary``'s rows: each layer, its output shape for a dummy batch ``x``
    (None: "?") and its parameter count; a container's layers indented. The forwards run
    inside the context ``quiet`` (which keeps recurrent states) and
    :func:`~backprop.trace`'s ``paused``, and put back the rows an ``Embedding`` with
    ``max_norm`` renormalises (PyTorch's forward changes them in place); the layers'
    reprs are taken before it."""
    from .trace import paused

    rows: list[list[tuple[str, str, int]]] = []
    for i, layer in enumerate(layers):
        rows.append([(f"({i}) {one_line(layer)}", "?", layer.num_params)])
        if "\n" in repr(layer):  # a Residual's block: its layers, indented by depth
            rows[-1] += [(f"{'  ' * (1 + path.count('.'))}({i}.{path}) {one_line(sub)}", "",
                          sub.num_params) for path, sub in layer.named_layers()]
    kept = [(la.params["W"], la.params["W"].copy()) for top in layers
            for la in (top, *(sub for _, sub in top.named_layers()))
            if getattr(la, "max_norm", None) is not None]
    with quiet, paused(), _restored(kept):
        for i, layer in enumerate(layers if x is not None else ()):
            try:
                x = layer.forward(x, training=False)
            except ValueError as err:
                raise ValueError(f"{err} (summary: input_shape={input_shape} is taken as "
                                 f"one sample's shape, the batch axis left out)") from err
            label, _, count = rows[i][0]
            rows[i][0] = (label, str(("N",) + x.shape[1:]).replace("'", ""), count)
    return [row for group in rows for row in group]
