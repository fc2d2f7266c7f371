"""glibc's malloc during ``fit``: keep memory freed by one step for the next.

A training step allocates and frees the same multi-MiB arrays every time (attention scores
``(N, H, T, T)``, projections, gate arrays). With glibc's default, dynamic thresholds the
freed top of the heap is given back to the kernel after the step, and the next step takes
it again page by page: a transformer block's ``fit`` step at batch 64, T = 50, faulted
~5,900 pages (~4 us each on the 2-core VM of ``benchmarks/RESULTS.md``) and ran at 52-75 ms
against 37-52 ms without the faults; MLP and CNN steps fault no or ~170 pages and are
unchanged. ``fit`` therefore raises the mmap threshold to glibc's largest (32 MiB: smaller
arrays come from the heap) and the trim threshold to 1 GiB, once per process, and calls
``malloc_trim(0)`` when it returns if more than 64 MiB are free, so the memory kept
during training goes back to the system afterwards (up to 64 MiB stays, the most glibc's
dynamic trim threshold keeps by itself: the next ``fit`` call reuses it; with glibc older
than 2.33, which has no ``mallinfo2``, it always trims). The setting is the process's
(glibc has no per-call form); set ``BACKPROP_MALLOC=0`` to leave malloc as it is.
Elsewhere than glibc (macOS, musl, Windows) nothing is done.
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
_KEEP = 2 * _MMAP_MAX  # glibc's largest dynamic trim threshold: 64 MiB
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
    """Return the heap's free memory to the system (after training), unless it is at most
    :data:`_KEEP`, the most glibc's dynamic trim threshold keeps by itself.

    A ``fit`` call per epoch (Keras-style loops, the benchmarks) would otherwise fault each
    step's arrays in again at every call: the CNN of ``benchmarks/`` at batch 64, 5,700-6,100
    faults per 32-step call against 0-1 kept.
    """
    lib = _glibc() if _state["tuned"] else None
    if lib is not None and free_heap_bytes() > _KEEP:
        lib.malloc_trim(0)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def free_heap_bytes() -> int:
    """The bytes malloc holds free (``mallinfo2().fordblks``, all arenas); a huge number
    where glibc is older than 2.33 (no ``mallinfo2``) or absent, so that trimming goes on."""
    lib = _glibc()
    f = getattr(lib, "mallinfo2", None) if lib is not None else None
    if f is None:
        return 1 << 62
    f.restype = _MallInfo2
    return int(f().fordblks)
