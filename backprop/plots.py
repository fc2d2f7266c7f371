"""Pictures of gradient flow and activations (matplotlib, the ``notebooks`` extra).

matplotlib is imported inside the functions, never when backprop is imported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validate import listlike, positive_int

__all__ = ["plot_gradient_flow", "plot_activation_histograms"]


def _pyplot(who: str) -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(f"{who}: expected matplotlib to be installed, got none; install it "
                          'with pip install "backprop[notebooks]"') from err
    return plt


def plot_gradient_flow(source: Any, ax: Any = None) -> Any:
    """Per-layer gradient norms on a log scale, input layer on the left.

    Args:
        source: A :class:`~backprop.trace.Trace` (draws each trainable layer's
            gradient norm ``sqrt(Σ_p ‖∂L/∂p‖²)`` and every layer's ``‖dy‖`` from
            the last backward) or a :class:`~backprop.History` of a fit run with
            :class:`~backprop.GradientFlowMonitor` (one line per epoch, darker later).
        ax: Axes to draw into (default: a new figure).

    Returns:
        The matplotlib Figure.

    Raises:
        ImportError: matplotlib is not installed.
        TypeError, ValueError: ``source`` is neither, or holds nothing to draw; ``ax``
            is not matplotlib Axes.
    """
    plt = _pyplot("plot_gradient_flow")
    series = _series(source)
    if ax is not None and not (hasattr(ax, "plot") and hasattr(ax, "figure")):
        raise TypeError(f"plot_gradient_flow: expected ax as matplotlib Axes or None, got "
                        f"{ax!r:.60}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(series[0][1]) + 2), 3.2))
    else:
        fig = ax.figure
    # a dead network (every norm 0) or a run of skipped steps (NaN) has nothing for a log
    # scale: its zeros are drawn on a linear one, and the title says so
    log = any(v is not None and 0 < v < math.inf for _, _, values, _ in series for v in values)
    for label, names, values, style in series:
        y = [v if v is not None and (v > 0 or not log and v == 0) else math.nan for v in values]
        ax.plot(range(len(names)), y, label=label, **style)
    names = series[0][1]
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 8 else 0)
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="layer (input → output)", ylabel="norm", title="Gradient flow" if log else
           "Gradient flow: every norm is 0 or not finite")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _series(source: Any) -> list[tuple[str, list[str], list[float | None], dict[str, Any]]]:
    from .trace import Trace

    if isinstance(source, Trace):
        rows = source.table().rows
        if not any(r["dy_norm"] is not None for r in rows):
            raise ValueError("plot_gradient_flow: expected a trace with a backward pass "
                             "recorded, got none")
        names = [r["name"] or r["layer"] for r in rows]
        grads = [math.sqrt(sum(v * v for v in r["grad_norms"].values()))
                 if r["grad_norms"] else None for r in rows]
        return [("‖∂L/∂params‖", names, grads, {"marker": "o"}),
                ("‖dy‖ (δ)", names, [r["dy_norm"] for r in rows], {"marker": ".", "ls": "--"})]
    history = getattr(source, "history", None)
    if not isinstance(history, dict):
        raise TypeError("plot_gradient_flow: expected a Trace or a History, got "
                        f"{type(source).__name__}")
    if not any(len(v) for v in history.values()):  # fit(epochs=0): no key says what ran
        raise ValueError("plot_gradient_flow: expected a History with at least one epoch "
                         "recorded, got an empty one (a fit that trained no epoch, or none yet; "
                         "with bp.GradientFlowMonitor() among fit's callbacks, each epoch "
                         "records the grad_norm/ keys drawn here)")
    keys = [k for k in history if k.startswith("grad_norm/")]
    if not keys:
        raise ValueError("plot_gradient_flow: expected a History of a fit with "
                         "bp.GradientFlowMonitor() among its callbacks, got no grad_norm/ keys")
    names = [k.split("/", 1)[1] for k in keys]
    n = len(history[keys[0]])
    out = []
    for e in range(n):
        shade = 0.25 + 0.75 * (e + 1) / n
        out.append((f"epoch {e + 1}" if e in (0, n - 1) else "_", names,
                    [history[k][e] for k in keys], {"marker": "o", "alpha": shade,
                                                    "color": (0.1, 0.3, 0.7)}))
    return out


def plot_activation_histograms(trace: Any, *, call: int = -1, bins: int = 50,
                               layers: Any = None, figsize: Any = None) -> Any:
    """One histogram of the outputs ``y`` per layer, from a ``keep_arrays=True`` trace.

    Each panel's title gives the fraction of exact zeros (dead ReLUs) and, for
    Sigmoid/Tanh, of saturated units.

    Args:
        trace: A :class:`~backprop.trace.Trace` made with ``keep_arrays=True``.
        call: Which forward call (default the last).
        bins: Histogram bins (an int >= 1; or NumPy's bin edges or estimator name).
        layers: Record keys to draw (ints, paths or layers); default every leaf layer.
        figsize: Figure size (default 3 x 2.4 inches per panel, 4 panels a row).

    Returns:
        The matplotlib Figure.

    Raises:
        TypeError: ``trace`` is not a Trace, ``layers`` not a list of names, or ``call``
            or ``bins`` not an int.
        ValueError: no layer kept arrays (or, by default, no leaf layer: a
            ``recursive=False`` trace of containers needs ``layers=[...]``), ``bins`` < 1,
            ``layers`` names no traced layer, or ``call`` is out of range.
    """
    from .trace import Trace

    if not isinstance(trace, Trace):
        raise TypeError(f"plot_activation_histograms: expected a Trace, got "
                        f"{type(trace).__name__}")
    if layers is not None and not listlike(layers):
        raise TypeError(f"plot_activation_histograms: expected layers as a list of layer "
                        f"names (['0', '2']) or None, got {layers!r:.60}")
    if not isinstance(bins, str) and not listlike(bins):  # (a name or edges: NumPy's)
        bins = positive_int(bins, "bins", "plot_activation_histograms")
    plt = _pyplot("plot_activation_histograms")
    try:  # an argument here: a ValueError (TypeError), not the trace's KeyError / IndexError
        records = ([trace[k] for k in layers] if layers is not None
                   else [r for r in trace if not r.layer.children()])
    except (KeyError, IndexError, TypeError) as err:
        why = str(err.args[0]).removeprefix("trace: ")
        kind = TypeError if isinstance(err, TypeError) else ValueError
        raise kind(f"plot_activation_histograms: layers: {why}") from None
    records = [r for r in records if r.y]
    kept = [r.name for r in trace if r.y]
    if not records and layers is None and kept:
        raise ValueError(f"plot_activation_histograms: expected a leaf layer with arrays (the "
                         f"default layers=None draws leaf layers only), got none: its arrays "
                         f"are of containers only (recursive=False traces no sub-layer); pass "
                         f"layers=[...] to draw those, as layers={kept[:4]}")
    if not records:
        raise ValueError("plot_activation_histograms: expected a trace with arrays, got none; "
                         "trace with bp.trace(model, keep_arrays=True) and run a forward")
    if isinstance(call, bool) or not isinstance(call, (int, np.integer)):
        raise TypeError(f"plot_activation_histograms: expected call to be an int, got {call!r}")
    for rec in records:
        if not -len(rec.y) <= call < len(rec.y):
            raise ValueError(f"plot_activation_histograms: expected call in [{-len(rec.y)}, "
                             f"{len(rec.y)}) (the forward calls kept for {rec.label}), got {call}")
    cols = min(4, len(records))
    rows = -(-len(records) // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=figsize or (3 * cols, 2.4 * rows))
    for ax, rec in zip(axes.flat, records, strict=False):
        y = np.asarray(rec.y[call], dtype=np.float64).ravel()
        ax.hist(y[np.isfinite(y)], bins=bins, color=(0.2, 0.4, 0.7))
        stats = rec.forward[call]
        note = f"zeros {100 * stats.zero_frac:.0f}%"
        if stats.saturated_frac is not None:
            note += f", saturated {100 * stats.saturated_frac:.0f}%"
        ax.set_title(f"{rec.label}\n{note}", fontsize="small")
    for ax in list(axes.flat)[len(records):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
