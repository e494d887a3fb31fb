"""Settings for the whole suite."""

import os

# The suite serves many pickled scikit-learn models that it made itself, so it trusts them. The default
# (refuse pickles) is tested explicitly in tests/http/test_pickle_policy.py, with this variable removed.
os.environ.setdefault("PREBAKE_ALLOW_PICKLE", "1")
