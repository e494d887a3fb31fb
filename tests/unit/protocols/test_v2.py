"""Open Inference Protocol V2 REST handlers, through the real ASGI app, against a backend that computes."""

from __future__ import annotations

import gzip

import numpy as np
import orjson
import pytest

from prebake.protocols import v2

from .backend import ComputingBackend, call


@pytest.fixture
def backend() -> ComputingBackend:
    return ComputingBackend()


@pytest.fixture
def routes(backend: ComputingBackend) -> list[v2.Route]:
    return v2.routes(backend)


def test_server_metadata_lists_extensions(routes: list[v2.Route]) -> None:
    """GET /v2 names the server and the binary data and model repository extensions."""
    doc = call(routes, "GET", "/v2").json()
    assert doc["name"] == "prebake"
    assert set(doc["extensions"]) >= {"binary_tensor_data", "model_repository"}


def test_model_metadata_and_versions(routes: list[v2.Route]) -> None:
    """Model metadata follows the spec, with and without a version, and 404s for unknown ones."""
    doc = call(routes, "GET", "/v2/models/double").json()
    assert doc == {
        "name": "double",
        "versions": ["1"],
        "platform": "test_double",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }
    assert call(routes, "GET", "/v2/models/double/versions/1").json()["name"] == "double"
    missing = call(routes, "GET", "/v2/models/double/versions/9")
    assert missing.status_code == 404 and "version" in missing.json()["error"]
    assert call(routes, "GET", "/v2/models/nope").status_code == 404


def test_model_config_from_metadata(routes: list[v2.Route]) -> None:
    """GET .../config answers a Triton-style configuration built from the model's metadata."""
    doc = call(routes, "GET", "/v2/models/double/config").json()
    assert doc["name"] == "double" and doc["max_batch_size"] == 0
    assert doc["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 2], "format": "FORMAT_NONE"}]
    assert call(routes, "GET", "/v2/models/nope/config").status_code == 404


def test_model_ready(routes: list[v2.Route]) -> None:
    """Model readiness is 200 with ready true for a loaded model and 503 with ready false otherwise."""
    ok = call(routes, "GET", "/v2/models/double/ready")
    assert ok.status_code == 200 and ok.json() == {"name": "double", "ready": True}
    cold = call(routes, "GET", "/v2/models/cold/ready")
    assert cold.status_code == 503 and cold.json() == {"name": "cold", "ready": False}


def test_infer_json(routes: list[v2.Route], backend: ComputingBackend) -> None:
    """A JSON infer request computes and returns named outputs, the id and the parameters it was given."""
    body = {
        "id": "r1",
        "parameters": {"threshold": 0.5},
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4.5]}],
        "outputs": [{"name": "y"}],
    }
    response = call(routes, "POST", "/v2/models/double/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["model_name"] == "double" and doc["id"] == "r1"
    assert doc["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [2, 2], "data": [2.0, 4.0, 6.0, 9.0]}
    ]
    assert backend.requests[-1].parameters == {"threshold": 0.5}
    versioned = call(routes, "POST", "/v2/models/double/versions/1/infer", json=body)
    assert versioned.json()["model_version"] == "1"


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("BOOL", [True, False]),
        ("UINT8", [0, 255]),
        ("UINT16", [0, 65535]),
        ("UINT32", [0, 4294967295]),
        ("UINT64", [0, 18446744073709551615]),
        ("INT8", [-128, 127]),
        ("INT16", [-32768, 32767]),
        ("INT32", [-2147483648, 2147483647]),
        ("INT64", [-9223372036854775808, 9223372036854775807]),
        ("FP16", [0.5, -2.0]),
        ("FP32", [0.25, 1e30]),
        ("FP64", [0.1, 1e300]),
        ("BYTES", ["hé", ""]),
    ],
)
def test_infer_every_datatype_round_trips(routes: list[v2.Route], datatype: str, data: list[object]) -> None:
    """Every V2 datatype goes through infer as JSON and comes back with the same datatype and values."""
    body = {"inputs": [{"name": "t", "datatype": datatype, "shape": [2], "data": data}]}
    doc = call(routes, "POST", "/v2/models/echo/infer", json=body).json()
    assert doc["outputs"] == [{"name": "t", "datatype": datatype, "shape": [2], "data": data}]


def test_infer_binary_in_and_out(routes: list[v2.Route]) -> None:
    """Binary inputs are read after the JSON header and binary outputs come back after it, sized."""
    x = np.array([[1, 2], [3, 4]], dtype="<f4")
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}}
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    response = call(
        routes,
        "POST",
        "/v2/models/double/infer",
        content=header + x.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    assert response.headers["content-type"] == "application/octet-stream"
    doc = orjson.loads(response.content[:length])
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 16}
    y = np.frombuffer(response.content[length:], "<f4").reshape(2, 2)
    assert y.tolist() == [[2, 4], [6, 8]]


def test_raw_binary_request_without_header(routes: list[v2.Route]) -> None:
    """With Inference-Header-Content-Length 0 the body is the one input; metadata fills in its shape."""
    x = np.array([[1, 2], [3, 4], [5, 6]], dtype="<f4")
    response = call(
        routes,
        "POST",
        "/v2/models/double/infer",
        content=x.tobytes(),
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    out = orjson.loads(response.content[:length])["outputs"][0]
    assert out["shape"] == [3, 2]
    assert np.frombuffer(response.content[length:], "<f4").tolist() == [2, 4, 6, 8, 10, 12]
    bad = call(
        routes,
        "POST",
        "/v2/models/double/infer",
        content=b"\x00" * 6,
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert bad.status_code == 400 and "whole FP32 rows" in bad.json()["error"]


def test_gzip_request_body(routes: list[v2.Route]) -> None:
    """A gzip-compressed request body (tritonclient's request_compression_algorithm) is inflated."""
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [21]}]})
    response = call(
        routes,
        "POST",
        "/v2/models/double/infer",
        content=gzip.compress(body),
        headers={"Content-Encoding": "gzip"},
    )
    assert response.json()["outputs"][0]["data"] == [42]


def test_gzip_bomb_is_refused(backend: ComputingBackend) -> None:
    """A compressed body that inflates past the cap is refused with 413, not inflated into memory."""
    routes = v2.routes(backend, max_inflated_bytes=1000)
    response = call(
        routes,
        "POST",
        "/v2/models/double/infer",
        content=gzip.compress(b" " * 100_000),
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (b"{", {}, 400, "not valid JSON"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1]}]}', {}, 400, "'x'"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}',
            {"Inference-Header-Content-Length": "999"},
            400,
            "Inference-Header-Content-Length",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{"name": "z"}]}',
            {},
            400,
            "unknown output 'z'",
        ),
    ],
)
def test_infer_errors(
    routes: list[v2.Route], body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    """Bad infer requests answer the status Triton's clients expect with {"error": ...} saying why."""
    response = call(routes, "POST", "/v2/models/double/infer", content=body, headers=headers)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_infer_unknown_and_unready_models(routes: list[v2.Route]) -> None:
    """Inference on an unknown model is a 404 and on an unloaded one a 503."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}
    assert call(routes, "POST", "/v2/models/nope/infer", json=body).status_code == 404
    assert call(routes, "POST", "/v2/models/cold/infer", json=body).status_code == 503


def test_repository_index_load_unload(routes: list[v2.Route]) -> None:
    """The repository API lists models with states, loads and unloads them, and filters on ready."""
    index = call(routes, "POST", "/v2/repository/index").json()
    assert {"name": "cold", "version": "", "state": "UNAVAILABLE", "reason": ""} in index
    ready = call(routes, "POST", "/v2/repository/index", json={"ready": True}).json()
    assert "cold" not in [m["name"] for m in ready]
    assert call(routes, "POST", "/v2/repository/models/cold/load").status_code == 200
    assert call(routes, "GET", "/v2/models/cold/ready").json()["ready"] is True
    assert (
        call(
            routes,
            "POST",
            "/v2/repository/models/cold/unload",
            json={"parameters": {"unload_dependents": False}},
        ).status_code
        == 200
    )
    assert call(routes, "GET", "/v2/models/cold/ready").status_code == 503
    refused = call(
        routes, "POST", "/v2/repository/models/cold/load", json={"parameters": {"config": "{nope"}}
    )
    assert refused.status_code == 400 and "failed to load 'cold'" in refused.json()["error"]
    unsupported = call(
        routes,
        "POST",
        "/v2/repository/models/cold/load",
        json={"parameters": {"config": '{"instance_group": [{"count": 2}]}'}},
    )
    assert unsupported.status_code == 400 and "instance_group" in unsupported.json()["error"]
    assert call(routes, "POST", "/v2/repository/models/nope/load").status_code == 404
