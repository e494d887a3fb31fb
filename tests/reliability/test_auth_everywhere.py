"""Auth across every route the server mounts, keys kept out of logs and bodies, CORS off unless configured."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from prebake.server import auth
from prebake.testing import ServerProcess

from .helpers import SCRIPTS

KEY = "k3y-0f-the-reliability-suite"
PROBES = {"/", "/v2/health/live", "/v2/health/ready", "/healthz", "/readyz", "/metrics", "/ping", "/health"}


def _document(flags: dict[str, Any]) -> dict[str, Any]:
    from prebake.config import load_config
    from prebake.server import openapi
    from prebake.server.metrics import Metrics
    from prebake.server.worker import build_repository

    backend, routes = build_repository(load_config(**flags, env={}), Metrics(None))
    return openapi.document(routes, models=backend.model_names(), auth=True)


def _concrete(path: str) -> str:
    return path.replace("{name}", "score").replace("{version}", "1")


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[ServerProcess]:
    with ServerProcess(
        ["--entry-script", str(SCRIPTS / "work.py"), "--debug"], env={"PREBAKE_API_KEY": KEY}
    ) as server:
        yield server


def test_every_route_but_the_probes_needs_the_key(keyed_server: ServerProcess) -> None:
    """Each mounted route other than a health probe or metrics answers 401 without the key and accepts it with the key."""
    doc = _document({"entry_script": str(SCRIPTS / "work.py")})
    checked = 0
    with httpx.Client(timeout=10) as client:
        for path, methods in doc["paths"].items():
            for method, spec in methods.items():
                if method.upper() == "OPTIONS":
                    continue
                url = keyed_server.url + _concrete(path)
                bare = client.request(method.upper(), url, content=b"{}")
                keyed = client.request(method.upper(), url, content=b"{}", headers={"x-api-key": KEY})
                if path in PROBES:
                    assert bare.status_code != 401, path
                    assert "security" not in spec, path
                    continue
                checked += 1
                assert bare.status_code == 401, f"{method} {path} answered {bare.status_code} without a key"
                assert bare.headers["www-authenticate"].startswith("Bearer"), path
                assert keyed.status_code != 401, f"{method} {path} refused the right key"
                assert "security" in spec, path
    assert checked >= 2


def test_the_key_never_reaches_logs_or_bodies(keyed_server: ServerProcess) -> None:
    """Right and wrong keys, in both headers, appear in no response body and no log line, even with --debug."""
    wrong = "wrong-" + KEY
    with httpx.Client(timeout=10) as client:
        bodies = [
            client.post(keyed_server.url + "/score", content=b'{"echo": 1}', headers=headers).text
            for headers in (
                {"authorization": f"Bearer {KEY}"},
                {"x-api-key": KEY},
                {"authorization": f"Bearer {wrong}"},
                {"x-api-key": wrong},
                {"authorization": f"Basic {KEY}"},
            )
        ]
    for text in [*bodies, keyed_server.logs()]:
        assert KEY not in text


def test_every_configured_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """auth.check compares the token against every key with hmac.compare_digest, so its timing does not say which matched."""
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    keys = (b"first", b"second", b"third")
    auth.check(keys, [(b"x-api-key", b"first")])
    assert calls == list(keys)


def test_no_cors_headers_unless_origins_are_configured() -> None:
    """Without AML_CORS_ORIGINS a cross-origin request and a preflight get no Access-Control-* headers."""
    with (
        ServerProcess(["--entry-script", str(SCRIPTS / "work.py")]) as server,
        httpx.Client(timeout=10) as client,
    ):
        simple = client.post(server.url + "/score", content=b"{}", headers={"origin": "https://evil.example"})
        preflight = client.options(
            server.url + "/score",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
    for response in (simple, preflight):
        assert not [h for h in response.headers if h.startswith("access-control-")], response.headers
