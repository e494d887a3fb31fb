"""A small Backend that really computes, and a way to call protocol routes through the real ASGI app.

Models:
    double   one input; output "y" is the input times two (BYTES: each string repeated)
    echo     every input comes back as an output of the same name (round-trips every datatype)
    pair     rows in, two outputs per row: "label" (str) and "score" (row sum)
    handler  a raw model (like a SageMaker handler script): answers the body reversed
    cold     known but not loaded until load() is called
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import uvicorn

from prebake.errors import ModelNotReady, NotFound, PrebakeError
from prebake.http import Route
from prebake.server.http_transport import HttpTransport
from prebake.server.metrics import Metrics
from prebake.server.model import select_outputs
from prebake.server.pipeline import build_pipeline
from prebake.server.shm import SharedMemoryRegistry
from prebake.testing import free_port
from prebake.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RawRequest,
    RawResult,
    TensorSpec,
)

METADATA = {
    "double": ModelMetadata(
        name="double",
        platform="test_double",
        versions=["1"],
        inputs=[TensorSpec("x", "FP32", [-1, 2])],
        outputs=[TensorSpec("y", "FP32", [-1, 2])],
    ),
    "echo": ModelMetadata(name="echo", platform="test_echo"),
    "pair": ModelMetadata(name="pair", platform="test_pair", inputs=[TensorSpec("rows", "FP64", [-1, -1])]),
    "handler": ModelMetadata(name="handler", platform="raw"),
    "cold": ModelMetadata(name="cold", platform="test_double"),
}


class ComputingBackend:
    def __init__(self) -> None:
        self.states = {name: "READY" for name in METADATA}
        self.states["cold"] = "UNAVAILABLE"
        self.requests: list[InferenceRequest] = []
        self.raw_requests: list[RawRequest] = []
        self.regions = SharedMemoryRegistry(None, allowed=False)

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return all(s in ("READY", "UNAVAILABLE") for s in self.states.values())

    def model_names(self) -> list[str]:
        return list(self.states)

    def default_model(self) -> str | None:
        return "double"

    def serving(self) -> bool:
        name = self.default_model()
        return self.ready() and name is not None and self.model_ready(name)

    def is_raw(self, name: str) -> bool:
        return name == "handler"

    def _known(self, name: str, version: str | None = None) -> None:
        if name not in self.states:
            raise NotFound(f"model {name!r} not found")
        if version is not None and version not in (METADATA[name].versions or [version]):
            raise NotFound(f"model {name!r} has no version {version!r}")

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self._known(name, version)
        except NotFound:
            return False  # as Triton: a model it does not have is not ready
        return self.states[name] == "READY"

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        self._known(name, version)
        return METADATA[name]

    def repository_index(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "version": (METADATA[n].versions or [""])[0], "state": s, "reason": ""}
            for n, s in self.states.items()
        ]

    def statistics(self, name: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        names = [name] if name else list(self.states)
        for each in names:
            self._known(each, version)
        return [{"name": each, "version": version or "", "inference_count": 0} for each in names]

    def max_batch_size(self, name: str, version: str | None = None) -> int:
        self._known(name, version)
        return 0

    async def load(self, name: str, config: dict[str, Any] | None = None) -> None:
        self._known(name)
        self.states[name] = "READY"

    async def unload(self, name: str) -> None:
        self._known(name)
        self.states[name] = "UNAVAILABLE"

    async def infer(self, name: str, version: str | None, request: InferenceRequest) -> InferenceResponse:
        self._known(name, version)
        if self.states[name] != "READY":
            raise ModelNotReady(f"model {name!r} is not ready")
        self.requests.append(request)
        inputs = request.inputs
        if name in ("double", "cold"):
            (x,) = inputs.values()
            y = (
                np.array([v * 2 for v in x.reshape(-1)], dtype=object).reshape(x.shape)
                if x.dtype == object
                else x * 2
            )
            outputs = {"y": y}
        elif name == "echo":
            outputs = dict(inputs)
        elif name == "pair":
            (rows,) = inputs.values()
            rows = rows.astype(np.float64)
            outputs = {
                "label": np.array(["big" if r.sum() > 5 else "small" for r in rows]),
                "score": rows.sum(axis=1),
            }
        else:
            raise PrebakeError(f"model {name!r} takes raw requests only", status=400)
        # As the server's served model does: the requested outputs, name, version and id, once.
        return InferenceResponse(
            outputs=select_outputs(outputs, request.outputs),
            model_name=name,
            model_version=version,
            id=request.id,
        )

    def shared_memory(self) -> SharedMemoryRegistry:
        return self.regions

    async def score_raw(self, name: str | None, request: RawRequest) -> RawResult:
        self.raw_requests.append(request)
        if name != "handler":
            raise PrebakeError(f"model {name!r} does not take raw requests", status=400)
        return RawResult(
            body=request.body[::-1],
            content_type=request.headers.get("accept", "application/octet-stream"),
            headers=[("x-handler", "yes")],
        )


def make_app(routes: list[Route]) -> HttpTransport:
    """The real HTTP transport and pipeline in front of ``routes`` (no auth, no access log)."""
    metrics = Metrics()
    pipeline = build_pipeline(metrics=metrics, access_log=None, known_model=METADATA.__contains__)
    return HttpTransport(routes, pipeline, max_body_bytes=8 * 1024 * 1024)


def call(routes: list[Route], method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request through the real ASGI app (router, error rendering) in this process."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=make_app(routes))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@contextmanager
def served(routes: list[Route]) -> Iterator[str]:
    """The real ASGI app on uvicorn in a thread, for clients that need a socket (tritonclient)."""
    port = free_port()
    config = uvicorn.Config(
        make_app(routes), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def served_grpc(backend: ComputingBackend, api_keys: tuple[bytes, ...] = (), **options: Any) -> Iterator[str]:
    """The V2 servicer on the server's real gRPC transport and pipeline, on an event loop in a thread,
    for synchronous clients (tritonclient.grpc)."""
    from prebake.protocols import v2_grpc
    from prebake.server.grpc_transport import start_grpc

    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    pipeline = build_pipeline(
        metrics=Metrics(), access_log=None, known_model=METADATA.__contains__, api_keys=api_keys
    )
    server = asyncio.run_coroutine_threadsafe(
        start_grpc(lambda s: v2_grpc.register(s, backend), pipeline, host="127.0.0.1", port=port, **options),
        loop,
    ).result(10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
