"""The same score.py files under azmlinfsrv 1.5.1 and under prebake, the same requests, compared.

Status, Content-Type (its media type), x-ms-run-function-failed, the request-id echoes and bodies (parsed
where JSON) must match, except for these deliberate differences, each checked on both sides below:

- error bodies: prebake adds ``request_id`` beside ``message`` (compared without it);
- numpy arrays and pandas objects returned by run(): prebake 200 with JSON, the reference 500;
- an input inference-schema cannot convert: prebake 422 naming the parameter, the reference 500;
- get_json() on a malformed body under @rawhttp: prebake 400, the reference 500;
- ``GET /`` says ``Healthy`` as text/plain, the reference as text/html;
- JSON is compact (orjson) where the reference writes ``json.dumps`` spacing; bodies compare parsed.

Needs the reference in a venv (tests/peers.py): skipped with the reason where it cannot be installed,
failed when CI=true.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess, free_port

from ..peers import AzmlinfsrvProcess, azmlinfsrv_venv

SCRIPTS = Path(__file__).parents[1] / "fixtures" / "scripts"
IDS = {"x-request-id": "req-1", "x-ms-client-request-id": "client-1"}
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."


@dataclass(frozen=True)
class Case:
    name: str
    script: str
    method: str = "POST"
    path: str = "/score"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # (reference status, prebake status) where prebake differs on purpose; None where they must match.
    differs: tuple[int, int] | None = None


def jpost(name: str, script: str, value: object, differs: tuple[int, int] | None = None) -> Case:
    body = json.dumps(value).encode()
    return Case(name, script, body=body, headers={"content-type": "application/json"}, differs=differs)


CASES = [
    jpost("plain", "plain", {"data": [[1, 2], [3, 4]]}),
    Case("plain-get-args", "echo", "GET", "/score?a=1&b=[1,2]&c=x&c=y&d=null"),
    Case("plain-text-body", "echo", body="héllo wörld".encode(), headers={"content-type": "text/plain"}),
    Case("plain-not-utf8", "echo", body=b"\xff\xfe\xfa"),
    Case("options", "echo", "OPTIONS"),
    Case("rawhttp-options", "rawhttp", "OPTIONS"),
    Case("headers", "headers", body=b"hi", headers={"X-Custom-Header": "v1", "content-type": "text/plain"}),
    Case("headers-all", "headers_all", body=b"x", headers={"X-Custom": "a", "content-type": "text/plain"}),
    Case("headers-all-get", "headers_all", "GET", "/score?a=1", headers={"Accept": "application/json"}),
    Case("returns-str", "returns_str", body=b'{"a": [1, 2]}'),
    Case("returns-list", "returns_values", body=b"list"),
    Case("raising", "raising", body=b"x"),
    Case("rawhttp-get", "rawhttp", "GET", "/score?a=1&a=2&b=z", headers={"X-Custom-Header": "v"}),
    jpost("rawhttp-body", "rawhttp", {"k": [1, 2]}),
    jpost(
        "rawhttp-text",
        "rawhttp",
        {"mode": "text", "body": "hello", "status": 201, "headers": {"X-A": "1, 2"}},
    ),
    jpost(
        "rawhttp-content-type",
        "rawhttp",
        {"mode": "text", "body": "a,b", "headers": {"Content-Type": "text/csv"}},
    ),
    jpost("rawhttp-json-503", "rawhttp", {"mode": "json", "body": {"error": "down"}, "status": 503}),
    jpost("rawhttp-none", "rawhttp", {"mode": "none", "status": 202}),
    jpost("rawhttp-bytes", "rawhttp", {"mode": "bytes"}),
    Case("inspect-get", "rawhttp_inspect", "GET", "/score?a=1&a=2&b=%C3%A9", headers={"X-Custom": "c"}),
    jpost("inspect-json", "rawhttp_inspect", {"k": "v"}),
    Case(
        "inspect-form",
        "rawhttp_inspect",
        body=b"x=1&y=two&y=3",
        headers={"content-type": "application/x-www-form-urlencoded", "cookie": "s=abc; t=1"},
    ),
    Case(
        "inspect-multipart",
        "rawhttp_inspect",
        body=(
            b"--XyZ\r\n"
            b'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
            b"\x00\x01binary\r\n"
            b"--XyZ\r\n"
            b'Content-Disposition: form-data; name="file"; filename="b.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n"
            b"hello\r\n"
            b"--XyZ\r\n"
            b'Content-Disposition: form-data; name="note"\r\n\r\n'
            b"a note\r\n"
            b"--XyZ--\r\n"
        ),
        headers={"content-type": "multipart/form-data; boundary=XyZ"},
    ),
    jpost("schema-standard", "schema_standard", {"count": 2, "word": "yo"}),
    jpost("schema-default", "schema_standard", {"count": 2}),
    Case("schema-get", "schema_standard", "GET", "/score?count=3&word=hey"),
    jpost("schema-missing", "schema_standard", {"word": "x"}),
    jpost(
        "schema-pandas", "schema_pandas", {"frame": [{"age": 20, "income": 5.0}, {"age": 40, "income": 1.0}]}
    ),
    Case(
        "schema-wrong-type",
        "schema_numpy",
        body=b'{"data": [[1, 2, 3]]}',
        headers={"content-type": "text/plain"},
    ),
    Case(
        "schema-malformed",
        "schema_numpy",
        body=b'{"data": [[1,',
        headers={"content-type": "application/json"},
    ),
    Case("schema-empty", "schema_numpy", body=b"", headers={"content-type": "application/json"}),
    Case("schema-not-object", "schema_numpy", body=b"[1, 2]", headers={"content-type": "application/json"}),
    Case("health", "echo", "GET", "/"),
    Case("swagger-default", "echo", "GET", "/swagger.json"),
    Case("swagger-2", "schema_standard", "GET", "/swagger.json?version=2"),
    Case("swagger-3", "schema_standard", "GET", "/swagger.json?version=3"),
    Case("swagger-3.1", "schema_pandas", "GET", "/swagger.json?version=3.1"),
    Case("swagger-numpy-2", "schema_numpy", "GET", "/swagger.json?version=2.0"),
    Case("swagger-unknown", "echo", "GET", "/swagger.json?version=9"),
    # Deliberate differences.
    jpost("schema-numpy-output", "schema_numpy", {"data": [[1, 2, 3]]}, differs=(500, 200)),
    Case("returns-array", "returns_values", body=b"array", differs=(500, 200)),
    Case("returns-dataframe", "returns_values", body=b"dataframe", differs=(500, 200)),
    Case("returns-mixed", "returns_values", body=b"mixed", differs=(500, 200)),
    jpost("schema-bad-value", "schema_standard", {"count": "three"}, differs=(500, 422)),
    jpost("schema-bad-frame", "schema_pandas", {"frame": 5}, differs=(500, 422)),
    Case(
        "rawhttp-bad-json",
        "rawhttp",
        body=b"{bad",
        headers={"content-type": "application/json"},
        differs=(500, 400),
    ),
]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[AzmlinfsrvProcess, ServerProcess]]]:
    """Both servers for every script the cases use, started together and stopped at the end."""
    azmlinfsrv_venv()  # skip (or fail under CI) before starting anything
    pairs: dict[str, tuple[AzmlinfsrvProcess, ServerProcess]] = {}
    try:
        for script in sorted({case.script for case in CASES}):
            path = SCRIPTS / f"{script}.py"
            reference = AzmlinfsrvProcess(path, wait_ready=False).start()
            ours = ServerProcess(["--entry-script", str(path)], ready_path="/", wait_ready=False).start()
            pairs[script] = (reference, ours)
        for reference, ours in pairs.values():
            reference.wait_until_ready()
            ours.wait_until_ready()
        yield pairs
    finally:
        for reference, ours in pairs.values():
            reference.stop()
            ours.stop()


def send(client: httpx.Client, base: str, case: Case) -> httpx.Response:
    headers = {**IDS, **case.headers}
    return client.request(case.method, base + case.path, content=case.body, headers=headers)


def media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def body_of(response: httpx.Response) -> object:
    if media_type(response) != "application/json":
        return response.content
    # Bodies may echo the server's own address (request.url, host): compare them without it.
    base = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    body = json.loads(response.text.replace(base, "BASE").replace(base.split("://")[1], "HOST"))
    if response.status_code >= 400 and isinstance(body, dict):
        body.pop("request_id", None)  # prebake's addition to error bodies
    return body


def _matching_cases() -> list[object]:
    return [pytest.param(case, id=case.name) for case in CASES if case.differs is None]


@pytest.mark.parametrize("case", _matching_cases())
def test_same_answer_as_the_reference(
    servers: dict[str, tuple[AzmlinfsrvProcess, ServerProcess]], case: Case
) -> None:
    """prebake answers this request as azmlinfsrv does: status, media type, Azure headers and body."""
    reference, ours = servers[case.script]
    with httpx.Client(timeout=30) as client:
        expected, actual = send(client, reference.url, case), send(client, ours.url, case)
    assert actual.status_code == expected.status_code, (expected.text, actual.text)
    if case.path != "/":
        assert media_type(actual) == media_type(expected)
    for name in ("x-ms-run-function-failed", "x-request-id", "x-ms-request-id", "x-ms-client-request-id"):
        if case.path.startswith("/score") and name in expected.headers:
            assert actual.headers.get(name) == expected.headers[name], name
    if case.method != "OPTIONS" and case.path.startswith("/score") and expected.status_code < 400:
        assert "x-ms-run-fn-exec-ms" in actual.headers
    assert actual.headers.get_list("x-a") == expected.headers.get_list("x-a")
    assert body_of(actual) == body_of(expected)


@pytest.mark.parametrize("case", [c for c in CASES if c.differs is not None], ids=lambda c: c.name)
def test_deliberate_differences(
    servers: dict[str, tuple[AzmlinfsrvProcess, ServerProcess]], case: Case
) -> None:
    """Where prebake differs on purpose, the reference still fails as documented and prebake answers better."""
    assert case.differs is not None
    reference, ours = servers[case.script]
    with httpx.Client(timeout=30) as client:
        expected, actual = send(client, reference.url, case), send(client, ours.url, case)
    assert (expected.status_code, actual.status_code) == case.differs, (expected.text, actual.text)
    assert actual.headers["x-ms-run-function-failed"] == "False"
    assert actual.headers["x-request-id"] == expected.headers["x-request-id"]
    assert media_type(actual) == "application/json"
    if actual.status_code >= 400:
        assert actual.json()["message"]  # says what is wrong (422 names the parameter)


def test_init_failure_under_both() -> None:
    """A failing init() makes both servers exit non-zero without ever answering healthy."""
    script = SCRIPTS / "init_fails.py"
    commands: dict[str, AzmlinfsrvProcess | ServerProcess] = {
        "azmlinfsrv": AzmlinfsrvProcess(script, wait_ready=False),
        "prebake": ServerProcess(["--entry-script", str(script)], ready_path="/", wait_ready=False),
    }
    for name, server in commands.items():
        server.start()
        assert server.process is not None
        healthy = False
        deadline = time.monotonic() + 60
        while server.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                healthy |= httpx.get(server.url + "/", timeout=1).status_code == 200
            time.sleep(0.1)
        code = server.process.poll()
        server.stop()
        assert code not in (0, None), f"{name} kept running after init() failed"
        assert not healthy, f"{name} reported healthy"


def test_reference_is_the_pinned_version() -> None:
    """The peer venv runs azmlinfsrv 1.5.1, the version these expectations were written against."""
    venv = azmlinfsrv_venv()
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import azureml_inference_server_http as m; print(m.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "1.5.1", sys.version
    assert free_port() > 0


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/score"), ("POST", "/"), ("DELETE", "/swagger.json"), ("GET", "/nope")]
)
def test_routing_errors_have_the_reference_status(
    servers: dict[str, tuple[AzmlinfsrvProcess, ServerProcess]], method: str, path: str
) -> None:
    """Wrong methods and unknown paths get the reference's status as JSON (the wording is prebake's own)."""
    reference, ours = servers["echo"]
    with httpx.Client(timeout=30) as client:
        expected = client.request(method, reference.url + path)
        actual = client.request(method, ours.url + path)
    assert actual.status_code == expected.status_code
    assert media_type(actual) == media_type(expected) == "application/json"
