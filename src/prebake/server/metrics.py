"""Prometheus metrics without a client library: counters and histograms in plain dicts.

Each worker process keeps its own numbers and writes a snapshot to a shared directory about once a
second; whichever worker answers `/metrics` adds the others' snapshots to its own, so a scrape sees
the whole server, not one random worker. Snapshots of dead workers are kept (counters never go back).

Where the directory cannot be written (a full disk, a read-only or vanished directory), the worker says
so once in the log and writes to a directory of the same name in memory (``/dev/shm``) instead, which
every worker also reads, so the totals stay whole; it goes back to the directory once it can. Without
``/dev/shm`` its numbers stay in its own memory (its own scrapes stay whole) and it keeps retrying.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger("prebake.metrics")

#: Memory-backed file system the snapshots fall back to when their directory cannot be written.
MEMORY_DIR = Path("/dev/shm")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[str, ...]


class Metrics:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.requests: dict[Labels, int] = defaultdict(int)  # (route, method, status, model)
        self.latency: dict[Labels, list[float]] = {}  # (route, model) -> bucket counts + [sum, count]
        self.run_time: dict[Labels, list[float]] = {}  # (model,) -> same layout, scoring time only
        self.batch_size: dict[Labels, list[float]] = {}  # (model,) -> rows per predict call
        # For the V2 statistics extension (GET /v2/models/stats, gRPC ModelStatistics):
        self.executions: dict[Labels, list[float]] = {}  # (model, rows) -> [predict calls, seconds]
        self.inferences: dict[Labels, list[float]] = {}  # (model,) -> INFERENCE_FIELDS
        self.last_inference: dict[Labels, int] = {}  # (model,) -> ms since the epoch (merged by max)
        self.in_flight = 0
        self._dirty = True
        self._fallback = fallback_directory(directory)
        self._failing = False  # the directory could not be written last time (said once in the log)

    def observe_request(self, route: str, method: str, status: int, model: str, seconds: float) -> None:
        self.requests[(route, method, str(status), model)] += 1
        _observe(self.latency, (route, model), seconds, LATENCY_BUCKETS)
        self._dirty = True

    def observe_run(self, model: str, seconds: float) -> None:
        """One raw call (an entry script's run(), a handler script) that took ``seconds``."""
        _observe(self.run_time, (model,), seconds, LATENCY_BUCKETS)

    def observe_predict(self, model: str, rows: int, seconds: float, compute_seconds: float) -> None:
        """One predict call of ``rows`` rows (a batch or a single request): ``seconds`` from handing it to
        a scoring thread to its answer, ``compute_seconds`` of it in the model."""
        _observe(self.run_time, (model,), seconds, LATENCY_BUCKETS)
        _observe(self.batch_size, (model,), float(rows), BATCH_BUCKETS)
        row = self.executions.setdefault((model, str(rows)), [0.0, 0.0])
        row[0] += 1
        row[1] += compute_seconds
        self._dirty = True

    def observe_inference(self, model: str, ok: bool, seconds: float, compute_seconds: float) -> None:
        """One inference request, from the backend taking it to its answer; ``compute_seconds`` of it
        in the model (the rest waited for a scoring thread or a batch)."""
        row = self.inferences.setdefault((model,), [0.0] * len(INFERENCE_FIELDS))
        row[0 if ok else 2] += 1
        row[1 if ok else 3] += seconds
        row[4] += compute_seconds
        row[5] += max(0.0, seconds - compute_seconds)
        self.last_inference[(model,)] = int(time.time() * 1000)
        self._dirty = True

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": [[list(k), v] for k, v in self.requests.items()],
            "latency": [[list(k), v] for k, v in self.latency.items()],
            "run_time": [[list(k), v] for k, v in self.run_time.items()],
            "batch_size": [[list(k), v] for k, v in self.batch_size.items()],
            "executions": [[list(k), v] for k, v in self.executions.items()],
            "inferences": [[list(k), v] for k, v in self.inferences.items()],
            "last_inference": [[list(k), v] for k, v in self.last_inference.items()],
            "in_flight": self.in_flight,
        }

    def write_snapshot(self) -> None:
        """Publish this worker's numbers for the others (atomic rename, so readers never see half a file).

        A directory that cannot be written is said once in the log, and the snapshot goes to the memory
        fallback; until one write succeeds, the next call tries again."""
        if self.directory is None or not self._dirty:
            return
        name = f"{os.getpid()}.json"
        data = orjson.dumps(self.snapshot())
        try:
            _publish(self.directory / name, data)
        except OSError as error:
            self._dirty = not self._write_fallback(name, data, error)
            return
        self._dirty = False
        if self._failing:
            self._failing = False
            logger.warning("metrics: snapshots are written to %s again", self.directory)
            if self._fallback is not None:
                with contextlib.suppress(OSError):
                    (self._fallback / name).unlink()

    def _write_fallback(self, name: str, data: bytes, error: OSError) -> bool:
        fallback = self._fallback
        written = False
        if fallback is not None:
            with contextlib.suppress(OSError):
                fallback.mkdir(exist_ok=True)
                _publish(fallback / name, data)
                written = True
        if not self._failing:
            self._failing = True
            if written:
                logger.warning(
                    "metrics: cannot write this worker's snapshot to %s (%s); writing it to %s instead, so "
                    "every worker's /metrics still counts its requests",
                    self.directory,
                    error.strerror or error,
                    fallback,
                )
            else:
                logger.warning(
                    "metrics: cannot write this worker's snapshot to %s (%s): /metrics answered by the other "
                    "workers will miss its requests until it can (its own answers stay whole); retrying",
                    self.directory,
                    error.strerror or error,
                )
        return written

    def render(self) -> bytes:
        """Prometheus text format of this worker's numbers plus every other worker's last snapshot."""
        return _render(self.snapshots())

    def statistics(self) -> dict[str, dict[Labels, Any]]:
        """The whole server's numbers for the V2 statistics extension (every worker's, added up)."""
        snaps = self.snapshots()
        merged = {key: _merge(snaps, key) for key in ("executions", "inferences")}
        last: dict[Labels, Any] = {}
        for snap in snaps:
            for labels, ms in snap.get("last_inference", []):
                last[tuple(labels)] = max(ms, last.get(tuple(labels), 0))
        merged["last_inference"] = last
        return merged

    def snapshots(self) -> list[dict[str, Any]]:
        """This worker's snapshot and every other worker's last one (from the directory or its fallback,
        the newer where a worker has written to both)."""
        totals = [self.snapshot()]
        mine = f"{os.getpid()}.json"
        latest: dict[str, tuple[float, Path]] = {}
        for directory in (self.directory, self._fallback):
            if directory is None:
                continue
            with contextlib.suppress(OSError):
                for path in directory.glob("*.json"):
                    with contextlib.suppress(OSError):
                        mtime = path.stat().st_mtime
                        if path.name != mine and mtime >= latest.get(path.name, (-1.0, path))[0]:
                            latest[path.name] = (mtime, path)
        for name, (_, path) in latest.items():
            with contextlib.suppress(OSError, ValueError):
                snap = orjson.loads(path.read_bytes())
                if name.startswith("dead-"):
                    snap["in_flight"] = 0
                totals.append(snap)
        return totals


def fallback_directory(directory: Path | None) -> Path | None:
    """Where snapshots go when ``directory`` cannot be written: its namesake under ``/dev/shm``, the same
    for every worker of a server (None without /dev/shm, or where the directory is there already)."""
    if directory is None or not MEMORY_DIR.is_dir() or directory.parent == MEMORY_DIR:
        return None
    return MEMORY_DIR / directory.name


def retire_snapshot(directory: Path, pid: int) -> None:
    """Keep a dead worker's last snapshot (counters never go back) with its in-flight gauge at zero."""
    for folder in (directory, fallback_directory(directory)):
        if folder is not None:
            with contextlib.suppress(OSError):
                (folder / f"{pid}.json").replace(folder / f"dead-{pid}.json")


def remove_snapshots(directory: Path) -> None:
    """Remove the snapshot directory and its memory fallback, when the server stops."""
    for folder in (directory, fallback_directory(directory)):
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.unlink()  # not a directory any more (replaced by a file)


def _publish(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


#: The per-model inference row: successes and their seconds, failures and theirs, model seconds, waiting seconds.
INFERENCE_FIELDS = ("success", "success_s", "fail", "fail_s", "compute_s", "queue_s")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _observe(table: dict[Labels, list[float]], key: Labels, value: float, buckets: tuple[float, ...]) -> None:
    row = table.get(key)
    if row is None:
        row = table[key] = [0.0] * (len(buckets) + 2)
    index = bisect.bisect_left(buckets, value)
    if index < len(buckets):
        row[index] += 1
    row[-2] += value
    row[-1] += 1


def _label_text(names: tuple[str, ...], values: list[str]) -> str:
    parts = []
    for name, value in zip(names, values, strict=True):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{name}="{escaped}"')
    return ",".join(parts)


def _merge(snaps: list[dict[str, Any]], key: str) -> dict[tuple[str, ...], Any]:
    merged: dict[tuple[str, ...], Any] = {}
    for snap in snaps:
        for labels, value in snap.get(key, []):
            k = tuple(labels)
            if isinstance(value, list):
                prev = merged.get(k)
                merged[k] = list(value) if prev is None else [a + b for a, b in zip(prev, value, strict=True)]
            else:
                merged[k] = merged.get(k, 0) + value
    return merged


def _histogram(
    out: list[str],
    name: str,
    help_text: str,
    names: tuple[str, ...],
    data: dict[Any, Any],
    buckets: tuple[float, ...],
) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} histogram")
    for labels, row in sorted(data.items()):
        base = _label_text(names, list(labels))
        cumulative = 0.0
        for bound, count in zip(buckets, row, strict=False):
            cumulative += count
            out.append(f'{name}_bucket{{{base},le="{bound}"}} {cumulative:g}')
        out.append(f'{name}_bucket{{{base},le="+Inf"}} {row[-1]:g}')
        out.append(f"{name}_sum{{{base}}} {row[-2]:.6f}")
        out.append(f"{name}_count{{{base}}} {row[-1]:g}")


def _render(snaps: list[dict[str, Any]]) -> bytes:
    out: list[str] = [
        "# HELP prebake_requests_total HTTP requests answered, by route, method, status and model.",
        "# TYPE prebake_requests_total counter",
    ]
    for labels, count in sorted(_merge(snaps, "requests").items()):
        out.append(
            f"prebake_requests_total{{{_label_text(('route', 'method', 'status', 'model'), list(labels))}}} {count}"
        )
    _histogram(
        out,
        "prebake_request_duration_seconds",
        "Time from request received to response sent.",
        ("route", "model"),
        _merge(snaps, "latency"),
        LATENCY_BUCKETS,
    )
    _histogram(
        out,
        "prebake_run_duration_seconds",
        "Time spent in run()/predict() alone.",
        ("model",),
        _merge(snaps, "run_time"),
        LATENCY_BUCKETS,
    )
    _histogram(
        out,
        "prebake_batch_size_rows",
        "Rows per predict call after adaptive batching.",
        ("model",),
        _merge(snaps, "batch_size"),
        tuple(float(b) for b in BATCH_BUCKETS),
    )
    out.append("# HELP prebake_requests_in_flight Requests being handled now.")
    out.append("# TYPE prebake_requests_in_flight gauge")
    out.append(f"prebake_requests_in_flight {sum(int(s.get('in_flight', 0)) for s in snaps)}")
    return ("\n".join(out) + "\n").encode()
