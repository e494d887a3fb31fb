"""One served model: its runtime, its state, and everything a response needs besides the arrays, once.

A request reaches a model here, whatever protocol brought it; the model

    checks it is READY (else 503) → adds a sequence model's control inputs (sequence.py) → hands it to
    its batcher or the executor → runtime.predict → then, once: selects the requested outputs, answers
    those asked for as classes (classification.py), stamps name, version and request id, records metrics.

Runtimes return plain named arrays and know none of this. Loading and unloading go through one lock
and a state machine, so a request never meets a half-loaded or unloaded runtime: requests that arrive
while the model unloads get 503, and those already running finish first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import numpy as np

from prebake.errors import (
    InvalidInput,
    InvalidParameter,
    ModelLoadError,
    ModelNotReady,
    OutOfMemory,
    PrebakeError,
    echo,
)
from prebake.runtimes.base import ModelSettings, RawRuntime, Runtime
from prebake.server import classification, heap, sequence
from prebake.server.batching import Batcher, request_rows, timed_predict
from prebake.server.executor import Executor
from prebake.server.metrics import Metrics
from prebake.types import (
    GenerationChunk,
    GenerationRequest,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RawRequest,
    RawResult,
)

logger = logging.getLogger("prebake.models")

DEFAULT_MAX_BATCH_SIZE = 64


class State(enum.Enum):
    UNAVAILABLE = "UNAVAILABLE"  # known, not loaded (never, or unloaded)
    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    FAILED = "FAILED"  # the last load failed; ``reason`` says why


RuntimeFactory = Callable[[ModelSettings], Runtime | RawRuntime]


class ServedModel:
    def __init__(
        self,
        name: str,
        runtime: Runtime | RawRuntime,
        settings: ModelSettings | None,
        *,
        executor: Executor,
        metrics: Metrics,
        factory: RuntimeFactory | None = None,
    ) -> None:
        self.name = name
        self.runtime = runtime
        self.settings = settings
        self._base_settings = settings
        self.overrides: dict[str, Any] | None = None  # settings changed through the repository API
        self.executor = executor
        self.metrics = metrics
        self.factory = factory  # makes a fresh runtime for a reload with new settings
        self.state = State.UNAVAILABLE
        self.reason = ""
        self.batcher: Batcher | None = None
        self._lock = asyncio.Lock()
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._controls: dict[str, np.dtype[Any] | None] = {}  # a sequence model's control inputs

    @property
    def version(self) -> str | None:
        return self.settings.version if self.settings is not None else None

    @property
    def raw(self) -> bool:
        """Whether the model takes whole HTTP requests (an entry or handler script), not arrays."""
        return isinstance(self.runtime, RawRuntime)

    @property
    def max_batch_size(self) -> int:
        """The most rows one predict call gets: 0 where the model does not batch (Triton's meaning)."""
        return self.batcher.max_batch_size if self.batcher is not None else 0

    # -- requests -----------------------------------------------------------------------------------------
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        runtime = self.runtime
        if not isinstance(runtime, Runtime):
            raise InvalidInput(f"model '{self.name}' takes raw requests only; POST to /score or /invocations")
        self._enter()
        started = time.perf_counter()
        try:
            if self._controls:
                assert self.settings is not None
                request = sequence.with_controls(self.name, self._controls, self.settings.sequence, request)
            if self.batcher is not None:
                response: InferenceResponse = await self.batcher.submit(request)
            else:
                response = await self.executor.run(functools.partial(timed_predict, runtime), request)
                elapsed = time.perf_counter() - started
                self.metrics.observe_predict(self.name, request_rows(request), elapsed, response.compute_s)
            outputs = select_outputs(response.outputs, request.outputs)
            if request.classification:
                outputs = self._classify(outputs, request.classification)
        except BaseException as error:
            self.metrics.observe_inference(self.name, False, time.perf_counter() - started, 0.0)
            if isinstance(error, MemoryError):
                raise out_of_memory(self.name) from None
            raise
        finally:
            self._leave()
        self.metrics.observe_inference(self.name, True, time.perf_counter() - started, response.compute_s)
        return InferenceResponse(
            outputs=outputs,
            model_name=self.name,
            model_version=self.version,
            parameters=response.parameters,
            id=request.id,
            compute_s=response.compute_s,
        )

    async def score(self, request: RawRequest) -> RawResult:
        runtime = self.runtime
        if not isinstance(runtime, RawRuntime):
            raise InvalidInput(f"model '{self.name}' does not take raw requests")
        self._enter()
        started = time.perf_counter()
        try:
            result = await self.executor.run(runtime.score, request)
        except MemoryError:
            raise out_of_memory(self.name) from None
        finally:
            self._leave()
            self.metrics.observe_run(self.name, time.perf_counter() - started)
        if not result.run_ms:
            result.run_ms = (time.perf_counter() - started) * 1000
        return result

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """The chunks of a generation on this model's engine (counted in flight, so an unload waits)."""
        from prebake.server import generation

        runtime = self.runtime
        engine = runtime.generator() if isinstance(runtime, Runtime) and self.state is State.READY else None
        if engine is None and self.state is State.READY:
            raise InvalidParameter(
                f"model '{self.name}' does not generate text; use a text-generation model", param="model"
            )
        self._enter()
        try:
            assert engine is not None
            async for chunk in generation.stream(engine, request):
                yield chunk
        finally:
            self._leave()

    def _enter(self) -> None:
        if self.state is not State.READY:
            raise self.not_ready()
        self._in_flight += 1

    def _leave(self) -> None:
        self._in_flight -= 1
        if not self._in_flight and self._idle is not None:
            self._idle.set()

    def not_ready(self) -> ModelNotReady:
        state = self.state.value.lower()
        why = f"{state}: {self.reason}" if self.reason else state
        return ModelNotReady(f"model '{self.name}' is not ready ({why})")

    def _classify(self, outputs: dict[str, np.ndarray], asked: dict[str, int]) -> dict[str, np.ndarray]:
        labels = self.settings.labels if self.settings is not None else {}
        batched = self.max_batch_size > 0
        return {
            name: classification.classify(name, array, asked[name], labels.get(name, ()), batched=batched)
            if asked.get(name)
            else array
            for name, array in outputs.items()
        }

    def metadata(self) -> ModelMetadata:
        runtime = self.runtime
        if not isinstance(runtime, Runtime):
            return ModelMetadata(name=self.name, platform=runtime.name)
        meta = runtime.metadata()
        if self.settings is not None and self.settings.sequence:
            # The server gives a sequence model's control inputs; clients see only the others, as in Triton.
            meta.inputs = [t for t in meta.inputs if t.name not in self.settings.sequence]
        return meta

    # -- loading ------------------------------------------------------------------------------------------
    async def load(self, overrides: dict[str, Any] | None = None) -> None:
        """Load (or, with ``overrides`` of its settings, reload) the model on a thread of its own, so
        scoring and health go on; ModelLoadError (the model FAILED) where it cannot be loaded."""
        async with self._lock:
            if overrides and overrides != self.overrides:
                if self.state is State.READY:
                    await self._drain(State.UNLOADING)
                    await asyncio.to_thread(self._unload_runtime)
                self.configure(overrides)
            elif self.state is State.READY:
                return
            self.state = State.LOADING
            await asyncio.to_thread(self._load_runtime)

    async def unload(self) -> None:
        async with self._lock:
            if self.state in (State.UNAVAILABLE, State.FAILED):
                self.state, self.reason = State.UNAVAILABLE, "unloaded"
                return
            await self._drain(State.UNLOADING)
            await asyncio.to_thread(self._unload_runtime)
            self.state, self.reason = State.UNAVAILABLE, "unloaded"

    def configure(self, overrides: dict[str, Any]) -> None:
        """Settings changed through the repository API (Triton's load with a config), applied to the
        settings the model started with, in a fresh runtime that the next load loads."""
        if self._base_settings is None or self.factory is None:
            raise InvalidInput(f"failed to load '{self.name}': this model takes no configuration")
        self.settings = dataclasses.replace(self._base_settings, **overrides)
        self.runtime = self.factory(self.settings)
        self.overrides = dict(overrides)

    def _unload_runtime(self) -> None:
        heap.thaw()
        unload = getattr(self.runtime, "unload", None)
        if unload is not None:
            unload()
        self.batcher = None

    def load_blocking(self) -> None:
        """Load on the calling thread (a worker's start, before it takes requests for this model)."""
        self.state = State.LOADING
        self._load_runtime()

    async def _drain(self, state: State) -> None:
        """Take no new requests (they get 503) and wait for the running ones to finish."""
        self.state = state
        if self.batcher is not None:
            await self.batcher.drain()
        while self._in_flight:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None

    def _load_runtime(self) -> None:
        started = time.perf_counter()
        try:
            self.runtime.load()
        except PrebakeError as error:
            self.state, self.reason = State.FAILED, error.message
            raise
        except Exception as error:
            self.state, self.reason = State.FAILED, f"{type(error).__name__}: {error}"
            raise ModelLoadError(f"failed to load '{self.name}': {self.reason}") from error
        self._controls = self._control_inputs()
        # Whether a model batches is known only once it is loaded (ONNX, torch.export and TF models say it).
        self.batcher = self._make_batcher()
        heap.settle()
        self.state, self.reason = State.READY, ""
        logger.info(
            "model '%s' ready (%s) in %.2f s", self.name, self.runtime.name, time.perf_counter() - started
        )

    def _control_inputs(self) -> dict[str, np.dtype[Any] | None]:
        """A sequence model's control inputs and their dtypes; ModelLoadError for one the model lacks."""
        kinds = self.settings.sequence if self.settings is not None else {}
        plan = getattr(self.runtime, "plan", None)
        if not kinds:
            return {}
        checks = {c.name: c for c in plan.checks} if plan is not None else {}
        missing = sorted(set(kinds) - set(checks))
        if missing:
            self.state = State.FAILED
            self.reason = (
                f"sequence control input(s) {', '.join(missing)} are not inputs of the model; it takes "
                + (", ".join(checks) or "no named inputs")
            )
            raise ModelLoadError(f"failed to load '{self.name}': {self.reason}")
        return {name: checks[name].dtype for name in kinds}

    def _make_batcher(self) -> Batcher | None:
        """Batching is on for every runtime with a batch axis; max_batch_size 1 in its settings turns it off."""
        runtime, settings = self.runtime, self.settings
        if settings is None or not isinstance(runtime, Runtime) or not runtime.batchable:
            return None
        size = settings.max_batch_size or DEFAULT_MAX_BATCH_SIZE
        if size <= 1:
            return None
        ranks = {spec.name: len(spec.shape) for spec in runtime.metadata().inputs if spec.shape}
        return Batcher(
            self.name,
            runtime,
            self.executor,
            self.metrics,
            max_batch_size=size,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            input_ranks=ranks,
        )


def out_of_memory(model: str) -> OutOfMemory:
    return OutOfMemory(f"model '{model}' ran out of memory for this request; retry it, or send less")


def select_outputs(outputs: dict[str, np.ndarray], requested: Sequence[str] | None) -> dict[str, np.ndarray]:
    """The outputs a client asked for, in its order; all of them, in the model's order, where it asked for
    none (no ``outputs`` key, or an empty list: V2's "not specified", the same on REST and gRPC).

    InvalidInput (400) for a name the model does not give."""
    if not requested:
        return outputs
    selected: dict[str, np.ndarray] = {}
    for name in requested:
        array = outputs.get(name)
        if array is None:
            known = ", ".join(f"'{n}'" for n in outputs) or "none"
            raise InvalidInput(f"unknown output '{echo(name)}'; the model gives {known}")
        selected[name] = array
    return selected
