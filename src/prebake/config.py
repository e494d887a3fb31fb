"""Serve settings: read once from flags, then the environment, then defaults; validated and frozen.

Environment names from the peers are honoured so existing deployment configs work unchanged:
azmlinfsrv (AZUREML_ENTRY_SCRIPT, AZUREML_MODEL_DIR, AML_APP_ROOT, WORKER_COUNT, SCORING_TIMEOUT_MS,
AML_CORS_ORIGINS, AZUREML_SOURCE_DIRECTORY), SageMaker (SAGEMAKER_BIND_TO_PORT, SAGEMAKER_PROGRAM,
SAGEMAKER_SUBMIT_DIRECTORY, SAGEMAKER_MODEL_SERVER_TIMEOUT, SAGEMAKER_MODEL_SERVER_WORKERS,
SAGEMAKER_MULTI_MODEL) and Vertex AI (AIP_MODE, AIP_HTTP_PORT, AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE,
AIP_STORAGE_URI).

Where a platform starts the container its own way, the defaults follow it (docs/platforms.md):

- SageMaker runs ``docker run IMAGE serve``: the command passes ``sagemaker=True``; then the model is
  /opt/ml/model unless one is named (none with SAGEMAKER_MULTI_MODEL), and the port 8080 unless
  SAGEMAKER_BIND_TO_PORT says otherwise.
- Vertex AI sets AIP_* variables: with any of them the port is 8080 unless AIP_HTTP_PORT says otherwise,
  and an AIP_MODE other than PREDICTION is refused (the images serve predictions only).
- A SageMaker handler script (model_fn/predict_fn, no init/run) passed as --entry-script, or named by
  SAGEMAKER_PROGRAM (in SAGEMAKER_SUBMIT_DIRECTORY, else the model's code/), is ``handler_script``.

``load_config`` takes each flag as a keyword argument named as the ``ServeConfig`` field it sets (None:
not given), so the command forwards its flags unchanged and a test calls it as the command does. A
leaf above errors.py: it imports nothing from the server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prebake.errors import ConfigError

DEFAULT_PORT = 5001
#: Where relative entry scripts and swagger files are found when AML_APP_ROOT is not set: the current
#: directory, as azmlinfsrv does (the images set AML_APP_ROOT=/var/azureml-app themselves).
DEFAULT_APP_ROOT = "."
DEFAULT_TIMEOUT_MS = 3_600_000  # azmlinfsrv's default scoring timeout: one hour
DEFAULT_MAX_BODY = 100 * 1024 * 1024
#: Where SageMaker unpacks model.tar.gz for a single-model endpoint, and the port it sends traffic to.
SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
PLATFORM_PORT = 8080  # SageMaker's and Vertex AI's (AIP_HTTP_PORT's default)
VERTEX_VARIABLES = ("AIP_MODE", "AIP_HTTP_PORT", "AIP_HEALTH_ROUTE", "AIP_PREDICT_ROUTE", "AIP_STORAGE_URI")
#: The functions of a SageMaker inference script and of an Azure ML entry script.
SAGEMAKER_HANDLERS = frozenset({"model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn"})
AZURE_HANDLERS = frozenset({"init", "run"})

LogFormat = Literal["text", "json"]
Device = Literal["auto", "cpu", "cuda"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
DEVICES: tuple[Device, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    models: tuple[Path, ...] = ()
    model_name: str | None = (
        None  # renames a single served model (KServe names it after the InferenceService)
    )
    model_repository: Path | None = None
    entry_script: Path | None = None
    model_dir: Path | None = None
    app_root: Path = Path(DEFAULT_APP_ROOT)
    source_dir: Path | None = None
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    grpc_port: int | None = None
    workers: int = 1
    threads: int = 1
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    max_body_bytes: int = DEFAULT_MAX_BODY
    cors_origins: tuple[str, ...] = ()
    debug: bool = False
    log_format: LogFormat = "text"
    log_level: str = "info"
    access_log: bool = True
    device: Device = "auto"
    graceful_timeout_s: float = 30.0
    health_route: str = "/health"
    predict_route: str | None = None
    api_keys: tuple[bytes, ...] = field(default=(), repr=False)  # never printed
    max_header_bytes: int = 64 * 1024
    limit_concurrency: int | None = None  # requests in progress per worker; past it, 503 at once
    header_timeout_s: float = 60.0  # a request head not complete by then: the connection is closed
    body_timeout_s: float = 60.0  # a request body not complete by then: 408 and the connection closed
    init_timeout_s: float | None = None  # models (or init()) not loaded by then: the start fails (exit 3)
    heartbeat_timeout_s: float = 30.0  # a worker silent this long (stopped, GIL held) is replaced
    max_worker_memory: int | None = None  # bytes of heap (RLIMIT_DATA) per worker; None: no limit
    allow_pickle: bool = False  # pickles run code when loaded: refused unless the user says they trust them
    handler_scripts: bool = True  # a model folder's code/inference.py is code the server runs; False refuses
    # Triton's --allow-client-shm: clients may register shared memory regions that the server reads inputs
    # from and writes outputs to. Off by default, as in Triton: a region is memory of this machine.
    allow_client_shm: bool = False
    # A SageMaker inference script (model_fn, predict_fn...) serving the one model in ``models``.
    handler_script: Path | None = None
    # SageMaker multi-model endpoint: models come and go through POST/DELETE /models (protocols/sagemaker_mme.py);
    # least recently used ones are unloaded to fit a new one in ``multi_model_memory`` bytes (None: what
    # the machine, or the container's cgroup, has available).
    multi_model: bool = False
    multi_model_memory: int | None = None

    @property
    def timeout_s(self) -> float | None:
        return self.timeout_ms / 1000 if self.timeout_ms > 0 else None


def load_config(
    *,
    models: Sequence[str | Path] = (),
    model_name: str | None = None,
    model_repository: str | Path | None = None,
    entry_script: str | Path | None = None,
    model_dir: str | Path | None = None,
    app_root: str | Path | None = None,
    source_dir: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    grpc_port: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    timeout_ms: int | None = None,
    max_body_bytes: int | None = None,
    cors_origins: Sequence[str] | str | None = None,
    debug: bool | None = None,
    log_format: str | None = None,
    log_level: str | None = None,
    access_log: bool | None = None,
    device: str | None = None,
    graceful_timeout_s: float | None = None,
    api_key_file: str | Path | None = None,
    limit_concurrency: int | None = None,
    header_timeout_s: float | None = None,
    body_timeout_s: float | None = None,
    init_timeout_s: float | None = None,
    heartbeat_timeout_s: float | None = None,
    max_worker_memory: str | int | None = None,
    allow_pickle: bool | None = None,
    handler_scripts: bool | None = None,
    allow_client_shm: bool | None = None,
    sagemaker: bool = False,
    env: Mapping[str, str] | None = None,
) -> ServeConfig:
    """The frozen config from flags (None where not given), then ``env`` (default ``os.environ``).
    ``sagemaker``: the container was started as SageMaker starts it (``IMAGE serve``).

    >>> load_config(models=["m.onnx"], port=8080, env={}).port
    8080
    """
    env = os.environ if env is None else env
    read = _Reader(env)
    root = Path(read.text(app_root, "AML_APP_ROOT") or DEFAULT_APP_ROOT)
    script = _entry_script(read.text(entry_script, "AZUREML_ENTRY_SCRIPT"), root)
    vertex = any(env.get(name) for name in VERTEX_VARIABLES)
    mode = env.get("AIP_MODE", "").strip()
    if mode and mode.upper() != "PREDICTION":
        raise ConfigError(
            f"AIP_MODE={mode!r}: this image serves predictions only (Vertex AI sets AIP_MODE=PREDICTION)"
        )
    multi_model = read.flag(None, "SAGEMAKER_MULTI_MODEL")

    model_dir_value = read.text(model_dir, "AZUREML_MODEL_DIR")
    model_path = Path(model_dir_value) if model_dir_value else None
    if model_path is not None and not model_path.exists():
        raise ConfigError(
            f"model directory {str(model_path)!r} does not exist (from --model-dir/AZUREML_MODEL_DIR)"
        )

    script, handler, paths = _sagemaker_models(
        script, tuple(Path(p) for p in models), model_path, env, sagemaker=sagemaker, multi_model=multi_model
    )
    storage = env.get("AIP_STORAGE_URI", "")
    if not paths and script is None and storage and "://" not in storage:
        paths = (Path(storage),)  # Vertex AI copies artifacts locally when the URI is a path
    repository_value = read.text(model_repository, "PREBAKE_MODEL_REPOSITORY")
    repository = Path(repository_value) if repository_value else None
    if repository is not None and not repository.is_dir():
        raise ConfigError(f"model repository {str(repository)!r} is not a directory")
    if script is None and not paths and repository is None and not multi_model:
        if model_path is None:
            raise ConfigError(
                "nothing to serve: give a model path (prebake serve model.joblib), "
                "--model-repository DIR, or --entry-script score.py"
            )
        paths = (model_path,)  # a model dir alone is served with no code

    http_port = read.integer(port, "port", "AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT", "PREBAKE_PORT")
    if http_port is None and (sagemaker or vertex):
        http_port = PLATFORM_PORT
    grpc = read.integer(grpc_port, "gRPC port", "PREBAKE_GRPC_PORT")
    for value in (http_port, grpc):
        if value is not None and not 0 <= value <= 65535:
            raise ConfigError(f"ports must be between 0 and 65535, got {value}")

    cors = read.text(cors_origins if isinstance(cors_origins, str) else None, "AML_CORS_ORIGINS") or ""
    origins = (
        tuple(cors_origins)
        if cors_origins is not None and not isinstance(cors_origins, str)
        else tuple(o.strip() for o in cors.split(",") if o.strip())
    )
    source = read.text(source_dir, "AZUREML_SOURCE_DIRECTORY")
    keys = read_keys(env.get("PREBAKE_API_KEY"), read.text(api_key_file, "PREBAKE_API_KEY_FILE"))
    memory = read.text(max_worker_memory, "PREBAKE_MAX_WORKER_MEMORY")
    mme_memory = env.get("PREBAKE_MULTI_MODEL_MEMORY")

    return ServeConfig(
        models=paths,
        model_name=read.text(model_name, "PREBAKE_MODEL_NAME"),
        model_repository=repository,
        entry_script=script,
        model_dir=model_path,
        app_root=root,
        source_dir=(root / source) if source else None,
        host=read.text(host, "PREBAKE_HOST") or "0.0.0.0",
        port=DEFAULT_PORT if http_port is None else http_port,
        grpc_port=grpc,
        workers=read.integer(workers, "workers", "WORKER_COUNT", "SAGEMAKER_MODEL_SERVER_WORKERS", minimum=1)
        or 1,
        threads=read.integer(threads, "threads", "PREBAKE_THREADS", minimum=1) or 1,
        timeout_ms=_timeout_ms(read, timeout_ms),
        max_body_bytes=read.integer(max_body_bytes, "max body bytes", "PREBAKE_MAX_BODY_BYTES", minimum=1)
        or DEFAULT_MAX_BODY,
        cors_origins=origins,
        debug=read.flag(debug, "PREBAKE_DEBUG"),
        log_format=read.choice(log_format, "log format", LOG_FORMATS, "PREBAKE_LOG_FORMAT") or "text",  # type: ignore[arg-type]
        log_level=(read.text(log_level, "AZUREML_LOG_LEVEL") or "info").lower(),
        access_log=access_log is not False,
        device=read.choice(device, "device", DEVICES, "PREBAKE_DEVICE") or "auto",  # type: ignore[arg-type]
        graceful_timeout_s=_default(
            read.seconds(graceful_timeout_s, "graceful timeout", "PREBAKE_GRACEFUL_TIMEOUT"), 30.0
        ),
        health_route=env.get("AIP_HEALTH_ROUTE") or "/health",
        predict_route=env.get("AIP_PREDICT_ROUTE") or None,
        api_keys=keys,
        limit_concurrency=read.integer(
            limit_concurrency, "concurrency limit", "PREBAKE_LIMIT_CONCURRENCY", minimum=1
        ),
        header_timeout_s=_default(
            read.seconds(header_timeout_s, "header timeout", "PREBAKE_HEADER_TIMEOUT_S"), 60.0
        ),
        body_timeout_s=_default(read.seconds(body_timeout_s, "body timeout", "PREBAKE_BODY_TIMEOUT_S"), 60.0),
        init_timeout_s=read.seconds(init_timeout_s, "init timeout", "PREBAKE_INIT_TIMEOUT_S"),
        heartbeat_timeout_s=_default(
            read.seconds(heartbeat_timeout_s, "heartbeat timeout", "PREBAKE_HEARTBEAT_TIMEOUT_S"), 30.0
        ),
        max_worker_memory=parse_bytes(str(memory), "max worker memory") if memory is not None else None,
        allow_pickle=read.flag(allow_pickle, "PREBAKE_ALLOW_PICKLE"),
        handler_scripts=read.flag(handler_scripts, "PREBAKE_HANDLER_SCRIPTS", default=True),
        allow_client_shm=read.flag(allow_client_shm, "PREBAKE_ALLOW_CLIENT_SHM"),
        handler_script=handler,
        multi_model=multi_model,
        multi_model_memory=parse_bytes(mme_memory, "multi-model memory") if mme_memory else None,
    )


def _sagemaker_models(
    script: Path | None,
    paths: tuple[Path, ...],
    model_dir: Path | None,
    env: Mapping[str, str],
    *,
    sagemaker: bool,
    multi_model: bool,
) -> tuple[Path | None, Path | None, tuple[Path, ...]]:
    """The Azure entry script, the SageMaker handler script and the model paths, as SageMaker would
    start the container: ``script`` is taken for a handler script where it defines model_fn/predict_fn
    and no init/run; with the argument ``serve`` and nothing named the model is /opt/ml/model; and
    SAGEMAKER_PROGRAM names a handler script in SAGEMAKER_SUBMIT_DIRECTORY."""
    handler = None
    if script is not None and script_kind(script) == "sagemaker":
        # Run it as SageMaker would, on the model directory given, else the folder holding the script's
        # code/ folder (SageMaker's layout).
        handler, script = script, None
        paths = paths or (model_dir or _model_dir_of(handler),)
    if sagemaker and not paths and script is None and not multi_model:
        if not SAGEMAKER_MODEL_DIR.exists():
            raise ConfigError(
                f"SageMaker mode (the argument 'serve'): {SAGEMAKER_MODEL_DIR} does not exist; SageMaker "
                "unpacks the model there (mount it with -v ./model:/opt/ml/model:ro), or name a model after 'serve'"
            )
        paths = (SAGEMAKER_MODEL_DIR,)
    program = env.get("SAGEMAKER_PROGRAM", "").strip()
    if program and handler is None and script is None and not multi_model:
        handler = _sagemaker_program(program, env.get("SAGEMAKER_SUBMIT_DIRECTORY", "").strip())
        if handler is not None and not paths:
            paths = (_model_dir_of(handler),)
    return script, handler, paths


def _timeout_ms(read: _Reader, flag: int | None) -> int:
    """--timeout-ms, else SCORING_TIMEOUT_MS (ms, azmlinfsrv's), else SAGEMAKER_MODEL_SERVER_TIMEOUT
    (seconds, the SageMaker inference toolkit's), else one hour."""
    value = read.integer(flag, "scoring timeout (ms)", "SCORING_TIMEOUT_MS")
    if value is not None:
        return value
    seconds = read.integer(None, "SAGEMAKER_MODEL_SERVER_TIMEOUT (seconds)", "SAGEMAKER_MODEL_SERVER_TIMEOUT")
    return seconds * 1000 if seconds is not None else DEFAULT_TIMEOUT_MS


def script_kind(script: Path) -> Literal["azure", "sagemaker", "unknown"]:
    """Which contract a script follows, from the functions it defines at top level (read, not run):
    init/run is Azure ML's, model_fn/predict_fn/... with neither is a SageMaker inference script."""
    import ast

    try:
        tree = ast.parse(script.read_bytes(), filename=str(script))
    except (OSError, SyntaxError, ValueError):
        return "unknown"  # the runtime reports the import error itself, with the user's traceback
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)} | {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    if names & AZURE_HANDLERS:
        return "azure"
    return "sagemaker" if names & SAGEMAKER_HANDLERS else "unknown"


def _model_dir_of(script: Path) -> Path:
    """The model directory of a handler script with none named: SageMaker's layout is MODEL/code/inference.py."""
    folder = script.resolve().parent
    return folder.parent if folder.name == "code" else folder


def _sagemaker_program(program: str, submit: str) -> Path | None:
    """The script SAGEMAKER_PROGRAM names: in SAGEMAKER_SUBMIT_DIRECTORY (a folder; the SageMaker SDK sets
    /opt/ml/model/code), else in the model's code/ folder (None: the runtime finds it there itself)."""
    name = program if program.endswith(".py") else f"{program}.py"
    if not submit:
        return None
    if "://" in submit:
        raise ConfigError(
            f"SAGEMAKER_SUBMIT_DIRECTORY={submit!r}: a storage URI is fetched by `prebake serve` itself; "
            "this reached the settings unfetched"
        )
    candidate = Path(submit) / name
    if not candidate.is_file():
        raise ConfigError(
            f"SAGEMAKER_PROGRAM={program!r} not found in SAGEMAKER_SUBMIT_DIRECTORY={submit!r} "
            f"(looked at {candidate})"
        )
    return candidate


def _entry_script(entry: str | None, root: Path) -> Path | None:
    if not entry:
        return None
    # Like azmlinfsrv: a relative entry script is found under AML_APP_ROOT; we also accept it relative
    # to the working directory, which is what people type on a laptop.
    candidate = Path(entry)
    if not candidate.is_absolute():
        under_root = root / candidate
        candidate = under_root if under_root.exists() or not candidate.exists() else candidate.resolve()
    if not candidate.is_file():
        raise ConfigError(
            f"entry script {entry!r} not found (looked at {candidate}); "
            "pass --entry-script with a path to your score.py, or set AML_APP_ROOT"
        )
    return candidate


class _Reader:
    """Each setting from its flag if given, else the first environment variable set (non-empty)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, flag: object, names: Sequence[str]) -> object:
        if flag is not None and flag != "":
            return flag
        for name in names:
            if self.env.get(name):
                return self.env[name]
        return None

    def text(self, flag: str | Path | int | None, *names: str) -> str | None:
        value = self.raw(flag, names)
        return None if value is None else str(value)

    def integer(self, flag: int | None, what: str, *names: str, minimum: int = 0) -> int | None:
        value = self.raw(flag, names)
        if value is None:
            return None
        try:
            number = int(str(value))
        except ValueError:
            raise ConfigError(f"{what} must be a whole number, got {value!r}") from None
        if number < minimum:
            raise ConfigError(f"{what} must be at least {minimum}, got {number}")
        return number

    def seconds(self, flag: float | None, what: str, *names: str) -> float | None:
        value = self.raw(flag, names)
        if value is None:
            return None
        try:
            number = float(str(value))
        except ValueError:
            raise ConfigError(f"{what} must be a number of seconds, got {value!r}") from None
        if not number > 0:
            raise ConfigError(f"{what} must be above 0 seconds, got {value!r}")
        return number

    def flag(self, flag: bool | None, name: str, *, default: bool = False) -> bool:
        if flag is not None:
            return flag
        value = self.env.get(name, "").strip().lower()
        return value in ("1", "true", "yes", "on") if value else default

    def choice(self, flag: str | None, what: str, choices: Sequence[str], *names: str) -> str | None:
        value = self.text(flag, *names)
        if value is None:
            return None
        value = value.lower()
        if value not in choices:
            raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
        return value


def _default(value: float | None, default: float) -> float:
    return default if value is None else value


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_bytes(value: str, name: str) -> int:
    """'512m' -> 536870912; plain numbers are bytes."""
    text = value.strip().lower().removesuffix("b").removesuffix("i")
    unit = text[-1] if text and text[-1] in "kmg" else ""
    try:
        number = float(text[: len(text) - len(unit)])
    except ValueError:
        raise ConfigError(f"{name} must be a size such as 512m or 2g, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be above zero, got {value!r}")
    return int(number * _UNITS[unit])


def read_keys(inline: str | None, path: str | None) -> tuple[bytes, ...]:
    """API keys from PREBAKE_API_KEY (comma-separated) and a file (one a line, # comments)."""
    keys: list[str] = []
    if inline:
        keys.extend(inline.split(","))
    if path:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ConfigError(f"cannot read the API key file {path!r}: {error.strerror}") from None
        keys.extend(line for line in text.splitlines() if not line.startswith("#"))
    cleaned = tuple(key.strip().encode() for key in keys if key.strip())
    if (inline or path) and not cleaned:
        raise ConfigError("API key auth is configured but no key was found; check PREBAKE_API_KEY(_FILE)")
    return cleaned
