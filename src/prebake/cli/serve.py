"""`prebake serve`: flags (with azmlinfsrv's and KServe's spellings) forwarded to the server.

The platforms' own ways of starting a container work unchanged (docs/platforms.md): SageMaker's
``IMAGE serve`` (and ``IMAGE train``, refused: inference only), KServe's ``--model_name=NAME
--model_dir=/mnt/models --http_port=8080 --grpc_port=8081``, and the storage URIs in Vertex AI's
AIP_STORAGE_URI and SageMaker's SAGEMAKER_SUBMIT_DIRECTORY, fetched before the server starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import click

from prebake import exits


@click.command(context_settings={"show_default": True})
# Plain strings, not click.Path: a Path would fold s3://bucket/key into s3:/bucket/key.
@click.argument("models", nargs=-1)
@click.option(
    "--model-repository",
    "model_repository",
    help="Directory of models, one per subdirectory (or a storage URI of one). Env: PREBAKE_MODEL_REPOSITORY.",
)
@click.option(
    "--model-name",
    "--model_name",
    "model_name",
    default=None,
    help="Name to serve a single model under (default: its file or folder name). Env: PREBAKE_MODEL_NAME.",
)
@click.option(
    "--entry-script",
    "--entry_script",
    "entry_script",
    help="Azure ML score.py (init/run). Env: AZUREML_ENTRY_SCRIPT.",
)
@click.option(
    "--model-dir", "--model_dir", "model_dir", help="Directory given to score.py as AZUREML_MODEL_DIR."
)
@click.option(
    "--app-root",
    "app_root",
    help="Where relative entry scripts and swagger files are found. Env: AML_APP_ROOT. [default: the current directory]",
)
@click.option("--host", default=None, help="Interface to bind. [default: 0.0.0.0]")
@click.option(
    "--port",
    "--http-port",
    "--http_port",
    "port",
    type=int,
    default=None,
    help="HTTP port. [default: 5001; 8080 under SageMaker and Vertex AI]",
)
@click.option(
    "--grpc-port",
    "--grpc_port",
    "grpc_port",
    type=int,
    default=None,
    help="Open Inference Protocol V2 gRPC port (off unless set).",
)
@click.option(
    "--workers",
    "--worker_count",
    "--worker-count",
    "workers",
    type=int,
    default=None,
    help="Worker processes sharing the port. Env: WORKER_COUNT. [default: 1]",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Scoring threads per worker, for models that release the GIL. [default: 1]",
)
@click.option(
    "--timeout-ms",
    "timeout_ms",
    type=int,
    default=None,
    help="Scoring timeout; 504 past it. Env: SCORING_TIMEOUT_MS. [default: 3600000]",
)
@click.option(
    "--max-body-bytes",
    "max_body_bytes",
    type=int,
    default=None,
    help="Largest request body; 413 above it. [default: 100 MB]",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="Where torch/ONNX models run. [default: auto]",
)
@click.option("--debug/--no-debug", default=None, help="Show tracebacks in error responses.")
@click.option(
    "--log-format",
    "log_format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log line format. [default: text]",
)
@click.option(
    "--access-log/--no-access-log", "access_log", default=None, help="One log line per request. [default: on]"
)
@click.option(
    "--graceful-timeout",
    "graceful_timeout_s",
    type=float,
    default=None,
    help="Seconds to drain on SIGTERM. [default: 30]",
)
@click.option(
    "--api-key-file",
    "api_key_file",
    default=None,
    help="File of API keys (one a line); every non-health route then needs one. Env: PREBAKE_API_KEY(_FILE).",
)
@click.option(
    "--limit-concurrency",
    "limit_concurrency",
    type=int,
    default=None,
    help="Most requests in progress at once per worker (counted once their body arrived); past it, 503. "
    "Env: PREBAKE_LIMIT_CONCURRENCY. [default: unlimited]",
)
@click.option(
    "--header-timeout",
    "header_timeout_s",
    type=float,
    default=None,
    help="Seconds a client has to send a request's headers; then the connection is closed (slowloris). "
    "Env: PREBAKE_HEADER_TIMEOUT_S. [default: 60]",
)
@click.option(
    "--body-timeout",
    "body_timeout_s",
    type=float,
    default=None,
    help="Seconds a client has to send a request's body once its headers arrived; then 408 and the "
    "connection is closed. Env: PREBAKE_BODY_TIMEOUT_S. [default: 60]",
)
@click.option(
    "--init-timeout",
    "init_timeout_s",
    type=float,
    default=None,
    help="Seconds the models (or init()) may take to load; past it the start fails (exit 3). "
    "Env: PREBAKE_INIT_TIMEOUT_S. [default: no limit]",
)
@click.option(
    "--heartbeat-timeout",
    "heartbeat_timeout_s",
    type=float,
    default=None,
    help="A worker not heard from this long (stopped, or a call holding the GIL) is replaced. "
    "Env: PREBAKE_HEARTBEAT_TIMEOUT_S. [default: 30]",
)
@click.option(
    "--max-worker-memory",
    "max_worker_memory",
    default=None,
    help="Heap limit per worker (e.g. 2g): a request that would pass it fails alone. Env: PREBAKE_MAX_WORKER_MEMORY.",
)
@click.option(
    "--allow-pickle/--no-allow-pickle",
    "allow_pickle",
    default=None,
    help="Load pickle/joblib models (they run code when loaded). Env: PREBAKE_ALLOW_PICKLE=1. [default: refuse]",
)
@click.option(
    "--handler-scripts/--no-handler-scripts",
    "handler_scripts",
    default=None,
    help="Run a model folder's SageMaker handler script (code/inference.py), which is code. "
    "Env: PREBAKE_HANDLER_SCRIPTS=0 refuses them. [default: run]",
)
@click.option(
    "--allow-client-shm/--no-allow-client-shm",
    "allow_client_shm",
    default=None,
    help="Let clients register system shared memory regions for inputs and outputs (Triton's option of "
    "the same name; the V2 shared memory extension). Env: PREBAKE_ALLOW_CLIENT_SHM=1. [default: refuse]",
)
def serve(**flags: Any) -> None:
    """Serve models with no code, or an Azure ML entry script, over HTTP (and gRPC).

    A model, --model-repository or --model-dir may be a storage URI (s3://, gs://, az://, abfs://, https://):
    it is fetched once into the cache (PREBAKE_CACHE_DIR) before the server starts.
    """
    from prebake.config import load_config
    from prebake.errors import ConfigError

    models, sagemaker = platform_command(tuple(flags.pop("models") or ()))
    try:
        flags = fetch_storage({**flags, "models": models}, os.environ)
        config = load_config(**flags, sagemaker=sagemaker)
        _start_time_packages(config.app_root, config.model_dir)
    except ConfigError as error:
        click.echo(f"prebake serve: {error.message}", err=True)
        sys.exit(exits.USAGE)

    from prebake.server.supervisor import serve as run_server

    sys.exit(run_server(config))


def platform_command(models: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """The model arguments without SageMaker's command, and whether it was given. SageMaker starts a
    container as ``IMAGE serve`` (and a training job as ``IMAGE train``); the image's entry point is
    ``prebake serve``, so the word arrives as the first model argument. A file of that name wins."""
    if not models or models[0] not in ("serve", "train") or Path(models[0]).exists():
        return models, False
    if models[0] == "train":
        click.echo(
            "prebake serve: this is an inference image; SageMaker training ('train') is not supported "
            "(deploy it to an endpoint or a batch transform job, which run 'serve')",
            err=True,
        )
        sys.exit(exits.USAGE)
    return models[1:], True


def _start_time_packages(app_root: Path, model_dir: Path | None) -> None:
    """Extra packages (AZUREML_EXTRA_REQUIREMENTS_TXT and friends) installed or found once, before the
    workers fork: they inherit sys.path. Without those variables the extension code stays unimported."""
    import os

    from prebake.extend import PYTHON_PATH_VARS, REQUIREMENTS_VARS

    if not any(name in os.environ for name in (*REQUIREMENTS_VARS, *PYTHON_PATH_VARS)):
        return
    from prebake.extend.startup import activate, prepare

    activate(prepare(os.environ, app_root=app_root, model_dir=model_dir))


def fetch_storage(flags: dict[str, Any], env: MutableMapping[str, str]) -> dict[str, Any]:
    """``flags`` with every storage URI (models, --model-repository, --model-dir, and their environment
    variables PREBAKE_MODEL_REPOSITORY and Vertex AI's AIP_STORAGE_URI) replaced by its local copy in the
    cache, fetched now: before the server starts, so the workers fork after it. StorageError (a
    ConfigError: exit 2) names a URI that cannot be fetched. Nothing is imported unless a URI is given.
    """
    from prebake.storage.uri import is_uri

    models = [str(m) for m in flags.get("models") or ()]
    repository = flags.get("model_repository") or env.get("PREBAKE_MODEL_REPOSITORY") or ""
    model_dir = flags.get("model_dir") or ""
    # Vertex AI gives the model as AIP_STORAGE_URI and expects the container to fetch it; config.py serves
    # it (a local path) when nothing else is named, so it is fetched under the same condition.
    vertex = env.get("AIP_STORAGE_URI", "")
    wants_vertex = (
        is_uri(vertex) and not models and not (flags.get("entry_script") or env.get("AZUREML_ENTRY_SCRIPT"))
    )
    # SageMaker's framework containers fetch SAGEMAKER_SUBMIT_DIRECTORY (s3://.../sourcedir.tar.gz) too.
    submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    uris = [u for u in (*models, repository, model_dir) if is_uri(u)] + ([vertex] if wants_vertex else [])
    uris += [submit] if is_uri(submit) else []
    if not uris:
        return flags
    from prebake.storage.localize import localize

    fetched = localize(uris, env)
    for result in fetched.values():
        click.echo(f"prebake serve: {result.summary()}", err=True)

    def local(value: str) -> str:
        return str(fetched[value].path) if value in fetched else value

    if wants_vertex:
        env["AIP_STORAGE_URI"] = local(vertex)  # what Vertex would have set had it copied the model itself
    if is_uri(submit):
        env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(_source_folder(Path(local(submit))))
    updated = {**flags, "models": tuple(local(m) for m in models)}
    if is_uri(repository):
        updated["model_repository"] = local(repository)
    if is_uri(model_dir):
        updated["model_dir"] = local(model_dir)
    return updated


def _source_folder(path: Path) -> Path:
    """A fetched SAGEMAKER_SUBMIT_DIRECTORY as a folder: a sourcedir.tar.gz is unpacked (once)."""
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        from prebake.runtimes.discover import unpack

        return unpack(path)
    return path
