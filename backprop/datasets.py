"""Datasets: real handwritten digits, small synthetic problems, MNIST and ``.npz`` readers.

Every loader returns float32 features and int64 class labels, ready for
``SoftmaxCrossEntropy``; splits come back as ``(x_train, y_train), (x_test, y_test)``.

=================  ===============================================================
digits             1,797 real 8x8 handwritten digits bundled with scikit-learn
spirals            interleaved 2-D spirals, one arm per class
moons              two interleaving half circles
xor                four Gaussian blobs labelled by the XOR of their quadrant
load_mnist         MNIST (or Fashion-MNIST) IDX files from a local folder
load_npz           a ``.npz`` with x_train, y_train, x_test, y_test
=================  ===============================================================

Nothing here downloads anything, and scikit-learn is imported only by :func:`digits`.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import in_range, nonneg_int, positive_int
from .initializers import make_rng

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


# -- real data ------------------------------------------------------------------------
def digits(
    *, split: bool = True, test_size: float = 0.2, seed: int = 0, images: bool = False
) -> Split | tuple[np.ndarray, np.ndarray]:
    """The UCI handwritten digits bundled with scikit-learn (offline, 1,797 samples).

    Args:
        split: Return a stratified train/test split (default) instead of all data.
        test_size: Fraction of each class held out for testing, in (0, 1).
        seed: Seed of the split's shuffle; the same seed gives the same split.
        images: Return images ``(N, 1, 8, 8)`` for convolutions instead of ``(N, 64)``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``, or ``(x, y)`` when ``split`` is
        False: float32 pixels scaled to [0, 1] and int64 labels 0-9.

    Raises:
        ImportError: scikit-learn is not installed (``pip install "backprop[data]"``).
        ValueError: ``test_size`` outside (0, 1), or so small (large) that the test
            (training) set would be empty; ``seed`` negative.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError('digits() needs scikit-learn: pip install "backprop[data]"') from err
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # raw pixels are counts 0..16
    y = bunch.target.astype(np.int64)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    if not split:
        return x, y
    test_size = in_range(test_size, "test_size", "digits", 0.0, 1.0, True, True)
    train, test = stratified_split(y, test_size, _rng(seed, "digits", "seed"))
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"digits: expected test_size to leave at least 1 test and 1 training "
                         f"sample, got test_size={test_size}: {len(test)} test and "
                         f"{len(train)} training samples of {len(y)}")
    return (x[train], y[train]), (x[test], y[test])


def stratified_split(
    y: np.ndarray, test_size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and test indices holding out ``test_size`` of every class."""
    test = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        test.append(members[: round(test_size * len(members))])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[np.concatenate(test)] = True
    return rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))


def _rng(rng: Any, who: str, name: str = "rng (a seed)") -> np.random.Generator:
    """A Generator from a Generator, a seed >= 0 or None, with errors that name ``who``."""
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        nonneg_int(rng, name, who)
    return make_rng(rng, who)


# -- synthetic 2-D problems -------------------------------------------------------------
def _class_sizes(n_samples: int, n_classes: int, who: str) -> np.ndarray:
    n_samples = positive_int(n_samples, "n_samples", who)
    n_classes = positive_int(n_classes, "n_classes", who)
    if n_samples < n_classes:
        raise ValueError(f"{who}: expected n_samples >= n_classes ({n_classes}), got {n_samples}")
    extra = np.arange(n_classes) < n_samples % n_classes
    return np.full(n_classes, n_samples // n_classes) + extra


def _finish(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(y))  # shuffled, so a plain slice is a fair split
    return x[order].astype(np.float32), y[order].astype(np.int64)


def spirals(
    n_samples: int = 300, n_classes: int = 3, *, noise: float = 0.2,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spirals (the CS231n toy problem): not linearly separable.

    Args:
        n_samples: Total number of points, shared evenly between classes.
        n_classes: Number of spiral arms.
        noise: Standard deviation of the angular jitter, in radians.
        rng: Generator or seed (None: fresh entropy).

    Returns:
        ``x`` float32 ``(n_samples, 2)`` in about [-1, 1] and ``y`` int64 ``(n_samples,)``.
    """
    sizes = _class_sizes(n_samples, n_classes, "spirals")
    noise = in_range(noise, "noise", "spirals", 0.0)
    rng = _rng(rng, "spirals")
    r = np.concatenate([np.linspace(0.05, 1.0, n) for n in sizes])
    y = np.repeat(np.arange(len(sizes)), sizes)
    theta = 4.0 * r + y * (2 * np.pi / len(sizes)) + rng.normal(0.0, noise, len(y))
    return _finish(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1), y, rng)


def moons(
    n_samples: int = 200, *, noise: float = 0.1, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``), labels 0 and 1.

    Args:
        n_samples: Total number of points (the second class gets the odd one, as in
            scikit-learn: ``n_samples // 2`` on the upper moon).
        noise: Standard deviation of Gaussian noise added to every coordinate.
        rng: Generator or seed (None: fresh entropy).

    Returns:
        ``x`` float32 ``(n_samples, 2)`` and ``y`` int64 ``(n_samples,)``.
    """
    n1, n0 = _class_sizes(n_samples, 2, "moons")  # the larger share to class 1 (sklearn)
    noise = in_range(noise, "noise", "moons", 0.0)
    rng = _rng(rng, "moons")
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    x = np.concatenate([upper, lower]) + rng.normal(0.0, noise, (n0 + n1, 2))
    return _finish(x, np.repeat([0, 1], [n0, n1]), rng)


def xor(
    n_samples: int = 200, *, noise: float = 0.1, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Points around the four corners (±1, ±1), labelled 1 where the signs differ.

    Args:
        n_samples: Total number of points, shared evenly between the corners.
        noise: Standard deviation of the Gaussian blob around each corner.
        rng: Generator or seed (None: fresh entropy).

    Returns:
        ``x`` float32 ``(n_samples, 2)`` and ``y`` int64 ``(n_samples,)`` in {0, 1}.
    """
    sizes = _class_sizes(n_samples, 4, "xor")
    noise = in_range(noise, "noise", "xor", 0.0)
    rng = _rng(rng, "xor")
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float64)
    which = np.repeat(np.arange(4), sizes)
    x = corners[which] + rng.normal(0.0, noise, (len(which), 2))
    return _finish(x, (which == 1) | (which == 2), rng)


# -- files ------------------------------------------------------------------------------
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
        ValueError: A file is corrupt (wrong magic or dimensions, truncated, image
            and label counts disagree, or a label outside ``[0, n_classes)``); the
            message names the file.
    """
    if kind not in ("train", "test"):
        raise ValueError(f"load_mnist: expected kind 'train' or 'test', got {kind!r}")
    n_classes = positive_int(n_classes, "n_classes", "load_mnist")
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"load_mnist: expected a folder of MNIST IDX files, got {path}")
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
    raise FileNotFoundError(f"load_mnist: expected {names[0]} (or {names[0]}.gz) in {folder}, "
                            "found neither")


def _read_bytes(file: Path) -> bytes:
    if file.suffix != ".gz":
        return file.read_bytes()
    try:
        return gzip.decompress(file.read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"load_mnist: {file} is not a valid gzip file ({err})") from err


def _read_idx(file: Path, what: str) -> np.ndarray:
    """One IDX file as a uint8 array of the shape its header declares, fully checked."""
    data, magic = _read_bytes(file), _IDX_MAGIC[what]
    got = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if got != magic:
        raise ValueError(f"{file}: expected IDX magic number {magic} (MNIST {what}), got "
                         f"{got if got is not None else f'a file of {len(data)} bytes'}")
    header = 4 + 4 * (magic & 0xFF)  # the magic's low byte is the number of dimensions
    if len(data) < header:
        raise ValueError(f"{file}: expected an IDX header of {header} bytes, got a file of "
                         f"{len(data)} bytes")
    dims = struct.unpack(f">{(header - 4) // 4}I", data[4:header])
    if 0 in dims[1:]:
        raise ValueError(f"{file}: expected nonzero image dimensions, got {dims[1:]}")
    size = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != size:
        problem = "truncated" if len(data) < size else "has trailing bytes"
        raise ValueError(f"{file}: {problem}: expected {size} bytes for {what} of shape "
                         f"{dims}, got {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path) -> Split:
    """Read a dataset saved by ``np.savez(path, x_train=, y_train=, x_test=, y_test=)``.

    Pickled (object) arrays are refused; features come back as float32 and
    labels as int64.

    Args:
        path: The ``.npz`` file.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not a valid ``.npz``, misses a key, holds an object
            array, non-numeric or non-finite features, labels that are not integers
            >= 0, disagreeing sample counts, or train and test samples of different
            shapes.
    """
    from .serialization import read_npz

    arrays = read_npz(Path(path), f"load_npz({str(path)!r})", "an .npz of plain arrays")
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
    x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise ValueError(f"load_npz: expected y_{part} in {path} to be 1-D integer class labels, "
                         f"got shape {y.shape} dtype {y.dtype}")
    labels = y.astype(np.int64)  # a uint64 beyond the int64 range wraps below 0: refused
    if labels.size and labels.min() < 0:
        raise ValueError(f"load_npz: expected y_{part} in {path} to be class labels >= 0, "
                         f"got {y[np.argmin(labels)]} at index {int(np.argmin(labels))}")
    if x.ndim < 2 or len(x) != len(y):
        raise ValueError(f"load_npz: expected x_{part} in {path} of shape ({len(y)}, ...) to "
                         f"match y_{part}, got {x.shape}")
    return _features(x, f"x_{part}", path), labels


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
    return x32
