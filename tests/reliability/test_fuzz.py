"""Schemathesis against the OpenAPI description of every HTTP route, on real server processes.

Each operation gets schema-valid cases (positive) and schema-breaking ones (negative: wrong types,
missing fields, bad headers, wrong content types). Whatever the input, the server must answer without a
5xx it does not document, every error must be a JSON object in the route's own error shape, and no
body may show a traceback or a path. CI runs a few dozen cases per operation with a fixed seed; the slow
run (PREBAKE_SLOW=1) runs hundreds with fresh randomness.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import orjson
import pytest
import requests

from prebake.testing import ServerProcess

from .helpers import SCRIPTS, SLOW, iris_model, leaks, protocols_present, record

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402 - after the importorskip above

EXAMPLES = int(os.environ.get("PREBAKE_FUZZ_EXAMPLES") or (300 if SLOW else 25))


def build_document(args: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document of a server started with these flags, built the way the worker builds routes."""
    from prebake.config import load_config
    from prebake.server import openapi
    from prebake.server.metrics import Metrics
    from prebake.server.worker import build_repository

    backend, routes = build_repository(load_config(**args, env={}), Metrics(None))
    names = backend.model_names()
    return openapi.document([*routes, openapi.route(routes, models=names)], models=names)


def fetch_document(server: ServerProcess, flags: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(timeout=10) as http:
        served = http.get(server.url + "/openapi.json")
    if served.status_code == 200:
        doc: dict[str, Any] = served.json()
        return doc
    return build_document(flags)


def _error_keys(operation: Any) -> set[str]:
    content = operation.definition.raw["responses"]["default"]["content"]["application/json"]["schema"]
    return set(content["required"])


def _content_type(response: Any) -> str:
    for name, values in response.headers.items():
        if name.lower() == "content-type":
            return str(values[0] if isinstance(values, list) else values)
    return ""


def check(operation: Any, case: Any, response: Any) -> None:
    """The fuzz oracle: no undocumented 5xx, errors are the route's JSON shape, nothing leaks."""
    raw = operation.definition.raw
    status = response.status_code
    where = f"{case.method} {case.formatted_path} -> {status}: {response.text[:300]!r}"
    if status >= 500:
        # The entry script here never raises, so a 500 is the server's own fault even on /score.
        assert status != 500 and str(status) in raw["responses"], f"server error: {where}"
    assert not leaks(response.text), f"leak {leaks(response.text)}: {where}"
    if status >= 400 and case.method.upper() != "HEAD":
        assert _content_type(response).startswith("application/json"), where
        body = orjson.loads(response.content)
        assert isinstance(body, dict), where
        expected = _error_keys(operation)
        # An unknown route or method answers in the error shape of the path it was aimed at, or V2's.
        assert expected <= set(body) or {"error"} <= set(body), where


def fuzz(doc: dict[str, Any], base_url: str) -> tuple[Counter[str], list[str]]:
    """Run every operation of ``doc`` in both generation modes.

    Returns the cases sent per operation and the failures (one per operation and mode at most: Hypothesis
    stops an operation at its first failure and shrinks it), so one bug does not hide the others.
    """
    failures: list[str] = []
    schema = schemathesis.openapi.from_dict(doc)
    sent: Counter[str] = Counter()
    session = requests.Session()
    settings = hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not SLOW,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if operation.definition.raw.get("x-prebake-changes-state"):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(operation, mode, label, base_url, session, settings, sent)
            except AssertionError as error:
                failures.append(f"{label} ({mode.value}): {str(error).splitlines()[0]}")
    session.close()
    return sent, failures


def _fuzz_operation(
    operation: Any,
    mode: Any,
    label: str,
    base_url: str,
    session: requests.Session,
    settings: hypothesis.settings,
    sent: Counter[str],
) -> None:
    @settings
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, timeout=30)
        except (UnicodeError, ValueError, requests.exceptions.InvalidHeader):
            sent["unsendable"] += 1  # the client library refuses to send it (bad header bytes)
            return
        sent[label] += 1
        check(operation, case, response)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing in this operation can be made invalid (no parameters, no body): positive cases cover it.
        assert mode == GenerationMode.NEGATIVE


@pytest.fixture(scope="module")
def azure_server() -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    flags = {"entry_script": str(SCRIPTS / "robust.py")}
    with ServerProcess(["--entry-script", flags["entry_script"], "--max-body-bytes", "1000000"]) as server:
        yield server, flags


def test_fuzz_azure_routes(azure_server: tuple[ServerProcess, dict[str, Any]]) -> None:
    """Every route of an entry-script server survives schema-valid and schema-breaking input without a 5xx or a leak."""
    server, flags = azure_server
    sent, failures = fuzz(fetch_document(server, flags), server.url)
    record("fuzz-azure", {"cases": sum(sent.values()), "failures": failures, "per_operation": dict(sent)})
    print(f"fuzz azure: {sum(sent.values())} cases: {dict(sent)}")
    assert failures == []
    assert sent["POST /score"] > 0
    assert server.process is not None and server.process.poll() is None
    assert httpx.get(server.url + "/", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    """A no-code server for an iris classifier: V2, V1, SageMaker and Vertex routes in one process."""
    if not protocols_present():
        pytest.skip("the V2/V1/SageMaker/Vertex protocol modules are not in this tree")
    path = iris_model(tmp_path_factory.mktemp("fuzz") / "iris.joblib")
    with ServerProcess([str(path), "--max-body-bytes", "1000000"]) as server:
        yield server, {"models": (str(path),)}


def test_fuzz_model_routes(model_server: tuple[ServerProcess, dict[str, Any]]) -> None:
    """Every V2, V1, SageMaker and Vertex route of a no-code server survives valid and invalid input without a 5xx or a leak."""
    server, flags = model_server
    sent, failures = fuzz(fetch_document(server, flags), server.url)
    record("fuzz-models", {"cases": sum(sent.values()), "failures": failures, "per_operation": dict(sent)})
    print(f"fuzz models: {sum(sent.values())} cases: {dict(sent)}")
    assert failures == []
    assert sent["POST /v2/models/{name}/infer"] > 0 and sent["POST /invocations"] > 0
    assert server.process is not None and server.process.poll() is None
    assert httpx.get(server.url + "/v2/health/ready", timeout=10).status_code == 200


# ---- tensors, .npy bodies and gRPC: what the schema cannot say ---------------------------------------
# The OpenAPI document describes a tensor as "an object with name, datatype, shape, data"; what breaks a
# codec is inside that: shapes no array can take, data of another kind than its datatype, numbers past
# a datatype's range, nesting, binary lengths that lie. These strategies make exactly that, for V2 JSON,
# the binary extension, SageMaker's .npy and gRPC. The oracle is the same: a 4xx JSON error or a 200,
# never a 5xx, and the server answers on.

from hypothesis import strategies as st  # noqa: E402 - grouped with the tests that use it

DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BF16", "BYTES", "fp32", "FP128", ""]  # fmt: skip
_dims = st.one_of(
    st.integers(0, 8),
    st.sampled_from([2**31, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(-3, -1),
)
shapes = st.one_of(
    st.lists(_dims, max_size=6), st.lists(st.just(1), min_size=60, max_size=70), st.just([1, 4])
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what JSON (orjson) carries
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=20)


def _tensor_doc(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(st.sampled_from(["input-0", "x" * 300, ""])),
        "datatype": draw(st.sampled_from(DATATYPES)),
        "shape": draw(shapes),
        "data": draw(values),
    }


@st.composite
def v2_bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A V2 infer body: JSON tensors, or a binary tensor whose header may lie about its bytes (and, one
    time in eight, a valid iris row, so the served path is fuzzed too)."""
    if draw(st.integers(0, 7)) == 0:
        row = [draw(st.floats(-10, 10)) for _ in range(4)]
        doc = {
            "inputs": [
                {
                    "name": "input-0",
                    "datatype": draw(st.sampled_from(["FP64", "FP32"])),
                    "shape": [1, 4],
                    "data": row,
                }
            ]
        }
        return orjson.dumps(doc), {"content-type": "application/json"}
    if draw(st.booleans()):
        doc = {"inputs": [_tensor_doc(draw) for _ in range(draw(st.integers(1, 2)))]}
        if draw(st.booleans()):
            doc["parameters"] = {"p": draw(values)}
        return orjson.dumps(doc), {"content-type": "application/json"}
    raw = draw(st.binary(max_size=64))
    size = draw(st.one_of(st.just(len(raw)), st.integers(-1, 80)))
    tensor = _tensor_doc(draw)
    del tensor["data"]
    tensor["parameters"] = {"binary_data_size": size}
    header = orjson.dumps({"inputs": [tensor]})
    return header + raw, {"inference-header-content-length": str(len(header))}


@st.composite
def npy_bodies(draw: st.DrawFn) -> bytes:
    """An .npy body: a real one, then its header edited or its bytes cut, flipped or extended."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    rows = draw(st.integers(0, 3))
    np.save(
        buffer, np.ones((rows, 4), dtype=draw(st.sampled_from(["<f8", ">f4", "<i2", "|b1", "<c16", "<U3"])))
    )
    data = bytearray(buffer.getvalue())
    edit = draw(st.sampled_from(["none", "shape", "cut", "flip", "extend", "descr"]))
    if edit == "shape":
        claimed = draw(st.sampled_from(["(1000000000000,)", "(-1, 4)", "()", "(2**70,)", "(1,) * 70", "'x'"]))
        data = bytearray(bytes(data).replace(f"({rows}, 4)".encode(), claimed.encode(), 1))
    elif edit == "cut":
        del data[draw(st.integers(0, len(data))) :]
    elif edit == "flip" and data:
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= draw(st.integers(1, 255))
    elif edit == "extend":
        data += draw(st.binary(min_size=1, max_size=16))
    elif edit == "descr":
        data = bytearray(
            bytes(data).replace(b"'descr': '", b"'descr': '" + draw(st.sampled_from([b"O", b"V8", b"|O"])), 1)
        )
    return bytes(data)


def _fuzz_settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not SLOW,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )


def _answered_cleanly(response: httpx.Response, where: str) -> None:
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:300]}"
    assert not leaks(response.text), f"{where}: leaked {leaks(response.text)}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), where
        assert isinstance(orjson.loads(response.content), dict), where


def test_fuzz_v2_tensors(model_server: tuple[ServerProcess, dict[str, Any]]) -> None:
    """Generated V2 tensors (lying shapes, mismatched data, out-of-range numbers, deep nesting, lying binary sizes) never get a 5xx."""
    server, _ = model_server
    sent: Counter[int] = Counter()
    with httpx.Client(timeout=30) as client:

        @_fuzz_settings(EXAMPLES * 8)
        @hypothesis.given(case=v2_bodies())
        def run(case: tuple[bytes, dict[str, str]]) -> None:
            body, headers = case
            response = client.post(server.url + "/v2/models/iris/infer", content=body, headers=headers)
            sent[response.status_code] += 1
            _answered_cleanly(response, f"POST infer {body[:200]!r}")

        run()
    record("fuzz-v2-tensors", {"cases": sum(sent.values()), "statuses": dict(sent)})
    assert sent[400] > 0 and sent[200] > 0 and sum(sent.values()) >= EXAMPLES
    assert httpx.get(server.url + "/v2/health/ready", timeout=10).status_code == 200


def test_fuzz_npy_bodies(model_server: tuple[ServerProcess, dict[str, Any]]) -> None:
    """Generated .npy bodies (headers claiming other shapes and dtypes, cut, flipped, extended) to /invocations never get a 5xx, whatever the Accept."""
    server, _ = model_server
    sent: Counter[int] = Counter()
    with httpx.Client(timeout=30) as client:

        @_fuzz_settings(EXAMPLES * 8)
        @hypothesis.given(
            body=npy_bodies(), accept=st.sampled_from(["application/json", "text/csv", "application/x-npy"])
        )
        def run(body: bytes, accept: str) -> None:
            headers = {"content-type": "application/x-npy", "accept": accept}
            response = client.post(server.url + "/invocations", content=body, headers=headers)
            sent[response.status_code] += 1
            _answered_cleanly(response, f"POST /invocations ({accept}) {body[:160]!r}")

        run()
    record("fuzz-npy", {"cases": sum(sent.values()), "statuses": dict(sent)})
    assert sent[200] > 0 and sent[400] > 0


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is a test-only extra")
    if not protocols_present():
        pytest.skip("the V2 protocol modules are not in this tree")
    from prebake.testing import free_port

    path = iris_model(tmp_path_factory.mktemp("fuzz-grpc") / "iris.joblib")
    port = free_port()
    with ServerProcess([str(path), "--grpc-port", str(port)]):
        yield port


def test_fuzz_grpc_tensors(grpc_server: int) -> None:
    """Generated gRPC tensors sent with tritonclient.grpc (shapes, datatypes, raw bytes that do not fit them) are answered INVALID_ARGUMENT or served, never INTERNAL or a dropped call."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    codes: Counter[str] = Counter()
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_server}")

    @_fuzz_settings(EXAMPLES * 4)
    @hypothesis.given(
        datatype=st.sampled_from([d for d in DATATYPES if d]),
        shape=shapes.filter(lambda s: all(-(2**63) <= d < 2**63 for d in s)),
        raw=st.binary(max_size=64),
    )
    def run(datatype: str, shape: list[int], raw: bytes) -> None:
        tensor = grpcclient.InferInput("input-0", [1], datatype)
        tensor._raw_content = (
            raw  # tritonclient checks data against the shape; this is what a lying client sends
        )
        tensor.set_shape(shape)
        try:
            client.infer("iris", [tensor])
            codes["OK"] += 1
        except InferenceServerException as error:
            codes[str(error.status())] += 1
            assert error.status() in ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND"), (
                datatype, shape, raw[:32], error.status(), (error.message() or "")[:300],
            )  # fmt: skip

    try:
        run()
    finally:
        client.close()
    record("fuzz-grpc", {"cases": sum(codes.values()), "codes": dict(codes)})
    assert codes["StatusCode.INVALID_ARGUMENT"] > 0
