"""KServe V1 (the TensorFlow Serving REST API):

    GET  /v1/models                  {"models": [names]}
    GET  /v1/models/{name}           {"name": ..., "ready": bool} (503 when not ready)
    POST /v1/models/{name}:predict   {"instances": [...]} or {"inputs": ...}  ->  {"predictions": ...}

``instances`` are rows (TensorFlow Serving's row format; rows that are objects name their inputs).
``inputs`` is the columnar format: a list is the first input's rows, an object maps input names to
their values. A top-level ``parameters`` object goes to the model as request parameters.
``predictions`` follows ``rows.outputs_to_predictions``: one output gives its rows; several give one
object per row keyed by output name. Errors are ``{"error": ...}``, malformed requests 400, as KServe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prebake import codec
from prebake.errors import PrebakeError
from prebake.http import Request, Response, Route
from prebake.rows import column, outputs_to_predictions, rows_to_inputs
from prebake.types import Backend, InferenceRequest, TensorSpec


def decode_predict(doc: Any, specs: list[TensorSpec]) -> InferenceRequest:
    """A V1 predict body as the internal request."""
    if not isinstance(doc, dict):
        raise codec.bad('the request must be a JSON object with "instances" or "inputs"')
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise codec.bad("'parameters' must be a JSON object")
    if "instances" in doc:
        inputs = rows_to_inputs(doc["instances"], specs)
    elif "inputs" in doc:
        inputs = _columns(doc["inputs"], specs)
    else:
        raise codec.bad('the request needs "instances" (rows) or "inputs" (columns)')
    return InferenceRequest(inputs=inputs, parameters=dict(parameters))


def _columns(value: Any, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    if isinstance(value, dict):
        if not value:
            raise codec.bad("'inputs' must name at least one input")
        datatypes = {spec.name: spec.datatype for spec in specs}
        return {
            name: column(name, data if isinstance(data, list) else [data], datatypes.get(name))
            for name, data in value.items()
        }
    return rows_to_inputs(value, specs)


def routes(backend: Backend) -> list[Route]:
    """The KServe V1 routes for ``backend``."""

    async def list_models(request: Request) -> Response:
        return Response(codec.dumps({"models": backend.model_names()}))

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        ready = backend.model_ready(name)
        if not ready:
            backend.metadata(name)  # 404 for a model this server does not have
        return Response(codec.dumps({"name": name, "ready": ready}), status=200 if ready else 503)

    async def predict(request: Request) -> Response:
        name = request.path_params["name"]
        internal = decode_predict(codec.loads(request.body), backend.metadata(name).inputs)
        response = await backend.infer(name, None, internal)
        return Response(codec.dumps({"predictions": outputs_to_predictions(response.outputs)}))

    async def explain(request: Request) -> Response:
        raise PrebakeError("explanations are not supported by this server", status=501)

    # ':predict' before the bare model path: the router tries templates in order, and "{name}"
    # alone would otherwise claim "iris:predict".
    return [
        Route(("POST",), "/v1/models/{name}:predict", predict),
        Route(("POST",), "/v1/models/{name}:explain", explain),
        Route(("GET",), "/v1/models/{name}", model_ready),
        Route(("GET",), "/v1/models", list_models),
    ]
