"""From a generation engine's threads to the event loop: one request's chunks as an async generator.

An engine (``types.TextGenerator``) calls its sink from its own thread, once per token and sequence.
Each call appends to a deque; the loop is woken once per burst (not once per chunk), as the executor
hands results back. Closing the generator (the client went away) cancels the request in the engine,
whose sequences then leave the running batch at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator

from prebake.types import GenerationChunk, GenerationEvent, GenerationRequest, TextGenerator


class _Inbox:
    """Events from the engine thread; ``get`` awaits the next one on the loop."""

    __slots__ = ("loop", "events", "waiter", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: deque[GenerationEvent] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.scheduled = False

    def put(self, event: GenerationEvent) -> None:  # on the engine's thread
        self.events.append(event)
        if not self.scheduled:
            self.scheduled = True
            with contextlib.suppress(RuntimeError):  # a closed loop: the worker is exiting, nobody waits
                self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self.scheduled = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> GenerationEvent:
        while not self.events:
            self.waiter = self.loop.create_future()
            await self.waiter
        return self.events.popleft()


async def stream(engine: TextGenerator, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
    """The chunks of ``request``; the engine's error, if any, is raised here; closing cancels it."""
    inbox = _Inbox(asyncio.get_running_loop())
    cancel = engine.submit(request, inbox.put)
    try:
        while True:
            event = await inbox.get()
            if event is None:
                return
            if isinstance(event, BaseException):
                raise event
            yield event
    finally:
        cancel()
