"""Where a training step's time goes: ``bp.bench`` breakdowns and a cProfile of an epoch.

For each workload it reports, per step: the fixed-batch step of ``bp.bench``
(per layer, loss, optimizer, GEMM share), the same step inside ``model.fit``
(adds the ``x[idx]`` gather, the finiteness check and the loop's bookkeeping),
and the explicit loop of :class:`OursTrainer` (gather, no fit overhead). Each of the
three measurements is guarded against a core taken by another process (see
``harness.guarded``); the cProfile pass is not (it reports shares, not speed).
"""

from __future__ import annotations

import cProfile
import io
import pstats
from functools import partial
from typing import Any

from harness import guarded
from suites import SHAPES
from workloads import OursTrainer, cnn, mlp, synthetic

import backprop as bp


def profile(args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    work = [("mlp", bs, args.samples) for bs in args.batch_sizes]
    work.append(("cnn", args.cnn_batch, args.cnn_samples))
    for kind, bs, n in work:
        build = mlp if kind == "mlp" else cnn
        result = guarded(partial(bp.bench, build(args.dtype), SHAPES[kind], bs,
                                 steps=20 if args.quick else 50, repeats=args.repeats),
                         args.guard)
        x, y = synthetic(n, SHAPES[kind], args.dtype)
        trainer = OursTrainer(build(args.dtype), x, y, bs)
        trainer.epoch(10**6)
        steps = -(-n // bs)
        fit_step = guarded(partial(_best, trainer.epoch, args.repeats), args.guard) / steps
        loop_step = guarded(partial(_best, trainer.explicit_epoch, args.repeats),
                            args.guard) / steps
        prof = cProfile.Profile()
        prof.enable()
        trainer.epoch(99)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(14)
        key = f"{kind} batch {bs}"
        out[key] = {"bench": result.to_dict(), "fit_step_s": fit_step,
                    "explicit_loop_step_s": loop_step, "cprofile_tottime": text.getvalue()}
        print(f"\n-- {key} --\n{result}\n\nper step: bench {1e3 * result.step_time:.3f} ms | "
              f"explicit loop with x[idx] {1e3 * loop_step:.3f} ms | model.fit "
              f"{1e3 * fit_step:.3f} ms (best of {args.repeats} epochs)\n"
              + _trim(text.getvalue()), flush=True)
    return out


def _best(epoch: Any, repeats: int) -> float:
    """The fastest of ``repeats`` epochs, in seconds."""
    return min(epoch(r) for r in range(repeats))


def _trim(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line[:150] for line in lines[start:] if line.strip())
