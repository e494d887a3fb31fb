"""`prebake serve` installs PREBAKE_EXTRA_REQUIREMENTS once, before the workers start, and stops on conflicts."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from prebake.testing import ServerProcess

from ..unit.extend.wheels import make_wheel

SCRIPT = """
import tinyextra


def init():
    pass


def run(data):
    return {"extra": tinyextra.VERSION}
"""


def _app(tmp_path: Path, requirements: str) -> dict[str, str]:
    (tmp_path / "score.py").write_text(SCRIPT)
    (tmp_path / "requirements.txt").write_text(requirements)
    (tmp_path / "pins.lock").write_text("tinyextra==1.0.0\n")
    make_wheel(tmp_path / "wheels", "tinyextra", "1.0.0")
    make_wheel(tmp_path / "wheels", "tinyextra", "2.0.0")
    return {
        "AML_APP_ROOT": str(tmp_path),
        "PREBAKE_EXTRA_REQUIREMENTS": "requirements.txt",
        "PREBAKE_WHEELHOUSE": "wheels",
        "PREBAKE_CACHE_DIR": str(tmp_path / "cache"),
        "PREBAKE_PINS_FILE": str(tmp_path / "pins.lock"),
    }


def test_extra_requirements_are_importable_by_the_entry_script(tmp_path: Path) -> None:
    """A score.py importing a package named only in the extra requirements serves; a restart reuses the layer."""
    env = _app(tmp_path, "tinyextra==1.0.0\n")
    for _ in range(2):
        with ServerProcess(["--entry-script", "score.py"], env=env, cwd=tmp_path) as server:
            assert httpx.post(server.url + "/score", content=b"{}").json() == {"extra": "1.0.0"}
    layers = [p for p in (tmp_path / "cache" / "layers").iterdir() if p.is_dir()]
    assert len(layers) == 1, "the second start must reuse the cached layer"


def test_requirement_conflicting_with_image_pins_stops_at_once(tmp_path: Path) -> None:
    """A requirement that would change a pinned package exits 2 within seconds, naming both versions."""
    env = _app(tmp_path, "tinyextra==2.0.0\n")
    server = ServerProcess(["--entry-script", "score.py"], env=env, cwd=tmp_path, wait_ready=False)
    started = time.monotonic()
    server.start()
    assert server.process is not None
    assert server.process.wait(60) == 2
    assert time.monotonic() - started < 30
    logs = server.logs()
    assert "2.0.0" in logs and "1.0.0" in logs
