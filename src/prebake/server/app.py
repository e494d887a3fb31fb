"""The ASGI application: one short path from bytes in to bytes out.

    receive body (size-limited) -> route -> handler (protocol module) -> response
                                        \\-> PrebakeError -> the route's JSON error body

Everything every request shares lives here: request ids, limits, CORS, errors, metrics and the access log.
Handlers never see ASGI; only this module catches `Exception`.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from typing import Any

from prebake.errors import HeaderTooLarge, PayloadTooLarge, PrebakeError
from prebake.http import Request, Response, Route, v2_error_body
from prebake.server import auth
from prebake.server.logs import AccessLog
from prebake.server.metrics import Metrics
from prebake.server.router import Router

logger = logging.getLogger("prebake.server")

REQUEST_ID_LIMIT = 100  # as azmlinfsrv: longer client ids are refused with 431

Scope = dict[str, Any]


class App:
    def __init__(
        self,
        routes: list[Route],
        *,
        metrics: Metrics,
        access_log: AccessLog | None,
        max_body_bytes: int,
        cors_origins: tuple[str, ...] = (),
        debug: bool = False,
        api_keys: tuple[bytes, ...] = (),
        max_header_bytes: int = 64 * 1024,
    ) -> None:
        self.router = Router(routes)
        self.metrics = metrics
        self.access_log = access_log
        self.max_body_bytes = max_body_bytes
        self.cors_origins = cors_origins
        self.debug = debug
        self.api_keys = api_keys
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        started = time.perf_counter()
        metrics = self.metrics
        metrics.in_flight += 1
        method: str = scope["method"]
        path: str = scope["path"]
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = ""
        route: Route | None = None
        model = ""
        origin: bytes | None = None
        content_length = -1
        header_bytes = 0
        for name, value in raw_headers:
            header_bytes += len(name) + len(value)
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else -1
            elif name == b"origin":
                origin = value
        try:
            if not request_id:
                request_id = str(uuid.uuid4())
            if method == "OPTIONS" and origin is not None and self.cors_origins:
                response = self._preflight(path)
            else:
                route, params = self.router.match(method, path)
                model = params.get("name") or route.extra.get("model", "")
                if header_bytes > self.max_header_bytes:
                    raise HeaderTooLarge(
                        f"request headers are over the limit of {self.max_header_bytes} bytes"
                    )
                if self.api_keys and not route.public:
                    auth.check(self.api_keys, raw_headers)
                if len(request_id) > REQUEST_ID_LIMIT:
                    request_id = str(uuid.uuid4())
                    raise HeaderTooLarge(f"x-request-id must not exceed {REQUEST_ID_LIMIT} characters")
                body = await self._read_body(receive, content_length)
                request = Request(
                    method=method,
                    path=path,
                    query_string=scope.get("query_string", b""),
                    raw_headers=raw_headers,
                    body=body,
                    request_id=request_id,
                    path_params=params,
                    scheme=scope.get("scheme", "http"),
                    server=scope.get("server"),
                )
                response = await route.handler(request)
        except PrebakeError as error:
            trace = error.details.get("traceback")
            if trace:
                logger.error("%s %s [%s] failed: %s\n%s", method, path, request_id, error.message, trace)
            response = self._error(route, error, request_id)
        except Exception:
            logger.error(
                "unhandled error on %s %s [%s]:\n%s", method, path, request_id, traceback.format_exc()
            )
            message = "An unexpected internal error occurred. Check the logs for more info."
            if self.debug:
                message += "\n" + traceback.format_exc()
            response = self._error(route, PrebakeError(message), request_id)

        headers = [(b"x-request-id", request_id.encode("latin-1"))]
        if response.content_type:
            headers.append((b"content-type", response.content_type.encode("latin-1")))
        body_out = b"" if method == "HEAD" else response.body
        headers.append((b"content-length", str(len(response.body)).encode()))
        for name_, value_ in response.headers:
            headers.append((name_.encode("latin-1"), value_.encode("latin-1")))
        if origin is not None and self.cors_origins and self._origin_allowed(origin):
            headers.append((b"access-control-allow-origin", origin))
            headers.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body_out})

        metrics.in_flight -= 1
        elapsed = time.perf_counter() - started
        label = route.label if route is not None else "unmatched"
        metrics.observe_request(label, method, response.status, model, elapsed)
        if self.access_log is not None:
            self.access_log.record(
                request_id, method, path, response.status, elapsed * 1000, len(body_out), model
            )

    async def _read_body(self, receive: Any, content_length: int) -> bytes:
        limit = self.max_body_bytes
        if content_length > limit:
            raise PayloadTooLarge(
                f"request body of {content_length} bytes is over the limit of {limit} bytes"
            )
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _error(self, route: Route | None, error: PrebakeError, request_id: str) -> Response:
        route = route or error.details.get("route")
        render = route.error_body if route is not None else v2_error_body
        response = Response(body=render(error.status, error.message, request_id), status=error.status)
        extra = error.details.get("headers")
        if extra:
            response.headers.extend(extra)
        return response

    def _origin_allowed(self, origin: bytes) -> bool:
        return "*" in self.cors_origins or origin.decode("latin-1") in self.cors_origins

    def _preflight(self, path: str) -> Response:
        allowed = self.router.allowed(path) or ["GET", "POST"]
        return Response(
            body=b"",
            status=200,
            content_type=None,
            headers=[
                ("access-control-allow-methods", ", ".join(allowed)),
                ("access-control-allow-headers", "*"),
                ("access-control-max-age", "600"),
            ],
        )


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
