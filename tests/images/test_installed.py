"""Building from an installed prebake, as a user who ran `pip install prebake` does: no checkout anywhere.

prebake's wheel is installed into a fresh venv; every command runs from that venv's `prebake`, in a folder
outside the checkout, with the checkout off sys.path. build puts the installed prebake (packed back into a
wheel from its RECORD) into the image; extend and check work on that image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prebake.images.engine import Engine

from .conftest import CA, Builds

pytestmark = [pytest.mark.images, pytest.mark.slow]

MINIMAL = "minimal-debian12-py311-cpu-inference"
REGISTRY = "localhost/prebake-installed"
EXTRA = "tabulate==0.9.0"
SCORE = """
import json

def init():
    import tabulate  # installed by the check from the requirements
    global ready
    ready = True

def run(raw):
    return {"rows": len(json.loads(raw)["data"])}
"""


@pytest.fixture(scope="module")
def installed(
    builds: Builds, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str]]]:
    """(a venv's bin folder holding an installed prebake, the environment to run it with)."""
    builds.base("podman", "debian12-py311")
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(builds.wheel)], check=True, timeout=600)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    yield venv / "bin", env
    Engine.find("podman").remove_image(f"{REGISTRY}/{MINIMAL}:latest")


def _run(bin_dir: Path, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "prebake"), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=1200, check=False)  # fmt: skip


def test_installed_prebake_is_not_the_checkout(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The venv's prebake imports from its own site-packages, so the tests below prove nothing of the checkout."""
    bin_dir, env = installed
    where = subprocess.run([str(bin_dir / "python"), "-c", "import prebake; print(prebake.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)  # fmt: skip
    assert "site-packages" in where.stdout and "/src/prebake" not in where.stdout


def test_build_extend_and_check_from_an_installed_prebake(
    installed: tuple[Path, dict[str, str]], podman: Engine, tmp_path: Path
) -> None:
    """build (the installed prebake's own wheel goes into the image), test, extend and check all work without a checkout."""
    bin_dir, env = installed
    tmp_path.chmod(0o755)
    ca = ["--ca-bundle", str(CA)] if CA else []
    built = _run(bin_dir, env, tmp_path, "build", MINIMAL, "--registry", REGISTRY, "--engine", "podman",
                 "--base", "local", *ca)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert (
        "packed the installed prebake" in built.stderr
        and "building images needs a prebake checkout" not in built.stderr
    )
    reference = f"{REGISTRY}/{MINIMAL}:latest"
    # The image carries exactly the installed prebake: the same source files, installed from a wheel.
    probe = "import prebake.images.build as m, hashlib; print(hashlib.sha256(open(m.__file__, 'rb').read()).hexdigest())"
    inside = podman.run_in(reference, "python3", "-c", probe).strip()
    local = subprocess.run([str(bin_dir / "python"), "-c", probe], capture_output=True, text=True, env=env,
                           cwd=tmp_path, check=True).stdout.strip()  # fmt: skip
    assert inside == local
    sbom = json.loads((tmp_path / "out" / "images" / MINIMAL / "sbom.json").read_text())
    prebake = next(c for c in sbom["components"] if c["name"] == "prebake")
    assert len(prebake["hashes"][0]["content"]) == 64
    tested = _run(bin_dir, env, tmp_path, "test", MINIMAL, "--registry", REGISTRY, "--engine", "podman")
    assert tested.returncode == 0, tested.stderr[-2000:]

    app = tmp_path / "app"
    (app / "wheels").mkdir(parents=True)
    (app / "score.py").write_text(SCORE)
    (app / "requirements.txt").write_text(EXTRA + "\n")
    (app / "sample.json").write_text(json.dumps({"data": [[1], [2]]}))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", EXTRA, "-d", str(app / "wheels")],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["chmod", "-R", "a+rX", str(app)], check=True)
    tag = f"localhost/prebake-test/installed-extended:{uuid.uuid4().hex[:8]}"
    extended = _run(bin_dir, env, tmp_path, "extend", MINIMAL, "--registry", REGISTRY, "-r", str(app / "requirements.txt"),
                    "--wheelhouse", str(app / "wheels"), "-t", tag, "--engine", "podman")  # fmt: skip
    try:
        assert extended.returncode == 0, extended.stderr[-3000:]
        assert "smoke test passed" in extended.stdout
    finally:
        podman.remove_image(tag)
    checked = _run(bin_dir, env, tmp_path, "check", "--image", MINIMAL, "--registry", REGISTRY, "--entry-script",
                   str(app / "score.py"), "-r", str(app / "requirements.txt"), "--wheelhouse", str(app / "wheels"),
                   "--sample", str(app / "sample.json"), "--where", "image", "--format", "json", "--engine", "podman")  # fmt: skip
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["ok"], checked.stdout + checked.stderr
    assert report["environment"].startswith(f"inside {REGISTRY}/{MINIMAL}")
