"""Long runs: hundreds of epochs keep memory flat; predict/evaluate never keep caches.

Memory is measured with ``tracemalloc`` (NumPy reports its array buffers to it):
the bytes alive after epoch 20 against those after epoch 200 of one fit. Between
the two, 720 steps and 180 validation passes run, so anything kept per step shows
as a multiple of 720, per epoch as a multiple of 180. Only :class:`~backprop.History`
grows by design (one float per logged key and one epoch index per epoch); its
allocations are counted apart, by file, and bounded per epoch.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
import backprop.history

# Between epochs 20 and 200 run 720 steps: a leak of one (16, 3) float32 batch output per
# step would be 216 KiB, of one logs dict per epoch some 40 KiB. 16 KiB leaves room only for
# interpreter noise (free lists hold a few dozen freed dicts and strings, which tracemalloc
# still counts). Saving a checkpoint every epoch adds a bounded amount of it: CPython keeps
# up to ~14 KiB of small objects from ``get_config`` alive (measured: it levels off after
# about 2,000 calls, i.e. some 300 saves of these models), hence the second bound.
FLAT = 16 * 1024
FLAT_SAVING = 32 * 1024
HISTORY_FILE = str(Path(backprop.history.__file__))
HISTORY_BYTES_PER_KEY_EPOCH = 64  # a float (24 bytes), an epoch index (28) and list slots


def blobs(n: int = 64, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, d)) + 2.0 * np.eye(3, d)[y]
    return x.astype(np.float32), y


def layers_of(layer: bp.Layer) -> Iterator[bp.Layer]:
    yield layer
    for _, child in layer.children():
        yield from layers_of(child)


class Snapshots(bp.Callback):
    """tracemalloc snapshots after the chosen epochs (after a garbage collection)."""

    def __init__(self, epochs: set[int]) -> None:
        self.epochs, self.taken = epochs, {}

    def on_epoch_end(self, epoch, logs):
        if epoch in self.epochs:
            gc.collect()
            self.taken[epoch] = tracemalloc.take_snapshot()


# One block, new at its line, of at least this size: a one-time allocation of NumPy's or
# CPython's own, not a leak (which one is not pinned down: a bare NumPy loop of
# ``np.empty(10).__array_interface__`` makes one ~0.94 MB block once, after 10-15k calls). When
# this file runs alone, a ~1.9 MB one lands between epochs 20 and 200, at whatever line ran
# then (``__array_interface__`` in layers/_flat.py). A leak per step or per epoch adds 720
# or 180 blocks, never one; so such a block is left out, and the rest must stay flat.
ONE_TIME_BLOCK = 256 * 1024


def growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    """Bytes gained between two snapshots, by file (tracemalloc's own and this file's excluded,
    and any one-time block: see ``ONE_TIME_BLOCK``)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    by_file: dict[str, int] = {}
    for s in stats:
        if not s.size_diff or one_time(s):
            continue
        file = s.traceback[0].filename
        by_file[file] = by_file.get(file, 0) + s.size_diff
    return by_file


def one_time(stat: tracemalloc.StatisticDiff) -> bool:
    """A single block that was not there before, of ``ONE_TIME_BLOCK`` bytes or more."""
    return stat.count == stat.count_diff == 1 and stat.size == stat.size_diff >= ONE_TIME_BLOCK


def run_200_epochs(model: bp.Sequential, callbacks=(), **kwargs) -> tuple[bp.History, dict]:
    x, y = blobs()
    xv, yv = blobs(32, seed=1)
    probe = Snapshots({19, 199})
    tracemalloc.start()
    try:
        history = model.fit(x, y, loss=bp.SoftmaxCrossEntropy(),
                            optimizer=kwargs.pop("optimizer", None) or bp.Adam(
                                model.parameters(), lr=1e-3),
                            epochs=200, batch_size=16, validation_data=(xv, yv),
                            metrics=["accuracy"], seed=0, progress=False,
                            callbacks=[*callbacks, probe], **kwargs)
    finally:
        tracemalloc.stop()
    return history, growth(probe.taken[19], probe.taken[199])


def kept_by_history(history: bp.History, first: int, last: int) -> int:
    """Bytes of the floats and epoch indices History keeps from epochs ``first+1..last``
    (tracemalloc counts them where they were computed: training.py, losses.py, ...)."""
    held = [v for values in history.history.values() for v in values[first + 1:last + 1]]
    held += [e for e in history.epoch[first + 1:last + 1] if e > 256]  # smaller ints: cached
    return sum(sys.getsizeof(v) for v in held)


def check_flat(history: bp.History, grown: dict[str, int], limit: int = FLAT) -> None:
    assert len(history.epoch) == 200 and np.isfinite(history.history["loss"]).all()
    kept = kept_by_history(history, 19, 199)
    by_history = grown.pop(HISTORY_FILE, 0) + kept  # its list slots, and what they hold
    assert by_history <= 180 * len(history.history) * HISTORY_BYTES_PER_KEY_EPOCH, by_history
    total = sum(grown.values()) - kept
    assert total < limit, f"memory grew by {total} bytes over 180 epochs (besides History's " \
                          f"{by_history}): {grown}"


def test_200_epochs_of_a_small_mlp_keep_memory_flat():
    model = bp.Sequential([bp.Dense(8, 16, rng=0), bp.ReLU(), bp.Dense(16, 3, rng=1)])
    history, grown = run_200_epochs(model)
    check_flat(history, grown)
    assert history.history["accuracy"][-1] > 0.8  # it did learn


def test_200_epochs_with_batchnorm_dropout_and_callbacks_keep_memory_flat(tmp_path):
    model = bp.Sequential([bp.Dense(8, 16, rng=0), bp.BatchNorm(16), bp.ReLU(),
                           bp.Dropout(0.2, rng=1), bp.Dense(16, 3, rng=2)])
    callbacks = [bp.EarlyStopping(patience=10_000), bp.ReduceLROnPlateau(patience=5),
                 bp.ModelCheckpoint(tmp_path / "last.npz")]
    history, grown = run_200_epochs(model, callbacks,
                                    optimizer=bp.SGD(model.parameters(), 0.05, momentum=0.9))
    check_flat(history, grown, FLAT_SAVING)
    assert not model.has_cache


# -- inference: no caches, no growth ----------------------------------------------------------
def nested_model() -> bp.Sequential:
    return bp.Sequential([
        bp.Reshape((1, 8)), bp.Conv1D(1, 4, 3, padding=1, rng=0), bp.BatchNorm(4), bp.ReLU(),
        bp.MaxPool1D(2), bp.Flatten(),
        bp.Residual(bp.Sequential([bp.Dense(16, 16, rng=1), bp.GELU(), bp.Dropout(0.3, rng=2),
                                   bp.LayerNorm(16)])),
        bp.Dense(16, 3, rng=3), bp.Softmax(),
    ])


@pytest.mark.parametrize("batch_size", [256, 7])  # one forward, and many with a remainder
def test_predict_and_evaluate_keep_no_cache_and_no_memory(batch_size):
    x, y = blobs(50)
    model, loss = nested_model(), bp.MeanSquaredError()
    target = np.eye(3, dtype=np.float32)[y]
    assert len(list(layers_of(model))) == 15
    model.fit(x, target, loss=loss, optimizer=bp.SGD(model.parameters(), 0.01), epochs=1,
              progress=False, seed=0)
    before = model.flat_params.copy(), {k: v.copy() for k, v in model.buffers.items()}
    snapshots = {}
    tracemalloc.start()
    try:
        for i in range(100):  # with batch_size=7, 80 x 16 forwards between the snapshots
            out = model.predict(x, batch_size=batch_size)
            scores = model.evaluate(x, target, loss=loss, metrics=["mse"], batch_size=batch_size)
            if i in (19, 99):
                del out, scores
                gc.collect()
                snapshots[i] = tracemalloc.take_snapshot()
            assert not any(layer.has_cache for layer in layers_of(model))
            assert not loss.has_cache
    finally:
        tracemalloc.stop()
    grown = growth(snapshots[19], snapshots[99])
    assert sum(grown.values()) < FLAT, grown
    np.testing.assert_array_equal(model.flat_params, before[0])
    for k, v in before[1].items():  # inference never moves running statistics
        np.testing.assert_array_equal(model.buffers[k], v)


def test_repeated_short_fits_keep_memory_flat():
    """Callbacks and History start afresh in every fit: nothing of an old fit stays alive."""
    x, y = blobs()
    model = bp.Sequential([bp.Dense(8, 16, rng=0), bp.ReLU(), bp.Dense(16, 3, rng=1)])
    opt, loss = bp.Adam(model.parameters(), lr=1e-3), bp.SoftmaxCrossEntropy()
    stopper = bp.EarlyStopping(monitor="loss", patience=100)
    snapshots = {}
    tracemalloc.start()
    try:
        for i in range(120):
            model.fit(x, y, loss=loss, optimizer=opt, epochs=1, batch_size=16, seed=i,
                      progress=False, metrics=["accuracy"], callbacks=[stopper])
            if i in (19, 119):
                gc.collect()
                snapshots[i] = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = growth(snapshots[19], snapshots[119])
    assert sum(grown.values()) < FLAT, grown


def test_only_a_single_new_large_block_counts_as_one_time():
    where = tracemalloc.Traceback(((__file__, 1),))
    big = ONE_TIME_BLOCK

    def diff(size, size_diff, count, count_diff):
        return tracemalloc.StatisticDiff(where, size, size_diff, count, count_diff)

    assert one_time(diff(big, big, 1, 1))  # the ~1.9 MB block this file meets alone
    assert not one_time(diff(big - 1, big - 1, 1, 1))  # small: counted (noise bound)
    assert not one_time(diff(180 * 64, 180 * 64, 180, 180))  # one block per epoch: a leak
    assert not one_time(diff(720 * big, 720 * big, 720, 720))  # one per step, however large
    assert not one_time(diff(2 * big, big, 1, 0))  # a block that grew (a buffer reallocated)
    assert not one_time(diff(2 * big, big, 2, 1))  # a second block beside an older one
