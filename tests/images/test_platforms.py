"""The scikit-learn image run as each platform runs it, with podman: the platform's command, environment,
mounts and port, and nothing else (no prebake flags). Built once per session (conftest.Builds) from this
checkout. tests/platforms/ proves the same contracts against `prebake serve` without an image.

Each test names the platform document it follows; docs/platforms.md has the table.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prebake.images.engine import Engine, engine_environment
from prebake.images.smoke import free_port

from .conftest import CA, Builds

pytestmark = [pytest.mark.images, pytest.mark.slow]

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"
ROWS = [[0.0, 0.0], [2.0, 2.0]]
ANSWERS = {"one": [0, 1], "two": [1, 0]}
HANDLER = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def predict_fn(data, model):
    return {"labels": model.predict(data).tolist(), "handler": os.path.basename(__file__)}
"""
SCORE = """
import json, os
import joblib

def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model", "iris.joblib"))

def run(raw):
    return {"labels": model.predict(json.loads(raw)["data"]).tolist(), "uid": os.getuid()}
"""
#: What every run here shares: the container's root read-only with a tmpfs /tmp (as Kubernetes' and
#: Azure's hardened pods give it), no capabilities, the port on 127.0.0.1 only.
HARDENED = ["--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=512m", "--cap-drop", "all",
            "--security-opt", "no-new-privileges"]  # fmt: skip


@pytest.fixture(scope="module")
def image(podman: Engine, builds: Builds) -> Iterator[str]:
    """The scikit-learn image built from this checkout, by id (another build may move the tag)."""
    yield builds.get("podman", SKLEARN).image_id


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    """Models and scripts in a folder the image's uid 1000 can read (pytest's tmp folders are 0700)."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    root = Path(f"/tmp/prebake-platforms-{uuid.uuid4().hex[:8]}")
    root.mkdir()
    x = np.array([[0, 0], [2, 2], [0, 1], [2, 1]], dtype=float)
    for name, labels in (("one", [0, 1, 0, 1]), ("two", [1, 0, 1, 0])):
        joblib.dump(LogisticRegression().fit(x, labels), root / f"{name}.joblib")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def output(engine: Engine, *args: str) -> tuple[int, str]:
    """An engine command's exit code and its stdout and stderr together (the server logs to stderr)."""
    result = subprocess.run([engine.path, *args], capture_output=True, text=True, env=engine_environment(),
                            timeout=300, check=False)  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def _readable(path: Path) -> None:
    subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)


class Container:
    """One `podman run --detach` of the image, stopped and removed on exit; its log on failure."""

    def __init__(self, engine: Engine, args: list[str], ready: str, port: int) -> None:
        self.engine, self.args, self.ready, self.port = engine, args, ready, port
        self.name = f"prebake-platform-{uuid.uuid4().hex[:10]}"
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Container:
        try:
            self.engine.run("run", "--detach", "--name", self.name, *self.args)
        except Exception:
            self.__exit__()  # a container created but not started is removed too
            raise
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status, _ = http("GET", f"{self.url}{self.ready}")
            if status == 200:
                return self
            if self.state() != "running":
                break
            time.sleep(0.3)
        logs = self.logs()
        self.__exit__()
        raise AssertionError(f"{self.ready} never answered 200:\n{logs}")

    def state(self) -> str:
        return self.engine.run("inspect", "--format", "{{.State.Status}}", self.name, check=False).strip()

    def logs(self) -> str:
        return output(self.engine, "logs", self.name)[1]

    def exec(self, *command: str) -> str:
        return self.engine.run("exec", self.name, *command).strip()

    def __exit__(self, *exc: object) -> None:
        self.engine.run("rm", "--force", "--time", "5", self.name, check=False)


def http(method: str, url: str, body: Any = None, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": content_type, **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def test_sagemaker_single_model(podman: Engine, image: str, work: Path) -> None:
    """`podman run IMAGE serve` with /opt/ml/model mounted read-only answers /ping and /invocations (JSON and CSV) on 8080, and a handler script named by SAGEMAKER_PROGRAM runs.

    Contract: "Use Your Own Inference Code with Hosting Services" (docs.aws.amazon.com/sagemaker/latest/dg/
    your-algorithms-inference-code.html): `docker run image serve`, the model in /opt/ml/model, port 8080;
    SAGEMAKER_PROGRAM/SAGEMAKER_SUBMIT_DIRECTORY as the SageMaker SDK sets them for
    SKLearnModel(entry_point="inference.py", source_dir=...): /opt/ml/model/code.
    """
    model = work / "sagemaker-model"
    (model / "code").mkdir(parents=True)
    shutil.copy(work / "one.joblib", model / "model.joblib")
    (model / "code" / "my_inference.py").write_text(HANDLER)
    _readable(model)
    port = free_port()
    base = [*HARDENED, "--publish", f"127.0.0.1:{port}:8080", "--env", "PREBAKE_ALLOW_PICKLE=1",
            "--volume", f"{model}:/opt/ml/model:ro"]  # fmt: skip
    plain = work / "sagemaker-plain"
    plain.mkdir()
    shutil.copy(work / "one.joblib", plain / "model.joblib")
    _readable(plain)
    no_code = [*HARDENED, "--publish", f"127.0.0.1:{port}:8080", "--env", "PREBAKE_ALLOW_PICKLE=1",
               "--volume", f"{plain}:/opt/ml/model:ro"]  # fmt: skip
    with Container(podman, [*no_code, image, "serve"], "/ping", port) as container:
        as_json = http("POST", f"{container.url}/invocations", ROWS)
        as_csv = http(
            "POST", f"{container.url}/invocations", b"0,0\n2,2\n", "text/csv", {"Accept": "text/csv"}
        )
    assert as_json == (200, ANSWERS["one"])
    assert as_csv[0] == 200 and str(as_csv[1]).split() == ["0", "1"]
    program = [
        "--env",
        "SAGEMAKER_PROGRAM=my_inference.py",
        "--env",
        "SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code",
    ]
    with Container(podman, [*base, *program, image, "serve"], "/ping", port) as container:
        handled = http("POST", f"{container.url}/invocations", ROWS)
    assert handled == (200, {"labels": ANSWERS["one"], "handler": "my_inference.py"})
    code, said = output(podman, "run", "--rm", image, "train")
    assert code == 2 and "inference" in said


def test_sagemaker_multi_model(podman: Engine, image: str, work: Path) -> None:
    """With SAGEMAKER_MULTI_MODEL=true, two models loaded by path through POST /models answer each as itself; one unloaded is 404.

    Contract: "Custom Containers Contract for Multi-Model Endpoints" (docs.aws.amazon.com/sagemaker/latest/
    dg/mms-container-apis.html) and "Build Your Own Container for SageMaker Multi-Model Endpoints": models
    under /opt/ml/models/NAME/model, `docker run image serve`, port 8080.
    """
    models = work / "opt-ml-models"
    for name in ("one", "two"):
        (models / name / "model").mkdir(parents=True)
        shutil.copy(work / f"{name}.joblib", models / name / "model" / "model.joblib")
    _readable(models)
    port = free_port()
    args = [*HARDENED, "--publish", f"127.0.0.1:{port}:8080", "--env", "PREBAKE_ALLOW_PICKLE=1",
            "--env", "SAGEMAKER_MULTI_MODEL=true", "--volume", f"{models}:/opt/ml/models:ro", image, "serve"]  # fmt: skip
    with Container(podman, args, "/ping", port) as container:
        for name in ("one", "two"):
            loaded = http(
                "POST", f"{container.url}/models", {"model_name": name, "url": f"/opt/ml/models/{name}/model"}
            )
            assert loaded[0] == 200, loaded
        answers = {n: http("POST", f"{container.url}/models/{n}/invoke", ROWS) for n in ("one", "two")}
        listed = http("GET", f"{container.url}/models")
        unloaded = http("DELETE", f"{container.url}/models/one")
        gone = http("POST", f"{container.url}/models/one/invoke", ROWS)
        still = http("POST", f"{container.url}/models/two/invoke", ROWS)
    assert answers == {"one": (200, ANSWERS["one"]), "two": (200, ANSWERS["two"])}
    assert [m["modelName"] for m in listed[1]["models"]] == ["one", "two"]
    assert unloaded[0] == 200 and gone[0] == 404 and still == (200, ANSWERS["two"])


def test_azure_managed_online_deployment(podman: Engine, image: str, work: Path) -> None:
    """The image with an Azure managed online deployment's layout and variables (code in /var/azureml-app, model in azureml-models/NAME/VERSION) serves score.py on 5001, read-only root, as uid 1000.

    Contract: "Deploy and score a machine learning model by using an online endpoint" and the online
    deployment's model specification (learn.microsoft.com/azure/machine-learning/
    concept-online-deployment-model-specification): AML_APP_ROOT=/var/azureml-app, AZUREML_ENTRY_SCRIPT
    relative to it, AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/NAME/VERSION, port 5001, probes on /.
    """
    app = work / "azure-app"
    (app / "onlinescoring").mkdir(parents=True)
    (app / "onlinescoring" / "score.py").write_text(SCORE)
    # Azure copies the code and mounts the registered model under one folder, /var/azureml-app.
    registered = app / "azureml-models" / "iris" / "2" / "model"
    registered.mkdir(parents=True)
    shutil.copy(work / "one.joblib", registered / "iris.joblib")
    _readable(work)
    port = free_port()
    args = [*HARDENED, "--publish", f"127.0.0.1:{port}:5001", "--user", "1000:1000",
            "--volume", f"{app}:/var/azureml-app:ro",
            "--env", "AML_APP_ROOT=/var/azureml-app", "--env", "AZUREML_ENTRY_SCRIPT=onlinescoring/score.py",
            "--env", "AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/iris/2", image]  # fmt: skip
    with Container(podman, args, "/", port) as container:
        scored = http("POST", f"{container.url}/score", {"data": ROWS})
        uid = container.exec("id", "-u")
        writable = output(podman, "exec", container.name, "touch", "/tmp/../x")
    assert scored == (200, {"labels": ANSWERS["one"], "uid": 1000})
    assert uid == "1000"
    assert writable[0] != 0 and "Read-only file system" in writable[1]


def test_kserve_serving_runtime_args(podman: Engine, image: str, work: Path) -> None:
    """The ServingRuntime's container args, as KServe fills them, serve /mnt/models (one file from the storage initializer) on 8080 under the InferenceService's name.

    Contract: KServe "Serving Runtimes" (kserve.github.io/website/docs/admin-guide/serving-runtime) and its
    own kserve-sklearnserver runtime's args (--model_name={{.Name}} --model_dir=/mnt/models
    --http_port=8080); the storage initializer leaves storageUri's object in /mnt/models.
    """
    from prebake.deploy import kserve
    from prebake.images.catalog import load_catalog

    mnt = work / "kserve-mnt-models"
    mnt.mkdir()
    shutil.copy(work / "two.joblib", mnt / "model.joblib")
    _readable(mnt)
    runtime = kserve.serving_runtime(load_catalog().get(SKLEARN), auto_select=True, allow_pickle=True)
    container_spec = runtime["spec"]["containers"][0]
    args = [a.replace("{{.Name}}", "iris") for a in container_spec["args"]]
    env = [f"{e['name']}={e['value']}" for e in container_spec.get("env", [])]
    port = free_port()
    run = [*HARDENED, "--publish", f"127.0.0.1:{port}:8080", "--user", "1000:1000",
           "--volume", f"{mnt}:/mnt/models:ro", *[x for e in env for x in ("--env", e)], image, *args]  # fmt: skip
    with Container(podman, run, "/v2/health/ready", port) as container:
        v1 = http("POST", f"{container.url}/v1/models/iris:predict", {"instances": ROWS})
    assert v1 == (200, {"predictions": ANSWERS["two"]})


def test_vertex_ai_custom_container(podman: Engine, image: str, work: Path) -> None:
    """The image extended with gcsfs (docs/storage.md) fetches AIP_STORAGE_URI from the GCS emulator and serves AIP_PREDICT_ROUTE and AIP_HEALTH_ROUTE on AIP_HTTP_PORT.

    Contract: Vertex AI "Custom container requirements for inference" (cloud.google.com/vertex-ai/docs/
    predictions/custom-container-requirements): AIP_MODE=PREDICTION, AIP_HTTP_PORT, AIP_HEALTH_ROUTE,
    AIP_PREDICT_ROUTE, AIP_STORAGE_URI=gs://... that the container downloads itself; {"instances"} in,
    {"predictions"} out.
    """
    from tests.storage.stores import GCS

    requirements = work / "gcs.txt"
    requirements.write_text("gcsfs==2026.10.1\n")
    tag = f"localhost/prebake-platforms-gcs:{uuid.uuid4().hex[:8]}"
    extended = subprocess.run(
        [sys.executable, "-m", "prebake", "extend", SKLEARN, "--from", image, "-r", str(requirements),
         "-t", tag, "--no-test", *(["--ca-bundle", str(CA)] if CA else [])],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert extended.returncode == 0, extended.stderr
    (work / "gcs-emulator").mkdir()
    store = GCS(work / "gcs-emulator")
    try:
        folder = f"vertex-{uuid.uuid4().hex[:8]}/model"
        store.put(f"{folder}/model.joblib", (work / "one.joblib").read_bytes())
        port = free_port()
        health, predict = (
            "/v1/endpoints/1/deployedModels/2/health",
            "/v1/endpoints/1/deployedModels/2:predict",
        )
        # The host's network, so the container reaches the emulator on 127.0.0.1 as Vertex's reaches GCS.
        args = [*HARDENED, "--network", "host", "--env", "PREBAKE_ALLOW_PICKLE=1",
                "--env", "AIP_MODE=PREDICTION", "--env", f"AIP_HTTP_PORT={port}",
                "--env", f"AIP_HEALTH_ROUTE={health}", "--env", f"AIP_PREDICT_ROUTE={predict}",
                "--env", f"AIP_STORAGE_URI={store.uri(folder)}", "--env", f"STORAGE_EMULATOR_HOST={store.endpoint}",
                tag]  # fmt: skip
        with Container(podman, args, health, port) as container:
            answer = http("POST", f"{container.url}{predict}", {"instances": ROWS})
            logs = container.logs()
        assert answer == (200, {"predictions": ANSWERS["one"]})
        assert store.uri(folder) in logs
    finally:
        store.stop()
        podman.run("rmi", "--force", tag, check=False)
