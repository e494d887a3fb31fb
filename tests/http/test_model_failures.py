"""A model that cannot be loaded fails alone: the others serve, it answers 503 with its reason, it can be
loaded again once fixed; a server none of whose models loads exits 3 saying why."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from prebake.testing import ServerProcess

pytest.importorskip("prebake.runtimes.sklearn", reason="the sklearn runtime is needed for the iris model")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, iris: tuple[Path, Any, np.ndarray]) -> Path:
    root = tmp_path_factory.mktemp("repository")
    for name in ("good", "broken"):
        (root / name).mkdir()
    shutil.copyfile(iris[0], root / "good" / "model.joblib")
    (root / "broken" / "model.joblib").write_bytes(b"this is not a joblib file")
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with ServerProcess(["--model-repository", str(repository)]) as process:
        yield process


def _infer(server: ServerProcess, model: str, rows: np.ndarray) -> httpx.Response:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json={"inputs": [tensor]}, timeout=30)


def test_the_others_serve_and_the_failed_one_says_why(
    server: ServerProcess, iris: tuple[Path, Any, np.ndarray]
) -> None:
    _, model, x = iris
    assert httpx.get(server.url + "/v2/health/ready", timeout=10).status_code == 200
    good = _infer(server, "good", x)
    assert good.status_code == 200
    assert good.json()["outputs"][0]["data"] == model.predict(x).tolist()
    broken = _infer(server, "broken", x)
    assert broken.status_code == 503
    assert "not ready (failed: " in broken.json()["error"] and "model.joblib" in broken.json()["error"]
    assert httpx.get(server.url + "/v2/models/broken/ready", timeout=10).status_code == 503
    index = {m["name"]: m for m in httpx.post(server.url + "/v2/repository/index", timeout=10).json()}
    assert index["good"]["state"] == "READY"
    assert index["broken"]["state"] == "FAILED" and index["broken"]["reason"]
    lines = [line for line in server.logs().splitlines() if "model 'broken' failed to load" in line]
    assert len(lines) == 1 and "ERROR" in lines[0] and "the other models serve" in lines[0]


def test_a_fixed_model_loads_through_the_repository_api(
    server: ServerProcess, repository: Path, iris: tuple[Path, Any, np.ndarray]
) -> None:
    _, model, x = iris
    shutil.copyfile(iris[0], repository / "broken" / "model.joblib")
    assert httpx.post(server.url + "/v2/repository/models/broken/load", timeout=60).status_code == 200
    fixed = _infer(server, "broken", x)
    assert fixed.status_code == 200 and fixed.json()["outputs"][0]["data"] == model.predict(x).tolist()


def test_no_model_loading_exits_3_naming_each(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.joblib").write_bytes(b"not a model")
    result = subprocess.run(
        [sys.executable, "-m", "prebake", "serve", "--model-repository", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "no model could be loaded: a: " in result.stderr and "; b: " in result.stderr
