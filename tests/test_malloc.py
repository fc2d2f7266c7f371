"""fit keeps the memory one step frees for the next (glibc's thresholds, see
backprop/_malloc.py): counted in page faults, not timed. Each case runs in a fresh process,
since the setting is the process's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's malloc (Linux) only")

SCRIPT = textwrap.dedent("""
    import resource, numpy as np, backprop as bp
    from backprop import _malloc
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (512, 50)); y = np.roll(x, 1, axis=1)
    model = bp.Sequential([bp.Embedding(8, 64, rng=0),
                           bp.TransformerEncoderLayer(64, 4, 128, dropout=0.0, rng=1),
                           bp.Dense(64, 8, rng=2), bp.Permute((2, 1))])
    args = dict(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model, lr=0.01),
                batch_size=64, epochs=2, shuffle=False, progress=False)
    model.fit(x[:128], y[:128], **args)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.fit(x, y, **args)  # 16 steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 16
    print(_malloc._state["tuned"], _malloc._state["lib"] is not None, faults)
""")


def _run(env_value):
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP_MALLOC"}
    if env_value is not None:
        env["BACKPROP_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", out[1] == "True", float(out[2])


def test_fit_reuses_freed_memory_and_can_be_told_not_to():
    tuned, glibc, faults = _run(None)
    if not glibc:
        pytest.skip("not glibc")
    assert tuned
    untouched, _, faults_default = _run("0")
    assert not untouched
    # a transformer step frees and takes back MiBs of arrays: without the setting the
    # kernel hands them out again page by page each step
    assert faults < faults_default / 4, (faults, faults_default)


GIVE_BACK = textwrap.dedent("""
    import numpy as np
    from backprop import _malloc
    assert _malloc.keep_freed_memory()
    def heap_after(mib, pieces):
        arrays = [np.ones(mib * 2**18 // pieces, np.float32) for _ in range(pieces)]
        del arrays
        before = _malloc.free_heap_bytes()
        _malloc.give_back()
        return before >> 20, _malloc.free_heap_bytes() >> 20
    print(*heap_after(16, 2), *heap_after(160, 8))
""")


def test_fit_gives_back_free_memory_beyond_what_glibc_itself_would_keep():
    from backprop import _malloc

    lib = _malloc._glibc()
    if lib is None or not hasattr(lib, "mallinfo2"):  # glibc < 2.33: always trims, as before
        pytest.skip("glibc with mallinfo2 (2.33 or newer) only")
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP_MALLOC"}
    small_before, small_after, big_before, big_after = map(int, subprocess.run(
        [sys.executable, "-c", GIVE_BACK], env=env, capture_output=True, text=True,
        check=True).stdout.split())
    # 16 MiB freed: kept for the next fit call (no page faults to take it back)
    assert small_before >= 16 and small_after == small_before
    # 160 MiB freed: more than the 64 MiB kept, so the heap is trimmed
    assert big_before >= 160 and big_after < 64


def test_bench_times_its_steps_under_fits_malloc_settings():
    if not _run(None)[1]:
        pytest.skip("not glibc")
    script = ("import backprop as bp; from backprop import _malloc; "
              "t = _malloc._state['tuned']; "
              "bp.bench(bp.Sequential([bp.Dense(4, 2)]), (4,), 8, steps=2, repeats=1); "
              "print(t, _malloc._state['tuned'])")
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP_MALLOC"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "True"]
