from __future__ import annotations

import numpy as np
import pytest

from backprop import backend


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_and_scal_in_place_on_contiguous_and_strided_arrays(dtype):
    x = np.arange(12, dtype=dtype).reshape(3, 4)
    for y in (np.ones((3, 4), dtype), np.ones((4, 3), dtype).T):  # BLAS path, then fallback
        expected = y + 0.5 * x
        backend.axpy(0.5, x, y)
        np.testing.assert_allclose(y, expected)
        backend.scal(2.0, y)
        np.testing.assert_allclose(y, 2 * expected)
        assert y.dtype == dtype


def test_special_functions_keep_float32():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    assert backend.erf(x).dtype == np.float32 and backend.expit(x).dtype == np.float32
