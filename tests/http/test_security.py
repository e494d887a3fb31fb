"""Auth and limits: API keys guard every non-health route, and oversized headers are refused."""

from __future__ import annotations

import httpx

from prebake.testing import ServerProcess

from .conftest import CORE_SCRIPTS

ECHO = str(CORE_SCRIPTS / "echo.py")
KEY = "s3cret-key-for-tests"


def test_api_key_guards_scoring_but_not_health(client: httpx.Client) -> None:
    """With PREBAKE_API_KEY set, /score needs the key (Bearer or x-api-key); probes stay open; keys never logged."""
    with ServerProcess(["--entry-script", ECHO], env={"PREBAKE_API_KEY": KEY}) as server:
        assert client.get(server.url + "/").status_code == 200
        assert client.get(server.url + "/v2/health/ready").status_code == 200
        missing = client.post(server.url + "/score", content=b"{}")
        assert missing.status_code == 401
        assert "API key" in missing.json()["message"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = client.post(server.url + "/score", content=b"{}", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bearer = client.post(server.url + "/score", content=b"{}", headers={"authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 200
        header = client.post(server.url + "/score", content=b"{}", headers={"x-api-key": KEY})
        assert header.status_code == 200
        assert KEY not in server.logs()


def test_api_keys_from_a_file(tmp_path, client: httpx.Client) -> None:
    """--api-key-file reads one key per line; any of them is accepted."""
    keys = tmp_path / "keys"
    keys.write_text("# rotated monthly\nfirst-key\nsecond-key\n")
    with ServerProcess(["--entry-script", ECHO, "--api-key-file", str(keys)]) as server:
        for key in ("first-key", "second-key"):
            ok = client.post(server.url + "/score", content=b"{}", headers={"x-api-key": key})
            assert ok.status_code == 200
        assert (
            client.post(
                server.url + "/score", content=b"{}", headers={"x-api-key": "# rotated monthly"}
            ).status_code
            == 401
        )


def test_oversized_headers_get_431(echo_server: ServerProcess, client: httpx.Client) -> None:
    """Request headers over 64 KiB in total answer 431 and the server keeps serving."""
    headers = {f"x-filler-{i}": "y" * 4000 for i in range(20)}
    response = client.post(echo_server.url + "/score", content=b"{}", headers=headers)
    assert response.status_code == 431
    assert client.post(echo_server.url + "/score", content=b"{}").status_code == 200
