"""Vertex AI custom container contract: a health route and a predict route, paths given by the platform
(AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE, read by the server's config and passed in here).

    GET  {health_route}    200 once the model is ready, 503 before
    POST {predict_route}   {"instances": [...], "parameters": {...}}  ->  {"predictions": [...]}

A container serves one model: the backend's default one. ``instances`` are rows as in KServe V1
(``{"b64": ...}`` values become bytes); ``parameters`` go to the model as request parameters;
``predictions`` has one entry per instance (see ``rows.outputs_to_predictions``). Where the model is
an entry script (a raw runtime), the body goes to it unchanged and its answer comes back unchanged.
Vertex itself caps request bodies at 1.5 MB ("Custom container requirements for inference", request
and response requirements): a larger body is served (the server's own body limit applies) and logged
as over that limit, since behind a real Vertex endpoint it would never arrive.
"""

from __future__ import annotations

import logging

from prebake import codec
from prebake.errors import ModelNotReady
from prebake.http import Request, Response, Route, raw_response
from prebake.rows import outputs_to_predictions, rows_to_inputs
from prebake.types import Backend, InferenceRequest

logger = logging.getLogger("prebake.vertex")

VERTEX_BODY_LIMIT = 1_500_000  # bytes: Vertex AI's 1.5 MB per prediction request


def routes(
    backend: Backend, *, health_route: str = "/health", predict_route: str = "/predict"
) -> list[Route]:
    """The Vertex AI routes, at the paths the platform gives."""

    async def health(request: Request) -> Response:
        if backend.serving():
            return Response(b'{"status":"healthy"}')
        return Response(b'{"status":"unhealthy"}', status=503)

    async def predict(request: Request) -> Response:
        if len(request.body) > VERTEX_BODY_LIMIT:
            logger.warning(
                "request body of %d bytes is over Vertex AI's 1.5 MB (%d bytes) limit for prediction "
                "requests: served here, but a Vertex endpoint would refuse it",
                len(request.body),
                VERTEX_BODY_LIMIT,
            )
        name = backend.default_model()
        if name is None:
            raise ModelNotReady("no model is ready to serve predictions")
        if backend.is_raw(name):
            return raw_response(await backend.score_raw(name, request.to_raw()))
        doc = codec.loads(request.body)
        if not isinstance(doc, dict) or "instances" not in doc:
            raise codec.bad('the request must be a JSON object with "instances"')
        parameters = doc.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise codec.bad("'parameters' must be a JSON object")
        inputs = rows_to_inputs(doc["instances"], backend.metadata(name).inputs)
        response = await backend.infer(
            name, None, InferenceRequest(inputs=inputs, parameters=dict(parameters))
        )
        return Response(codec.dumps({"predictions": outputs_to_predictions(response.outputs)}))

    return [
        Route(("GET",), health_route, health, public=True, label=health_route),
        Route(("POST",), predict_route, predict, label=predict_route),
    ]
