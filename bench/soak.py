"""Soak: a real prebake server at a steady request rate for a fixed time; memory, errors and p99 per window.

    python bench/soak.py                          # 10 minutes, 200 requests/s, Azure /score
    python bench/soak.py --seconds 60 --rate 100 --target v2 --out soak.json

The load is paced (each client thread keeps its share of the rate, so a slow server is not hidden by a
client that waits for it), bounded in requests and in time, and only ever sent to 127.0.0.1. Every
``--window`` seconds it samples the resident memory of the supervisor and its workers and the latency
percentiles of that window. The verdict uses margins stated in the output: memory after warm-up may not
grow by more than ``max(--memory-margin-mib, --memory-margin-pct)``, no request may fail, and the p99
of the second half of the steady run may not exceed ``--p99-factor`` times the first half's plus
``--p99-slack-ms`` (a trend, not one noisy window: the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from prebake.testing import ServerProcess

SCORE_PY = """
import json, os
def init():
    pass
def run(data):
    rows = json.loads(data)["data"]
    return {"pid": os.getpid(), "sums": [sum(row) for row in rows]}
"""
SCORE_BODY = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}).encode()
V2_BODY = json.dumps(
    {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP64",
                "data": [5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3],
            }
        ]
    }
).encode()


@dataclass
class Window:
    t: float  # seconds since the start of the load
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    rss_mib: float
    workers: int


@dataclass
class Result:
    target: str
    seconds: float
    rate: float
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)
    latencies: list[list[float]] = field(default_factory=list, repr=False)  # per window, not written out
    machine: dict[str, Any] = field(default_factory=dict)
    started_utc: str = ""


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pacer:
    """``clients`` threads sharing ``rate`` requests/s between them, for at most ``seconds``."""

    def __init__(
        self, url: str, body: bytes, content_type: str, *, rate: float, clients: int, seconds: float
    ) -> None:
        self.url, self.body, self.content_type = url, body, content_type
        self.interval = clients / rate
        self.clients, self.seconds = clients, seconds
        self.max_requests = int(rate * seconds / clients * 1.05) + 1  # bound per client
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.stop = threading.Event()

    def run_client(self, index: int) -> None:
        start = time.monotonic() + index * self.interval / self.clients
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=30, headers={"content-type": self.content_type}) as http:
            for number in range(self.max_requests):
                due = start + number * self.interval
                now = time.monotonic()
                if self.stop.is_set() or now > deadline:
                    return
                if due > now:
                    time.sleep(due - now)
                began = time.monotonic()
                kind = ""
                try:
                    response = http.post(self.url, content=self.body)
                    if response.status_code != 200:
                        kind = f"HTTP {response.status_code}"
                except httpx.HTTPError as error:
                    kind = type(error).__name__
                elapsed = time.monotonic() - began
                with self.lock:
                    if kind:
                        self.errors[kind] = self.errors.get(kind, 0) + 1
                    else:
                        self.latencies.append(elapsed)

    def take(self) -> tuple[list[float], int]:
        with self.lock:
            latencies, self.latencies = self.latencies, []
            errors = sum(self.errors.values())
        return latencies, errors


def _server_args(target: str, folder: Path, workers: int) -> tuple[list[str], str, bytes, str]:
    if target == "score":
        script = folder / "score.py"
        script.write_text(SCORE_PY)
        return (
            ["--entry-script", str(script), "--workers", str(workers)],
            "/score",
            SCORE_BODY,
            "application/json",
        )
    if target == "v2":
        import joblib  # the sklearn extra: a 4-feature model, as the iris example
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(0)
        features = rng.normal(size=(150, 4))
        model = LogisticRegression(max_iter=200).fit(features, (features[:, 0] > 0).astype(int))
        path = folder / "model.joblib"
        joblib.dump(model, path)
        return [str(path), "--workers", str(workers)], "/v2/models/model/infer", V2_BODY, "application/json"
    raise SystemExit(f"unknown target {target!r}: use score or v2")


def soak(
    *,
    seconds: float = 600,
    rate: float = 200,
    clients: int = 8,
    workers: int = 1,
    window: float = 10,
    warmup: float | None = None,
    target: str = "score",
    memory_margin_mib: float = 16,
    memory_margin_pct: float = 10,
    p99_factor: float = 2.0,
    p99_slack_ms: float = 10.0,
    log: Any = None,
) -> Result:
    """Run the soak and return its figures and verdict (``verdict["passed"]``)."""
    warmup = min(60.0, seconds * 0.2) if warmup is None else warmup
    result = Result(target=target, seconds=seconds, rate=rate)
    result.started_utc = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result.machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="prebake-soak-") as folder:
        args, path, body, content_type = _server_args(target, Path(folder), workers)
        with ServerProcess([*args, "--timeout-ms", "30000"]) as server:
            with httpx.Client(timeout=10) as warm:  # the first request pays for lazy imports
                assert (
                    warm.post(
                        server.url + path, content=body, headers={"content-type": content_type}
                    ).status_code
                    == 200
                )
            pacer = Pacer(server.url + path, body, content_type, rate=rate, clients=clients, seconds=seconds)
            threads = [
                threading.Thread(target=pacer.run_client, args=(i,), daemon=True) for i in range(clients)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            last_errors = 0
            for _ in range(int(seconds / window) + 1):  # bounded: one sample per window
                time.sleep(max(0.0, began + (len(result.windows) + 1) * window - time.monotonic()))
                latencies, errors = pacer.take()
                pids = [server.pid, *server.worker_pids()]
                sample = Window(
                    t=round(time.monotonic() - began, 1),
                    requests=len(latencies) + errors - last_errors,
                    errors=errors - last_errors,
                    p50_ms=round(_percentile(latencies, 0.50) * 1000, 2),
                    p99_ms=round(_percentile(latencies, 0.99) * 1000, 2),
                    rss_mib=round(sum(_rss_mib(pid) for pid in pids), 1),
                    workers=len(pids) - 1,
                )
                last_errors = errors
                result.windows.append(sample)
                result.latencies.append(latencies)
                if log:
                    print(json.dumps(asdict(sample)), file=log, flush=True)
                if sample.t >= seconds:
                    break
            pacer.stop.set()
            for thread in threads:
                thread.join(35)
            result.errors = sum(pacer.errors.values())
            result.error_kinds = dict(pacer.errors)
    result.requests = sum(w.requests for w in result.windows)
    result.verdict = _verdict(result, warmup, memory_margin_mib, memory_margin_pct, p99_factor, p99_slack_ms)
    return result


def _verdict(
    result: Result,
    warmup: float,
    margin_mib: float,
    margin_pct: float,
    p99_factor: float,
    p99_slack_ms: float,
) -> dict[str, Any]:
    # The first window always counts as warm-up: it holds the server's first requests.
    indexes = [i for i, w in enumerate(result.windows) if i > 0 and w.t > warmup and w.requests > 0]
    indexes = indexes or [len(result.windows) - 1]
    steady = [result.windows[i] for i in indexes]
    first, last = steady[0].rss_mib, steady[-1].rss_mib
    peak = max(w.rss_mib for w in steady)
    allowed = max(margin_mib, first * margin_pct / 100)
    p99s = [w.p99_ms for w in steady if not math.isnan(w.p99_ms)]
    median_p99 = statistics.median(p99s) if p99s else math.nan
    worst_p99 = max(p99s) if p99s else math.nan
    # Stable p99: the second half of the steady run is no worse than p99_factor times the first half.
    half = len(indexes) // 2 or 1
    early = [x for i in indexes[:half] for x in result.latencies[i]]
    late = [x for i in indexes[half:] for x in result.latencies[i]] or early
    p99_early, p99_late = _percentile(early, 0.99) * 1000, _percentile(late, 0.99) * 1000
    checks = {
        "memory_flat": peak - first <= allowed,
        "no_errors": result.errors == 0,
        "p99_stable": bool(early) and p99_late <= p99_factor * p99_early + p99_slack_ms,
    }
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "rss_after_warmup_mib": first,
        "rss_at_end_mib": last,
        "rss_peak_mib": peak,
        "rss_growth_mib": round(peak - first, 1),
        "rss_margin_mib": round(allowed, 1),
        "p99_first_half_ms": round(p99_early, 2),
        "p99_second_half_ms": round(p99_late, 2),
        "p99_median_window_ms": median_p99,
        "p99_worst_window_ms": worst_p99,
        "p99_allowed": f"second half <= {p99_factor} x first half + {p99_slack_ms} ms",
        "achieved_rate": round(result.requests / max(result.seconds, 1e-9), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=200, help="requests per second, all clients together")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--window", type=float, default=10)
    parser.add_argument("--target", choices=["score", "v2"], default="score")
    parser.add_argument("--memory-margin-mib", type=float, default=16)
    parser.add_argument("--memory-margin-pct", type=float, default=10)
    parser.add_argument("--p99-factor", type=float, default=2.0)
    parser.add_argument(
        "--p99-slack-ms", type=float, default=10.0, help="scheduler noise allowed on a shared machine"
    )
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    options = parser.parse_args(argv)
    result = soak(
        seconds=options.seconds,
        rate=options.rate,
        clients=options.clients,
        workers=options.workers,
        window=options.window,
        target=options.target,
        memory_margin_mib=options.memory_margin_mib,
        memory_margin_pct=options.memory_margin_pct,
        p99_factor=options.p99_factor,
        p99_slack_ms=options.p99_slack_ms,
        log=sys.stderr,
    )
    figures = asdict(result)
    figures.pop("latencies")
    document = json.dumps(figures, indent=2)
    if options.out:
        options.out.write_text(document)
    print(json.dumps({"requests": result.requests, "errors": result.errors, **result.verdict}, indent=2))
    return 0 if result.verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
