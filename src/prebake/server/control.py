"""Repository control for the whole server: a load or unload answered by one worker acts on every worker.

The wanted state of each model that was loaded or unloaded through the API (with its configuration
overrides) is kept in one small file in the server's state directory, with a generation number. The
worker that takes the call applies it to itself, writes the file, and asks the supervisor (SIGUSR1)
to tell the other workers, which read the file, apply what changed, and note the generation they
reached; the call is answered once every live worker has, so after ``POST .../load`` returns, any
worker serves the model. A worker started later (a replacement) reads the file before it loads, so
it starts as the others are.

    state_dir/repository.state  {"generation": 3, "models": {"iris": {"loaded": false, "config": null}}}
    state_dir/workers.state     the live workers' pids, written by the supervisor
    state_dir/applied-PID       the generation a worker has applied
    state_dir/status-PID        "loading" or "ready": readiness is the whole server's (below)

Readiness is the server's, not one worker's: a probe answered by a ready worker while another still
loads would send traffic to the one that answers 503. So the server is ready once every worker that
listens is ready (a replacement worker loads before it listens, and does not hold the others back).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from prebake.errors import PrebakeError, ServerBusy

logger = logging.getLogger("prebake.control")

# Not *.json: the metrics snapshots beside them are.
STATE = "repository.state"
WORKERS = "workers.state"
APPLIED = "applied-"
STATUS = "status-"
SIGNAL = signal.SIGUSR1
SETTLE_TIMEOUT_S = 120.0  # loading can take long; the call waits this long for the other workers


@dataclass(frozen=True, slots=True)
class Wanted:
    loaded: bool
    config: dict[str, Any] | None = None
    url: str | None = None  # where a model loaded by path (SageMaker multi-model) lies


class Control:
    """One worker's side of repository control; ``None`` directory: a single worker, nothing shared."""

    def __init__(self, directory: Path | None, *, workers: int) -> None:
        self.directory = directory if workers > 1 else None
        self.applied = 0
        self._warned = False

    # -- the state file -------------------------------------------------------------------------------
    def wanted(self) -> tuple[int, dict[str, Wanted]]:
        """The generation and the wanted state of every model changed through the API."""
        if self.directory is None:
            return 0, {}
        try:
            doc = orjson.loads((self.directory / STATE).read_bytes())
        except (OSError, ValueError):
            return 0, {}
        models = {
            name: Wanted(bool(entry.get("loaded")), entry.get("config"), entry.get("url"))
            for name, entry in doc.get("models", {}).items()
        }
        return int(doc.get("generation", 0)), models

    def publish(self, name: str, wanted: Wanted) -> int:
        """Record ``wanted`` for ``name``, tell the other workers, and return the new generation."""
        assert self.directory is not None
        with self._locked():
            generation, models = self.wanted()
            models[name] = wanted
            generation += 1
            doc = {
                "generation": generation,
                "models": {
                    n: {"loaded": w.loaded, "config": w.config, "url": w.url} for n, w in models.items()
                },
            }
            _write(self.directory / STATE, orjson.dumps(doc))
        self.mark_applied(generation)
        with contextlib.suppress(ProcessLookupError):
            os.kill(os.getppid(), SIGNAL)  # the supervisor forwards it to every worker
        return generation

    def mark_applied(self, generation: int) -> None:
        self.applied = max(self.applied, generation)
        self._note(f"{APPLIED}{os.getpid()}", str(self.applied))

    async def settle(self, generation: int) -> None:
        """Wait until every live worker has applied ``generation``; 503 if some do not in time."""
        assert self.directory is not None
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            behind = [pid for pid in self._live() if self._applied_by(pid) < generation]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise ServerBusy(
                    f"workers {', '.join(map(str, behind))} have not applied the change yet; "
                    "check the repository index again shortly"
                )
            await asyncio.sleep(0.05)

    def mark_status(self, status: str) -> None:
        """This worker's state for the server's readiness: "loading" (listening, models loading) or "ready"."""
        self._note(f"{STATUS}{os.getpid()}", status)

    def _note(self, name: str, value: str) -> None:
        """Write this worker's own state file. Others read a missing one as "still starting", so a state
        directory gone or unwritable costs coordination, never the worker: say so once and serve on."""
        if self.directory is None:
            return
        try:
            _write(self.directory / name, value.encode())
        except PrebakeError as error:
            if not self._warned:
                self._warned = True
                logger.warning("%s; repository changes may wait for this worker until they time out", error)

    def others_ready(self) -> bool:
        """Whether every other live worker that listens has loaded its models."""
        if self.directory is None:
            return True
        for pid in self._live():
            try:
                if (self.directory / f"{STATUS}{pid}").read_text() != "ready":
                    return False
            except OSError:
                continue  # a replacement still loading: it does not listen yet
        return True

    def _live(self) -> list[int]:
        assert self.directory is not None
        try:
            pids = orjson.loads((self.directory / WORKERS).read_bytes())
        except (OSError, ValueError):
            return []
        return [pid for pid in pids if pid != os.getpid() and _alive(pid)]

    def _applied_by(self, pid: int) -> int:
        assert self.directory is not None
        try:
            return int((self.directory / f"{APPLIED}{pid}").read_text())
        except (OSError, ValueError):
            return 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.directory is not None
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def write_workers(directory: Path, pids: list[int]) -> None:
    """The supervisor's list of live workers (the ones a change waits for)."""
    _write(directory / WORKERS, orjson.dumps(sorted(pids)))


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as error:
        raise PrebakeError(
            f"cannot record the repository change in {path.parent}: {error.strerror}"
        ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
