"""The executor: work runs off the loop, results and errors come back, deadlines answer 504."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from prebake.errors import ScoringTimeout, ServerBusy
from prebake.server.executor import Executor


def test_work_runs_on_a_scoring_thread_and_returns() -> None:
    """Calls run on a thread other than the loop's, and many results arrive in order of their awaits."""

    async def main() -> tuple[set[str], list[int]]:
        executor = Executor(2)
        executor.start(asyncio.get_running_loop())
        names: set[str] = set()

        def work(n: int) -> int:
            names.add(threading.current_thread().name)
            return n * n

        results = await asyncio.gather(*(executor.run(work, n) for n in range(100)))
        executor.close()
        return names, list(results)

    names, results = asyncio.run(main())
    assert results == [n * n for n in range(100)]
    assert names and all(name.startswith("prebake-scoring") for name in names)


def test_errors_reach_the_caller() -> None:
    """An exception raised in the work is raised at the await."""

    async def main() -> None:
        executor = Executor(1)
        executor.start(asyncio.get_running_loop())

        def fail(_: object) -> None:
            raise KeyError("boom")

        with pytest.raises(KeyError):
            await executor.run(fail, None)
        executor.close()

    asyncio.run(main())


def test_deadline_answers_timeout_and_the_next_call_runs_at_once() -> None:
    """Past the deadline the caller gets ScoringTimeout at once, and a fresh thread takes the next call
    while the stuck one sleeps on; a stuck call that only waits is not reported wedged."""

    async def main() -> tuple[float, float, list[str]]:
        executor = Executor(1, timeout_s=0.2)
        executor.start(asyncio.get_running_loop())
        reports: list[str] = []
        executor.on_wedged = reports.append
        started = time.monotonic()
        with pytest.raises(ScoringTimeout):
            await executor.run(time.sleep, 3)
        elapsed = time.monotonic() - started
        started = time.monotonic()
        assert await executor.run(abs, -5) == 5
        next_call = time.monotonic() - started
        await asyncio.sleep(1.3)
        executor.close()
        return elapsed, next_call, reports

    elapsed, next_call, reports = asyncio.run(main())
    assert elapsed < 1.0
    assert next_call < 0.5
    assert reports == []


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_stuck_call_that_keeps_a_core_busy_is_reported_wedged() -> None:
    """A call spinning past its deadline and the grace period after it makes the worker ask to be replaced."""

    async def main() -> list[str]:
        executor = Executor(1, timeout_s=0.2)
        executor.start(asyncio.get_running_loop())
        reports: list[str] = []
        executor.on_wedged = reports.append
        with pytest.raises(ScoringTimeout):
            await executor.run(_spin, 2.5)
        await asyncio.sleep(1.4)
        executor.close()
        return reports

    reports = asyncio.run(main())
    assert len(reports) == 1 and "past its timeout" in reports[0] and "of a core" in reports[0]


def test_closed_executor_refuses_with_retryable_error() -> None:
    """After close(), new work gets ServerBusy (503), which clients may retry elsewhere."""

    async def main() -> None:
        executor = Executor(1)
        executor.start(asyncio.get_running_loop())
        executor.close()
        with pytest.raises(ServerBusy):
            await executor.run(abs, -1)

    asyncio.run(main())
