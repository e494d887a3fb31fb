"""MLflow models saved by the real mlflow package, once per session, and what mlflow itself predicts.

Each fixture returns a ``Saved``: the model directory, a request body in MLflow's scoring protocol, and
the answer ``mlflow.pyfunc.load_model(...).predict(...)`` gives in this process for the same data.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# mlflow 3 refuses to unpickle (and to load skops) unless told it may; these models are the suite's own.
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
os.environ.setdefault("MLFLOW_TRACKING_URI", "file:///tmp/prebake-mlflow-tracking")

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'prebake[mlflow]')")


@dataclass
class Saved:
    path: Path
    body: dict[str, Any]  # an MLflow scoring request
    expected: Any  # mlflow's own predictions, as JSON values
    data: Any  # what was given to mlflow's predict


def _jsonable(result: Any) -> Any:
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return result.to_dict(orient="records")
    if isinstance(result, pd.Series):
        return result.to_frame().to_dict(orient="records")
    if isinstance(result, dict):
        return {k: np.asarray(v).tolist() for k, v in result.items()}
    return np.asarray(result).tolist()


def mlflow_predict(path: Path, data: Any, params: dict[str, Any] | None = None) -> Any:
    return _jsonable(mlflow.pyfunc.load_model(str(path)).predict(data, params=params))


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow-models")


def _once(name: str, make: Callable[[Path], Saved]) -> Callable[..., Saved]:
    @pytest.fixture(scope="session", name=name)
    def fixture(models_dir: Path) -> Saved:
        return make(models_dir / name)

    return fixture


def make_sklearn(path: Path) -> Saved:
    """An iris LogisticRegression fitted on a DataFrame: column signature, input example, skops format."""
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    model = LogisticRegression(max_iter=500).fit(x, y)
    mlflow.sklearn.save_model(model, path, input_example=x.iloc[:3])
    rows = x.iloc[::30]
    body = {"dataframe_split": {"columns": list(x.columns), "data": rows.to_numpy().tolist()}}
    return Saved(path, body, mlflow_predict(path, rows), rows)


def make_sklearn_pickle(path: Path) -> Saved:
    """The same estimator, predicting probabilities, saved with cloudpickle (a pickle-based flavor)."""
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    model = LogisticRegression(max_iter=500).fit(x, y)
    mlflow.sklearn.save_model(
        model,
        path,
        serialization_format="cloudpickle",
        signature=mlflow.models.infer_signature(x, model.predict_proba(x)),
        pyfunc_predict_fn="predict_proba",
    )
    rows = x.iloc[:4]
    body = {"dataframe_split": {"columns": list(x.columns), "data": rows.to_numpy().tolist()}}
    return Saved(path, body, mlflow_predict(path, rows), rows)


def make_xgboost(path: Path) -> Saved:
    """An XGBClassifier fitted on a numpy matrix: a tensor signature."""
    import xgboost as xgb

    x, y = _iris()
    matrix = x.to_numpy(dtype=np.float32)
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(matrix, y)
    mlflow.xgboost.save_model(
        model, path, signature=mlflow.models.infer_signature(matrix, model.predict(matrix))
    )
    rows = matrix[::25]
    return Saved(path, {"inputs": rows.tolist()}, mlflow_predict(path, rows), rows)


def make_lightgbm(path: Path) -> Saved:
    """A LightGBM Booster (regression) on a DataFrame: columns in the signature."""
    import lightgbm as lgb

    x, y = _iris()
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 7}, lgb.Dataset(x, y), 10)
    mlflow.lightgbm.save_model(booster, path, signature=mlflow.models.infer_signature(x, booster.predict(x)))
    rows = x.iloc[::40]
    body = {"dataframe_records": rows.to_dict(orient="records")}
    return Saved(path, body, mlflow_predict(path, rows), rows)


def make_onnx(path: Path) -> Saved:
    """A scikit-learn model converted to ONNX: one float input, two outputs (label, probabilities)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    matrix = x.to_numpy(dtype=np.float32)
    onx = to_onnx(LogisticRegression(max_iter=500).fit(matrix, y), matrix[:1], options={"zipmap": False})
    rows = matrix[:3]
    mlflow.onnx.save_model(onx, path, signature=mlflow.models.infer_signature(rows))
    return Saved(path, {"inputs": rows.tolist()}, mlflow_predict(path, rows), rows)


def make_pytorch(path: Path) -> Saved:
    """A tiny torch module (saved whole, so pickled), tensor signature."""
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()
    mlflow.pytorch.save_model(module, path, signature=mlflow.models.infer_signature(x, out), input_example=x)
    return Saved(path, {"inputs": x.tolist()}, mlflow_predict(path, x), x)


PYFUNC_CODE = """
import mlflow.pyfunc
from scaling import offset  # a second file of code_paths


class Scaler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        scale = (params or {}).get("scale", 1.0)
        out = model_input[["x"]].astype(float) * scale + offset()
        if "y" in model_input:
            out["x"] += model_input["y"].fillna(0)
        return out.rename(columns={"x": "scaled"})
"""


def make_pyfunc(path: Path) -> Saved:
    """A custom PythonModel from code_paths, with an optional column and a param with a default."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    code = path.parent / "pyfunc-code"
    code.mkdir(exist_ok=True)
    (code / "scaler_model.py").write_text(textwrap.dedent(PYFUNC_CODE))
    (code / "scaling.py").write_text("def offset():\n    return 0.5\n")
    import sys

    sys.path.insert(0, str(code))
    try:
        from scaler_model import Scaler  # type: ignore[import-not-found]

        signature = ModelSignature(
            inputs=Schema([ColSpec("double", "x"), ColSpec("double", "y", required=False)]),
            outputs=Schema([ColSpec("double", "scaled")]),
            params=ParamSchema([ParamSpec("scale", "double", 2.0)]),
        )
        mlflow.pyfunc.save_model(
            path,
            python_model=Scaler(),
            code_paths=[str(code / "scaler_model.py"), str(code / "scaling.py")],
            signature=signature,
        )
    finally:
        sys.path.remove(str(code))
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    body = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0], [3.0]]}, "params": {"scale": 3.0}}
    return Saved(path, body, mlflow_predict(path, frame, {"scale": 3.0}), frame)


sklearn_model = _once("sklearn_model", make_sklearn)
sklearn_pickle_model = _once("sklearn_pickle_model", make_sklearn_pickle)
xgboost_model = _once("xgboost_model", make_xgboost)
lightgbm_model = _once("lightgbm_model", make_lightgbm)
onnx_model = _once("onnx_model", make_onnx)
pytorch_model = _once("pytorch_model", make_pytorch)
pyfunc_model = _once("pyfunc_model", make_pyfunc)

ALL = (
    "sklearn_model",
    "sklearn_pickle_model",
    "xgboost_model",
    "lightgbm_model",
    "onnx_model",
    "pytorch_model",
    "pyfunc_model",
)
