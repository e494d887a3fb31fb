"""Where scoring runs: a few dedicated threads, never the event loop.

The loop hands work to the threads through a queue and gets results back through one wake-up per burst
of completions (not one per result), which keeps the hand-over cheap at thousands of calls per second.
Deadlines are enforced on the loop side: a late call is answered 504 at once, and its thread is
replaced at once by a fresh one, so the next request does not queue behind it (a Python thread cannot
be killed: the stuck one is abandoned and exits when its call returns). A stuck call that keeps a core
busy past a grace period, or too many abandoned threads, make the executor report the worker as wedged
so it can be replaced (a process can be killed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

from prebake.errors import ScoringTimeout, ServerBusy

T = TypeVar("T")
logger = logging.getLogger("prebake.executor")

# The GIL hands over every 5 ms by default; with scoring threads busy that shows up as tail latency on
# the loop. A shorter interval lets the loop thread in sooner (measured in docs/benchmarks.md).
SWITCH_INTERVAL_S = 0.001
#: Abandoned threads (each stuck in a call past its deadline) a worker keeps before asking to be replaced.
MAX_ABANDONED = 4
#: A stuck call using more than this share of a core through the grace period is spinning, not waiting
#: (a waiting one uses next to none; a spinning one gets at least this much even on a busy machine).
SPINNING_SHARE = 0.2
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _restarting() -> ServerBusy:
    # Connection: close sends the client's next try through a new connection, to a live worker.
    return ServerBusy(
        "this worker is restarting; retry the request",
        headers=[("connection", "close"), ("retry-after", "1")],
    )


class _Item:
    __slots__ = ("future", "fn", "arg", "started", "expired", "thread")

    def __init__(self, future: asyncio.Future[Any], fn: Callable[[Any], Any], arg: Any) -> None:
        self.future = future
        self.fn = fn
        self.arg = arg
        self.started = 0.0
        self.expired = False
        self.thread: threading.Thread | None = None  # the scoring thread running it


class Executor:
    def __init__(
        self, threads: int = 1, *, timeout_s: float | None = None, name: str = "prebake-scoring"
    ) -> None:
        self.threads = threads
        self.timeout_s = timeout_s
        self.name = name
        self.on_wedged: Callable[[str], None] | None = None
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._done: deque[tuple[_Item, Any, BaseException | None]] = deque()
        self._wake_pending = False
        self._running: dict[int, _Item] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[threading.Thread] = []
        self._abandoned: set[int] = set()  # idents of threads stuck past a deadline, replaced already
        self._started_threads = 0
        self._closed = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        for _ in range(self.threads):
            self._start_thread()

    def _start_thread(self) -> None:
        # Daemon threads: a wedged run() must not keep a recycled worker process alive.
        thread = threading.Thread(target=self._work, name=f"{self.name}-{self._started_threads}", daemon=True)
        self._started_threads += 1
        thread.start()
        self._workers.append(thread)

    async def run(self, fn: Callable[[Any], T], arg: Any) -> T:
        """Run ``fn(arg)`` on a scoring thread; raise ScoringTimeout past the deadline."""
        loop = self._loop
        assert loop is not None, "Executor.start() was not called"
        if self._closed:
            raise _restarting()
        future: asyncio.Future[T] = loop.create_future()
        item = _Item(future, fn, arg)
        self._queue.put(item)
        if self.timeout_s is None:
            return await future
        handle = loop.call_later(self.timeout_s, self._expire, item)
        try:
            return await future
        finally:
            handle.cancel()

    def close(self) -> None:
        """Stop taking work; queued calls that have not started get a retryable 503."""
        self._closed = True
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.future.done():
                item.future.set_exception(_restarting())
        for _ in self._workers:
            self._queue.put(None)

    # -- scoring threads ---------------------------------------------------------------------------
    def _work(self) -> None:
        ident = threading.get_ident()
        queue, done = self._queue, self._done
        while True:
            item = queue.get()
            if item is None:
                return
            if item.expired:
                continue  # answered 504 while queued; do not spend time on it now
            item.started = time.monotonic()
            item.thread = threading.current_thread()
            self._running[ident] = item
            try:
                result, error = item.fn(item.arg), None
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request as it is
                result, error = None, exc
            self._running.pop(ident, None)
            if ident in self._abandoned:
                self._abandoned.discard(ident)
                return  # replaced while it was stuck: its late result has nobody to go to
            done.append((item, result, error))
            if not self._wake_pending:
                self._wake_pending = True
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:
                    return  # the loop is closed: the process is exiting

    # -- event loop ---------------------------------------------------------------------------------
    def _deliver(self) -> None:
        self._wake_pending = False
        done = self._done
        while done:
            item, result, error = done.popleft()
            future = item.future
            if future.done():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _expire(self, item: _Item) -> None:
        if item.future.done():
            return
        item.expired = True
        assert self.timeout_s is not None
        timeout_ms = int(self.timeout_s * 1000)
        item.future.set_exception(ScoringTimeout(f"Scoring timeout after {timeout_ms} ms"))
        thread = item.thread
        if thread is None or self._closed or thread.ident is None:
            return
        # The call is running: a fresh thread takes the next requests now, this one is left to finish.
        self._abandoned.add(thread.ident)
        self._workers.remove(thread)
        self._start_thread()
        logger.warning(
            "a scoring call passed its %d ms deadline; answered 504 and started a fresh scoring thread",
            timeout_ms,
        )
        if len(self._abandoned) > MAX_ABANDONED and self.on_wedged is not None:
            self.on_wedged(f"{len(self._abandoned)} scoring calls are stuck past their deadline")
            return
        # Give run() a grace period; one that keeps a core busy all along is worth a new process.
        grace = min(max(1.0, self.timeout_s / 2), 30.0)
        assert self._loop is not None
        self._loop.call_later(grace, self._check_spinning, item, thread, _cpu_seconds(thread), grace)

    def _check_spinning(self, item: _Item, thread: threading.Thread, cpu_before: float, grace: float) -> None:
        if item not in self._running.values() or self.on_wedged is None:
            return
        used = _cpu_seconds(thread) - cpu_before
        if used > grace * SPINNING_SHARE:
            stuck_for = time.monotonic() - item.started
            self.on_wedged(
                f"a scoring call has been running for {stuck_for:.1f} s, past its timeout, "
                f"using {used / grace:.0%} of a core"
            )


def _cpu_seconds(thread: threading.Thread) -> float:
    """CPU time a thread used so far (Linux: /proc/self/task/TID/stat; elsewhere 0)."""
    try:
        fields = open(f"/proc/self/task/{thread.native_id}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return 0.0
