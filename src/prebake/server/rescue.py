"""Answering for a frozen worker: the 504 that a worker whose every thread waits on the GIL cannot send.

A call that holds the GIL (a catastrophic regular expression, a C extension that never returns) stops
every thread of its worker, the event loop included, so the worker cannot answer its own deadline. The
supervisor can: each worker lists its HTTP requests in progress in shared memory (the connection's file
descriptor, the deadline, the request id, which error body its protocol writes), and when a worker has
stopped beating the supervisor takes each such connection from it (Linux's pidfd_getfd), writes the
answer, a 504 past the deadline or a 503 when it replaces the worker, and shuts the connection.

    entry:   state (1: in progress, 2: answered by the supervisor), fd, deadline, template, request id
    templates, written once by each worker at its start: the error body of each protocol, for 504 and 503

gRPC calls are not answered this way (HTTP/2 has state only the worker holds): their clients see the
connection end, UNAVAILABLE, which gRPC clients retry. Where pidfd_getfd is refused (an old kernel, a
seccomp profile), the supervisor says so once and only replaces the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence

logger = logging.getLogger("prebake.supervisor")

ENTRIES = 256  # requests in progress per worker that can be answered this way
_ENTRY = struct.Struct("<bxhid100s")  # state, pad, template, fd, deadline, request id
_TEMPLATE_BYTES = 768
TEMPLATES = 16
_WORKER_BYTES = ENTRIES * _ENTRY.size + TEMPLATES * (_TEMPLATE_BYTES + 4)
_PIDFD_GETFD = 438  # the same on x86_64 and aarch64
IN_PROGRESS, ANSWERED = 1, 2
TIMEOUT_MESSAGE = "Scoring timeout: the model did not answer in time and its worker stopped responding"
GONE_MESSAGE = "the worker handling this request stopped responding and is being replaced; retry it"
_REASONS = {503: "Service Unavailable", 504: "Gateway Timeout"}

ErrorBody = Callable[[int, str, str], bytes]


class Rescue:
    """The shared table of every worker (one region a slot), mapped before the supervisor forks."""

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, max(1, slots) * _WORKER_BYTES)
        self._warned = False

    # -- worker side ----------------------------------------------------------------------------------
    def worker(self, slot: int, error_bodies: Sequence[ErrorBody]) -> WorkerTable:
        return WorkerTable(self._memory, slot * _WORKER_BYTES, error_bodies)

    # -- supervisor side ------------------------------------------------------------------------------
    def answer_late(self, slot: int, pid: int) -> int:
        """Answer 504 for every request of a frozen worker past its deadline; the number answered."""
        return self._answer(slot, pid, late_only=True)

    def answer_all(self, slot: int, pid: int) -> int:
        """Before a frozen worker is killed: 504 for late requests, 503 (retry) for the others."""
        return self._answer(slot, pid, late_only=False)

    def clear(self, slot: int) -> None:
        base = slot * _WORKER_BYTES
        self._memory[base : base + ENTRIES * _ENTRY.size] = bytes(ENTRIES * _ENTRY.size)

    def _answer(self, slot: int, pid: int, *, late_only: bool) -> int:
        base = slot * _WORKER_BYTES
        now = time.monotonic()
        answered = 0
        pidfd = -1
        try:
            for index in range(ENTRIES):
                offset = base + index * _ENTRY.size
                state, template, fd, deadline, rid = _ENTRY.unpack_from(self._memory, offset)
                if state != IN_PROGRESS:
                    continue
                late = deadline <= now
                if late_only and not late:
                    continue
                if pidfd < 0:
                    pidfd = os.pidfd_open(pid)
                response = self._response(base, template + (0 if late else 1), rid.rstrip(b"\0"))
                if response is None or not self._send(pidfd, fd, response):
                    continue
                _ENTRY.pack_into(self._memory, offset, ANSWERED, template, fd, deadline, rid)
                answered += 1
        except OSError as error:
            logger.warning("cannot answer for worker %d: %s", pid, error)
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        return answered

    def _response(self, base: int, template: int, request_id: bytes) -> bytes | None:
        if not 0 <= template < TEMPLATES:
            return None
        offset = base + ENTRIES * _ENTRY.size + template * (_TEMPLATE_BYTES + 4)
        (length,) = struct.unpack_from("<I", self._memory, offset)
        if not length:
            return None
        body = bytes(self._memory[offset + 4 : offset + 4 + length]).replace(b"{request_id}", request_id)
        status = 504 if template % 2 == 0 else 503
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-request-id: {request_id.decode('latin-1')}\r\n"
            "connection: close\r\n\r\n"
        )
        return head.encode("latin-1") + body

    def _send(self, pidfd: int, fd: int, response: bytes) -> bool:
        libc = ctypes.CDLL(None, use_errno=True)
        ours = libc.syscall(_PIDFD_GETFD, pidfd, fd, 0)
        if ours < 0:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "cannot take a frozen worker's connections to answer them (pidfd_getfd: %s); "
                    "they are closed when it is replaced",
                    os.strerror(ctypes.get_errno()),
                )
            return False
        with socket.socket(fileno=ours) as connection, contextlib.suppress(OSError):
            connection.setblocking(False)
            connection.send(response)
            connection.shutdown(socket.SHUT_RDWR)  # the worker, if it wakes, writes to a closed stream
        return True


class WorkerTable:
    """One worker's part: requests in progress registered and cleared from its event loop."""

    def __init__(self, memory: mmap.mmap, base: int, error_bodies: Sequence[ErrorBody]) -> None:
        self._memory = memory
        self._base = base
        self._free = list(range(ENTRIES - 1, -1, -1))
        self._templates: dict[ErrorBody, int] = {}
        for body in error_bodies:
            self._template_for(body)

    def _template_for(self, body: ErrorBody) -> int:
        index = self._templates.get(body)
        if index is not None:
            return index
        index = len(self._templates) * 2
        if index + 1 >= TEMPLATES:
            return -1
        for status, message, at in ((504, TIMEOUT_MESSAGE, index), (503, GONE_MESSAGE, index + 1)):
            data = body(status, message, "{request_id}")
            offset = self._base + ENTRIES * _ENTRY.size + at * (_TEMPLATE_BYTES + 4)
            if len(data) <= _TEMPLATE_BYTES:
                struct.pack_into("<I", self._memory, offset, len(data))
                self._memory[offset + 4 : offset + 4 + len(data)] = data
        self._templates[body] = index
        return index

    def register(self, fd: int, deadline: float, request_id: str, body: ErrorBody) -> int:
        """Note a request in progress; returns its entry (-1: not noted, the table is full)."""
        if not self._free or len(request_id) > 100:
            return -1
        index = self._free.pop()
        template = self._templates.get(body)
        if template is None:
            template = self._template_for(body)
        _ENTRY.pack_into(
            self._memory,
            self._base + index * _ENTRY.size,
            IN_PROGRESS,
            template,
            fd,
            deadline,
            request_id.encode("latin-1"),
        )
        return index

    def done(self, index: int) -> None:
        if index >= 0:
            self._memory[self._base + index * _ENTRY.size] = 0
            self._free.append(index)
