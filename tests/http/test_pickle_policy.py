"""Pickled models are refused unless the user allows them; safe formats need no permission."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from prebake.testing import ServerProcess


@pytest.fixture(scope="module")
def pickled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pickled") / "iris.joblib"
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), path)
    return path


def _env_without_permission() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "PREBAKE_ALLOW_PICKLE"}


def test_pickle_refused_by_default_with_what_to_do(pickled: Path) -> None:
    """With no permission the server does not load a joblib file: exit 3, a message naming the three ways to allow it."""
    server = ServerProcess([str(pickled)], wait_ready=False)
    server.env = _env_without_permission()
    server.start()
    assert server.process is not None
    assert server.process.wait(60) == 3
    logs = server.logs()
    assert "--allow-pickle" in logs and "PREBAKE_ALLOW_PICKLE=1" in logs and "skops" in logs


def test_allow_pickle_flag_loads_it(pickled: Path) -> None:
    """--allow-pickle loads the same file and it predicts."""
    server = ServerProcess([str(pickled), "--allow-pickle"])
    server.env = _env_without_permission()
    with server:
        body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        assert httpx.post(server.url + "/v1/models/iris:predict", json=body).json() == {"predictions": [0]}


def test_settings_file_cannot_allow_what_the_operator_refuses(pickled: Path, tmp_path: Path) -> None:
    """ "allow_pickle": true in a model's own settings file does not load a pickle the operator did not
    allow, and "allow_pickle": false refuses one the operator did: the file may only narrow the policy (a
    model folder is not trusted to switch code loading on)."""
    folder = tmp_path / "iris"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(pickled.read_bytes())
    (folder / "model-settings.json").write_text('{"name": "iris", "allow_pickle": true}')
    server = ServerProcess([str(folder)], wait_ready=False)
    server.env = _env_without_permission()
    server.start()
    assert server.process is not None
    assert server.process.wait(60) == 3
    assert "--allow-pickle" in server.logs()
    server.stop()
    (folder / "model-settings.json").write_text('{"name": "iris", "allow_pickle": false}')
    server = ServerProcess([str(folder), "--allow-pickle"], wait_ready=False)
    server.env = _env_without_permission()
    server.start()
    assert server.process is not None and server.process.wait(60) == 3
    server.stop()
