"""SageMaker's contract for a bring-your-own inference container, with the real server process.

"Use Your Own Inference Code with Hosting Services" (docs.aws.amazon.com/sagemaker/latest/dg/
your-algorithms-inference-code.html): SageMaker runs the image as `docker run IMAGE serve`, unpacks the
model into /opt/ml/model, sends GET /ping and POST /invocations to port 8080 (or SAGEMAKER_BIND_TO_PORT),
and a training job runs `IMAGE train`. The SageMaker inference toolkit (github.com/aws/
sagemaker-inference-toolkit, environment.py) reads SAGEMAKER_PROGRAM, SAGEMAKER_SUBMIT_DIRECTORY,
SAGEMAKER_MODEL_SERVER_TIMEOUT (seconds) and SAGEMAKER_MODEL_SERVER_WORKERS; the SageMaker Python SDK's
`SKLearnModel(entry_point="inference.py", source_dir=...)` sets SAGEMAKER_PROGRAM=inference.py and
SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from prebake.config import load_config
from prebake.errors import ConfigError

from .conftest import ANSWERS, ROWS, free_port, platform_server

HANDLER = textwrap.dedent(
    """
    import os
    import time

    import joblib


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def predict_fn(data, model):
        if data[0][0] == 99:
            time.sleep(5)  # past SAGEMAKER_MODEL_SERVER_TIMEOUT
        return {"labels": model.predict(data).tolist(), "handler": os.path.basename(__file__)}
    """
)


@pytest.fixture
def model_dir(tmp_path: Path, models: dict[str, Path]) -> Path:
    """/opt/ml/model as SageMaker leaves it: the unpacked model.tar.gz."""
    folder = tmp_path / "opt-ml-model"
    folder.mkdir()
    shutil.copy(models["one"], folder / "model.joblib")
    return folder


def test_serve_argument_serves_the_model_on_the_bind_port(model_dir: Path) -> None:
    """`prebake serve serve` (what `docker run IMAGE serve` becomes) answers /ping and /invocations in JSON and CSV on SAGEMAKER_BIND_TO_PORT."""
    port = free_port()
    with platform_server(
        ["serve", str(model_dir)], env={"SAGEMAKER_BIND_TO_PORT": str(port)}, port=port, ready_path="/ping"
    ) as server:
        ping = httpx.get(f"{server.url}/ping")
        as_json = httpx.post(f"{server.url}/invocations", json=ROWS)
        as_csv = httpx.post(
            f"{server.url}/invocations",
            content="0,0\n2,2\n",
            headers={"content-type": "text/csv", "accept": "text/csv"},
        )
    assert ping.status_code == 200
    assert as_json.json() == ANSWERS["one"]
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.split() == [str(v) for v in ANSWERS["one"]]


def test_serve_mode_defaults_to_opt_ml_model_and_port_8080() -> None:
    """With the argument `serve` and nothing named, the model is /opt/ml/model and the port 8080; SAGEMAKER_BIND_TO_PORT moves it."""
    if not Path("/opt/ml/model").exists():
        with pytest.raises(ConfigError, match="/opt/ml/model"):
            load_config(sagemaker=True, env={})
        config = load_config(models=["x"], sagemaker=True, env={})
    else:
        config = load_config(sagemaker=True, env={})
        assert config.models == (Path("/opt/ml/model"),)
    assert config.port == 8080
    assert load_config(models=["x"], sagemaker=True, env={"SAGEMAKER_BIND_TO_PORT": "9000"}).port == 9000
    assert load_config(models=["x"], env={}).port == 5001  # outside SageMaker, prebake's own default


def test_train_argument_exits_2_with_one_line() -> None:
    """`IMAGE train` (a SageMaker training job) exits 2 with one line saying the image is inference only."""
    result = subprocess.run(
        [sys.executable, "-m", "prebake", "serve", "train"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "inference" in lines[0] and "train" in lines[0]


def test_model_server_timeout_and_workers_are_honoured(tmp_path: Path, model_dir: Path) -> None:
    """SAGEMAKER_MODEL_SERVER_TIMEOUT=1 answers a 5-second predict with 504; SAGEMAKER_MODEL_SERVER_WORKERS=2 starts two workers."""
    code = model_dir / "code"
    code.mkdir()
    (code / "inference.py").write_text(HANDLER)
    port = free_port()
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "1",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
    }
    with platform_server(["serve", str(model_dir)], env=env, port=port, ready_path="/ping") as server:
        slow = httpx.post(f"{server.url}/invocations", json=[[99, 0]], timeout=30)
        fast = httpx.post(f"{server.url}/invocations", json=ROWS, timeout=30)
        logs = server.logs()
    assert slow.status_code == 504
    assert fast.json()["labels"] == ANSWERS["one"]
    assert "with 2 worker(s)" in logs


def test_sagemaker_program_names_a_script_in_the_submit_directory(tmp_path: Path, model_dir: Path) -> None:
    """SAGEMAKER_PROGRAM + SAGEMAKER_SUBMIT_DIRECTORY (a folder outside the model) run that script's model_fn and predict_fn."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "my_handler.py").write_text(HANDLER)
    port = free_port()
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_PROGRAM": "my_handler.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": str(source),
    }
    with platform_server(["serve", str(model_dir)], env=env, port=port, ready_path="/ping") as server:
        answer = httpx.post(f"{server.url}/invocations", json=ROWS).json()
    assert answer == {"labels": ANSWERS["one"], "handler": "my_handler.py"}


def test_sdk_layout_code_folder_of_the_model(tmp_path: Path, model_dir: Path) -> None:
    """As the SageMaker SDK repacks SKLearnModel(entry_point, source_dir): the script in /opt/ml/model/code, SAGEMAKER_SUBMIT_DIRECTORY naming it."""
    (model_dir / "code").mkdir()
    (model_dir / "code" / "serve_me.py").write_text(HANDLER)
    port = free_port()
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_PROGRAM": "serve_me.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": str(model_dir / "code"),
    }
    with platform_server(["serve", str(model_dir)], env=env, port=port, ready_path="/ping") as server:
        answer = httpx.post(f"{server.url}/invocations", json=ROWS).json()
    assert answer == {"labels": ANSWERS["one"], "handler": "serve_me.py"}


def test_missing_program_is_a_clear_exit_2(tmp_path: Path, model_dir: Path) -> None:
    """A SAGEMAKER_PROGRAM that is not in SAGEMAKER_SUBMIT_DIRECTORY exits 2 naming both."""
    with pytest.raises(ConfigError, match="nope.py.*SAGEMAKER_SUBMIT_DIRECTORY"):
        load_config(
            models=[model_dir],
            env={"SAGEMAKER_PROGRAM": "nope.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(tmp_path)},
        )


def test_entry_script_with_sagemaker_handlers_runs_as_sagemaker_script(
    tmp_path: Path, model_dir: Path
) -> None:
    """--entry-script code/inference.py with model_fn/predict_fn (no init/run) serves through SageMaker's handlers, its model folder found from SageMaker's layout."""
    (model_dir / "code").mkdir()
    script = model_dir / "code" / "inference.py"
    script.write_text(HANDLER)
    port = free_port()
    with platform_server(
        ["--entry-script", str(script)], env={"PREBAKE_PORT": str(port)}, port=port, ready_path="/ping"
    ) as server:
        answer = httpx.post(f"{server.url}/invocations", json=ROWS).json()
    assert answer == {"labels": ANSWERS["one"], "handler": "inference.py"}


def test_submit_directory_as_a_storage_uri_of_a_sourcedir_tarball(tmp_path: Path, model_dir: Path) -> None:
    """SAGEMAKER_SUBMIT_DIRECTORY as a URI of sourcedir.tar.gz (as older SageMaker SDKs upload it) is fetched and unpacked at start, and its SAGEMAKER_PROGRAM runs."""
    import io
    import tarfile

    from tests.storage.stores import Web

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = HANDLER.encode()
        info = tarfile.TarInfo("remote_handler.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    store = Web(tmp_path)
    try:
        store.put("code/sourcedir.tar.gz", archive.getvalue())
        port = free_port()
        env = {
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SAGEMAKER_PROGRAM": "remote_handler.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": store.uri("code/sourcedir.tar.gz"),
            "PREBAKE_CACHE_DIR": str(tmp_path / "cache"),
        }
        with platform_server(["serve", str(model_dir)], env=env, port=port, ready_path="/ping") as server:
            answer = httpx.post(f"{server.url}/invocations", json=ROWS).json()
    finally:
        store.stop()
    assert answer == {"labels": ANSWERS["one"], "handler": "remote_handler.py"}


def test_handler_script_model_of_a_format_prebake_does_not_know(tmp_path: Path) -> None:
    """A model folder holding only a file of the script's own format serves: model_fn loads it, nothing is discovered."""
    model = tmp_path / "custom-model"
    (model / "code").mkdir(parents=True)
    (model / "weights.custom").write_text('{"offset": 10}')
    (model / "code" / "inference.py").write_text(
        textwrap.dedent(
            """
            import json, os

            def model_fn(model_dir):
                return json.load(open(os.path.join(model_dir, "weights.custom")))

            def predict_fn(data, model):
                return [row[0] + model["offset"] for row in data.tolist()]
            """
        )
    )
    port = free_port()
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": str(model / "code"),
    }
    with platform_server(["serve", str(model)], env=env, port=port, ready_path="/ping") as server:
        answer = httpx.post(f"{server.url}/invocations", json=[[1], [2]]).json()
    assert answer == [11, 12]


def test_entry_script_of_neither_kind_says_how_to_run_each(tmp_path: Path) -> None:
    """A script with neither init/run nor SageMaker handlers fails at start (exit 3) with a message naming both contracts and how to run a SageMaker one."""
    script = tmp_path / "helpers.py"
    script.write_text("def load(path):\n    return path\n")
    result = subprocess.run(
        [sys.executable, "-m", "prebake", "serve", "--entry-script", str(script), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert "init()" in result.stderr and "model_fn()" in result.stderr and "--entry-script" in result.stderr
