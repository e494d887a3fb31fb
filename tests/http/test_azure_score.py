"""The Azure entry-script contract through real HTTP against real `prebake serve` processes.

Every bad input the issue names is sent over the wire: each must give a clear JSON error with the right
status, and the server must keep serving.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess, free_port

SCRIPTS = Path(__file__).parents[1] / "fixtures" / "scripts"
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."

Serve = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    """Start one server per fixture script (and flag set), shared by the module's tests."""
    started: dict[tuple[str, tuple[str, ...]], ServerProcess] = {}

    def get(script: str, *flags: str) -> ServerProcess:
        key = (script, flags)
        if key not in started:
            args = ["--entry-script", str(SCRIPTS / f"{script}.py"), *flags]
            started[key] = ServerProcess(args, ready_path="/").start()
        return started[key]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def assert_error(response: httpx.Response, status: int, fragment: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    assert fragment in str(body["message"])
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def test_plain_script_scores(serve: Serve, client: httpx.Client) -> None:
    """POST /score passes the body string to run() and answers its dict as JSON with the Azure headers."""
    server = serve("plain")
    response = client.post(server.url + "/score", json={"data": [[1, 2], [3, 4]]})
    assert response.status_code == 200
    assert response.json() == {"result": [4, 8], "input_type": "str"}
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert float(response.headers["x-ms-run-fn-exec-ms"]) >= 0


def test_get_query_arguments_reach_run(serve: Serve, client: httpx.Client) -> None:
    """GET /score?... passes the query arguments to run() as a JSON object string."""
    response = client.get(serve("echo").url + "/score", params=[("a", "1"), ("b", "x"), ("b", "y")])
    assert json.loads(response.json()["received"]) == {"a": 1, "b": ["x", "y"]}


def test_request_headers_reach_run(serve: Serve, client: httpx.Client) -> None:
    """run(data, request_headers) receives the client's headers Title-Cased."""
    response = client.post(
        serve("headers").url + "/score",
        content=b"hi",
        headers={"X-Custom-Header": "v", "Content-Type": "text/plain"},
    )
    assert response.json() == {
        "data": "hi",
        "custom": "v",
        "content_type": "text/plain",
        "names_title_cased": True,
    }


def test_numpy_and_pandas_outputs_are_200(serve: Serve, client: httpx.Client) -> None:
    """numpy arrays, scalars and DataFrames returned by run() serialize (the reference answers 500)."""
    url = serve("returns_values").url + "/score"
    assert client.post(url, content=b"array").json() == [[1, 2], [3, 4]]
    assert client.post(url, content=b"scalar").json() == 0.25
    assert client.post(url, content=b"dataframe").json() == [
        {"label": "a", "score": 0.5},
        {"label": "b", "score": None},
    ]


def test_schema_script_converts_and_validates(serve: Serve, client: httpx.Client) -> None:
    """A numpy schema script gets an array; a value it cannot convert is 422 naming the parameter."""
    url = serve("schema_numpy").url + "/score"
    assert client.post(url, json={"data": [[1, 2, 3]]}).json() == [6.0]
    body = assert_error(client.post(url, json={"data": [["a", "b", "c"]]}), 422, "'data'")
    assert "could not convert" in str(body["message"])


@pytest.mark.parametrize(
    ("content", "content_type", "status", "fragment"),
    [
        (b'{"data": [[1, 2, 3]]}', "text/plain", 415, "application/json"),
        (b'{"data": [[1, 2', "application/json", 400, "could not be decoded as JSON"),
        (b"", "application/json", 400, "POST body is empty"),
        (b"[1, 2, 3]", "application/json", 400, "JSON dictionary"),
        (b'{"other": 1}', "application/json", 400, "'data'"),
        (b"\xff\xfe", "application/json", 400, "could not be decoded as JSON"),
    ],
)
def test_schema_bad_inputs(
    serve: Serve, client: httpx.Client, content: bytes, content_type: str, status: int, fragment: str
) -> None:
    """Each bad body for a schema script gets its status and a message saying what is wrong."""
    response = client.post(
        serve("schema_numpy").url + "/score", content=content, headers={"content-type": content_type}
    )
    assert_error(response, status, fragment)
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_non_utf8_body_is_400(serve: Serve, client: httpx.Client) -> None:
    """A body that is not UTF-8, for a script taking the body string, is 400."""
    assert_error(client.post(serve("echo").url + "/score", content=b"\xff\xfe\xfa"), 400, "UTF-8")


def test_rawhttp_bad_json_is_400(serve: Serve, client: httpx.Client) -> None:
    """get_json() on malformed JSON inside a @rawhttp run() gives 400 (the reference gives 500)."""
    response = client.post(
        serve("rawhttp").url + "/score", content=b"{bad", headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "Failed to decode JSON")


def test_amlresponse_is_sent_as_built(serve: Serve, client: httpx.Client) -> None:
    """An AMLResponse's status, Content-Type and split headers reach the client; 5xx marks the run failed."""
    url = serve("rawhttp").url + "/score"
    spec = {
        "mode": "text",
        "body": "hello",
        "status": 201,
        "headers": {"X-A": "1, 2", "Content-Type": "text/csv"},
    }
    response = client.post(url, json=spec)
    assert (response.status_code, response.text, response.headers["content-type"]) == (
        201,
        "hello",
        "text/csv",
    )
    assert response.headers.get_list("x-a") == ["1", "2"]
    failed = client.post(url, json={"mode": "json", "body": {"e": 1}, "status": 503})
    assert failed.status_code == 503 and failed.json() == {"e": 1}
    assert failed.headers["x-ms-run-function-failed"] == "True"
    raw = client.post(url, json={"mode": "bytes"})
    assert (raw.content, raw.headers["content-type"]) == (bytes(range(8)), "application/octet-stream")


def test_raising_run_hides_the_traceback_unless_debug(serve: Serve, client: httpx.Client) -> None:
    """run() raising gives 500 with the reference's message; only --debug names the exception."""
    plain = client.post(serve("raising").url + "/score", content=b"x")
    body = assert_error(plain, 500, RUN_FAILED)
    assert "secret detail" not in plain.text
    assert body["message"] == RUN_FAILED
    assert plain.headers["x-ms-run-function-failed"] == "True"
    debug = client.post(serve("raising", "--debug").url + "/score", content=b"x")
    assert debug.status_code == 500
    assert "ValueError: secret detail from the model" in debug.json()["message"]


def test_swagger_versions(serve: Serve, client: httpx.Client) -> None:
    """GET /swagger.json serves versions 2 (the default), 3 and 3.1, and 404 for others."""
    url = serve("schema_standard").url + "/swagger.json"
    assert client.get(url).json()["swagger"] == "2.0"
    v3 = client.get(url, params={"version": "3"}).json()
    assert v3["components"]["schemas"]["ServiceInput"]["example"] == {"count": 3, "word": "hello"}
    assert client.get(url, params={"version": "3.1"}).json()["openapi"] == "3.1.0"
    assert_error(client.get(url, params={"version": "7"}), 404, "Swagger version [7] is not valid")


def test_health_answers_while_run_is_busy(serve: Serve, client: httpx.Client) -> None:
    """GET / answers promptly while a slow run() is in progress."""
    server = serve("slow")
    thread = threading.Thread(
        target=lambda: httpx.post(server.url + "/score", json={"sleep": 1.5}, timeout=30)
    )
    thread.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        health = client.get(server.url + "/")
        assert (health.status_code, health.text) == (200, "Healthy")
        assert time.monotonic() - started < 1.0
    finally:
        thread.join()


def test_init_failure_exits_nonzero_and_never_reports_healthy() -> None:
    """A failing init() logs its traceback and ends the server with a non-zero code, never healthy."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prebake",
            "serve",
            "--entry-script",
            str(SCRIPTS / "init_fails.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    healthy = False
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            healthy |= httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
    output = process.communicate()[0].decode(errors="replace")
    assert process.returncode not in (0, None)
    assert not healthy
    assert "Traceback" in output and "model file missing" in output
