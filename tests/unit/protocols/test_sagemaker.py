"""SageMaker /ping and /invocations through the real ASGI app, against a backend that computes."""

from __future__ import annotations

import io

import numpy as np
import pytest

from prebake.protocols import sagemaker

from .backend import ComputingBackend, call


class PairFirst(ComputingBackend):
    def default_model(self) -> str | None:
        return "pair"


class RawFirst(ComputingBackend):
    def default_model(self) -> str | None:
        return "handler"


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_ping() -> None:
    """/ping is 200 with a ready model and 503 without one."""
    assert call(sagemaker.routes(ComputingBackend()), "GET", "/ping").status_code == 200

    class Empty(ComputingBackend):
        def default_model(self) -> str | None:
            return None

    assert call(sagemaker.routes(Empty()), "GET", "/ping").status_code == 503


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[[1, 2], [3, 4]]"),
        (None, b"[[1, 2], [3, 4]]"),
        ("text/csv", b"1,2\n3,4\n"),
        ("text/csv; charset=utf-8", b"1,2\r\n3,4"),
        ("application/x-npy", npy(np.array([[1, 2], [3, 4]], dtype=np.float32))),
    ],
)
def test_invocations_content_types(content_type: str | None, body: bytes) -> None:
    """JSON, CSV and .npy bodies all reach the model as the same rows, typed by its metadata."""
    backend = ComputingBackend()
    headers = {"content-type": content_type} if content_type else {}
    response = call(sagemaker.routes(backend), "POST", "/invocations", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == [[2.0, 4.0], [6.0, 8.0]]
    assert backend.requests[-1].inputs["x"].dtype == np.float32


@pytest.mark.parametrize(
    ("accept", "check"),
    [
        ("application/json", lambda r: r.json() == [[2.0, 4.0]]),
        ("*/*", lambda r: r.json() == [[2.0, 4.0]]),
        ("text/csv", lambda r: r.text == "2.0,4.0\n"),
        ("application/x-npy", lambda r: np.load(io.BytesIO(r.content)).tolist() == [[2.0, 4.0]]),
        ("text/html, application/x-npy;q=0.9", lambda r: r.headers["content-type"] == "application/x-npy"),
    ],
)
def test_invocations_accept(accept: str, check: object) -> None:
    """The answer is written in the first media type of Accept that SageMaker clients use."""
    response = call(
        sagemaker.routes(ComputingBackend()),
        "POST",
        "/invocations",
        content=b"[[1, 2]]",
        headers={"accept": accept},
    )
    assert response.status_code == 200, response.text
    assert check(response)  # type: ignore[operator]


def test_wrapped_json_and_custom_attributes() -> None:
    """{"instances": ...} gets {"predictions": ...}; custom attributes reach the model as a parameter."""
    backend = ComputingBackend()
    response = call(
        sagemaker.routes(backend),
        "POST",
        "/invocations",
        json={"instances": [[1, 2]]},
        headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=1"},
    )
    assert response.json() == {"predictions": [[2.0, 4.0]]}
    assert backend.requests[-1].parameters == {"custom_attributes": "trace=1"}


def test_mixed_csv_and_multi_output_csv() -> None:
    """CSV text columns stay text; several outputs are written side by side per row."""
    backend = PairFirst()
    response = call(
        sagemaker.routes(backend),
        "POST",
        "/invocations",
        content=b"1,5\n0,0\n",
        headers={"content-type": "text/csv", "accept": "text/csv"},
    )
    assert response.text == "big,6.0\nsmall,0.0\n"


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "image/png"}, b"\x89PNG", 415),
        ({"accept": "image/png"}, b"[[1, 2]]", 406),
        ({"content-type": "text/csv"}, b"1,2\n3\n", 400),
        ({"content-type": "application/x-npy"}, b"not npy", 400),
        ({"content-type": "application/json"}, b'{"rows": 1}', 400),
    ],
)
def test_invocations_errors(headers: dict[str, str], body: bytes, status: int) -> None:
    """Unsupported media types are 415/406 and malformed bodies 400."""
    response = call(
        sagemaker.routes(ComputingBackend()), "POST", "/invocations", content=body, headers=headers
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_handler_script_gets_the_raw_request() -> None:
    """A raw model (a SageMaker handler script) receives the body and headers unchanged and answers itself."""
    backend = RawFirst()
    response = call(
        sagemaker.routes(backend),
        "POST",
        "/invocations",
        content=b"abc",
        headers={"content-type": "text/plain", "accept": "text/plain"},
    )
    assert response.content == b"cba" and response.headers["x-handler"] == "yes"
    assert backend.raw_requests[-1].headers["content-type"] == "text/plain"
