"""Faults a worker must survive (issue 13): SIGTERM with gRPC calls in flight, a frozen worker, an init()
that never returns, a worker at its memory limit. Real server processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from prebake.testing import ServerProcess, free_port

from .helpers import SCRIPTS, record, wait_for

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is a test-only extra")


def _slow_model(folder: Path) -> Path:
    import sys

    sys.path.insert(0, str(SCRIPTS))
    try:
        from slowmodel import SlowModel  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SCRIPTS))
    path = folder / "slow.joblib"
    joblib.dump(SlowModel(), path)
    return path


def test_sigterm_drains_grpc_calls_in_flight(tmp_path: Path) -> None:
    """SIGTERM during a 3 s gRPC call lets it finish (it was cut with UNAVAILABLE after 0.8 s) and the
    server exits 0 once drained."""
    grpc_port = free_port()
    args = ["--allow-pickle", str(_slow_model(tmp_path)), "--grpc-port", str(grpc_port)]
    with ServerProcess(args, env={"PYTHONPATH": str(SCRIPTS)}) as server:
        results: list[object] = []

        def call() -> None:
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            try:
                tensor = grpcclient.InferInput("input-0", [1, 2], "FP64")
                tensor.set_data_from_numpy(np.array([[3.0, 21.0]]))
                results.append(client.infer("slow", [tensor]).as_numpy("predict").tolist())
            except Exception as error:  # noqa: BLE001 - recorded for the assertion below
                results.append(error)
            finally:
                client.close()

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.8)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(30)
        caller.join()
    assert results == [[42.0]], results
    assert code == 0


def test_a_stopped_worker_is_replaced(tmp_path: Path) -> None:
    """A worker frozen with SIGSTOP misses its heartbeat and is killed and replaced; requests are served
    again by the new worker (it stayed in place forever, taking a share of the connections)."""
    args = ["--entry-script", str(SCRIPTS / "work.py"), "--heartbeat-timeout", "2"]
    with ServerProcess(args) as server:
        (old,) = server.worker_pids()
        os.kill(old, signal.SIGSTOP)
        started = time.monotonic()
        assert wait_for(lambda: server.worker_pids() not in ([old], []), 15)
        replaced_in = time.monotonic() - started
        server.wait_until_ready(30)
        answer = httpx.post(server.url + "/score", json={"echo": "back"}, timeout=10)
    record("stopped_worker", {"replaced_in_s": replaced_in})
    assert answer.status_code == 200 and answer.json()["pid"] != old
    assert "has not been heard from" in server.logs()


def test_a_call_holding_the_gil_gets_its_504_and_its_worker_replaced() -> None:
    """run() stuck in a catastrophic regular expression holds the GIL, so no thread of the worker runs, its
    event loop included: the supervisor answers the request's 504 for it at the deadline, replaces the
    worker once its heartbeat times out, and the server serves again."""
    args = ["--entry-script", str(SCRIPTS / "work.py"), "--heartbeat-timeout", "4", "--timeout-ms", "1000"]
    with ServerProcess(args) as server:
        (old,) = server.worker_pids()
        started = time.monotonic()
        stuck = httpx.post(server.url + "/score", json={"regex": 40}, timeout=30)
        answered_in = time.monotonic() - started
        assert stuck.status_code == 504 and "timeout" in stuck.json()["message"].lower(), stuck.text
        assert stuck.headers["x-request-id"]
        assert wait_for(lambda: server.worker_pids() not in ([old], []), 20), server.logs()[-3000:]
        server.wait_until_ready(30)
        assert httpx.post(server.url + "/score", json={"echo": 1}, timeout=10).status_code == 200
    record("gil_held_call", {"answered_in_s": answered_in})
    assert answered_in < 4.0


def test_init_that_never_returns_keeps_liveness_and_fails_at_its_timeout() -> None:
    """While init() hangs, liveness answers 200 and readiness 503 (nothing answered at all before); with
    --init-timeout the start fails with exit 3 and a line that names the setting."""
    env = {"PREBAKE_TEST_INIT_SLEEP": "3600"}
    server = ServerProcess(
        ["--entry-script", str(SCRIPTS / "work.py"), "--init-timeout", "4"], env=env, wait_ready=False
    )
    with server:
        assert wait_for(lambda: _status(server.url + "/v2/health/live") == 200, 10)
        assert _status(server.url + "/v2/health/ready") == 503
        assert _status(server.url + "/") == 503
        assert server.process is not None
        code = server.process.wait(30)
    assert code == 3
    assert "not loaded within 4 s" in server.logs() and "--init-timeout" in server.logs()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def test_a_worker_that_keeps_running_out_of_memory_is_replaced() -> None:
    """Under --max-worker-memory, a run() that cannot allocate answers a retryable 503 (not 500), and after
    three in a row the worker is replaced; small requests are served throughout and after."""
    args = ["--entry-script", str(SCRIPTS / "work.py"), "--max-worker-memory", "400m"]
    with ServerProcess(args) as server, httpx.Client(timeout=30) as http:
        (old,) = server.worker_pids()
        statuses = [
            http.post(server.url + "/score", json={"allocate_mb": 1024}).status_code for _ in range(3)
        ]
        assert statuses == [503, 503, 503], statuses
        assert wait_for(lambda: server.worker_pids() not in ([old], []), 20)
        server.wait_until_ready(30)
        small = http.post(server.url + "/score", json={"allocate_mb": 8})
    assert small.status_code == 200 and small.json()["pid"] != old
    assert "ran out of memory" in server.logs()
