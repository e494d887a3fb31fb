"""The two benchmark models, made once and saved with joblib under ``.bench/models/<name>/model.joblib``.

- ``iris``: ``LogisticRegression`` fitted on the iris data set (4 features, 3 classes); requests carry 1 row.
- ``forest``: a 100-tree ``RandomForestClassifier`` (max_depth 12) fitted on synthetic data from
  ``make_classification`` (5,000 rows, 10 features, 3 classes, seed 0); requests carry 64 rows.

Both are deterministic (fixed seeds), so every server in a run loads byte-identical models.
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

    @property
    def model_dir(self) -> Path:
        return MODELS_DIR / self.name

    @property
    def model_file(self) -> Path:
        return self.model_dir / "model.joblib"


IRIS = Workload("iris", rows=1, features=4)
FOREST = Workload("forest", rows=64, features=10)
WORKLOADS = {w.name: w for w in (IRIS, FOREST)}


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
    from sklearn.datasets import make_classification

    x, _ = make_classification(
        n_samples=workload.rows, n_features=10, n_informative=6, n_classes=3, random_state=1
    )
    return [[round(float(v), 4) for v in row] for row in x]


def ensure(workload: Workload) -> Path:
    """Fit and save the model unless it is already there; return the model file."""
    if not workload.model_file.exists():
        import joblib

        workload.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = workload.model_file.with_suffix(".tmp")
        joblib.dump(_fit(workload.name), tmp)
        tmp.replace(workload.model_file)
    return workload.model_file


if __name__ == "__main__":
    for w in WORKLOADS.values():
        print(ensure(w))
