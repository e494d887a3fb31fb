"""One exception family for everything prebake raises on purpose.

    PrebakeError                      status 500 unless a child says otherwise
     ├── ConfigError                  bad flags, environment or settings files (exit code 2)
     │    └── StorageError            a model URI that cannot be fetched (exit code 2)
     ├── RequestError                 the client sent something we cannot use (400)
     │    ├── BadJSON                 body is not valid JSON where JSON is needed (400)
     │    ├── UnsupportedMediaType    wrong Content-Type (415)
     │    ├── PayloadTooLarge         body over the configured limit (413)
     │    ├── HeaderTooLarge          a header over its limit (431)
     │    ├── RequestTimeout          the body did not arrive in time (408)
     │    ├── InvalidInput            well-formed, but not what the model takes (400; 422 for an
     │    │    │                      entry script's schema parameter)
     │    │    └── InvalidParameter   a request parameter (not a tensor) it cannot take: names it (400)
     │    ├── NotFound                no such route or model (404)
     │    ├── MethodNotAllowed        route exists, method does not (405)
     │    ├── AlreadyLoaded           a multi-model endpoint's model loaded twice (409)
     │    └── Unauthorized            missing or wrong credentials (401)
     ├── ModelNotReady                model known but not loaded (503)
     ├── ServerBusy                   draining, or the queue is full (503, retryable)
 │    └── OutOfMemory              a request ran out of memory (503, retryable; counted by the server)
     ├── ScoringTimeout               run()/predict() past its deadline (504)
     ├── ScoringError                 user code or the framework raised (500)
     ├── ModelLoadError               a model or entry script failed to load
     │    └── InsufficientMemory      a model that does not fit even with the others unloaded (507)
     └── ImageError                   catalog, build and engine problems (CLI only)

Errors carry what a response needs besides the message as explicit fields: ``headers`` to send with the
error, and ``traceback``, the user's own traceback, which is logged and never sent (unless --debug).

A leaf module: it imports nothing from prebake and no web framework, so every layer can raise these.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Longest client-given text (a model name, say) echoed back in an error message: gRPC's metadata limit
#: is 8 KB, and an error that repeats a 20 KB name is refused by the client as RESOURCE_EXHAUSTED.
ECHO_LIMIT = 200


class PrebakeError(Exception):
    """Base of every error prebake raises on purpose; carries an HTTP status and a user-facing message."""

    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Sequence[tuple[str, str]] = (),
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = list(headers)
        self.traceback = traceback

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class ConfigError(PrebakeError):
    status = 500


class StorageError(ConfigError):
    """A model URI is malformed, missing, refused or unreachable; the message names the URI (never a secret)."""


class RequestError(PrebakeError):
    status = 400


class BadJSON(RequestError):
    status = 400


class UnsupportedMediaType(RequestError):
    status = 415


class PayloadTooLarge(RequestError):
    status = 413


class HeaderTooLarge(RequestError):
    status = 431


class RequestTimeout(RequestError):
    status = 408


class InvalidInput(RequestError):
    """400, as Triton, KServe and the V2 spec answer a tensor the model cannot take; ``input`` names it."""

    status = 400

    def __init__(self, message: str, *, input: str | None = None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.input = input


class InvalidParameter(InvalidInput):
    """400 for a request parameter the model cannot take: ``param`` names it ("max_tokens", "messages")
    and ``code`` says why in a word ("context_length_exceeded"), as OpenAI-style clients read them."""

    def __init__(
        self, message: str, *, param: str, code: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.param = param
        self.code = code


class NotFound(RequestError):
    status = 404


class MethodNotAllowed(RequestError):
    """405; ``allowed`` lists the methods the path takes (for the Allow header and CORS preflights)."""

    status = 405

    def __init__(self, message: str, *, allowed: Sequence[str] = ()) -> None:
        super().__init__(message, headers=[("allow", ", ".join(allowed))] if allowed else ())
        self.allowed = tuple(allowed)


class AlreadyLoaded(RequestError):
    status = 409


class Unauthorized(RequestError):
    status = 401


class ModelNotReady(PrebakeError):
    status = 503


class ServerBusy(PrebakeError):
    status = 503


class OutOfMemory(ServerBusy):
    status = 503


class ScoringTimeout(PrebakeError):
    status = 504


class ScoringError(PrebakeError):
    status = 500


class ModelLoadError(PrebakeError):
    status = 500


class InsufficientMemory(ModelLoadError):
    """507: SageMaker's multi-model contract; the platform then unloads unused models and retries."""

    status = 507


class ImageError(PrebakeError):
    status = 500


def echo(text: str) -> str:
    """Client-given text as it may appear in a message: cut to ECHO_LIMIT characters.

    >>> echo("m" * 300)[-20:]
    'mmmmm... (300 chars)'
    """
    if len(text) <= ECHO_LIMIT:
        return text
    return f"{text[:ECHO_LIMIT]}... ({len(text)} chars)"
