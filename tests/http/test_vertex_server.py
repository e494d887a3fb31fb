"""Vertex AI's contract on a real `prebake serve` process: AIP_HTTP_PORT, AIP_HEALTH_ROUTE and
AIP_PREDICT_ROUTE honoured."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from prebake.testing import ServerProcess, free_port

from .conftest import CORE_SCRIPTS

HEALTH = "/v1/endpoints/123/deployedModels/456/health"
PREDICT = "/v1/endpoints/123/deployedModels/456:predict"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    port = free_port()
    process = ServerProcess(
        ["--entry-script", str(CORE_SCRIPTS / "echo.py")],
        env={"AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": HEALTH, "AIP_PREDICT_ROUTE": PREDICT},
        port=port,
        ready_path=HEALTH,
    )
    # The port must come from the environment, as Vertex AI sets it: drop the helper's --port flag.
    assert process.args[-2:] == ["--port", str(port)]
    del process.args[-2:]
    with process:
        yield process


def test_health_route_from_the_environment(server: ServerProcess) -> None:
    """The health route Vertex AI names answers 200 on the port it names."""
    assert httpx.get(server.url + HEALTH).status_code == 200


def test_predict_route_from_the_environment(server: ServerProcess) -> None:
    """The predict route Vertex AI names reaches the model (here an entry script, body unchanged)."""
    response = httpx.post(server.url + PREDICT, json={"echo": [1, 2]})
    assert response.status_code == 200 and response.json()["echo"] == [1, 2]
