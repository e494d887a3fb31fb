"""The two benchmark models, made once and saved with joblib under ``.bench/models/<name>/model.joblib``.

- ``iris``: ``LogisticRegression`` fitted on the iris data set (4 features, 3 classes); requests carry 1 row.
- ``forest``: a 100-tree ``RandomForestClassifier`` (max_depth 12) fitted on synthetic data from
  ``make_classification`` (5,000 rows, 10 features, 3 classes, seed 0); requests carry 64 rows.

- ``mlflow-iris`` and ``mlflow-iris-64``: the iris model saved by ``mlflow.sklearn.save_model`` (cloudpickle,
  which every mlflow version loads; column signature) under ``.bench/models/mlflow-iris/``; requests carry
  1 and 64 real iris rows as MLflow's ``dataframe_split``.

All are deterministic (fixed seeds), so every server in a run loads byte-identical models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / ".bench" / "models"


@dataclass(frozen=True, slots=True)
class Workload:
    """A model plus the request it is benchmarked with."""

    name: str
    rows: int
    features: int
    kind: str = "joblib"  # "joblib" or "mlflow" (an MLflow model directory)

    @property
    def model_dir(self) -> Path:
        return MODELS_DIR / ("mlflow-iris" if self.kind == "mlflow" else self.name)

    @property
    def model_file(self) -> Path:
        return self.model_dir / "model.joblib"


IRIS = Workload("iris", rows=1, features=4)
FOREST = Workload("forest", rows=64, features=10)
MLFLOW_IRIS = Workload("mlflow-iris", rows=1, features=4, kind="mlflow")
MLFLOW_IRIS_64 = Workload("mlflow-iris-64", rows=64, features=4, kind="mlflow")
WORKLOADS = {w.name: w for w in (IRIS, FOREST)}  # made before every run; the MLflow ones by their suite
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _fit(name: str):  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "iris":
        x, y = load_iris(return_X_y=True)
        return LogisticRegression(max_iter=1000).fit(x, y)
    x, y = make_classification(n_samples=5000, n_features=10, n_informative=6, n_classes=3, random_state=0)
    return RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(x, y)


def rows(workload: Workload) -> list[list[float]]:
    """The request rows: real iris rows, or rows drawn from the forest's training distribution."""
    if workload.name == "iris":
        return [[5.1, 3.5, 1.4, 0.2]][: workload.rows]
    if workload.kind == "mlflow":
        from sklearn.datasets import load_iris

        x, _ = load_iris(return_X_y=True)
        return [[float(v) for v in row] for row in x[:: max(1, len(x) // workload.rows)][: workload.rows]]
    from sklearn.datasets import make_classification

    x, _ = make_classification(
        n_samples=workload.rows, n_features=10, n_informative=6, n_classes=3, random_state=1
    )
    return [[round(float(v), 4) for v in row] for row in x]


def ensure(workload: Workload) -> Path:
    """Fit and save the model unless it is already there; return the model file (an MLflow model's
    directory)."""
    if workload.kind == "mlflow":
        return _ensure_mlflow(workload)
    if not workload.model_file.exists():
        import joblib

        workload.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = workload.model_file.with_suffix(".tmp")
        joblib.dump(_fit(workload.name), tmp)
        tmp.replace(workload.model_file)
    return workload.model_file


def _ensure_mlflow(workload: Workload) -> Path:
    if (workload.model_dir / "MLmodel").exists():
        return workload.model_dir
    import mlflow.sklearn
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = IRIS_COLUMNS
    model = LogisticRegression(max_iter=1000).fit(x, y)
    tmp = workload.model_dir.with_name(workload.model_dir.name + ".tmp")
    mlflow.sklearn.save_model(
        model,
        tmp,
        serialization_format="cloudpickle",
        signature=mlflow.models.infer_signature(x, model.predict(x)),
        input_example=pd.DataFrame(x.iloc[:2]),
    )
    tmp.replace(workload.model_dir)
    return workload.model_dir


if __name__ == "__main__":
    for w in WORKLOADS.values():
        print(ensure(w))
