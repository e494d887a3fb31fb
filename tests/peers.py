"""Peer servers for comparison tests: a venv with the reference Azure ML server, and a process running it.

The venv lives at ``.cache/peers/azmlinfsrv`` under the repository root, is created on first use and reused
after. Where it cannot be installed (no network, no PyPI), tests that need it skip saying why; with
``CI=true`` they fail instead, because CI must run the comparison.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from prebake.testing import ServerProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
AZMLINFSRV_VERSION = "1.5.1"
AZMLINFSRV_VENV = REPO_ROOT / ".cache" / "peers" / "azmlinfsrv"
# What score.py files import under the reference, installed beside it.
AZMLINFSRV_PACKAGES = [
    f"azureml-inference-server-http=={AZMLINFSRV_VERSION}",
    "inference-schema",
    "pandas",
    "numpy",
    "scikit-learn",
]

# azureml.contrib.services as Azure's images provide it: the reference's own modules under the old name, so
# @rawhttp sets the flag the reference reads.
_SHIM = {
    "aml_request.py": "from azureml_inference_server_http.api.aml_request import *  # noqa: F403\n"
    "from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp  # noqa: F401\n",
    "aml_response.py": "from azureml_inference_server_http.api.aml_response import AMLResponse  # noqa: F401\n",
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"azmlinfsrv is required in CI: {reason}")
    pytest.skip(f"azmlinfsrv {AZMLINFSRV_VERSION} cannot be installed here: {reason}")


def azmlinfsrv_venv() -> Path:
    """The reference server's venv, created if missing; skips (fails under CI=true) if it cannot be."""
    executable = AZMLINFSRV_VENV / "bin" / "azmlinfsrv"
    marker = AZMLINFSRV_VENV / ".complete"
    if not marker.exists():
        AZMLINFSRV_VENV.parent.mkdir(parents=True, exist_ok=True)
        steps = [
            [sys.executable, "-m", "venv", str(AZMLINFSRV_VENV)],
            [str(AZMLINFSRV_VENV / "bin" / "pip"), "install", "-q", *AZMLINFSRV_PACKAGES],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                _unavailable(f"{' '.join(step[:3])}: {exc}")
            if done.returncode != 0:
                _unavailable(f"{' '.join(step[:3])} failed: {done.stderr.strip()[-500:]}")
        marker.write_text(" ".join(AZMLINFSRV_PACKAGES) + "\n")
    if not executable.exists():
        _unavailable(f"{executable} is missing after installation")
    shim = AZMLINFSRV_VENV / "shim" / "azureml" / "contrib" / "services"
    shim.mkdir(parents=True, exist_ok=True)
    for name, text in _SHIM.items():
        (shim / name).write_text(text)
    return AZMLINFSRV_VENV


class AzmlinfsrvProcess(ServerProcess):
    """``azmlinfsrv --entry_script X --port P`` from the peer venv, ready once ``GET /`` answers 200.

    gunicorn runs in its own process group, stopped as a whole, so no worker outlives a test.
    """

    def __init__(
        self,
        entry_script: Path,
        *,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        wait_ready: bool = True,
    ) -> None:
        super().__init__(
            [], ready_path="/", start_timeout=start_timeout, wait_ready=wait_ready, new_session=True
        )
        self.venv = azmlinfsrv_venv()
        self.args = [
            str(self.venv / "bin" / "azmlinfsrv"),
            "--entry_script",
            str(entry_script),
            "--port",
            str(self.port),
        ]
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.env = {**base, "PYTHONPATH": str(self.venv / "shim"), **(env or {})}
