"""The gRPC transport: every RPC of the V2 servicer through the same pipeline as HTTP.

An interceptor wraps each method handler: the call's metadata are its headers, the RPC's full name its
route, the model named in the message its model; a PrebakeError becomes the gRPC status for its HTTP
status (400 INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE, ...). So gRPC calls are authenticated,
limited, counted in ``prebake_requests_total`` and the latency histogram, and written to the access
log exactly as HTTP requests are. The worker creates and binds the server here; the protocol module
(protocols/v2_grpc.py) only decodes, calls the backend and encodes.

Every worker binds the same port with SO_REUSEPORT, and the kernel spreads connections across them
as it does for the HTTP socket; the supervisor first checks that no other process holds the port
(``supervisor.check_port_free``), since SO_REUSEPORT would otherwise let a second server share it silently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import grpc

from prebake.errors import ConfigError, PrebakeError
from prebake.server.pipeline import Call, Pipeline

logger = logging.getLogger("prebake.grpc")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Probes answer without credentials, as the HTTP health routes do.
PUBLIC_METHODS = frozenset(
    {"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"}
)

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    431: grpc.StatusCode.INVALID_ARGUMENT,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC status code for an HTTP status carried by a PrebakeError."""
    if status in _CODES:
        return _CODES[status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL


class Failure(NamedTuple):
    code: grpc.StatusCode
    message: str


def _fail(call: Call, error: PrebakeError) -> Failure:
    return Failure(grpc_code(error.status), error.message)


def _headers(context: grpc.aio.ServicerContext) -> list[tuple[bytes, bytes]]:
    # The same (lower-case name, value) byte pairs an HTTP request has, so every check reads both.
    pairs: list[tuple[bytes, bytes]] = []
    for key, value in context.invocation_metadata() or ():
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        pairs.append((key.lower().encode("latin-1"), raw))
    return pairs


def _model_of(message: Any) -> str:
    """The model a V2 message names (ModelInfer's model_name, the others' name)."""
    name = getattr(message, "model_name", None) or getattr(message, "name", None)
    return name if isinstance(name, str) else ""


class PipelineInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, pipeline: Pipeline[Any]) -> None:
        self.pipeline = pipeline

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _call(self, method: str, context: grpc.aio.ServicerContext, model: str) -> Call:
        return Call(
            "grpc", "POST", method, method, _headers(context), public=method in PUBLIC_METHODS, model=model
        )

    def _unary(self, method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        pipeline = self.pipeline

        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = self._call(method, context, _model_of(request))

            async def read(call: Call) -> Any:
                return request

            async def answer(call: Call, message: Any) -> Any:
                return await behavior(message, context)

            result = await pipeline.run(call, read, answer, _fail)
            if isinstance(result, Failure):
                pipeline.finish(call)
                await context.abort(result.code, result.message)
            call.size = result.ByteSize()
            pipeline.finish(call)
            return result

        return run

    def _stream(self, method: str, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
        # A stream passes the checks once, at its start; each message's errors are the servicer's own.
        pipeline = self.pipeline

        async def run(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = self._call(method, context, "")

            async def read(call: Call) -> None:
                return None

            async def answer(call: Call, _: None) -> AsyncIterator[Any]:
                return behavior(requests, context)

            result = await pipeline.run(call, read, answer, _fail)
            if isinstance(result, Failure):
                pipeline.finish(call)
                await context.abort(result.code, result.message)
            try:
                async for message in result:
                    call.size += message.ByteSize()
                    yield message
            finally:
                pipeline.finish(call)

        return run


async def start_grpc(
    register: Callable[[grpc.aio.Server], None],
    pipeline: Pipeline[Any],
    *,
    host: str,
    port: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> grpc.aio.Server:
    """A started gRPC server on ``host:port`` whose every RPC goes through ``pipeline``; ``register``
    adds the servicers. ``max_message_bytes`` bounds requests and responses (gRPC's own default,
    4 MiB, is small for tensors). The caller stops the server."""
    server = grpc.aio.server(
        interceptors=[PipelineInterceptor(pipeline)],
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    register(server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen for gRPC on {address}: {exc}") from None
    if bound == 0:
        raise ConfigError(f"cannot listen for gRPC on {address}")
    await server.start()
    logger.info("gRPC listening on %s", address)
    return server
