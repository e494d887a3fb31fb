"""The benchmark: prebake against azmlinfsrv, MLServer and a bare Starlette floor, in one run, as ratios.

    .venv/bin/python bench/run.py            # full run (~12 min), writes docs/benchmarks.md
    .venv/bin/python bench/run.py --quick    # a few minutes: shorter runs, concurrency 1 and 32

Each server is pinned to core 0 (``taskset -c 0``); wrk and this script run on core 1. Per server, workload
and concurrency: requests/s, rows/s, p50/p99 latency and errors (wrk, one thread, keep-alive connections,
a warm-up run discarded before each measured run). Per server: cold start (spawn to first successful
prediction, median of several spawns) and VmRSS of its worker after the load. Results go to
``.bench/results/<time>.json`` and, for a full run, ``docs/benchmarks.md``.

Two suites:
- ``azure`` (issue #3): the same score.py under azmlinfsrv 1.5.1 and prebake, and the floor;
  iris LogisticRegression 1 row/request and a 100-tree forest 64 rows/request.
- ``batching`` (issue #4): iris over Open Inference Protocol V2 JSON, 1 row/request: prebake with adaptive
  batching off and on, MLServer 1.7.1 with adaptive batching off and on, and the floor (one predict a request).
- ``protocols`` (issue #4): iris, 1 row/request, no batching anywhere: prebake over V2 and KServe V1 against
  MLServer 1.7.1 (V2) and KServe 0.21's model server (V1 and V2).
- ``mlflow`` (issue #15): the iris model saved by mlflow, 1 and 64 rows a request as ``dataframe_split`` JSON to
  ``/invocations``: ``prebake serve DIR`` against ``mlflow models serve`` (3.17.2) and MLServer 1.7.1 with
  mlserver-mlflow; cold start for each.

    .venv/bin/python bench/run.py --render A.json B.json   # docs/benchmarks.md from saved runs, merged
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import models, peers, report, servers  # noqa: E402

CLIENT_CPU = "1"
WRK_LUA = servers.ROOT / "bench" / "wrk" / "post.lua"
RESULTS = servers.WORK / "results"


@dataclass(frozen=True, slots=True)
class Plan:
    concurrency: tuple[int, ...]
    warmup_s: int
    duration_s: int
    rounds: int  # each server measured this many times per concurrency, interleaved; the best round counts
    cold_starts: int


FULL = Plan(concurrency=(1, 8, 32), warmup_s=1, duration_s=10, rounds=2, cold_starts=5)
QUICK = Plan(concurrency=(1, 32), warmup_s=1, duration_s=4, rounds=1, cold_starts=3)

SUITES: dict[str, tuple[tuple[str, ...], tuple[models.Workload, ...]]] = {
    "azure": (("floor", "azmlinfsrv", "prebake"), (models.IRIS, models.FOREST)),
    "batching": (
        ("floor-v2", "prebake-v2", "prebake-v2-batch", "mlserver", "mlserver-batch"),
        (models.IRIS,),
    ),
    "protocols": (("prebake-v2", "prebake-v1", "mlserver", "kserve", "kserve-v2"), (models.IRIS,)),
    "mlflow": (
        ("prebake-mlflow", "mlflow", "mlserver-mlflow"),
        (models.MLFLOW_IRIS, models.MLFLOW_IRIS_64),
    ),
}


@dataclass(slots=True)
class Load:
    concurrency: int
    requests_s: float
    rows_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_share: float  # server CPU seconds / wall seconds: near 1.0 means it had its whole core
    req_per_cpu_s: float  # requests per CPU second of the server: what it would do alone on the core
    note: str = ""


@dataclass(slots=True)
class ServerResult:
    suite: str
    server: str
    workload: str
    status: str = "ok"  # "ok" or "not run (why)"
    loads: list[Load] = field(default_factory=list)
    cold_start_s: float | None = None
    cold_starts_s: list[float] = field(default_factory=list)
    worker_rss_mb: float | None = None
    sample: str = ""


def wrk(port: int, path: str, body_file: Path, concurrency: int, duration_s: int) -> dict[str, int | float]:
    argv = [
        "taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{concurrency}", f"-d{duration_s}s",
        "--timeout", "5s", "--latency", "-s", str(WRK_LUA), f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(
        argv,
        env={**os.environ, "BENCH_BODY": str(body_file)},
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=False,
    )
    match = re.search(r"^BENCH_JSON (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk gave no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    stats: dict[str, int | float] = json.loads(match.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    stats["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return stats


def measure_once(running: servers.Running, plan: Plan, body_file: Path, concurrency: int) -> Load:
    wrk(running.port, running.launch.path, body_file, concurrency, plan.warmup_s)
    cpu_before, wall_before = running.cpu_s(), time.perf_counter()
    s = wrk(running.port, running.launch.path, body_file, concurrency, plan.duration_s)
    cpu = running.cpu_s() - cpu_before
    wall = time.perf_counter() - wall_before
    rps = s["requests"] / (s["duration_us"] / 1e6)
    errors = int(s["non2xx"] + s["connect"] + s["read"] + s["write"] + s["timeout"])
    note = f"non2xx={s['non2xx']} connect={s['connect']} read={s['read']} write={s['write']} timeout={s['timeout']}"
    return Load(
        concurrency,
        rps,
        rps * running.workload.rows,
        s["p50_us"] / 1000,
        s["p99_us"] / 1000,
        errors,
        cpu / wall,
        s["requests"] / cpu if cpu else 0.0,
        note if errors else "",
    )


def cold_starts(server: servers.Server, workload: models.Workload, times: int, log_dir: Path) -> list[float]:
    found = []
    for _ in range(times):
        with servers.Running(server, workload, log_dir) as running:
            found.append(running.ready_s)
    return found


def bench_workload(
    suite: str, names: list[str], workload: models.Workload, plan: Plan, log_dir: Path
) -> list[ServerResult]:
    """Start every server at once (idle ones cost nothing), then measure them round-robin, so that
    whatever else the machine is doing falls on all of them alike; the best of ``plan.rounds`` counts."""
    results = {name: ServerResult(suite, name, workload.name) for name in names}
    stack = contextlib.ExitStack()
    running: dict[str, servers.Running] = {}
    with stack:
        for name in names:
            server = servers.SERVERS[name]
            try:
                running[name] = stack.enter_context(servers.Running(server, workload, log_dir))
                results[name].sample = running[name].sample.decode(errors="replace")
            except (servers.NotAvailable, RuntimeError, OSError, subprocess.TimeoutExpired) as why:
                results[name].status = f"not run ({why})"
                print(f"  {name:<17} {results[name].status}", flush=True)
        body_files = {}
        for protocol in {servers.SERVERS[n].protocol for n in running}:
            body_files[protocol] = log_dir / f"body-{workload.name}-{protocol}.json"
            body_files[protocol].write_bytes(servers.body(workload, protocol))
        for concurrency in plan.concurrency:
            best: dict[str, Load] = {}
            for _ in range(plan.rounds):
                for name, r in running.items():
                    try:
                        load = measure_once(r, plan, body_files[r.server.protocol], concurrency)
                    except (RuntimeError, subprocess.TimeoutExpired) as error:
                        print(f"  {name:<17} c={concurrency}: {error}", flush=True)
                        continue
                    print(
                        f"  {name:<17} {workload.name:<7} c={concurrency:<3} {load.requests_s:9.0f} req/s "
                        f"p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:7.2f} ms  errors {load.errors}  "
                        f"cpu {load.cpu_share:4.2f}  {load.req_per_cpu_s:7.0f} req/cpu-s",
                        flush=True,
                    )
                    if name not in best or load.requests_s > best[name].requests_s:
                        best[name] = load
            for name, load in best.items():
                results[name].loads.append(load)
        for name, r in running.items():
            results[name].worker_rss_mb = r.worker_rss_mb()
    return list(results.values())


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for dist in (
        "prebake",
        "scikit-learn",
        "numpy",
        "joblib",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "orjson",
    ):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "-"
    for peer, dist in (
        ("azmlinfsrv", "azureml-inference-server-http"),
        ("mlserver", "mlserver"),
        ("mlserver", "mlserver-sklearn"),
        ("kserve", "kserve"),
    ):
        found[dist] = (
            peers.installed_version(peers.PEERS[peer], dist) if peers.works(peers.PEERS[peer]) else "-"
        )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False, timeout=10)
    found["wrk"] = (wrk_version.stdout + wrk_version.stderr).split("\n")[0].split(" [")[0].replace("wrk ", "")
    commit = subprocess.run(
        ["git", "-C", str(servers.ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    found["prebake commit"] = commit.stdout.strip()
    return found


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
    model = re.search(r"Model name:\s*(.+)", lscpu)
    cpus = re.search(r"^CPU\(s\):\s*(\d+)", lscpu, re.MULTILINE)
    mem_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    return (
        f"{model.group(1).strip() if model else '?'}, {cpus.group(1) if cpus else '?'} vCPU, "
        f"{mem_kb / 1024 / 1024:.0f} GiB, {platform.platform()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="prebake benchmark against its peers")
    parser.add_argument("--quick", action="store_true", help="a few-minute subset (shorter runs, c=1 and 32)")
    parser.add_argument("--suite", choices=sorted(SUITES), action="append", help="run only this suite")
    parser.add_argument("--server", action="append", help="run only these servers")
    parser.add_argument("--rounds", type=int, help="measure each server this many times per concurrency")
    parser.add_argument("--no-peers", action="store_true", help="do not create missing peer venvs")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                        help="write docs/benchmarks.md (default: on for a full run)")  # fmt: skip
    parser.add_argument("--render", nargs="+", type=Path, metavar="RESULTS_JSON",
                        help="only write docs/benchmarks.md from these saved runs, merged")  # fmt: skip
    args = parser.parse_args(argv)
    if args.render:
        write_docs(page(report.merge([json.loads(p.read_text()) for p in args.render])))
        return 0
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    os.sched_setaffinity(0, {int(CLIENT_CPU)})  # keep this script off the server's core

    for workload in models.WORKLOADS.values():
        models.ensure(workload)
    chosen_suites = args.suite or list(SUITES)
    if "mlflow" in chosen_suites:
        models.ensure(models.MLFLOW_IRIS)
    if not args.no_peers:
        wanted = ["prebake", "azmlinfsrv", "mlserver", "kserve"]
        wanted += ["mlflow", "mlserver-mlflow"] if "mlflow" in chosen_suites else []
        for name in wanted:
            try:
                print(f"peer {name}: {peers.ensure(peers.PEERS[name])}", flush=True)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                print(f"peer {name}: {error}", flush=True)

    started = datetime.now(UTC)
    load_before = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="logs-", dir=RESULTS))
    results: list[ServerResult] = []
    for suite in chosen_suites:
        names, workloads = SUITES[suite]
        print(f"suite {suite}", flush=True)
        for workload in workloads:
            chosen = [n for n in names if not args.server or n in args.server]
            found = bench_workload(suite, chosen, workload, plan, log_dir)
            results.extend(found)
            if workload not in (models.IRIS, models.MLFLOW_IRIS):
                continue
            for r in found:
                every = suite in ("azure", "mlflow")
                if r.status != "ok" or not (every or r.server.startswith(("mlserver", "kserve"))):
                    continue
                try:
                    r.cold_starts_s = cold_starts(
                        servers.SERVERS[r.server], workload, plan.cold_starts, log_dir
                    )
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                    print(f"  {r.server:<17} cold start failed: {error}", flush=True)
                    continue
                r.cold_start_s = statistics.median(r.cold_starts_s)
                print(f"  {r.server:<17} cold start {r.cold_start_s:.2f} s", flush=True)

    record = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round((datetime.now(UTC) - started).total_seconds()),
        "quick": args.quick,
        "plan": asdict(plan),
        "machine": machine(),
        "loadavg": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "versions": versions(),
        "batch_settings": servers.BATCH,
        "results": [asdict(r) for r in results],
    }
    out = RESULTS / f"{started.strftime('%Y%m%dT%H%M%S')}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(record, indent=2))
    markdown = page(record)
    print(markdown)
    print(f"results: {out}; server logs: {log_dir}")
    if args.docs if args.docs is not None else not args.quick:
        write_docs(markdown)
    return 0


def page(record: dict[str, object]) -> str:
    """docs/benchmarks.md for ``record``. Figures measured elsewhere (GPU, extension start-up) are kept in
    docs/benchmarks-*.md and carried in whole, so one page holds every benchmark."""
    markdown = report.render(record)
    for part in sorted((servers.ROOT / "docs").glob("benchmarks-*.md")):
        markdown = markdown.rstrip("\n") + "\n\n" + part.read_text()
    return markdown


def write_docs(markdown: str) -> None:
    (servers.ROOT / "docs").mkdir(exist_ok=True)
    (servers.ROOT / "docs" / "benchmarks.md").write_text(markdown)
    print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    sys.exit(main())
