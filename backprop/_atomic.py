"""Atomic file writes for :func:`backprop.save`: a temporary sibling, flushed and renamed."""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import stat
import time
from pathlib import Path

import numpy as np


def atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary sibling, fsync, then rename it onto ``path``.

    A symlink is followed (the file it points to is replaced, the link kept), and an
    existing file keeps its permission bits; a read-only one is refused, as ``open``
    would refuse it. A device or FIFO at ``path`` is written into directly (renaming
    over ``/dev/null`` would replace it). The temporary is ``.bp-<pid>-<hex>.tmp``;
    those of saves whose process is gone are removed first (see :func:`_sweep`).
    """
    given = path
    path = Path(os.path.realpath(path))
    mode = None
    if path.exists() and not path.is_file():  # a device or FIFO: never rename over it
        buf = io.BytesIO()  # the archive built in memory: zipfile seeks back into what it
        np.savez(buf, **arrays)  # wrote, and /dev/null's offsets broke it (struct.error)
        try:
            with open(path, "wb") as f:
                f.write(buf.getbuffer())
        except OSError as err:
            raise os_named(err, f"save: cannot write {str(given)!r} ({os_cause(err)})") from err
        return
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, f"save: cannot write {str(given)!r} (the "
                                                f"file is read-only)")
        mode = stat.S_IMODE(path.stat().st_mode)
    _sweep(path.parent)
    # short (a name near the 255-byte limit still fits), and saying whose it is
    tmp = path.with_name(f".bp-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    except OSError as err:  # e.g. a read-only folder: name the file asked for
        raise os_named(err, f"save: cannot write {str(given)!r} ({os_cause(err)}; the file is "
                          f"written beside it first, then renamed)") from err
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and hasattr(os, "fchmod"):  # POSIX
                os.fchmod(f.fileno(), mode)
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:  # disk full, I/O error, a rename refused: name the file
        tmp.unlink(missing_ok=True)
        kept = "the previous file is unchanged" if path.exists() else "nothing was written"
        raise os_named(err, f"save: cannot write {str(given)!r} ({os_cause(err)}; {kept})"
                     ) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def os_cause(err: OSError) -> str:
    """What went wrong, in words: the OS's text, else the error's own, else its class."""
    return err.strerror or str(err) or type(err).__name__


def os_named(err: OSError, message: str) -> OSError:
    """``err``'s class and errno with ``message`` (a plain OSError where its class takes
    other arguments, or there is no errno to keep)."""
    if err.errno is None:
        return OSError(message)
    try:
        return type(err)(err.errno, message)
    except TypeError:
        return OSError(err.errno, message)


_TMP = re.compile(r"\.bp-(\d+)-[0-9a-f]{8}\.tmp")


def _sweep(folder: Path) -> None:
    """Remove the temporaries of saves whose process is gone (killed mid-write), at least
    a minute old (POSIX only: there a signal 0 tests a pid without touching it)."""
    if os.name != "posix":
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = _TMP.fullmatch(name)
        if m is None or _alive(int(m[1])):
            continue
        try:
            if time.time() - os.stat(folder / name).st_mtime > 60:
                os.unlink(folder / name)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or a pid out of range
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible on every platform."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
