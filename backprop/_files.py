"""File readers: MNIST-format IDX files and ``.npz`` archives (see :mod:`.datasets`).

Both return float32 features and int64 labels; nothing here downloads anything.
"""

from __future__ import annotations

import errno
import gzip
import math
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import os_cause, os_named
from ._validate import (
    as_path,
    boolean,
    caller_level,
    int64_labels,
    positive_int,
    whole_numbers,
)

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

_IDX_MAGIC = {"images": 2051, "labels": 2049}  # 0x0803 / 0x0801: ubyte, 3 or 1 dims


def load_mnist(
    path: str | Path, kind: str = "train", *, images: bool = False, n_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST-format IDX files (``train-images-idx3-ubyte`` ...) from a folder.

    The files may be plain or gzipped (``.gz``); ``train-images.idx3-ubyte`` spellings
    work too, and so does any dataset in the same format (Fashion-MNIST, KMNIST).
    Magic numbers, dimensions, file sizes and the image/label counts are checked.

    Args:
        path: Folder holding the four files.
        kind: ``"train"`` (``train-*``) or ``"test"`` (``t10k-*``).
        images: Return ``(N, 1, rows, cols)`` for convolutions instead of ``(N, rows*cols)``.
        n_classes: Labels must lie in ``[0, n_classes)`` (10 for MNIST and its kin;
            more for EMNIST).

    Returns:
        ``(x, y)``: float32 pixels scaled to [0, 1] and int64 labels.

    Raises:
        FileNotFoundError: The folder or one of its two files is missing.
        TypeError: ``path`` is not a str or os.PathLike, or ``images`` not a bool.
        ValueError: A file is corrupt (wrong magic or dimensions, truncated, no
            images, image and label counts disagree, or a label outside
            ``[0, n_classes)``); the message names the file.
    """
    path = as_path(path, "load_mnist")
    images = boolean(images, "images", "load_mnist")
    if kind not in ("train", "test"):
        raise ValueError(f"load_mnist: expected kind 'train' or 'test', got {kind!r}")
    n_classes = positive_int(n_classes, "n_classes", "load_mnist")
    folder = Path(path)
    if not folder.is_dir():
        error = NotADirectoryError if folder.exists() else FileNotFoundError
        raise error(errno.ENOTDIR if folder.exists() else errno.ENOENT, f"load_mnist: expected "
                    f"a folder of MNIST IDX files, got {str(path)!r}, "
                    + ("a file" if folder.exists() else "which does not exist"))
    prefix = "train" if kind == "train" else "t10k"
    image_file = _find_idx(folder, f"{prefix}-images", "idx3-ubyte")
    label_file = _find_idx(folder, f"{prefix}-labels", "idx1-ubyte")
    x, y = _read_idx(image_file, "images"), _read_idx(label_file, "labels")
    if len(x) != len(y):
        raise ValueError(f"load_mnist: expected as many labels as images ({len(x)} in "
                         f"{image_file}), got {len(y)} labels in {label_file}")
    if y.size and y.max() >= n_classes:
        bad = np.flatnonzero(y >= n_classes)
        raise ValueError(f"load_mnist: expected labels in [0, {n_classes}) in {label_file}, "
                         f"got {y[bad[0]]} at index {bad[0]} ({len(bad)} such label(s); "
                         f"pass n_classes= for a dataset with more classes)")
    x = x.astype(np.float32) / np.float32(255.0)
    x = x[:, None] if images else x.reshape(len(x), -1)
    return x, y.astype(np.int64)


def _find_idx(folder: Path, stem: str, suffix: str) -> Path:
    names = [f"{stem}-{suffix}", f"{stem}.{suffix}"]
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(errno.ENOENT, f"load_mnist: expected {names[0]} (or {names[0]}.gz) "
                            f"in {folder}, found neither")


def _read_idx(file: Path, what: str) -> np.ndarray:
    """One IDX file as a uint8 array of the shape its header declares, fully checked.

    Read as a stream (a .gz one decompressed as it goes), in chunks up to the size its
    header declares: a small .gz that inflates to gigabytes past its data, or a header
    declaring huge dimensions, never allocates more than the data there is."""
    try:
        f = gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb")  # noqa: SIM115
    except OSError as err:  # not readable (PermissionError): name the call and the file
        raise os_named(err, f"load_mnist: cannot read {file} ({os_cause(err)})") from err
    with f:
        try:
            return _parse_idx(f, file, what)
        except (OSError, EOFError, zlib.error) as err:
            if file.suffix != ".gz":  # a read error (EIO)
                raise os_named(err, f"load_mnist: cannot read {file} ({os_cause(err)})") from err
            raise ValueError(f"load_mnist: {file} is not a valid gzip file ({err})") from err


def _read_upto(f: Any, size: int) -> bytearray:
    """At most ``size`` bytes from ``f``, in chunks of 1 MiB (fewer at its end); the
    bytearray itself (np.frombuffer reads it without a copy)."""
    out = bytearray()
    while len(out) < size:
        chunk = f.read(min(size - len(out), 1 << 20))
        if not chunk:
            break
        out += chunk
    return out


def _parse_idx(f: Any, file: Path, what: str) -> np.ndarray:
    magic = _IDX_MAGIC[what]
    head = _read_upto(f, 4)
    got = struct.unpack(">I", head)[0] if len(head) == 4 else None
    if got != magic:
        found = (f"a file of {len(head)} bytes" if got is None else f"{got:#010x}" + (
            " (a gzip file: name it .gz)" if got >> 16 == 0x1F8B else ""))
        raise ValueError(f"load_mnist: {file}: expected IDX magic number {magic:#010x} "
                         f"(MNIST {what}: unsigned bytes, {magic & 0xFF} dimensions), got "
                         f"{found}")
    header = 4 + 4 * (magic & 0xFF)  # the magic's low byte is the number of dimensions
    dims_bytes = _read_upto(f, header - 4)
    if len(dims_bytes) < header - 4:
        raise ValueError(f"load_mnist: {file}: expected an IDX header of {header} bytes, "
                         f"got a file of {4 + len(dims_bytes)} bytes")
    dims = struct.unpack(f">{(header - 4) // 4}I", dims_bytes)
    if dims[0] == 0:
        raise ValueError(f"load_mnist: {file}: expected at least one sample, got an IDX file "
                         f"of 0 {what}")
    if 0 in dims[1:]:
        raise ValueError(f"load_mnist: {file}: expected nonzero image dimensions, got {dims[1:]}")
    size = header + math.prod(dims)  # Python ints: three 32-bit dims overflow int64
    data = _read_upto(f, size - header + 1)  # one byte more: trailing bytes show
    if len(data) != size - header:
        problem, got_size = (("truncated", f"{header + len(data)} bytes")
                             if len(data) < size - header else
                             ("has trailing bytes", f"{file.stat().st_size} bytes"
                              if file.suffix != ".gz" else "more after them"))
        raise ValueError(f"load_mnist: {file}: {problem}: expected {size} bytes for {what} "
                         f"of shape {dims}, got {got_size}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path) -> Split:
    """Read a dataset saved by ``np.savez(path, x_train=, y_train=, x_test=, y_test=)``.

    Pickled (object) arrays are refused; features come back as float32 and
    labels as int64, 1-D: labels saved as a column ``(N, 1)`` (Keras' CIFAR-10) are
    flattened, one-hot rows ``(N, C)`` become their class indices.

    Args:
        path: The ``.npz`` file.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``.

    Warns:
        UserWarning: features whose spread float32 does not keep (values near 1e8 that
            vary by ~1): the model would see them as nearly constant.

    Raises:
        FileNotFoundError: ``path`` does not exist (IsADirectoryError: it is a folder or
            ends in a separator; PermissionError: it cannot be read).
        TypeError: ``path`` is not a str or os.PathLike.
        ValueError: ``path`` is empty or holds a NUL character; the file is not a
            valid ``.npz``, misses a key, holds an object
            array, non-numeric or non-finite features, labels that are not integers
            >= 0, no samples in a part, disagreeing sample counts, or train and test
            samples of different shapes.
    """
    from ._npz import read_npz

    path = as_path(path, "load_npz", file=True)
    arrays = read_npz(path, f"load_npz({str(path)!r})", "an .npz of plain arrays")
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"load_npz: expected keys {list(_NPZ_KEYS)} in {path}, missing "
                         f"{missing} (found {sorted(arrays)})")
    train, test = _xy(arrays, "train", path), _xy(arrays, "test", path)
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(f"load_npz: expected x_test in {path} shaped like x_train, "
                         f"(N, {', '.join(map(str, train[0].shape[1:]))}), got "
                         f"{test[0].shape}")
    return train, test


def _xy(arrays: dict[str, Any], part: str, path: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = arrays[f"x_{part}"], _label_column(arrays[f"y_{part}"])
    if y.ndim == 1 and whole_numbers(y):  # labels saved as floats (pandas, CSV): 0.0, 1.0...
        y = int64_labels(y, f"load_npz: y_{part} in {path}")
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise ValueError(f"load_npz: expected y_{part} in {path} to be 1-D integer class labels "
                         f"(or floats that are all whole numbers), got shape {y.shape} dtype "
                         f"{y.dtype}")
    labels = y.astype(np.int64)  # a uint64 beyond the int64 range wraps below 0: refused
    if labels.size and labels.min() < 0:
        raise ValueError(f"load_npz: expected y_{part} in {path} to be class labels >= 0, "
                         f"got {y[np.argmin(labels)]} at index {int(np.argmin(labels))}")
    if x.ndim < 2 or len(x) != len(y):
        what = (f"of shape ({len(y)}, features...): one row of features per sample"
                if x.ndim < 2 else f"of shape ({len(y)}, ...) to match y_{part}")
        raise ValueError(f"load_npz: expected x_{part} in {path} {what}, got {x.shape}"
                         + (" (one feature: save x.reshape(-1, 1))" if x.ndim == 1 else ""))
    if len(x) == 0:
        raise ValueError(f"load_npz: expected at least one sample in x_{part} in {path}, "
                         f"got shape {x.shape}")
    return _features(x, f"x_{part}", path), labels


def _label_column(y: np.ndarray) -> np.ndarray:
    """Labels as a 1-D array: a column ``(N, 1)`` flattened (Keras' CIFAR-10 layout), one-hot
    rows ``(N, C)`` (each one 1, the rest 0) as their indices; anything else as it is."""
    if y.ndim != 2 or y.dtype.kind not in "biuf":
        return y
    if y.shape[1] == 1:
        return y[:, 0]
    if y.size and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1)
    return y


def _features(x: np.ndarray, name: str, path: Any) -> np.ndarray:
    """``x`` as float32, checked numeric and finite (in float32: 1e39 would become Inf)."""
    if x.dtype.kind not in "biuf":
        raise ValueError(f"load_npz: expected {name} in {path} to be numeric, "
                         f"got dtype {x.dtype}")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32).reshape(len(x32), -1).all(axis=1) if x32.size else np.zeros(0)
    if bad.any():
        raise ValueError(f"load_npz: expected finite values in {name} in {path} (within "
                         f"the float32 range), got NaN/Inf in {int(bad.sum())} sample(s), "
                         f"the first at index {int(np.argmax(bad))}")
    if x.dtype.itemsize > 4 or (x.dtype.kind in "iu" and x.dtype.itemsize == 4):
        _warn_rounded(x, x32, name, path)
    return x32


def _warn_rounded(x: np.ndarray, x32: np.ndarray, name: str, path: Any) -> None:
    """A UserWarning naming the features whose spread float32 does not keep (within 1 %):
    values near 1e8 that vary by ~1 all round to a few float32 numbers, and the model
    (float32, standardized or not) would see them as nearly constant, silently."""
    flat, flat32 = x.reshape(len(x), -1), x32.reshape(len(x), -1)
    std = flat.std(axis=0, dtype=np.float64)
    lost = np.flatnonzero(np.abs(flat32.std(axis=0, dtype=np.float64) - std) > 0.01 * std)
    if lost.size:
        first = int(lost[0])
        warnings.warn(f"load_npz: {name} in {path}: {lost.size} feature(s) lose their spread "
                      f"in float32 (the first, column {first}: values near "
                      f"{float(np.abs(flat[:, first]).mean()):.3g} that vary by "
                      f"{float(std[first]):.3g}; float32 keeps ~7 digits): subtract their "
                      f"offset before saving, e.g. x - x_train.mean(axis=0)",
                      UserWarning, stacklevel=caller_level())
