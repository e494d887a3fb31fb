"""Routes every server has, whatever it serves: metrics and liveness/readiness probes."""

from __future__ import annotations

from prebake.http import Request, Response, Route
from prebake.server.metrics import Metrics
from prebake.types import Backend

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def routes(backend: Backend, metrics: Metrics) -> list[Route]:
    async def metrics_text(request: Request) -> Response:
        return Response(metrics.render(), content_type=PROMETHEUS)

    async def live(request: Request) -> Response:
        # Liveness: the process answers. Readiness is separate so a slow load is not a restart.
        return Response(b'{"live":true}')

    async def ready(request: Request) -> Response:
        if backend.ready():
            return Response(b'{"ready":true}')
        return Response(b'{"ready":false}', status=503)

    return [
        Route(("GET",), "/metrics", metrics_text, public=True),
        Route(("GET",), "/v2/health/live", live, public=True),
        Route(("GET",), "/v2/health/ready", ready, public=True),
        Route(("GET",), "/healthz", live, public=True),
        Route(("GET",), "/readyz", ready, public=True),
    ]
