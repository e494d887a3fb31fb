"""Open Inference Protocol V2 over gRPC: our generated stubs and tritonclient.grpc, unchanged, against
the V2 servicer on the server's gRPC transport (a real port) with a backend that computes."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from prebake.protocols.grpc_v2 import grpc_predict_v2_pb2 as pb
from prebake.protocols.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from prebake.server.grpc_transport import grpc_code

from .backend import ComputingBackend, served_grpc

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is a test-only extra")
from tritonclient.utils import InferenceServerException, np_to_triton_dtype  # noqa: E402


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served_grpc(ComputingBackend()) as address:
        yield address


@pytest.fixture(scope="module")
def stub(url: str) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(url) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def triton(url: str) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(url)
    yield client
    client.close()


def test_health_and_metadata(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    """ServerLive, ServerReady, ModelReady, ServerMetadata and ModelMetadata answer as the spec says."""
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="double")).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="cold")).ready
    assert stub.ServerMetadata(pb.ServerMetadataRequest()).name == "prebake"
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="double", version="1"))
    assert (
        meta.platform == "test_double"
        and meta.inputs[0].name == "x"
        and list(meta.inputs[0].shape) == [-1, 2]
    )


def test_typed_contents_infer(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    """Typed contents in, raw contents out: INT32 data sent in int_contents comes back doubled."""
    request = pb.ModelInferRequest(model_name="double", id="q")
    request.inputs.add(
        name="x", datatype="INT32", shape=[2, 2], contents=pb.InferTensorContents(int_contents=[1, 2, 3, -4])
    )
    request.parameters["answer"].int64_param = 42
    response = stub.ModelInfer(request)
    assert response.id == "q" and response.model_name == "double"
    assert response.outputs[0].datatype == "INT32" and list(response.outputs[0].shape) == [2, 2]
    assert np.frombuffer(response.raw_output_contents[0], "<i4").tolist() == [2, 4, 6, -8]


@pytest.mark.parametrize(
    ("datatype", "status", "fragment", "contents", "shape"),
    [
        (
            "FP32",
            grpc.StatusCode.INVALID_ARGUMENT,
            "needs 3 elements",
            pb.InferTensorContents(fp32_contents=[1]),
            [3],
        ),
        ("FP16", grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents", pb.InferTensorContents(), [1]),
        ("NOPE", grpc.StatusCode.INVALID_ARGUMENT, "unknown datatype", pb.InferTensorContents(), [1]),
        (
            "FP32",
            grpc.StatusCode.INVALID_ARGUMENT,
            "non-negative",
            pb.InferTensorContents(fp32_contents=[1, 2, 3]),
            [-1, -3],
        ),
    ],
)
def test_bad_requests_are_invalid_argument(
    stub: pb_grpc.GRPCInferenceServiceStub,
    datatype: str,
    status: grpc.StatusCode,
    fragment: str,
    contents: pb.InferTensorContents,
    shape: list[int],
) -> None:
    """Malformed tensors are INVALID_ARGUMENT with a message naming the problem."""
    request = pb.ModelInferRequest(model_name="double")
    request.inputs.add(name="x", datatype=datatype, shape=shape, contents=contents)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == status
    assert fragment in info.value.details()


def test_unknown_and_unready_models(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    """An unknown model is NOT_FOUND and an unloaded one UNAVAILABLE."""
    request = pb.ModelInferRequest(model_name="nope", raw_input_contents=[b"\0\0\0\0"])
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    request.model_name = "cold"
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "array",
    [
        np.array([[True, False]]),
        np.array([[1, 255]], dtype=np.uint8),
        np.array([[1, 65535]], dtype=np.uint16),
        np.array([[1, 2**32 - 1]], dtype=np.uint32),
        np.array([[1, 2**64 - 1]], dtype=np.uint64),
        np.array([[-128, 127]], dtype=np.int8),
        np.array([[-(2**15), 5]], dtype=np.int16),
        np.array([[-(2**31), 5]], dtype=np.int32),
        np.array([[-(2**63), 5]], dtype=np.int64),
        np.array([[0.5, -1.5]], dtype=np.float16),
        np.array([[0.25, 1e30]], dtype=np.float32),
        np.array([[0.1, 1e300]], dtype=np.float64),
        np.array([[b"ab", b"\xff\x00"]], dtype=object),
    ],
    ids=lambda a: str(a.dtype),
)
def test_tritonclient_grpc_round_trips_every_datatype(
    triton: grpcclient.InferenceServerClient, array: np.ndarray
) -> None:
    """tritonclient.grpc sends every datatype as raw contents and reads it back equal from the echo model."""
    tensor = grpcclient.InferInput("t", list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array)
    result = triton.infer("echo", [tensor], outputs=[grpcclient.InferRequestedOutput("t")], request_id="7")
    got = result.as_numpy("t")
    assert got.shape == array.shape and got.tolist() == array.tolist()
    assert result.get_response().id == "7"


def test_tritonclient_grpc_health_metadata_repository(triton: grpcclient.InferenceServerClient) -> None:
    """tritonclient.grpc's health, metadata and repository calls work unchanged."""
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.get_model_metadata("double").inputs[0].datatype == "FP32"
    config = triton.get_model_config("double", as_json=True)["config"]
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": ["-1", "2"]}]
    assert {m.name for m in triton.get_model_repository_index().models} >= {"double", "cold"}
    triton.load_model("cold")
    assert triton.is_model_ready("cold")
    triton.unload_model("cold")
    assert not triton.is_model_ready("cold")
    with pytest.raises(InferenceServerException, match="not found"):
        triton.get_model_metadata("nope")


def test_grpc_code_mapping() -> None:
    """Each PrebakeError status maps to the gRPC code a client would look for."""
    assert grpc_code(400) == grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_code(404) == grpc.StatusCode.NOT_FOUND
    assert grpc_code(503) == grpc.StatusCode.UNAVAILABLE
    assert grpc_code(504) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert grpc_code(500) == grpc.StatusCode.INTERNAL
    assert grpc_code(418) == grpc.StatusCode.INVALID_ARGUMENT


def test_api_keys_guard_all_but_the_probes() -> None:
    """With API keys, calls without one are UNAUTHENTICATED; the live/ready probes stay open."""
    with served_grpc(ComputingBackend(), api_keys=(b"s3cret",)) as address:
        client = grpcclient.InferenceServerClient(address)
        try:
            assert client.is_server_live() and client.is_server_ready()
            with pytest.raises(InferenceServerException, match="needs an API key") as info:
                client.get_server_metadata()
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
            tensor = grpcclient.InferInput("x", [1], "FP32")
            tensor.set_data_from_numpy(np.ones(1, dtype=np.float32))
            with pytest.raises(InferenceServerException, match="needs an API key"):
                client.infer("double", [tensor])
            result = client.infer("double", [tensor], headers={"authorization": "Bearer s3cret"})
            assert result.as_numpy("y").tolist() == [2.0]
        finally:
            client.close()


def test_raw_and_typed_contents_together_are_refused(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    """The spec forbids typed contents beside raw_input_contents; such a request is INVALID_ARGUMENT."""
    request = pb.ModelInferRequest(model_name="double", raw_input_contents=[b"\0\0\0\0"])
    request.inputs.add(
        name="x", datatype="FP32", shape=[1], contents=pb.InferTensorContents(fp32_contents=[1])
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert (
        info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "contents field must not be specified" in info.value.details()
    )


def test_tritonclient_stream_infer(url: str) -> None:
    """tritonclient.grpc's stream gets each request's result, and a failed request's error, on one stream."""
    import queue

    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    try:
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        for value in (1.0, 2.0):
            tensor = grpcclient.InferInput("x", [1], "FP32")
            tensor.set_data_from_numpy(np.array([value], dtype=np.float32))
            client.async_stream_infer("double", [tensor], request_id=str(value))
        bad = grpcclient.InferInput("x", [1], "FP32")
        bad.set_data_from_numpy(np.array([1.0], dtype=np.float32))
        client.async_stream_infer("nope", [bad])
        got = [results.get(timeout=10) for _ in range(3)]
    finally:
        client.stop_stream()
        client.close()
    assert [r.as_numpy("y").tolist() for r, e in got[:2]] == [[2.0], [4.0]]  # type: ignore[attr-defined]
    assert got[2][0] is None and "not found" in str(got[2][1])
