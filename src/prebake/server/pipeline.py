"""What every request shares, whatever its transport (HTTP or gRPC), in the order it happens:

    request id → auth → limits → (the transport reads the body) → admission → call
        → error mapping → metrics → access log

Each step is a small function below; ``build_pipeline`` lists them once, top to bottom, and both
transports run every request through the one ``Pipeline``, so a rule added here (a rate limit, say)
applies to HTTP and gRPC alike. A transport turns its wire request into a ``Call``, hands the pipeline a
function that reads the request and one that answers it, and renders a ``PrebakeError`` its own way
(a JSON body, a gRPC status); everything else is here. Only this module catches ``Exception``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from prebake.errors import HeaderTooLarge, OutOfMemory, PayloadTooLarge, PrebakeError, ServerBusy
from prebake.server import auth
from prebake.server.logs import AccessLog
from prebake.server.metrics import Metrics
from prebake.server.rescue import WorkerTable

logger = logging.getLogger("prebake.server")

REQUEST_ID_LIMIT = 100  # as azmlinfsrv: longer client ids are refused with 431
INTERNAL_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."
CLIENT_GONE = 499  # nginx's "client closed request": logged and counted, never sent

Headers = list[tuple[bytes, bytes]]
P = TypeVar("P")  # what the transport read (an HTTP body, a gRPC message)
R = TypeVar("R")  # what the transport sends (an HTTP response, a gRPC message or status)


class ClientGone(Exception):
    """The client went away before its request was whole: nothing is scored and nothing is sent."""


class Call:
    """One request on its way through the pipeline, the same for every transport."""

    __slots__ = (
        "transport",
        "method",
        "path",
        "label",
        "headers",
        "public",
        "model",
        "request_id",
        "content_length",
        "authenticated",
        "status",
        "size",
        "started",
        "fd",
        "error_body",
    )

    def __init__(
        self,
        transport: str,
        method: str,
        path: str,
        label: str,
        headers: Headers,
        *,
        public: bool = False,
        model: str = "",
        content_length: int = -1,
        fd: int = -1,
        error_body: Any = None,
    ) -> None:
        self.transport = transport
        self.method = method
        self.path = path  # as the client sent it (still percent-encoded): what the access log shows
        self.label = label  # the route template or RPC name: bounded, so metrics labels stay bounded
        self.headers = headers  # lower-case names, as both transports give them
        self.public = public  # health probes: no credentials needed
        self.model = model  # the model the request names, "" where none
        self.request_id = ""
        self.content_length = content_length
        self.authenticated = False
        self.status = 200
        self.size = 0
        self.started = time.perf_counter()
        self.fd = fd  # the HTTP connection's descriptor (-1: none), for answering from outside (rescue.py)
        self.error_body = error_body  # how this request's protocol writes an error body


Check = Callable[[Call], None]
Finish = Callable[[Call], None]


# -- the steps, in order --------------------------------------------------------------------------------


class RequestIds:
    """New request ids in UUID form: a random UUID per process, its last 48 bits counting up. Unique
    like uuid4() (which would draw 16 random bytes and build an object per request), at a fraction of
    the cost; request ids identify, they are no secret."""

    def __init__(self) -> None:
        self.reseed()
        # Workers are forked: each draws its own base, or two would hand out the same ids.
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._base = uuid.uuid4().hex[:20]
        self._count = itertools.count(int(uuid.uuid4().hex[20:], 16))

    def new(self) -> str:
        low = next(self._count) & 0xFFFFFFFFFFFF
        base = self._base
        return f"{base[:8]}-{base[8:12]}-{base[12:16]}-{base[16:20]}-{low:012x}"


_ids = RequestIds()


def assign_request_id(call: Call) -> None:
    """The client's ``x-request-id`` (at most 100 characters), else a new one."""
    for name, value in call.headers:
        if name == b"x-request-id":
            if len(value) > REQUEST_ID_LIMIT:
                call.request_id = _ids.new()
                raise HeaderTooLarge(f"x-request-id must not exceed {REQUEST_ID_LIMIT} characters")
            call.request_id = value.decode("latin-1")
            return
    call.request_id = _ids.new()


def authenticate(keys: tuple[bytes, ...]) -> Check:
    """API keys on every route but the health probes; nothing about a request is counted under a model's
    name before it passes (see ``record_metrics``)."""
    if not keys:

        def open_server(call: Call) -> None:
            call.authenticated = True

        return open_server

    def check_key(call: Call) -> None:
        if not call.public:
            auth.check(keys, call.headers)
        call.authenticated = True

    return check_key


def check_limits(*, max_header_bytes: int, max_body_bytes: int) -> Check:
    """Header and declared body sizes, refused before anything is read."""

    def limits(call: Call) -> None:
        size = 0
        for name, value in call.headers:
            size += len(name) + len(value)
        if size > max_header_bytes:
            raise HeaderTooLarge(f"request headers are over the limit of {max_header_bytes} bytes")
        if call.content_length > max_body_bytes:
            raise PayloadTooLarge(
                f"request body of {call.content_length} bytes is over the limit of {max_body_bytes} bytes"
            )

    return limits


class Admission:
    """At most ``limit`` requests in the call step at once per worker; past it, a retryable 503 at once.

    Counted once the request is whole (after its body arrived), so clients trickling bodies hold no
    slot: the body deadline bounds them instead. Each admitted HTTP request is also noted in the
    worker's ``table``, so the supervisor can answer it should the worker freeze (rescue.py)."""

    def __init__(
        self, limit: int | None, table: WorkerTable | None = None, timeout_s: float | None = None
    ) -> None:
        self.limit = limit
        self.active = 0
        self.table = table
        self.timeout_s = timeout_s if timeout_s is not None else float("inf")

    def enter(self, call: Call) -> int:
        if self.limit is not None and self.active >= self.limit:
            raise ServerBusy(
                f"the server is at its limit of {self.limit} concurrent requests; retry shortly",
                headers=[("retry-after", "1")],
            )
        self.active += 1
        if self.table is None or call.fd < 0:
            return -1
        # perf_counter and monotonic share CLOCK_MONOTONIC on Linux, which the supervisor reads.
        return self.table.register(call.fd, call.started + self.timeout_s, call.request_id, call.error_body)

    def leave(self, entry: int) -> None:
        self.active -= 1
        if entry >= 0 and self.table is not None:
            self.table.done(entry)


def record_metrics(metrics: Metrics, known_model: Callable[[str], bool]) -> Finish:
    """Requests and latency by route, method, status and model. A model label only for a model that
    exists, on a request that passed auth: names from URLs must not create series."""

    def observe(call: Call) -> None:
        model = call.model if call.model and call.authenticated and known_model(call.model) else ""
        metrics.observe_request(
            call.label, call.method, call.status, model, time.perf_counter() - call.started
        )

    return observe


def write_access_log(log: AccessLog | None) -> Finish | None:
    if log is None:
        return None

    def write(call: Call) -> None:
        log.record(
            call.request_id,
            call.method,
            call.path,
            call.status,
            (time.perf_counter() - call.started) * 1000,
            call.size,
            call.model,
        )

    return write


# -- the pipeline ---------------------------------------------------------------------------------------


class Pipeline(Generic[R]):
    """Checks before the call, the call, errors mapped once, then what is recorded after."""

    def __init__(
        self,
        checks: Sequence[Check],
        admission: Admission,
        finishers: Sequence[Finish | None],
        *,
        metrics: Metrics,
        debug: bool = False,
        on_memory_error: Callable[[], None] | None = None,
    ) -> None:
        self.checks = tuple(checks)
        self.admission = admission
        self.finishers = tuple(f for f in finishers if f is not None)
        self.metrics = metrics
        self.debug = debug
        self.on_memory_error = on_memory_error

    async def run(
        self,
        call: Call,
        read: Callable[[Call], Awaitable[P]],
        answer: Callable[[Call, P], Awaitable[R]],
        fail: Callable[[Call, PrebakeError], R],
    ) -> R:
        """``answer(call, await read(call))`` once the checks pass; a PrebakeError (any other exception:
        a logged 500) becomes ``fail(call, error)``. ClientGone propagates: there is no one to answer."""
        self.metrics.in_flight += 1
        try:
            for check in self.checks:
                check(call)
            payload = await read(call)
            entry = self.admission.enter(call)
            try:
                return await answer(call, payload)
            finally:
                self.admission.leave(entry)
        except PrebakeError as error:
            if isinstance(error, OutOfMemory) and self.on_memory_error is not None:
                self.on_memory_error()
            if error.traceback:
                logger.error(
                    "%s %s [%s] failed: %s\n%s",
                    call.method,
                    call.path,
                    call.request_id,
                    error.message,
                    error.traceback,
                )
            call.status = error.status
            return fail(call, error)
        except ClientGone:
            call.status = CLIENT_GONE
            raise
        except MemoryError:
            logger.error("%s %s [%s]: out of memory", call.method, call.path, call.request_id)
            if self.on_memory_error is not None:
                self.on_memory_error()
            busy = OutOfMemory("the server ran out of memory for this request; retry it, or send less")
            call.status = busy.status
            return fail(call, busy)
        except Exception:
            text = traceback.format_exc()
            logger.error("unhandled error on %s %s [%s]:\n%s", call.method, call.path, call.request_id, text)
            internal = PrebakeError(INTERNAL_MESSAGE + ("\n" + text if self.debug else ""))
            call.status = internal.status
            return fail(call, internal)
        finally:
            self.metrics.in_flight -= 1

    def finish(self, call: Call) -> None:
        """After the answer went out: metrics, then the access log."""
        for step in self.finishers:
            step(call)


def build_pipeline(
    *,
    metrics: Metrics,
    access_log: AccessLog | None,
    known_model: Callable[[str], bool],
    api_keys: tuple[bytes, ...] = (),
    max_header_bytes: int = 64 * 1024,
    max_body_bytes: int = 100 * 1024 * 1024,
    limit_concurrency: int | None = None,
    timeout_s: float | None = None,
    rescue: WorkerTable | None = None,
    debug: bool = False,
    on_memory_error: Callable[[], None] | None = None,
) -> Pipeline[Any]:
    """The one pipeline of a worker, its steps in order."""
    return Pipeline(
        checks=[
            assign_request_id,
            authenticate(api_keys),
            check_limits(max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes),
        ],
        admission=Admission(limit_concurrency, rescue, timeout_s),
        finishers=[
            record_metrics(metrics, known_model),
            write_access_log(access_log),
        ],
        metrics=metrics,
        debug=debug,
        on_memory_error=on_memory_error,
    )
