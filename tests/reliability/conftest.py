"""Shared pieces of the reliability suite: scripts, a bounded load generator, a figures recorder.

Long runs are marked ``slow`` and skipped unless PREBAKE_SLOW=1. Set PREBAKE_RELIABILITY_OUT to a
directory to have the tests write the figures that docs/reliability.md quotes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess

from .helpers import SCRIPTS, SLOW


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SLOW:
        return
    skip = pytest.mark.skip(reason="long run: set PREBAKE_SLOW=1 to run it")
    here = str(Path(__file__).parent)
    for item in items:
        if "slow" in item.keywords and str(item.path).startswith(here):
            item.add_marker(skip)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def work_server() -> Iterator[ServerProcess]:
    """One server running scripts/work.py, shared by a module's tests that leave it as they found it."""
    with ServerProcess(["--entry-script", str(SCRIPTS / "work.py")]) as server:
        yield server
