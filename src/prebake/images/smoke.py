"""The smoke test of one image: start it as users will, wait for health, predict with a tiny model of its
framework, check the answer, the user and the read-only root, then stop it and check it exits cleanly.

Each check either passes or raises SmokeFailed naming what went wrong; the container's log tail comes
with any failure so it can be acted on without rerunning.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prebake.errors import ImageError
from prebake.images.catalog import Image
from prebake.images.engine import Engine, EngineFailed
from prebake.images.runner import MODEL_MOUNT, RunSpec, run_arguments
from prebake.images.tinymodels import SmokeCase, make_case


class SmokeFailed(ImageError):
    """The image started but did not behave; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class SmokeResult:
    image: str
    kind: str
    seconds_to_healthy: float
    seconds_to_first_prediction: float
    uid: int
    stop_seconds: float
    log: str = ""  # the container's log tail: what the server said while it started and served

    def summary(self) -> str:
        return (
            f"ok {self.image}: first prediction in {self.seconds_to_first_prediction:.2f} s "
            f"(healthy {self.seconds_to_healthy:.2f} s), uid {self.uid}, read-only root, "
            f"stopped cleanly in {self.stop_seconds:.2f} s"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _http(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _state(engine: Engine, container: str) -> dict[str, Any]:
    record = json.loads(engine.run("container", "inspect", container))[0]
    state: dict[str, Any] = record.get("State", {})
    return state


def smoke_test(
    image: Image,
    engine: Engine,
    *,
    reference: str | None = None,
    timeout: float = 90.0,
    no_code: bool = False,
    environment: dict[str, str] | None = None,
) -> SmokeResult:
    """Smoke-test ``image`` (its catalog reference unless ``reference`` is given); SmokeFailed on any failure.

    By default the tiny model is served through an Azure-style score.py (POST /score); with ``no_code`` the
    model file alone is given to ``prebake serve MODEL_PATH`` and asked through Open Inference Protocol V2.
    """
    reference = reference or image.reference
    if not engine.image_exists(reference):
        raise ImageError(f"image {reference} is not built: run `prebake build {image.name}`", status=404)
    with tempfile.TemporaryDirectory(prefix="prebake-smoke-") as scratch:
        Path(scratch).chmod(0o755)
        case = make_case(image.smoke, Path(scratch))
        if no_code and image.smoke == "entry-script":
            raise ImageError(
                f"{image.name} has no framework to serve a model without code; test it without --no-code"
            )
        return _run_case(image, engine, reference, case, timeout, no_code, environment or {})


def _run_case(
    image: Image,
    engine: Engine,
    reference: str,
    case: SmokeCase,
    timeout: float,
    no_code: bool,
    environment: dict[str, str],
) -> SmokeResult:
    port = free_port()
    name = f"prebake-smoke-{uuid.uuid4().hex[:10]}"
    spec = RunSpec(
        reference=reference,
        port=port,
        model=case.model_dir / case.model_file if no_code else case.model_dir,
        entry_script=None if no_code else case.script_dir / case.entry_script,
        name=name,
        detach=True,
        remove=False,
        # The tiny model was made here, by us: trusted.
        environment={"PREBAKE_ALLOW_PICKLE": "1", **environment},
    )
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    engine.run(*run_arguments(spec))
    try:
        healthy = _wait_healthy(engine, name, base, started, timeout)
        predictions = _predict(case, base, timeout, no_code)
        first_prediction = time.monotonic() - started
        if not case.matches(predictions):
            raise SmokeFailed(
                f"wrong predictions from {image.name}: got {predictions!r}, expected {case.expected!r}"
            )
        uid = _check_user(engine, name)
        _check_read_only(engine, name)
        stop_started = time.monotonic()
        engine.run("stop", "--time", "15", name)
        stop_seconds = time.monotonic() - stop_started
        exit_code = _state(engine, name).get("ExitCode")
        if exit_code != 0:
            raise SmokeFailed(f"the server exited with code {exit_code} on SIGTERM, expected 0")
        return SmokeResult(
            image.name, case.kind, healthy, first_prediction, uid, stop_seconds, _logs(engine, name, 200)
        )
    except SmokeFailed as error:
        raise SmokeFailed(
            f"{error.message}\n--- container log (last lines) ---\n{_logs(engine, name)}"
        ) from error
    finally:
        engine.run("rm", "--force", name, check=False)


def _predict(case: SmokeCase, base: str, timeout: float, no_code: bool) -> Any:
    """One prediction: POST /score with the score.py's JSON, or a V2 infer request to the model's route."""
    if not no_code:
        status, body = _http("POST", f"{base}/score", json.dumps(case.request).encode(), timeout=timeout)
        if status != 200:
            raise SmokeFailed(f"POST /score answered {status}: {body[:300]!r}")
        return json.loads(body).get("predictions")
    rows = case.request["data"]
    # prebake serve names a model after its file, or its folder (a transformers model is a folder, mounted
    # as the model folder itself).
    model = Path(case.model_file).stem or Path(MODEL_MOUNT).name
    # As a V2 client does: the input's name from the model's metadata (ONNX, torch and Keras name theirs).
    status, body = _http("GET", f"{base}/v2/models/{model}", None, timeout=timeout)
    if status != 200:
        raise SmokeFailed(f"GET /v2/models/{model} answered {status}: {body[:300]!r}")
    spec = json.loads(body)["inputs"][0]
    if spec["datatype"] == "BYTES":  # texts (transformers): one element a row
        tensor = {"name": spec["name"], "shape": [len(rows)], "datatype": "BYTES", "data": rows}
    else:
        tensor = {
            "name": spec["name"],
            "shape": [len(rows), len(rows[0])],
            "datatype": "FP32",
            "data": sum(rows, []),
        }
    url = f"{base}/v2/models/{model}/infer"
    status, body = _http("POST", url, json.dumps({"inputs": [tensor]}).encode(), timeout=timeout)
    if status != 200:
        raise SmokeFailed(f"POST /v2/models/{model}/infer answered {status}: {body[:300]!r}")
    data = json.loads(body)["outputs"][0]["data"]
    # V2 data is flat; compare it to the host's predictions flattened the same way.
    return data if case.tolerance == 0 else [data]


def _wait_healthy(engine: Engine, name: str, base: str, started: float, timeout: float) -> float:
    while time.monotonic() - started < timeout:
        try:
            status, _ = _http("GET", f"{base}/", timeout=2.0)
            if status == 200:
                return time.monotonic() - started
        except OSError:
            pass  # not listening yet
        if _state(engine, name).get("Status") in ("exited", "stopped"):
            raise SmokeFailed(
                f"the container exited before it was healthy (code {_state(engine, name).get('ExitCode')})"
            )
        time.sleep(0.05)
    raise SmokeFailed(f"not healthy after {timeout:.0f} s: GET / never answered 200")


def _check_user(engine: Engine, name: str) -> int:
    out = engine.run("exec", name, "python3", "-c", "import os; print(os.getuid(), os.geteuid())").split()
    uid = int(out[0])
    if uid == 0 or int(out[1]) == 0:
        raise SmokeFailed("the server runs as root; prebuilt images must run as a non-root user")
    return uid


def _check_read_only(engine: Engine, name: str) -> None:
    try:
        engine.run("exec", name, "sh", "-c", "echo probe > /var/prebake/.probe")
    except EngineFailed:
        pass  # refused: the root filesystem is read-only, as it should be
    else:
        raise SmokeFailed("could write to /var/prebake: the root filesystem is not read-only")
    try:
        engine.run("exec", name, "sh", "-c", "echo probe > /tmp/.probe")
    except EngineFailed as error:
        raise SmokeFailed(f"cannot write to /tmp (the tmpfs): {error.message}") from error


def _logs(engine: Engine, name: str, lines: int = 30) -> str:
    return engine.logs(name, lines) or "(empty)"
