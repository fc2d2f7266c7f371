"""Measurement plumbing: thread limits, machine facts, interleaved repeats, tables."""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def optional(module: str) -> Any:
    """Import an optional comparison library, or None when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def limit_threads(threads: int) -> Any:
    """Pin NumPy's/SciPy's BLAS (threadpoolctl) and PyTorch to ``threads`` threads.

    threadpoolctl only sees libraries already loaded, so SciPy's BLAS (used by our
    optimizers) and PyTorch are imported first. Returns the threadpoolctl
    context, which must stay referenced for the whole run.
    """
    import scipy.linalg.blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    torch = optional("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return threadpool_limits(limits=threads)


def machine_facts() -> dict[str, Any]:
    """CPU, cores, load, BLAS libraries and their threads, library versions, git commit."""
    import numpy
    import scipy
    from threadpoolctl import threadpool_info

    facts: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(), "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "loadavg_start": list(os.getloadavg()), "platform": platform.platform(),
        "python": platform.python_version(), "numpy": numpy.__version__,
        "scipy": scipy.__version__, "git": _git_commit(),
        "blas": [{k: lib.get(k) for k in ("internal_api", "version", "num_threads",
                                          "architecture", "threading_layer", "prefix",
                                          "filepath")}  # which is NumPy's, which SciPy's
                 for lib in threadpool_info()],
    }
    # set on some machines to pin OpenBLAS to older kernels (NumPy's and SciPy's copies
    # alike; PyTorch's MKL/oneDNN ignore them): they change what "NumPy's speed" means
    facts["env"] = {k: os.environ[k] for k in _BLAS_ENV if k in os.environ}
    for name in ("torch", "sklearn", "threadpoolctl"):
        mod = optional(name)
        facts[name] = getattr(mod, "__version__", None) if mod is not None else None
    torch = optional("torch")
    if torch is not None:
        facts["torch_threads"] = torch.get_num_threads()
        facts["torch_config"] = [line.strip() for line in torch.__config__.show().splitlines()
                                 if "BLAS" in line or "CPU capability" in line]
    return facts


_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
             "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_line(facts: dict[str, Any]) -> str:
    """The BLAS libraries with their kernels and threads, and any OpenBLAS pinning, in
    one line: ``openblas 0.3.31 (SkylakeX kernels) x2``."""
    libs = ", ".join(b["internal_api"] + (f" {b['version']}" if b.get("version") else "")
                     + (f" ({b['architecture']} kernels)" if b.get("architecture") else "")
                     + f" x{b['num_threads']}" for b in facts["blas"])
    env = facts.get("env", {})
    pinned = {k: v for k, v in env.items() if k.startswith("OPENBLAS_") and "THREADS" not in k}
    return libs + ("; pinned by " + ", ".join(f"{k}={v}" for k, v in pinned.items())
                   if pinned else "")


def pinning_warning(facts: dict[str, Any]) -> str | None:
    """A note when OPENBLAS_CORETYPE fixes NumPy's kernels (PyTorch picks its own), or
    OPENBLAS_L2_SIZE the cache size its blocking assumes."""
    env = facts.get("env", {})
    core, l2 = env.get("OPENBLAS_CORETYPE"), env.get("OPENBLAS_L2_SIZE")
    if core is None and l2 is None:
        return None
    torch = next((f"PyTorch ({line.split(':', 1)[-1].strip()} kernels)" for line in
                  facts.get("torch_config", []) if "CPU capability" in line), "PyTorch")
    what = " and ".join(part for part in (
        core and f"OPENBLAS_CORETYPE={core} pins NumPy's OpenBLAS to its {core} kernels "
                 f"whatever this CPU supports",
        l2 and f"OPENBLAS_L2_SIZE={l2} sets the L2 size it blocks its products for") if part)
    return (f"NOTE: {what}, while {torch} chooses its own; to compare each library as it "
            "would run by itself, run "
            "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py ...`")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "backprop"], cwd=ROOT,
                               text=True, capture_output=True, check=True).stdout.strip()
        return head + ("+uncommitted backprop/ changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class QuietGuard:
    """Tells whether both cores are ours right now, from quick matmul probes.

    On a shared virtual machine another tenant sometimes takes all or part of one
    of the two cores for seconds at a time. A 2-thread product then slows (384^3
    float32 measured here: ~200 GFLOP/s quiet, ~135 or ~105 disturbed, in bursts
    of 1-30 s) while a 1-thread one keeps its ~100, and every framework slows by a
    different amount (our batch-32 epoch by up to 2.3x), so the ratios of such a
    round say nothing about the code. The guard times a 2-thread and a 1-thread
    probe (median of 9 products each, ~16 ms together) and calls the machine quiet
    when their ratio, the speed-up from the second core, is at least
    ``threshold`` times the best speed-up seen. At the start it waits (up to
    ~10 s) for a speed-up of 1.6; a machine whose threads never scale that far
    (one real core) is judged by the 2-thread speed against its best instead.

    The probes pin their own thread counts (1, and ``threads``), so a suite that
    times 1-thread work inside ``threadpool_limits(1)`` is still judged by the
    speed-up of the second core.

    Args:
        dtype: Float dtype of the probe.
        threshold: A speed-up below this fraction of the best means disturbed.
        threads: Threads of the fast probe (the run's thread count).
    """

    def __init__(self, dtype: Any, threshold: float = 0.85, threads: int = 2) -> None:
        import numpy as np

        rng = np.random.default_rng(0)
        self._a = rng.random((384, 384)).astype(dtype)
        self._b, self._c = self._a.copy(), np.empty_like(self._a)
        self.threshold, self.threads = threshold, threads
        self.best_speedup = self.reference = 0.0
        for _ in range(20):
            one, two = self._probes()
            self.reference = max(self.reference, two)
            self.best_speedup = max(self.best_speedup, two / one)
            if self.best_speedup >= 1.6:
                break
            time.sleep(0.5)
        self.scales = self.best_speedup >= 1.6   # a free second core shows as a speed-up
        self.retried = 0   # rounds re-run because a probe found the machine disturbed
        self.kept_disturbed = 0   # rounds still disturbed after every retry, kept

    def probe(self) -> float:
        """GFLOP/s of a 384^3 product at the current thread count: median of 9 calls."""
        import numpy as np

        times = []
        np.matmul(self._a, self._b, out=self._c)
        for _ in range(9):
            start = time.perf_counter()
            np.matmul(self._a, self._b, out=self._c)
            times.append(time.perf_counter() - start)
        return 2 * 384**3 / statistics.median(times) / 1e9

    def _probes(self) -> tuple[float, float]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            one = self.probe()
        with threadpool_limits(self.threads):
            return one, self.probe()

    def __call__(self) -> bool:
        if not self.scales:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(self.threads):
                speed = self.probe()
            self.reference = max(self.reference, speed)
            return speed >= self.threshold * self.reference
        one, two = self._probes()
        self.reference = max(self.reference, two)
        self.best_speedup = max(self.best_speedup, two / one)
        return two / one >= self.threshold * self.best_speedup


def guarded(run: Any, guard: QuietGuard | None, retries: int = 4, wait: float = 2.0) -> Any:
    """``run()``'s result from an attempt with a quiet probe before and after it.

    A disturbed attempt is run again after ``wait`` seconds, up to ``retries``
    times, and counted in ``guard.retried``; the last one is kept if none was
    quiet (counted in ``guard.kept_disturbed``). Without a guard, one plain run.
    """
    def judged() -> tuple[Any, bool]:
        quiet = guard is None or guard()
        result = run()
        return result, guard is None or (quiet and guard())

    return _attempts(judged, guard, retries, wait)


def _attempts(judged: Any, guard: QuietGuard | None, retries: int, wait: float) -> Any:
    """The result of the first attempt ``judged()`` calls quiet (``(result, quiet)``),
    or of the last one, counting re-runs and kept disturbed attempts in ``guard``."""
    for attempt in range(retries + 1):
        result, quiet = judged()
        if quiet or guard is None:
            return result
        if attempt == retries:
            guard.kept_disturbed += 1
        else:
            guard.retried += 1
            time.sleep(wait)
    return result


# Seconds between two frameworks' timed blocks. OpenBLAS's workers keep spinning for a
# while after a product (2^28 cycles, ~0.1 s, by default) and slow whatever runs next on
# the same two cores: measured here, PyTorch's batch-32 epoch right after ours took
# 395-570 ms, after a 50 ms pause 285-340 ms (batch 128: 195-220 vs 155-180). Ours right
# after PyTorch was not slowed. Without the pause the comparison flattered us.
SETTLE_S = 0.25


def interleaved(runners: dict[str, Any], repeats: int, work: float,
                guard: QuietGuard | None = None, retries: int = 4,
                wait: float = 2.0, settle: float = SETTLE_S) -> dict[str, list[float]]:
    """Throughputs (``work`` / seconds of ``epoch``) of each runner, in turn A B C, A B C, ...

    Interleaving spreads slow drifts of the machine (other processes, clock)
    over every runner alike; each epoch gets the repeat index as its seed. Before
    each runner the machine rests ``settle`` seconds, so the previous runner's
    spinning thread pool is asleep (see ``SETTLE_S``). Each
    runner first takes a few untimed steps (``warm``): the first calls after
    another framework ran pay for waking its sleeping thread pool (up to tens of
    milliseconds on this 2-core machine). With a ``guard``, the machine is probed
    before the round and after every runner's epoch; a round with any disturbed
    probe is run again after ``wait`` seconds, up to ``retries`` times (then kept,
    and counted).
    """
    out: dict[str, list[float]] = {name: [] for name in runners}

    def round_(r: int) -> tuple[dict[str, float], bool]:
        row, quiet = {}, guard is None or guard()
        for name, runner in runners.items():
            time.sleep(settle)  # after the probe too: it is an OpenBLAS product
            runner.warm()
            row[name] = work / runner.epoch(r)
            if guard is not None:
                quiet = guard() and quiet  # every probe runs: each judges one epoch
        return row, quiet

    for r in range(repeats):
        row = _attempts(lambda r=r: round_(r), guard, retries, wait)
        for name, value in row.items():
            out[name].append(value)
    return out


def summary(samples: dict[str, list[float]], ours: str) -> dict[str, Any]:
    """Medians, spreads and per-repeat ratios ``ours / theirs`` (their median), and the
    ratio of the two best repeats (``best_ratio``: on a machine shared with other
    tenants, the fastest repeat of each is the one least disturbed)."""
    out: dict[str, Any] = {}
    for name, values in samples.items():
        entry = {"median": statistics.median(values), "min": min(values), "max": max(values),
                 "values": values}
        if name != ours:
            ratios = [a / b for a, b in zip(samples[ours], values, strict=True)]
            entry["ratio"] = statistics.median(ratios)
            entry["ratios"] = ratios
            entry["best_ratio"] = max(samples[ours]) / max(values)
        out[name] = entry
    return out


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A right-aligned text table (first column left-aligned)."""
    cells = [headers] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if c is None:
        return "-"
    if isinstance(c, float):
        return f"{c:,.0f}" if abs(c) >= 100 else f"{c:.3g}"
    return str(c)


def reference_gflops(dtype: Any) -> float:
    """GFLOP/s of one 512x512x512 product: the machine's matmul speed right now.

    Measured at the start and end of a run; a row whose own GEMM bound runs far
    below it was disturbed by another process (see :func:`disturbed`).
    """
    from backprop.bench import gemm_time

    return 2 * 512**3 / gemm_time([(512, 512, 512)], dtype, repeats=5, min_time=0.05) / 1e9


def disturbed(gflops: float, reference: float) -> bool:
    """True when a GEMM bound ran below a third of the reference matmul speed: the
    products are the same code as the reference, so only another process explains it."""
    return gflops < reference / 3
