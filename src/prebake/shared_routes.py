"""Two protocols on one path: a route that asks, per request, whose it is, and hands it over.

MLflow's scoring protocol and SageMaker's both answer ``POST /invocations``; Azure's entry-script contract
and its no-code MLflow deployments both answer ``POST /score``. Protocol modules never import each other,
so the one that comes second takes the routes already mounted and mounts its own over them with
``layer``: the shared route calls ``claim(request)`` and sends the request to the newcomer's handler or to
the one beneath, unchanged. A leaf: it knows only prebake.http and the error family.

Example::

    routes = layer(routes, [Shared(("POST",), "/invocations", mine, is_mine)], my_error_body)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from prebake.errors import PrebakeError
from prebake.http import Request, Response, Route

Handler = Callable[[Request], Awaitable[Response]]
Claim = Callable[[Request], bool]


class Shared(NamedTuple):
    """A route of one protocol that may share its path with another's: ``claim`` says, per request,
    whether it is this protocol's (None: the path is this protocol's alone)."""

    methods: tuple[str, ...]
    path: str
    handler: Handler
    claim: Claim | None
    public: bool = False


def layer(
    beneath: Sequence[Route], mine: Sequence[Shared], errors: Callable[[int, str, str], bytes]
) -> list[Route]:
    """``beneath`` with each of ``mine`` mounted: on a path and method ``beneath`` already serves, one
    route asks ``claim`` and sends the request to ``mine`` or to the route beneath; elsewhere ``mine`` is
    a route of its own. Errors of ``mine`` are rendered with ``errors`` either way."""
    out = list(beneath)
    for methods, path, handler, claim, public in mine:
        for method in methods:
            index = next((i for i, r in enumerate(out) if r.path == path and method in r.methods), None)
            own = _rendering(handler, errors)
            if index is None or claim is None:
                out.append(Route((method,), path, own, error_body=errors, public=public, label=path))
                continue
            under = out[index]
            out[index : index + 1] = _split(under, method) + [
                Route(
                    (method,),
                    path,
                    _dispatch(claim, own, under.handler),
                    error_body=under.error_body,
                    public=under.public and public,
                    label=under.label,
                    model=under.model,
                )
            ]
    return out


def _split(route: Route, method: str) -> list[Route]:
    """The route beneath without ``method`` (which the shared route takes over), if it has others."""
    rest = tuple(m for m in route.methods if m != method)
    if not rest:
        return []
    return [
        Route(rest, route.path, route.handler, error_body=route.error_body, public=route.public,
              label=route.label, model=route.model)
    ]  # fmt: skip


def _rendering(handler: Handler, errors: Callable[[int, str, str], bytes]) -> Handler:
    async def rendered(request: Request) -> Response:
        try:
            return await handler(request)
        except PrebakeError as error:
            response = Response(errors(error.status, error.message, request.request_id), status=error.status)
            response.headers.extend(error.headers)
            return response

    rendered.__name__ = handler.__name__
    rendered.__module__ = handler.__module__
    return rendered


def _dispatch(claim: Claim, own: Handler, under: Handler) -> Handler:
    async def shared(request: Request) -> Response:
        return await (own(request) if claim(request) else under(request))

    # The OpenAPI document finds operations by the handler's module and name: keep the one beneath.
    shared.__name__ = under.__name__
    shared.__module__ = under.__module__
    return shared
