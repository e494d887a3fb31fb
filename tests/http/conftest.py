from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess

CORE_SCRIPTS = Path(__file__).parent / "core_scripts"


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ServerProcess]:
    """One server with the echo entry script, shared by a module's read-only tests."""
    with ServerProcess(["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--timeout-ms", "1500"]) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http
