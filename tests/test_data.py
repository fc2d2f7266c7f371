"""Data helpers: minibatches, splits, one-hot labels, standardization."""

import numpy as np
import pytest

import backprop as bp
from backprop import data


def test_minibatches_cover_each_index_exactly_once():
    batches = list(data.minibatches(103, 10, rng=0))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(103))
    assert not np.array_equal(np.concatenate(batches), np.arange(103))  # shuffled


def test_minibatches_drop_last_and_no_shuffle():
    batches = list(data.minibatches(103, 10, shuffle=False, drop_last=True))
    assert len(batches) == 10
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(100))


def test_minibatches_same_seed_same_order_and_arrays_stay_paired():
    x = np.arange(50) * 10
    y = np.arange(50)
    a = [yb for _, yb in data.minibatches((x, y), 8, rng=3)]
    b = [yb for _, yb in data.minibatches((x, y), 8, rng=3)]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    for xb, yb in data.minibatches((x, y), 8, rng=4):
        np.testing.assert_array_equal(xb, yb * 10)
    assert [len(xb) for xb in data.minibatches(x, 20, rng=0)] == [20, 20, 10]


def test_minibatches_reject_bad_arguments():
    with pytest.raises(ValueError, match="expected batch_size >= 1, got 0"):
        list(data.minibatches(10, 0))
    with pytest.raises(ValueError, match="one common first dimension"):
        list(data.minibatches((np.zeros(3), np.zeros(4)), 2))


def test_train_test_split_sizes_and_pairing():
    x = np.arange(100)[:, None] * 2.0
    y = np.arange(100)
    x_tr, x_te, y_tr, y_te = data.train_test_split(x, y, 0.25, rng=0)
    assert len(x_tr) == 75 and len(x_te) == 25
    np.testing.assert_array_equal(x_tr[:, 0], y_tr * 2.0)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])), y)


def test_stratified_split_keeps_class_proportions():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    x = np.arange(1000)
    _, _, y_tr, y_te = data.train_test_split(x, y, 0.2, stratify=True, rng=1)
    np.testing.assert_array_equal(np.bincount(y_te), [100, 60, 40])
    np.testing.assert_array_equal(np.bincount(y_tr), [400, 240, 160])


def test_stratified_split_hits_the_exact_test_size_with_uneven_classes():
    y = np.repeat([0, 1, 2], [7, 5, 3])
    _, _, _, y_te = data.train_test_split(np.zeros(15), y, 0.3, stratify=True, rng=0)
    assert len(y_te) == 5  # ceil(0.3 * 15)
    assert set(np.bincount(y_te, minlength=3)) <= {1, 2, 3}


def test_stratified_split_breaks_ties_between_classes_at_random_as_sklearn():
    y = np.repeat([0, 1, 2], 10)  # test_size 4: one place left over for three equal classes
    counts = np.array([np.bincount(data.train_test_split(np.zeros(30), y, 4, stratify=True,
                                                         rng=s)[3], minlength=3)
                       for s in range(300)])
    assert (counts.sum(axis=1) == 4).all()
    assert (counts.mean(axis=0) > 1.2).all()  # not always the lowest label: ~[1.33] each


def test_stratify_takes_labels_as_sklearn_does():
    y = np.repeat([0, 1], [80, 20])
    x = np.arange(100)
    a = data.train_test_split(x, y, 0.25, stratify=True, rng=3)
    b = data.train_test_split(x, y, 0.25, stratify=y, rng=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    targets = np.linspace(0, 1, 100)  # stratify regression targets by a label column
    *_, y_te = data.train_test_split(x, targets, 0.25, stratify=y, rng=0)
    assert ((y_te >= 0.8).sum(), len(y_te)) == (5, 25)
    with pytest.raises(ValueError, match="expected stratify as True/False or 100 labels"):
        data.train_test_split(x, y, 0.25, stratify=y[:10])


@pytest.mark.parametrize("y, size, match", [
    (np.random.default_rng(0).standard_normal(100), 0.2, "2 or more members, got 100 of 100"),
    (np.array([0, 0, 0, 0, 1, 1, 1, 1, 2]), 0.3, "2 or more members, got 1 of 3"),
    (np.repeat(np.arange(5), 4), 3, "test set and a training set of at least 5 samples"),
])
def test_stratified_split_refuses_what_sklearn_refuses(y, size, match):
    with pytest.raises(ValueError, match=match):
        data.train_test_split(np.zeros(len(y)), y, size, stratify=True, rng=0)


def test_train_test_split_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"expected test_size in \(0.0, 1.0\).*got 1.5"):
        data.train_test_split(np.zeros(10), np.zeros(10), 1.5)
    with pytest.raises(ValueError, match="expected a test set of 1 to 9 samples"):
        data.train_test_split(np.zeros(10), np.zeros(10), 10)


def test_one_hot():
    out = data.one_hot(np.array([2, 0, 1]))
    np.testing.assert_array_equal(out, np.eye(3)[[2, 0, 1]])
    assert out.dtype == np.float32
    assert data.one_hot(np.array([1]), 4, dtype=np.float64).shape == (1, 4)
    with pytest.raises(ValueError, match=r"expected labels in \[0, 2\), got values from 0 to 3"):
        data.one_hot(np.array([0, 3]), 2)
    assert data.one_hot(np.array([1, 0]), dtype=bool).tolist() == [[False, True], [True, False]]
    for bad in (str, "U3", complex, object):
        with pytest.raises(TypeError, match=r"one_hot: expected a real number dtype"):
            data.one_hot(np.array([1, 0]), dtype=bad)


def test_standardizer_round_trip_and_float32_kept():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((200, 3)) * [1.0, 5.0, 0.1] + [3.0, -2.0, 7.0]).astype(np.float32)
    s = data.Standardizer().fit(x)
    z = s.transform(x)
    assert z.dtype == np.float32 and s.mean_.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-5)


def test_standardizer_guards_constant_columns():
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    z = data.Standardizer().fit_transform(x)
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z[:, 1], 0.0)


def test_standardizer_errors_name_expected_and_received():
    with pytest.raises(RuntimeError, match="expected a fitted Standardizer"):
        data.Standardizer().transform(np.zeros((2, 2)))
    s = data.Standardizer().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"expected an array of shape \(N, 2\), got \(4, 3\)$"):
        s.transform(np.zeros((4, 3)))
    # one sample without its batch axis: the shape it has, and the fix (it said "got ()")
    with pytest.raises(ValueError, match=r"expected an array of shape \(N, 2\), got \(2,\) "
                                         r"\(one sample\? add the batch axis: x\[None\]\)"):
        s.transform(np.zeros(2))


def test_standardizer_refuses_a_table_whose_columns_differ_from_fits_as_sklearn_does():
    """Fitted on a DataFrame, the statistics belong to named columns: the same table with its
    columns reordered was scaled by position, silently wrong (scikit-learn raises)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(0, 1, 50), "b": rng.normal(100, 10, 50),
                          "c": rng.normal(-5, 0.1, 50)})
    s = data.Standardizer().fit(table)
    assert list(s.feature_names_in_) == ["a", "b", "c"]
    z = s.transform(table)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_array_equal(s.transform(table.to_numpy()), z)  # plain arrays: by position
    with pytest.raises(ValueError, match=r"expected the 3 columns it was fitted on, in fit's "
                                         r"order, got 3 columns: the same in another order"):
        s.transform(table[["c", "b", "a"]])
    with pytest.raises(ValueError, match=r"columns unseen in fit \['B'\]; fit's columns "
                                         r"missing \['b'\]"):
        s.transform(table.rename(columns={"b": "B"}))
    with pytest.raises(ValueError, match=r"got 2 columns: fit's columns missing \['c'\]"):
        s.inverse_transform(table[["a", "b"]])
    np.testing.assert_allclose(s.inverse_transform(s.transform(table)), table.to_numpy())
    # integer column names (no names to check, as in scikit-learn): by position
    assert data.Standardizer().fit(pd.DataFrame(rng.normal(size=(5, 2)))).feature_names_in_ is None
    # repeated names cannot select their columns: by position, its shape checked
    twice = pd.DataFrame(rng.normal(size=(5, 3)), columns=["a", "a", "b"])
    assert data.Standardizer().fit(twice).feature_names_in_ is None
    with pytest.raises(ValueError, match=r"expected an array of shape \(N, 3\), got \(50, 4\)$"):
        s.transform(table[["a", "b", "c", "a"]])
    # a Standardizer pickled before the names existed: none to check
    old = data.Standardizer().fit(table.to_numpy())
    del old.__dict__["feature_names_in_"]
    assert old.feature_names_in_ is None and old.transform(table).shape == (50, 3)


def test_standardizer_of_one_feature_hints_at_a_column_for_a_1d_array():
    s = data.Standardizer().fit(np.arange(6.0).reshape(-1, 1))
    with pytest.raises(ValueError, match=r"expected an array of shape \(N, 1\), got \(5,\) "
                                         r"\(one feature per sample\? x.reshape\(-1, 1\)\)"):
        s.transform(np.zeros(5))


def test_standardize_uses_training_statistics_only():
    x_tr = np.array([[0.0], [2.0]])
    x_te = np.array([[4.0]])
    z_tr, z_te = data.standardize(x_tr, x_te)
    np.testing.assert_allclose(z_tr[:, 0], [-1.0, 1.0])
    np.testing.assert_allclose(z_te[:, 0], [3.0])
    assert data.standardize(x_tr).shape == (2, 1)


def test_batch_indices_shuffles_with_a_fresh_generator_by_default():
    batches = list(data.batch_indices(10, 4))  # shuffle=True, rng=None
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))
    a = np.concatenate(list(data.batch_indices(50, 7, rng=3)))  # a seed, as minibatches
    np.testing.assert_array_equal(a, np.concatenate(list(data.minibatches(50, 7, rng=3))))


def test_batch_indices_of_no_samples_yields_nothing():
    assert list(data.batch_indices(0, 4)) == []
    assert list(data.minibatches(0, 4)) == []


@pytest.mark.parametrize("n, batch_size, error, match", [
    (10, 0, ValueError, "batch_indices: expected batch_size >= 1, got 0"),
    (10, -3, ValueError, "batch_indices: expected batch_size >= 1, got -3"),
    (10, 2.5, TypeError, "batch_indices: expected batch_size to be a positive int, got 2.5"),
    (10, True, TypeError, "batch_indices: expected batch_size to be a positive int, got True"),
    (-1, 4, ValueError, "batch_indices: expected n >= 0, got -1"),
    (10.0, 4, TypeError, "batch_indices: expected n to be an int >= 0, got 10.0"),
])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_indices_rejects_bad_counts_at_the_call(n, batch_size, error, match, shuffle):
    with pytest.raises(error, match=match):
        data.batch_indices(n, batch_size, shuffle=shuffle, rng=0)  # no next() needed


def test_rng_errors_name_the_function():
    for make in (lambda: bp.Dense(2, 2, rng=-1), lambda: bp.Conv2D(1, 1, 3, rng=-1),
                 lambda: bp.Dropout(0.5, rng=-1)):
        with pytest.raises(ValueError, match=r"(Dense|Conv2D|Dropout): expected rng as a seed"):
            make()
    with pytest.raises(TypeError, match="Dense: expected rng to be a numpy Generator"):
        bp.Dense(2, 2, rng=True)
    with pytest.raises(TypeError, match="batch_indices: expected rng to be a numpy Generator"):
        data.batch_indices(10, 2, rng="seed")
    with pytest.raises(ValueError, match="minibatches: expected rng as a seed >= 0.*, got -1"):
        data.minibatches(10, 2, rng=-1)
    with pytest.raises(TypeError, match="train_test_split: expected rng to be a numpy"):
        data.train_test_split(np.zeros(10), np.zeros(10), rng=1.5)


def test_minibatches_rejects_a_bad_batch_size_at_the_call():
    with pytest.raises(ValueError, match="minibatches: expected batch_size >= 1, got 0"):
        data.minibatches(10, 0)  # an error now, not at the first next()


def test_one_hot_reads_whole_float_labels_and_refuses_fractions():
    np.testing.assert_array_equal(data.one_hot(np.array([2.0, 0.0, 1.0])),
                                  data.one_hot(np.array([2, 0, 1])))
    for bad in (np.array([0.5, 1.0]), np.array([0.0, np.nan]), np.array([[0.0, 1.0]])):
        with pytest.raises(ValueError, match="one_hot: expected integer labels"):
            data.one_hot(bad)


def test_one_hot_rejects_a_dtype_that_is_not_one():
    with pytest.raises(TypeError, match="one_hot: expected dtype as a NumPy dtype, got 'floaty'"):
        data.one_hot(np.array([0, 1]), dtype="floaty")


def test_standardizer_on_one_dimensional_data():
    x = np.array([1.0, 2.0, 3.0])
    s = data.Standardizer()
    z = s.fit_transform(x)
    np.testing.assert_allclose(z, [-1.224744871, 0.0, 1.224744871])
    np.testing.assert_allclose(s.inverse_transform(z), x)
    np.testing.assert_array_equal(data.Standardizer().fit_transform(np.full(4, 7.0)), 0.0)


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1.0, 1e150, 1e300])
def test_standardizer_at_any_scale(scale):
    """The statistics of data near 1e154 and beyond overflowed in the squares (a warning,
    std inf); data at 1e-30 was taken as constant (an absolute threshold)."""
    base = np.random.default_rng(0).standard_normal((50, 3))
    base[:, 2] = 0.75  # constant
    s = data.Standardizer().fit(base * scale)
    ref = data.Standardizer().fit(base)
    np.testing.assert_allclose(s.mean_ / scale, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(s.std_[:2] / scale, ref.std_[:2], rtol=1e-12)
    assert s.std_[2] == 1.0 and ref.std_[2] == 1.0
    np.testing.assert_allclose(s.transform(base * scale)[:, :2], ref.transform(base)[:, :2],
                               rtol=1e-10, atol=1e-12)


def test_standardizer_near_the_float64_maximum_and_constants_map_to_zero():
    """A first fix scaled by 2**ceil(log2 max|x|): 2**1024 for values past 9e307 (NaN
    std); the mean of 100 copies of 1e307 overflowed (a review of the change)."""
    x = np.array([[1e308, 0.1, 1e307], [-1e308, 0.1, 1e307], [5e307, 0.1, 1e307]])
    s = data.Standardizer().fit(x)
    np.testing.assert_allclose(s.std_[0], np.std(x[:, 0] / 1e300) * 1e300, rtol=1e-14)
    assert s.std_[1] == s.std_[2] == 1.0
    z = s.transform(x)
    assert np.isfinite(z).all() and (z[:, 1:] == 0).all()
    assert (data.Standardizer().fit_transform(np.full((100, 2), 1e307)) == 0).all()


@pytest.mark.parametrize("option", ["shuffle", "drop_last"])
def test_boolean_options_refuse_truthy_strings(option):
    """shuffle="no" used to shuffle and drop_last="no" to drop: only True/False pass."""
    with pytest.raises(TypeError, match=f"minibatches: expected {option} to be True or False, "
                                        "got str 'no'"):
        data.minibatches(np.arange(5), 2, **{option: "no"})
    with pytest.raises(TypeError, match=f"batch_indices: expected {option} to be True or "
                                        "False, got int 0"):
        data.batch_indices(5, 2, **{option: 0})


@pytest.mark.parametrize("labels, num_classes, match", [
    (np.array([2**63], np.uint64), None, r"expected an output of at most 2\*\*31 elements, "
                                         r"got shape \(1, 9223372036854775809\) .* from 1 "
                                         r"\+ the largest label 9223372036854775808"),
    (np.array([0, 10**12]), None, r"expected an output .* from 1 \+ the largest label "
                                  r"1000000000000"),
    (np.array([0, 1]), 2**31, r"expected an output of at most 2\*\*31 elements, got shape "
                              r"\(2, 2147483648\) \(4,294,967,296 elements\) from "
                              r"num_classes=2147483648"),
    (np.array([0.0, 1e19]), None, "expected integer class labels below 2\\*\\*63, got 1e\\+19"),
])
def test_one_hot_refuses_an_absurd_class_count_before_allocating(labels, num_classes, match):
    with pytest.raises(ValueError, match="one_hot: " + match):
        data.one_hot(labels, num_classes)


def test_one_hot_of_unsigned_and_empty_labels():
    np.testing.assert_array_equal(data.one_hot(np.array([1, 0], np.uint64)), np.eye(2)[[1, 0]])
    assert data.one_hot(np.array([], np.int64)).shape == (0, 0)
    assert data.one_hot(np.array([], np.int64), 3).shape == (0, 3)


def test_standardizer_refuses_values_it_cannot_scale():
    with pytest.raises(TypeError, match="Standardizer.fit: expected x of real numbers, got "
                                        "dtype <U1"):
        data.Standardizer().fit(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="got dtype complex128"):
        data.Standardizer().fit(np.ones((3, 2), complex))
    x = np.ones((3, 2))
    x[1, 0] = np.nan  # would make the whole first feature NaN
    with pytest.raises(ValueError, match="Standardizer.fit: expected finite values in x"):
        data.Standardizer().fit(x)


def test_minibatches_read_a_list_of_rows_as_one_array_and_refuse_other_kinds():
    """A nested list of samples was taken as several arrays (a review of the loaders)."""
    rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    got = list(data.minibatches(rows, 2, shuffle=False))
    np.testing.assert_array_equal(got[0], [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(got[1], [[5.0, 6.0]])
    pair = list(data.minibatches([np.arange(3), np.arange(3) * 2], 2, shuffle=False))
    np.testing.assert_array_equal(pair[1][1], [4])  # a list holding arrays: several
    for bad in (3.0, True, None, {"a": 1}):
        with pytest.raises(TypeError, match=r"minibatches: expected a sample count \(an int\), "
                                            r"an array or a tuple of arrays, got"):
            data.minibatches(bad, 2)
    with pytest.raises(TypeError, match="minibatches: expected rng to be a numpy Generator"):
        data.minibatches(4, 2, shuffle=False, rng="x")
    with pytest.raises(TypeError, match="batch_indices: expected rng to be a numpy Generator"):
        data.batch_indices(4, 2, shuffle=False, rng="x")


def test_unshuffled_batch_indices_of_a_huge_count_allocate_one_batch():
    """np.arange(n) first: 74.5 GiB asked for n = 1e10 with shuffle=False."""
    batches = data.batch_indices(10**10, 32, shuffle=False)
    np.testing.assert_array_equal(next(batches), np.arange(32))
    np.testing.assert_array_equal(next(batches), np.arange(32, 64))
    assert [len(b) for b in data.batch_indices(7, 3, shuffle=False, drop_last=True)] == [3, 3]


def test_standardizer_keeps_small_real_variation_as_scikit_learn_does():
    """1e6 + steps of 1e-7 was taken as constant (std below 1e-12 of the magnitude)."""
    x = 1e6 + np.arange(10)[:, None] * 1e-7
    z = data.Standardizer().fit_transform(x)
    np.testing.assert_allclose(z, (x - x.mean()) / x.std(), rtol=1e-6)
    assert np.abs(z).max() > 1.5
