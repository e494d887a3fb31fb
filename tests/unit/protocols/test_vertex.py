"""Vertex AI custom container routes through the real ASGI app, against a backend that computes."""

from __future__ import annotations

from prebake.protocols import vertex

from .backend import ComputingBackend, call


class PairFirst(ComputingBackend):
    def default_model(self) -> str | None:
        return "pair"


class RawFirst(ComputingBackend):
    def default_model(self) -> str | None:
        return "handler"


def test_routes_follow_the_paths_given() -> None:
    """Health and predict answer at the AIP_* paths passed in, not fixed ones."""
    routes = vertex.routes(
        ComputingBackend(), health_route="/v1/endpoints/e/health", predict_route="/v1/endpoints/e:predict"
    )
    assert call(routes, "GET", "/v1/endpoints/e/health").status_code == 200
    response = call(routes, "POST", "/v1/endpoints/e:predict", json={"instances": [[1, 2]]})
    assert response.json() == {"predictions": [[2.0, 4.0]]}
    assert call(routes, "GET", "/health").status_code == 404


def test_predict_instances_and_parameters() -> None:
    """Instances in, one prediction per instance out; parameters reach the model."""
    backend = PairFirst()
    routes = vertex.routes(backend)
    body = {"instances": [[1, 2], [3, 4], [0, 0]], "parameters": {"threshold": 0.3}}
    doc = call(routes, "POST", "/predict", json=body).json()
    assert [p["label"] for p in doc["predictions"]] == ["small", "big", "small"]
    assert backend.requests[-1].parameters == {"threshold": 0.3}


def test_b64_instances_become_bytes() -> None:
    """{"b64": ...} instances reach the model as bytes."""
    backend = ComputingBackend()
    call(vertex.routes(backend), "POST", "/predict", json={"instances": [{"b64": "aGk="}]})
    assert backend.requests[-1].inputs["x"].tolist() == [b"hi"]


def test_health_is_503_until_ready() -> None:
    """Health answers 503 while no model is ready."""

    class Empty(ComputingBackend):
        def default_model(self) -> str | None:
            return None

    routes = vertex.routes(Empty())
    assert call(routes, "GET", "/health").status_code == 503
    assert call(routes, "POST", "/predict", json={"instances": [[1]]}).status_code == 503


def test_errors() -> None:
    """A body without instances, or not JSON, is a 400 with {"error": ...}."""
    routes = vertex.routes(ComputingBackend())
    missing = call(routes, "POST", "/predict", json={"rows": [[1, 2]]})
    assert missing.status_code == 400 and "instances" in missing.json()["error"]
    assert call(routes, "POST", "/predict", content=b"nope").status_code == 400


def test_raw_model_gets_the_body() -> None:
    """An entry-script model (a raw runtime) receives the request body unchanged."""
    backend = RawFirst()
    response = call(
        vertex.routes(backend),
        "POST",
        "/predict",
        content=b'{"instances": [1]}',
        headers={"accept": "text/plain"},
    )
    assert response.content == b'{"instances": [1]}'[::-1]
    assert backend.raw_requests[-1].body == b'{"instances": [1]}'
