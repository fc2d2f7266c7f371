"""glibc's malloc during ``fit``: keep memory freed by one step for the next.

A training step allocates and frees the same multi-MiB arrays every time (attention scores
``(N, H, T, T)``, projections, gate arrays). With glibc's default, dynamic thresholds the
freed top of the heap is given back to the kernel after the step, and the next step takes
it again page by page: a transformer block's ``fit`` step at batch 64, T = 50, faulted
~5,900 pages (~4 us each on the 2-core VM of ``benchmarks/RESULTS.md``) and ran at 52-75 ms
against 37-52 ms without the faults; MLP and CNN steps fault no or ~170 pages and are
unchanged. ``fit`` therefore raises the mmap threshold to glibc's largest (32 MiB: smaller
arrays come from the heap) and the trim threshold to 1 GiB, once per process, and calls
``malloc_trim(0)`` when it returns, so the memory kept during training goes back to the
system afterwards. The setting is the process's (glibc has no per-call form); set
``BACKPROP_MALLOC=0`` to leave malloc as it is. Elsewhere than glibc (macOS, musl,
Windows) nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_MAX = 32 << 20  # glibc refuses a larger mmap threshold on 64-bit
_TRIM = 1 << 30
_state: dict[str, Any] = {"lib": None, "tuned": False}


@functools.cache
def _glibc() -> Any:
    """glibc's ``mallopt`` and ``malloc_trim`` (as the library), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    _state["lib"] = lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else None
    return _state["lib"]


def keep_freed_memory() -> bool:
    """Tune glibc's thresholds for training (once per process); True if they are set."""
    if _state["tuned"]:
        return True
    if os.environ.get("BACKPROP_MALLOC", "1") == "0":
        return False
    lib = _glibc()
    if lib is None:
        return False
    _state["tuned"] = bool(lib.mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) == 1
                           and lib.mallopt(_M_TRIM_THRESHOLD, _TRIM) == 1)
    return _state["tuned"]


def give_back() -> None:
    """Return the free memory at the top of the heap to the system (after training)."""
    lib = _glibc() if _state["tuned"] else None
    if lib is not None:
        lib.malloc_trim(0)
