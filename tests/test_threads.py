"""bp.set_num_threads / bp.get_num_threads: NumPy's BLAS pool, as torch's pair sets its own."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

import backprop as bp
from backprop import _openblas


@pytest.fixture
def restored():
    before = bp.get_num_threads()
    yield before
    bp.set_num_threads(before)


def test_set_num_threads_sets_what_get_num_threads_and_threadpoolctl_read(restored):
    bp.set_num_threads(1)
    assert bp.get_num_threads() == 1
    threadpoolctl = pytest.importorskip("threadpoolctl")
    numpys = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert numpys and all(p["num_threads"] == 1 for p in numpys
                          if "numpy" in p["filepath"])
    bp.set_num_threads(np.int64(2))
    assert bp.get_num_threads() == 2
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(a @ a.T, np.einsum("ik,jk->ij", a, a))  # still right


@pytest.mark.parametrize(("n", "error", "says"), [
    (0, ValueError, r"expected n >= 1, got 0"), (-2, ValueError, r"expected n >= 1"),
    (1.5, TypeError, r"expected n to be a positive int, got 1\.5"),
    (True, TypeError, r"expected n to be a positive int, got True"),
    ("2", TypeError, r"expected n to be a positive int, got '2'")])
def test_set_num_threads_refuses_what_is_not_a_count(restored, n, error, says):
    with pytest.raises(error, match=f"set_num_threads: {says}"):
        bp.set_num_threads(n)
    assert bp.get_num_threads() == restored


def test_another_blas_goes_through_threadpoolctl(restored, monkeypatch):
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_openblas, "thread_functions", lambda: None)
    bp.set_num_threads(1)
    assert bp.get_num_threads() == 1
    monkeypatch.undo()
    assert bp.get_num_threads() == 1  # the same pool, read directly


def test_another_blas_without_threadpoolctl_says_what_to_install(monkeypatch):
    monkeypatch.setattr(_openblas, "thread_functions", lambda: None)
    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    for call in (bp.get_num_threads, lambda: bp.set_num_threads(1)):
        with pytest.raises(RuntimeError, match=r"not the OpenBLAS backprop can set directly; "
                                               r"install threadpoolctl"):
            call()
