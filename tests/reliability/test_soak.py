"""Soak: a real server at a steady paced load; memory stays flat and no request fails.

CI runs 20 seconds; PREBAKE_SLOW=1 runs bench/soak.py's full 10 minutes. The short run does not judge
p99 (20 seconds on a shared 2-core machine measure the neighbours, not the server); the long one does,
as a trend between its two halves.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .helpers import record

BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prebake_bench_soak", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_short_soak_keeps_memory_flat_with_no_errors() -> None:
    """20 s at 100 requests/s on /score: every request succeeds and resident memory grows less than the margin."""
    soak = _soak_module()
    result = soak.soak(seconds=20, rate=100, clients=4, window=4, warmup=4)
    record("soak-short", {"requests": result.requests, "errors": result.error_kinds, **result.verdict})
    assert result.requests > 1000
    assert result.verdict["checks"]["no_errors"], result.error_kinds
    assert result.verdict["checks"]["memory_flat"], result.verdict


@pytest.mark.slow
def test_ten_minute_soak_passes_its_verdict() -> None:
    """10 minutes at 200 requests/s: no error, memory flat within its margin, p99 of the second half within bounds of the first."""
    soak = _soak_module()
    result = soak.soak(seconds=600, rate=200)
    record("soak-600", {"requests": result.requests, "errors": result.error_kinds, **result.verdict})
    assert result.verdict["passed"], result.verdict
