"""Metrics: Prometheus text that parses, and numbers summed over the workers' snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

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
