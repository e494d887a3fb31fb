"""Hostile input at the server's edge (issue 13): each attack through a real server process, answered with
a 4xx or served, never a 500, and the server keeps serving. docs/reliability.md lists each with its answer."""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest

from prebake.testing import ServerProcess

from .helpers import SCRIPTS, iris_model, record, wait_for

KEY = "edge-key"


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return iris_model(tmp_path_factory.mktemp("edge") / "iris.joblib")


@pytest.fixture(scope="module")
def keyed(iris: Path) -> Iterator[ServerProcess]:
    with ServerProcess(["--allow-pickle", str(iris)], env={"PREBAKE_API_KEY": KEY}) as server:
        yield server


@pytest.fixture(scope="module")
def open_server(iris: Path) -> Iterator[ServerProcess]:
    with ServerProcess(["--allow-pickle", str(iris)]) as server:
        yield server


def _infer_body(rows: int = 1) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [rows, 4], "data": [5.1, 3.5, 1.4, 0.2] * rows}]
    }


def test_unauthenticated_requests_do_not_grow_metrics(keyed: ServerProcess) -> None:
    """600 requests for new 1 KB model names, all 401, leave /metrics as it was (it grew from 49 KB to
    11.9 MB): nothing is recorded under a model label before auth, nor for a model that does not exist."""
    with httpx.Client(timeout=10) as http:
        before = len(http.get(keyed.url + "/metrics").content)
        for i in range(600):
            name = f"{i:04d}" + "m" * 1020
            assert http.post(keyed.url + f"/v2/models/{name}/infer", json=_infer_body()).status_code == 401
        after = len(http.get(keyed.url + "/metrics").content)
    record("metrics_growth_unauthenticated", {"before_bytes": before, "after_bytes": after})
    assert after - before < 4096, (before, after)


def test_control_characters_in_the_path_cannot_forge_log_lines(open_server: ServerProcess) -> None:
    """%0d%0a in a path is logged escaped, on the request's own line: no forged line appears."""
    forged = "/v2/models/x%0d%0a2026-01-01%2000:00:00%20INFO%20prebake.access:%20FORGED/ready"
    with socket.create_connection(("127.0.0.1", open_server.port)) as sock:
        sock.sendall(f"GET {forged} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 404")
    assert wait_for(lambda: "FORGED" in open_server.logs(), 5)
    lines = [line for line in open_server.logs().splitlines() if "FORGED" in line]
    assert len(lines) == 1 and "prebake.access" in lines[0].split("FORGED")[0]
    assert not any(line.startswith("2026-01-01") for line in open_server.logs().splitlines())


def test_an_encoded_slash_is_not_a_separator(open_server: ServerProcess) -> None:
    """POST /v2%2frepository%2findex is no route (404), as a proxy filtering on paths would read it; the
    real path still answers."""
    with httpx.Client(timeout=10) as http:
        encoded = http.post(open_server.url + "/v2%2frepository%2findex")
        plain = http.post(open_server.url + "/v2/repository/index")
    assert encoded.status_code == 404 and "no route" in encoded.json()["error"]
    assert plain.status_code == 200


@pytest.mark.parametrize("version", ["abc", "-1", "999", "1"])
def test_unknown_versions_of_a_versionless_model_are_404(open_server: ServerProcess, version: str) -> None:
    """A model that has no version serves none of abc, -1, 999 (or 1): 404 in Triton's words."""
    with httpx.Client(timeout=10) as http:
        infer = http.post(open_server.url + f"/v2/models/iris/versions/{version}/infer", json=_infer_body())
        meta = http.get(open_server.url + f"/v2/models/iris/versions/{version}")
    assert infer.status_code == 404 and meta.status_code == 404
    assert infer.json()["error"] == f"Request for unknown model: 'iris' version {version} is not found"


def test_a_body_cut_short_never_reaches_run(tmp_path: Path) -> None:
    """A client that disconnects mid-upload (5 KB of a declared 100 KB) reaches no run(): nothing is
    scored, and the server answers the next request."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"PREBAKE_TEST_MARKS": str(marks)}
    with ServerProcess(["--entry-script", str(SCRIPTS / "work.py")], env=env) as server:
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        body = b'{"id": "cut", "echo": "' + b"x" * 5000
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + body)
            time.sleep(0.3)
        time.sleep(0.5)
        assert httpx.post(server.url + "/score", json={"id": "whole"}).status_code == 200
        noted = "".join(p.read_text() for p in marks.iterdir())
    assert noted == "whole\n"


def test_slow_bodies_hold_no_slot_and_meet_a_deadline(tmp_path: Path) -> None:
    """20 clients trickling bodies under --limit-concurrency 4 lock nobody out (they held every slot,
    and got plain-text 503s, for as long as they held on): a whole request is served meanwhile, and each
    trickler gets 408 at the body deadline."""
    args = ["--entry-script", str(SCRIPTS / "work.py"), "--limit-concurrency", "4", "--body-timeout", "2"]
    with ServerProcess(args) as server:
        answers: list[bytes] = []

        def trickle() -> None:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
                for _ in range(60):  # one byte every 0.1 s until the server answers
                    if select.select([sock], [], [], 0)[0]:
                        break
                    try:
                        sock.sendall(b"1")
                    except OSError:
                        break
                    time.sleep(0.1)
                try:
                    answers.append(sock.recv(4096))
                except OSError:
                    answers.append(b"")

        clients = [threading.Thread(target=trickle) for _ in range(20)]
        for client in clients:
            client.start()
        time.sleep(0.5)
        started = time.monotonic()
        served = httpx.post(server.url + "/score", json={"echo": "through"}, timeout=10)
        waited = time.monotonic() - started
        for client in clients:
            client.join()
    record(
        "slow_bodies", {"served_in_s": waited, "statuses": [a[:12].decode(errors="replace") for a in answers]}
    )
    assert served.status_code == 200 and waited < 1.0
    assert len(answers) == 20 and all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]


def _bytes_tensor_request(elements: int) -> tuple[bytes, int]:
    """A V2 binary request of one BYTES tensor of ``elements`` empty strings."""
    data = struct.pack("<I", 0) * elements
    header = (
        b'{"inputs":[{"name":"x","datatype":"BYTES","shape":[%d],"parameters":{"binary_data_size":%d}}]}'
        % (elements, len(data))
    )
    return header + data, len(header)


def test_a_huge_bytes_tensor_does_not_stall_health(open_server: ServerProcess) -> None:
    """A 30 MiB BYTES tensor of empty elements is decoded off the event loop: liveness answers quickly
    throughout (it took 3.6 to 4.6 s), and the request gets its 400 (the model takes numbers)."""
    body, header_length = _bytes_tensor_request(30 * 1024 * 1024 // 4)
    result: list[httpx.Response] = []
    big = threading.Thread(
        target=lambda: result.append(
            httpx.post(
                open_server.url + "/v2/models/iris/infer",
                content=body,
                headers={"Inference-Header-Content-Length": str(header_length)},
                timeout=60,
            )
        )
    )
    latencies: list[float] = []
    with httpx.Client(timeout=10) as http:
        big.start()
        while big.is_alive():
            started = time.perf_counter()
            assert http.get(open_server.url + "/v2/health/live").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    big.join()
    record("big_bytes_tensor", {"liveness_max_s": max(latencies), "probes": len(latencies)})
    assert result and result[0].status_code == 400
    assert len(latencies) >= 5 and max(latencies) < 0.5, max(latencies)


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


@pytest.fixture(scope="module")
def slow_env() -> dict[str, str]:
    return {"PYTHONPATH": str(SCRIPTS)}


def _slow_body(seconds: float, value: float = 1.0) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [seconds, value]}]}


def test_unload_while_requests_wait_gives_503_never_500(tmp_path: Path, slow_env: dict[str, str]) -> None:
    """Requests in flight when a model is unloaded finish (200); those arriving during the unload get
    503; none gets 500. Racing load and unload under load gives only 200 and 503."""
    path = _slow_model(tmp_path)
    with ServerProcess(["--allow-pickle", str(path), "--threads", "2"], env=slow_env) as server:
        url = server.url + "/v2/models/slow"
        statuses: list[int] = []
        lock = threading.Lock()
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    status = http.post(url + "/infer", json=_slow_body(0.05)).status_code
                    with lock:
                        statuses.append(status)

        clients = [threading.Thread(target=load) for _ in range(6)]
        for client in clients:
            client.start()
        with httpx.Client(timeout=30) as http:
            for _ in range(6):
                time.sleep(0.3)
                assert http.post(server.url + "/v2/repository/models/slow/unload").status_code == 200
                time.sleep(0.2)
                assert http.post(server.url + "/v2/repository/models/slow/load").status_code == 200
        stop.set()
        for client in clients:
            client.join()
        assert httpx.post(url + "/infer", json=_slow_body(0)).status_code == 200
    counts = {status: statuses.count(status) for status in set(statuses)}
    record("repository_races", counts)
    assert set(counts) <= {200, 503}, counts
    assert counts.get(200, 0) > 0 and counts.get(503, 0) > 0, counts


def test_repository_calls_act_on_every_worker(tmp_path: Path, iris: Path) -> None:
    """With --workers 2, an unload answered by one worker is done by both before the call returns, so
    every new connection sees the model unloaded; a load brings it back everywhere, and a model folder
    added after the start can be loaded (Triton's explicit model control)."""
    repo = tmp_path / "repo"
    (repo / "iris").mkdir(parents=True)
    (repo / "iris" / "model.joblib").write_bytes(iris.read_bytes())
    with ServerProcess(["--allow-pickle", "--model-repository", str(repo), "--workers", "2"]) as server:

        def ready_everywhere(name: str) -> set[int]:
            codes = set()
            for _ in range(16):
                with httpx.Client(timeout=10) as fresh:  # a new connection: any worker may take it
                    codes.add(fresh.get(server.url + f"/v2/models/{name}/ready").status_code)
            return codes

        assert ready_everywhere("iris") == {200}
        assert httpx.post(server.url + "/v2/repository/models/iris/unload", timeout=30).status_code == 200
        assert ready_everywhere("iris") == {503}
        assert httpx.post(server.url + "/v2/repository/models/iris/load", timeout=30).status_code == 200
        assert ready_everywhere("iris") == {200}
        (repo / "late").mkdir()
        (repo / "late" / "model.joblib").write_bytes(iris.read_bytes())
        assert httpx.post(server.url + "/v2/repository/models/late/load", timeout=30).status_code == 200
        assert ready_everywhere("late") == {200}
        index = httpx.post(server.url + "/v2/repository/index").json()
        assert {m["name"]: m["state"] for m in index} == {"iris": "READY", "late": "READY"}
        missing = httpx.post(server.url + "/v2/repository/models/nothing/load", timeout=30)
        assert missing.status_code == 400 and "failed to load 'nothing'" in missing.json()["error"]


def test_load_with_a_config_changes_batching_on_every_worker(tmp_path: Path, iris: Path) -> None:
    """POST .../load with Triton's config sets max_batch_size (the model configuration reports it), and a
    config prebake cannot honour is a 400 saying "failed to load"."""
    with (
        ServerProcess(["--allow-pickle", str(iris), "--workers", "2"]) as server,
        httpx.Client(timeout=30) as http,
    ):
        assert http.get(server.url + "/v2/models/iris/config").json()["max_batch_size"] == 64
        config = '{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 100}}'
        changed = http.post(
            server.url + "/v2/repository/models/iris/load", json={"parameters": {"config": config}}
        )
        assert changed.status_code == 200, changed.text
        for _ in range(8):
            with httpx.Client(timeout=10) as fresh:
                assert fresh.get(server.url + "/v2/models/iris/config").json()["max_batch_size"] == 8
        bad = http.post(
            server.url + "/v2/repository/models/iris/load", json={"parameters": {"config": "{oops"}}
        )
        assert bad.status_code == 400 and bad.json()["error"].startswith("failed to load 'iris'")
        assert http.post(server.url + "/v2/models/iris/infer", json=_infer_body()).status_code == 200


def test_access_log_has_one_line_per_request_whatever_the_path(open_server: ServerProcess) -> None:
    """Every request, routed or not, is one access-log line."""
    marker = "edge-line-marker"
    with httpx.Client(timeout=10) as http:
        http.get(open_server.url + f"/nowhere/{marker}")
    assert wait_for(lambda: marker in open_server.logs(), 5)
    assert len(re.findall(marker, open_server.logs())) == 1
