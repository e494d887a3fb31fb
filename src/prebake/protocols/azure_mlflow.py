"""Azure ML's no-code MLflow deployment: ``POST /score`` and ``GET /swagger.json`` for an MLflow model
served without an entry script, as the scoring script Azure writes for such a deployment answers them.

    POST /score   {"input_data": {"columns": [...], "index": [...], "data": [[...]]}, "params": {...}}
                  {"input_data": [[...], ...]}            one tensor
                  {"input_data": {"name": [...], ...}}    named tensors
                  -> the predictions themselves (no wrapper): a list, or records for a DataFrame
    GET  /swagger.json?version=2|3   built from the model's metadata (its signature and input example)

A server with an entry script keeps Azure's contract (protocols/azure.py) unchanged: ``over`` routes a
request here only where the default model is an MLflow model and no entry script is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from prebake import codec
from prebake.errors import ModelNotReady
from prebake.frames import predictions, split_frame, tensor
from prebake.http import Request, Response, Route
from prebake.shared_routes import Shared, layer
from prebake.types import Backend, InferenceRequest, ModelMetadata, TensorSpec

PLATFORM = "mlflow"
_JSON_TYPES = {
    "BOOL": {"type": "boolean"},
    "INT32": {"type": "integer", "format": "int32"},
    "INT64": {"type": "integer", "format": "int64"},
    "FP32": {"type": "number", "format": "float"},
    "FP64": {"type": "number", "format": "double"},
    "BYTES": {"type": "string"},
}


def error_body(status: int, message: str, request_id: str) -> bytes:
    return orjson.dumps({"message": message, "request_id": request_id})


def decode(doc: Any) -> InferenceRequest:
    """A no-code scoring body as the internal request."""
    if not isinstance(doc, dict) or "input_data" not in doc:
        raise codec.bad('the request must be a JSON object with "input_data" (and optionally "params")')
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise codec.bad("'params' must be a JSON object of parameter names and values")
    data = doc["input_data"]
    parameters: dict[str, Any] = dict(params)
    if isinstance(data, list):
        inputs = {"": tensor("input_data", data)}
    elif isinstance(data, dict) and "data" in data and "columns" in data:
        inputs = split_frame(data)
        parameters["content_type"] = "pd"
    elif isinstance(data, dict) and data:
        inputs = {str(k): tensor(str(k), v if isinstance(v, list) else [v]) for k, v in data.items()}
    else:
        raise codec.bad(
            '\'input_data\' must be a split DataFrame ({"columns", "index", "data"}), a list (one tensor) '
            "or an object of named tensors"
        )
    return InferenceRequest(inputs=inputs, parameters=parameters)


def swagger(meta: ModelMetadata, version: str | None) -> dict[str, Any]:
    """A swagger (2.0, or OpenAPI 3 for ``version=3``) document for ``/score``, from the metadata."""
    params = meta.parameters.get("params") or []
    columns = meta.parameters.get("content_type") == "pd"
    input_data = _frame_schema(meta.inputs) if columns else _tensor_schema(meta.inputs)
    service_input: dict[str, Any] = {
        "type": "object",
        "required": ["input_data"],
        "properties": {"input_data": input_data},
    }
    if params:
        service_input["properties"]["params"] = {
            "type": "object",
            "properties": {
                p["name"]: {**_JSON_TYPES.get(p["datatype"], {}), "default": p.get("default")} for p in params
            },
        }
    example = meta.parameters.get("input_example")
    if example:
        try:
            sample = orjson.loads(example)
        except orjson.JSONDecodeError:
            sample = None
        if isinstance(sample, dict):
            value = sample.get("dataframe_split", sample.get("inputs"))
            if value is not None:
                service_input["example"] = {"input_data": value}
    output = {"type": "array", "items": _output_items(meta.outputs)}
    title = f"{meta.name}: MLflow model ({meta.parameters.get('flavor', 'python_function')})"
    score: dict[str, Any] = {
        "post": {
            "operationId": "RunMLService",
            "description": "Run the MLflow model on input_data (and params)",
            "responses": {"200": {"description": "The predictions"}},
        }
    }
    if version == "3":
        score["post"]["requestBody"] = {"content": {"application/json": {"schema": service_input}}}
        score["post"]["responses"]["200"]["content"] = {"application/json": {"schema": output}}
        return {"openapi": "3.0.1", "info": {"title": title, "version": "1.0"}, "paths": {"/score": score}}
    score["post"]["parameters"] = [
        {"name": "serviceInputPayload", "in": "body", "required": True, "schema": service_input}
    ]
    score["post"]["responses"]["200"]["schema"] = output
    return {
        "swagger": "2.0",
        "info": {"title": title, "version": "1.0"},
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": {"/score": score},
    }


def _frame_schema(inputs: Sequence[TensorSpec]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "enum": [s.name for s in inputs]}},
            "index": {"type": "array", "items": {"type": "integer"}},
            "data": {
                "type": "array",
                "items": {
                    "type": "array",
                    "items": {"oneOf": [_JSON_TYPES.get(s.datatype, {}) for s in inputs]},
                },
            },
        },
    }


def _tensor_schema(inputs: Sequence[TensorSpec]) -> dict[str, Any]:
    if len(inputs) == 1 or not inputs:
        spec = inputs[0] if inputs else TensorSpec("input-0", "FP64", [-1])
        return _nested(spec)
    return {"type": "object", "properties": {s.name: _nested(s) for s in inputs}}


def _nested(spec: TensorSpec) -> dict[str, Any]:
    schema: dict[str, Any] = dict(_JSON_TYPES.get(spec.datatype, {}))
    for _ in spec.shape:
        schema = {"type": "array", "items": schema}
    return schema


def _output_items(outputs: Sequence[TensorSpec]) -> dict[str, Any]:
    if len(outputs) == 1:
        return dict(_JSON_TYPES.get(outputs[0].datatype, {}))
    return {"type": "object", "properties": {s.name: _JSON_TYPES.get(s.datatype, {}) for s in outputs}}


def _no_code_model(backend: Backend) -> str | None:
    """The default model where it is an MLflow model and no entry script is served, else None."""
    name = backend.default_model()
    if name is None or any(backend.is_raw(n) for n in backend.model_names()):
        return None
    try:
        return name if backend.metadata(name).platform == PLATFORM else None
    except Exception:
        return None


def over(backend: Backend, beneath: Sequence[Route]) -> list[Route]:
    """``beneath`` (which holds Azure's entry-script routes) with the no-code MLflow routes over it."""

    async def score(request: Request) -> Response:
        name = _no_code_model(backend)
        if name is None:
            raise ModelNotReady("no MLflow model is ready to score")
        response = await backend.infer(name, None, decode(codec.loads(request.body)))
        client_id = request.header("x-ms-client-request-id") or ""
        headers = [
            ("x-ms-request-id", client_id or request.request_id),
            ("x-ms-run-function-failed", "False"),
        ]
        if client_id:
            headers.append(("x-ms-client-request-id", client_id))
        return Response(codec.dumps(predictions(response)), headers=headers)

    async def swagger_json(request: Request) -> Response:
        name = _no_code_model(backend)
        if name is None:
            raise ModelNotReady("no MLflow model is ready")
        version = request.args.get("version", [None])[0]
        return Response(orjson.dumps(swagger(backend.metadata(name), version)))

    def no_code(request: Request) -> bool:
        return _no_code_model(backend) is not None

    return layer(
        beneath,
        [
            Shared(("POST",), "/score", score, no_code),
            Shared(("GET",), "/swagger.json", swagger_json, no_code),
        ],
        error_body,
    )
