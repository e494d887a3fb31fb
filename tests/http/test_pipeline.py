"""The request pipeline, through real server processes: one set of steps for HTTP and gRPC, and the edge
bugs found where the two used to differ."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from prebake.testing import ServerProcess, free_port

from .conftest import CORE_SCRIPTS

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is a test-only extra")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def grpc_server(iris: tuple[Path, Any, np.ndarray]) -> Iterator[tuple[ServerProcess, int]]:
    path, _, _ = iris
    grpc_port = free_port()
    with ServerProcess(["--allow-pickle", str(path), "--grpc-port", str(grpc_port)]) as server:
        yield server, grpc_port


def _grpc_infer(port: int, rows: np.ndarray, *, model: str = "iris", **kwargs: Any) -> Any:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows.astype(np.float64))
        return client.infer(model, [tensor], **kwargs)
    finally:
        client.close()


def _series(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus series (0 where absent)."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_grpc_calls_are_counted_timed_and_logged(
    grpc_server: tuple[ServerProcess, int], iris: tuple[Path, Any, np.ndarray]
) -> None:
    """gRPC calls go through the same pipeline as HTTP: prebake_requests_total, the latency histogram and the
    access log see them, under the RPC's name; the log says where gRPC listens."""
    server, port = grpc_server
    _, model, rows = iris
    route = "/inference.GRPCInferenceService/ModelInfer"
    for _ in range(3):
        result = _grpc_infer(port, rows[:2])
        assert result.as_numpy("predict").tolist() == model.predict(rows[:2]).tolist()
    with pytest.raises(InferenceServerException, match="unknown model"):
        _grpc_infer(port, rows[:1], model="nope")
    time.sleep(1.2)  # the access log is written once per loop turn; metrics are read live
    metrics = httpx.get(server.url + "/metrics").text
    assert _series(metrics, "prebake_requests_total", route=route, status="200", model="iris") >= 3
    assert _series(metrics, "prebake_requests_total", route=route, status="404", model="") >= 1
    assert _series(metrics, "prebake_request_duration_seconds_count", route=route, model="iris") >= 3
    logs = server.logs()
    assert re.search(rf"POST {re.escape(route)} 200 [\d.]+ms", logs), logs[-2000:]
    assert f"gRPC listening on 127.0.0.1:{port}" in logs


def test_one_concurrency_limit_covers_both_transports(
    tmp_path: Path,
) -> None:
    """--limit-concurrency is one rule in the pipeline: an HTTP call holding the only slot makes a gRPC
    call meanwhile a 503 / UNAVAILABLE, and the HTTP 503 is JSON."""
    grpc_port = free_port()
    args = ["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--limit-concurrency", "1"]
    with ServerProcess([*args, "--grpc-port", str(grpc_port)]) as server:
        slow = threading.Thread(
            target=lambda: httpx.post(server.url + "/score", json={"sleep": 2}, timeout=10)
        )
        slow.start()
        time.sleep(0.5)
        try:
            refused = httpx.post(server.url + "/score", json={"echo": 1}, timeout=10)
            assert refused.status_code == 503 and "limit of 1" in refused.json()["message"]
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            try:
                with pytest.raises(InferenceServerException) as info:
                    client.get_server_metadata()
                assert (
                    info.value.status() == "StatusCode.UNAVAILABLE" and "limit of 1" in info.value.message()
                )
            finally:
                client.close()
        finally:
            slow.join()
        assert httpx.post(server.url + "/score", json={"echo": 2}).status_code == 200


def test_a_body_cut_short_never_reaches_the_model(tmp_path: Path) -> None:
    """A client that sends 5 KB of a declared 100 KB body and goes away gets nothing scored: run() never
    sees a truncated body, the access log shows 499, and the server goes on."""
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {"PREBAKE_TEST_CALLS": str(calls)}
    with ServerProcess(["--entry-script", str(CORE_SCRIPTS / "recorder.py")], env=env) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n" + b"1" * 5000
            )
            time.sleep(0.3)
        time.sleep(0.5)
        assert calls.read_text() == ""
        whole = httpx.post(server.url + "/score", content=b"[1, 2, 3]")
        assert whole.status_code == 200 and whole.json() == {"size": 9}
        assert calls.read_text() == "9\n"
        time.sleep(0.5)
        assert re.search(r"POST /score 499 ", server.logs())


def test_names_from_urls_create_no_metrics_series(
    grpc_server: tuple[ServerProcess, int],
) -> None:
    """300 requests for unknown model names leave no series labelled with them: only models that exist
    get a label, so /metrics cannot be grown from outside."""
    server, _ = grpc_server
    with httpx.Client() as http:
        for i in range(300):
            assert http.get(server.url + f"/v2/models/ghost-{i}").status_code == 404
        metrics = http.get(server.url + "/metrics").text
    assert "ghost-" not in metrics
    assert _series(metrics, "prebake_requests_total", route="/v2/models/{name}", status="404") >= 300


def test_unauthenticated_requests_are_not_counted_under_a_model(iris: tuple[Path, Any, np.ndarray]) -> None:
    """A request refused by auth is counted without a model label, even for a model that exists."""
    path, _, rows = iris
    with ServerProcess(["--allow-pickle", str(path)], env={"PREBAKE_API_KEY": "k"}) as server:
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": rows[0].tolist()}]}
        assert httpx.post(server.url + "/v2/models/iris/infer", json=body).status_code == 401
        metrics = httpx.get(server.url + "/metrics").text
    assert _series(metrics, "prebake_requests_total", status="401", model="") == 1
    assert 'status="401",model="iris"' not in metrics


def test_after_a_timeout_the_next_request_is_served() -> None:
    """SCORING_TIMEOUT_MS answers a stuck run() with 504, and the next fast request is served at once, not
    queued behind it (a fresh scoring thread takes it), as azmlinfsrv serves it."""
    args = ["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--timeout-ms", "500"]
    with ServerProcess(args) as server, httpx.Client(timeout=10) as http:
        late = http.post(server.url + "/score", json={"sleep": 3})
        assert late.status_code == 504
        started = time.monotonic()
        fast = http.post(server.url + "/score", json={"echo": "next"})
        assert fast.status_code == 200 and fast.json()["echo"] == "next"
        assert time.monotonic() - started < 1.0


def test_unknown_paths_of_an_entry_script_server_speak_azure(echo_server: ServerProcess) -> None:
    """An entry-script server answers an unknown path with {"message"}, which Azure clients read."""
    response = httpx.get(echo_server.url + "/nowhere")
    assert response.status_code == 404 and "no route" in response.json()["message"]


def test_app_root_defaults_to_the_current_directory(tmp_path: Path) -> None:
    """Without AML_APP_ROOT, a relative entry script and the user's swagger2.json beside it are found in the
    current directory, as azmlinfsrv finds them."""
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (tmp_path / "swagger2.json").write_text('{"swagger": "2.0", "info": {"title": "mine"}}')
    env = {"AML_APP_ROOT": "", "AZUREML_ENTRY_SCRIPT": ""}
    with ServerProcess(["--entry-script", "score.py"], cwd=tmp_path, env=env) as server:
        doc = httpx.get(server.url + "/swagger.json?version=2").json()
    assert doc["info"]["title"] == "mine"


def test_an_init_failure_prints_its_traceback_once() -> None:
    """init() raising exits 3 with one error line and the user's traceback once."""
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "prebake",
            "serve",
            "--entry-script",
            str(CORE_SCRIPTS / "init_fails.py"),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 3, process.stderr
    assert process.stderr.count("Traceback (most recent call last)") == 1, process.stderr


def test_a_grpc_port_another_process_holds_is_refused_with_one_line() -> None:
    """A gRPC port already taken (even by a server that shares ports with SO_REUSEPORT) exits 2 at once
    with one clear line, instead of starting silently beside it or crash-looping."""
    grpc_port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", grpc_port))
    holder.listen()
    try:
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "prebake",
                "serve",
                "--entry-script",
                str(CORE_SCRIPTS / "echo.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--grpc-port",
                str(grpc_port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert process.returncode == 2, process.stderr
    assert (
        f"cannot listen for gRPC on 127.0.0.1:{grpc_port}: another process is listening there"
        in process.stderr
    )
    assert "Traceback" not in process.stderr


def test_grpc_model_ready_for_an_unknown_model_is_false(grpc_server: tuple[ServerProcess, int]) -> None:
    """tritonclient.grpc's is_model_ready answers False for a model the server lacks, as with Triton."""
    _, port = grpc_server
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        assert client.is_model_ready("iris")
        assert not client.is_model_ready("nope")
        assert not client.is_model_ready("iris", "7")
    finally:
        client.close()


def test_empty_outputs_list_means_all_on_rest_and_grpc(
    tmp_path: Path, iris: tuple[Path, Any, np.ndarray]
) -> None:
    """V2's outputs not specified (no key, or an empty list) returns every output, the same on both
    transports; a named output returns just that one."""
    import joblib

    _, model, rows = iris
    folder = tmp_path / "two"
    folder.mkdir()
    joblib.dump(model, folder / "model.joblib")
    (folder / "model-settings.json").write_text('{"predict_method": "predict,predict_proba"}')
    grpc_port = free_port()
    with ServerProcess(["--allow-pickle", str(folder), "--grpc-port", str(grpc_port)]) as server:
        tensor = {"name": "x", "datatype": "FP64", "shape": [1, 4], "data": rows[0].tolist()}
        for outputs in (None, []):
            body: dict[str, Any] = {"inputs": [tensor]}
            if outputs is not None:
                body["outputs"] = outputs
            doc = httpx.post(server.url + "/v2/models/two/infer", json=body).json()
            assert [o["name"] for o in doc["outputs"]] == ["predict", "predict_proba"]
        one = httpx.post(
            server.url + "/v2/models/two/infer",
            json={"inputs": [tensor], "outputs": [{"name": "predict_proba"}]},
        ).json()
        assert [o["name"] for o in one["outputs"]] == ["predict_proba"]
        everything = _grpc_infer(grpc_port, rows[:1], model="two")
        assert {o["name"] for o in everything.get_response(as_json=True)["outputs"]} == {
            "predict",
            "predict_proba",
        }
        chosen = _grpc_infer(
            grpc_port, rows[:1], model="two", outputs=[grpcclient.InferRequestedOutput("predict_proba")]
        )
        assert [o["name"] for o in chosen.get_response(as_json=True)["outputs"]] == ["predict_proba"]
