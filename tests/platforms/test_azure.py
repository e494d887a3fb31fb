"""Azure ML managed online endpoints, with the real server process.

"Deploy and score a machine learning model by using an online endpoint" and "Online endpoints: how
the deployment finds the model" (learn.microsoft.com/azure/machine-learning/how-to-deploy-online-
endpoints, concept-online-deployment-model-specification): the code is copied to AML_APP_ROOT
(/var/azureml-app), AZUREML_ENTRY_SCRIPT is the scoring script relative to it, and the registered
model is mounted under /var/azureml-app/azureml-models/NAME/VERSION/: AZUREML_MODEL_DIR names that
folder for one model (a registered folder keeps its name inside it: AZUREML_MODEL_DIR/model/...), and
azureml-models itself for several (AZUREML_MODEL_DIR/NAME/VERSION/...). score.py finds the model with
os.getenv("AZUREML_MODEL_DIR"); traffic, liveness and readiness go to port 5001 (GET / for probes).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import httpx
import numpy as np

from .conftest import ANSWERS, ROWS, free_port, platform_server

SCORE = textwrap.dedent(
    """
    import json
    import os

    import joblib

    model = None


    def init():
        global model
        # As Azure's samples do: the registered folder "model" under AZUREML_MODEL_DIR.
        model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model", "iris.joblib"))


    def run(raw_data):
        data = json.loads(raw_data)["data"]
        return {"labels": model.predict(data).tolist(), "model_dir": os.getenv("AZUREML_MODEL_DIR")}
    """
)


def _app(tmp_path: Path) -> Path:
    root = tmp_path / "var" / "azureml-app"
    root.mkdir(parents=True)
    return root


def _register(root: Path, name: str, version: str, source: Path, *, folder: str | None = None) -> Path:
    """A registered model as Azure mounts it: azureml-models/NAME/VERSION/[FOLDER/]FILE."""
    version_dir = root / "azureml-models" / name / version
    target = version_dir / folder if folder else version_dir
    target.mkdir(parents=True)
    shutil.copy(source, target / "iris.joblib")
    return version_dir


def _infer(url: str, name: str) -> list[int]:
    body = {
        "inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": np.ravel(ROWS).tolist()}]
    }
    answer = httpx.post(f"{url}/v2/models/{name}/infer", json=body)
    assert answer.status_code == 200, answer.text
    return [int(v) for v in answer.json()["outputs"][0]["data"]]


def test_entry_script_relative_to_app_root_with_one_model(tmp_path: Path, models: dict[str, Path]) -> None:
    """AML_APP_ROOT + AZUREML_ENTRY_SCRIPT (relative) + AZUREML_MODEL_DIR=azureml-models/NAME/VERSION: score.py's init() finds its model, /score answers on 5001-style env alone."""
    root = _app(tmp_path)
    (root / "onlinescoring").mkdir()
    (root / "onlinescoring" / "score.py").write_text(SCORE)
    model_dir = _register(root, "iris", "3", models["one"], folder="model")
    port = free_port()
    env = {
        "AML_APP_ROOT": str(root),
        "AZUREML_ENTRY_SCRIPT": "onlinescoring/score.py",
        "AZUREML_MODEL_DIR": str(model_dir),
        "PREBAKE_PORT": str(port),
    }
    with platform_server([], env=env, port=port, ready_path="/") as server:
        probe = httpx.get(f"{server.url}/")
        answer = httpx.post(f"{server.url}/score", json={"data": ROWS}).json()
    assert probe.status_code == 200
    assert answer == {"labels": ANSWERS["one"], "model_dir": str(model_dir.resolve())}


def test_one_registered_model_served_without_code(tmp_path: Path, models: dict[str, Path]) -> None:
    """AZUREML_MODEL_DIR=azureml-models/iris/3 holding a registered folder: served with no code as model 'iris', version 3."""
    model_dir = _register(_app(tmp_path), "iris", "3", models["one"], folder="model")
    port = free_port()
    env = {"AZUREML_MODEL_DIR": str(model_dir), "PREBAKE_PORT": str(port)}
    with platform_server([], env=env, port=port, ready_path="/v2/health/ready") as server:
        assert _infer(server.url, "iris") == ANSWERS["one"]
        metadata = httpx.get(f"{server.url}/v2/models/iris").json()
    assert metadata["versions"] == ["3"]


def test_several_registered_models_each_served_by_name(tmp_path: Path, models: dict[str, Path]) -> None:
    """AZUREML_MODEL_DIR=azureml-models with NAME/VERSION folders (a deployment of several models): each served as NAME, its newest version."""
    root = _app(tmp_path)
    _register(root, "first", "1", models["two"])
    _register(root, "first", "2", models["one"])
    _register(root, "second", "7", models["two"], folder="model")
    port = free_port()
    env = {"AZUREML_MODEL_DIR": str(root / "azureml-models"), "PREBAKE_PORT": str(port)}
    with platform_server([], env=env, port=port, ready_path="/v2/health/ready") as server:
        assert _infer(server.url, "first") == ANSWERS["one"]
        assert _infer(server.url, "second") == ANSWERS["two"]
