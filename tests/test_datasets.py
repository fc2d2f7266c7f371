"""Datasets: embedded digits, synthetic problems, the MNIST IDX reader and .npz loading."""

from __future__ import annotations

import builtins
import gzip
import struct

import numpy as np
import pytest

from backprop import datasets

# -- digits ---------------------------------------------------------------------------------


def test_digits_split_shapes_dtypes_and_range():
    pytest.importorskip("sklearn")
    (x_tr, y_tr), (x_te, y_te) = datasets.digits()
    assert x_tr.shape == (1438, 64) and x_te.shape == (359, 64)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int64
    assert 0.0 == x_tr.min() and x_tr.max() == 1.0
    assert set(np.unique(y_te)) == set(range(10))


def test_digits_split_is_stratified_disjoint_and_seeded():
    pytest.importorskip("sklearn")
    (x_tr, y_tr), (x_te, y_te) = datasets.digits(test_size=0.25, seed=3)
    full_counts = np.bincount(np.concatenate([y_tr, y_te]))
    assert np.all(np.abs(np.bincount(y_te) - 0.25 * full_counts) <= 0.5)
    rows = {r.tobytes() for r in x_tr}
    assert sum(r.tobytes() in rows for r in x_te) <= 2  # the data has a duplicate or two
    (x2, _), _ = datasets.digits(test_size=0.25, seed=3)
    (x3, _), _ = datasets.digits(test_size=0.25, seed=4)
    assert np.array_equal(x_tr, x2) and not np.array_equal(x_tr, x3)


def test_digits_images_and_unsplit():
    pytest.importorskip("sklearn")
    (x_tr, _), _ = datasets.digits(images=True)
    assert x_tr.shape == (1438, 1, 8, 8)
    x, y = datasets.digits(split=False)
    assert x.shape == (1797, 64) and y.shape == (1797,)


def test_digits_rejects_bad_test_size():
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="test_size"):
        datasets.digits(test_size=1.0)


def test_digits_refuses_a_test_size_that_empties_a_side():
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=r"digits: expected test_size to leave at least 1 test "
                                         r"and 1 training sample, got test_size=0.001: 0 test"):
        datasets.digits(test_size=0.001)
    with pytest.raises(ValueError, match=r"test_size=0.999: .* and 0 training samples"):
        datasets.digits(test_size=0.999)
    (x_tr, _), (x_te, _) = datasets.digits(test_size=0.003)  # about half a sample per class
    assert len(x_te) >= 1 and len(x_tr) + len(x_te) == 1797


def test_negative_seeds_are_named_errors():
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=r"digits: expected seed >= 0, a numpy Generator or "
                                         r"None, got -1"):
        datasets.digits(seed=-1)
    for bad in ("a", 1.5, True):  # the argument is called seed here, and the error says so
        with pytest.raises(TypeError, match=r"digits: expected seed to be a numpy Generator"):
            datasets.digits(seed=bad)
    for make in (datasets.spirals, datasets.moons, datasets.xor):
        with pytest.raises(ValueError, match=rf"{make.__name__}: expected rng as a seed >= 0, "
                                             r".*got -1"):
            make(rng=-1)
    with pytest.raises(TypeError, match="moons: expected rng to be a numpy Generator"):
        datasets.moons(rng="seed")


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "backprop\[data\]"'):
        datasets.digits()


# -- synthetic ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [datasets.spirals, datasets.moons, datasets.xor])
def test_synthetic_reproducible_from_seed_or_generator(make):
    x1, y1 = make(rng=7)
    x2, y2 = make(rng=np.random.default_rng(7))
    x3, _ = make(rng=8)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.dtype == np.float32 and y1.dtype == np.int64 and x1.shape == (len(y1), 2)


def test_spirals_class_balance_and_sizes():
    x, y = datasets.spirals(301, n_classes=4, rng=0)
    assert x.shape == (301, 2) and list(np.bincount(y)) == [76, 75, 75, 75]


def test_moons_and_xor_are_binary_and_balanced():
    for make in (datasets.moons, datasets.xor):
        _, y = make(200, rng=0)
        assert list(np.bincount(y)) == [100, 100]


def test_xor_labels_follow_quadrant_signs_without_noise():
    x, y = datasets.xor(40, noise=0.0, rng=0)
    assert np.array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(np.int64))


def test_synthetic_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_samples >= n_classes"):
        datasets.spirals(2, n_classes=3)
    with pytest.raises(ValueError, match="noise"):
        datasets.moons(noise=-1.0)
    with pytest.raises(TypeError, match="n_samples"):
        datasets.xor(10.5)


# -- MNIST IDX ------------------------------------------------------------------------------


def idx_bytes(magic: int, dims: tuple[int, ...], data: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + data


def write_mnist(folder, n=5, rows=28, cols=28, kind="train", gz=False, images=None, labels=None):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    targets = rng.integers(0, 10, n, dtype=np.uint8)
    prefix = "train" if kind == "train" else "t10k"
    files = {
        f"{prefix}-images-idx3-ubyte": images or idx_bytes(2051, (n, rows, cols), pixels.tobytes()),
        f"{prefix}-labels-idx1-ubyte": labels or idx_bytes(2049, (n,), targets.tobytes()),
    }
    for name, content in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)
    return pixels, targets


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind", ["train", "test"])
def test_load_mnist_reads_plain_and_gzip(tmp_path, gz, kind):
    pixels, targets = write_mnist(tmp_path, kind=kind, gz=gz)
    x, y = datasets.load_mnist(tmp_path, kind)
    assert x.shape == (5, 784) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, pixels.reshape(5, -1) / np.float32(255))
    np.testing.assert_array_equal(y, targets)
    xi, _ = datasets.load_mnist(tmp_path, kind, images=True)
    assert xi.shape == (5, 1, 28, 28)


def test_load_mnist_accepts_dotted_file_names(tmp_path):
    write_mnist(tmp_path, n=3)
    for f in tmp_path.iterdir():
        f.rename(tmp_path / f.name.replace("-idx", ".idx"))
    x, y = datasets.load_mnist(tmp_path)
    assert len(x) == len(y) == 3


def test_load_mnist_missing_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        datasets.load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.load_mnist(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        datasets.load_mnist(tmp_path, "validation")


def test_load_mnist_wrong_magic(tmp_path):
    labels_as_images = idx_bytes(2049, (5,), bytes(5))
    write_mnist(tmp_path, images=labels_as_images)
    with pytest.raises(ValueError, match=r"^load_mnist: .*train-images-idx3-ubyte: expected "
                                         r"IDX magic number 0x00000803 \(MNIST images: "
                                         r"unsigned bytes, 3 dimensions\), got 0x00000801$"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_streams_a_gzip_file_and_names_one_without_gz(tmp_path):
    """A 300 KB .gz declaring one image, then 300 MB of zeros, was inflated whole (640 MB
    peak) before its trailing bytes were refused; a review of the loaders found it."""
    import tracemalloc

    bomb = gzip.compress(idx_bytes(2051, (1, 28, 28), bytes(28 * 28)) + bytes(32 << 20))
    write_mnist(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"has trailing bytes: expected 800 bytes for images "
                                         r"of shape \(1, 28, 28\), got more after them"):
        datasets.load_mnist(tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20  # the 32 MiB behind the image were never inflated
    plain = tmp_path / "plain"
    plain.mkdir()
    write_mnist(plain)
    (plain / "train-images-idx3-ubyte").write_bytes(gzip.compress(b"\0" * 100))
    with pytest.raises(ValueError, match=r"got 0x1f8b.* \(a gzip file: name it \.gz\)"):
        datasets.load_mnist(plain)


def test_load_mnist_wrong_dims(tmp_path):
    write_mnist(tmp_path, images=idx_bytes(2051, (5, 0, 28), b""))
    with pytest.raises(ValueError, match=r"^load_mnist: .*expected nonzero image dimensions, "
                                         r"got \(0, 28\)"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_dims_disagree_with_data(tmp_path):
    write_mnist(tmp_path, images=idx_bytes(2051, (5, 28, 27), bytes(5 * 28 * 28)))
    with pytest.raises(ValueError, match=r"has trailing bytes: expected 3796 bytes for images "
                                         r"of shape \(5, 28, 27\), got 3936 bytes"):
        datasets.load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_truncated_data(tmp_path, gz):
    write_mnist(tmp_path, gz=gz, images=idx_bytes(2051, (5, 28, 28), bytes(4 * 28 * 28)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte(\.gz)?: truncated: "
                                         r"expected 3936 bytes .* got 3152 bytes"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_truncated_header(tmp_path):
    write_mnist(tmp_path, labels=struct.pack(">I", 2049) + b"\x00\x00")
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte: expected an IDX header of 8 "
                                         r"bytes, got a file of 6 bytes"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_truncated_gzip_stream(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"images-idx3-ubyte\.gz is not a valid gzip file"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path, labels=idx_bytes(2049, (4,), bytes(4)))
    with pytest.raises(ValueError, match=r"expected as many labels as images \(5 in .*\), "
                                         r"got 4 labels in .*train-labels-idx1-ubyte"):
        datasets.load_mnist(tmp_path)


# -- .npz -----------------------------------------------------------------------------------


def test_load_mnist_refuses_labels_outside_the_classes(tmp_path):
    labels = np.array([3, 200, 1, 10, 0], dtype=np.uint8)
    write_mnist(tmp_path, labels=idx_bytes(2049, (5,), labels.tobytes()))
    with pytest.raises(ValueError, match=r"load_mnist: expected labels in \[0, 10\) in .*"
                                         r"train-labels-idx1-ubyte, got 200 at index 1 \(2 such"):
        datasets.load_mnist(tmp_path)
    _, y = datasets.load_mnist(tmp_path, n_classes=201)  # EMNIST and kin have more classes
    assert y.tolist() == labels.tolist()


def test_load_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    parts = {"x_train": rng.integers(0, 255, (6, 4), dtype=np.uint8), "y_train": np.arange(6),
             "x_test": rng.random((3, 4)), "y_test": np.arange(3, dtype=np.int32)}
    np.savez(tmp_path / "d.npz", **parts)
    (x_tr, y_tr), (x_te, y_te) = datasets.load_npz(tmp_path / "d.npz")
    assert x_tr.dtype == x_te.dtype == np.float32 and y_te.dtype == np.int64
    np.testing.assert_array_equal(x_tr, parts["x_train"])
    assert y_te.tolist() == [0, 1, 2]


def test_load_npz_missing_keys(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((2, 2)), y_train=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"missing \['x_test', 'y_test'\]"):
        datasets.load_npz(tmp_path / "d.npz")


def test_load_npz_rejects_object_arrays_and_junk(tmp_path):
    np.savez(tmp_path / "o.npz", x_train=np.array([{"a": 1}], dtype=object),
             y_train=np.zeros(1, int), x_test=np.zeros((1, 1)), y_test=np.zeros(1, int))
    with pytest.raises(ValueError, match="expected an .npz of plain arrays; the file is"):
        datasets.load_npz(tmp_path / "o.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="junk.npz"):
        datasets.load_npz(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        datasets.load_npz(tmp_path / "absent.npz")


def test_load_npz_reads_labels_saved_as_a_column_or_one_hot(tmp_path):
    """Keras' CIFAR-10 keeps y as (N, 1); one-hot rows are what fit also accepts."""
    base = {"x_train": np.zeros((3, 2)), "x_test": np.zeros((2, 2))}
    np.savez(tmp_path / "d.npz", **base, y_train=np.array([[2], [0], [1]], np.uint8),
             y_test=np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    (_, y_train), (_, y_test) = datasets.load_npz(tmp_path / "d.npz")
    assert y_train.dtype == y_test.dtype == np.int64
    assert y_train.tolist() == [2, 0, 1] and y_test.tolist() == [1, 2]
    for y, what in [(np.array([[0.5, 0.5], [1.0, 0.0]]), "shape \\(2, 2\\)"),  # soft targets
                    (np.array([[1, 1], [1, 0]]), "shape \\(2, 2\\)")]:  # multi-label rows
        np.savez(tmp_path / "s.npz", **base, y_train=np.zeros(3, int), y_test=y)
        with pytest.raises(ValueError, match="y_test in .* 1-D integer class labels .*" + what):
            datasets.load_npz(tmp_path / "s.npz")


def test_load_npz_rejects_bad_labels_and_counts(tmp_path):
    base = {"x_train": np.zeros((2, 3)), "y_train": np.zeros(2, int),
            "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)}
    np.savez(tmp_path / "a.npz", **{**base, "y_train": np.array([0.0, 1.5])})
    with pytest.raises(ValueError, match="y_train .* integer class labels"):
        datasets.load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "w.npz", **{**base, "y_train": np.array([2.0, 1.0])})  # whole floats
    (_, y_train), _ = datasets.load_npz(tmp_path / "w.npz")
    assert y_train.dtype == np.int64 and y_train.tolist() == [2, 1]
    np.savez(tmp_path / "h.npz", **{**base, "y_train": np.array([0.0, 1e19])})
    with pytest.raises(ValueError, match="below 2\\*\\*63"):
        datasets.load_npz(tmp_path / "h.npz")
    np.savez(tmp_path / "b.npz", **{**base, "x_test": np.zeros((3, 3))})
    with pytest.raises(ValueError, match=r"x_test .* \(2, \.\.\.\).* got \(3, 3\)"):
        datasets.load_npz(tmp_path / "b.npz")



@pytest.mark.parametrize("change, message", [
    ({"y_test": np.array([0, -1])}, r"y_test in .* to be class labels >= 0, got -1 at index 1"),
    ({"x_test": np.zeros((2, 4))}, r"x_test in .* shaped like x_train, \(N, 3\), got \(2, 4\)"),
    ({"x_train": np.array([[0, np.nan, 0], [0, 0, 0]])}, r"finite values in x_train .* "
                                                         r"NaN/Inf in 1 sample\(s\), the first "
                                                         r"at index 0"),
    ({"x_test": np.array([[0, 0, 0], [0, 1e39, 0]])}, r"finite values in x_test .* float32 "
                                                      r"range.* index 1"),
    ({"x_train": np.array([["a", "b", "c"], ["d", "e", "f"]])}, "x_train in .* to be numeric, "
                                                                "got dtype <U1"),
    ({"y_train": np.array([0, 2**63], dtype=np.uint64)}, "y_train in .* labels >= 0"),
])
def test_load_npz_checks_labels_widths_and_values(tmp_path, change, message):
    base = {"x_train": np.zeros((2, 3)), "y_train": np.zeros(2, int),
            "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)}
    np.savez(tmp_path / "d.npz", **{**base, **change})
    with pytest.raises(ValueError, match="load_npz: expected " + message):
        datasets.load_npz(tmp_path / "d.npz")


def test_moons_splits_an_odd_count_as_scikit_learn_does():
    for n in (1 + 2, 7, 200, 201):
        _, y = datasets.moons(n, rng=0)
        assert np.bincount(y, minlength=2).tolist() == [n // 2, n - n // 2]
    sklearn = pytest.importorskip("sklearn.datasets")
    _, y_sk = sklearn.make_moons(201, random_state=0)
    assert np.bincount(y_sk).tolist() == np.bincount(datasets.moons(201, rng=0)[1]).tolist()


# -- argument and content checks added after an audit ----------------------------------------


@pytest.mark.parametrize("option", ["split", "images"])
def test_digits_boolean_options_refuse_truthy_strings(option):
    """images="no" used to return images: only True/False pass (checked before sklearn)."""
    with pytest.raises(TypeError, match=f"digits: expected {option} to be True or False, "
                                        "got str 'no'"):
        datasets.digits(**{option: "no"})


def test_load_mnist_images_option_must_be_a_bool(tmp_path):
    write_mnist(tmp_path, n=2)
    with pytest.raises(TypeError, match="load_mnist: expected images to be True or False"):
        datasets.load_mnist(tmp_path, images="no")


@pytest.mark.parametrize("load", [datasets.load_npz, datasets.load_mnist])
def test_loaders_name_themselves_for_a_path_that_is_not_one(load):
    with pytest.raises(TypeError, match=f"{load.__name__}: expected path as a str or "
                                        "os.PathLike, got NoneType None"):
        load(None)


@pytest.mark.parametrize("part", ["train", "test"])
def test_load_npz_refuses_a_part_without_samples(tmp_path, part):
    base = {"x_train": np.zeros((2, 3)), "y_train": np.zeros(2, int),
            "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)}
    np.savez(tmp_path / "d.npz", **{**base, f"x_{part}": np.zeros((0, 3)),
                                    f"y_{part}": np.zeros(0, int)})
    with pytest.raises(ValueError, match=f"load_npz: expected at least one sample in x_{part} "
                                         r"in .*d.npz, got shape \(0, 3\)"):
        datasets.load_npz(tmp_path / "d.npz")


def test_load_mnist_refuses_files_of_no_images(tmp_path):
    write_mnist(tmp_path, images=idx_bytes(2051, (0, 28, 28), b""),
                labels=idx_bytes(2049, (0,), b""))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: expected at least one "
                                         r"sample, got an IDX file of 0 images"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_reports_the_true_size_of_a_huge_header(tmp_path):
    """Three dims of 2**32 - 1 overflowed int64: the message showed a negative size."""
    big = 2**32 - 1
    write_mnist(tmp_path, images=idx_bytes(2051, (big, big, big), bytes(10)))
    with pytest.raises(ValueError, match=rf"truncated: expected {16 + big**3} bytes"):
        datasets.load_mnist(tmp_path)


def test_stratified_split_checks_its_arguments():
    """It put every sample in the test set for test_size=2, none for -1, and gave bare
    AttributeError / IndexError for a seed or 2-D labels (a review of the loaders)."""
    y = np.array([0, 1, 0, 1])
    for size in (2, -1, 0.0, 1.0):
        with pytest.raises(ValueError, match=r"stratified_split: expected test_size in "
                                             r"\(0\.0, 1\.0\)"):
            datasets.stratified_split(y, size, np.random.default_rng(0))
    for labels in (np.array([]), np.zeros((2, 2))):
        with pytest.raises(ValueError, match=r"stratified_split: expected labels \(N,\)"):
            datasets.stratified_split(labels, 0.5, 0)
    train, test = datasets.stratified_split(y, 0.5, 0)  # a seed works as a Generator does
    assert sorted(y[test]) == [0, 1] and sorted(np.r_[train, test]) == [0, 1, 2, 3]


def test_load_npz_of_one_dimensional_features_says_what_to_save(tmp_path):
    """It read "expected x_train of shape (10, ...) to match y_train, got (10,)"."""
    path = tmp_path / "one.npz"
    np.savez(path, x_train=np.arange(10.0), y_train=np.arange(10) % 2,
             x_test=np.zeros((3, 1)), y_test=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"of shape \(10, features\.\.\.\): one row of features "
                                         r"per sample, got \(10,\) \(one feature: save "
                                         r"x\.reshape\(-1, 1\)\)"):
        datasets.load_npz(path)
