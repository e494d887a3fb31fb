"""Triton's extensions through real `prebake serve --model-repository` processes, with tritonclient.http and
tritonclient.grpc unchanged: classification, the model configuration (max_batch_size, dims, format, load
with a config), sequence control inputs, system shared memory (with tritonclient.utils.shared_memory,
across workers too), CUDA shared memory answered as a Triton without GPUs, and Triton's wording."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from prebake.testing import ServerProcess, free_port

from .triton_models import LABELS, build

pytest.importorskip("onnxruntime", reason="the ONNX runtime is a framework extra")
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient is a test-only extra")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is a test-only extra")
shm = pytest.importorskip("tritonclient.utils.shared_memory", reason="tritonclient is a test-only extra")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("triton") / "models")


class Clients:
    def __init__(self, process: ServerProcess, grpc_port: int) -> None:
        self.process = process
        self.url = process.url
        self.http = httpclient.InferenceServerClient(process.url.removeprefix("http://"))
        self.grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")

    def close(self) -> None:
        self.http.close()
        self.grpc.close()


@contextlib.contextmanager
def _serve(repository: Path, *extra: str) -> Iterator[Clients]:
    grpc_port = free_port()
    args = ["--model-repository", str(repository), "--grpc-port", str(grpc_port), *extra]
    with ServerProcess(args, start_timeout=60) as process:
        clients = Clients(process, grpc_port)
        try:
            yield clients
        finally:
            clients.close()


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[Clients]:
    with _serve(repository, "--allow-client-shm") as clients:
        yield clients


@pytest.fixture
def region() -> Iterator[Any]:
    """Makes shared memory regions with unique keys (the machine is shared) and destroys them after."""
    made: list[Any] = []

    def make(name: str, size: int) -> tuple[Any, str]:
        key = f"/prebake-test-{uuid.uuid4().hex[:12]}"
        handle = shm.create_shared_memory_region(name, key, size)
        made.append(handle)
        return handle, key

    yield make
    for handle in made:
        shm.destroy_shared_memory_region(handle)


def _simple_inputs(client: Any, rows: int = 1) -> tuple[list[Any], np.ndarray, np.ndarray]:
    a = np.arange(16 * rows, dtype=np.int32).reshape(rows, 16)
    b = np.ones((rows, 16), dtype=np.int32)
    inputs = [
        client.InferInput("INPUT0", [rows, 16], "INT32"),
        client.InferInput("INPUT1", [rows, 16], "INT32"),
    ]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return inputs, a, b


# -- classification -------------------------------------------------------------------------------------


def _expected_classes(row: np.ndarray, k: int, labels: list[str] | None) -> list[bytes]:
    order = np.argsort(-row, kind="stable")[:k]
    return [(f"{row[i]:f}:{i}" + (f":{labels[i]}" if labels else "")).encode() for i in order.tolist()]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_classification_gives_top_k_with_labels(server: Clients, transport: str) -> None:
    """classification=k on an output returns, per row, the k highest scores as "score:index:label" BYTES
    (labels from the model's settings), over REST and gRPC alike."""
    client, module = (server.http, httpclient) if transport == "http" else (server.grpc, grpcclient)
    scores = np.array([[0.1, 0.9, 0.3, 0.7, 0.2], [5.0, 4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    tensor = module.InferInput("INPUT0", list(scores.shape), "FP32")
    tensor.set_data_from_numpy(scores)
    result = client.infer("scores", [tensor], outputs=[module.InferRequestedOutput("SCORES", class_count=3)])
    got = result.as_numpy("SCORES")
    assert got.shape == (2, 3)
    assert [list(r) for r in got] == [_expected_classes(r, 3, LABELS) for r in scores]


def test_classification_of_a_model_that_does_not_batch_and_has_no_labels(server: Clients) -> None:
    """A non-batching model gets the top k of its whole output (shape [k]) as "score:index"; k past the
    number of scores is cut to it, as in Triton."""
    scores = np.array([0.5, 0.25, 2.0, -1.0, 0.75], dtype=np.float32)
    tensor = httpclient.InferInput("INPUT0", [5], "FP32")
    tensor.set_data_from_numpy(scores)
    out = httpclient.InferRequestedOutput("SCORES", class_count=9)
    got = server.http.infer("flat", [tensor], outputs=[out]).as_numpy("SCORES")
    assert got.shape == (5,) and list(got) == _expected_classes(scores, 5, None)


def test_classification_of_strings_is_refused(server: Clients) -> None:
    """A BYTES output cannot be classified: 400 with Triton's words, and the server serves on."""
    tensor = httpclient.InferInput("INPUT0", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"x"]], dtype=object))
    with pytest.raises(InferenceServerException, match="class result not available") as info:
        server.http.infer(
            "strings", [tensor], outputs=[httpclient.InferRequestedOutput("OUTPUT0", class_count=1)]
        )
    assert info.value.status() == "400"
    assert server.http.is_model_ready("strings")


# -- the model configuration ----------------------------------------------------------------------------


def test_config_reports_batching_dims_and_format(server: Clients) -> None:
    """The configuration has the model's max_batch_size, dims without the batch dimension where it batches
    (as Triton's config.pbtxt), and an image input's format, over REST and gRPC."""
    http = server.http.get_model_config("simple")
    assert http["max_batch_size"] == 8
    assert [i["dims"] for i in http["input"]] == [[16], [16]]
    grpc = server.grpc.get_model_config("simple").config
    assert grpc.max_batch_size == 8 and list(grpc.input[0].dims) == [16]
    image = server.http.get_model_config("image")
    assert image["max_batch_size"] == 0 and image["input"][0] == {
        "name": "data_0", "data_type": "TYPE_FP32", "dims": [3, 4, 4], "format": "FORMAT_NCHW",
    }  # fmt: skip
    assert (
        server.grpc.get_model_config("image", as_json=True)["config"]["input"][0]["format"] == "FORMAT_NCHW"
    )


def test_load_with_a_config_override_in_protobuf_json(repository: Path) -> None:
    """load_model with a config of max_batch_size as a string (protobuf JSON, as Triton's examples send)
    changes it; a config that is not JSON fails with Triton's "failed to load" and "Invalid config
    override"; a file: override is refused as INVALID_ARGUMENT with "failed to poll from model repository"."""
    with _serve(repository) as clients:
        clients.http.load_model("simple", config='{"max_batch_size":"16"}')
        assert clients.http.get_model_config("simple")["max_batch_size"] == 16
        with pytest.raises(
            InferenceServerException, match="failed to load 'simple'.*Invalid config override"
        ):
            clients.http.load_model("simple", config='"parameters": {"config": {{"max_batch_size": "16"}}}')
        with pytest.raises(InferenceServerException, match="failed to poll from model repository") as info:
            clients.grpc.load_model("simple", config="{}", files={"file:" + "A" * 256: b"a"})
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert clients.grpc.is_server_live() and clients.grpc.is_model_ready("simple")


def test_unknown_model_is_tritons_404_and_names_no_other_model(server: Clients) -> None:
    """An unknown model or version answers Triton's words, and lists none of the models the server has."""
    answer = httpx.get(server.url + "/v2/models/nope")
    assert answer.status_code == 404
    assert answer.json()["error"] == "Request for unknown model: 'nope' is not found"
    version = httpx.get(server.url + "/v2/models/simple/versions/7")
    assert version.json()["error"] == "Request for unknown model: 'simple' version 7 is not found"
    for name in ("simple", "scores", "strings", "seq"):
        assert name not in answer.text
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope' is not found"):
        server.grpc.get_model_metadata("nope")


# -- sequences -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sequence_controls_are_given_by_the_server(server: Clients, transport: str) -> None:
    """A sequence model gets START, END, READY and CORRID from each request's flags; clients see only its
    own inputs in the metadata."""
    client, module = (server.http, httpclient) if transport == "http" else (server.grpc, grpcclient)
    meta = client.get_model_metadata("seq")
    names = [i["name"] for i in meta["inputs"]] if transport == "http" else [i.name for i in meta.inputs]
    assert names == ["INPUT"]
    got = []
    for value, start, end in ((1, True, False), (2, False, False), (3, False, True)):
        tensor = module.InferInput("INPUT", [1, 1], "INT32")
        tensor.set_data_from_numpy(np.array([[value]], dtype=np.int32))
        result = client.infer("seq", [tensor], sequence_id=5, sequence_start=start, sequence_end=end)
        got.append(int(result.as_numpy("OUTPUT")[0][0]))
    assert got == [1 + 10 + 5, 2 + 5, 3 + 100 + 5]


def test_sequence_requests_need_an_id_and_one_row(server: Clients) -> None:
    """Without a correlation ID, or with more than one row, a sequence request is a 400 in Triton's words."""
    tensor = httpclient.InferInput("INPUT", [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[1]], dtype=np.int32))
    with pytest.raises(InferenceServerException, match="must specify a non-zero or non-empty correlation ID"):
        server.http.infer("seq", [tensor])
    two = grpcclient.InferInput("INPUT", [2, 1], "INT32")
    two.set_data_from_numpy(np.array([[1], [2]], dtype=np.int32))
    with pytest.raises(InferenceServerException, match="must specify batch-size 1") as info:
        server.grpc.infer("seq", [two], sequence_id=3, sequence_start=True)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


# -- system shared memory ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_shared_memory_inputs_and_outputs(server: Clients, region: Any, transport: str) -> None:
    """Inputs read from and outputs written to registered regions (offsets included); status lists the
    regions; unregister removes them."""
    client, module = (server.http, httpclient) if transport == "http" else (server.grpc, grpcclient)
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, dtype=np.int32)
    ins, in_key = region("in", 128)
    outs, out_key = region("out", 128)
    shm.set_shared_memory_region(ins, [a])
    shm.set_shared_memory_region(ins, [b], offset=64)
    client.unregister_system_shared_memory()
    client.register_system_shared_memory("in", in_key, 128)
    client.register_system_shared_memory("out", out_key, 128)
    try:
        inputs = [
            module.InferInput("INPUT0", [1, 16], "INT32"),
            module.InferInput("INPUT1", [1, 16], "INT32"),
        ]
        inputs[0].set_shared_memory("in", 64)
        inputs[1].set_shared_memory("in", 64, offset=64)
        outputs = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
        outputs[0].set_shared_memory("out", 64)
        outputs[1].set_shared_memory("out", 64, offset=64)
        result = client.infer("simple", inputs, outputs=outputs)
        assert result.get_output("OUTPUT0") is not None
        assert shm.get_contents_as_numpy(outs, np.int32, [1, 16]).tolist() == (a + b).tolist()
        assert shm.get_contents_as_numpy(outs, np.int32, [1, 16], offset=64).tolist() == (a - b).tolist()
        status = client.get_system_shared_memory_status()
        listed = {r["name"]: r for r in status} if transport == "http" else dict(status.regions)
        assert set(listed) == {"in", "out"}
    finally:
        client.unregister_system_shared_memory()
    assert len(server.http.get_system_shared_memory_status()) == 0


def test_shared_memory_strings(server: Clients, region: Any) -> None:
    """BYTES inputs and outputs go through regions as length-prefixed elements."""
    from tritonclient.utils import serialize_byte_tensor, serialized_byte_size

    data = np.array([[b"alpha", b"be", b""]], dtype=object)
    raw = serialize_byte_tensor(data)
    size = serialized_byte_size(raw)
    ins, in_key = region("s-in", size)
    outs, out_key = region("s-out", 256)
    shm.set_shared_memory_region(ins, [raw])
    server.grpc.register_system_shared_memory("s-in", in_key, size)
    server.grpc.register_system_shared_memory("s-out", out_key, 256)
    try:
        tensor = grpcclient.InferInput("INPUT0", [1, 3], "BYTES")
        tensor.set_shared_memory("s-in", size)
        out = grpcclient.InferRequestedOutput("OUTPUT0")
        out.set_shared_memory("s-out", 256)
        server.grpc.infer("strings", [tensor], outputs=[out])
        assert shm.get_contents_as_numpy(outs, np.object_, [1, 3]).tolist() == data.tolist()
    finally:
        server.grpc.unregister_system_shared_memory("s-in")
        server.grpc.unregister_system_shared_memory("s-out")


def _infer_shm_http(
    url: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"inputs": inputs}
    if outputs is not None:
        body["outputs"] = outputs
    return httpx.post(url + "/v2/models/simple/infer", json=body, timeout=30)


def _shm_input(name: str, region: str, size: int, offset: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"shared_memory_region": region, "shared_memory_byte_size": size}
    if offset is not None:
        params["shared_memory_offset"] = offset
    return {"name": name, "datatype": "INT32", "shape": [1, 16], "parameters": params}


def test_bad_shared_memory_requests_are_400s(server: Clients, region: Any) -> None:
    """Every way a client can get shared memory wrong is a 400 (gRPC INVALID_ARGUMENT) naming what is
    wrong, in Triton's words, and the server serves on."""
    handle, key = region("bad", 128)
    server.http.register_system_shared_memory("bad", key, 128)
    data = {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": list(range(16))}
    cases = {
        "Unable to find shared memory region: 'nope'": [_shm_input("INPUT0", "nope", 64), data],
        "Invalid offset for shared memory region: 'bad'": [_shm_input("INPUT0", "bad", 64, offset=128), data],
        "Invalid offset + byte size for shared memory region: 'bad'": [
            _shm_input("INPUT0", "bad", 64, offset=100),
            data,
        ],
        "needs 64 bytes, got 32": [_shm_input("INPUT0", "bad", 32), data],
        "'shared_memory_byte_size' must be specified": [
            {
                "name": "INPUT0",
                "datatype": "INT32",
                "shape": [1, 16],
                "parameters": {"shared_memory_region": "bad"},
            },
            data,
        ],
    }
    for message, inputs in cases.items():
        answer = _infer_shm_http(server.url, inputs)
        assert answer.status_code == 400 and message in answer.json()["error"], (message, answer.text)
    both = [
        {
            **data,
            "name": "INPUT0",
            "parameters": {"shared_memory_region": "bad", "shared_memory_byte_size": 64},
        },
        data,
    ]
    answer = _infer_shm_http(server.url, both)
    assert (
        answer.status_code == 400
        and "Input must set only one of the following fields" in answer.json()["error"]
    )
    classes = {
        "Output can't set both 'shared_memory_region' and 'classification'": {
            "shared_memory_region": "bad", "shared_memory_byte_size": 64, "classification": 2,
        },
        "invalid value type for 'classification' parameter": {"classification": "2"},
        "invalid value for 'shared_memory_offset' parameter": {
            "shared_memory_region": "bad", "shared_memory_byte_size": 64, "shared_memory_offset": -4,
        },
    }  # fmt: skip
    for message, params in classes.items():
        answer = _infer_shm_http(
            server.url, [{**data, "name": "INPUT0"}, data], [{"name": "OUTPUT0", "parameters": params}]
        )
        assert answer.status_code == 400 and message in answer.json()["error"], (message, answer.text)
    small = _infer_shm_http(
        server.url,
        [{**data, "name": "INPUT0"}, data],
        [{"name": "OUTPUT0", "parameters": {"shared_memory_region": "bad", "shared_memory_byte_size": 16}}],
    )
    assert (
        small.status_code == 400
        and "should be at least 64 bytes to hold the results" in small.json()["error"]
    )
    with pytest.raises(InferenceServerException, match="Invalid offset for shared memory region") as info:
        inputs, _, _ = _simple_inputs(grpcclient)
        inputs[0].set_shared_memory("bad", 64, offset=500)
        server.grpc.infer("simple", inputs)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"

    registrations = {
        "already in manager": ("bad", key, 0, 128),
        "invalid args": ("big", key, 0, 4096),
        "Unable to open shared memory region": ("gone", "/prebake-test-no-such-key", 0, 16),
        "invalid shm key": ("escape", "/../etc/passwd", 0, 16),
        "reserved prefix": ("python", "/triton_python_backend_shm_region_1", 0, 16),
        "byte_size must be at least 1": ("zero", key, 0, 0),
    }
    for message, (name, bad_key, offset, size) in registrations.items():
        answer = httpx.post(
            f"{server.url}/v2/systemsharedmemory/region/{name}/register",
            json={"key": bad_key, "offset": offset, "byte_size": size},
        )
        assert answer.status_code == 400 and message in answer.json()["error"], (message, answer.text)
        with pytest.raises(InferenceServerException, match=message) as info:
            server.grpc.register_system_shared_memory(name, bad_key, size, offset)
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    missing = httpx.post(f"{server.url}/v2/systemsharedmemory/region/x/register", json={"byte_size": 4})
    assert missing.status_code == 400 and "has no 'key' field" in missing.json()["error"]
    unknown = httpx.get(f"{server.url}/v2/systemsharedmemory/region/nope/status")
    assert unknown.status_code == 404 and "Unable to find system shared memory region: 'nope'" in unknown.text
    server.http.unregister_system_shared_memory("bad")
    inputs, a, b = _simple_inputs(httpclient)
    assert server.http.infer("simple", inputs).as_numpy("OUTPUT0").tolist() == (a + b).tolist()


def test_registration_needs_allow_client_shm(repository: Path) -> None:
    """Without --allow-client-shm, registering is refused as Triton refuses it (501, UNIMPLEMENTED), and
    status still answers."""
    with _serve(repository) as clients:
        with pytest.raises(InferenceServerException, match="Client shared memory is disabled") as info:
            clients.http.register_system_shared_memory("r", "/prebake-test-any", 16)
        assert info.value.status() == "501"
        with pytest.raises(InferenceServerException, match="--allow-client-shm") as info:
            clients.grpc.unregister_system_shared_memory()
        assert info.value.status() == "StatusCode.UNIMPLEMENTED"
        assert clients.http.get_system_shared_memory_status() == []


def test_cuda_shared_memory_is_answered_as_triton_without_gpus(server: Clients) -> None:
    """No CUDA shared memory here: status is empty, unregister succeeds, register says GPUs are not supported."""
    assert server.http.get_cuda_shared_memory_status() == []
    server.http.unregister_cuda_shared_memory()
    server.grpc.unregister_cuda_shared_memory()
    answer = httpx.post(
        f"{server.url}/v2/cudasharedmemory/region/c/register",
        json={"raw_handle": {"b64": "AAAA"}, "device_id": 0, "byte_size": 16},
    )
    assert answer.status_code == 400 and "GPUs not supported" in answer.json()["error"]


def test_registrations_act_for_every_worker(repository: Path, region: Any) -> None:
    """With --workers 2, a region registered through one connection serves requests on fresh connections
    (spread over both workers), and once unregistered is gone for all of them."""
    with _serve(repository, "--allow-client-shm", "--workers", "2") as clients:
        assert len(clients.process.worker_pids()) == 2
        handle, key = region("w", 128)
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        shm.set_shared_memory_region(handle, [a, a])
        clients.http.register_system_shared_memory("w", key, 128)
        inputs = [_shm_input("INPUT0", "w", 64), _shm_input("INPUT1", "w", 64, offset=64)]
        workers = clients.process.worker_pids()

        def mapped() -> set[int]:
            return {pid for pid in workers if key in Path(f"/proc/{pid}/maps").read_text()}

        # A new connection each time, until each worker has served one (which worker accepts is the
        # kernel's choice): every one of them maps the region itself and answers from it.
        for _ in range(300):
            answer = _infer_shm_http(clients.url, inputs)
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["data"] == (2 * a).reshape(-1).tolist()
            if mapped() == set(workers):
                break
        assert mapped() == set(workers), f"after 300 requests only {mapped()} of {workers} mapped it"
        clients.grpc.unregister_system_shared_memory("w")
        # Once one worker recorded the unregistration, every worker refuses the region and lets it go.
        for _ in range(300):
            answer = _infer_shm_http(clients.url, inputs)
            assert answer.status_code == 400 and "Unable to find shared memory region: 'w'" in answer.text
            if not mapped():
                break
        assert not mapped(), f"after 300 requests {mapped()} still map it"
