"""``AMLRequest`` and ``@rawhttp`` for score.py files, with no Flask and no Azure package installed.

A score.py asks for the whole HTTP request by decorating its run()::

    from azureml.contrib.services.aml_request import AMLRequest, rawhttp

    @rawhttp
    def run(request: AMLRequest):
        if request.method == "GET":
            return {"args": request.args.to_dict()}
        return {"size": len(request.get_data())}

``AMLRequest`` offers the part of Flask's request that score.py files use: method, path, full_path, url,
query_string, args, headers, content_type, mimetype, is_json, data, get_data(), get_json(), json, form,
files, values, stream, cookies, environ. Header names read back Title-Cased, as Flask shows them.

The server builds one per request; parsing (args, form, files, cookies) happens only when a script asks.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from email.parser import BytesParser
from email.policy import HTTP
from functools import cached_property
from http.cookies import SimpleCookie
from typing import Any, BinaryIO, TypeVar
from urllib.parse import parse_qsl, quote

from azureml.contrib.services._datastructures import FileStorage, Headers, MultiDict

__all__ = ["AMLRequest", "AMLRequestError", "BadRequest", "InvalidJSON", "UnsupportedMediaType", "rawhttp"]

F = TypeVar("F", bound=Callable[..., Any])

# Set by @rawhttp, as the reference server's module flag is; the runtime resets it before importing a script
# and reads it after, and also looks for the attribute @rawhttp puts on the function.
_rawHttpRequested = False


def rawhttp(func: F) -> F:
    """Mark run() as taking the whole request (an ``AMLRequest``) instead of the body string."""
    global _rawHttpRequested
    _rawHttpRequested = True
    # A callable that takes no attributes still has the module flag.
    with contextlib.suppress(AttributeError, TypeError):
        func.__aml_rawhttp__ = True  # type: ignore[attr-defined]
    return func


class AMLRequestError(ValueError):
    """The request body cannot be read the way the script asked (e.g. get_json() on text).

    The server answers with ``status`` when one escapes run(), instead of the reference server's 500.
    """

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.description = message  # werkzeug's HTTPException names it so


class BadRequest(AMLRequestError):
    status = 400


class UnsupportedMediaType(AMLRequestError):
    status = 415


class InvalidJSON(BadRequest):
    """get_json() found a body that is not JSON."""


class AMLRequest:
    """One HTTP request as a score.py sees it, shaped like ``flask.Request``."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query_string: bytes = b"",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        root_url: str = "http://localhost/",
        remote_addr: str | None = None,
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.query_string = query_string
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        # Flask shows header names Title-Cased (from the WSGI environ); scripts compare them that way.
        self.headers = Headers((name.title(), value) for name, value in pairs)
        self._body = body
        self.root_url = root_url
        self.remote_addr = remote_addr

    def __repr__(self) -> str:
        return f"<AMLRequest {self.url!r} [{self.method}]>"

    # -- the URL ---------------------------------------------------------------------------------------
    @cached_property
    def args(self) -> MultiDict:
        """Query arguments; ``args.getlist(k)`` holds repeated ones."""
        return MultiDict(parse_qsl(self.query_string.decode("utf-8", "replace"), keep_blank_values=True))

    @property
    def full_path(self) -> str:
        # Always with "?", as werkzeug does.
        return f"{self.path}?{self.query_string.decode('latin-1')}"

    @property
    def url_root(self) -> str:
        return self.root_url

    @property
    def base_url(self) -> str:
        return self.root_url.rstrip("/") + _to_iri(self.path, _KEEP_IN_PATH)

    @property
    def url(self) -> str:
        """The full URL as Flask gives it: an IRI, percent-escapes of UTF-8 text decoded."""
        query = _to_iri(self.query_string.decode("latin-1"), _KEEP_IN_QUERY)
        return f"{self.base_url}?{query}" if query else self.base_url

    @property
    def host_url(self) -> str:
        return f"{self.scheme}://{self.host}/"

    @property
    def host(self) -> str:
        host: str | None = self.headers.get("Host")
        if host:
            return host
        return self.root_url.split("://", 1)[-1].split("/", 1)[0]

    @property
    def scheme(self) -> str:
        return self.root_url.split("://", 1)[0] if "://" in self.root_url else "http"

    @property
    def is_secure(self) -> bool:
        return self.scheme == "https"

    # -- the headers -----------------------------------------------------------------------------------
    @property
    def content_type(self) -> str | None:
        value: str | None = self.headers.get("Content-Type")
        return value

    @property
    def mimetype(self) -> str:
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    @property
    def mimetype_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        for part in (self.content_type or "").split(";")[1:]:
            key, sep, value = part.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        return params

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as an int; None without one, as in Flask."""
        value: int | None = self.headers.get("Content-Length", type=int)
        return value

    @property
    def content_encoding(self) -> str | None:
        value: str | None = self.headers.get("Content-Encoding")
        return value

    @property
    def user_agent(self) -> str:
        value: str = self.headers.get("User-Agent", "")
        return value

    @property
    def is_json(self) -> bool:
        mimetype = self.mimetype
        return mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        )

    @cached_property
    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        for value in self.headers.getlist("Cookie"):
            jar.load(value)
        return {key: morsel.value for key, morsel in jar.items()}

    @cached_property
    def environ(self) -> dict[str, Any]:
        """A WSGI-style environ, for scripts that read one."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.method,
            "PATH_INFO": self.path,
            "QUERY_STRING": self.query_string.decode("latin-1"),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": self.scheme,
            "wsgi.input": io.BytesIO(self._body),
            "REMOTE_ADDR": self.remote_addr,
        }
        for name, value in self.headers:
            key = name.upper().replace("-", "_")
            environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
        return environ

    # -- the body --------------------------------------------------------------------------------------
    @property
    def data(self) -> bytes:
        return self._body

    @property
    def stream(self) -> BinaryIO:
        return io.BytesIO(self._body)

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        """The body as bytes, or as text (UTF-8, undecodable bytes replaced) with ``as_text=True``."""
        if as_text:
            return self._body.decode("utf-8", "replace")
        return self._body

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The body parsed as JSON.

        Without ``force`` the Content-Type must be JSON. Failures raise ``UnsupportedMediaType`` (415) or
        ``BadRequest`` (400), or give None with ``silent=True``, as Flask does.
        """
        if not (force or self.is_json):
            if silent:
                return None
            raise UnsupportedMediaType(
                "Did not attempt to load JSON data because the request Content-Type was not"
                " 'application/json'."
            )
        try:
            return json.loads(self._body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested past Python's limit
            if silent:
                return None
            reason = "it nests too deeply" if isinstance(exc, RecursionError) else exc
            raise InvalidJSON(f"Failed to decode JSON object: {reason}") from None

    @property
    def json(self) -> Any:
        return self.get_json()

    @cached_property
    def _form_and_files(self) -> tuple[MultiDict, MultiDict]:
        mimetype = self.mimetype
        if mimetype == "application/x-www-form-urlencoded":
            text = self._body.decode("utf-8", "replace")
            return MultiDict(parse_qsl(text, keep_blank_values=True)), MultiDict()
        if mimetype == "multipart/form-data":
            return _parse_multipart(self.content_type or "", self._body)
        return MultiDict(), MultiDict()

    @property
    def form(self) -> MultiDict:
        return self._form_and_files[0]

    @property
    def files(self) -> MultiDict:
        return self._form_and_files[1]

    @property
    def values(self) -> MultiDict:
        combined = MultiDict(self.args.items(multi=True))
        for key, value in self.form.items(multi=True):
            combined.add(key, value)
        return combined


# Characters werkzeug leaves percent-encoded when it turns a URI into an IRI (they would change its meaning).
_KEEP_IN_PATH = frozenset("%#/?")
_KEEP_IN_QUERY = frozenset("%#&+;=")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _to_iri(text: str, keep: frozenset[str]) -> str:
    """Decode runs of percent-escapes that are UTF-8 text, except characters in ``keep`` or controls."""

    def decode(match: re.Match[str]) -> str:
        try:
            decoded = bytes.fromhex(match.group().replace("%", "")).decode("utf-8")
        except UnicodeDecodeError:
            return match.group()
        return "".join(
            quote(ch, safe="") if ch in keep or ch.isspace() or not ch.isprintable() else ch for ch in decoded
        )

    return _PERCENT_RUN.sub(decode, text)


def _parse_multipart(content_type: str, body: bytes) -> tuple[MultiDict, MultiDict]:
    """Split a multipart/form-data body into form fields and files with the standard email parser."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise BadRequest("multipart/form-data body has no boundary or no parts")
    form, files = MultiDict(), MultiDict()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            charset = part.get_content_charset() or "utf-8"
            form.add(name, data.decode(charset, "replace"))
        else:
            part_headers = Headers((str(k), str(v)) for k, v in part.items())
            files.add(
                name,
                FileStorage(
                    io.BytesIO(data),
                    filename=filename,
                    name=name,
                    content_type=part.get("Content-Type"),
                    headers=part_headers,
                ),
            )
    return form, files
