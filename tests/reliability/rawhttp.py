"""Raw HTTP/1.1 over a socket, for inputs an HTTP client library would refuse to send."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass(slots=True)
class RawAnswer:
    status: int | None  # None: the server closed or reset the connection without an answer
    headers: dict[str, str]
    body: bytes
    note: str = ""

    def excerpt(self, limit: int = 90) -> str:
        text = self.body.decode("utf-8", "replace").replace("\n", " ")
        return text if len(text) <= limit else text[: limit - 3] + "..."


def request(method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A well-framed request with Content-Length and Connection: close (headers may override them)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    given = {k.lower() for k in (headers or {})}
    if "content-length" not in given and "transfer-encoding" not in given:
        lines.append(f"Content-Length: {len(body)}")
    if "connection" not in given:
        lines.append("Connection: close")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, data: bytes, *, timeout: float = 30.0, chunk_delay: float = 0.0) -> RawAnswer:
    """Send ``data`` and read until the server closes (bounded by ``timeout``); parse one response."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        note = ""
        try:
            if chunk_delay:
                for start in range(0, len(data), 1024):
                    sock.sendall(data[start : start + 1024])
                    time.sleep(chunk_delay)
            else:
                sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            note = "server closed while the request was being sent"
        received = b""
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                note = "timed out waiting for an answer"
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
    return parse(received, note)


def read_answer(sock: socket.socket) -> RawAnswer:
    """One response read to its end on a kept-alive connection, so the next request starts clean."""
    received = b""
    while not _complete(received):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return parse(received)


def _complete(received: bytes) -> bool:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False


def parse(received: bytes, note: str = "") -> RawAnswer:
    if not received:
        return RawAnswer(None, {}, b"", note or "connection closed without an answer")
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(status, headers, body, note)
