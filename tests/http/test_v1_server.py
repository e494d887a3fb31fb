"""KServe V1, SageMaker and Vertex AI JSON against a real `prebake serve iris.joblib` process:
predictions must equal the model's own."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from prebake.testing import ServerProcess

pytest.importorskip("prebake.runtimes.sklearn", reason="the sklearn runtime is not on this branch yet")


@pytest.fixture(scope="module")
def server(iris: tuple[Path, Any, np.ndarray]) -> Iterator[ServerProcess]:
    with ServerProcess([str(iris[0])]) as process:
        yield process


@pytest.fixture(scope="module")
def name(server: ServerProcess) -> str:
    (entry,) = httpx.post(server.url + "/v2/repository/index").json()
    return str(entry["name"])


def test_v1_list_ready_predict(server: ServerProcess, name: str, iris: tuple[Path, Any, np.ndarray]) -> None:
    """V1 lists the model, says it is ready, and its predictions equal model.predict."""
    _, model, x = iris
    # One path for two protocols: KServe V1 clients read "models", OpenAI clients "object" and "data".
    listing = httpx.get(server.url + "/v1/models").json()
    assert listing["models"] == [name]
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == [name]
    assert httpx.get(f"{server.url}/v1/models/{name}").json() == {"name": name, "ready": True}
    response = httpx.post(f"{server.url}/v1/models/{name}:predict", json={"instances": x.tolist()})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": model.predict(x).tolist()}


def test_sagemaker_csv_and_npy(server: ServerProcess, iris: tuple[Path, Any, np.ndarray]) -> None:
    """SageMaker /invocations takes CSV and .npy and answers JSON and .npy equal to model.predict."""
    _, model, x = iris
    csv_body = "\n".join(",".join(str(v) for v in row) for row in x.tolist()).encode()
    response = httpx.post(server.url + "/invocations", content=csv_body, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == model.predict(x).tolist()
    buffer = io.BytesIO()
    np.save(buffer, x)
    response = httpx.post(
        server.url + "/invocations",
        content=buffer.getvalue(),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert np.load(io.BytesIO(response.content)).tolist() == model.predict(x).tolist()


def test_vertex_predict(server: ServerProcess, iris: tuple[Path, Any, np.ndarray]) -> None:
    """Vertex AI's default predict route answers one prediction per instance, equal to model.predict."""
    _, model, x = iris
    assert httpx.get(server.url + "/health").status_code == 200
    response = httpx.post(server.url + "/predict", json={"instances": x.tolist(), "parameters": {}})
    assert response.json() == {"predictions": model.predict(x).tolist()}


def test_bad_rows_are_400(server: ServerProcess, name: str) -> None:
    """Rows of the wrong width reach the model's own check and come back as a 4xx with a message."""
    response = httpx.post(f"{server.url}/v1/models/{name}:predict", json={"instances": [[1, 2]]})
    assert 400 <= response.status_code < 500 and response.json()["error"]
