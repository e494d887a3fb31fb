"""SageMaker multi-model endpoints: the API the platform calls to load, list, unload and invoke models
in a custom container ("Custom Containers Contract for Multi-Model Endpoints",
docs.aws.amazon.com/sagemaker/latest/dg/mms-container-apis.html). On when SAGEMAKER_MULTI_MODEL=true.

    POST   /models               {"model_name": NAME, "url": "/opt/ml/models/NAME/model"}
                                 200; 409 when NAME is loaded; 507 when it cannot fit (SageMaker then
                                 unloads unused models and retries); 404 for a url that does not exist
    GET    /models               {"models": [{"modelName", "modelUrl"}...], "nextPageToken"?}
                                 (``?next_page_token=`` pages through, ``?limit=`` sizes a page)
    GET    /models/NAME          {"modelName", "modelUrl"}; 404 when not loaded
    DELETE /models/NAME          200; 404 when not loaded
    POST   /models/NAME/invoke   as /invocations, for model NAME; 404 when not loaded
    GET    /ping                 200 once the server is up (it holds no model until SageMaker loads one)

``model_name`` is the platform's opaque key; the TargetModel a client named arrives as the
X-Amzn-SageMaker-Target-Model header, used only in the log. Where the url holds SageMaker's
model.tar.gz, it is unpacked once, as for a single-model endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson

from prebake import codec
from prebake.errors import NotFound, echo
from prebake.http import Request, Response, Route
from prebake.types import PathBackend

logger = logging.getLogger("prebake.sagemaker")

TARGET_MODEL = "x-amzn-sagemaker-target-model"
PAGE = 100  # models per page of GET /models unless ?limit= says otherwise
Invoke = Callable[[PathBackend, str, Request], Awaitable[Response]]


def error_body(status: int, message: str, request_id: str) -> bytes:
    """The multi-model server's error shape (``code``, ``type``, ``message``), with our request id."""
    kind = {404: "ModelNotFoundException", 409: "ConflictException", 507: "InsufficientMemory"}.get(
        status, "BadRequestException" if status < 500 else "InternalServerException"
    )
    return orjson.dumps({"code": status, "type": kind, "message": message, "request_id": request_id})


def routes(backend: PathBackend, *, invoke: Invoke) -> list[Route]:
    """The multi-model routes; ``invoke`` answers one invocation of a named model (the SageMaker
    protocol's ``invoke``, passed in so that the two protocol modules do not import each other)."""

    async def ping(request: Request) -> Response:
        return Response(b"", status=200 if backend.ready() else 503, content_type=None)

    async def load(request: Request) -> Response:
        doc = codec.loads(request.body)
        name = doc.get("model_name") if isinstance(doc, dict) else None
        url = doc.get("url") if isinstance(doc, dict) else None
        if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
            raise codec.bad('the body must be {"model_name": "NAME", "url": "/opt/ml/models/NAME/model"}')
        logger.info("loading model '%s' from %s%s", name, url, _target(request))
        await backend.load_path(name, url)
        return Response(orjson.dumps({"status": f"Model '{name}' loaded"}))

    async def listing(request: Request) -> Response:
        args = request.args
        start = _whole(args.get("next_page_token", ["0"])[0], "next_page_token")
        limit = _whole(args.get("limit", [str(PAGE)])[0], "limit") or PAGE
        loaded = list(backend.paths().items())
        page = loaded[start : start + limit]
        doc: dict[str, object] = {"models": [{"modelName": n, "modelUrl": u} for n, u in page]}
        if start + limit < len(loaded):
            doc["nextPageToken"] = str(start + limit)
        return Response(orjson.dumps(doc))

    async def describe(request: Request) -> Response:
        name = request.path_params["name"]
        url = backend.paths().get(name)
        if url is None:
            raise _not_loaded(name)
        return Response(orjson.dumps({"modelName": name, "modelUrl": url}))

    async def unload(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in backend.paths():
            raise _not_loaded(name)
        await backend.remove_path(name)
        return Response(orjson.dumps({"status": f"Model '{name}' unloaded"}))

    async def invocation(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in backend.paths():
            raise _not_loaded(name)
        return await invoke(backend, name, request)

    return [
        Route(("GET",), "/ping", ping, public=True),
        Route(("POST",), "/models", load, error_body=error_body),
        Route(("GET",), "/models", listing, error_body=error_body),
        Route(("GET",), "/models/{name}", describe, error_body=error_body),
        Route(("DELETE",), "/models/{name}", unload, error_body=error_body),
        Route(("POST",), "/models/{name}/invoke", invocation, error_body=error_body),
    ]


def _not_loaded(name: str) -> NotFound:
    return NotFound(f"model '{echo(name)}' is not loaded")


def _target(request: Request) -> str:
    target = request.header(TARGET_MODEL)
    return f" (TargetModel {echo(target)})" if target else ""


def _whole(value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise codec.bad(f"{what} must be a whole number, got {echo(value)!r}") from None
    if number < 0:
        raise codec.bad(f"{what} must not be negative")
    return number
