"""A scikit-learn-style model whose predict takes as long as its first feature says (seconds), for tests
that need a request to be in flight: pickled by the tests, loaded by prebake's sklearn runtime."""

import time

import numpy as np


class SlowModel:
    n_features_in_ = 2

    def predict(self, x):
        x = np.asarray(x, dtype=float)
        time.sleep(float(x[:, 0].max()) if len(x) else 0.0)
        return x[:, 1] * 2
