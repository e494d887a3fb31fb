"""Find the route for a method and path: exact paths by dict lookup, templated ones by regex.

Routing is on the path as the client sent it: a percent-encoded ``/`` (``%2F``) is never a separator,
so ``/v2%2Frepository%2Findex`` is no route, as a proxy in front that filters on paths would also
read it. Every other escape is decoded before matching, and template values are decoded after.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

from prebake.errors import MethodNotAllowed, NotFound, echo
from prebake.http import ErrorFormatter, Route, v2_error_body

_SEGMENT = re.compile(r"\{(\w+)\}")
_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


class Match(NamedTuple):
    route: Route
    params: dict[str, str]


def routing_path(raw: str) -> str:
    """The path to route on: escapes decoded, except an encoded '/', which stays ``%2F``.

    >>> routing_path("/v2/models/my%20model/infer"), routing_path("/v2%2frepository")
    ('/v2/models/my model/infer', '/v2%2Frepository')
    """
    if "%" not in raw:
        return raw
    return "%2F".join(unquote(part) for part in _ENCODED_SLASH.split(raw))


class Router:
    """``unmatched_error_body`` writes errors for paths no route has (an entry-script server answers
    them as Azure clients read errors, ``{"message": ...}``)."""

    def __init__(self, routes: list[Route], unmatched_error_body: ErrorFormatter = v2_error_body) -> None:
        self.unmatched_error_body = unmatched_error_body
        self._exact: dict[str, dict[str, Route]] = {}
        self._templated: list[tuple[re.Pattern[str], dict[str, Route]]] = []
        templated: dict[str, dict[str, Route]] = {}
        for route in routes:
            table = (
                templated.setdefault(route.path, {})
                if "{" in route.path
                else self._exact.setdefault(route.path, {})
            )
            for method in route.methods:
                table[method] = route
        for path, table in templated.items():
            # A segment matches anything but '/'; a value holding an encoded '/' is decoded after.
            pattern = (
                "^"
                + _SEGMENT.sub(
                    lambda m: f"(?P<{m.group(1)}>[^/]+?)",
                    re.escape(path).replace(r"\{", "{").replace(r"\}", "}"),
                )
                + "$"
            )
            self._templated.append((re.compile(pattern), table))

    def _table(self, path: str) -> tuple[dict[str, Route] | None, dict[str, str]]:
        table = self._exact.get(path)
        if table is not None:
            return table, {}
        for pattern, candidate in self._templated:
            found = pattern.match(path)
            if found:
                params = found.groupdict()
                if "%2F" in path:
                    params = {k: v.replace("%2F", "/") for k, v in params.items()}
                return candidate, params
        return None, {}

    def match(self, method: str, path: str) -> Match:
        """The route for ``method`` on ``path`` (a routing path, see ``routing_path``)."""
        table, params = self._table(path)
        if table is None:
            raise NotFound(f"no route for {echo(path)}")
        route = table.get(method)
        if route is None:
            if method == "HEAD" and "GET" in table:
                return Match(table["GET"], params)
            allowed = sorted(table)
            raise MethodNotAllowed(
                f"{method} is not allowed on {echo(path)}; allowed: {', '.join(allowed)}", allowed=allowed
            )
        return Match(route, params)

    def error_body(self, path: str) -> ErrorFormatter:
        """How errors on ``path`` are written: its routes' protocol, else ``unmatched_error_body``."""
        table, _ = self._table(path)
        return next(iter(table.values())).error_body if table else self.unmatched_error_body

    def allowed(self, path: str) -> list[str]:
        table, _ = self._table(path)
        return sorted(table) if table else []
