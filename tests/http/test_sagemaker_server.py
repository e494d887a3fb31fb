"""SageMaker's contract on a real `prebake serve` process: the port from SAGEMAKER_BIND_TO_PORT, /ping,
and /invocations handing the body to an entry script unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from prebake.testing import ServerProcess, free_port

from .conftest import CORE_SCRIPTS


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    port = free_port()
    process = ServerProcess(
        ["--entry-script", str(CORE_SCRIPTS / "echo.py")],
        env={"SAGEMAKER_BIND_TO_PORT": str(port)},
        port=port,
        ready_path="/ping",
    )
    # The port must come from the environment, as SageMaker sets it: drop the helper's --port flag.
    assert process.args[-2:] == ["--port", str(port)]
    del process.args[-2:]
    with process:
        yield process


def test_ping_on_the_sagemaker_port(server: ServerProcess) -> None:
    """GET /ping answers 200 on the port SageMaker named."""
    assert httpx.get(server.url + "/ping").status_code == 200


def test_invocations_reach_the_entry_script(server: ServerProcess) -> None:
    """POST /invocations hands the body to score.py's run() and returns its answer."""
    response = httpx.post(server.url + "/invocations", json={"echo": "hello"})
    assert response.status_code == 200
    assert response.json()["echo"] == "hello"


def test_entry_script_errors_are_500(server: ServerProcess) -> None:
    """An exception in run() is a 500 on /invocations, not a hang or a 200."""
    response = httpx.post(server.url + "/invocations", json={"raise": True})
    assert response.status_code == 500
