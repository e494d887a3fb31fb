"""An OpenAPI 3.1 description of every route a server mounts, built from data, one table per protocol.

The document is made from the server's own route list, so it never describes a route the server does
not have, and it describes every route it has: a route this module has no entry for still appears, with
a generic operation. Each protocol's operations are data below (``_AZURE``, ``_V2``, ...), keyed by the
handler's module and function name, so a Vertex AI predict route is found whatever path AIP_PREDICT_ROUTE
gives it. Error responses are described by rendering the route's own error formatter once, so the
schema is the body the route really sends.

Mounting it (the server core does this)::

    routes.append(openapi.route(routes, models=backend.model_names(), auth=bool(config.api_keys)))

Fuzzers read it (tests/reliability/test_fuzz.py runs schemathesis against every operation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

import prebake
from prebake import datatypes
from prebake.http import Request, Response, Route

Schema = dict[str, Any]
Operation = dict[str, Any]

OPENAPI_PATH = "/openapi.json"

# -- shared schemas -------------------------------------------------------------------------------------
_ANY: Schema = {}
_OBJECT: Schema = {"type": "object"}
_MME_LOAD: Schema = {
    "type": "object",
    "required": ["model_name", "url"],
    "properties": {
        "model_name": {"type": "string", "minLength": 1},
        "url": {"type": "string", "minLength": 1},
    },
}
_SCALAR: Schema = {"type": ["number", "string", "boolean"]}
_ROW: Schema = {
    "oneOf": [
        {"type": "array", "items": _SCALAR, "maxItems": 64},
        {"type": "object", "additionalProperties": _ANY},
        _SCALAR,
    ]
}
_ROWS: Schema = {"type": "array", "items": _ROW, "maxItems": 64}
_JSON_ANY = {"application/json": {"schema": _ANY}}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

_V2_TENSOR: Schema = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 4},
        "datatype": {"enum": list(datatypes.NAMES)},
        "parameters": _OBJECT,
        "data": {"type": "array", "items": _ANY, "maxItems": 64},
    },
}
_V2_INFER_REQUEST: Schema = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": _OBJECT,
        "inputs": {"type": "array", "items": _V2_TENSOR, "minItems": 1, "maxItems": 4},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": _OBJECT},
            },
        },
    },
}
_V2_INFER_RESPONSE: Schema = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": ["string", "null"]},
        "id": {"type": ["string", "null"]},
        "parameters": _OBJECT,
        "outputs": {"type": "array", "items": {"type": "object"}},
    },
}
_INSTANCES_REQUEST: Schema = {
    "type": "object",
    "required": ["instances"],
    "properties": {"instances": _ROWS, "parameters": _OBJECT},
}
_V1_PREDICT_REQUEST: Schema = {
    "oneOf": [
        _INSTANCES_REQUEST,
        {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "inputs": {"oneOf": [_ROWS, {"type": "object", "additionalProperties": _ROWS}]},
                "parameters": _OBJECT,
            },
        },
    ]
}
_PREDICTIONS: Schema = {"type": "object", "required": ["predictions"], "properties": {"predictions": _ANY}}
_READY: Schema = {
    "type": "object",
    "required": ["name", "ready"],
    "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
}


def _ok(content: dict[str, Any] | None = None, description: str = "OK") -> dict[str, Any]:
    return {"description": description, **({"content": content} if content else {})}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _header(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


# -- one table per protocol: (module, handler name) -> operation -----------------------------------------
# "errors" lists the statuses a client may get for bad input; the error body's schema is added per route.
_OPS: dict[str, Operation] = {
    "ops.metrics_text": {
        "summary": "Prometheus metrics of every worker",
        "responses": {"200": _ok({"text/plain": {"schema": {"type": "string"}}})},
    },
    "ops.live": {"summary": "Liveness probe", "responses": {"200": _ok(_json(_OBJECT))}},
    "ops.ready": {
        "summary": "Readiness probe: 200 once every model is loaded",
        "responses": {"200": _ok(_json(_OBJECT)), "503": _ok(_json(_OBJECT), "Not ready")},
    },
    # Azure ML inference server (azmlinfsrv): the body goes to the entry script's run() unchanged.
    "azure.health": {
        "summary": "Azure ML health: Healthy once init() returned",
        "responses": {"200": _ok(_TEXT), "503": _ok(_TEXT, "init() has not finished")},
    },
    "azure.score": {
        "summary": "Azure ML scoring: the body (or GET query arguments) goes to run()",
        "parameters": [
            _header("x-ms-client-request-id", {"type": "string", "maxLength": 100}, "client request id"),
        ],
        "requestBody": {"required": False, "content": {**_JSON_ANY, **_TEXT}},
        "responses": {"200": _ok({"application/json": {"schema": _ANY}})},
        "errors": ["400", "401", "413", "415", "422", "431", "500", "504"],
        "x-prebake-user-code": True,  # a 500 here can be run() raising, which the contract allows
    },
    "azure.swagger_json": {
        "summary": "The entry script's swagger document (inference-schema)",
        "parameters": [{"name": "version", "in": "query", "required": False, "schema": {"enum": ["2", "3"]}}],
        "responses": {"200": _ok(_json(_OBJECT))},
        "errors": ["404"],
    },
    # Open Inference Protocol V2 (REST), with Triton's binary data and repository extensions.
    "v2.metadata_server": {"summary": "V2 server metadata", "responses": {"200": _ok(_json(_OBJECT))}},
    "v2.metadata_model": {
        "summary": "V2 model metadata",
        "responses": {"200": _ok(_json(_OBJECT))},
        "errors": ["404"],
    },
    "v2.model_ready": {
        "summary": "V2 model readiness",
        "responses": {"200": _ok(_json(_READY)), "503": _ok(_json(_READY), "Model not ready")},
        "errors": ["404"],
    },
    "v2.model_config": {
        "summary": "V2 model configuration (Triton's model configuration extension)",
        "responses": {"200": _ok(_json(_OBJECT))},
        "errors": ["404"],
    },
    "v2.infer": {
        "summary": "V2 inference (JSON tensors, or a JSON header followed by binary tensors)",
        "parameters": [
            _header(
                "Inference-Header-Content-Length",
                {"type": "integer", "minimum": 0},
                "length of the JSON header when binary tensors follow it",
            ),
            _header("Content-Encoding", {"enum": ["gzip", "deflate", "identity"]}, "request compression"),
        ],
        "requestBody": {
            "required": True,
            "content": {**_json(_V2_INFER_REQUEST), **_BINARY},
        },
        "responses": {"200": _ok({**_json(_V2_INFER_RESPONSE), **_BINARY})},
        "errors": ["400", "401", "404", "413", "415", "422", "504"],
    },
    "v2.statistics": {
        "summary": "Per-model statistics (Triton's statistics extension): counts and durations in ns",
        "responses": {
            "200": _ok(
                _json(
                    {
                        "type": "object",
                        "required": ["model_stats"],
                        "properties": {"model_stats": {"type": "array", "items": _OBJECT}},
                    }
                )
            )
        },
        "errors": ["404"],
    },
    "v2.repository_index": {
        "summary": "Every model and its state",
        "requestBody": {
            "required": False,
            "content": _json({"type": "object", "properties": {"ready": {"type": "boolean"}}}),
        },
        "responses": {"200": _ok(_json({"type": "array", "items": _OBJECT}))},
        "errors": ["400"],
    },
    "v2.load": {
        "summary": "Load a model",
        "requestBody": {"required": False, "content": _json(_OBJECT)},
        "responses": {"200": _ok()},
        "errors": ["400", "404"],
        "x-prebake-changes-state": True,
    },
    "v2.unload": {
        "summary": "Unload a model",
        "requestBody": {"required": False, "content": _json(_OBJECT)},
        "responses": {"200": _ok()},
        "errors": ["400", "404"],
        "x-prebake-changes-state": True,
    },
    # Triton's shared memory extension: regions the client registers (--allow-client-shm; else 501, as Triton).
    "v2.shm_status": {
        "summary": "System shared memory regions registered (all, or one)",
        "responses": {"200": _ok(_json({"type": "array", "items": _OBJECT}))},
        "errors": ["404"],
    },
    "v2.shm_register": {
        "summary": "Register a system shared memory region: {key, offset, byte_size}",
        "requestBody": {
            "required": True,
            "content": _json(
                {
                    "type": "object",
                    "required": ["key", "byte_size"],
                    "properties": {
                        "key": {"type": "string"},
                        "offset": {"type": "integer", "minimum": 0},
                        "byte_size": {"type": "integer", "minimum": 1},
                    },
                }
            ),
        },
        "responses": {"200": _ok(), "501": _ok(_json(_OBJECT), "Client shared memory is disabled")},
        "errors": ["400"],
        "x-prebake-changes-state": True,
    },
    "v2.shm_unregister": {
        "summary": "Unregister a system shared memory region (or all of them)",
        "responses": {"200": _ok(), "501": _ok(_json(_OBJECT), "Client shared memory is disabled")},
        "x-prebake-changes-state": True,
    },
    "v2.cuda_status": {
        "summary": "CUDA shared memory regions: none (no GPUs, as Triton built without them answers)",
        "responses": {"200": _ok(_json({"type": "array", "items": _OBJECT}))},
        "errors": ["404"],
    },
    "v2.cuda_register": {
        "summary": "Register a CUDA shared memory region: refused (GPUs not supported)",
        "requestBody": {"required": False, "content": _json(_OBJECT)},
        "responses": {"400": _ok(_json(_OBJECT), "GPUs not supported")},
    },
    "v2.cuda_unregister": {
        "summary": "Unregister CUDA shared memory regions: none are registered",
        "responses": {"200": _ok()},
    },
    # KServe V1 (TensorFlow Serving REST).
    "v1.list_models": {
        "summary": "V1: the models served",
        "responses": {"200": _ok(_json({"type": "object", "properties": {"models": {"type": "array"}}}))},
    },
    "v1.model_ready": {
        "summary": "V1 model readiness",
        "responses": {"200": _ok(_json(_READY)), "503": _ok(_json(_READY), "Model not ready")},
        "errors": ["404"],
    },
    "v1.predict": {
        "summary": "V1 predict: rows in 'instances' or columns in 'inputs'",
        "requestBody": {"required": True, "content": _json(_V1_PREDICT_REQUEST)},
        "responses": {"200": _ok(_json(_PREDICTIONS))},
        "errors": ["400", "401", "404", "413", "422", "504"],
    },
    "v1.explain": {
        "summary": "V1 explain: not supported by prebake (501)",
        "requestBody": {"required": False, "content": _json(_V1_PREDICT_REQUEST)},
        "responses": {"501": _ok(_json(_OBJECT), "Explanations are not supported")},
        "errors": ["404"],
    },
    # SageMaker hosting contract.
    "sagemaker.ping": {
        "summary": "SageMaker health: 200 once the model is ready",
        "responses": {"200": _ok(), "503": _ok(None, "Not ready")},
    },
    "sagemaker.invocations": {
        "summary": "SageMaker invocations: body by Content-Type, answer by Accept",
        "parameters": [
            _header(
                "Accept",
                {"enum": ["application/json", "text/csv", "application/x-npy", "*/*"]},
                "the answer's media type",
            ),
            _header("X-Amzn-SageMaker-Custom-Attributes", {"type": "string"}, "passed to the model"),
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [_ROWS, _V1_PREDICT_REQUEST]}},
                "text/csv": {"schema": {"type": "string"}},
                "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": _ok(
                {
                    "application/json": {"schema": _ANY},
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                }
            )
        },
        "errors": ["400", "401", "406", "413", "415", "422", "504"],
    },
    # Vertex AI custom container contract (paths from AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE).
    "vertex.health": {
        "summary": "Vertex AI health: 200 once the model is ready",
        "responses": {"200": _ok(_json(_OBJECT)), "503": _ok(_json(_OBJECT), "Not ready")},
    },
    "vertex.predict": {
        "summary": "Vertex AI predict: 'instances' rows and optional 'parameters'",
        "requestBody": {"required": True, "content": _json(_INSTANCES_REQUEST)},
        "responses": {"200": _ok(_json(_PREDICTIONS))},
        "errors": ["400", "401", "404", "413", "422", "504"],
    },
    # SageMaker multi-model endpoints (SAGEMAKER_MULTI_MODEL=true).
    "sagemaker_mme.ping": {
        "summary": "SageMaker multi-model health: 200 once the server is up (models come later)",
        "responses": {"200": _ok(), "503": _ok(None, "Not ready")},
    },
    "sagemaker_mme.load": {
        "summary": "Load the model at 'url' as 'model_name' (SageMaker's Load Model API)",
        "requestBody": {"required": True, "content": _json(_MME_LOAD)},
        "responses": {"200": _ok(_json(_OBJECT))},
        "errors": ["400", "404", "409", "500", "507"],
    },
    "sagemaker_mme.listing": {
        "summary": "The loaded models, paged with next_page_token and limit (List Model API)",
        "responses": {"200": _ok(_json(_OBJECT))},
        "errors": ["400"],
    },
    "sagemaker_mme.describe": {
        "summary": "One loaded model (Get Model API)",
        "responses": {"200": _ok(_json(_OBJECT))},
        "errors": ["404"],
    },
    "sagemaker_mme.unload": {
        "summary": "Unload a model (Unload Model API)",
        "responses": {"200": _ok(_json(_OBJECT))},
        "errors": ["404"],
    },
    "sagemaker_mme.invocation": {
        "summary": "Invoke a loaded model, as /invocations (Invoke Model API)",
        "requestBody": {"required": True, "content": {"*/*": {"schema": _ANY}}},
        "responses": {"200": _ok({"*/*": {"schema": _ANY}})},
        "errors": ["400", "404", "406", "413", "415", "504"],
    },
    "openapi.openapi_json": {
        "summary": "This document",
        "responses": {"200": _ok(_json(_OBJECT))},
    },
}

_TAGS = {
    "ops": "probes and metrics",
    "azure": "Azure ML",
    "v2": "Open Inference Protocol V2",
    "v1": "KServe V1",
    "sagemaker": "SageMaker",
    "sagemaker_mme": "SageMaker multi-model",
    "vertex": "Vertex AI",
    "openapi": "OpenAPI",
}


def handler_key(handler: Callable[..., Any]) -> str:
    """``"v2.infer"`` for the V2 infer handler: its module's last name and its function name."""
    module = getattr(handler, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{getattr(handler, '__name__', '')}"


def _error_schema(route: Route) -> Schema:
    """The JSON schema of the error body this route really sends (its formatter, rendered once)."""
    sample = orjson.loads(route.error_body(400, "message", "request-id"))
    return {
        "type": "object",
        "required": sorted(sample),
        "properties": {key: {"type": "string"} for key in sample},
    }


def _path_parameters(path: str, models: Sequence[str]) -> list[dict[str, Any]]:
    parameters = []
    for segment in path.replace(":", "/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1]
            schema: Schema = {"type": "string", "minLength": 1, "pattern": "^[^/?#]+$"}
            if name == "name" and models:
                schema = {"enum": list(models)}  # the models this server has: any other name is a 404
            parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return parameters


def operation(route: Route, method: str, *, models: Sequence[str] = (), auth: bool = False) -> Operation:
    """The OpenAPI operation for one method of one route."""
    key = handler_key(route.handler)
    known = _OPS.get(key)
    if known is None:
        spec: Operation = {
            "summary": f"{method} {route.path}",
            "responses": {"200": _ok({"*/*": {"schema": _ANY}})},
        }
        if method in ("POST", "PUT", "PATCH"):
            spec["requestBody"] = {"required": False, "content": {"*/*": {"schema": _ANY}}}
    else:
        spec = {k: v for k, v in known.items() if k != "errors"}
        spec["responses"] = dict(known["responses"])
    if method in ("GET", "OPTIONS", "DELETE"):
        spec.pop("requestBody", None)
    spec["operationId"] = f"{key}.{method.lower()}.{route.label}"
    spec["tags"] = [_TAGS.get(key.split(".", 1)[0], "other")]
    parameters = _path_parameters(route.path, models) + list(spec.get("parameters", []))
    if parameters:
        spec["parameters"] = parameters
    errors = known.get("errors", []) if known else []
    if auth and not route.public:
        errors = [*errors, "401"]
        spec["security"] = [{"bearer": []}, {"apiKey": []}]
    error_content = _json(_error_schema(route))
    for status in sorted(set(errors)):
        spec["responses"].setdefault(status, {"description": "Error", "content": error_content})
    spec["responses"]["default"] = {"description": "Error", "content": error_content}
    return spec


def document(routes: Sequence[Route], *, models: Sequence[str] = (), auth: bool = False) -> dict[str, Any]:
    """The OpenAPI document for ``routes``.

    >>> from prebake.server import ops
    >>> sorted(document(ops.routes(backend=None, metrics=None))["paths"])  # type: ignore[arg-type]
    ['/healthz', '/metrics', '/readyz', '/v2/health/live', '/v2/health/ready']
    """
    paths: dict[str, dict[str, Operation]] = {}
    for mounted in routes:
        for method in mounted.methods:
            if method == "HEAD":
                continue
            paths.setdefault(mounted.path, {})[method.lower()] = operation(
                mounted, method, models=models, auth=auth
            )
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "prebake inference server",
            "version": prebake.__version__,
            "description": "Every HTTP route this server mounts: Azure ML, Open Inference Protocol V2, "
            "KServe V1, SageMaker and Vertex AI, with the probes and metrics.",
        },
        "paths": paths,
    }
    if auth:
        doc["components"] = {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            }
        }
    return doc


def route(routes: Sequence[Route], *, models: Sequence[str] = (), auth: bool = False) -> Route:
    """A ``GET /openapi.json`` route describing ``routes`` and itself; the document is rendered once."""
    rendered: list[bytes] = []

    async def openapi_json(request: Request) -> Response:
        if not rendered:
            rendered.append(orjson.dumps(document([*routes, this], models=models, auth=auth)))
        return Response(rendered[0])

    this = Route(("GET",), OPENAPI_PATH, openapi_json, label=OPENAPI_PATH)
    return this
