"""The HTTP transport: an ASGI app that turns each request into a pipeline ``Call`` and back.

    route (on the raw path) → pipeline: request id, auth, limits → read the body → admission
        → the route's handler (a protocol module) → errors as the route's protocol writes them
    → send (whole, or streamed) → pipeline: metrics, access log

What is HTTP's alone lives here: routing, reading the body (size limit, deadline, a client that goes
away mid-body), CORS, and writing the response. Everything else a request shares is the pipeline's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prebake.errors import PayloadTooLarge, PrebakeError, RequestTimeout
from prebake.http import ErrorFormatter, Request, Response, Route, v2_error_body
from prebake.server.pipeline import Call, ClientGone, Pipeline
from prebake.server.router import Router, routing_path

logger = logging.getLogger("prebake.server")

Scope = dict[str, Any]


class HttpTransport:
    def __init__(
        self,
        routes: list[Route],
        pipeline: Pipeline[Response],
        *,
        max_body_bytes: int,
        body_timeout_s: float | None = None,
        cors_origins: tuple[str, ...] = (),
        unmatched_error_body: ErrorFormatter = v2_error_body,
    ) -> None:
        self.router = Router(routes, unmatched_error_body)
        self.pipeline = pipeline
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.cors_origins = cors_origins
        self._preflight = Route(("OPTIONS",), "", self._answer_preflight, public=True, label="preflight")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        method: str = scope["method"]
        raw_path: bytes | None = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path is not None else scope["path"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        content_length = -1
        origin: bytes | None = None
        for name, value in headers:
            if name == b"content-length":
                content_length = int(value) if value.isdigit() else -1
            elif name == b"origin":
                origin = value

        route: Route | None = None
        params: dict[str, str] = {}
        routing_error: PrebakeError | None = None
        where = routing_path(path)
        if method == "OPTIONS" and origin is not None and self.cors_origins:
            route = self._preflight
        else:
            try:
                route, params = self.router.match(method, where)
            except PrebakeError as error:
                routing_error = error
        call = Call(
            "http",
            method,
            path,
            route.label if route is not None else "unmatched",
            headers,
            public=route.public if route is not None else False,
            model=params.get("name") or (route.model if route is not None else ""),
            content_length=content_length,
            fd=scope.get("prebake.fd", -1),
            error_body=route.error_body if route is not None else None,
        )

        async def read(call: Call) -> bytes:
            if routing_error is not None:
                raise routing_error  # after auth: an unknown path tells an unauthenticated caller nothing
            return await self._read_body(receive, content_length)

        async def answer(call: Call, body: bytes) -> Response:
            assert route is not None
            request = Request(
                method=method,
                path=where,
                query_string=scope.get("query_string", b""),
                raw_headers=headers,
                body=body,
                request_id=call.request_id,
                path_params=params,
                scheme=scope.get("scheme", "http"),
                server=scope.get("server"),
            )
            return await route.handler(request)

        def fail(call: Call, error: PrebakeError) -> Response:
            render = route.error_body if route is not None else self.router.error_body(where)
            return _error_response(render, error, call.request_id)

        try:
            response = await self.pipeline.run(call, read, answer, fail)
        except ClientGone:
            self.pipeline.finish(call)
            return
        call.status = response.status
        try:
            if response.stream is not None:
                await self._send_stream(send, receive, call, response, origin)
            else:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": self._headers(call, response, origin, len(response.body)),
                    }
                )
                body = b"" if method == "HEAD" else response.body
                call.size = len(body)
                await send({"type": "http.response.body", "body": body})
        finally:
            self.pipeline.finish(call)

    # -- reading ------------------------------------------------------------------------------------------
    async def _read_body(self, receive: Any, content_length: int) -> bytes:
        """The whole body, or an error: over the limit (413), past the deadline (408), or the client gone
        before it ended (ClientGone: a short body never reaches a model)."""
        if self.body_timeout_s is None:
            return await self._receive_body(receive, content_length)
        try:
            return await asyncio.wait_for(self._receive_body(receive, content_length), self.body_timeout_s)
        except TimeoutError:
            raise RequestTimeout(
                f"the request body did not arrive within {self.body_timeout_s:g} s",
                headers=[("connection", "close")],
            ) from None

    async def _receive_body(self, receive: Any, content_length: int) -> bytes:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body: bytes = message.get("body", b"")
        if message.get("more_body"):
            limit = self.max_body_bytes
            chunks = [body]
            size = len(body)
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"request body is over the limit of {limit} bytes", headers=[("connection", "close")]
                    )
                chunks.append(chunk)
            body = b"".join(chunks)
        if content_length >= 0 and len(body) != content_length:
            raise ClientGone  # the server saw the connection end early
        return body

    # -- writing ------------------------------------------------------------------------------------------
    def _headers(
        self, call: Call, response: Response, origin: bytes | None, length: int | None
    ) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-request-id", call.request_id.encode("latin-1"))]
        if response.content_type:
            headers.append((b"content-type", response.content_type.encode("latin-1")))
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        for name, value in response.headers:
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
        if origin is not None and self.cors_origins and self._origin_allowed(origin):
            headers.append((b"access-control-allow-origin", origin))
            headers.append((b"vary", b"Origin"))
        return headers

    async def _send_stream(
        self, send: Any, receive: Any, call: Call, response: Response, origin: bytes | None
    ) -> None:
        """Chunks as the handler makes them; a client that goes away closes the stream, so the work behind
        it (generation, say) stops."""
        stream = response.stream
        assert stream is not None
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": self._headers(call, response, origin, None),
            }
        )
        gone = asyncio.ensure_future(receive())  # the body was read: the next message is the disconnect
        try:
            async for chunk in _until_gone(stream, gone):
                call.size += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if gone.done():
                call.status = 499
                return
            await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    def _origin_allowed(self, origin: bytes) -> bool:
        return "*" in self.cors_origins or origin.decode("latin-1") in self.cors_origins

    async def _answer_preflight(self, request: Request) -> Response:
        allowed = self.router.allowed(request.path) or ["GET", "POST"]
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


async def _until_gone(stream: AsyncIterator[bytes], gone: asyncio.Future[Any]) -> AsyncIterator[bytes]:
    """The chunks of ``stream`` until it ends or ``gone`` (the client's disconnect) completes first."""
    iterator = stream.__aiter__()
    while True:
        step = asyncio.ensure_future(iterator.__anext__())
        await asyncio.wait((step, gone), return_when=asyncio.FIRST_COMPLETED)
        if not step.done():
            step.cancel()
            with contextlib.suppress(BaseException):
                await step
            return
        try:
            chunk = step.result()
        except StopAsyncIteration:
            return
        yield chunk


def _error_response(render: ErrorFormatter, error: PrebakeError, request_id: str) -> Response:
    return Response(
        body=render(error.status, error.message, request_id), status=error.status, headers=list(error.headers)
    )


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["HttpTransport", "v2_error_body"]
