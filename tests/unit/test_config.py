"""Serve settings: flags beat environment beats defaults, peers' variable names work, bad values explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from prebake.config import DEFAULT_PORT, load_config
from prebake.errors import ConfigError


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "score.py"
    path.write_text("def init(): pass\ndef run(data): return data\n")
    return path


def test_defaults_match_azmlinfsrv(script: Path) -> None:
    """Port 5001, one worker, one hour scoring timeout, 100 MB bodies, like the reference server."""
    config = load_config(entry_script=script, env={})
    assert (config.port, config.workers, config.timeout_ms) == (DEFAULT_PORT, 1, 3_600_000)
    assert config.max_body_bytes == 100 * 1024 * 1024


def test_azure_environment_variables_are_honoured(script: Path, tmp_path: Path) -> None:
    """AZUREML_ENTRY_SCRIPT relative to AML_APP_ROOT, WORKER_COUNT, SCORING_TIMEOUT_MS and AML_CORS_ORIGINS."""
    env = {
        "AML_APP_ROOT": str(tmp_path),
        "AZUREML_ENTRY_SCRIPT": "score.py",
        "AZUREML_MODEL_DIR": str(tmp_path),
        "WORKER_COUNT": "3",
        "SCORING_TIMEOUT_MS": "2500",
        "AML_CORS_ORIGINS": "https://a.example, https://b.example",
        "AZUREML_SOURCE_DIRECTORY": "src",
    }
    config = load_config(env=env)
    assert config.entry_script == script
    assert (config.workers, config.timeout_ms) == (3, 2500)
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert config.source_dir == tmp_path / "src"
    assert config.model_dir == tmp_path


def test_flags_win_over_environment(script: Path) -> None:
    """A flag given on the command line overrides the environment variable of the same setting."""
    config = load_config(entry_script=script, workers=2, port=7000, env={"WORKER_COUNT": "5"})
    assert (config.workers, config.port) == (2, 7000)


def test_cloud_port_variables(script: Path) -> None:
    """AIP_HTTP_PORT (Vertex AI) and SAGEMAKER_BIND_TO_PORT set the port when no flag does."""
    assert load_config(entry_script=script, env={"AIP_HTTP_PORT": "8081"}).port == 8081
    assert load_config(entry_script=script, env={"SAGEMAKER_BIND_TO_PORT": "8082"}).port == 8082


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({}, {}, "nothing to serve"),
        (
            {"entry_script": "missing.py"},
            {"AML_APP_ROOT": "/nonexistent"},
            "entry script 'missing.py' not found",
        ),
        ({"models": ["m.joblib"], "workers": 0}, {}, "workers must be at least 1"),
        ({"models": ["m.joblib"]}, {"WORKER_COUNT": "many"}, "workers must be a whole number"),
        ({"models": ["m.joblib"], "log_format": "xml"}, {}, "log format must be one of text, json"),
        ({"models": ["m.joblib"], "port": 70000}, {}, "ports must be between"),
        ({"model_dir": "/nonexistent/model"}, {}, "does not exist"),
    ],
)
def test_bad_settings_explain_themselves(flags: dict, env: dict, message: str) -> None:
    """Each bad setting raises ConfigError with a message that says what to fix."""
    with pytest.raises(ConfigError, match=message):
        load_config(**flags, env=env)


def test_sagemaker_server_variables(tmp_path: Path) -> None:
    """SAGEMAKER_MODEL_SERVER_TIMEOUT (seconds) sets the scoring timeout and SAGEMAKER_MODEL_SERVER_WORKERS the workers, below prebake's and azmlinfsrv's own."""
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "20", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"}
    config = load_config(models=["m"], env=env)
    assert (config.timeout_ms, config.workers) == (20_000, 3)
    both = load_config(models=["m"], env={**env, "SCORING_TIMEOUT_MS": "500", "WORKER_COUNT": "2"})
    assert (both.timeout_ms, both.workers) == (500, 2)


def test_script_kind_reads_the_functions_without_running_them(tmp_path: Path) -> None:
    """init/run is an Azure script, model_fn/predict_fn without them a SageMaker one; neither is unknown; nothing is executed."""
    from prebake.config import script_kind

    cases = {
        "azure.py": "raise SystemExit\ndef init(): pass\ndef run(x): return x\n",
        "sagemaker.py": "raise SystemExit\ndef model_fn(d): pass\ndef predict_fn(x, m): return x\n",
        "other.py": "x = 1\n",
    }
    kinds = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        kinds[name] = script_kind(tmp_path / name)
    assert kinds == {"azure.py": "azure", "sagemaker.py": "sagemaker", "other.py": "unknown"}


def test_multi_model_needs_no_model(tmp_path: Path) -> None:
    """SAGEMAKER_MULTI_MODEL=true starts with nothing to serve: SageMaker loads models later."""
    config = load_config(sagemaker=True, env={"SAGEMAKER_MULTI_MODEL": "true"})
    assert config.multi_model and config.models == () and config.port == 8080
