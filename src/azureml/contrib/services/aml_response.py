"""``AMLResponse``: what a score.py returns to control status, headers and body. No Flask needed.

    from azureml.contrib.services.aml_response import AMLResponse

    def run(data):
        return AMLResponse("no such item", 404, {"Cache-Control": "no-store"})

As with the reference server: ``json_str=True`` sends ``json.dumps(message)`` as application/json; otherwise
a str or bytes message is sent as it is (text/html by default, or the Content-Type given in
``response_headers``); a None message sends ``{}``. A header value holding commas becomes one header line per
part (the reference's way to send repeated headers). ``x-ms-run-function-failed`` is set from
``run_function_failed``, and the server makes it True for any status of 500 or more.

Where it differs, on purpose: a Content-Type in ``response_headers`` replaces the default whatever its case
(the reference keeps both unless spelled exactly "Content-Type"); header values that are not str are
written with str() (the reference fails with 500); a message that is neither text, bytes nor None without
``json_str`` raises TypeError at once, naming the fix (the reference sends garbage or fails later).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from azureml.contrib.services._datastructures import Headers

__all__ = ["AMLResponse"]

_REASONS = {
    200: "OK",
    201: "CREATED",
    202: "ACCEPTED",
    204: "NO CONTENT",
    301: "MOVED PERMANENTLY",
    302: "FOUND",
    304: "NOT MODIFIED",
    400: "BAD REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    405: "METHOD NOT ALLOWED",
    409: "CONFLICT",
    413: "REQUEST ENTITY TOO LARGE",
    415: "UNSUPPORTED MEDIA TYPE",
    422: "UNPROCESSABLE ENTITY",
    429: "TOO MANY REQUESTS",
    500: "INTERNAL SERVER ERROR",
    502: "BAD GATEWAY",
    503: "SERVICE UNAVAILABLE",
    504: "GATEWAY TIMEOUT",
}


class AMLResponse:
    """An HTTP response built by run(), sent as it is (shaped like ``flask.Response``)."""

    default_mimetype = "text/html"

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, Any] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        self.status_code = int(status_code)
        self.headers = Headers()
        response_headers = response_headers or {}
        if message is None:
            self._body = b"{}"
            self.headers.set("Content-Type", "application/json")
        elif json_str:
            self._body = json.dumps(message).encode("utf-8")
            self.headers.set("Content-Type", "application/json")
        else:
            self._body = _to_bytes(message)
            self.headers.set("Content-Type", "text/html; charset=utf-8")
            if any(name.lower() == "content-type" for name in response_headers):
                self.headers.remove("Content-Type")  # the user's, added below, takes its place

        self.headers.set("x-ms-run-function-failed", run_function_failed)

        for name, value in response_headers.items():
            if name.lower() == "content-type":
                self.headers.set(name, str(value).strip())
                continue
            for part in str(value).split(","):
                self.headers.add(name, part.strip())

    def __repr__(self) -> str:
        return f"<AMLResponse {len(self._body)} bytes [{self.status}]>"

    @property
    def status(self) -> str:
        return f"{self.status_code} {_REASONS.get(self.status_code, 'UNKNOWN')}"

    @property
    def content_type(self) -> str | None:
        value: str | None = self.headers.get("Content-Type")
        return value

    @content_type.setter
    def content_type(self, value: str) -> None:
        self.headers.set("Content-Type", value)

    @property
    def mimetype(self) -> str:
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    @mimetype.setter
    def mimetype(self, value: str) -> None:
        # werkzeug adds the charset to text types only.
        needs_charset = value.startswith("text/") or value in ("application/xml", "application/javascript")
        self.headers.set("Content-Type", f"{value}; charset=utf-8" if needs_charset else value)

    @property
    def data(self) -> bytes:
        return self._body

    @data.setter
    def data(self, value: str | bytes) -> None:
        self.set_data(value)

    def get_data(self, as_text: bool = False) -> Any:
        return self._body.decode("utf-8", "replace") if as_text else self._body

    def set_data(self, value: str | bytes) -> None:
        self._body = _to_bytes(value)

    @property
    def content_length(self) -> int:
        return len(self._body)

    @property
    def is_json(self) -> bool:
        mimetype = self.mimetype
        return mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        )

    def get_json(self) -> Any:
        return json.loads(self._body)

    @property
    def json(self) -> Any:
        return self.get_json()


def _to_bytes(message: Any) -> bytes:
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, (list, tuple)) and all(isinstance(m, (str, bytes)) for m in message):
        # werkzeug sends an iterable of chunks one after another.
        return b"".join(m.encode("utf-8") if isinstance(m, str) else m for m in message)
    raise TypeError(
        f"AMLResponse message must be str, bytes or None, not {type(message).__name__}; "
        "pass json_str=True to send it as JSON"
    )
