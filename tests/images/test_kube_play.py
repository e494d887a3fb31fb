"""The generated Kubernetes Deployment, run for real: `prebake deploy k8s` writes it, `podman kube play`
starts its 2 replicas of the scikit-learn image, each pod answers predictions on its own address, and
`podman kube down` removes it.

The model reaches the pods through a hostPath volume and the Azure ML score.py through the generated
ConfigMap, exactly as written. Each pod is reached at its own IP on podman's bridge (a Service needs a
cluster); the score.py returns the pod's hostname so the test proves which replica answered.

Runs in CI (CI=true installs podman when missing), and elsewhere with PREBAKE_IMAGE_TESTS=1 (it builds the
image once per session, shared with the other image tests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prebake.images.catalog import Image, load_catalog
from prebake.images.engine import Engine, EngineFailed
from prebake.images.tinymodels import make_case

from .conftest import Builds

pytestmark = [pytest.mark.images, pytest.mark.slow]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]
READY_TIMEOUT_S = 120.0
# An Azure ML entry script, unchanged in style: it reads AZUREML_MODEL_DIR and answers with the pod's name.
SCORE_PY = """\
import json
import os
import socket
import time

import joblib

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))


def run(raw_data):
    request = json.loads(raw_data)
    time.sleep(request.get("sleep", 0))
    rows = request["data"]
    return {"predictions": model.predict(rows).tolist(), "host": socket.gethostname()}
"""


def _sklearn() -> Image:
    """The catalog's scikit-learn CPU image (whatever its version is today)."""
    return next(image for image in load_catalog().images if image.framework == "sklearn" and not image.gpu)


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def sklearn_image(podman: Engine, builds: Builds) -> str:
    """The scikit-learn image's reference, built once per session (conftest.Builds)."""
    if shutil.which("catatonit") is None:
        # podman kube play builds its pods' pause image from catatonit; without it every pod fails to start.
        message = "podman kube play needs catatonit for its pause image: apt-get install catatonit"
        pytest.fail(message) if _in_ci() else pytest.skip(message)
    image = _sklearn()
    builds.get("podman", image.name)
    return image.reference


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # The pods run as uid 1000 and read the model through a hostPath, so the folder must be readable by
    # others; pytest's own temporary folders are private to root.
    with tempfile.TemporaryDirectory(prefix="prebake-kube-play-") as folder:
        Path(folder).chmod(0o755)
        yield Path(folder)


def _pod_address(podman: Engine, pod: str) -> str:
    infra = podman.run("pod", "inspect", pod, "--format", "{{.InfraContainerID}}").strip()
    record = json.loads(podman.run("container", "inspect", infra))[0]
    networks = record["NetworkSettings"]["Networks"]
    addresses = [network["IPAddress"] for network in networks.values() if network.get("IPAddress")]
    assert addresses, f"pod {pod} has no IP address: {networks}"
    return str(addresses[0])


def _wait_ready(http: httpx.Client, podman: Engine, pod: str, address: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        try:
            if http.get(f"http://{address}:5001/v2/health/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass  # not listening yet
        state = json.loads(podman.run("container", "inspect", f"{pod}-server"))[0]["State"]
        assert state["Status"] == "running", f"{pod} stopped: {state}\n{_logs(podman, pod)}"
        time.sleep(0.2)
    raise AssertionError(f"{pod} not ready after {READY_TIMEOUT_S:.0f} s\n{_logs(podman, pod)}")


def _logs(podman: Engine, pod: str) -> str:
    try:
        return podman.run("logs", "--tail", "20", f"{pod}-server", check=False)
    except EngineFailed:
        return "(no log)"


@pytest.fixture(scope="module")
def deployed(podman: Engine, sklearn_image: str, workdir: Path) -> Iterator[tuple[str, list[float]]]:
    """`prebake deploy k8s` output played with podman; yields (name, expected predictions); always torn down."""
    case = make_case("sklearn", workdir)
    script = workdir / "score.py"
    script.write_text(SCORE_PY, encoding="utf-8")
    name = f"kp-iris-{uuid.uuid4().hex[:8]}"
    output = workdir / "manifests"
    command = [
        sys.executable, "-m", "prebake", "deploy", "k8s", name, "--image", _sklearn().name, "--entry-script", str(script),
        "--model-source", f"hostpath:{case.model_dir}", "--replicas", "2", "--cpu", "500m", "--memory", "1Gi",
        "-o", str(output),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=60)
    manifest = output / f"{name}.yaml"
    try:
        podman.run("kube", "play", str(manifest), timeout=180)
        yield name, case.expected
    finally:
        started = time.monotonic()
        podman.run("kube", "down", str(manifest), check=False, timeout=120)
        print(f"kube down took {time.monotonic() - started:.1f} s")
        # kube down keeps the volume podman made from the ConfigMap; remove it so runs leave nothing behind.
        podman.run("volume", "rm", "--force", f"{name}-code", check=False)


def test_generated_deployment_runs_two_replicas_that_each_predict(
    podman: Engine, sklearn_image: str, deployed: tuple[str, list[float]]
) -> None:
    """Both replicas of the generated Deployment become ready under podman kube play and each returns the right predictions from its own pod."""
    name, expected = deployed
    pods = sorted(podman.run("pod", "ps", "--filter", f"name=^{name}-pod-", "--format", "{{.Name}}").split())
    assert pods == [f"{name}-pod-0", f"{name}-pod-1"]
    answered: dict[str, str] = {}
    with httpx.Client(trust_env=False) as http:
        for pod in pods:
            address = _pod_address(podman, pod)
            seconds = _wait_ready(http, podman, pod, address)
            response = http.post(
                f"http://{address}:5001/score",
                json={
                    "data": [
                        [5.1, 3.5, 1.4, 0.2],
                        [6.2, 2.9, 4.3, 1.3],
                        [7.7, 3.0, 6.1, 2.3],
                        [5.9, 3.0, 5.1, 1.8],
                    ]
                },
                timeout=30,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["predictions"] == expected
            answered[address] = body["host"]
            print(f"{pod} at {address}: ready in {seconds:.1f} s, answered as {body['host']}")
    assert sorted(answered.values()) == pods, f"each replica must answer for itself: {answered}"


def test_pods_run_hardened_as_written(
    podman: Engine, sklearn_image: str, deployed: tuple[str, list[float]]
) -> None:
    """The manifest's hardening holds in the running pod: uid 1000, read-only root, writable /tmp, no capabilities, seccomp on, no token."""
    name, _ = deployed
    container = f"{name}-pod-0-server"
    probe = (
        "id -u; touch /probe 2>/dev/null && echo root-writable || echo root-read-only; "
        "touch /tmp/probe && echo tmp-writable; grep CapEff /proc/1/status; grep '^Seccomp:' /proc/1/status; "
        "ls /var/run/secrets/kubernetes.io 2>/dev/null || echo no-token"
    )
    lines = podman.run("exec", container, "sh", "-c", probe).split("\n")
    assert lines[0] == "1000"
    assert lines[1] == "root-read-only"
    assert lines[2] == "tmp-writable"
    assert lines[3].split() == ["CapEff:", "0000000000000000"]
    assert lines[4].split() == ["Seccomp:", "2"]
    assert lines[5] == "no-token"


def test_request_in_flight_completes_when_the_pod_stops(
    podman: Engine, sklearn_image: str, deployed: tuple[str, list[float]]
) -> None:
    """Stopping a replica (SIGTERM, as on a rollout) lets a request already running finish with its answer, and the server exits 0."""
    name, expected = deployed
    pod = f"{name}-pod-1"
    address = _pod_address(podman, pod)
    outcome: dict[str, object] = {}

    def slow_request() -> None:
        with httpx.Client(trust_env=False) as http:
            try:
                response = http.post(
                    f"http://{address}:5001/score", json={"data": ROWS, "sleep": 3}, timeout=30
                )
                outcome["status"], outcome["body"] = response.status_code, response.json()
            except httpx.HTTPError as error:
                outcome["error"] = repr(error)

    with httpx.Client(trust_env=False) as http:
        _wait_ready(http, podman, pod, address)
    client = threading.Thread(target=slow_request)
    client.start()
    time.sleep(1.0)  # the request is inside run() now
    started = time.monotonic()
    podman.run("stop", "--time", "20", f"{pod}-server", timeout=60)
    stopped_after = time.monotonic() - started
    client.join(timeout=30)
    assert outcome.get("status") == 200, outcome
    assert outcome["body"]["predictions"] == expected  # type: ignore[index]
    state = json.loads(podman.run("container", "inspect", f"{pod}-server"))[0]["State"]
    assert state["ExitCode"] == 0, f"server exited {state['ExitCode']} on SIGTERM\n{_logs(podman, pod)}"
    assert stopped_after < 20, "the server waited for SIGKILL instead of exiting after its drain"
    print(f"{pod} drained its in-flight request and stopped in {stopped_after:.1f} s")


def test_model_baked_into_a_derived_image_serves_without_volumes(
    podman: Engine, sklearn_image: str, workdir: Path
) -> None:
    """A model copied into an image derived from the catalog image (docs/scaling.md's two-line Containerfile) serves with --model-source image and no model volume."""
    context = workdir / "baked"
    case = make_case("sklearn", context)
    (context / "Containerfile").write_text(
        f"FROM {sklearn_image}\nCOPY model/ /var/prebake/model/\n", encoding="utf-8"
    )
    (context / "score.py").write_text(SCORE_PY, encoding="utf-8")
    name = f"kp-baked-{uuid.uuid4().hex[:8]}"
    reference = f"localhost/prebake-test/{name}:1"
    manifest = context / f"{name}.yaml"
    podman.run("build", "--quiet", "-t", reference, str(context), timeout=300)
    try:
        command = [
            sys.executable, "-m", "prebake", "deploy", "k8s", name, "--image", reference,
            "--entry-script", str(context / "score.py"), "--model-source", "image", "--model", "/var/prebake/model",
            "--replicas", "1", "-o", str(context),
        ]  # fmt: skip
        subprocess.run(command, check=True, timeout=60)
        assert "hostPath" not in manifest.read_text() and "persistentVolumeClaim" not in manifest.read_text()
        podman.run("kube", "play", str(manifest), timeout=180)
        pod = f"{name}-pod-0"
        address = _pod_address(podman, pod)
        with httpx.Client(trust_env=False) as http:
            _wait_ready(http, podman, pod, address)
            response = http.post(f"http://{address}:5001/score", json={"data": ROWS}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": case.expected, "host": pod}
    finally:
        podman.run("kube", "down", str(manifest), check=False, timeout=120)
        podman.run("volume", "rm", "--force", f"{name}-code", check=False)
        podman.run("image", "rm", "--force", reference, check=False)


def test_no_code_model_serves_kserve_v1_and_v2_from_a_pod(
    podman: Engine, sklearn_image: str, workdir: Path
) -> None:
    """A Deployment written with --model (no score.py) serves the mounted model file over KServe V1 and Open Inference Protocol V2."""
    case = make_case("sklearn", workdir / "no-code")
    name = f"kp-nocode-{uuid.uuid4().hex[:8]}"
    manifest = workdir / "no-code" / f"{name}.yaml"
    command = [
        sys.executable, "-m", "prebake", "deploy", "k8s", name, "--image", _sklearn().name, "--model", case.model_file, "--allow-pickle",
        "--model-source", f"hostpath:{case.model_dir}", "--replicas", "1", "-o", str(manifest.parent),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=60)
    model = Path(case.model_file).stem
    try:
        podman.run("kube", "play", str(manifest), timeout=180)
        pod = f"{name}-pod-0"
        address = _pod_address(podman, pod)
        with httpx.Client(trust_env=False, base_url=f"http://{address}:5001") as http:
            _wait_ready(http, podman, pod, address)
            v1 = http.post(f"/v1/models/{model}:predict", json={"instances": ROWS}, timeout=30)
            assert v1.status_code == 200, v1.text
            assert v1.json()["predictions"] == case.expected
            flat = [value for row in ROWS for value in row]
            tensor = {"name": "input-0", "shape": [len(ROWS), 4], "datatype": "FP32", "data": flat}
            v2 = http.post(f"/v2/models/{model}/infer", json={"inputs": [tensor]}, timeout=30)
            assert v2.status_code == 200, v2.text
            assert v2.json()["outputs"][0]["data"] == case.expected
    finally:
        podman.run("kube", "down", str(manifest), check=False, timeout=120)


def test_kserve_runtime_container_serves_mnt_models(
    podman: Engine, sklearn_image: str, workdir: Path
) -> None:
    """The ClusterServingRuntime's container, in the pod KServe would make (model at /mnt/models, {{.Name}} filled in), serves V1 on 8080."""
    from prebake.deploy import kserve
    from prebake.deploy.render import dump_all

    case = make_case("sklearn", workdir / "kserve")
    name = f"kp-kserve-{uuid.uuid4().hex[:8]}"
    runtime = kserve.serving_runtime(_sklearn(), auto_select=True, allow_pickle=True)["spec"]
    container = runtime["containers"][0]
    # What KServe does to the runtime's container: fill its templates and mount the downloaded model.
    container["args"] = [arg.replace("{{.Name}}", "iris") for arg in container["args"]]
    container["volumeMounts"].append({"name": f"{name}-model", "mountPath": "/mnt/models", "readOnly": True})
    volumes = [
        *runtime["volumes"],
        {"name": f"{name}-model", "hostPath": {"path": str(case.model_dir), "type": "Directory"}},
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], "volumes": volumes},
    }
    manifest = workdir / "kserve" / f"{name}.yaml"
    manifest.write_text(dump_all([pod]), encoding="utf-8")
    try:
        podman.run("kube", "play", str(manifest), timeout=180)
        address = _pod_address(podman, name)
        base = f"http://{address}:8080"
        with httpx.Client(trust_env=False, base_url=base) as http:
            started = time.monotonic()
            while time.monotonic() - started < READY_TIMEOUT_S:
                try:
                    if http.get("/v2/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise AssertionError(
                    f"runtime pod not ready on 8080\n{podman.run('logs', f'{name}-kserve-container', check=False)}"
                )
            models = http.get("/v1/models", timeout=10).json()["models"]
            assert len(models) == 1, models
            response = http.post(f"/v1/models/{models[0]}:predict", json={"instances": ROWS}, timeout=30)
            assert response.status_code == 200, response.text
            assert response.json()["predictions"] == case.expected
            print(f"KServe runtime pod serves model {models[0]!r} (the InferenceService was 'iris')")
    finally:
        podman.run("kube", "down", str(manifest), check=False, timeout=120)
