"""Worker processes: several share one port, dead ones are replaced, SIGTERM drains, metrics add up."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import httpx

from prebake.testing import ServerProcess

from .conftest import CORE_SCRIPTS

ECHO = str(CORE_SCRIPTS / "echo.py")


def _pids_answering(server: ServerProcess, client: httpx.Client, tries: int = 60) -> set[int]:
    # Fresh connections so the kernel spreads them over the workers.
    seen = set()
    for _ in range(tries):
        with httpx.Client(timeout=10) as fresh:
            seen.add(fresh.post(server.url + "/score", content=b"{}").json()["pid"])
    return seen


def test_workers_share_one_port_and_init_once_each(client: httpx.Client) -> None:
    """--workers 2 starts two processes, each calling init() once, both answering on the same port."""
    with ServerProcess(["--entry-script", ECHO, "--workers", "2"]) as server:
        time.sleep(0.5)
        workers = server.worker_pids()
        assert len(workers) == 2
        assert _pids_answering(server, client) == set(workers)
        assert server.logs().count("model 'score' ready") == 2


def test_worker_count_env_is_honoured(client: httpx.Client) -> None:
    """WORKER_COUNT, azmlinfsrv's variable, sets the number of workers."""
    with ServerProcess(["--entry-script", ECHO], env={"WORKER_COUNT": "2"}) as server:
        time.sleep(0.5)
        assert len(server.worker_pids()) == 2


def test_killed_worker_is_replaced_and_server_keeps_answering(client: httpx.Client) -> None:
    """kill -9 of a worker: the supervisor starts a new one and requests keep succeeding."""
    with ServerProcess(["--entry-script", ECHO, "--workers", "2"]) as server:
        time.sleep(0.5)
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pids = server.worker_pids()
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker not replaced: {server.worker_pids()}\n{server.logs()}")
        server.wait_until_ready()
        for _ in range(10):
            assert client.post(server.url + "/score", content=b"{}").status_code == 200


def test_sigterm_drains_in_flight_requests_and_exits_zero() -> None:
    """SIGTERM while a request runs: that request completes 200, then the server exits 0."""
    server = ServerProcess(["--entry-script", ECHO]).start()
    results: list[int] = []
    slow = threading.Thread(
        target=lambda: results.append(
            httpx.post(server.url + "/score", content=b'{"sleep": 1.5}', timeout=30).status_code
        )
    )
    slow.start()
    time.sleep(0.4)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(30)
    slow.join()
    assert results == [200]
    assert code == 0


def test_metrics_add_up_across_workers(client: httpx.Client) -> None:
    """/metrics counts the requests of every worker, whichever worker answers the scrape."""
    with ServerProcess(["--entry-script", ECHO, "--workers", "2"]) as server:
        for _ in range(30):
            with httpx.Client(timeout=10) as fresh:
                fresh.post(server.url + "/score", content=b"{}")
        deadline = time.monotonic() + 10  # workers publish their numbers about once a second
        while True:
            text = client.get(server.url + "/metrics").text
            found = re.search(
                r'prebake_requests_total\{route="/score",method="POST",status="200",model="score"\} (\d+)',
                text,
            )
            assert found is not None, text
            if int(found.group(1)) >= 30 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert int(found.group(1)) == 30
        assert "prebake_request_duration_seconds_bucket" in text
        assert "prebake_run_duration_seconds_count" in text
        assert "prebake_requests_in_flight" in text


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    """kill -9 of the supervisor takes its workers down too, so no orphan keeps serving the port."""
    server = ServerProcess(["--entry-script", ECHO, "--workers", "2"]).start()
    time.sleep(0.5)
    workers = server.worker_pids()
    assert len(workers) == 2
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait(10)  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid)]
    assert alive == []


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().split()[2]
    except OSError:
        return "gone"
