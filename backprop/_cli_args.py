"""The command line's argument types and the flags its commands share (see :mod:`.__main__`)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any


def layer_sizes(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        sizes = (0,)
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive layer sizes such "
                                         f"as 128,64 (or 'none'), got {text!r}")
    return sizes


def number(kind: type, low: float, high: float | None = None) -> Any:
    """argparse type: a ``kind`` in [low, high) (``low < value`` for a float with low 0 and
    no upper bound, such as ``--lr``; ``--label-smoothing`` takes 0)."""
    strict = kind is float and low == 0 and high is None

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        ok = (value is not None and math.isfinite(value)
              and (value > low if strict else value >= low)
              and (high is None or value < high))
        if not ok:
            bound = (f"> {low}" if strict else f">= {low}") + ("" if high is None
                                                                 else f" and < {high}")
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} {bound}, got {text!r}")
        return value

    return parse


def threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=number(int, 0), default=1,
                   help="BLAS threads (default: 1, fastest for MLP-sized matrices; 0 leaves "
                        "BLAS alone; NumPy's OpenBLAS directly, another BLAS through "
                        "threadpoolctl)")


def data_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="digits", metavar="DATA",
                   help="'digits' (default; scikit-learn's 8x8 digits, fixed 80/20 split), a "
                        "folder of MNIST IDX files (train-images-idx3-ubyte[.gz], ...), or an "
                        ".npz with x_train, y_train, x_test, y_test (class labels 0, 1, ... "
                        "below 2**20)")


def usable(spec: str, flag: str) -> Path:
    """``spec`` as a Path (``~`` expanded) this system can look up: an empty one, or a name
    past its length limit (else a bare "[Errno 36] File name too long"), is an error
    naming the flag."""
    if not spec.strip():
        raise ValueError(f"{flag}: expected a path, got an empty string")
    path = Path(spec).expanduser()
    try:
        path.exists()
    except OSError as err:
        shown = spec if len(spec) <= 60 else f"{spec[:57]}..."
        raise OSError(f"{flag}: expected a path this system can look up, got {shown!r} "
                      f"({err.strerror or err})") from err
    return path


def say(text: str) -> None:
    """Print a line to stdout; if its reader has gone (``... | head -1``), stop printing
    but carry on: the training and its saving are not lost to a closed pipe."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the rest of the output, and exit's flush
        os.close(devnull)


def available_memory() -> int | None:
    """The bytes this machine can still give (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(sizes: list[int], params: int) -> None:
    """Refuse an MLP whose weights, gradients and optimizer state (two slots, as Adam's:
    four float32 copies) need more memory than is available: the kernel would grant it
    and kill the run later, without a word."""
    need, free = 16 * params, available_memory()
    if free is not None and need > free:
        raise ValueError(f"--hidden: expected an MLP that fits in memory, got "
                         f"{'-'.join(map(str, sizes))} with {params:,} parameters: about "
                         f"{need / 2**30:.1f} GiB with its gradients and optimizer state, "
                         f"and {free / 2**30:.1f} GiB is available")
