"""The statistics extension of Open Inference Protocol V2, as Triton defines it: per-model counts and
cumulative durations, read by perf_analyzer (it asks before measuring), tritonclient's
``get_inference_statistics`` and dashboards written for Triton.

prebake times the whole request inside the server (``success``/``fail``), the model's predict call
(``compute_infer``, a batch's time for each request in it) and the rest as ``queue`` (waiting for a
scoring thread or for a batch to form). Input and output conversion are not timed apart: their
durations are 0. No response cache: cache hits and misses are 0.
"""

from __future__ import annotations

from typing import Any

from prebake.server.metrics import INFERENCE_FIELDS


def model_statistics(
    totals: dict[str, dict[Any, Any]], models: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Triton's ``model_stats`` entries for ``models`` (name, version) from ``Metrics.statistics()``."""
    out = []
    for name, version in models:
        row = dict(
            zip(
                INFERENCE_FIELDS,
                totals["inferences"].get((name,), [0.0] * len(INFERENCE_FIELDS)),
                strict=True,
            )
        )
        executions = sorted(
            (int(rows), value) for (model, rows), value in totals["executions"].items() if model == name
        )
        success = row["success"]
        out.append(
            {
                "name": name,
                "version": version,
                "last_inference": int(totals["last_inference"].get((name,), 0)),
                "inference_count": int(sum(rows * count for rows, (count, _) in executions)),
                "execution_count": int(sum(count for _, (count, _) in executions)),
                "inference_stats": {
                    "success": _duration(success, row["success_s"]),
                    "fail": _duration(row["fail"], row["fail_s"]),
                    "queue": _duration(success, row["queue_s"]),
                    "compute_input": _duration(success, 0.0),
                    "compute_infer": _duration(success, row["compute_s"]),
                    "compute_output": _duration(success, 0.0),
                    "cache_hit": _duration(0, 0.0),
                    "cache_miss": _duration(0, 0.0),
                },
                "batch_stats": [
                    {
                        "batch_size": rows,
                        "compute_input": _duration(count, 0.0),
                        "compute_infer": _duration(count, seconds),
                        "compute_output": _duration(count, 0.0),
                    }
                    for rows, (count, seconds) in executions
                ],
                "memory_usage": [],
            }
        )
    return out


def _duration(count: float, seconds: float) -> dict[str, int]:
    return {"count": int(count), "ns": int(seconds * 1e9)}
