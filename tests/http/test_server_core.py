"""The server core through real HTTP against a real `prebake serve` process: health, errors, limits, ids."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import orjson

from prebake.testing import ServerProcess

from .conftest import CORE_SCRIPTS


def test_health_and_probes_answer_once_init_finished(
    echo_server: ServerProcess, client: httpx.Client
) -> None:
    """GET / says Healthy and the V2 liveness and readiness probes answer 200 after init()."""
    root = client.get(echo_server.url + "/")
    assert (root.status_code, root.text) == (200, "Healthy")
    assert client.get(echo_server.url + "/v2/health/live").status_code == 200
    assert client.get(echo_server.url + "/v2/health/ready").json() == {"ready": True}


def test_score_returns_run_output_with_azure_headers(
    echo_server: ServerProcess, client: httpx.Client
) -> None:
    """POST /score passes the body to run() and answers its JSON with the reference's response headers."""
    response = client.post(echo_server.url + "/score", content=b'{"echo": "hi"}')
    assert response.status_code == 200
    assert response.json()["echo"] == "hi"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert float(response.headers["x-ms-run-fn-exec-ms"]) >= 0
    assert response.headers["x-ms-request-id"] == response.headers["x-request-id"]


def test_request_ids_are_echoed_or_made(echo_server: ServerProcess, client: httpx.Client) -> None:
    """A client's x-request-id and x-ms-client-request-id come back; without one a new id is made per request."""
    given = client.post(
        echo_server.url + "/score",
        content=b"{}",
        headers={"x-request-id": "abc-123", "x-ms-client-request-id": "client-9"},
    )
    assert given.headers["x-request-id"] == "abc-123"
    assert given.headers["x-ms-client-request-id"] == "client-9"
    assert given.headers["x-ms-request-id"] == "client-9"
    first = client.post(echo_server.url + "/score", content=b"{}").headers["x-request-id"]
    second = client.post(echo_server.url + "/score", content=b"{}").headers["x-request-id"]
    assert first != second and len(first) == 36


def test_overlong_request_id_is_refused_with_431(echo_server: ServerProcess, client: httpx.Client) -> None:
    """An x-request-id over 100 characters gets 431 with a message naming the header, as azmlinfsrv does."""
    response = client.post(echo_server.url + "/score", content=b"{}", headers={"x-request-id": "x" * 101})
    assert response.status_code == 431
    assert "x-request-id" in response.json()["message"]


def test_raising_run_gives_500_json_without_traceback(
    echo_server: ServerProcess, client: httpx.Client
) -> None:
    """run() raising answers 500 {"message", "request_id"} with x-ms-run-function-failed and no traceback."""
    response = client.post(
        echo_server.url + "/score", content=b'{"raise": true}', headers={"x-request-id": "r-1"}
    )
    assert response.status_code == 500
    body = response.json()
    assert body["request_id"] == "r-1"
    assert "Traceback" not in response.text and "refused" not in response.text
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert client.get(echo_server.url + "/").status_code == 200, "server must keep serving after an error"


def test_unknown_route_and_method_get_json_errors(echo_server: ServerProcess, client: httpx.Client) -> None:
    """An unknown path answers 404 and a wrong method 405, both as JSON with a message."""
    missing = client.get(echo_server.url + "/no/such/route")
    assert missing.status_code == 404 and "no route" in missing.json()["message"]
    wrong = client.delete(echo_server.url + "/score")
    assert wrong.status_code == 405 and "allowed" in wrong.json()["message"]


def test_health_and_metrics_answer_fast_while_run_is_busy(
    echo_server: ServerProcess, client: httpx.Client
) -> None:
    """While run() holds the GIL for 2 s, / and /metrics still answer (median well under 100 ms)."""
    busy = threading.Thread(
        target=lambda: httpx.post(echo_server.url + "/score", content=b'{"spin": 1.2}', timeout=30)
    )
    busy.start()
    time.sleep(0.2)
    timings = []
    for path in ("/", "/metrics", "/", "/metrics", "/"):
        started = time.perf_counter()
        assert client.get(echo_server.url + path).status_code == 200
        timings.append(time.perf_counter() - started)
    busy.join()
    assert statistics.median(timings) < 0.1, timings


def test_body_over_limit_gets_413_and_server_keeps_serving(client: httpx.Client) -> None:
    """A body over --max-body-bytes answers 413 with a JSON message; the next request is served."""
    args = ["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--max-body-bytes", "1000"]
    with ServerProcess(args) as server:
        response = client.post(server.url + "/score", content=b"x" * 5000)
        assert response.status_code == 413
        assert "limit of 1000 bytes" in response.json()["message"]
        assert client.post(server.url + "/score", content=b'{"echo": 1}').json()["echo"] == 1


def test_scoring_timeout_gives_504_and_a_spinning_worker_is_replaced(client: httpx.Client) -> None:
    """A run() past SCORING_TIMEOUT_MS answers 504 at the deadline; one that keeps a core busy past the
    grace period gets its worker replaced, and the server serves again."""
    args = ["--entry-script", str(CORE_SCRIPTS / "echo.py")]
    with ServerProcess(args, env={"SCORING_TIMEOUT_MS": "500"}) as server:
        started = time.monotonic()
        response = client.post(server.url + "/score", content=b'{"spin": 30}')
        assert response.status_code == 504
        assert time.monotonic() - started < 5
        assert "timeout" in response.json()["message"].lower()
        assert response.headers["x-ms-run-function-failed"] == "True"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                ok = client.post(server.url + "/score", content=b'{"echo": "back"}', timeout=2)
                if ok.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"server did not recover:\n{server.logs()}")
        assert ok.json()["echo"] == "back"
        deadline = time.monotonic() + 15
        while "replacing this worker" not in server.logs():
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.2)


def test_debug_mode_shows_the_error_to_the_client(client: httpx.Client) -> None:
    """With --debug a raising run() names the exception in the 500 body."""
    with ServerProcess(["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--debug"]) as server:
        response = client.post(server.url + "/score", content=b'{"raise": true}')
        assert response.status_code == 500
        assert "refused" in response.text


def test_init_failure_exits_non_zero_and_never_reports_healthy() -> None:
    """init() raising makes the process log the traceback and exit 3 without ever answering health."""
    server = ServerProcess(["--entry-script", str(CORE_SCRIPTS / "init_fails.py")], wait_ready=False)
    server.start()
    assert server.process is not None
    code = server.process.wait(30)
    assert code == 3
    logs = server.logs()
    assert "model file is missing" in logs and "Traceback" in logs


def test_json_logs_have_one_line_per_request_with_its_id(client: httpx.Client) -> None:
    """--log-format json writes JSON lines, one access line per request carrying its request id."""
    with ServerProcess(["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--log-format", "json"]) as server:
        client.post(server.url + "/score", content=b"{}", headers={"x-request-id": "json-log-1"})
        time.sleep(0.3)
        lines = [orjson.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        access = [line for line in lines if line.get("request_id") == "json-log-1"]
        assert len(access) == 1
        assert access[0]["status"] == 200 and access[0]["path"] == "/score"


def test_cors_headers_only_for_configured_origins(client: httpx.Client) -> None:
    """AML_CORS_ORIGINS allows the named origin (preflight and response) and no other."""
    env = {"AML_CORS_ORIGINS": "https://app.example.com"}
    with ServerProcess(["--entry-script", str(CORE_SCRIPTS / "echo.py")], env=env) as server:
        allowed = client.post(
            server.url + "/score", content=b"{}", headers={"origin": "https://app.example.com"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        other = client.post(
            server.url + "/score", content=b"{}", headers={"origin": "https://evil.example.com"}
        )
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options(
            server.url + "/score",
            headers={"origin": "https://app.example.com", "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]


def test_the_loaded_heap_is_kept_out_of_garbage_collection(client: httpx.Client, tmp_path: Path) -> None:
    """Once init() has run, the worker's objects are frozen (gc.freeze), so no full collection walks the
    loaded framework while requests wait; run() sees a frozen heap and collections still work."""
    script = tmp_path / "score.py"
    script.write_text(
        "import gc\n"
        "def init():\n"
        "    global kept\n"
        "    kept = [dict(n=i) for i in range(10000)]\n"
        "def run(raw):\n"
        "    return {'frozen': gc.get_freeze_count(), 'collected': gc.collect() >= 0}\n"
    )
    with ServerProcess(["--entry-script", str(script)]) as server:
        answer = client.post(server.url + "/score", content=b"{}").json()
    assert answer["collected"] is True
    assert answer["frozen"] > 10000, answer
