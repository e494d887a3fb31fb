"""Entry-script servers as azmlinfsrv users expect them (issue 12, item 5), on real server processes.

- AML_APP_ROOT unset: azmlinfsrv 1.5.1 uses the current directory and exports it
  (azureml_inference_server_http/amlserver.py, merge_configuration:
  ``os.environ.setdefault(ENV_AML_APP_ROOT, os.getcwd())``), so a swagger2.json beside score.py is
  served when testing locally and a script opening files through AML_APP_ROOT finds them. prebake used
  /var/azureml-app. The images set AML_APP_ROOT themselves (Containerfile.in: /var/prebake).
- An unknown path: azmlinfsrv answers ``{"message": ...}`` (server/create_app.py, handle_404_error:
  ``{"message": ex.description}``), which Azure clients read; prebake answered ``{"error": ...}``.
- An import or init() failure printed its traceback twice (the runtime's log line and the worker's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess

from ..peers import AzmlinfsrvProcess

FIXTURES = Path(__file__).parents[1] / "fixtures" / "scripts"
APP_ROOT_SCRIPT = """
import json, os

def init():
    pass

def run(data):
    root = os.environ["AML_APP_ROOT"]
    with open(os.path.join(root, "data.txt")) as f:
        return {"root": root, "data": f.read()}
"""
USER_SWAGGER = {"swagger": "2.0", "info": {"title": "the user's own", "version": "7"}, "paths": {}}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("AML_APP_ROOT", "AZUREML_ENTRY_SCRIPT")}


def _app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "score.py").write_text(APP_ROOT_SCRIPT)
    (folder / "data.txt").write_text("beside score.py")
    (folder / "swagger2.json").write_text(json.dumps(USER_SWAGGER))
    return folder


def _observe(server: ServerProcess) -> tuple[object, object]:
    with httpx.Client(timeout=30) as client:
        scored = client.post(server.url + "/score", content=b"{}").json()
        swagger = client.get(server.url + "/swagger.json").json()
    return scored, swagger


def test_aml_app_root_defaults_to_the_working_directory(tmp_path: Path) -> None:
    """With AML_APP_ROOT unset, run from the script's folder: run() sees AML_APP_ROOT as that folder (absolute) and reads a file through it, and GET /swagger.json serves the swagger2.json beside score.py."""
    folder = _app(tmp_path)
    server = ServerProcess(["--entry-script", "score.py"], ready_path="/", cwd=folder)
    server.env = _env()
    with server:
        scored, swagger = _observe(server)
    assert scored == {"root": str(folder), "data": "beside score.py"}
    assert swagger == USER_SWAGGER


def test_aml_app_root_default_is_azmlinfsrvs(tmp_path: Path) -> None:
    """azmlinfsrv 1.5.1 under the same conditions gives the same AML_APP_ROOT, file and swagger (skipped where the reference cannot be installed)."""
    folder = _app(tmp_path)
    reference = AzmlinfsrvProcess(folder / "score.py", wait_ready=False)
    reference.cwd = folder
    reference.env = {k: v for k, v in reference.env.items() if k != "AML_APP_ROOT"}
    reference.start()
    try:
        reference.wait_until_ready()
        expected = _observe(reference)
    finally:
        reference.stop()
    ours = ServerProcess(["--entry-script", "score.py"], ready_path="/", cwd=folder)
    ours.env = _env()
    with ours:
        assert _observe(ours) == expected


@pytest.mark.parametrize("script", ["init_fails.py", "import_fails.py"])
def test_a_failed_start_prints_the_scripts_traceback_once(tmp_path: Path, script: str) -> None:
    """An init() or import that raises stops the start (exit 3) with the script's traceback in the log once, not twice."""
    path = FIXTURES / script
    if script == "import_fails.py":
        path = tmp_path / script
        path.write_text(
            'raise RuntimeError("model file missing")\n\ndef init():\n    pass\n\ndef run(data):\n    return data\n'
        )
    server = ServerProcess(["--entry-script", str(path)], ready_path="/", wait_ready=False)
    server.start()
    assert server.process is not None and server.process.wait(60) == 3
    server.stop()
    logs = server.logs()
    assert logs.count('raise RuntimeError("model file missing")') == 1, logs
    assert "model file missing" in logs


def test_an_unknown_path_answers_as_azure_clients_read() -> None:
    """On an entry-script server, an unknown path is a 404 whose JSON carries "message", as azmlinfsrv's (and this server's 405) do."""
    with ServerProcess(["--entry-script", str(FIXTURES / "echo.py")], ready_path="/") as server:
        answer = httpx.get(server.url + "/nope", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["message"]
