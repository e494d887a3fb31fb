"""The server's own small HTTP vocabulary: a request with its body read, a response, and a route.

Protocol modules build routes from these; the server core turns them into ASGI. A leaf module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from prebake.types import RawRequest, RawResult


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query_string: bytes
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes
    request_id: str
    path_params: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"
    server: tuple[str, int] | None = None
    _headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case header names; repeated headers are joined with ', ' as HTTP allows."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self.raw_headers:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case ('' when absent)."""
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    @property
    def args(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string.decode("latin-1"), keep_blank_values=True)

    def to_raw(self) -> RawRequest:
        """This request as the raw parts a raw runtime (entry script, handler script) takes."""
        return RawRequest(
            method=self.method,
            path=self.path,
            query_string=self.query_string,
            headers=self.headers,
            body=self.body,
            request_id=self.request_id,
            root_url=self.root_url,
        )

    @property
    def root_url(self) -> str:
        host = self.headers.get("host")
        if not host and self.server:
            host = f"{self.server[0]}:{self.server[1]}"
        return f"{self.scheme}://{host or 'localhost'}/"


@dataclass(slots=True)
class Response:
    """A whole body, or a ``stream`` of chunks sent as they come (server-sent events, say): the server
    closes the stream (``aclose()``) when the client goes away, so the work behind it can stop."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None


def raw_response(result: RawResult) -> Response:
    """A raw runtime's answer (entry or handler script), sent as it is."""
    return Response(
        result.body, status=result.status, content_type=result.content_type, headers=result.headers
    )


Handler = Callable[[Request], Awaitable[Response]]
ErrorFormatter = Callable[[int, str, str], bytes]


def v2_error_body(status: int, message: str, request_id: str) -> bytes:
    """The JSON error body of Open Inference Protocol V2 and KServe V1: {"error": ...}."""
    import orjson

    return orjson.dumps({"error": message, "request_id": request_id})


@dataclass(slots=True)
class Route:
    """One endpoint. ``path`` may hold ``{name}`` segments, found in ``Request.path_params``.

    ``label`` names the route in metrics and logs (the template, so ids don't explode label counts).
    ``error_body`` renders errors the way this protocol's clients expect.
    ``public`` routes (health probes) skip authentication.
    ``model`` names the model a route always serves (``/score``: the entry script), for metrics and logs.
    """

    methods: tuple[str, ...]
    path: str
    handler: Handler
    error_body: ErrorFormatter = v2_error_body
    public: bool = False
    label: str = ""
    model: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.path
