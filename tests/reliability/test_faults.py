"""Faults under load, on real server processes: a worker killed, SIGTERM, a hanging model, a memory ceiling.

The load is a few keep-alive clients (tests/reliability/helpers.Load), each bounded in requests and
seconds. Each response names the worker pid that answered, so a test knows which connections were on a
worker when it died, and can check that only those lost a request.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from prebake.testing import ServerProcess

from .helpers import SCRIPTS, Load, Outcome, iris_model, protocols_present, record, wait_for

WORK = str(SCRIPTS / "work.py")
RETRYABLE_STATUSES = {503}  # a client or a proxy may resend these; a dropped connection before any answer too


def _ok(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status == 200]


def _summary(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(Counter(str(o.status) if o.status is not None else o.error for o in outcomes))


def test_kill_9_of_a_worker_under_load_loses_only_its_in_flight_requests() -> None:
    """kill -9 of one of two workers under load: it is replaced, and only connections on it lose a request, as a dropped connection or a 503."""
    with ServerProcess(["--entry-script", WORK, "--workers", "2"]) as server:
        assert wait_for(lambda: len(server.worker_pids()) == 2, 10)
        load = Load(server.url + "/score", b'{"sleep": 0.02}', clients=6, max_seconds=60).start()
        try:
            # Every client has had an answer, so each connection's worker is known before the kill.
            everyone = wait_for(lambda: len({o.connection for o in _ok(load.outcomes)}) == 6, 30)
            assert everyone, f"not every client was answered: {_summary(load.outcomes)}"
            last = {o.connection: o.pid for o in _ok(list(load.outcomes))}
            victim = Counter(last.values()).most_common(1)[0][0]
            assert victim in server.worker_pids()
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            replaced = wait_for(
                lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(), 20
            )
            assert replaced, f"worker not replaced: {server.worker_pids()}\n{server.logs()}"
            server.wait_until_ready()
            settled = len(load.outcomes)
            assert wait_for(lambda: len(_ok(load.outcomes[settled:])) >= 50, 30), "load did not go on"
        finally:
            outcomes = load.stop()
        failed = [o for o in outcomes if o.status != 200]
        record(
            "fault-kill9", {"requests": len(outcomes), "outcomes": _summary(outcomes), "failed": len(failed)}
        )
        for outcome in failed:
            assert outcome.started >= killed_at - 1.0, f"a request failed before the kill: {outcome}"
            assert outcome.previous_pid == victim, f"a connection on a live worker failed: {outcome}"
            assert outcome.status is None or outcome.status in RETRYABLE_STATUSES, outcome
        per_connection = Counter(o.connection for o in failed)
        assert all(count == 1 for count in per_connection.values()), per_connection
        for outcome in failed:  # the client's retry, on a new connection, is answered
            retry = [o for o in outcomes if o.connection == outcome.connection and o.started > outcome.ended]
            assert retry and retry[0].status == 200, (outcome, retry[:1])
        after = {o.pid for o in _ok(outcomes) if o.started > killed_at + 0.5}
        assert victim not in after and len(after) >= 1


def test_sigterm_under_load_fails_no_request_the_server_began(tmp_path: Path) -> None:
    """SIGTERM under load: every request run() began gets its 200, the rest are refused retryably, and the exit code is 0."""
    marks = tmp_path / "marks"
    marks.mkdir()
    server = ServerProcess(["--entry-script", WORK, "--workers", "2"], env={"PREBAKE_TEST_MARKS": str(marks)})
    server.start()
    load = Load(
        server.url + "/score",
        lambda rid: orjson.dumps({"sleep": 0.05, "id": rid}),
        clients=6,
        max_seconds=60,
    ).start()
    try:
        assert wait_for(lambda: len(_ok(load.outcomes)) >= 40, 30), "load did not start"
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(40)
    finally:
        outcomes = load.stop()
        server.stop()
    began = {line for path in marks.iterdir() for line in path.read_text().split()}
    lost = [o for o in outcomes if o.status != 200]
    lost_begun = [o for o in lost if o.request_id in began]
    record(
        "fault-sigterm",
        {
            "requests": len(outcomes),
            "outcomes": _summary(outcomes),
            "begun_by_run": len(began),
            "failed_after_run_began": len(lost_begun),
        },
    )
    assert code == 0
    assert lost_begun == [], f"requests begun and then failed: {lost_begun[:5]}"
    for outcome in lost:
        assert outcome.status is None or outcome.status in RETRYABLE_STATUSES, outcome
    answered = {o.request_id for o in outcomes if o.status == 200}
    assert began <= answered | {o.request_id for o in lost_begun}


def test_new_connections_during_a_drain_are_refused_not_left_hanging() -> None:
    """While SIGTERM drains a long request, a new connection is refused at once instead of hanging until the drain ends and being reset."""
    server = ServerProcess(["--entry-script", WORK, "--graceful-timeout", "20"]).start()
    try:
        with httpx.Client(timeout=30) as slow_client:
            import threading

            slow: list[int] = []
            thread = threading.Thread(
                target=lambda: slow.append(
                    slow_client.post(server.url + "/score", content=b'{"sleep": 3}').status_code
                )
            )
            thread.start()
            time.sleep(0.5)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            started = time.monotonic()
            with pytest.raises(httpx.ConnectError):
                httpx.post(server.url + "/score", content=b"{}", timeout=10)
            assert time.monotonic() - started < 1.0
            thread.join(30)
            assert slow == [200]
    finally:
        server.stop()


def test_hanging_model_times_out_and_its_worker_is_replaced_under_load() -> None:
    """A run() that hangs on a core answers 504 at the timeout, its wedged worker is replaced, and the other
    worker keeps serving meanwhile (a run() that hangs waiting only gets its thread replaced: see
    test_pipeline's next-request test)."""
    args = ["--entry-script", WORK, "--workers", "2", "--timeout-ms", "1000"]
    with ServerProcess(args) as server, httpx.Client(timeout=30) as client:
        assert wait_for(lambda: len(server.worker_pids()) == 2, 10)
        before = set(server.worker_pids())
        load = Load(server.url + "/score", b'{"sleep": 0.01}', clients=4, max_seconds=60).start()
        try:
            assert wait_for(lambda: len(_ok(load.outcomes)) >= 20, 20)
            started = time.monotonic()
            hung = client.post(server.url + "/score", content=b'{"spin": 120}')
            took = time.monotonic() - started
            assert hung.status_code == 504, hung.text
            assert "timeout" in hung.json()["message"].lower()
            assert took < 30  # the deadline fires; it does not wait for the 120 s sleep
            assert wait_for(lambda: bool(before - set(server.worker_pids())), 30), "no worker was recycled"
            assert wait_for(lambda: len(server.worker_pids()) == 2, 20)
            server.wait_until_ready()
            mark = len(load.outcomes)
            assert wait_for(lambda: len(_ok(load.outcomes[mark:])) >= 30, 30), "load did not recover"
        finally:
            outcomes = load.stop()
        statuses = Counter(o.status for o in outcomes)
        record(
            "fault-hang", {"requests": len(outcomes), "outcomes": _summary(outcomes), "hang_answer_s": took}
        )
        # Requests queued behind the hang on its worker time out (504) or are handed back (503, or a
        # dropped connection as the worker exits); no other failure, and most requests succeed.
        assert set(statuses) <= {200, 503, 504, None}, statuses
        assert statuses[200] > 0.8 * len(outcomes), statuses
        assert "replacing this worker" in server.logs()


def _vm_data(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmData")


def test_a_request_over_the_worker_memory_ceiling_fails_alone(work_server: ServerProcess) -> None:
    """With RLIMIT_DATA on the worker, a request that would blow it gets an error while the worker, and requests around it, carry on."""
    (worker,) = work_server.worker_pids()
    ceiling = _vm_data(worker) + 400 * 1024 * 1024
    try:
        old = resource.prlimit(worker, resource.RLIMIT_DATA)
        # Only the soft limit: it is the one enforced, and lowering the hard one could not be undone.
        resource.prlimit(worker, resource.RLIMIT_DATA, (ceiling, old[1]))
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot set a memory limit on the worker here: {error}")
    try:
        with httpx.Client(timeout=60) as client:
            load = Load(work_server.url + "/score", b'{"echo": 1}', clients=2, max_seconds=60).start()
            try:
                assert wait_for(lambda: len(_ok(load.outcomes)) >= 10, 20)
                big = client.post(work_server.url + "/score", content=b'{"allocate_mb": 2048}')
                fits = client.post(work_server.url + "/score", content=b'{"allocate_mb": 100}')
                mark = len(load.outcomes)
                assert wait_for(lambda: len(_ok(load.outcomes[mark:])) >= 10, 20)
            finally:
                outcomes = load.stop()
        record(
            "fault-memory",
            {"big": [big.status_code, big.text[:200]], "fits": fits.status_code, "load": _summary(outcomes)},
        )
        # 503, retryable: out of memory is the server's state, not the client's fault (three in a row
        # recycle the worker: test_worker_faults).
        assert big.status_code == 503 and big.headers["x-ms-run-function-failed"] == "True", big.text
        assert "MemoryError" not in big.text or "Traceback" not in big.text
        assert fits.status_code == 200 and fits.json()["pid"] == worker  # same worker, memory given back
        assert all(o.status == 200 and o.pid == worker for o in outcomes), _summary(outcomes)
        assert work_server.worker_pids() == [worker]
    finally:
        resource.prlimit(worker, resource.RLIMIT_DATA, old)


def _v2_rows(rows: int) -> bytes:
    """A V2 request of ``rows`` iris rows as nested JSON lists: about 20 bytes a row on the wire, ten times
    that once parsed into Python objects."""
    data = b"[" + b",".join([b"[5.1,3.5,1.4,0.2]"] * rows) + b"]"
    head = b'{"inputs":[{"name":"input-0","shape":[%d,4],"datatype":"FP64","data":' % rows
    return head + data + b"}]}"


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not protocols_present():
        pytest.skip("the V2 protocol and the sklearn runtime are not in this tree")
    path = iris_model(tmp_path_factory.mktemp("memory") / "iris.joblib")
    with ServerProcess([str(path)]) as server:
        yield server


def _with_ceiling(worker: int, extra_mib: int) -> tuple[int, int]:
    ceiling = _vm_data(worker) + extra_mib * 1024 * 1024
    try:
        old = resource.prlimit(worker, resource.RLIMIT_DATA)
        resource.prlimit(worker, resource.RLIMIT_DATA, (ceiling, old[1]))
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot set a memory limit on the worker here: {error}")
    return old


def test_a_v2_request_over_the_memory_ceiling_fails_alone(iris_server: ServerProcess) -> None:
    """A V2 JSON request whose parsed form would pass the worker's RLIMIT_DATA fails with a JSON error; the worker and the requests around it carry on."""
    (worker,) = iris_server.worker_pids()
    url = iris_server.url + "/v2/models/iris/infer"
    old = _with_ceiling(worker, 150)
    try:
        load = Load(url, _v2_rows(2), clients=2, max_seconds=60).start()
        try:
            assert wait_for(lambda: len([o for o in load.outcomes if o.status == 200]) >= 10, 20)
            with httpx.Client(timeout=60) as client:
                big = client.post(url, content=_v2_rows(1_500_000))
                fits = client.post(url, content=_v2_rows(1000))
        finally:
            outcomes = load.stop()
        record(
            "fault-memory-v2",
            {
                "body_mib": round(len(_v2_rows(1_500_000)) / 2**20, 1),
                "ceiling_extra_mib": 150,
                "big": [big.status_code, big.text[:200]],
                "fits": fits.status_code,
                "load": _summary(outcomes),
            },
        )
        assert big.status_code >= 400 and "error" in big.json(), big.text
        assert "Traceback" not in big.text
        assert fits.status_code == 200
        assert all(o.status == 200 for o in outcomes), _summary(outcomes)
        assert iris_server.worker_pids() == [worker]
    finally:
        resource.prlimit(worker, resource.RLIMIT_DATA, old)


def test_max_worker_memory_sets_each_workers_data_limit() -> None:
    """PREBAKE_MAX_WORKER_MEMORY=512m gives every worker a soft RLIMIT_DATA of 512 MiB."""
    with ServerProcess(
        ["--entry-script", WORK, "--workers", "2"], env={"PREBAKE_MAX_WORKER_MEMORY": "512m"}
    ) as server:
        assert wait_for(lambda: len(server.worker_pids()) == 2, 10)
        for pid in server.worker_pids():
            soft, _ = resource.prlimit(pid, resource.RLIMIT_DATA)
            assert soft == 512 * 1024 * 1024


def test_a_recycling_worker_sends_each_connection_elsewhere_after_one_503() -> None:
    """While a wedged worker is being replaced, each keep-alive connection on it gets at most one 503 before moving to a live worker."""
    args = ["--entry-script", WORK, "--workers", "2", "--timeout-ms", "1000"]
    with ServerProcess(args) as server, httpx.Client(timeout=30) as client:
        assert wait_for(lambda: len(server.worker_pids()) == 2, 10)
        before = set(server.worker_pids())
        load = Load(server.url + "/score", b'{"sleep": 0.01}', clients=4, max_seconds=60).start()
        try:
            assert wait_for(lambda: len({o.connection for o in _ok(load.outcomes)}) == 4, 20)
            assert client.post(server.url + "/score", content=b'{"spin": 120}').status_code == 504
            assert wait_for(lambda: bool(before - set(server.worker_pids())), 30)
            time.sleep(1)
        finally:
            outcomes = load.stop()
        busy = Counter(o.connection for o in outcomes if o.status == 503)
        assert all(count <= 1 for count in busy.values()), busy
