"""Metrics: Prometheus text that parses, and numbers summed over the workers' snapshots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson
import pytest

from prebake.server.metrics import Metrics


def _parse(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_counters_and_histograms_render() -> None:
    """Requests count by route/method/status/model; the latency histogram is cumulative and counts them all."""
    metrics = Metrics()
    for seconds in (0.0005, 0.003, 0.2):
        metrics.observe_request("/score", "POST", 200, "score", seconds)
    metrics.observe_request("/score", "POST", 500, "score", 0.01)
    values = _parse(metrics.render().decode())
    assert values['prebake_requests_total{route="/score",method="POST",status="200",model="score"}'] == 3
    assert values['prebake_requests_total{route="/score",method="POST",status="500",model="score"}'] == 1
    assert values['prebake_request_duration_seconds_bucket{route="/score",model="score",le="0.001"}'] == 1
    assert values['prebake_request_duration_seconds_bucket{route="/score",model="score",le="0.005"}'] == 2
    assert values['prebake_request_duration_seconds_bucket{route="/score",model="score",le="+Inf"}'] == 4
    assert values['prebake_request_duration_seconds_count{route="/score",model="score"}'] == 4


def test_other_workers_snapshots_are_added(tmp_path: Path) -> None:
    """A scrape adds every other worker's published numbers, dead workers' counters included."""
    other = Metrics()
    other.observe_request("/score", "POST", 200, "score", 0.01)
    other.in_flight = 2
    (tmp_path / "12345.json").write_bytes(orjson.dumps(other.snapshot()))
    (tmp_path / "dead-999.json").write_bytes(orjson.dumps(other.snapshot()))
    mine = Metrics(tmp_path)
    mine.observe_request("/score", "POST", 200, "score", 0.01)
    values = _parse(mine.render().decode())
    assert values['prebake_requests_total{route="/score",method="POST",status="200",model="score"}'] == 3
    assert values["prebake_requests_in_flight"] == 2, "dead workers hold no requests in flight"


def test_snapshot_is_written_atomically(tmp_path: Path) -> None:
    """write_snapshot publishes this process's numbers as <pid>.json, readable by the others."""
    metrics = Metrics(tmp_path)
    metrics.observe_request("/", "GET", 200, "", 0.001)
    metrics.write_snapshot()
    data = orjson.loads((tmp_path / f"{os.getpid()}.json").read_bytes())
    assert data["requests"] == [[["/", "GET", "200", ""], 1]]


def test_unwritable_snapshots_without_a_memory_fallback_say_so_once_and_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No /dev/shm and an unwritable directory: one warning, the numbers stay in memory, and the snapshot is written once the directory can take it."""
    from prebake.server import metrics as module

    monkeypatch.setattr(module, "MEMORY_DIR", tmp_path / "no-shm")
    directory = tmp_path / "snapshots"
    directory.write_text("a file where the directory should be")
    metrics = Metrics(directory)
    metrics.observe_request("/score", "POST", 200, "score", 0.01)
    with caplog.at_level(logging.WARNING, logger="prebake.metrics"):
        for _ in range(3):
            metrics.write_snapshot()
    assert caplog.text.count("cannot write this worker's snapshot") == 1
    assert "will miss its requests" in caplog.text
    assert b'route="/score"' in metrics.render()  # its own numbers are whole
    directory.unlink()
    directory.mkdir()
    metrics.write_snapshot()
    assert (directory / f"{os.getpid()}.json").is_file()
    assert "written to" in caplog.text and "again" in caplog.text
