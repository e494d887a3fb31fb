"""Turn one run's record (see run.py) into docs/benchmarks.md: the tables and the targets, met or missed.

Every ratio compares servers measured in the same run on the same machine, as the project's rules ask.
    python bench/report.py .bench/results/<time>.json      # re-render a saved run
    python bench/report.py azure.json batching.json        # one page from runs of one suite each
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Issue #4's "no slower than unbatched" at concurrency 1 and 8 is judged with this much run-to-run noise.
NOISE = 0.03


def _index(record: dict[str, Any], suite: str) -> dict[tuple[str, str], dict[str, Any]]:
    """One suite's results by (server, workload): a server may be measured in several suites."""
    return {(r["server"], r["workload"]): r for r in record["results"] if r["suite"] == suite}


def _load(result: dict[str, Any] | None, concurrency: int) -> dict[str, Any] | None:
    if not result or result["status"] != "ok":
        return None
    return next((x for x in result["loads"] if x["concurrency"] == concurrency), None)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(record: dict[str, Any], suite: str) -> list[str]:
    lines = [
        "| server | workload | c | requests/s | rows/s | p50 ms | p99 ms | errors | server CPU | req/CPU-s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["results"]:
        if r["suite"] != suite:
            continue
        if r["status"] != "ok":
            lines.append(f"| {r['server']} | {r['workload']} | | {r['status']} | | | | | | |")
            continue
        for x in r["loads"]:
            flag = f"**{x['errors']}** ({x['note']})" if x["errors"] else "0"
            lines.append(
                f"| {r['server']} | {r['workload']} | {x['concurrency']} | {x['requests_s']:,.0f} | "
                f"{x['rows_s']:,.0f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {flag} | "
                f"{x.get('cpu_share', 0):.2f} | {x.get('req_per_cpu_s', 0):,.0f} |"
            )
    return lines


def _per_server(record: dict[str, Any], suite: str) -> list[str]:
    lines = [
        "| server | cold start s (median) | cold starts s | worker RSS MB (iris) | worker RSS MB (forest) |",
        "|---|---:|---|---:|---:|",
    ]
    idx = _index(record, suite)
    seen: list[str] = []
    for r in record["results"]:
        if r["suite"] == suite and r["server"] not in seen:
            seen.append(r["server"])
    for name in seen:
        iris, forest = idx.get((name, "iris")), idx.get((name, "forest"))
        cold = iris.get("cold_start_s") if iris else None
        starts = ", ".join(f"{s:.2f}" for s in iris.get("cold_starts_s", [])) if iris else ""
        lines.append(
            f"| {name} | {_fmt(cold, '.2f')} | {starts} | "
            f"{_fmt(iris and iris.get('worker_rss_mb'), '.0f')} | {_fmt(forest and forest.get('worker_rss_mb'), '.0f')} |"
        )
    return lines


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**missed**")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _both(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """a's throughput over b's (same workload, so requests and rows give one ratio): as measured, and per
    CPU-second each server used, which other work on the machine disturbs far less."""
    if not a or not b:
        return None, None
    return _ratio(a["requests_s"], b["requests_s"]), _ratio(a.get("req_per_cpu_s"), b.get("req_per_cpu_s"))


def _ratio_row(label: str, pair: tuple[float | None, float | None], need: float, strict: bool = False) -> str:
    measured, per_cpu = pair

    def ok(x: float | None) -> bool | None:
        return None if x is None else (x > need if strict else x >= need)

    return (
        f"| {label} | {_fmt(measured, '.2f')}x (per CPU-s {_fmt(per_cpu, '.2f')}x) | "
        f"{_verdict(ok(measured))} (per CPU-s {_verdict(ok(per_cpu))}) |"
    )


def _targets_azure(record: dict[str, Any]) -> list[str]:
    idx = _index(record, "azure")
    lines = ["| target (issue #3) | measured | verdict |", "|---|---|---|"]
    for workload, need in (("iris", 2.5), ("forest", 1.5)):
        for c in (8, 32):
            pb = _load(idx.get(("prebake", workload)), c)
            az = _load(idx.get(("azmlinfsrv", workload)), c)
            fl = _load(idx.get(("floor", workload)), c)
            lines.append(
                _ratio_row(f"{workload} c={c}: requests/s >= {need}x azmlinfsrv", _both(pb, az), need)
            )
            lines.append(_ratio_row(f"{workload} c={c}: requests/s >= 0.7x floor", _both(pb, fl), 0.7))
            p_pb, p_az = pb and pb["p99_ms"], az and az["p99_ms"]
            ok = None if p_pb is None or p_az is None else p_pb <= p_az
            lines.append(
                f"| {workload} c={c}: p99 <= azmlinfsrv's | {_fmt(p_pb, '.2f')} vs {_fmt(p_az, '.2f')} ms | "
                f"{_verdict(ok)} |"
            )
    pb_iris = idx.get(("prebake", "iris"))
    cold = pb_iris.get("cold_start_s") if pb_iris and pb_iris["status"] == "ok" else None
    lines.append(
        f"| cold start <= 1.0 s | {_fmt(cold, '.2f')} s | {_verdict(None if cold is None else cold <= 1.0)} |"
    )
    for workload in ("iris", "forest"):
        pb, az = idx.get(("prebake", workload)), idx.get(("azmlinfsrv", workload))
        m_pb = pb.get("worker_rss_mb") if pb and pb["status"] == "ok" else None
        m_az = az.get("worker_rss_mb") if az and az["status"] == "ok" else None
        ok = None if m_pb is None or m_az is None else m_pb <= m_az
        lines.append(
            f"| worker RSS ({workload}) <= azmlinfsrv's | {_fmt(m_pb, '.0f')} vs {_fmt(m_az, '.0f')} MB | "
            f"{_verdict(ok)} |"
        )
    return lines


def _targets_batching(record: dict[str, Any]) -> list[str]:
    idx = _index(record, "batching")
    lines = ["| target (issue #4) | measured | verdict |", "|---|---|---|"]

    def load(server: str, c: int) -> dict[str, Any] | None:
        return _load(idx.get((server, "iris")), c)

    def p99(server: str, c: int) -> float | None:
        x = load(server, c)
        return x and x["p99_ms"]

    batched = "prebake-v2-batch"
    pair = _both(load(batched, 32), load("prebake-v2", 32))
    lines.append(_ratio_row("c=32: rows/s >= 1.5x prebake unbatched", pair, 1.5))
    lines.append(
        _ratio_row(
            "c=32: rows/s above the unbatched floor",
            _both(load(batched, 32), load("floor-v2", 32)),
            1.0,
            strict=True,
        )
    )
    lines.append(
        _ratio_row(
            "c=32: rows/s >= 2x MLServer batched", _both(load(batched, 32), load("mlserver-batch", 32)), 2.0
        )
    )
    for c in (1, 8):
        pair = _both(load(batched, c), load("prebake-v2", c))
        lines.append(
            _ratio_row(f"c={c}: rows/s no slower than unbatched (within {NOISE:.0%})", pair, 1 - NOISE)
        )
    for c in (1, 8, 32):
        a, b = p99("prebake-v2-batch", c), p99("prebake-v2", c)
        ok = None if a is None or b is None else a <= b
        lines.append(
            f"| c={c}: p99 <= unbatched | {_fmt(a, '.2f')} vs {_fmt(b, '.2f')} ms | {_verdict(ok)} |"
        )
    return lines


def _targets_protocols(record: dict[str, Any]) -> list[str]:
    """Issue #4: prebake ahead of MLServer and KServe on requests/s at every concurrency, p99 no higher,
    each protocol against the peer that speaks it."""
    idx = _index(record, "protocols")
    lines = ["| target (issue #4) | measured | verdict |", "|---|---|---|"]
    pairs = (("prebake-v2", "mlserver"), ("prebake-v2", "kserve-v2"), ("prebake-v1", "kserve"))
    for c in record["plan"]["concurrency"]:
        for ours, peer in pairs:
            a, b = _load(idx.get((ours, "iris")), c), _load(idx.get((peer, "iris")), c)
            lines.append(_ratio_row(f"c={c}: {ours} requests/s above {peer}", _both(a, b), 1.0, strict=True))
            p_a, p_b = a and a["p99_ms"], b and b["p99_ms"]
            ok = None if p_a is None or p_b is None else p_a <= p_b
            lines.append(
                f"| c={c}: {ours} p99 <= {peer} | {_fmt(p_a, '.2f')} vs {_fmt(p_b, '.2f')} ms | {_verdict(ok)} |"
            )
    return lines


def _targets_mlflow(record: dict[str, Any]) -> list[str]:
    """Issue #15: prebake >= 3x `mlflow models serve` and >= 2x MLServer's mlflow runtime on requests/s at
    c=8 and c=32, p99 lower, for 1 and 64 rows a request."""
    idx = _index(record, "mlflow")
    lines = ["| target (issue #15) | measured | verdict |", "|---|---|---|"]
    for workload in ("mlflow-iris", "mlflow-iris-64"):
        for c in (8, 32):
            if c not in record["plan"]["concurrency"]:
                continue
            ours = _load(idx.get(("prebake-mlflow", workload)), c)
            for peer, need in (("mlflow", 3.0), ("mlserver-mlflow", 2.0)):
                theirs = _load(idx.get((peer, workload)), c)
                lines.append(
                    _ratio_row(f"{workload} c={c}: requests/s >= {need:g}x {peer}", _both(ours, theirs), need)
                )
                p_a, p_b = ours and ours["p99_ms"], theirs and theirs["p99_ms"]
                ok = None if p_a is None or p_b is None else p_a < p_b
                lines.append(
                    f"| {workload} c={c}: p99 below {peer} | {_fmt(p_a, '.2f')} vs {_fmt(p_b, '.2f')} ms | {_verdict(ok)} |"
                )
    return lines


def _loads(record: dict[str, Any], start: int) -> str:
    values = record.get("loadavg") or []
    return "/".join(f"{x:.2f}" for x in values[start : start + 3]) or "?"


def render(record: dict[str, Any]) -> str:
    v = record["versions"]
    plan = record["plan"]
    out = [
        "# Benchmarks",
        "",
        f"Run {record['date']}{' (--quick)' if record['quick'] else ''} on {record['machine']}, "
        f"by `.venv/bin/python bench/run.py` ({record['seconds']} s). Load average (1/5/15 min) "
        f"before {_loads(record, 0)}, after {_loads(record, 3)}: other work on the machine shows there, and "
        f"falls on all servers alike because they are measured round-robin ({plan['rounds']} round(s), "
        f"best counts).",
        "",
        f"Each server pinned to core 0 (`taskset -c 0`), wrk 1 thread on core 1; per concurrency a "
        f"{plan['warmup_s']} s warm-up then {plan['duration_s']} s measured, keep-alive connections. "
        f"Cold start: spawn to first successful prediction, median of {plan['cold_starts']}. Worker RSS: VmRSS of the "
        f"largest leaf process (the worker, not a supervisor or gunicorn master) after the load. Every server "
        f"runs with OMP/OPENBLAS/MKL_NUM_THREADS=1. A run with errors (non-2xx or socket errors) is flagged in bold.",
        "",
        "Models (bench/models.py): `iris` = LogisticRegression on the iris data, 1 row per request; `forest` = "
        "100-tree RandomForestClassifier (max_depth 12) on synthetic `make_classification` data "
        "(10 features, 3 classes), 64 rows per request.",
        "",
        "prebake and the floor run from `.cache/peers/prebake` (this checkout, scikit-learn, joblib, starlette: no "
        "pandas, as in an sklearn image), each peer from its own venv, all with the same scikit-learn, joblib and numpy. "
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        "## Azure entry script (issue #3)",
        "",
        "The same `bench/scripts/score_*.py` under azmlinfsrv 1.5.1 (gunicorn, 1 worker) and `prebake serve "
        "--entry-script`; the floor is a bare Starlette + uvicorn (uvloop, httptools) app predicting on the event "
        "loop (bench/apps/floor.py).",
        "",
        *_table(record, "azure"),
        "",
        *_per_server(record, "azure"),
        "",
        *_targets_azure(record),
        "",
        "## Adaptive batching (issue #4)",
        "",
        f"iris over Open Inference Protocol V2 JSON (`POST /v2/models/iris/infer`), 1 row per request. Batching on: "
        f"max_batch_size {record['batch_settings']['max_batch_size']}, max delay "
        f"{record['batch_settings']['max_batch_delay_ms']} ms for both prebake and MLServer (its max_batch_time). "
        f"MLServer otherwise at its defaults; the floor predicts one row per call.",
        "",
        *_table(record, "batching"),
        "",
        *_per_server(record, "batching"),
        "",
        *_targets_batching(record),
        "",
    ]
    if any(r["suite"] == "protocols" for r in record["results"]):
        out += [
            "## Protocols against their peers (issue #4)",
            "",
            "iris, 1 row per request, no batching anywhere: prebake (`max_batch_size` 1) over Open Inference "
            "Protocol V2 JSON and KServe V1 (`instances`); MLServer 1.7.1 (sklearn runtime, V2); KServe 0.21's "
            "model server (FastAPI, one worker) over V1 and V2, around the joblib model (bench/apps/kserve_sklearn.py: "
            "KServe's sklearn server is not on PyPI, so this is the same thin kserve.Model, written here).",
            "",
            *_table(record, "protocols"),
            "",
            *_per_server(record, "protocols"),
            "",
            *_targets_protocols(record),
            "",
        ]
    if any(r["suite"] == "mlflow" for r in record["results"]):
        out += [
            "## MLflow models (issue #15)",
            "",
            "The iris LogisticRegression saved by `mlflow.sklearn.save_model` (cloudpickle, column signature), "
            "`dataframe_split` JSON to `/invocations`, 1 row (`mlflow-iris`) and 64 rows (`mlflow-iris-64`) a "
            "request: `prebake serve DIR`, `mlflow models serve --env-manager local` (one uvicorn worker) and "
            "MLServer 1.7.1 with mlserver-mlflow 1.7.1 (its MLflow-compatible `/invocations`, inference in the "
            "HTTP process).",
            "",
            *_table(record, "mlflow"),
            "",
            *_per_server(record, "mlflow"),
            "",
            *_targets_mlflow(record),
            "",
        ]
    return "\n".join(out)


def merge(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from several runs (e.g. ``--suite azure`` then ``--suite batching``): results of all,
    the rest from the latest, with every run's date and load average kept in the header."""
    latest = dict(records[-1])
    latest["results"] = [r for record in records for r in record["results"]]
    if len(records) > 1:
        latest["date"] = " and ".join(
            f"{rec['date']} ({', '.join(sorted({r['suite'] for r in rec['results']}))})" for rec in records
        )
        latest["seconds"] = sum(rec["seconds"] for rec in records)
    return latest


if __name__ == "__main__":
    print(render(merge([json.loads(Path(arg).read_text()) for arg in sys.argv[1:]])))
