"""SageMaker multi-model endpoints, with the real server process.

"Custom Containers Contract for Multi-Model Endpoints" (docs.aws.amazon.com/sagemaker/latest/dg/
mms-container-apis.html): with SAGEMAKER_MULTI_MODEL=true the container serves POST /models
{"model_name", "url"} (409 when loaded, 507 when it cannot fit), GET /models (paged: nextPageToken),
GET /models/NAME, DELETE /models/NAME and POST /models/NAME/invoke (404 for a model not loaded); the
TargetModel arrives as X-Amzn-SageMaker-Target-Model. "Build Your Own Container for SageMaker
Multi-Model Endpoints" (.../build-multi-model-build-container.html): models are downloaded to
/opt/ml/models/NAME/model and the container runs as `IMAGE serve`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess

from .conftest import ANSWERS, ROWS, free_port, platform_server


def _url(root: Path, name: str, source: Path) -> str:
    """The folder SageMaker downloads a model into: /opt/ml/models/NAME/model."""
    folder = root / name / "model"
    folder.mkdir(parents=True)
    shutil.copy(source, folder / "model.joblib")
    return str(folder)


def _start(extra: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    env = {"SAGEMAKER_MULTI_MODEL": "true", "SAGEMAKER_BIND_TO_PORT": str(port), **(extra or {})}
    return platform_server(["serve"], env=env, port=port, ready_path="/ping")


@pytest.fixture
def mme() -> Iterator[ServerProcess]:
    with _start() as server:
        yield server


def test_load_two_invoke_each_unload_one(mme: ServerProcess, tmp_path: Path, models: dict[str, Path]) -> None:
    """Up with no model; two loaded by path answer as themselves; one unloaded is gone (404) and the other still answers."""
    with httpx.Client(base_url=mme.url, timeout=30) as http:
        assert http.get("/ping").status_code == 200
        for name in ("one", "two"):
            loaded = http.post(
                "/models", json={"model_name": name, "url": _url(tmp_path, name, models[name])}
            )
            assert loaded.status_code == 200, loaded.text
        listed = http.get("/models").json()["models"]
        assert [m["modelName"] for m in listed] == ["one", "two"]
        assert http.get("/models/two").json() == {
            "modelName": "two",
            "modelUrl": str(tmp_path / "two" / "model"),
        }
        for name in ("one", "two"):
            answer = http.post(
                f"/models/{name}/invoke",
                json=ROWS,
                headers={"X-Amzn-SageMaker-Target-Model": f"{name}.tar.gz"},
            )
            assert answer.json() == ANSWERS[name]
        csv = http.post("/models/two/invoke", content="0,0\n", headers={"content-type": "text/csv"})
        assert csv.json() == ANSWERS["two"][:1]
        assert http.delete("/models/one").status_code == 200
        assert http.post("/models/one/invoke", json=ROWS).status_code == 404
        assert http.get("/models/one").status_code == 404
        assert http.delete("/models/one").status_code == 404
        assert [m["modelName"] for m in http.get("/models").json()["models"]] == ["two"]
        assert http.post("/models/two/invoke", json=ROWS).json() == ANSWERS["two"]


def test_statuses_the_contract_names(mme: ServerProcess, tmp_path: Path, models: dict[str, Path]) -> None:
    """409 for a name already loaded, 404 for a url that does not exist, 400 for a body without model_name/url; the server keeps serving."""
    url = _url(tmp_path, "one", models["one"])
    with httpx.Client(base_url=mme.url, timeout=30) as http:
        assert http.post("/models", json={"model_name": "one", "url": url}).status_code == 200
        again = http.post("/models", json={"model_name": "one", "url": url})
        assert again.status_code == 409 and "already loaded" in again.json()["message"]
        missing = http.post("/models", json={"model_name": "x", "url": str(tmp_path / "nowhere")})
        assert missing.status_code == 404
        assert http.post("/models", json={"url": url}).status_code == 400
        assert http.post("/models/one/invoke", json=ROWS).json() == ANSWERS["one"]


def test_list_pages(mme: ServerProcess, tmp_path: Path, models: dict[str, Path]) -> None:
    """GET /models?limit=1 pages through with nextPageToken, as SageMaker's list call does."""
    with httpx.Client(base_url=mme.url, timeout=30) as http:
        for name in ("one", "two"):
            http.post("/models", json={"model_name": name, "url": _url(tmp_path, name, models[name])})
        first = http.get("/models", params={"limit": 1}).json()
        second = http.get("/models", params={"limit": 1, "next_page_token": first["nextPageToken"]}).json()
    assert [m["modelName"] for m in first["models"] + second["models"]] == ["one", "two"]
    assert "nextPageToken" not in second


def test_least_recently_used_is_unloaded_and_507_when_it_cannot_fit(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    """With room for two models, loading a third unloads the least recently used; a model bigger than all the room is 507."""
    size = models["one"].stat().st_size
    room = str(int(size * 2.5))  # two fit, three do not
    with (
        _start({"PREBAKE_MULTI_MODEL_MEMORY": room}) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        for name, source in (("a", models["one"]), ("b", models["two"])):
            assert (
                http.post(
                    "/models", json={"model_name": name, "url": _url(tmp_path, name, source)}
                ).status_code
                == 200
            )
        assert http.post("/models/a/invoke", json=ROWS).status_code == 200  # a is now the most recently used
        loaded = http.post("/models", json={"model_name": "c", "url": _url(tmp_path, "c", models["one"])})
        assert loaded.status_code == 200
        assert [m["modelName"] for m in http.get("/models").json()["models"]] == ["a", "c"]
        assert http.post("/models/b/invoke", json=ROWS).status_code == 404
        big = tmp_path / "big" / "model"
        big.mkdir(parents=True)
        shutil.copy(models["one"], big / "model.joblib")
        (big / "weights.bin").write_bytes(b"\0" * (int(room) + 1))
        too_big = http.post("/models", json={"model_name": "big", "url": str(big)})
        assert too_big.status_code == 507, too_big.text
        assert http.post("/models/c/invoke", json=ROWS).json() == ANSWERS["one"]


def test_every_worker_serves_what_one_loaded(tmp_path: Path, models: dict[str, Path]) -> None:
    """With SAGEMAKER_MODEL_SERVER_WORKERS=2, a model loaded through one worker answers on every connection, and once unloaded on none."""
    with _start({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) as server:
        url = _url(tmp_path, "one", models["one"])
        # Answered once every worker has loaded it (each imports scikit-learn: seconds here).
        loaded = httpx.post(f"{server.url}/models", json={"model_name": "one", "url": url}, timeout=120)
        assert loaded.status_code == 200
        # A new connection each time: the kernel spreads them over both workers.
        answers = [httpx.post(f"{server.url}/models/one/invoke", json=ROWS).status_code for _ in range(12)]
        assert httpx.delete(f"{server.url}/models/one").status_code == 200
        gone = [httpx.post(f"{server.url}/models/one/invoke", json=ROWS).status_code for _ in range(12)]
    assert answers == [200] * 12
    assert gone == [404] * 12
