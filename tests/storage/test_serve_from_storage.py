"""`prebake serve URI` against real local storage services: S3 (moto), GCS (gcp-storage-emulator), Azure Blob
(Azurite) and an HTTP server. Each proves one promise of the cache with the service's own request log:
fetched once, reused with no download, fetched again when the object changes, never served half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess

from .conftest import ANSWERS, ROWS, Stores
from .stores import AWS_SECRET, S3, Azure, Store, Web

pytestmark = pytest.mark.slow  # each test starts storage services and servers

ALL = ("s3", "gs", "az", "http")
CLOUDS = ("s3", "gs", "az")  # http(s) names one file: no folders, no repositories


def _env(store: Store, cache: Path, **more: str) -> dict[str, str]:
    return {**store.env(), "PREBAKE_CACHE_DIR": str(cache), "PREBAKE_ALLOW_PICKLE": "1", **more}


def _prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _predict(server: ServerProcess, name: str) -> list[int]:
    body = {"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32", "data": sum(ROWS, [])}]}
    response = httpx.post(f"{server.url}/v2/models/{name}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return [int(v) for v in response.json()["outputs"][0]["data"]]


def _serve_fails(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `prebake serve` expecting it to stop before serving: its exit code and all it printed."""
    completed = subprocess.run(
        [sys.executable, "-m", "prebake", "serve", *args, "--host", "127.0.0.1", "--port", "0"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120, check=False,
    )  # fmt: skip
    return completed.returncode, completed.stdout + completed.stderr


def _versions(cache: Path) -> list[Path]:
    """Complete copies in the cache."""
    return sorted(cache.glob("models/*/*/prebake-source.json"))


def _assert_nothing_partial(cache: Path) -> None:
    """Every folder in every URI's entry is a complete copy (the lock files in models/.locks aside)."""
    entries = [p for p in cache.glob("models/*") if p.name != ".locks"]
    leftovers = [p for e in entries for p in e.iterdir() if not (p / "prebake-source.json").is_file()]
    assert leftovers == [], f"partial downloads left in the cache: {leftovers}"


@pytest.mark.parametrize("scheme", ALL)
def test_a_model_file_is_fetched_once_reused_then_fetched_again_when_it_changes(
    scheme: str, stores: Stores, cache: Path, models: dict[str, bytes]
) -> None:
    """One download for two starts; a third start after the object changed downloads it again and serves it."""
    store = stores[scheme]
    key = f"{_prefix()}/flowers.joblib"
    store.put(key, models["one"])
    env = _env(store, cache)
    with ServerProcess([store.uri(key)], env=env) as server:
        assert _predict(server, "flowers") == ANSWERS["one"]
        assert "fetched 1 file" in server.logs()
    assert store.downloads(key) == 1
    with ServerProcess([store.uri(key)], env=env) as server:
        assert _predict(server, "flowers") == ANSWERS["one"]
        assert "unchanged in storage, serving the cached copy" in server.logs()
        second_logs = server.logs()
    assert store.downloads(key) == 1, "the second start downloaded the model again"
    store.put(key, models["two"])
    with ServerProcess([store.uri(key)], env=env) as server:
        assert _predict(server, "flowers") == ANSWERS["two"]
    assert store.downloads(key) == 2
    assert len(_versions(cache)) == 2  # the new copy beside the one before it
    assert AWS_SECRET not in second_logs and AWS_SECRET not in server.logs()


@pytest.mark.parametrize("scheme", CLOUDS)
def test_a_model_folder_is_served_with_its_settings(
    scheme: str, stores: Stores, cache: Path, models: dict[str, bytes]
) -> None:
    """A prefix holding model.joblib and model-settings.json is fetched whole; the settings name the model."""
    store = stores[scheme]
    folder = f"{_prefix()}/iris-v3"
    store.put(f"{folder}/model.joblib", models["two"])
    store.put(f"{folder}/model-settings.json", json.dumps({"name": "flowers", "version": "3"}).encode())
    with ServerProcess([store.uri(folder) + "/"], env=_env(store, cache)) as server:
        assert _predict(server, "flowers") == ANSWERS["two"]
        assert "fetched 2 files" in server.logs()
        metadata = httpx.get(f"{server.url}/v2/models/flowers", timeout=10).json()
        assert metadata["versions"] == ["3"]


@pytest.mark.parametrize("scheme", CLOUDS)
def test_a_model_repository_uri(scheme: str, stores: Stores, cache: Path, models: dict[str, bytes]) -> None:
    """--model-repository URI serves every model under the prefix: a file and a folder."""
    store = stores[scheme]
    repository = f"{_prefix()}/repo"
    store.put(f"{repository}/alpha.joblib", models["one"])
    store.put(f"{repository}/beta/model.joblib", models["two"])
    with ServerProcess(["--model-repository", store.uri(repository)], env=_env(store, cache)) as server:
        assert _predict(server, "alpha") == ANSWERS["one"]
        assert _predict(server, "beta") == ANSWERS["two"]


def test_vertex_storage_uri_is_fetched(stores: Stores, cache: Path, models: dict[str, bytes]) -> None:
    """AIP_STORAGE_URI=gs://... with nothing else named: fetched at start and served, as Vertex AI expects."""
    store = stores["gs"]
    folder = f"{_prefix()}/vertex-model"
    store.put(f"{folder}/model.joblib", models["one"])
    with ServerProcess([], env=_env(store, cache, AIP_STORAGE_URI=store.uri(folder))) as server:
        assert _predict(server, "vertex-model") == ANSWERS["one"]


@pytest.mark.parametrize("scheme", ALL)
def test_concurrent_starts_share_one_download(scheme: str, stores: Stores, cache: Path) -> None:
    """Four fetches started at once on an empty cache: one download, all four get the same intact copy."""
    store = stores[scheme]
    key = f"{_prefix()}/big.bin"
    data = os.urandom(6 * 1024 * 1024)
    store.put(key, data)
    env = {**os.environ, **_env(store, cache)}
    fetches = [
        subprocess.Popen(
            [sys.executable, "-m", "prebake.storage", store.uri(key)], stdout=subprocess.PIPE, env=env
        )
        for _ in range(4)
    ]
    answers = []
    for process in fetches:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, out
        answers.append(json.loads(out)["fetched"][0])
    assert len({answer["path"] for answer in answers}) == 1
    assert sorted(answer["cached"] for answer in answers) == [False, True, True, True]
    assert hashlib.sha256(Path(answers[0]["path"]).read_bytes()).digest() == hashlib.sha256(data).digest()
    assert store.downloads(key) == 1
    assert len(_versions(cache)) == 1
    _assert_nothing_partial(cache)


def test_a_download_killed_half_way_is_never_served(stores: Stores, cache: Path) -> None:
    """SIGKILL mid-download leaves no copy to serve; the next start cleans the scratch and fetches whole."""
    web = stores["http"]
    assert isinstance(web, Web)
    key = f"stall/{_prefix()}.bin"
    data = os.urandom(2 * 1024 * 1024)
    web.put(key, data)
    env = {**os.environ, **_env(web, cache)}
    process = subprocess.Popen([sys.executable, "-m", "prebake.storage", web.uri(key)], env=env)
    try:
        assert web.stalled.wait(30), "the download never started"
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size for p in cache.glob("models/*/.tmp-*/*") if p.is_file()):
            assert time.monotonic() < deadline, "no partial file appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        web.release.set()
    assert _versions(cache) == []  # half a model is there, in scratch, and nothing points at it
    completed = subprocess.run([sys.executable, "-m", "prebake.storage", web.uri(key)], capture_output=True,
                               text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stdout
    path = Path(json.loads(completed.stdout)["fetched"][0]["path"])
    assert path.read_bytes() == data
    _assert_nothing_partial(cache)


def test_a_download_cut_short_fails_and_leaves_nothing(stores: Stores, cache: Path) -> None:
    """A connection closed before Content-Length bytes: exit 2, the URI named, no copy in the cache."""
    web = stores["http"]
    key = f"cut/{_prefix()}.joblib"
    web.put(key, os.urandom(300_000))
    code, output = _serve_fails([web.uri(key)], _env(web, cache))
    assert code == 2, output
    assert web.uri(key) in output and "start again" in output
    assert _versions(cache) == []
    _assert_nothing_partial(cache)


@pytest.mark.parametrize("scheme", ALL)
def test_a_missing_object_exits_2_naming_it(scheme: str, stores: Stores, cache: Path) -> None:
    """No such object: exit 2 before the server starts, the message names the URI, the cache holds nothing."""
    store = stores[scheme]
    uri = store.uri(f"{_prefix()}/absent.joblib")
    code, output = _serve_fails([uri], _env(store, cache))
    assert code == 2, output
    assert f"prebake serve: {uri}: no such object" in output
    assert _versions(cache) == []
    _assert_nothing_partial(cache)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("s3://", "is not a bucket name"),
        ("ftp://files.example/model.joblib", "unknown storage scheme 'ftp'"),
        ("s3://models/../etc/model.joblib", "'.' and '..' are not allowed"),
        ("https://models.example", "name a file on the server"),
        ("s3://key:secret-in-uri@models/m.joblib", "credentials do not go in"),
    ],
)
def test_a_bad_uri_exits_2_naming_it(uri: str, says: str, tmp_path: Path) -> None:
    """A malformed URI: exit 2, what is wrong, and the URI (without any credential in it)."""
    code, output = _serve_fails([uri], {"PREBAKE_CACHE_DIR": str(tmp_path)})
    assert code == 2, output
    assert says in output
    assert "secret-in-uri" not in output
    assert _versions(tmp_path) == []


def test_refused_s3_credentials_exit_2_and_are_never_printed(tmp_path: Path, cache: Path) -> None:
    """moto with IAM checks on refuses an unknown key: exit 2, "access refused", the URI, and no secret."""
    refusing = S3(tmp_path, auth=True)
    try:
        uri = "s3://models/iris.joblib"
        code, output = _serve_fails([uri], _env(refusing, cache))
    finally:
        refusing.stop()
    assert code == 2, output
    assert f"{uri}: access refused" in output and "AWS_PROFILE" in output
    assert AWS_SECRET not in output
    assert AWS_SECRET not in (tmp_path / "moto.log").read_text()
    assert _versions(cache) == []


def test_refused_azure_key_exit_2_and_is_never_printed(
    stores: Stores, cache: Path, models: dict[str, bytes]
) -> None:
    """Azurite refuses a wrong account key: exit 2, the URI named, the key printed nowhere."""
    azure = stores["az"]
    assert isinstance(azure, Azure)
    key = f"{_prefix()}/iris.joblib"
    azure.put(key, models["one"])
    wrong = "V3JvbmdQcmViYWtlS2V5Rm9yVGVzdGluZ09ubHkxMjM0NTY3ODkwYWJjZGVmZ2hpams="
    env = {**_env(azure, cache), "AZURE_STORAGE_CONNECTION_STRING": azure.connection_string(wrong)}
    code, output = _serve_fails([azure.uri(key)], env)
    assert code == 2, output
    assert f"{azure.uri(key)}: access refused" in output
    assert wrong not in output and wrong[:20] not in output
    assert _versions(cache) == []


def test_a_sas_token_in_an_https_url_is_used_and_never_printed(
    stores: Stores, cache: Path, models: dict[str, bytes]
) -> None:
    """A signed URL's query string is a credential: it fetches the file, and no log line shows it; with a
    wrong signature the start fails with exit 2, naming the URL without its query."""
    web = stores["http"]
    assert isinstance(web, Web)
    key = f"private/{_prefix()}/flowers.joblib"
    web.put(key, models["one"])
    signed = f"{web.uri(key)}?{web.token}"
    with ServerProcess([signed], env=_env(web, cache)) as server:
        assert _predict(server, "flowers") == ANSWERS["one"]
        assert "prebake-sas-secret" not in server.logs()
        assert web.uri(key) in server.logs()
    code, output = _serve_fails(
        [f"{web.uri(key)}?sv=2024&sig=wrong-signature-1234"], _env(web, tmp := cache.parent / "c2")
    )
    assert code == 2, output
    assert f"{web.uri(key)}: access refused" in output
    assert "wrong-signature-1234" not in output
    assert _versions(tmp) == []


def test_an_entry_scripts_model_dir_may_be_a_uri(
    stores: Stores, cache: Path, models: dict[str, bytes], tmp_path: Path
) -> None:
    """--entry-script score.py --model-dir s3://...: score.py finds the fetched folder in AZUREML_MODEL_DIR."""
    store = stores["s3"]
    folder = f"{_prefix()}/azure-model"
    store.put(f"{folder}/model.joblib", models["two"])
    script = tmp_path / "score.py"
    script.write_text(
        "import json, os, joblib\n"
        "def init():\n    global model\n"
        "    model = joblib.load(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'model.joblib'))\n"
        "def run(raw):\n    return model.predict(json.loads(raw)['data']).tolist()\n"
    )
    args = ["--entry-script", str(script), "--model-dir", store.uri(folder)]
    with ServerProcess(args, env=_env(store, cache), ready_path="/") as server:
        response = httpx.post(f"{server.url}/score", json={"data": ROWS}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == ANSWERS["two"]
