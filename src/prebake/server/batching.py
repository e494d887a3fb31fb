"""Adaptive batching: concurrent requests to one model merged into one predict call, split back after.

It adapts by construction rather than by waiting: a request that finds the model idle runs at once,
alone; requests that arrive while a predict call is running queue up and go together in the next call.
Light load therefore pays no delay, and heavy load gets batches as large as the load makes them.
`max_batch_delay_ms` only applies under load (the previous call was a batch): then a short wait for
a fuller batch costs little, because requests were waiting anyway.

Only requests that fit together are merged: same input names, dtypes and trailing shapes, same
requested outputs and parameters. Inputs are concatenated on axis 0; every output is split on axis 0.
A runtime that merges requests itself (``Runtime.merges_requests``: texts of any length) is handed the
requests whole, grouped by input names, outputs and parameters only, and answers each one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from typing import Any

import numpy as np

from prebake.errors import PrebakeError
from prebake.runtimes.base import Runtime
from prebake.server.executor import Executor
from prebake.server.metrics import Metrics
from prebake.types import InferenceRequest, InferenceResponse


def request_rows(request: InferenceRequest) -> int:
    first = next(iter(request.inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim > 0 else 0


def _signature(request: InferenceRequest, ranks: dict[str, int]) -> tuple[Any, ...] | None:
    """What must match for two requests to share a predict call; None where a request cannot be merged.

    ``ranks`` holds the model's input ranks where its metadata knows them: a client may send one row as
    a 1-D array for a [-1, 4] input, which the runtime accepts alone but which must not be concatenated.
    """
    parts = []
    rows = -1
    for name, array in request.inputs.items():
        if array.ndim == 0 or array.dtype == object:
            return None
        if len(request.inputs) == 1 and len(ranks) == 1:
            expected = next(iter(ranks.values()))  # the runtime checks the name; here only the rank
        else:
            expected = ranks.get(name, array.ndim)
        if array.ndim != expected:
            return None
        if rows not in (-1, array.shape[0]):
            return None  # inputs disagree on the batch axis: leave it to the runtime, alone
        rows = array.shape[0]
        parts.append((name, array.dtype.str, array.shape[1:]))
    outputs = tuple(request.outputs) if request.outputs is not None else None
    try:
        parameters = tuple(sorted((k, repr(v)) for k, v in request.parameters.items()))
    except RecursionError:
        return None  # parameters nested past repr's depth (a client's 1,000 levels): this one runs alone
    return (tuple(parts), outputs, parameters)


def _request_signature(request: InferenceRequest) -> tuple[Any, ...]:
    """The signature for a runtime that merges requests itself: the same inputs, outputs and parameters."""
    outputs = tuple(request.outputs) if request.outputs is not None else None
    parameters = tuple(sorted((k, repr(v)) for k, v in request.parameters.items()))
    return (tuple(request.inputs), outputs, parameters)


class Batcher:
    def __init__(
        self,
        name: str,
        runtime: Runtime,
        executor: Executor,
        metrics: Metrics,
        *,
        max_batch_size: int,
        max_batch_delay_ms: float,
        input_ranks: dict[str, int] | None = None,
    ) -> None:
        self.name = name
        self.runtime = runtime
        self._timed = functools.partial(timed_predict, runtime)
        self.executor = executor
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_delay_s = max(0.0, max_batch_delay_ms) / 1000
        self.input_ranks = input_ranks or {}
        self.slots = max(1, executor.threads)  # predict calls in flight at once
        self._running = 0
        self._pending: deque[tuple[InferenceRequest, asyncio.Future[InferenceResponse], int, Any]] = deque()
        self._last_batch = 1
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, request: InferenceRequest) -> InferenceResponse:
        rows = request_rows(request)
        if self._running < self.slots and not self._pending:
            # Idle model: run now, alone, with no batching overhead at all.
            self._running += 1
            self._idle.clear()
            self._last_batch = 1
            try:
                return await self._predict_one(request, rows)
            finally:
                self._release()
        future: asyncio.Future[InferenceResponse] = asyncio.get_running_loop().create_future()
        signature = (
            _request_signature(request)
            if self.runtime.merges_requests
            else _signature(request, self.input_ranks)
        )
        self._pending.append((request, future, rows, signature))
        if self._running < self.slots:
            self._dispatch()
        return await future

    async def drain(self) -> None:
        """Wait until no call is running or queued (used before unloading a model)."""
        while self._running or self._pending:
            self._idle.clear()
            await self._idle.wait()

    # -- internals --------------------------------------------------------------------------------------
    async def _predict_one(self, request: InferenceRequest, rows: int) -> InferenceResponse:
        started = time.perf_counter()
        response = await self.executor.run(self._timed, request)
        self.metrics.observe_predict(self.name, rows, time.perf_counter() - started, response.compute_s)
        return response

    def _release(self) -> None:
        self._running -= 1
        if self._pending and self._running < self.slots:
            self._dispatch()
        elif not self._running and not self._pending:
            self._idle.set()

    def _dispatch(self) -> None:
        self._running += 1
        self._idle.clear()
        if self.max_delay_s and self._last_batch > 1 and self._queued_rows() < self.max_batch_size:
            asyncio.get_running_loop().call_later(self.max_delay_s, self._start_batch)
        else:
            self._start_batch()

    def _queued_rows(self) -> int:
        return sum(rows for _, _, rows, _ in self._pending)

    def _start_batch(self) -> None:
        batch = self._take()
        if not batch:
            self._release()
            return
        self._last_batch = len(batch)
        asyncio.ensure_future(self._run(batch))

    def _take(self) -> list[tuple[InferenceRequest, asyncio.Future[InferenceResponse], int, Any]]:
        """The oldest pending request plus every later one that fits with it, up to max_batch_size rows."""
        pending = self._pending
        while pending and pending[0][1].done():
            pending.popleft()  # its client gave up (timeout, disconnect)
        if not pending:
            return []
        first = pending.popleft()
        batch = [first]
        if first[3] is None:
            return batch
        rows = first[2]
        kept: deque[Any] = deque()
        while pending:
            item = pending.popleft()
            if item[3] == first[3] and rows + item[2] <= self.max_batch_size and not item[1].done():
                batch.append(item)
                rows += item[2]
            elif not item[1].done():
                kept.append(item)
        self._pending = kept
        return batch

    async def _run(
        self, batch: list[tuple[InferenceRequest, asyncio.Future[InferenceResponse], int, Any]]
    ) -> None:
        try:
            if len(batch) == 1:
                request, future, rows, _ = batch[0]
                try:
                    response = await self._predict_one(request, rows)
                except BaseException as error:  # noqa: BLE001 - handed to the waiting request
                    _fail(future, error)
                else:
                    if not future.done():
                        future.set_result(response)
                return
            started = time.perf_counter()
            requests = [item[0] for item in batch]
            try:
                responses = await self.executor.run(self._predict_batch, requests)
            except PrebakeError as error:
                if error.status < 500:
                    # One bad request must not fail its neighbours: retry them one by one.
                    for request, future, rows, _ in batch:
                        try:
                            _deliver(future, await self._predict_one(request, rows))
                        except BaseException as each:  # noqa: BLE001
                            _fail(future, each)
                    return
                for _, future, _, _ in batch:
                    _fail(future, error)
                return
            except BaseException as error:  # noqa: BLE001
                for _, future, _, _ in batch:
                    _fail(future, error)
                return
            rows = sum(item[2] for item in batch)
            self.metrics.observe_predict(
                self.name, rows, time.perf_counter() - started, responses[0].compute_s
            )
            for (_, future, _, _), response in zip(batch, responses, strict=True):
                _deliver(future, response)
        finally:
            self._release()

    def _predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        """On a scoring thread: merge, predict once, split on axis 0 (or fall back to one call each)."""
        if self.runtime.merges_requests:
            return _merged_by_runtime(self.runtime, requests)
        first = requests[0]
        merged = InferenceRequest(
            inputs={name: np.concatenate([r.inputs[name] for r in requests]) for name in first.inputs},
            parameters=first.parameters,
            outputs=first.outputs,
            input_parameters=first.input_parameters,
        )
        started = time.perf_counter()
        result = self.runtime.predict(merged)
        compute_s = time.perf_counter() - started
        total = sum(request_rows(r) for r in requests)
        if any(out.ndim == 0 or out.shape[0] != total for out in result.outputs.values()):
            # The runtime said it batches but its outputs are not row-aligned: be correct, not fast.
            return [timed_predict(self.runtime, r) for r in requests]
        responses = []
        start = 0
        for request in requests:
            stop = start + request_rows(request)
            responses.append(
                InferenceResponse(
                    outputs={name: out[start:stop] for name, out in result.outputs.items()},
                    model_name=result.model_name,
                    model_version=result.model_version,
                    parameters=result.parameters,
                    compute_s=compute_s,
                )
            )
            start = stop
        return responses


def _merged_by_runtime(runtime: Runtime, requests: list[InferenceRequest]) -> list[InferenceResponse]:
    """The batch hook: the runtime merges the requests (its own way) and answers each one."""
    started = time.perf_counter()
    responses = runtime.predict_batch(requests)
    compute_s = time.perf_counter() - started
    if len(responses) != len(requests):
        raise PrebakeError(f"the runtime answered {len(responses)} of {len(requests)} batched requests")
    for response in responses:
        response.compute_s = compute_s
    return responses


def timed_predict(runtime: Runtime, request: InferenceRequest) -> InferenceResponse:
    """``runtime.predict`` on a scoring thread, noting on the response how long the model took."""
    started = time.perf_counter()
    response = runtime.predict(request)
    response.compute_s = time.perf_counter() - started
    return response


def _deliver(future: asyncio.Future[InferenceResponse], response: InferenceResponse) -> None:
    if not future.done():
        future.set_result(response)


def _fail(future: asyncio.Future[InferenceResponse], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
