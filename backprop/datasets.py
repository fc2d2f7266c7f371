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

import numpy as np

from ._files import Split, load_mnist, load_npz  # the file readers, exported from here
from ._validate import as_array, boolean, fits, in_range, positive_int
from .initializers import make_rng

__all__ = ["digits", "stratified_split", "spirals", "moons", "xor", "load_mnist", "load_npz",
           "Split"]


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
        TypeError: ``split`` or ``images`` is not a bool.
        ValueError: ``test_size`` outside (0, 1), or so small (large) that the test
            (training) set would be empty; ``seed`` negative.
    """
    split, images = boolean(split, "split", "digits"), boolean(images, "images", "digits")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError('digits() needs scikit-learn: pip install "backprop[data]"') from err
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # raw pixels are counts 0..16
    y = bunch.target.astype(np.int64)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    test_size = in_range(test_size, "test_size", "digits", 0.0, 1.0, True, True)
    if not split:
        return x, y
    train, test = stratified_split(y, test_size, make_rng(seed, "digits", "seed"))
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"digits: expected test_size to leave at least 1 test and 1 training "
                         f"sample, got test_size={test_size}: {len(test)} test and "
                         f"{len(train)} training samples of {len(y)}")
    return (x[train], y[train]), (x[test], y[test])


def stratified_split(
    y: np.ndarray, test_size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and test indices holding out ``test_size`` of every class: each
    class's share rounded to the nearest count (Python's ``round``, halves to even), so
    the test set is within half a sample per class of the fraction (``train_test_split``
    rounds the whole set up, as scikit-learn).

    Args:
        y: Labels ``(N,)``.
        test_size: The fraction held out, in ``(0, 1)``.
        rng: A ``np.random.Generator``, a seed, or None.

    Returns:
        ``(train_indices, test_indices)``.

    Raises:
        ValueError / TypeError: ``y`` empty or not 1-D, ``test_size`` outside (0, 1),
            ``rng`` no Generator, seed or None.
    """
    y = as_array(y, "stratified_split", "labels")
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"stratified_split: expected labels (N,) with N > 0, got shape "
                         f"{y.shape}")
    test_size = in_range(test_size, "test_size", "stratified_split", 0.0, 1.0, True, True)
    rng = make_rng(rng, "stratified_split")
    test = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        test.append(members[: round(test_size * len(members))])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[np.concatenate(test)] = True
    return rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))


# -- synthetic 2-D problems -------------------------------------------------------------
def _class_sizes(n_samples: int, n_classes: int, who: str, what: str = "n_classes"
                 ) -> np.ndarray:
    n_samples = positive_int(n_samples, "n_samples", who)
    n_classes = positive_int(n_classes, "n_classes", who)
    if n_samples < n_classes:
        raise ValueError(f"{who}: expected n_samples >= {what} ({n_classes}), got {n_samples}")
    fits(who, (n_samples, 8), np.float64, None, f"n_samples {n_samples:,}, arrays")  # (~its use)
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
        rng: Generator or seed (None: fresh entropy, or :func:`backprop.manual_seed`).

    Returns:
        ``x`` float32 ``(n_samples, 2)`` in about [-1, 1] and ``y`` int64 ``(n_samples,)``.
    """
    sizes = _class_sizes(n_samples, n_classes, "spirals")
    noise = in_range(noise, "noise", "spirals", 0.0) + 0.0  # -0.0: 0.0 (NumPy refuses -0.0)
    rng = make_rng(rng, "spirals")
    r = np.concatenate([np.linspace(0.05, 1.0, n) for n in sizes])
    y = np.repeat(np.arange(len(sizes)), sizes)
    theta = 4.0 * r + y * (2 * np.pi / len(sizes)) + rng.normal(0.0, noise, len(y))
    return _finish(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1), y, rng)


_MAX_NOISE = 1e30  # a larger scale would overflow the float32 samples (to inf, warning)


def moons(
    n_samples: int = 200, *, noise: float = 0.1, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``), labels 0 and 1.

    Args:
        n_samples: Total number of points (the second class gets the odd one, as in
            scikit-learn: ``n_samples // 2`` on the upper moon).
        noise: Standard deviation of Gaussian noise added to every coordinate.
        rng: Generator or seed (None: fresh entropy, or :func:`backprop.manual_seed`).

    Returns:
        ``x`` float32 ``(n_samples, 2)`` and ``y`` int64 ``(n_samples,)``.
    """
    n1, n0 = _class_sizes(n_samples, 2, "moons")  # the larger share to class 1 (sklearn)
    noise = in_range(noise, "noise", "moons", 0.0, _MAX_NOISE) + 0.0  # -0.0: 0.0
    rng = make_rng(rng, "moons")
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
        rng: Generator or seed (None: fresh entropy, or :func:`backprop.manual_seed`).

    Returns:
        ``x`` float32 ``(n_samples, 2)`` and ``y`` int64 ``(n_samples,)`` in {0, 1}.
    """
    sizes = _class_sizes(n_samples, 4, "xor", "its four blobs")
    noise = in_range(noise, "noise", "xor", 0.0, _MAX_NOISE) + 0.0  # -0.0: 0.0
    rng = make_rng(rng, "xor")
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float64)
    which = np.repeat(np.arange(4), sizes)
    x = corners[which] + rng.normal(0.0, noise, (len(which), 2))
    return _finish(x, (which == 1) | (which == 2), rng)


def __getattr__(name: str) -> None:
    """scikit-learn's and Keras' names for what backprop spells otherwise: an
    AttributeError naming ours (``backprop.datasets.StandardScaler``: ``bp.data.Standardizer``)."""
    from ._other_names import missing

    raise missing(name, "backprop.datasets")
