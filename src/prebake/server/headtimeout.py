"""A request-head timeout for uvicorn's httptools protocol, which has none (and the connection's file
descriptor in each request's scope, as ``prebake.fd``).

A client that opens a connection, or starts a request on a kept-alive one, and does not finish the
request's headers within the timeout is disconnected. Without it a slow or stalled client (slowloris)
holds its connection, and a --limit-concurrency slot, for ever. The body is not covered: the scoring
timeout and the body limit bound what happens after the headers. Idle keep-alive connections between
requests stay uvicorn's (timeout_keep_alive).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def with_head_timeout(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol closing connections whose request head takes over ``seconds``."""

    class HeadTimeoutProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _fd = -1

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            self._fd = sock.fileno() if sock is not None else -1
            self._start_head_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            # The connection's descriptor, so the supervisor can answer for a frozen worker (rescue.py).
            self.scope["prebake.fd"] = self._fd  # type: ignore[typeddict-unknown-key]
            self._start_head_timer()

        def on_headers_complete(self) -> None:
            self._stop_head_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _start_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._head_expired)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeadTimeoutProtocol
