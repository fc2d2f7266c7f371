from __future__ import annotations

import numpy as np

from backprop import backend


def test_special_functions_keep_float32():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    assert backend.erf(x).dtype == np.float32 and backend.expit(x).dtype == np.float32
