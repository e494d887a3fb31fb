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


def test_deadline_answers_timeout_and_reports_a_wedged_thread() -> None:
    """Past the deadline the caller gets ScoringTimeout at once; a call still stuck later is reported wedged."""

    async def main() -> tuple[float, list[str]]:
        executor = Executor(1, timeout_s=0.2)
        executor.start(asyncio.get_running_loop())
        reports: list[str] = []
        executor.on_wedged = reports.append
        started = time.monotonic()
        with pytest.raises(ScoringTimeout):
            await executor.run(time.sleep, 3)
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.3)
        executor.close()
        return elapsed, reports

    elapsed, reports = asyncio.run(main())
    assert elapsed < 1.0
    assert len(reports) == 1 and "past its timeout" in reports[0]


def test_closed_executor_refuses_with_retryable_error() -> None:
    """After close(), new work gets ServerBusy (503), which clients may retry elsewhere."""

    async def main() -> None:
        executor = Executor(1)
        executor.start(asyncio.get_running_loop())
        executor.close()
        with pytest.raises(ServerBusy):
            await executor.run(abs, -1)

    asyncio.run(main())
