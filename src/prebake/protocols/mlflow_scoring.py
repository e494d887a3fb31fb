"""MLflow's scoring protocol, as ``mlflow models serve`` speaks it, on the server's one HTTP port:

    GET  /ping, /health   200 with a "\\n" body once the model is ready (503 before)
    GET  /version         the MLflow version the model was logged with
    POST /invocations     JSON with exactly one of dataframe_split, dataframe_records, instances, inputs
                          (and optional params), or text/csv with a header row -> {"predictions": ...}

``/invocations`` and ``/ping`` are SageMaker's too (protocols/sagemaker.py), and ``/health`` is Vertex
AI's default health route: ``over`` serves each shared path by content. A request for an MLflow model
(metadata platform "mlflow") goes MLflow's way when it is a JSON object or CSV; a ``dataframe_split`` or
``dataframe_records`` body goes MLflow's way for any model; everything else (bare JSON lists, .npy, an
entry script's raw body, probes for other models) goes to the route it shares the path with, unchanged.

Decoding: a DataFrame becomes one input per column (``parameters.content_type = "pd"``; a split frame
without ``columns`` is one 2-D input named ""), ``instances`` rows that are objects become columns,
other ``instances`` or a list ``inputs`` one unnamed input, an ``inputs`` object named tensors. ``params``
become request parameters. Answers follow the response's ``content_type``: ``pd`` as records (one object
per row), ``dict`` as an object of lists, else the single output's list, as MLflow writes them.
Errors are MLflow's ``{"error_code", "message"}``: malformed requests and schema violations 400.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson

from prebake import codec
from prebake.errors import ModelNotReady, PrebakeError, UnsupportedMediaType
from prebake.frames import columns_to_arrays, predictions, records_columns, records_frame, split_frame, tensor
from prebake.http import Request, Response, Route
from prebake.shared_routes import Shared, layer
from prebake.types import Backend, InferenceRequest

JSON = "application/json"
CSV = "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
REQUIRED_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)
PLATFORM = "mlflow"
_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 415: "BAD_REQUEST"}


def error_body(status: int, message: str, request_id: str) -> bytes:
    """MLflow's error body (``MlflowException.serialize_as_json``), with prebake's request id."""
    code = _CODES.get(status, "TEMPORARILY_UNAVAILABLE" if status == 503 else "INTERNAL_ERROR")
    return orjson.dumps({"error_code": code, "message": message, "request_id": request_id})


# -- decoding ---------------------------------------------------------------------------------------------
def decode_json(doc: Any) -> InferenceRequest:
    """An MLflow JSON scoring request (already parsed) as the internal request."""
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else f"a {type(doc).__name__}"
        raise codec.bad(f"{REQUIRED_FORMAT}. Received {kind}.")
    found = [key for key in FORMATS if key in doc]
    if len(found) != 1:
        raise codec.bad(f"{REQUIRED_FORMAT}. Received dictionary with input fields: {found or list(doc)}.")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise codec.bad("'params' must be a JSON object of parameter names and values")
    key = found[0]
    value = doc[key]
    parameters: dict[str, Any] = dict(params)
    if key == "dataframe_split":
        inputs = split_frame(value)
        parameters["content_type"] = "pd"
    elif key == "dataframe_records":
        inputs = records_frame(value)
        parameters["content_type"] = "pd"
    elif key == "instances":
        if not isinstance(value, list) or not value:
            raise codec.bad("'instances' must be a non-empty list, one entry per row")
        if all(isinstance(row, dict) for row in value):
            inputs = columns_to_arrays(records_columns(value))
        else:
            inputs = {"": tensor("instances", value)}
    else:
        if isinstance(value, dict):
            inputs = {str(k): tensor(str(k), v if isinstance(v, list) else [v]) for k, v in value.items()}
        else:
            inputs = {"": tensor("inputs", value if isinstance(value, list) else [value])}
    if not inputs:
        raise codec.bad(f"'{key}' holds no data")
    return InferenceRequest(inputs=inputs, parameters=parameters)


def decode_csv(body: bytes) -> InferenceRequest:
    """CSV with a header row (``DataFrame.to_csv(index=False)``), as MLflow's server reads it."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise codec.bad("Ensure that input is a valid UTF-8 encoded string.") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise codec.bad(f"Failed to parse input as a Pandas DataFrame: {exc}") from None
    if len(rows) < 2:
        raise codec.bad(
            "Failed to parse input as a Pandas DataFrame: the CSV needs a header row and data rows"
        )
    header, data = rows[0], rows[1:]
    if any(len(row) != len(header) for row in data):
        raise codec.bad("Failed to parse input as a Pandas DataFrame: rows and header differ in length")
    columns = {
        name: [_csv_value(v) for v in values]
        for name, values in zip(header, zip(*data, strict=True), strict=True)
    }
    return InferenceRequest(inputs=columns_to_arrays(columns), parameters={"content_type": "pd"})


def _csv_value(value: str) -> Any:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


# -- routes -----------------------------------------------------------------------------------------------
def is_mlflow(backend: Backend, name: str | None) -> bool:
    if name is None or backend.is_raw(name):
        return False
    try:
        return backend.metadata(name).platform == PLATFORM
    except PrebakeError:
        return False


def _invocations_model(backend: Backend, request: Request) -> str | None:
    endpoint = request.path_params.get("endpoint")
    return endpoint if endpoint in backend.model_names() else backend.default_model()


def claims_invocation(backend: Backend, request: Request) -> bool:
    """Whether an /invocations request is MLflow's: JSON objects and CSV for an MLflow model, any model's
    dataframe_split/dataframe_records JSON."""
    name = _invocations_model(backend, request)
    if name is None or backend.is_raw(name):
        return False
    media = request.content_type
    body = request.body.lstrip()
    if is_mlflow(backend, name):
        return media == CSV or (media in ("", JSON) and body[:1] == b"{")
    return media in ("", JSON) and b'"dataframe_' in body[:4096] and body[:1] == b"{"


def routes(backend: Backend) -> list[Route]:
    """The MLflow routes on their own; ``over`` mounts them beside routes sharing their paths."""
    return over(backend, [])


def over(backend: Backend, beneath: Sequence[Route]) -> list[Route]:
    """``beneath`` with MLflow's scoring protocol added: where a route there shares a path and method with
    one of MLflow's, one route serves both, by content (see the module docstring); the rest are added."""

    async def ping(request: Request) -> Response:
        if backend.serving():
            return Response(b"\n")
        return Response(b"\n", status=503)

    async def version(request: Request) -> Response:
        name = backend.default_model()
        found = None
        if name is not None and is_mlflow(backend, name):
            found = backend.metadata(name).parameters.get("mlflow_version")
        return Response(str(found or "unknown").encode())

    async def invocations(request: Request) -> Response:
        name = _invocations_model(backend, request)
        if name is None:
            raise ModelNotReady("no model is ready to serve invocations")
        media = request.content_type
        if media == CSV:
            internal = decode_csv(request.body)
        elif media in ("", JSON):
            internal = decode_json(codec.loads(request.body))
        else:
            raise UnsupportedMediaType(
                f"This predictor only supports the following content types: ['{CSV}', '{JSON}']. "
                f"Got '{request.header('content-type')}'."
            )
        response = await backend.infer(name, None, internal)
        return Response(codec.dumps({"predictions": predictions(response)}))

    def mlflow_only(request: Request) -> bool:
        return is_mlflow(backend, backend.default_model())

    def mlflow_invocation(request: Request) -> bool:
        return claims_invocation(backend, request)

    return layer(
        beneath,
        [
            Shared(("GET",), "/ping", ping, mlflow_only, public=True),
            Shared(("GET",), "/health", ping, mlflow_only, public=True),
            Shared(("GET",), "/version", version, None, public=False),
            Shared(("POST",), "/invocations", invocations, mlflow_invocation),
            Shared(("POST",), "/endpoints/{endpoint}/invocations", invocations, mlflow_invocation),
        ],
        error_body,
    )
