"""Find the route for a method and path: exact paths by dict lookup, templated ones by regex."""

from __future__ import annotations

import re

from prebake.errors import MethodNotAllowed, NotFound
from prebake.http import Route

_SEGMENT = re.compile(r"\{(\w+)\}")


class Router:
    def __init__(self, routes: list[Route]) -> None:
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
            # A segment matches anything but '/': model names never hold one.
            pattern = (
                "^"
                + _SEGMENT.sub(
                    lambda m: f"(?P<{m.group(1)}>[^/]+?)",
                    re.escape(path).replace(r"\{", "{").replace(r"\}", "}"),
                )
                + "$"
            )
            self._templated.append((re.compile(pattern), table))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        table = self._exact.get(path)
        params: dict[str, str] = {}
        if table is None:
            for pattern, candidate in self._templated:
                found = pattern.match(path)
                if found:
                    table, params = candidate, found.groupdict()
                    break
        if table is None:
            raise NotFound(f"no route for {path}")
        route = table.get(method)
        if route is None:
            if method == "HEAD" and "GET" in table:
                return table["GET"], params
            raise MethodNotAllowed(
                f"{method} is not allowed on {path}; allowed: {', '.join(sorted(table))}",
                route=next(iter(table.values())),  # so the error speaks this path's protocol
            )
        return route, params

    def allowed(self, path: str) -> list[str]:
        try:
            self.match("\0", path)
        except MethodNotAllowed as error:
            return error.message.rsplit("allowed: ", 1)[1].split(", ")
        except NotFound:
            return []
        return []
