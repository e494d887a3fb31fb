"""Open Inference Protocol V2, REST and gRPC, on a real `prebake serve` process with two workers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from prebake.testing import ServerProcess, free_port

from .conftest import CORE_SCRIPTS

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is a test-only extra")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerProcess, int]]:
    grpc_port = free_port()
    args = ["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--workers", "2", "--grpc-port", str(grpc_port)]
    with ServerProcess(args) as process:
        yield process, grpc_port


def test_rest_metadata_and_repository(server: tuple[ServerProcess, int]) -> None:
    """The server metadata, model metadata and repository index answer on the HTTP port."""
    process, _ = server
    assert "binary_tensor_data" in httpx.get(process.url + "/v2").json()["extensions"]
    assert httpx.get(process.url + "/v2/models/score").json()["name"] == "score"
    index = httpx.post(process.url + "/v2/repository/index").json()
    assert index == [{"name": "score", "version": "", "state": "READY", "reason": ""}]
    assert httpx.get(process.url + "/v2/models/nope").status_code == 404


def test_rest_infer_on_an_entry_script_is_a_clear_400(server: tuple[ServerProcess, int]) -> None:
    """V2 infer on a raw entry script is refused with a message, not a crash."""
    process, _ = server
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}
    response = httpx.post(process.url + "/v2/models/score/infer", json=body)
    assert response.status_code == 400 and "raw requests" in response.json()["error"]


def test_grpc_port_serves_every_worker(server: tuple[ServerProcess, int]) -> None:
    """Both workers bind the gRPC port (SO_REUSEPORT) and tritonclient.grpc gets answers on fresh channels."""
    process, grpc_port = server
    assert len(process.worker_pids()) == 2
    for _ in range(8):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.get_server_metadata().name == "prebake"
            assert [m.name for m in client.get_model_repository_index().models] == ["score"]
            with pytest.raises(InferenceServerException, match="not found"):
                client.get_model_metadata("nope")
        finally:
            client.close()
