"""The Azure ML inference contract (azmlinfsrv): `GET /` health, `GET|POST /score`, `GET /swagger.json`.

Request-id headers follow the reference server: `x-request-id` is the client's or a new one;
`x-ms-client-request-id` echoes the client's; `x-ms-request-id` (deprecated there, kept for old clients)
is the client's legacy id, else the client request id, else the request id.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from prebake.errors import HeaderTooLarge, PrebakeError
from prebake.http import Request, Response, Route
from prebake.types import Backend

HEADER_LIMIT = 100
SCORE_METHODS = ("GET", "POST", "OPTIONS")


def error_body(status: int, message: str, request_id: str) -> bytes:
    return orjson.dumps({"message": message, "request_id": request_id})


def _ms_headers(request: Request) -> list[tuple[str, str]]:
    headers = request.headers
    client_id = headers.get("x-ms-client-request-id", "")
    legacy_id = headers.get("x-ms-request-id", "")
    if legacy_id:
        client_id = client_id or legacy_id
    else:
        legacy_id = client_id or request.request_id
    if len(legacy_id) > HEADER_LIMIT or len(client_id) > HEADER_LIMIT:
        raise HeaderTooLarge(
            f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters"
        )
    out = [("x-ms-request-id", legacy_id)]
    if client_id:
        out.append(("x-ms-client-request-id", client_id))
    if "traceid" in headers:
        out.append(("TraceId", headers["traceid"]))
    return out


def routes(backend: Backend, *, swagger: Callable[[str | None], bytes] | None = None) -> list[Route]:
    """Routes of the Azure contract for the server's entry script."""

    async def health(request: Request) -> Response:
        if not backend.ready():
            return Response(b"Unhealthy", status=503, content_type="text/plain; charset=utf-8")
        return Response(b"Healthy", content_type="text/plain; charset=utf-8")

    async def score(request: Request) -> Response:
        ms_headers: list[tuple[str, str]] = []
        try:
            ms_headers = _ms_headers(request)
            raw = request.to_raw()
            result = await backend.score_raw(None, raw)
        except PrebakeError as error:
            failed = error.status >= 500
            error.headers.extend([*ms_headers, ("x-ms-run-function-failed", str(failed))])
            raise
        headers = [*ms_headers, *result.headers]
        headers.append(("x-ms-run-fn-exec-ms", f"{result.run_ms:.3f}"))
        if not any(name.lower() == "x-ms-run-function-failed" for name, _ in result.headers):
            headers.append(("x-ms-run-function-failed", str(result.run_failed or result.status >= 500)))
        return Response(result.body, status=result.status, content_type=result.content_type, headers=headers)

    async def swagger_json(request: Request) -> Response:
        if swagger is None:
            raise PrebakeError("no swagger is available for this server", status=404)
        version = request.args.get("version", [None])[0]
        return Response(swagger(version))

    return [
        Route(("GET",), "/", health, error_body=error_body, public=True, label="/"),
        Route(SCORE_METHODS, "/score", score, error_body=error_body, label="/score", model="score"),
        Route(("GET",), "/swagger.json", swagger_json, error_body=error_body),
    ]
