"""The OpenAPI document describes exactly the routes a server mounts, in each route's own error shape."""

from __future__ import annotations

from typing import Any

import pytest

from prebake.http import Request, Response, Route
from prebake.server import openapi

from .helpers import SCRIPTS


def _routes() -> tuple[list[Route], list[str]]:
    from prebake.config import load_config
    from prebake.server.metrics import Metrics
    from prebake.server.worker import build_repository

    backend, routes = build_repository(load_config(entry_script=SCRIPTS / "work.py", env={}), Metrics(None))
    return routes, backend.model_names()


def test_every_mounted_route_and_method_is_described() -> None:
    """Each (path, method) the server mounts, HEAD aside, is an operation of the document, and nothing else is."""
    routes, models = _routes()
    doc = openapi.document(routes, models=models)
    mounted = {(r.path, m.lower()) for r in routes for m in r.methods if m != "HEAD"}
    described = {(path, method) for path, methods in doc["paths"].items() for method in methods}
    assert described == mounted


def test_error_schemas_are_the_routes_own_shapes() -> None:
    """Azure routes describe {message, request_id} errors; the other protocols {error, request_id}."""
    routes, models = _routes()
    doc = openapi.document(routes, models=models)

    def keys(path: str, method: str) -> list[str]:
        schema: dict[str, Any] = doc["paths"][path][method]["responses"]["default"]["content"][
            "application/json"
        ]["schema"]
        return list(schema["required"])

    assert keys("/score", "post") == ["message", "request_id"]
    assert keys("/v2/models/{name}/infer", "post") == ["error", "request_id"]


def test_an_unknown_route_still_gets_an_operation() -> None:
    """A route no protocol table knows is described generically, so the document never misses a mounted route."""

    async def custom(request: Request) -> Response:
        return Response(b"{}")

    doc = openapi.document([Route(("POST",), "/custom/{name}", custom)], models=["m"])
    operation = doc["paths"]["/custom/{name}"]["post"]
    assert operation["parameters"][0]["schema"] == {"enum": ["m"]}
    assert "requestBody" in operation


def test_auth_marks_only_non_public_routes() -> None:
    """With auth on, every non-public operation carries a security requirement and a 401; probes carry none."""
    routes, models = _routes()
    doc = openapi.document(routes, models=models, auth=True)
    assert doc["paths"]["/score"]["post"]["security"]
    assert "401" in doc["paths"]["/score"]["post"]["responses"]
    assert "security" not in doc["paths"]["/v2/health/ready"]["get"]


def test_the_document_loads_in_schemathesis_and_the_route_serves_it() -> None:
    """schemathesis accepts every operation, and openapi.route's handler answers the document including itself."""
    schemathesis = pytest.importorskip("schemathesis")
    import asyncio

    import orjson

    routes, models = _routes()
    route = openapi.route(routes, models=models)
    request = Request("GET", "/openapi.json", b"", [], b"", "id")
    served = orjson.loads(asyncio.run(route.handler(request)).body)
    assert "/openapi.json" in served["paths"]
    operations = list(schemathesis.openapi.from_dict(served).get_all_operations())
    assert operations and all(result.ok() for result in operations)
