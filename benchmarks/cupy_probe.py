"""Which layers and losses run forward and backward unchanged on CuPy arrays, and agree
with NumPy there: the cases of the gradient-check table (``tests/table.py``), in float32.

    python benchmarks/cupy_probe.py [--json out.json]   # where CuPy sees a GPU
    python benchmarks/cupy_probe.py --dry-run           # NumPy copies stand in for CuPy

DESIGN.md asks that layer math run unchanged on CuPy arrays, for GPU work later. This
measures how far that holds today. Each case runs once in NumPy; then a deep copy of
the layer, its params, grads and buffers moved to the device, runs the same input and
output gradient, and its output, input gradient and parameter gradients must agree
with NumPy's to 1e-3 (largest difference over the largest NumPy value). Failures are
grouped by the line of backprop that raised, the most common first, so the output is
a list of blockers. The dry run checks the probe itself (every case must pass there).
RESULTS.md ("The thirty-second session") has the one reading on a GPU so far.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from table import LAYERS, LOSSES  # noqa: E402

from backprop.layers import _state  # noqa: E402

TOLERANCE = 1e-3


def _device(dry_run: bool) -> tuple[ModuleType, Any, Any]:
    """The array module, host -> device and device -> host."""
    if dry_run:
        return np, np.array, np.asarray
    import cupy

    return cupy, cupy.asarray, cupy.asnumpy


def _leaves(layer: Any) -> Any:
    kids = list(layer.children())
    if not kids:
        yield layer
    for _, child in kids:
        yield from _leaves(child)


def _move(layer: Any, to_device: Any) -> None:
    for leaf in _leaves(layer):
        for kind in ("params", "grads", "buffers"):
            store = getattr(leaf, kind)
            for key in list(store):
                _state.rebind(store, key, to_device(store[key]))


def _relative(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)) if a.size else 0.0


def _failure(stage: str, err: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "backprop" in Path(f.filename).parts] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    text = str(err).splitlines()[0][:160] if str(err) else ""
    return {"ok": False, "stage": stage, "where": where, "error": f"{type(err).__name__}: {text}"}


def probe_layer(case: Any, rng: np.random.Generator, dev: tuple[Any, Any, Any]) -> dict:
    xp, to_device, to_host = dev
    layer = case.make(np.float32)
    x = case.draw(rng, case.in_shape)
    if np.issubdtype(np.asarray(x).dtype, np.floating):
        x = np.asarray(x, np.float32)
    twin = copy.deepcopy(layer)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    stage = "move"
    try:
        _move(twin, to_device)
        stage = "forward"
        y_dev = twin.forward(to_device(x), training=True)
        stage = "backward"
        dx_dev = twin.backward(to_device(dy))
        stage = "compare"
        if not isinstance(y_dev, xp.ndarray):
            raise TypeError(f"forward returned a {type(y_dev).__name__}")
        err = _relative(to_host(y_dev), y)
        if dx is not None:
            err = max(err, _relative(to_host(dx_dev), dx))
        for key, grad in grads.items():
            err = max(err, _relative(to_host(twin.grads[key]), grad))
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        return _failure(stage, e)
    return {"ok": err <= TOLERANCE, "stage": "done", "err": err}


def probe_loss(case: Any, rng: np.random.Generator, dev: tuple[Any, Any, Any]) -> dict:
    _, to_device, to_host = dev
    loss, twin = case.make(), case.make()
    out = case.draw(rng, case.out_shape) if case.draw else rng.standard_normal(case.out_shape)
    out = np.asarray(out, np.float32)
    target = case.target(rng)
    value = np.asarray(loss.forward(out, target), np.float64)
    seed = np.ones(value.shape, np.float32) if value.ndim else None  # reduction="none"
    grad = loss.backward(seed)
    stage = "forward"
    try:
        target_dev = to_device(target) if isinstance(target, np.ndarray) else target
        value_dev = to_host(twin.forward(to_device(out), target_dev))
        stage = "backward"
        grad_dev = to_host(twin.backward(None if seed is None else to_device(seed)))
        err = max(_relative(value_dev, value), _relative(grad_dev, grad))
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        return _failure(stage, e)
    return {"ok": err <= TOLERANCE, "stage": "done", "err": err}


def probe(dry_run: bool = False, layers: Any = LAYERS, losses: Any = LOSSES) -> dict:
    """``{"layers": {name: result}, "losses": {name: result}}``; a result has ``ok``, and
    ``err`` (the largest relative difference) or ``stage``/``where``/``error``."""
    dev = _device(dry_run)
    rng = np.random.default_rng(0)
    return {"layers": {c.name: probe_layer(c, rng, dev) for c in layers},
            "losses": {c.name: probe_loss(c, rng, dev) for c in losses}}


def report(results: dict) -> str:
    """One line per kind, then its blockers: the failures grouped by the line that raised
    and the exception's type (the first message shown), the most cases first."""
    lines = []
    for kind, found in results.items():
        ok = sum(r["ok"] for r in found.values())
        lines.append(f"{kind}: {ok} of {len(found)} ran and agree")
        blockers: dict[tuple[str, str], list[str]] = {}
        for name, r in found.items():
            if r["ok"]:
                continue
            key = ((r["where"], r["error"].split(":")[0]) if "error" in r
                   else ("compare", f"differs by {r['err']:.2g}"))
            blockers.setdefault(key, []).append(name)
        for (where, _), names in sorted(blockers.items(), key=lambda item: -len(item[1])):
            first = found[names[0]]
            why = first.get("error", f"differs by {first.get('err', 0.0):.2g}")
            more = " ..." if len(names) > 4 else ""
            lines.append(f"  {len(names):3d}  {where} {why[:150]}  <- "
                         f"{', '.join(names[:4])}{more}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="NumPy copies in CuPy's place (checks the probe, needs no GPU)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    results = probe(args.dry_run)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
