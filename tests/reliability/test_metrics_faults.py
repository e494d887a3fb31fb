"""Metrics when their snapshots cannot be written (issue 13, item 9), on a real two-worker server.

Each worker publishes its numbers to a shared directory for the others to add to a scrape. When that
directory cannot be written (a full disk, a read-only or vanished directory), the scrapes used to
alternate between one worker's share and the other's, and nothing said why. Now the worker says so
once in its log and publishes to memory (/dev/shm) instead, so every scrape counts every request.
The directory is made unwritable by replacing it with a file: the same OSError a full disk gives, and
one that root (this test's user) cannot write past.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess

from .helpers import SCRIPTS, wait_for

WARNING = "cannot write this worker's snapshot"
MEMORY_DIR = Path("/dev/shm")  # where the server publishes instead (prebake.server.metrics.MEMORY_DIR)


def _score_requests(text: str) -> int:
    counts = re.findall(
        r'^prebake_requests_total\{route="/score",method="POST",status="200".*\} (\d+)$', text, re.M
    )
    return sum(int(count) for count in counts)


@pytest.mark.skipif(
    not MEMORY_DIR.is_dir(), reason="no /dev/shm on this machine to publish snapshots in memory"
)
def test_unwritable_snapshots_keep_the_totals_right_and_say_so_once(tmp_path: Path) -> None:
    """With the snapshot directory unwritable, every scrape of either worker counts all 60 requests, each worker logs the problem once, and nothing is left in /dev/shm after the server stops."""
    args = ["--entry-script", str(SCRIPTS / "work.py"), "--workers", "2"]
    with ServerProcess(args, env={"TMPDIR": str(tmp_path)}) as server:
        assert wait_for(lambda: len(server.worker_pids()) == 2, 10)
        # The workers' shared directory (snapshots, and the server's other shared state).
        (directory,) = [path for path in tmp_path.glob("prebake-*") if path.is_dir()]
        shutil.rmtree(directory)
        directory.write_text("no longer a directory")
        pids: set[int] = set()
        sent = 0
        while sent < 60 or len(pids) < 2:  # both workers must hold part of the count
            assert sent < 600, f"one worker answered every request: {pids}"
            with httpx.Client(timeout=10) as client:  # a new connection each: the kernel picks the worker
                answer = client.post(server.url + "/score", content=b"{}")
            assert answer.status_code == 200
            pids.add(answer.json()["pid"])
            sent += 1
        time.sleep(2.5)  # snapshots are published about once a second
        seen = []
        for _ in range(16):
            with httpx.Client(timeout=10) as client:
                seen.append(_score_requests(client.get(server.url + "/metrics").text))
        assert seen == [sent] * 16, f"{sent} requests sent; scrapes counted {seen}"
        warnings = [line for line in server.logs().splitlines() if WARNING in line]
        assert len(warnings) == 2 and str(directory) in warnings[0], warnings
    assert not (MEMORY_DIR / directory.name).exists(), "the in-memory snapshots were left behind"
