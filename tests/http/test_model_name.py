"""--model-name / PREBAKE_MODEL_NAME: a single model served under the name a platform gives it."""

from __future__ import annotations

from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from prebake.testing import ServerProcess


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), folder / "model.joblib")
    return folder


def test_model_served_under_the_given_name(model_dir: Path) -> None:
    """PREBAKE_MODEL_NAME renames the one model: V2 and V1 answer under it, the folder name is gone."""
    with ServerProcess([str(model_dir)], env={"PREBAKE_MODEL_NAME": "flowers"}) as server:
        assert httpx.get(server.url + "/v2/models/flowers/ready").status_code == 200
        body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        assert httpx.post(server.url + "/v1/models/flowers:predict", json=body).json() == {"predictions": [0]}
        assert httpx.get(server.url + f"/v2/models/{model_dir.name}/ready").status_code == 404


def test_model_name_with_several_models_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """--model-name with two models exits 3 (nothing served) and says to use settings files instead."""
    other = tmp_path / "other.joblib"
    other.write_bytes((model_dir / "model.joblib").read_bytes())
    server = ServerProcess([str(model_dir), str(other), "--model-name", "x"], wait_ready=False).start()
    assert server.process is not None
    assert server.process.wait(60) != 0
    assert "names one model" in server.logs()
