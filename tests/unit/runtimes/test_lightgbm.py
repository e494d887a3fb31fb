"""The LightGBM runtime against LightGBM's own predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from prebake.errors import InvalidInput
from tests.unit.runtimes.helpers import assert_batching, load, request


def test_predict_matches_lightgbm(lgb_file: Any, iris: Any) -> None:
    """The runtime gives the booster's own class probabilities."""
    path, booster = lgb_file
    x, _ = iris
    out = load(path, "lightgbm").predict(request(input=x[:9])).outputs
    np.testing.assert_allclose(out["predict"], booster.predict(x[:9]))


def test_batching_contract(lgb_file: Any, iris: Any) -> None:
    """Five rows at once give the same probabilities as five one-row calls concatenated."""
    x, _ = iris
    assert_batching(load(lgb_file[0], "lightgbm"), x[:5])


def test_wrong_feature_count(lgb_file: Any) -> None:
    """Two features for a four-feature booster is InvalidInput naming the input and expected shape."""
    with pytest.raises(InvalidInput, match=r"'x' has shape \[1, 2\]; the model expects \[-1, 4\]"):
        load(lgb_file[0], "lightgbm").predict(request(x=np.ones((1, 2))))


def test_metadata(lgb_file: Any) -> None:
    """Metadata gives the booster's feature count as the input width."""
    assert load(lgb_file[0], "lightgbm").metadata().inputs[0].shape == [-1, 4]
