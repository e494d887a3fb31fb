"""Routing: exact and templated paths, method checks, and path parameters."""

from __future__ import annotations

import pytest

from prebake.errors import MethodNotAllowed, NotFound
from prebake.http import Request, Response, Route
from prebake.server.router import Router


async def _handler(request: Request) -> Response:
    return Response()


ROUTER = Router(
    [
        Route(("GET",), "/v2/models/{name}", _handler),
        Route(("POST",), "/v2/models/{name}/versions/{version}/infer", _handler),
        Route(("POST",), "/v1/models/{name}:predict", _handler),
        Route(("GET", "POST"), "/score", _handler),
    ]
)


def test_templated_paths_fill_parameters() -> None:
    """Segments in braces match one path segment each and come back by name (colon suffixes too)."""
    assert ROUTER.match("POST", "/v2/models/iris/versions/3/infer")[1] == {"name": "iris", "version": "3"}
    assert ROUTER.match("POST", "/v1/models/iris:predict")[1] == {"name": "iris"}
    assert ROUTER.match("GET", "/v2/models/my-model.v1")[1] == {"name": "my-model.v1"}


def test_unknown_path_and_method() -> None:
    """An unknown path is NotFound; a known path with another method is MethodNotAllowed listing the allowed."""
    with pytest.raises(NotFound):
        ROUTER.match("GET", "/v2/models/a/b/c")
    with pytest.raises(MethodNotAllowed, match="allowed: GET, POST"):
        ROUTER.match("PUT", "/score")


def test_head_is_served_by_get() -> None:
    """HEAD falls back to the GET route, as HTTP expects."""
    route, _ = ROUTER.match("HEAD", "/score")
    assert "GET" in route.methods
