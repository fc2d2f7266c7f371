from __future__ import annotations

import numpy as np

from backprop import backend


def test_special_functions_keep_float32():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    assert backend.erf(x).dtype == np.float32 and backend.expit(x).dtype == np.float32


def test_expit_is_accurate_to_a_few_ulp_across_the_whole_range():
    for dtype, ulps in ((np.float32, 3), (np.float64, 3)):
        x = np.linspace(-1000, 1000, 20001).astype(dtype)
        exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))
        normal = exact > np.finfo(dtype).tiny
        y = backend.expit(x)
        assert y.dtype == dtype
        rel = np.abs(y[normal] - exact[normal]) / exact[normal]
        assert rel.max() <= ulps * np.finfo(dtype).eps
        assert y[0] == 0 and y[-1] == 1
