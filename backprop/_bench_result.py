"""What :func:`backprop.bench` returns: the step time, the GEMM bound, per-layer times."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from html import escape
from typing import Any, ClassVar

from .display import html_table, text_table

_DISTURBED = 1.05  # a GEMM fraction above this is timing noise, not a faster-than-BLAS step


@dataclass
class LayerTime:
    """Seconds per step spent in one top-level layer (or in the loss, the optimizer)."""

    name: str
    forward: float
    backward: float
    gemm: float | None = None  # the GEMM bound of this layer's products alone


@dataclass
class BenchResult:
    """What :func:`bench` measured. Times are seconds per training step.

    Attributes:
        model: One-line description of the model.
        batch_size: Samples per step.
        input_shape: Shape of one sample.
        dtype: Model dtype.
        step_times: Median seconds per step of each repeat.
        gemm_time: Seconds per step of only the matrix products (the GEMM bound).
        flops: Floating-point operations of those products per step (``2·m·k·n``).
        layers: Per-layer breakdown (one instrumented run, each row the median over its
            steps), then ``loss``,
            ``optimizer step`` and the rest of the step (its forward column);
            empty when ``breakdown=False``.
        notes: What else the numbers depend on (NumPy's OpenBLAS pinned to some kernels
            by ``OPENBLAS_CORETYPE``), printed under the header.
    """

    model: str
    batch_size: int
    input_shape: tuple[int, ...]
    dtype: str
    step_times: list[float]
    gemm_time: float
    flops: float
    layers: list[LayerTime] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def step_time(self) -> float:
        """Median seconds per training step."""
        return statistics.median(self.step_times)

    @property
    def samples_per_s(self) -> float:
        """Training throughput: ``batch_size / step_time``."""
        return self.batch_size / self.step_time

    @property
    def gemm_samples_per_s(self) -> float:
        """Throughput if the step did nothing but its matrix products."""
        return self.batch_size / self.gemm_time if self.gemm_time else float("inf")

    @property
    def gemm_fraction(self) -> float:
        """``gemm_time / step_time``: 1.0 means the step runs at the GEMM bound."""
        return self.gemm_time / self.step_time

    @property
    def gflops(self) -> float:
        """Useful matrix-product GFLOP/s of the whole step."""
        return self.flops / self.step_time / 1e9

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), the derived numbers included; ``gemm_samples_per_s``
        is None where there are no products (``inf``, which strict JSON has no word for)."""
        gemm_rate = self.gemm_samples_per_s
        return {"model": self.model, "batch_size": self.batch_size,
                "input_shape": list(self.input_shape), "dtype": self.dtype,
                "step_time": self.step_time, "step_times": self.step_times,
                "samples_per_s": self.samples_per_s, "gemm_time": self.gemm_time,
                "gemm_samples_per_s": gemm_rate if gemm_rate != float("inf") else None,
                "gemm_fraction": self.gemm_fraction, "gflops": self.gflops,
                "layers": [vars(t) for t in self.layers], "notes": list(self.notes)}

    def _rows(self) -> list[tuple[str, str, str, str]]:
        ms = lambda t: "" if t is None else f"{1e3 * t:.3f}"  # noqa: E731
        return [(t.name, ms(t.forward), ms(t.backward), ms(t.gemm)) for t in self.layers]

    def _header(self) -> list[str]:
        lo, hi = min(self.step_times), max(self.step_times)
        lines = [
            f"{self.model}: batch {self.batch_size} x {self.input_shape}, {self.dtype}",
            f"training step  {1e3 * self.step_time:9.3f} ms  {self.samples_per_s:12,.0f} "
            f"samples/s  (median of {len(self.step_times)}; {1e3 * lo:.3f}-{1e3 * hi:.3f} ms)",
            f"GEMM bound     {1e3 * self.gemm_time:9.3f} ms  {self.gemm_samples_per_s:12,.0f} "
            f"samples/s  -> {self.gemm_fraction:.0%} of the bound, {self.gflops:.3g} GFLOP/s",
        ]
        if self.gemm_fraction > _DISTURBED:  # the products alone cannot take longer than
            lines.append(  # the step that runs them: the two timings saw different loads
                f"note: the products alone timed slower than the whole step, so other "
                f"processes were using the CPU; rerun on an idle machine "
                f"(gemm_fraction {self.gemm_fraction:.2f} > 1)")
        total = sum((t.forward or 0.0) + (t.backward or 0.0) for t in self.layers)
        if self.layers and not 1 / 1.5 <= total / self.step_time <= 1.5:  # timed apart
            lines.append(
                f"note: the per-layer breakdown ({1e3 * total:.3f} ms in all) was timed "
                f"apart from the step and disagrees with it: other processes were using the "
                f"CPU during one of the two; rerun on an idle machine")
        if not self.flops:
            lines.append("note: no layer listed a matrix product (gemm_shapes), so the bound "
                         "is 0; a layer of your own can list its products in gemm_shapes")
        return lines + [f"note: {n}" for n in self.notes]

    _HEAD: ClassVar[list[str]] = ["per step", "forward ms", "backward ms", "GEMM ms"]

    def __str__(self) -> str:
        lines, rows = self._header(), self._rows()
        if rows:
            lines += ["", text_table(self._HEAD, [list(r) for r in rows], {1, 2, 3})]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<div><code>{escape(line)}</code></div>" for line in self._header())
        rows = self._rows()
        return head + (html_table(self._HEAD, [list(r) for r in rows], {1, 2, 3}) if rows else "")
