"""tritonclient.http, unchanged, against the V2 REST routes served by the real app on a socket."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from prebake.protocols import v2

from .backend import ComputingBackend, served

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is a test-only extra")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[httpclient.InferenceServerClient]:
    with served(v2.routes(ComputingBackend())) as url:
        client = httpclient.InferenceServerClient(url)
        yield client
        client.close()


def test_metadata_and_readiness(client: httpclient.InferenceServerClient) -> None:
    """Model metadata, model readiness and the repository index read through tritonclient."""
    assert client.get_server_metadata()["name"] == "prebake"
    assert client.get_model_metadata("double")["inputs"][0]["name"] == "x"
    assert client.is_model_ready("double") is True
    assert client.get_model_config("double")["output"][0]["data_type"] == "TYPE_FP32"
    assert client.is_model_ready("cold") is False
    assert {m["name"] for m in client.get_model_repository_index()} >= {"double", "cold"}


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(3, 2),
        np.arange(6, dtype=np.float16).reshape(3, 2),
        np.array([[True, False]]),
        np.array([[-5, 7]], dtype=np.int8),
        np.array([[2**63 - 1, 3]], dtype=np.uint64),
        np.array([[b"ab", b"\xc3\xa9"]], dtype=object),
    ],
    ids=["fp32", "fp16", "bool", "int8", "uint64", "bytes"],
)
def test_infer_round_trip(client: httpclient.InferenceServerClient, array: np.ndarray, binary: bool) -> None:
    """Every datatype sent by tritonclient as binary or JSON comes back from the echo model equal."""
    from tritonclient.utils import np_to_triton_dtype

    tensor = httpclient.InferInput("t", list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("t", binary_data=binary)]
    result = client.infer("echo", [tensor], outputs=outputs, request_id="abc")
    got = result.as_numpy("t")
    assert got.shape == array.shape
    expected = array.tolist()
    if array.dtype == object and not binary:
        # JSON carries text: tritonclient (as with Triton) hands BYTES back as str.
        expected = [[b.decode() for b in row] for row in expected]
    assert got.tolist() == expected
    assert result.get_response()["id"] == "abc"


def test_infer_all_outputs_binary_by_default(client: httpclient.InferenceServerClient) -> None:
    """Without requested outputs tritonclient asks for binary_data_output and reads every output."""
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    tensor = httpclient.InferInput("x", [1, 2], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("double", [tensor], request_compression_algorithm="gzip")
    assert result.as_numpy("y").tolist() == [[2.0, 4.0]]


def test_errors_reach_tritonclient(client: httpclient.InferenceServerClient) -> None:
    """A server-side error surfaces as InferenceServerException with the server's message and status."""
    tensor = httpclient.InferInput("x", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="not found") as info:
        client.infer("nope", [tensor])
    assert info.value.status() == "404"


def test_load_and_unload(client: httpclient.InferenceServerClient) -> None:
    """tritonclient's load_model and unload_model change a model's readiness."""
    client.load_model("cold")
    assert client.is_model_ready("cold")
    client.unload_model("cold")
    assert not client.is_model_ready("cold")
