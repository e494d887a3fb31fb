"""SageMaker hosting contract for custom inference containers (port from SAGEMAKER_BIND_TO_PORT, read
by the server's config):

    GET  /ping          200 once the model is ready, 503 before
    POST /invocations   body by Content-Type, answer by Accept

Request bodies (Content-Type; none means application/json, as the SageMaker inference toolkit):
    application/json     {"instances": [...]} or {"inputs": ...} (as KServe V1), or a bare list of rows
    text/csv             one row per line, comma-separated; all-numeric data becomes float64
    application/x-npy    one array (np.save format; pickles and .npz refused; the header is checked
                         against the body before anything is allocated)
Answers (Accept; none or */* means application/json):
    application/json     {"predictions": ...} when the request used "instances"/"inputs", else the bare
                         predictions (what SageMaker's framework containers return for a list)
    text/csv             one line per row, every output's columns side by side
    application/x-npy    the single output as an array

A SageMaker handler script (a raw runtime) gets the request unchanged and answers it itself.
X-Amzn-SageMaker-Custom-Attributes reaches array models as the ``custom_attributes`` parameter.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import orjson

from prebake import codec
from prebake.errors import ModelNotReady, PrebakeError, UnsupportedMediaType
from prebake.http import Request, Response, Route, raw_response
from prebake.rows import column, outputs_to_predictions, rows_to_inputs
from prebake.types import Backend, InferenceRequest, TensorSpec

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"


def decode_body(
    content_type: str, body: bytes, specs: list[TensorSpec]
) -> tuple[dict[str, np.ndarray], bool]:
    """The named inputs in a request body, and whether it was a wrapped JSON request
    (``instances``/``inputs``) that expects a wrapped ``predictions`` answer."""
    if content_type in ("", JSON):
        doc = codec.loads(body)
        if isinstance(doc, dict):
            if "instances" in doc:
                return rows_to_inputs(doc["instances"], specs), True
            if "inputs" in doc and isinstance(doc["inputs"], dict):
                datatypes = {s.name: s.datatype for s in specs}
                return {k: column(k, v, datatypes.get(k)) for k, v in doc["inputs"].items()}, True
            if "inputs" in doc:
                return rows_to_inputs(doc["inputs"], specs), True
            raise codec.bad('a JSON object body needs "instances" or "inputs"; or send a list of rows')
        return rows_to_inputs(doc, specs), False
    if content_type == CSV:
        return {_input_name(specs): _csv_rows(body, specs)}, False
    if content_type == NPY:
        return {_input_name(specs): codec.decode_npy(body)}, False
    raise UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; use {JSON}, {CSV} or {NPY}")


def _input_name(specs: list[TensorSpec]) -> str:
    return specs[0].name if specs else "input-0"


def _csv_rows(body: bytes, specs: list[TensorSpec]) -> np.ndarray:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise codec.bad("the CSV body is not UTF-8") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as error:
        raise codec.bad(f"the CSV body cannot be read: {error}") from None
    if not rows:
        raise codec.bad("the CSV body has no rows")
    if len({len(row) for row in rows}) != 1:
        raise codec.bad("every CSV row must have the same number of columns")
    datatype = specs[0].datatype if specs else None
    try:
        return np.asarray(rows, dtype=np.float64).astype(
            codec.numpy_dtype(datatype) if datatype and datatype != "BYTES" else np.float64, copy=False
        )
    except ValueError:
        # Some columns are text: keep numbers as numbers and text as str, as a mixed JSON row would.
        return column(_input_name(specs), [[_number_or_text(v) for v in row] for row in rows])


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def choose_accept(accept: str | None) -> str:
    """The first media type in Accept that we can write (JSON for none, */* or application/*)."""
    if not accept:
        return JSON
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in (JSON, CSV, NPY):
            return media
        if media in ("*/*", "application/*", ""):
            return JSON
        if media == "text/*":
            return CSV
    raise PrebakeError(f"cannot answer in {accept!r}; accept {JSON}, {CSV} or {NPY}", status=406)


def encode_answer(accept: str, outputs: dict[str, np.ndarray], wrapped: bool) -> Response:
    if accept == JSON:
        predictions = outputs_to_predictions(outputs)
        return Response(codec.dumps({"predictions": predictions} if wrapped else predictions))
    arrays = [np.asarray(a) for a in outputs.values()]
    if accept == NPY:
        if len(arrays) != 1:
            raise PrebakeError(f"the model has {len(arrays)} outputs; ask for {JSON} or {CSV}", status=406)
        if arrays[0].dtype == object:
            raise PrebakeError(
                f"the output holds Python objects, which .npy cannot carry; ask for {JSON}", status=406
            )
        npy = io.BytesIO()
        np.save(npy, arrays[0], allow_pickle=False)
        return Response(npy.getvalue(), content_type=NPY)
    rows = {a.shape[0] if a.ndim else 1 for a in arrays}
    if len(rows) != 1:
        raise PrebakeError(f"the outputs have different row counts; ask for {JSON}", status=406)
    count = next(iter(rows))
    # reshape(count, -1) cannot infer the width of zero rows: give it (a 0-row answer is an empty CSV).
    columns = [a.reshape(count, math.prod(a.shape[1:])) for a in arrays]
    table = columns[0] if len(columns) == 1 else np.concatenate([c.astype(object) for c in columns], axis=1)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for row in table.tolist():
        writer.writerow([_csv_value(v) for v in row])
    return Response(text.getvalue().encode("utf-8"), content_type=CSV)


def _csv_value(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def error_body(status: int, message: str, request_id: str) -> bytes:
    """prebake's {"error": ...} plus the ``code`` and ``message`` botocore reads, so boto3 raises the
    SageMaker Runtime exception a user already handles (ValidationError, ModelError, ServiceUnavailable)."""
    if status == 503:
        code = "ServiceUnavailable"
    elif status < 500:
        code = "ValidationError"
    else:
        code = "ModelError"
    return orjson.dumps({"error": message, "code": code, "message": message, "request_id": request_id})


async def invoke(backend: Backend, name: str, request: Request) -> Response:
    """One invocation of model ``name``: the body by Content-Type, the answer by Accept (a handler
    script answers itself). Shared with the multi-model API's ``/models/NAME/invoke``."""
    if backend.is_raw(name):
        return raw_response(await backend.score_raw(name, request.to_raw()))
    accept = choose_accept(request.header("accept"))
    inputs, wrapped = decode_body(request.content_type, request.body, backend.metadata(name).inputs)
    parameters: dict[str, Any] = {}
    attributes = request.header(CUSTOM_ATTRIBUTES)
    if attributes is not None:
        parameters["custom_attributes"] = attributes
    response = await backend.infer(name, None, InferenceRequest(inputs=inputs, parameters=parameters))
    return encode_answer(accept, response.outputs, wrapped)


def routes(backend: Backend) -> list[Route]:
    """The SageMaker routes: the container contract (``/ping``, ``/invocations``) for ``backend``'s default
    model, and the SageMaker Runtime API path that boto3's ``invoke_endpoint`` posts to, so a client
    written for an endpoint works against prebake unchanged (``endpoint_url=``): there the endpoint name
    picks the model where one has that name."""

    async def ping(request: Request) -> Response:
        if backend.serving():
            return Response(b"", content_type=None)
        return Response(b"", status=503, content_type=None)

    async def invocations(request: Request) -> Response:
        endpoint = request.path_params.get("endpoint")
        name = endpoint if endpoint in backend.model_names() else backend.default_model()
        if name is None:
            raise ModelNotReady("no model is ready to serve invocations")
        return await invoke(backend, name, request)

    return [
        Route(("GET",), "/ping", ping, public=True),
        Route(("POST",), "/invocations", invocations, error_body=error_body),
        Route(("POST",), "/endpoints/{endpoint}/invocations", invocations, error_body=error_body),
    ]
