"""Code that a model folder brings is the operator's to allow (issue 13, item 1; issue 12, item 5).

A pickle runs code when loaded, and so does a SageMaker handler script (``code/inference.py``). The
operator allows pickles (``--allow-pickle``, PREBAKE_ALLOW_PICKLE=1) and may refuse handler scripts
(``--no-handler-scripts``, PREBAKE_HANDLER_SCRIPTS=0); a model's own ``model-settings.json`` sits beside
the code and is no more trustworthy than it, so it may only refuse, never allow. Each payload here
creates a marker file when its code runs, so "refused" means the code never ran, and the allowed
control shows the payload would have run.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from prebake.testing import ServerProcess

from .helpers import protocols_present

pytestmark = pytest.mark.skipif(not protocols_present(), reason="the no-code runtimes are not in this tree")


class _Touch:
    """Unpickling this creates the file it names: the stand-in for a pickle's hostile code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def _without_permission() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in ("PREBAKE_ALLOW_PICKLE", "PREBAKE_HANDLER_SCRIPTS")
    }


def _pickle_folder(tmp_path: Path, settings: dict[str, object]) -> tuple[Path, Path]:
    folder, marker = tmp_path / "model", tmp_path / "pickle-ran"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(pickle.dumps(_Touch(marker)))
    (folder / "model-settings.json").write_text(json.dumps({"name": "evil", **settings}))
    return folder, marker


def _start(args: list[str]) -> ServerProcess:
    server = ServerProcess(args, wait_ready=False)
    server.env = _without_permission()
    return server.start()


@pytest.mark.parametrize(
    ("settings", "flags"),
    [
        ({"allow_pickle": True}, []),
        ({"allow_pickle": True}, ["--no-allow-pickle"]),
        ({"parameters": {"allow_pickle": True}}, []),
    ],
    ids=["file allows, no flag", "file allows, --no-allow-pickle", "parameters.allow_pickle"],
)
def test_a_models_settings_file_cannot_allow_its_pickle(
    tmp_path: Path, settings: dict[str, object], flags: list[str]
) -> None:
    """allow_pickle true in the model's own settings file does not load its pickle when the operator did not allow pickles: the start fails (exit 3) naming --allow-pickle, and the pickle's code never runs."""
    folder, marker = _pickle_folder(tmp_path, settings)
    server = _start([str(folder), *flags])
    try:
        assert server.process is not None and server.process.wait(60) == 3, server.logs()
    finally:
        server.stop()
    assert not marker.exists(), "the pickle was loaded"
    assert "--allow-pickle" in server.logs() and "never allow them" in server.logs()


def test_the_operators_allow_pickle_loads_it(tmp_path: Path) -> None:
    """The control: with --allow-pickle the same folder's pickle is loaded, and its code runs (so the refusals above are real)."""
    folder, marker = _pickle_folder(tmp_path, {})
    server = _start([str(folder), "--allow-pickle"])
    try:
        assert server.process is not None
        server.process.wait(60)  # a file object has no predict(): the start fails after loading
    finally:
        server.stop()
    assert marker.exists()


def _prebake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prebake", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_without_permission(),
    )


def test_prebake_check_does_not_unpickle_without_allow_pickle(tmp_path: Path) -> None:
    """`prebake check model.joblib` refuses to unpickle the model, as `prebake serve` would, and says --allow-pickle; with --allow-pickle it loads it (its code runs)."""
    marker = tmp_path / "pickle-ran"
    model = tmp_path / "model.joblib"
    model.write_bytes(pickle.dumps(_Touch(marker)))
    refused = _prebake("check", str(model), "--where", "local")
    assert refused.returncode != 0 and "--allow-pickle" in refused.stdout, refused.stdout + refused.stderr
    assert not marker.exists(), "prebake check unpickled the model"
    _prebake("check", str(model), "--where", "local", "--allow-pickle")
    assert marker.exists()


def _handler_folder(tmp_path: Path, settings: dict[str, object] | None = None) -> tuple[Path, Path]:
    folder, marker = tmp_path / "handler", tmp_path / "script-ran"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\n"
        "def model_fn(model_dir):\n    return None\n\n"
        "def transform_fn(model, body, content_type, accept):\n    return b'ok', 'text/plain'\n"
    )
    if settings is not None:
        (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder, marker


def test_a_handler_script_says_in_the_log_that_it_runs_code(tmp_path: Path) -> None:
    """A model folder's code/inference.py is served, and the log says it is code running inside the server, naming --no-handler-scripts."""
    folder, marker = _handler_folder(tmp_path)
    server = ServerProcess([str(folder)])
    server.env = _without_permission()
    with server:
        assert marker.exists()
    assert "Python code" in server.logs() and "--no-handler-scripts" in server.logs()


def test_a_models_settings_file_can_refuse_its_handler_script(tmp_path: Path) -> None:
    """ "handler_scripts": false in the folder's own settings file refuses its script (exit 3): narrowing is the file's right."""
    folder, marker = _handler_folder(tmp_path, {"handler_scripts": False})
    server = _start([str(folder)])
    try:
        assert server.process is not None and server.process.wait(60) == 3, server.logs()
    finally:
        server.stop()
    assert not marker.exists()
    assert "is a handler script" in server.logs() and "refuses handler scripts" in server.logs()


@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--no-handler-scripts"], {}), ([], {"PREBAKE_HANDLER_SCRIPTS": "0"})],
    ids=["--no-handler-scripts", "PREBAKE_HANDLER_SCRIPTS=0"],
)
def test_the_operator_can_refuse_handler_scripts(
    tmp_path: Path, flags: list[str], env: dict[str, str]
) -> None:
    """--no-handler-scripts (or PREBAKE_HANDLER_SCRIPTS=0) refuses a model folder's handler script: the start fails (exit 3) naming the flag, and the script never runs."""
    folder, marker = _handler_folder(tmp_path)
    server = ServerProcess([str(folder), *flags], wait_ready=False)
    server.env = {**_without_permission(), **env}
    server.start()
    try:
        assert server.process is not None and server.process.wait(60) == 3, server.logs()
    finally:
        server.stop()
    assert not marker.exists()
    assert "--no-handler-scripts" in server.logs()
