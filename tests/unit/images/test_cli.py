"""The image commands, run as a user runs them: output formats, and named exit codes with actionable messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prebake import exits
from prebake.images.catalog import load_catalog

CATALOG = load_catalog()


def prebake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prebake", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_list_json_is_the_catalog() -> None:
    """`images list --format json` lists every catalog image with its reference and environment."""
    result = prebake("images", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [record["name"] for record in records] == CATALOG.names()
    assert all(record["environment"].startswith("prebake-") for record in records)


def test_list_markdown_is_a_table_like_the_seed() -> None:
    """The Markdown listing has the seed's columns and one row per image."""
    result = prebake("images", "list", "--format", "markdown")
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| Framework | Version | CPU/GPU | Packages |")
    assert len(lines) == 2 + len(CATALOG.images)


def test_show_lists_locked_packages() -> None:
    """`images show` names every locked package with its version."""
    result = prebake("images", "show", "xgboost-3.2.0-debian12-py311-cpu-inference", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["locked"]["xgboost-cpu"] == "3.2.0"


@pytest.mark.parametrize("command", [["images", "show"], ["build"], ["test"], ["env", "export"]])
def test_unknown_image_exits_not_found(command: list[str]) -> None:
    """Every command that takes an image name exits 4 with a suggestion for an unknown name."""
    result = prebake(*command, "sklearn-1.9.1")
    assert result.returncode == exits.NOT_FOUND, result.stderr
    assert "unknown image 'sklearn-1.9.1'" in result.stderr and "Did you mean" in result.stderr


def test_env_export_writes_the_hashed_lock(tmp_path: Path) -> None:
    """`env export` writes a requirements file that pip can install with --require-hashes."""
    target = tmp_path / "requirements.txt"
    result = prebake("env", "export", "sklearn-1.9.1-debian12-py311-cpu-inference", "-o", str(target))
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert "scikit-learn==1.9.1" in text and "--hash=sha256:" in text


def test_missing_engine_exits_engine_missing(tmp_path: Path) -> None:
    """With neither podman nor docker on PATH, build exits 5 and says how to install one."""
    env = {**os.environ, "PATH": str(tmp_path)}
    result = prebake("build", "minimal-debian12-py311-cpu-inference", env=env)
    assert result.returncode == exits.ENGINE_MISSING, result.stderr
    assert "install podman" in result.stderr.lower()


def test_run_refuses_wrong_framework_model(tmp_path: Path) -> None:
    """`prebake run` with an ONNX model on the scikit-learn image exits 2 before starting anything."""
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    result = prebake("run", "sklearn-1.9.1-debian12-py311-cpu-inference", "--model", str(model))
    assert result.returncode == exits.USAGE
    assert "does not look like a sklearn model" in result.stderr
