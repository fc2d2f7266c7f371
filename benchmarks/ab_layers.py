"""Old code against new, layer by layer: forward + backward per call, interleaved.

``python benchmarks/ab_layers.py --old /path/to/old/checkout --json out.json`` imports
the ``backprop`` package of another checkout (e.g. ``git worktree add /tmp/old <commit>``)
beside the installed one, under another name, and times both with PyTorch in one
process: per round each of old, new and PyTorch runs a block of calls after a 0.15 s
pause (the previous library's BLAS threads stop spinning), 7 rounds, medians, and the
median of the per-round ratios new/old. float32, 2 threads. The rows are the slow paths
of the speed audits (fifteenth session) and two layers of the CNN benchmark.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MAP = (32, 64, 28, 28)


def cases(bp: Any, nn: Any) -> list[tuple[str, Any, Any, tuple[int, ...]]]:
    """(name, our layer factory, PyTorch module factory, input shape)."""
    def dw(c: int) -> tuple[Any, Any]:
        return (lambda: bp.Conv2D(c, c, 3, padding=1, groups=c, rng=0),
                lambda: nn.Conv2d(c, c, 3, padding=1, groups=c))

    return [
        ("SiLU", lambda: bp.SiLU(), lambda: nn.SiLU(), MAP),
        ("Softplus", lambda: bp.Softplus(), lambda: nn.Softplus(), MAP),
        ("Hardswish", lambda: bp.Hardswish(), lambda: nn.Hardswish(), MAP),
        ("ELU", lambda: bp.ELU(), lambda: nn.ELU(), MAP),
        ("LeakyReLU", lambda: bp.LeakyReLU(), lambda: nn.LeakyReLU(), MAP),
        ("Mish", lambda: bp.Mish(), lambda: nn.Mish(), MAP),
        ("PReLU(64)", lambda: bp.PReLU(64), lambda: nn.PReLU(64), MAP),
        ("GroupNorm(8, 64)", lambda: bp.GroupNorm(8, 64), lambda: nn.GroupNorm(8, 64), MAP),
        ("BatchNorm(64)", lambda: bp.BatchNorm(64), lambda: nn.BatchNorm2d(64), MAP),
        ("InstanceNorm2D(64)", lambda: bp.InstanceNorm2D(64), lambda: nn.InstanceNorm2d(64),
         MAP),
        ("LayerNorm(256)", lambda: bp.LayerNorm(256), lambda: nn.LayerNorm(256),
         (32, 128, 256)),
        ("MaxPool2D(3, 2, padding=1)", lambda: bp.MaxPool2D(3, 2, padding=1),
         lambda: nn.MaxPool2d(3, 2, 1), MAP),
        ("AdaptiveAvgPool2D(1)", lambda: bp.AdaptiveAvgPool2D(1),
         lambda: nn.AdaptiveAvgPool2d(1), MAP),
        ("AdaptiveMaxPool2D(1)", lambda: bp.AdaptiveMaxPool2D(1),
         lambda: nn.AdaptiveMaxPool2d(1), MAP),
        ("Conv2D(64, 64, 3, groups=64)", *dw(64), MAP),
        ("Conv2D(64, 64, 3, groups=8)", lambda: bp.Conv2D(64, 64, 3, padding=1, groups=8, rng=0),
         lambda: nn.Conv2d(64, 64, 3, padding=1, groups=8), MAP),
        ("Conv2D(128, 128, 3, groups=128)", *dw(128), (32, 128, 14, 14)),
        ("MaxPool2D(2) (the CNN's)", lambda: bp.MaxPool2D(2), lambda: nn.MaxPool2d(2),
         (64, 32, 28, 28)),
        ("Conv2D(32, 64, 3, padding=1) (the CNN's)",
         lambda: bp.Conv2D(32, 64, 3, padding=1, rng=0),
         lambda: nn.Conv2d(32, 64, 3, padding=1), (64, 32, 14, 14)),
    ]


def _ours(layer: Any, x: np.ndarray, rng: np.random.Generator) -> Any:
    dy = rng.standard_normal(layer.forward(x, training=True).shape).astype(x.dtype)
    layer.backward(dy)

    def step() -> None:
        layer.forward(x, training=True)
        layer.backward(dy)
    return step


def _theirs(torch: Any, mod: Any, x: np.ndarray, rng: np.random.Generator) -> Any:
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    dyt = torch.from_numpy(rng.standard_normal(mod(xt).shape).astype(x.dtype))

    def step() -> None:
        mod(xt).backward(dyt)
        xt.grad = None
        mod.zero_grad()
    return step


def _time(step: Any, reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - t) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="a checkout whose backprop/ is the old code")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    import torch
    from threadpoolctl import threadpool_limits
    from torch import nn

    import backprop as new
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(Path(args.old) / "backprop", tmp / "backprop_old")
    sys.path.insert(0, str(tmp))
    old = importlib.import_module("backprop_old")  # its imports inside are relative
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(2):
        for (name, make_new, make_torch, shape), (_, make_old, _, _) in zip(
                cases(new, nn), cases(old, nn), strict=True):
            x = rng.standard_normal(shape).astype(np.float32)
            steps = {"old": _ours(make_old(), x, rng), "new": _ours(make_new(), x, rng),
                     "PyTorch": _theirs(torch, make_torch(), x, rng)}
            reps = max(1, int(0.15 / max(_time(steps["new"], 1), 1e-5)))
            times: dict[str, list[float]] = {k: [] for k in steps}
            for _ in range(args.rounds):
                for k, step in steps.items():
                    time.sleep(0.15)
                    step()  # untimed: wakes this library's threads
                    times[k].append(_time(step, reps))
            ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
            ratio = float(np.median([n / o for n, o in zip(times["new"], times["old"],
                                                            strict=True)]))
            rows.append({"layer": name, "input": list(shape), "ms": ms, "new_over_old": ratio})
            print(f"{name:42s} {'x'.join(map(str, shape)):>12s}  old {ms['old']:7.2f}  new "
                  f"{ms['new']:7.2f}  PyTorch {ms['PyTorch']:7.2f} ms  new/old {ratio:.2f}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
