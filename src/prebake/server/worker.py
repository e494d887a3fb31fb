"""One worker process: load the models (init once), then serve HTTP (and gRPC) on the shared socket.

Exit codes tell the supervisor what happened: 0 after a clean drain, INIT_FAILED when loading failed
(the whole server stops: a model that cannot load will not load on retry), RECYCLE when a wedged
scoring call made this worker ask to be replaced.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import traceback
from pathlib import Path

from prebake.cli import exits
from prebake.config import ServeConfig
from prebake.errors import ConfigError, PrebakeError
from prebake.http import Route
from prebake.server import auth
from prebake.server.backend import ModelEntry, ServerBackend
from prebake.server.executor import Executor
from prebake.server.logs import AccessLog, configure_logging
from prebake.server.metrics import Metrics

logger = logging.getLogger("prebake.worker")

RECYCLE = 75  # EX_TEMPFAIL: replace me


def _prepare_environment(config: ServeConfig) -> None:
    """What azmlinfsrv does for score.py: AZUREML_MODEL_DIR set, app root and source dir importable."""
    if config.model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = str(config.model_dir.resolve())
    if config.entry_script is not None:
        os.environ.setdefault("AZUREML_ENTRY_SCRIPT", str(config.entry_script))
        os.environ["AML_APP_ROOT"] = str(config.app_root)  # where user swagger files are looked up
        for path in (config.entry_script.parent, config.app_root, config.source_dir):
            if path is not None and str(path) not in sys.path:
                sys.path.append(str(path))


def build_backend(config: ServeConfig, metrics: Metrics) -> tuple[ServerBackend, list[Route]]:
    """Create (not load) the runtimes named by the config, and the protocol routes that front them."""
    from prebake.protocols import azure, azure_mlflow, mlflow_scoring

    executor = Executor(config.threads, timeout_s=config.timeout_s)
    backend = ServerBackend(executor, metrics)
    swagger = None
    if config.entry_script is not None:
        from prebake.runtimes.entry_script import EntryScriptRuntime

        script = EntryScriptRuntime(config.entry_script, debug=config.debug)
        backend.add(ModelEntry(name="score", runtime=script), raw=True)
        swagger = script.swagger
    if config.models or config.model_repository is not None:
        from prebake.runtimes.discover import find_models
        from prebake.runtimes.registry import create_runtime

        found = find_models(list(config.models), repository=config.model_repository, device=config.device)
        if config.model_name:
            if len(found) != 1:
                raise ConfigError(
                    f"--model-name names one model, but {len(found)} were found; use settings files"
                )
            found[0].name = config.model_name
        for settings in found:
            # A model's own settings file may allow or refuse pickles; otherwise the server's choice holds.
            settings.parameters.setdefault("allow_pickle", config.allow_pickle)
            runtime = create_runtime(settings)
            backend.add(
                ModelEntry(name=settings.name, runtime=runtime, settings=settings), raw=_is_raw(runtime)
            )

    from prebake.server import ops

    routes = [*ops.routes(backend, metrics), *azure.routes(backend, swagger=swagger)]
    routes.extend(_protocol_routes(backend, config))
    routes = mlflow_scoring.over(backend, azure_mlflow.over(backend, routes))  # share /invocations, /score
    from prebake.server import openapi

    routes.append(openapi.route(routes, models=backend.model_names(), auth=bool(config.api_keys)))
    return backend, routes


def _is_raw(runtime: object) -> bool:
    from prebake.runtimes.base import RawRuntime

    return isinstance(runtime, RawRuntime)


def _protocol_routes(backend: ServerBackend, config: ServeConfig) -> list[Route]:
    """Open Inference Protocol V2, KServe V1, SageMaker and Vertex AI, all on the one HTTP port."""
    from prebake.protocols import sagemaker, v1, v2, vertex

    return [
        *v2.routes(backend, max_inflated_bytes=config.max_body_bytes),
        *v1.routes(backend),
        *sagemaker.routes(backend),
        *vertex.routes(
            backend, health_route=config.health_route, predict_route=config.predict_route or "/predict"
        ),
    ]


def run_worker(config: ServeConfig, sock: socket.socket, metrics_dir: Path | None) -> int:
    """Entry point of a forked worker; returns its exit code."""
    configure_logging(config.log_format, config.log_level)
    _limit_memory(config.max_worker_memory)
    _prepare_environment(config)
    metrics = Metrics(metrics_dir)
    try:
        if config.grpc_port is not None:
            _check_grpc()
        backend, routes = build_backend(config, metrics)
        backend.load_all()
    except PrebakeError as error:
        # The cause chain holds the user's own traceback (init() raising, a file missing...).
        logger.error("init failed: %s\n%s", error.message, traceback.format_exc())
        return exits.INIT_FAILED
    except BaseException:
        logger.error("init failed:\n%s", traceback.format_exc())
        return exits.INIT_FAILED
    try:
        return _serve(config, sock, backend, routes, metrics)
    except BaseException:
        logger.error("worker crashed:\n%s", traceback.format_exc())
        return exits.FAILURE


def _limit_memory(limit: int | None) -> None:
    """RLIMIT_DATA, not RLIMIT_AS: address space that is only reserved (thread arenas, mmapped models,
    CUDA) would count against AS and break loading; DATA counts the heap that a big request grows. Past it,
    the allocation raises MemoryError in that request, and the worker (and its other requests) go on."""
    if limit is None:
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(
        resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )


def _check_grpc() -> None:
    try:
        import prebake.protocols.v2_grpc  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"--grpc-port needs grpcio and protobuf, which this environment lacks ({error.name}): "
            "pip install 'prebake[grpc]', or use a framework image (the minimal image is REST only)"
        ) from None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(
    config: ServeConfig, sock: socket.socket, backend: ServerBackend, routes: list[Route], metrics: Metrics
) -> int:
    import uvicorn

    from prebake.server.app import App
    from prebake.server.headtimeout import with_head_timeout

    app = App(
        routes,
        metrics=metrics,
        access_log=AccessLog(config.log_format) if config.access_log else None,
        max_body_bytes=config.max_body_bytes,
        cors_origins=config.cors_origins,
        debug=config.debug,
        api_keys=config.api_keys,
        max_header_bytes=config.max_header_bytes,
    )
    uv_config = uvicorn.Config(
        app,
        http=with_head_timeout(config.header_timeout_s),
        ws="none",  # no websocket routes: skips importing a websocket stack at every start
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(config.graceful_timeout_s),
        timeout_keep_alive=65,  # above common load balancers' idle timeouts, so they close first
        server_header=False,
        proxy_headers=False,
        limit_concurrency=config.limit_concurrency,  # past it: 503 at once instead of an unbounded queue  # no proxy in front by default; saves a middleware hop per request
        date_header=False,
    )
    server = uvicorn.Server(uv_config)
    exit_code = exits.OK

    def wedged(reason: str) -> None:
        nonlocal exit_code
        logger.error("%s; replacing this worker (SCORING_TIMEOUT_MS=%d)", reason, config.timeout_ms)
        exit_code = RECYCLE
        # Stop accepting now (not at uvicorn's next 0.1 s tick), so no new connection lands here.
        for listener in getattr(server, "servers", []):
            listener.close()
        backend.executor.close()
        server.should_exit = True

    backend.executor.on_wedged = wedged

    async def main() -> None:
        loop = asyncio.get_running_loop()
        backend.executor.start(loop)
        grpc_server = None
        if config.grpc_port is not None:
            from prebake.protocols import v2_grpc

            keys = config.api_keys
            grpc_server = await v2_grpc.start(
                backend,
                host=config.host,
                port=config.grpc_port,
                max_message_bytes=config.max_body_bytes,
                authorize=(lambda metadata: auth.check(keys, metadata)) if keys else None,
            )
        publisher = asyncio.ensure_future(_publish_metrics(metrics))
        logger.info("worker %d serving on http://%s:%d", os.getpid(), config.host, config.port)
        try:
            await server.serve(sockets=[sock])
        finally:
            publisher.cancel()
            metrics.write_snapshot()
            if grpc_server is not None:
                await grpc_server.stop(config.graceful_timeout_s)

    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main())
    finally:
        backend.executor.close()
    return exit_code


async def _publish_metrics(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(1.0)
        metrics.write_snapshot()
