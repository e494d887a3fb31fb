"""One worker process: serve HTTP (and gRPC) on the shared socket, load the models (init once), serve.

    build: the models (not loaded), the protocol routes, the pipeline, the HTTP and gRPC transports
    start: load on a thread; listen once loaded or QUIET_LOAD_S into the load (liveness 200, readiness 503
           while loading), beat
    stop:  SIGTERM drains HTTP and gRPC together, writes the last metrics, exits 0

Exit codes tell the supervisor what happened: 0 after a clean drain, INIT_FAILED when loading failed
(the whole server stops: a model that cannot load will not load on retry), RECYCLE when a wedged
scoring call or repeated MemoryErrors made this worker ask to be replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prebake import exits
from prebake.config import ServeConfig
from prebake.errors import ConfigError, ModelLoadError, PrebakeError
from prebake.http import Route
from prebake.runtimes.base import ModelSettings
from prebake.server import control
from prebake.server.executor import Executor
from prebake.server.heartbeat import Heartbeats
from prebake.server.logs import AccessLog, configure_logging
from prebake.server.metrics import Metrics
from prebake.server.pipeline import build_pipeline
from prebake.server.repository import ModelRepository
from prebake.server.rescue import Rescue, WorkerTable
from prebake.server.residency import Residency
from prebake.server.shm import SharedMemoryRegistry

logger = logging.getLogger("prebake.worker")

RECYCLE = 75  # EX_TEMPFAIL: replace me
MEMORY_ERRORS_TO_RECYCLE = 3  # out of memory this many times within MEMORY_WINDOW_S: start afresh
MEMORY_WINDOW_S = 60.0
LOADING_NOTICE_S = 60.0  # a load still going after this long says so, and again every as long
#: A first worker starts answering (liveness 200, readiness 503) once its load has taken this long, or
#: when it is done: below any probe's timeout (Kubernetes' default is 1 s, SageMaker's ping 2 s).
QUIET_LOAD_S = 0.8


@dataclass(frozen=True, slots=True)
class Shared:
    """What the supervisor shares with its workers."""

    state_dir: Path | None  # metrics snapshots, repository control
    heartbeats: Heartbeats | None
    rescue: Rescue | None = None  # requests in progress, for the supervisor to answer if we freeze
    slot: int = 0
    initial: bool = True  # one of the first workers (they listen while loading), not a replacement


def _prepare_environment(config: ServeConfig) -> None:
    """What azmlinfsrv does for score.py: AZUREML_MODEL_DIR set, app root and source dir importable."""
    if config.model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = str(config.model_dir.resolve())
    if config.entry_script is not None:
        os.environ.setdefault("AZUREML_ENTRY_SCRIPT", str(config.entry_script))
        os.environ["AML_APP_ROOT"] = str(config.app_root.resolve())  # where user swagger files are found
        for path in (config.entry_script.parent, config.app_root, config.source_dir):
            if path is not None and str(path) not in sys.path:
                sys.path.append(str(path))


def build_repository(
    config: ServeConfig, metrics: Metrics, *, control_: control.Control | None = None
) -> tuple[ModelRepository, list[Route]]:
    """Create (not load) the models the config names, and the protocol routes that front them."""
    from prebake.runtimes.registry import create_runtime
    from prebake.runtimes.settings import apply_operator

    def with_policy(settings: ModelSettings) -> ModelSettings:
        # The operator decides: a model's own settings file may refuse pickles or its handler script,
        # never allow them.
        apply_operator(
            settings.parameters, allow_pickle=config.allow_pickle, handler_scripts=config.handler_scripts
        )
        return settings

    executor = Executor(config.threads, timeout_s=config.timeout_s)
    control_ = control_ or control.Control(None, workers=1)
    repository = ModelRepository(
        executor,
        metrics,
        factory=create_runtime,
        discover=_discoverer(config, with_policy),
        control=control_,
        # Registrations are the whole server's, recorded beside the repository state (shm.py).
        shared_memory=SharedMemoryRegistry(control_.directory, allowed=config.allow_client_shm),
        from_path=_from_path(config, with_policy) if config.multi_model else None,
        residency=Residency(config.multi_model_memory),
    )
    swagger = None
    if config.entry_script is not None:
        from prebake.runtimes.entry_script import EntryScriptRuntime

        script = EntryScriptRuntime(
            config.entry_script, debug=config.debug, app_root=config.app_root, model_dir=config.model_dir
        )
        repository.add("score", script)
        swagger = script.swagger
    if config.handler_script is not None:
        settings = _handler_script_model(config, config.handler_script)
        repository.add(settings.name, create_runtime(with_policy(settings)), settings)
    elif config.models or config.model_repository is not None:
        from prebake.runtimes.discover import find_models

        found = find_models(list(config.models), repository=config.model_repository, device=config.device)
        if config.model_name:
            if len(found) != 1:
                raise ConfigError(
                    f"--model-name names one model, but {len(found)} were found; use settings files"
                )
            found[0].name = config.model_name
        for settings in found:
            repository.add(settings.name, create_runtime(with_policy(settings)), settings)
    return repository, protocol_routes(repository, config, swagger)


def _handler_script_model(config: ServeConfig, script: Path) -> ModelSettings:
    """The one model, served through the SageMaker inference script that SAGEMAKER_PROGRAM (or an
    --entry-script with model_fn/predict_fn) names, wherever that script lies. Its folder need hold no
    file prebake knows: the script's model_fn loads it."""
    if len(config.models) != 1 or config.model_repository is not None:
        raise ConfigError(f"the SageMaker inference script {script} serves one model folder; give one")
    folder = config.models[0]
    if not folder.exists():
        raise ConfigError(f"{folder}: no such model folder for {script}")
    folder = folder if folder.is_dir() else folder.parent  # model_fn gets the model's folder
    return ModelSettings(
        name=config.model_name or folder.resolve().name,
        path=folder,
        runtime="sagemaker",
        device=config.device,
        parameters={"script": str(script.resolve())},
    )


def _from_path(config: ServeConfig, with_policy: Any) -> Any:
    """The settings of a model SageMaker asks a multi-model endpoint to load from a path."""

    def from_path(name: str, path: Path) -> ModelSettings:
        from prebake.runtimes.discover import model_from_path

        try:
            settings = model_from_path(path, config.device)
        except ConfigError as error:
            raise ModelLoadError(f"model '{name}': {error.message}") from None
        settings.name = name
        return with_policy(settings)

    return from_path


def _discoverer(config: ServeConfig, with_policy: Any) -> Any:
    """Finds a model folder added to --model-repository after the start (Triton's explicit control)."""
    root = config.model_repository
    if root is None:
        return None

    def discover(name: str) -> ModelSettings | None:
        from prebake.runtimes.discover import model_from_path

        path = root / name
        if "/" in name or name.startswith(".") or not path.exists():
            return None
        settings = model_from_path(path, config.device)
        settings.name = name
        return with_policy(settings)

    return discover


def protocol_routes(repository: ModelRepository, config: ServeConfig, swagger: Any = None) -> list[Route]:
    """Every protocol's routes, on the one HTTP port."""
    from prebake.protocols import (
        azure,
        azure_mlflow,
        mlflow_scoring,
        openai,
        sagemaker,
        sagemaker_mme,
        v1,
        v2,
        vertex,
    )
    from prebake.server import openapi, ops

    routes = [
        *ops.routes(repository, repository.metrics),
        *azure.routes(repository, swagger=swagger),
        *v2.routes(repository, max_inflated_bytes=config.max_body_bytes),
        *v1.routes(repository),
        # After V1: GET /v1/models is OpenAI's list, which carries V1's "models" key too.
        *openai.routes(repository),
        *sagemaker.routes(repository),
        *vertex.routes(
            repository, health_route=config.health_route, predict_route=config.predict_route or "/predict"
        ),
        # Last: its /ping (up with no model loaded) replaces the single-model one.
        *(sagemaker_mme.routes(repository, invoke=sagemaker.invoke) if config.multi_model else []),
    ]
    routes = mlflow_scoring.over(
        repository, azure_mlflow.over(repository, routes)
    )  # share /invocations, /score
    routes.append(openapi.route(routes, models=repository.model_names(), auth=bool(config.api_keys)))
    return routes


def run_worker(config: ServeConfig, sock: socket.socket, shared: Shared) -> int:
    """Entry point of a forked worker; returns its exit code."""
    configure_logging(config.log_format, config.log_level)
    _limit_memory(config.max_worker_memory)
    _prepare_environment(config)
    if shared.heartbeats is not None:
        shared.heartbeats.start_beating(shared.slot)
    metrics = Metrics(shared.state_dir)
    try:
        if config.grpc_port is not None:
            _check_grpc()
        repository, routes = build_repository(
            config, metrics, control_=control.Control(shared.state_dir, workers=config.workers)
        )
    except PrebakeError as error:
        _log_init_failure(error)
        return exits.USAGE if isinstance(error, ConfigError) else exits.INIT_FAILED
    except BaseException:
        logger.error("init failed:\n%s", traceback.format_exc())
        return exits.INIT_FAILED
    try:
        listen_first = shared.initial or config.workers == 1
        table = None
        if shared.rescue is not None:
            table = shared.rescue.worker(shared.slot, sorted({r.error_body for r in routes}, key=id))
        return _serve(config, sock, repository, routes, metrics, listen_first=listen_first, rescue=table)
    except BaseException:
        logger.error("worker crashed:\n%s", traceback.format_exc())
        return exits.FAILURE


def _log_init_failure(error: PrebakeError) -> None:
    # One message, and the user's own traceback once (an import or init() that raised), never ours.
    cause = error.traceback or _user_traceback(error)
    logger.error("init failed: %s%s", error.message, f"\n{cause}" if cause else "")


def _user_traceback(error: BaseException) -> str:
    cause = error.__cause__
    if cause is None or isinstance(cause, PrebakeError):
        return ""
    return "".join(traceback.format_exception(cause))


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


def _unmatched_error_body(config: ServeConfig) -> Any:
    """An entry-script server answers unknown paths as azmlinfsrv does, ``{"message": ...}``."""
    from prebake.http import v2_error_body
    from prebake.protocols import azure

    return azure.error_body if config.entry_script is not None else v2_error_body


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(
    config: ServeConfig,
    sock: socket.socket,
    repository: ModelRepository,
    routes: list[Route],
    metrics: Metrics,
    *,
    listen_first: bool = True,
    rescue: WorkerTable | None = None,
) -> int:
    """Serve until SIGTERM. ``listen_first``: answer probes (liveness 200, readiness 503) while the models
    load; otherwise load, then listen."""
    import uvicorn

    from prebake.server.headtimeout import with_head_timeout
    from prebake.server.http_transport import HttpTransport

    exit_code = exits.OK
    memory_errors: list[float] = []

    def replace_me(reason: str) -> None:
        nonlocal exit_code
        logger.error("%s; replacing this worker", reason)
        exit_code = RECYCLE
        # Stop accepting now (not at uvicorn's next 0.1 s tick), so no new connection lands here.
        for listener in getattr(server, "servers", []):
            listener.close()
        repository.executor.close()
        server.should_exit = True

    def on_memory_error() -> None:
        now = time.monotonic()
        memory_errors[:] = [t for t in memory_errors if now - t < MEMORY_WINDOW_S] + [now]
        if len(memory_errors) >= MEMORY_ERRORS_TO_RECYCLE and exit_code == exits.OK:
            replace_me(f"{len(memory_errors)} requests ran out of memory within {MEMORY_WINDOW_S:g} s")

    pipeline = build_pipeline(
        metrics=metrics,
        access_log=AccessLog(config.log_format) if config.access_log else None,
        known_model=repository.has,
        api_keys=config.api_keys,
        max_header_bytes=config.max_header_bytes,
        max_body_bytes=config.max_body_bytes,
        limit_concurrency=config.limit_concurrency,
        timeout_s=config.timeout_s,
        rescue=rescue,
        debug=config.debug,
        on_memory_error=on_memory_error,
    )
    transport = HttpTransport(
        routes,
        pipeline,
        max_body_bytes=config.max_body_bytes,
        body_timeout_s=config.body_timeout_s,
        cors_origins=config.cors_origins,
        unmatched_error_body=_unmatched_error_body(config),
    )
    server = _uvicorn_server(
        uvicorn.Config(
            transport,
            http=with_head_timeout(config.header_timeout_s),
            ws="none",  # no websocket routes: skips importing a websocket stack at every start
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=int(config.graceful_timeout_s),
            timeout_keep_alive=65,  # above common load balancers' idle timeouts, so they close first
            server_header=False,
            proxy_headers=False,  # no proxy in front by default; saves a middleware hop per request
            date_header=False,
        )
    )
    repository.executor.on_wedged = lambda reason: replace_me(
        f"{reason} (SCORING_TIMEOUT_MS={config.timeout_ms})"
    )

    async def load() -> None:
        nonlocal exit_code
        started = time.monotonic()
        loading = asyncio.ensure_future(asyncio.to_thread(repository.load_all))
        try:
            while True:
                left = (
                    None
                    if config.init_timeout_s is None
                    else config.init_timeout_s - (time.monotonic() - started)
                )
                if left is not None and left <= 0:
                    raise TimeoutError
                done, _ = await asyncio.wait(
                    {loading}, timeout=min(LOADING_NOTICE_S, left or LOADING_NOTICE_S)
                )
                if done:
                    loading.result()
                    return
                logger.warning("still loading models, %.0f s so far", time.monotonic() - started)
        except TimeoutError:
            logger.error(
                "init failed: the models were not loaded within %g s (PREBAKE_INIT_TIMEOUT_S / --init-timeout)",
                config.init_timeout_s,
            )
        except PrebakeError as error:
            _log_init_failure(error)
        except Exception:
            logger.error("init failed:\n%s", traceback.format_exc())
        exit_code = exits.INIT_FAILED
        server.should_exit = True

    async def main() -> None:
        nonlocal exit_code
        loop = asyncio.get_running_loop()
        repository.executor.start(loop)
        grpc_server = None
        if config.grpc_port is not None:
            from prebake.protocols import v2_grpc
            from prebake.server.grpc_transport import start_grpc

            try:
                grpc_server = await start_grpc(
                    lambda s: v2_grpc.register(s, repository),
                    pipeline,
                    host=config.host,
                    port=config.grpc_port,
                    max_message_bytes=config.max_body_bytes,
                )
            except ConfigError as error:
                logger.error("%s", error.message)
                exit_code = exits.USAGE
                return
        grpc_stopping: asyncio.Future[Any] | None = None

        def on_term() -> None:
            nonlocal grpc_stopping
            server.should_exit = True
            if grpc_server is not None and grpc_stopping is None:
                # gRPC drains beside HTTP: in-flight calls finish, new ones are refused.
                grpc_stopping = asyncio.ensure_future(grpc_server.stop(config.graceful_timeout_s))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_term)
        loop.add_signal_handler(control.SIGNAL, lambda: asyncio.ensure_future(repository.reconcile()))
        publisher = asyncio.ensure_future(_publish_metrics(metrics))
        loader = asyncio.ensure_future(load())
        if listen_first:
            repository.control.mark_status("loading")
            # A load this short ends before the first answer: early probes wait in the backlog a moment,
            # rather than each 503 taking the one core from the load (bench: cold start, polled every 5 ms).
            await asyncio.wait({loader}, timeout=QUIET_LOAD_S)
        else:
            await loader
        if exit_code != exits.OK:
            publisher.cancel()
            return
        logger.info("worker %d serving on http://%s:%d", os.getpid(), config.host, config.port)
        try:
            await server.serve(sockets=[sock])
        finally:
            loader.cancel()
            publisher.cancel()
            metrics.write_snapshot()
            if grpc_server is not None:
                on_term()
                assert grpc_stopping is not None
                await grpc_stopping

    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main())
    finally:
        repository.executor.close()
    return exit_code


def _uvicorn_server(config: Any) -> Any:
    """uvicorn's server, minus its signal handling: the worker's own handlers drain HTTP and gRPC
    together (uvicorn's re-raise the signal once it returns, which would skip the worker's cleanup)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


async def _publish_metrics(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(1.0)
        metrics.write_snapshot()
