"""Serve settings: read once from flags, then the environment, then defaults; validated and frozen.

Environment names from the peers are honoured so existing deployment configs work unchanged:
azmlinfsrv (AZUREML_ENTRY_SCRIPT, AZUREML_MODEL_DIR, AML_APP_ROOT, WORKER_COUNT, SCORING_TIMEOUT_MS,
AML_CORS_ORIGINS, AZUREML_SOURCE_DIRECTORY), SageMaker (SAGEMAKER_BIND_TO_PORT) and Vertex AI
(AIP_HTTP_PORT, AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE, AIP_STORAGE_URI).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prebake.errors import ConfigError

DEFAULT_PORT = 5001
#: Where relative entry scripts and user swagger files are found when AML_APP_ROOT is not set: the
#: current directory, as azmlinfsrv does (its amlserver.py: os.environ.setdefault("AML_APP_ROOT",
#: os.getcwd())). The images set AML_APP_ROOT themselves (Containerfile.in: /var/prebake).
DEFAULT_APP_ROOT = "."
DEFAULT_TIMEOUT_MS = 3_600_000  # azmlinfsrv's default scoring timeout: one hour
DEFAULT_MAX_BODY = 100 * 1024 * 1024

LogFormat = Literal["text", "json"]
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True, slots=True)
class ServeConfig:
    models: tuple[Path, ...] = ()
    model_name: str | None = (
        None  # renames a single served model (KServe names it after the InferenceService)
    )
    model_repository: Path | None = None
    entry_script: Path | None = None
    model_dir: Path | None = None
    app_root: Path = Path(DEFAULT_APP_ROOT)  # load_config makes it absolute
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
    limit_concurrency: int | None = None
    header_timeout_s: float = 60.0  # a request head not complete by then: the connection is closed
    max_worker_memory: int | None = None
    allow_pickle: bool = False  # pickles run code when loaded: refused unless the user says they trust them  # bytes of heap (RLIMIT_DATA) per worker; None: no limit
    handler_scripts: bool = True  # a model folder's code/inference.py runs as code; False refuses them
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timeout_s(self) -> float | None:
        return self.timeout_ms / 1000 if self.timeout_ms > 0 else None


def _int(value: str, name: str, *, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def _first(flags: Mapping[str, Any], env: Mapping[str, str], flag: str, *env_names: str) -> Any:
    """The flag if given, else the first environment variable that is set (non-empty), else None."""
    value = flags.get(flag)
    if value not in (None, (), ""):
        return value
    for name in env_names:
        if env.get(name):
            return env[name]
    return None


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


def _flag(flag: bool | None, env_value: str | None) -> bool:
    if flag is not None:
        return flag
    return (env_value or "").strip().lower() in ("1", "true", "yes", "on")


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def load_config(flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ServeConfig:
    """Build the frozen config from CLI flags (None where not given) and the environment.

    >>> load_config({"port": 8080}, env={}).port
    8080
    """
    env = os.environ if env is None else env
    # Absolute, as azmlinfsrv exports it: scripts open files through AML_APP_ROOT after changing directory.
    app_root = Path(_first(flags, env, "app_root", "AML_APP_ROOT") or DEFAULT_APP_ROOT).absolute()

    entry = _first(flags, env, "entry_script", "AZUREML_ENTRY_SCRIPT")
    entry_script = None
    if entry:
        # Like azmlinfsrv: a relative entry script is found under AML_APP_ROOT; we also accept it relative
        # to the working directory, which is what people type on a laptop.
        candidate = Path(entry)
        if not candidate.is_absolute():
            under_root = app_root / candidate
            candidate = under_root if under_root.exists() or not candidate.exists() else candidate.resolve()
        if not candidate.is_file():
            raise ConfigError(
                f"entry script {entry!r} not found (looked at {candidate}); "
                "pass --entry-script with a path to your score.py, or set AML_APP_ROOT"
            )
        entry_script = candidate

    model_dir_value = _first(flags, env, "model_dir", "AZUREML_MODEL_DIR")
    model_dir = Path(model_dir_value) if model_dir_value else None
    if model_dir is not None and not model_dir.exists():
        raise ConfigError(
            f"model directory {str(model_dir)!r} does not exist (from --model-dir/AZUREML_MODEL_DIR)"
        )

    models = tuple(Path(p) for p in (flags.get("models") or ()))
    storage = env.get("AIP_STORAGE_URI", "")
    if not models and not entry_script and storage and "://" not in storage:
        models = (Path(storage),)  # Vertex AI copies artifacts locally when the URI is a path
    repository_value = _first(flags, env, "model_repository", "PREBAKE_MODEL_REPOSITORY")
    repository = Path(repository_value) if repository_value else None
    if repository is not None and not repository.is_dir():
        raise ConfigError(f"model repository {str(repository)!r} is not a directory")
    if entry_script is None and not models and repository is None:
        if model_dir is not None:
            models = (model_dir,)  # a model dir alone is served with no code
        else:
            raise ConfigError(
                "nothing to serve: give a model path (prebake serve model.joblib), "
                "--model-repository DIR, or --entry-script score.py"
            )

    port_value = _first(flags, env, "port", "AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT", "PREBAKE_PORT")
    port = _int(str(port_value), "port", minimum=0) if port_value is not None else DEFAULT_PORT
    grpc_value = _first(flags, env, "grpc_port", "PREBAKE_GRPC_PORT")
    grpc_port = _int(str(grpc_value), "grpc port", minimum=0) if grpc_value is not None else None
    if port > 65535 or (grpc_port is not None and grpc_port > 65535):
        raise ConfigError("ports must be between 0 and 65535")

    workers = _int(str(_default(_first(flags, env, "workers", "WORKER_COUNT"), 1)), "workers", minimum=1)
    threads = _int(str(_default(_first(flags, env, "threads", "PREBAKE_THREADS"), 1)), "threads", minimum=1)
    timeout_value = _first(flags, env, "timeout_ms", "SCORING_TIMEOUT_MS")
    timeout_ms = (
        _int(str(timeout_value), "scoring timeout (ms)") if timeout_value is not None else DEFAULT_TIMEOUT_MS
    )
    body_value = _first(flags, env, "max_body_bytes", "PREBAKE_MAX_BODY_BYTES")
    max_body = (
        _int(str(body_value), "max body bytes", minimum=1) if body_value is not None else DEFAULT_MAX_BODY
    )

    cors = _first(flags, env, "cors_origins", "AML_CORS_ORIGINS") or ""
    if isinstance(cors, str):
        cors = tuple(origin.strip() for origin in cors.split(",") if origin.strip())

    log_format = str(_first(flags, env, "log_format", "PREBAKE_LOG_FORMAT") or "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"log format must be text or json, got {log_format!r}")
    device = str(_first(flags, env, "device", "PREBAKE_DEVICE") or "auto").lower()
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    debug_value = flags.get("debug")
    debug = (
        bool(debug_value)
        if debug_value is not None
        else env.get("PREBAKE_DEBUG", "").lower() in ("1", "true")
    )
    source = _first(flags, env, "source_dir", "AZUREML_SOURCE_DIRECTORY")
    grace_value = _first(flags, env, "graceful_timeout", "PREBAKE_GRACEFUL_TIMEOUT")

    from prebake.server.auth import read_keys

    api_keys = read_keys(
        env.get("PREBAKE_API_KEY"), _first(flags, env, "api_key_file", "PREBAKE_API_KEY_FILE")
    )
    concurrency = _first(flags, env, "limit_concurrency", "PREBAKE_LIMIT_CONCURRENCY")
    memory = _first(flags, env, "max_worker_memory", "PREBAKE_MAX_WORKER_MEMORY")
    header_timeout = _first(flags, env, "header_timeout", "PREBAKE_HEADER_TIMEOUT_S")

    return ServeConfig(
        models=models,
        model_name=_first(flags, env, "model_name", "PREBAKE_MODEL_NAME"),
        model_repository=repository,
        entry_script=entry_script,
        model_dir=model_dir,
        app_root=app_root,
        source_dir=(app_root / source) if source else None,
        host=str(_first(flags, env, "host", "PREBAKE_HOST") or "0.0.0.0"),
        port=port,
        grpc_port=grpc_port,
        workers=workers,
        threads=threads,
        timeout_ms=timeout_ms,
        max_body_bytes=max_body,
        cors_origins=tuple(cors),
        debug=debug,
        log_format=log_format,  # type: ignore[arg-type]
        log_level=str(_first(flags, env, "log_level", "AZUREML_LOG_LEVEL") or "info").lower(),
        access_log=flags.get("access_log") is not False,
        device=device,  # type: ignore[arg-type]
        graceful_timeout_s=float(grace_value) if grace_value is not None else 30.0,
        health_route=str(env.get("AIP_HEALTH_ROUTE") or "/health"),
        predict_route=env.get("AIP_PREDICT_ROUTE") or None,
        api_keys=api_keys,
        allow_pickle=_flag(flags.get("allow_pickle"), env.get("PREBAKE_ALLOW_PICKLE")),
        handler_scripts=_flag(flags.get("handler_scripts"), env.get("PREBAKE_HANDLER_SCRIPTS") or "1"),
        max_worker_memory=parse_bytes(str(memory), "max worker memory") if memory is not None else None,
        limit_concurrency=_int(str(concurrency), "connection limit", minimum=1)
        if concurrency is not None
        else None,
        header_timeout_s=_seconds(header_timeout, "header timeout") if header_timeout is not None else 60.0,
    )


def _seconds(value: Any, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise ConfigError(f"{what} must be above 0 seconds, got {value!r}")
    return seconds
