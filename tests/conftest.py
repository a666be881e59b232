import matplotlib

matplotlib.use("Agg")  # tests draw off-screen

import numpy as np
import pytest

RTOL_FLOAT64 = 1e-10  # same float64 computation done two ways (ours vs torch autograd)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
