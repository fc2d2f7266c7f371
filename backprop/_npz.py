"""Reading ``.npz`` files without unpickling (:func:`backprop.load`, ``load_npz``): each
member read on first use, a bad file or member one clear ValueError, and with a guard
against members that expand far past their compressed size."""

from __future__ import annotations

import contextlib
import errno
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import os_cause, os_named


def read_npz(path: Path, who: str, what: str = "a complete backprop .npz of plain arrays"
             ) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, never unpickling; a bad file is one clear ValueError."""
    with open_npz(path, who, what) as members:
        return {k: members[k] for k in members}


@contextlib.contextmanager
def open_npz(path: Path, who: str, what: str = "a complete backprop .npz of plain arrays",
             guard: bool = False) -> Iterator[_Members]:
    """The arrays of an ``.npz`` as a mapping that reads each on first use, never
    unpickling; a bad file or member is one clear ValueError. With ``guard``, a member
    that would expand to over 64 MiB at more than 100 times its compressed size is refused
    (:func:`save` stores arrays uncompressed: such a member is not one of its own)."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # (a broken symlink too)
        raise FileNotFoundError(errno.ENOENT, f"{who}: no such file") from None
    except OSError as err:  # a folder on the way not searchable (PermissionError)
        raise os_named(err, f"{who}: cannot read the file ({os_cause(err)})") from err
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"{who}: expected a file, got a folder")
    if not stat.S_ISREG(mode):  # reading a FIFO would wait for a writer, forever
        raise ValueError(f"{who}: expected {what} in a regular file, got a device, FIFO "
                         "or socket")
    bad = f"{who}: expected {what}; the file is truncated, corrupt or not one"
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, even when the archive is bad
    except OSError as err:  # not readable (PermissionError): name the call
        raise os_named(err, f"{who}: cannot read the file ({os_cause(err)})") from err
    with f:
        try:
            start = f.read(6)
            f.seek(0)
            if not start.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
                # NumPy's own error for such a file would point the user at unpickling it
                raise ValueError(f"not a zip archive (the file starts with {start!r})")
            npz = np.load(f, allow_pickle=False)  # never unpickle: that could run code
            if not hasattr(npz, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
        except Exception as err:  # zipfile, zlib and .npy header errors: a bad file
            raise ValueError(f"{bad} ({type(err).__name__}: {err})") from err
        yield _Members(npz, bad, guard)


class _Members(Mapping):
    """An open ``.npz``'s arrays by name, each read (and kept) on first use."""

    def __init__(self, npz: Any, bad: str, guard: bool) -> None:
        self._npz, self._bad, self._guard = npz, bad, guard
        self._names, self._read = list(npz.files), {}
        self._known, self._stored = set(self._names), set(npz.zip.namelist())
        self._expanded = self._compressed = 0  # over the members read so far

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._read:
            if name not in self._known:
                raise KeyError(name)
            if self._guard:
                self._check_size(name)
            try:
                value = self._npz[name]
            except Exception as err:  # zlib, CRC and .npy header errors: a bad member
                raise ValueError(f"{self._bad} ({type(err).__name__}: {err})") from err
            if not isinstance(value, np.ndarray):  # NumPy hands back a non-.npy member's bytes
                raise ValueError(f"{self._bad} (member {name!r} is not a .npy array: it "
                                 f"starts with {bytes(value[:6])!r})")
            self._read[name] = value
        return self._read[name]

    def _check_size(self, name: str) -> None:
        """Refuse a member that, with those read before it, expands over 64 MiB at more
        than 100 times its compressed size (one member, or a payload spread over many)."""
        member = name + ".npy"  # NpzFile takes members with or without the suffix
        info = self._npz.zip.getinfo(member if member in self._stored else name)
        self._expanded += info.file_size
        self._compressed += info.compress_size
        if self._expanded > _BOMB and self._expanded > 100 * max(self._compressed, 1):
            raise ValueError(f"{self._bad} (its members up to {name!r} expand to "
                             f"{self._expanded:,} bytes from {self._compressed:,}: save "
                             "stores arrays uncompressed)")

    def stored_bytes(self, prefix: str) -> int:
        """The expanded size of the members whose names start with ``prefix`` (their .npy
        headers included), read from the archive's directory, not from the members."""
        return sum(i.file_size for i in self._npz.zip.infolist() if i.filename.startswith(prefix))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


_BOMB = 64 << 20
