"""Logging for a worker: text or JSON lines on stderr, and a fast access log (one line per request).

The access log bypasses the logging module on purpose: at thousands of requests per second a
LogRecord per request costs more than the request. Lines from one event-loop turn are written together.
Every field a client chose (path, request id, model) is written with its control characters escaped,
so no request can forge a line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from typing import Any, TextIO

import orjson


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(log_format: str, level: str) -> None:
    """Send prebake's and the user's logs to stderr in the chosen format (called once per process)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    r"""``text`` with control characters (CR, LF, ESC...) written as ``\xNN``.

    >>> printable("/a\r\nforged")
    '/a\\x0d\\x0aforged'
    """
    if text.isprintable():
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class AccessLog:
    """Writes `request_id method path status duration bytes` per request, buffered per loop turn."""

    def __init__(self, log_format: str, stream: TextIO | None = None) -> None:
        self._json = log_format == "json"
        self._stream = stream or sys.stderr
        self._lines: list[str] = []
        self._flush_scheduled = False
        self._pid = os.getpid()
        self._second = -1
        self._prefix = ""

    def record(
        self, request_id: str, method: str, path: str, status: int, duration_ms: float, size: int, model: str
    ) -> None:
        if self._json:
            line = orjson.dumps(
                {
                    "ts": round(time.time(), 3),
                    "level": "info",
                    "logger": "prebake.access",
                    "pid": self._pid,
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration_ms, 3),
                    "bytes": size,
                    "model": model,
                }
            ).decode()
        else:
            now = int(time.time())
            if now != self._second:  # the prefix changes once a second, not once a request
                self._second = now
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
                self._prefix = f"{stamp} INFO [{self._pid}] prebake.access: "
            line = (
                f"{self._prefix}{printable(request_id)} {method} {printable(path)} {status} "
                f"{duration_ms:.3f}ms {size}"
            )
        self._lines.append(line)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must never fail a request
