"""The XGBoost runtime against XGBoost's own predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.errors import ConfigError, InvalidInput, ModelLoadError
from tests.unit.runtimes.helpers import assert_batching, load, need, request


@pytest.mark.parametrize("name", ["model.json", "model.ubj", "model.bst"])
def test_predict_matches_xgboost(xgb_files: dict[str, Path], xgb_booster: Any, iris: Any, name: str) -> None:
    """Each saved format gives the booster's own class probabilities."""
    xgb = need("xgboost")
    x, _ = iris
    out = load(xgb_files[name], "xgboost").predict(request(input=x[:7])).outputs
    np.testing.assert_allclose(out["predict"], xgb_booster.predict(xgb.DMatrix(x[:7])), rtol=1e-6)


def test_batching_contract(xgb_files: dict[str, Path], iris: Any) -> None:
    """Five rows at once give the same probabilities as five one-row calls concatenated."""
    x, _ = iris
    assert_batching(load(xgb_files["model.json"], "xgboost"), x[:5])


def test_wrong_feature_count(xgb_files: dict[str, Path]) -> None:
    """Five features for a four-feature booster is InvalidInput naming the expected shape."""
    with pytest.raises(InvalidInput, match=r"expects \[-1, 4\]"):
        load(xgb_files["model.json"], "xgboost").predict(request(x=np.ones((1, 5))))


def test_uncastable(xgb_files: dict[str, Path]) -> None:
    """Words for numbers are InvalidInput naming the input."""
    with pytest.raises(InvalidInput, match="'x' has dtype"):
        load(xgb_files["model.json"], "xgboost").predict(request(x=np.array([["a", "b", "c", "d"]])))


def test_metadata(xgb_files: dict[str, Path]) -> None:
    """Metadata gives the booster's feature count as the input width."""
    meta = load(xgb_files["model.ubj"], "xgboost").metadata()
    assert meta.inputs[0].shape == [-1, 4] and meta.inputs[0].datatype == "FP32"
    assert meta.outputs[0].name == "predict"


def test_not_a_booster(tmp_path: Path) -> None:
    """A file that is no XGBoost model is ModelLoadError naming it."""
    need("xgboost")
    path = tmp_path / "junk.ubj"
    path.write_bytes(b"\x00junk")
    with pytest.raises(ModelLoadError, match="junk.ubj"):
        load(path, "xgboost")


def test_threads_parameter(xgb_files: dict[str, Path], xgb_booster: Any, iris: Any) -> None:
    """parameters.threads sets the prediction threads without changing results; a bad value is refused."""
    xgb = need("xgboost")
    x, _ = iris
    model = load(xgb_files["model.json"], "xgboost", parameters={"threads": 2})
    out = model.predict(request(x=x[:3])).outputs
    np.testing.assert_allclose(out["predict"], xgb_booster.predict(xgb.DMatrix(x[:3])), rtol=1e-6)
    with pytest.raises(ConfigError, match="threads must be a whole number"):
        load(xgb_files["model.json"], "xgboost", parameters={"threads": 0})
