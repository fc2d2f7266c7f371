"""The command line's argument types and the flags its commands share (see :mod:`.__main__`)."""

from __future__ import annotations

import argparse
import math
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
                        "BLAS alone; needs threadpoolctl, else ignored)")


def data_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="digits", metavar="DATA",
                   help="'digits' (default; scikit-learn's 8x8 digits, fixed 80/20 split), a "
                        "folder of MNIST IDX files (train-images-idx3-ubyte[.gz], ...), or an "
                        ".npz with x_train, y_train, x_test, y_test (class labels 0, 1, ... "
                        "below 2**20)")
