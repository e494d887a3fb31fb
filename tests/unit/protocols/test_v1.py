"""KServe V1 handlers through the real ASGI app, against a backend that computes."""

from __future__ import annotations

import pytest

from prebake.http import Route
from prebake.protocols import v1

from .backend import ComputingBackend, call


@pytest.fixture
def backend() -> ComputingBackend:
    return ComputingBackend()


@pytest.fixture
def routes(backend: ComputingBackend) -> list[Route]:
    return v1.routes(backend)


def test_list_and_ready(routes: list[Route]) -> None:
    """/v1/models lists every model; /v1/models/NAME says ready (200) or not (503), 404 if unknown."""
    assert "double" in call(routes, "GET", "/v1/models").json()["models"]
    assert call(routes, "GET", "/v1/models/double").json() == {"name": "double", "ready": True}
    cold = call(routes, "GET", "/v1/models/cold")
    assert cold.status_code == 503 and cold.json() == {"name": "cold", "ready": False}
    assert call(routes, "GET", "/v1/models/nope").status_code == 404


def test_predict_instances(routes: list[Route], backend: ComputingBackend) -> None:
    """Instances are rows of the model's first input, typed by its metadata; predictions are rows."""
    response = call(
        routes,
        "POST",
        "/v1/models/double:predict",
        json={"instances": [[1, 2], [3, 4.5]], "parameters": {"k": 1}},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.0, 4.0], [6.0, 9.0]]}
    request = backend.requests[-1]
    assert list(request.inputs) == ["x"] and request.inputs["x"].dtype == "float32"
    assert request.parameters == {"k": 1}


def test_predict_inputs_columnar(routes: list[Route], backend: ComputingBackend) -> None:
    """'inputs' as a list is rows of the first input; as an object it names each input."""
    assert call(routes, "POST", "/v1/models/double:predict", json={"inputs": [[1, 1]]}).json() == {
        "predictions": [[2.0, 2.0]]
    }
    echoed = call(
        routes, "POST", "/v1/models/echo:predict", json={"inputs": {"a": [1, 2], "b": ["u", "v"]}}
    ).json()
    assert echoed == {"predictions": [{"a": 1, "b": "u"}, {"a": 2, "b": "v"}]}


def test_predict_several_outputs_are_objects_per_row(routes: list[Route]) -> None:
    """A model with several outputs answers one object per row keyed by output name."""
    doc = call(routes, "POST", "/v1/models/pair:predict", json={"instances": [[1, 1], [5, 5]]}).json()
    assert doc == {"predictions": [{"label": "small", "score": 2.0}, {"label": "big", "score": 10.0}]}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"[1", 400, "not valid JSON"),
        (b'{"rows": []}', 400, '"instances"'),
        (b'{"instances": []}', 400, "non-empty list"),
        (b'{"instances": [[1, 2], [3]]}', 400, "same shape"),
    ],
)
def test_predict_errors(routes: list[Route], body: bytes, status: int, fragment: str) -> None:
    """Bad predict bodies get 400 and an {"error": ...} that says why."""
    response = call(routes, "POST", "/v1/models/double:predict", content=body)
    assert response.status_code == status and fragment in response.json()["error"]


def test_predict_unknown_unready_and_explain(routes: list[Route]) -> None:
    """Unknown models are 404, unloaded ones 503, and :explain says 501 rather than pretending."""
    body = {"instances": [[1, 2]]}
    assert call(routes, "POST", "/v1/models/nope:predict", json=body).status_code == 404
    assert call(routes, "POST", "/v1/models/cold:predict", json=body).status_code == 503
    assert call(routes, "POST", "/v1/models/double:explain", json=body).status_code == 501
