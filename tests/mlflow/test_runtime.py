"""The MLflow runtime in-process: discovery finds MLmodel first, the signature's checks say what MLflow's
enforcement says, recommend reads flavors and requirements."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from prebake.errors import InvalidInput
from prebake.extend.recommend import recommend
from prebake.images.catalog import load_catalog
from prebake.runtimes.discover import find_models
from prebake.runtimes.mlflow_schema import Signature
from prebake.runtimes.registry import create_runtime
from prebake.types import InferenceRequest
from tests.mlflow.conftest import Saved, mlflow

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def test_mlmodel_wins_over_the_model_file_inside(sklearn_pickle_model: Saved, tmp_path: Path) -> None:
    """A directory with MLmodel and model.pkl is an MLflow model, alone, in a repository, or by its MLmodel."""
    repo = tmp_path / "repo"
    shutil.copytree(sklearn_pickle_model.path, repo / "iris" / "3")
    (found,) = find_models([sklearn_pickle_model.path])
    assert found.runtime == "mlflow"
    (by_file,) = find_models([sklearn_pickle_model.path / "MLmodel"])
    assert by_file.runtime == "mlflow"
    (in_repo,) = find_models([], repository=repo)
    assert (in_repo.name, in_repo.runtime, in_repo.version) == ("iris", "mlflow", "3")


def _mlflow_error(signature: object, data: object) -> str:
    from mlflow.models.utils import _enforce_schema

    with pytest.raises(Exception) as raised:
        _enforce_schema(data, signature.inputs)  # type: ignore[attr-defined]
    return str(getattr(raised.value, "message", raised.value))


def test_tensor_shape_message_as_mlflow(xgboost_model: Saved) -> None:
    """A tensor of the wrong width: both say "Shape of input (1, 3) does not match expected shape (-1, 4)"."""
    from mlflow.models import Model

    signature = Model.load(str(xgboost_model.path)).signature
    theirs = _mlflow_error(signature, np.zeros((1, 3), dtype=np.float32))
    runtime = create_runtime(find_models([xgboost_model.path])[0])
    runtime.load()
    with pytest.raises(InvalidInput) as ours:
        runtime.predict(InferenceRequest(inputs={"x": np.zeros((1, 3), dtype=np.float32)}))
    phrase = "Shape of input (1, 3) does not match expected shape (-1, 4)"
    assert phrase in theirs and phrase in ours.value.message


def test_missing_column_message_as_mlflow(sklearn_model: Saved) -> None:
    """A column missing: both say "Model is missing inputs [...]" naming it."""
    import pandas as pd
    from mlflow.models import Model

    signature = Model.load(str(sklearn_model.path)).signature
    frame = sklearn_model.data.drop(columns=["petal width (cm)"])
    theirs = _mlflow_error(signature, frame)
    ours = Signature([{"type": "double", "name": c, "required": True} for c in sklearn_model.data.columns])
    with pytest.raises(InvalidInput) as raised:
        ours.columns_for({c: frame[c].to_numpy() for c in frame.columns})
    phrase = "Model is missing inputs ['petal width (cm)']"
    assert phrase in theirs and phrase in raised.value.message
    assert isinstance(frame, pd.DataFrame)


def test_params_defaults_and_checks() -> None:
    """Params take their defaults, accept an int for a double, and refuse text for a number, naming it."""
    signature = Signature(
        [{"type": "double", "name": "x"}],
        params=[{"name": "scale", "type": "double", "default": 2.0, "shape": None}],
    )
    assert signature.params_for({}) == {"scale": 2.0}
    assert signature.params_for({"scale": 3}) == {"scale": 3.0}
    with pytest.raises(InvalidInput) as raised:
        signature.params_for({"scale": "big"})
    assert "scale" in raised.value.message
    assert Signature([{"type": "double", "name": "x"}]).params_for({"scale": 1}) is None  # no params schema
    described = signature.describe()
    assert described["params"][0]["default"] == 2.0 and described["content_type"] == "pd"


def test_optional_column_and_integer_missing_values() -> None:
    """An optional column may be left out; a missing value in a long column is refused, as pandas does."""
    signature = Signature([{"type": "long", "name": "a"}, {"type": "string", "name": "b", "required": False}])
    assert list(signature.columns_for({"a": np.array([1, 2])})) == ["a"]
    assert signature.describe()["optional"] == ["b"]
    with pytest.raises(InvalidInput) as raised:
        signature.columns_for({"a": np.array([1.0, np.nan])})
    assert "column a" in raised.value.message


def test_recommend_reads_flavors_and_requirements(sklearn_model: Saved, pyfunc_model: Saved) -> None:
    """An sklearn flavor is served by an image with scikit-learn at the logged version; a custom pyfunc
    needs mlflow-skinny, which the MLflow image holds."""
    catalog = load_catalog()
    native = recommend(sklearn_model.path, catalog)
    assert native.image.version and "scikit-learn" in " ".join(native.reasons)
    assert all("mlflow" not in item for item in native.lacking)  # native flavors need no mlflow
    custom = recommend(pyfunc_model.path, catalog)
    assert custom.image.framework == "mlflow", custom
    assert mlflow.__version__
