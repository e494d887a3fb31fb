"""python -m prebake.extend.launch: prepares the layer, then runs the command with it importable; stops at once on a conflict."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .wheels import make_wheel


def launch(app: Path, requirements: str, *command: str) -> subprocess.CompletedProcess[str]:
    (app / "requirements.txt").write_text(requirements)
    env = dict(os.environ, AML_APP_ROOT=str(app), PREBAKE_EXTRA_REQUIREMENTS="requirements.txt",
               PREBAKE_WHEELHOUSE="wheels", PREBAKE_CACHE_DIR=str(app / "cache"),
               PREBAKE_PINS_FILE=str(app / "pins.lock"))  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "prebake.extend.launch", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_command_sees_the_layer(tmp_path: Path) -> None:
    """The launched command imports the extra package installed into the layer."""
    make_wheel(tmp_path / "wheels", "tinylaunch", "0.3.0")
    (tmp_path / "pins.lock").write_text("")
    result = launch(
        tmp_path,
        "tinylaunch==0.3.0\n",
        sys.executable,
        "-c",
        "import tinylaunch, json; print(tinylaunch.VERSION)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.3.0"


def test_conflict_exits_2_at_once(tmp_path: Path) -> None:
    """A requirement against the pins ends with exit 2 and one line naming both versions, the command never runs."""
    (tmp_path / "wheels").mkdir()
    (tmp_path / "pins.lock").write_text("orjson==3.10.0\n")
    started = time.monotonic()
    result = launch(tmp_path, "orjson<3\n", sys.executable, "-c", "print('ran')")
    assert result.returncode == 2 and time.monotonic() - started < 10
    assert "ran" not in result.stdout
    assert "orjson<3" in result.stderr and "orjson==3.10.0" in result.stderr
