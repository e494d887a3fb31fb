"""Worker heartbeats that do not depend on the worker's event loop.

The supervisor maps one page of shared memory before it forks; each worker's heartbeat thread writes
the time (CLOCK_MONOTONIC, the same clock in every process) into its slot twice a second. A worker
that is stopped (SIGSTOP), or whose every thread waits on a call holding the GIL (a catastrophic
regular expression, a C extension that never returns), stops beating, and the supervisor replaces it:
its event loop could not have said so itself.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time

SLOT = struct.Struct("d")
INTERVAL_S = 0.5


class Heartbeats:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._memory = mmap.mmap(-1, max(1, slots) * SLOT.size)  # anonymous and shared across fork

    def beat(self, slot: int) -> None:
        SLOT.pack_into(self._memory, slot * SLOT.size, time.monotonic())

    def last(self, slot: int) -> float:
        """When ``slot`` last beat (0.0: never, since it was cleared)."""
        value: float = SLOT.unpack_from(self._memory, slot * SLOT.size)[0]
        return value

    def clear(self, slot: int) -> None:
        SLOT.pack_into(self._memory, slot * SLOT.size, 0.0)

    def start_beating(self, slot: int) -> None:
        """In a worker: beat from a daemon thread of its own until the process ends."""

        def beat_forever() -> None:
            while True:
                self.beat(slot)
                time.sleep(INTERVAL_S)

        threading.Thread(target=beat_forever, name="prebake-heartbeat", daemon=True).start()
