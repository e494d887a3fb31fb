"""Vertex AI's contract for a custom serving container, with the real server process.

"Custom container requirements for inference" (cloud.google.com/vertex-ai/docs/predictions/
custom-container-requirements): Vertex sets AIP_MODE=PREDICTION, AIP_HTTP_PORT (8080 unless the
model's containerSpec.ports says otherwise), AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE
(/v1/endpoints/ENDPOINT/deployedModels/DEPLOYED_MODEL:predict) and AIP_STORAGE_URI (a gs:// URI of the
artifacts, which the container fetches itself); a predict request is {"instances": [...],
"parameters": ...} answered by {"predictions": [...]}, and a request body may be at most 1.5 MB.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prebake.config import load_config
from prebake.errors import ConfigError
from tests.storage.stores import GCS

from .conftest import ANSWERS, ROWS, free_port, platform_server

HEALTH = "/v1/endpoints/123/deployedModels/456/health"
PREDICT = "/v1/endpoints/123/deployedModels/456:predict"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCS]:
    """The GCS emulator the storage tests use (gcp-storage-emulator), started for this module."""
    store = GCS(tmp_path_factory.mktemp("gcs"))
    yield store
    store.stop()


def _vertex_env(port: int, storage_uri: str, cache: Path) -> dict[str, str]:
    return {
        "AIP_MODE": "PREDICTION",
        "AIP_HTTP_PORT": str(port),
        "AIP_HEALTH_ROUTE": HEALTH,
        "AIP_PREDICT_ROUTE": PREDICT,
        "AIP_STORAGE_URI": storage_uri,
        "PREBAKE_CACHE_DIR": str(cache),
    }


def test_model_fetched_from_gcs_served_on_the_aip_routes(
    gcs: GCS, tmp_path: Path, models: dict[str, Path]
) -> None:
    """AIP_STORAGE_URI=gs://... is fetched at start; AIP_HTTP_PORT, AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE serve it; a body over 1.5 MB is served and logged as over Vertex's limit."""
    folder = f"vertex-{uuid.uuid4().hex[:8]}/model"
    gcs.put(f"{folder}/model.joblib", models["one"].read_bytes())
    port = free_port()
    env = {**gcs.env(), **_vertex_env(port, gcs.uri(folder), tmp_path / "cache")}
    with platform_server([], env=env, port=port, ready_path=HEALTH) as server:
        health = httpx.get(f"{server.url}{HEALTH}")
        answer = httpx.post(f"{server.url}{PREDICT}", json={"instances": ROWS, "parameters": {}})
        big_rows = [[0.0, 0.0]] * 120_000  # 1.2 MB of rows, in a body of 1.8 MB
        body = {"instances": big_rows, "padding": "x" * 600_000}
        big = httpx.post(f"{server.url}{PREDICT}", json=body, timeout=60)
        time.sleep(0.2)
        logs = server.logs()
    assert health.status_code == 200
    assert answer.json() == {"predictions": ANSWERS["one"]}
    assert big.status_code == 200 and len(big.json()["predictions"]) == len(big_rows)
    assert "over Vertex AI's 1.5 MB" in logs
    assert gcs.uri(folder) in logs  # the fetch is reported, naming the URI


def test_local_storage_uri_and_port_8080_by_default(models: dict[str, Path], tmp_path: Path) -> None:
    """AIP_STORAGE_URI may be a local path; any AIP_* variable makes 8080 the port when AIP_HTTP_PORT is not set."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(models["two"].read_bytes())
    config = load_config(env={"AIP_MODE": "PREDICTION", "AIP_STORAGE_URI": str(folder)})
    assert config.port == 8080
    assert config.models == (folder,)
    assert load_config(models=["m"], env={"AIP_HTTP_PORT": "9090"}).port == 9090


def test_aip_mode_other_than_prediction_exits_2(models: dict[str, Path]) -> None:
    """An AIP_MODE other than PREDICTION is refused with a message: the image serves predictions only."""
    with pytest.raises(ConfigError, match="AIP_MODE"):
        load_config(models=[models["one"]], env={"AIP_MODE": "TRAINING"})
