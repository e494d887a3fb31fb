"""The models a worker serves and how a request reaches them: the Backend the protocols talk to.

It owns the loaded runtimes, their readiness, and the hand-over to the executor (scoring threads)
or, for batchable models with batching on, to the model's batcher.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prebake.errors import ModelLoadError, ModelNotReady, NotFound, PrebakeError
from prebake.runtimes.base import ModelSettings, RawRuntime, Runtime
from prebake.server.batching import Batcher, request_rows, timed_predict
from prebake.server.executor import Executor
from prebake.server.metrics import Metrics
from prebake.server.statistics import model_statistics
from prebake.types import InferenceRequest, InferenceResponse, ModelMetadata, RawRequest, RawResult

logger = logging.getLogger("prebake.backend")

DEFAULT_MAX_BATCH_SIZE = 64


@dataclass(slots=True)
class ModelEntry:
    name: str
    runtime: Runtime | RawRuntime
    settings: ModelSettings | None = None
    state: str = "UNAVAILABLE"  # UNAVAILABLE -> LOADING -> READY; or UNLOADING / FAILED
    reason: str = ""
    batcher: Batcher | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ServerBackend:
    def __init__(self, executor: Executor, metrics: Metrics) -> None:
        self.executor = executor
        self.metrics = metrics
        self.entries: dict[str, ModelEntry] = {}
        self.raw_name: str | None = None  # the entry script (or handler script) that /score uses
        self.started = False

    # -- set-up, before serving -----------------------------------------------------------------------
    def add(self, entry: ModelEntry, *, raw: bool = False) -> None:
        if entry.name in self.entries:
            raise PrebakeError(f"two models are named {entry.name!r}; give one a different name")
        self.entries[entry.name] = entry
        if raw and self.raw_name is None:
            self.raw_name = entry.name

    def load_all(self) -> None:
        """Load every model synchronously, before the worker accepts connections (init once per worker).

        A model that fails is marked FAILED, with its reason, and the others serve; the worker's init fails
        only where an entry script fails (the Azure contract) or no model loads at all.
        """
        failed: list[PrebakeError] = []
        for entry in self.entries.values():
            try:
                self._load(entry)
            except PrebakeError as error:
                if isinstance(entry.runtime, RawRuntime) or len(self.entries) == 1:
                    raise
                failed.append(error)
                logger.error(
                    "model %r failed to load: %s; the other models serve "
                    "(fix it, then POST /v2/repository/models/%s/load)",
                    entry.name,
                    entry.reason,
                    entry.name,
                )
        if failed and len(failed) == len(self.entries):
            reasons = "; ".join(f"{e.name}: {e.reason}" for e in self.entries.values())
            raise ModelLoadError(f"no model could be loaded: {reasons}")
        self.started = True

    def _load(self, entry: ModelEntry) -> None:
        entry.state = "LOADING"
        started = time.perf_counter()
        try:
            entry.runtime.load()
        except PrebakeError as error:
            entry.state, entry.reason = "FAILED", error.message
            raise
        except Exception as error:
            entry.state, entry.reason = "FAILED", f"{type(error).__name__}: {error}"
            raise ModelLoadError(f"model {entry.name!r} failed to load: {entry.reason}") from error
        # Whether a model batches is known only once it is loaded (ONNX, torch.export and TF models say it).
        entry.batcher = self._make_batcher(entry)
        entry.state, entry.reason = "READY", ""
        logger.info(
            "model %r ready (%s) in %.2f s", entry.name, entry.runtime.name, time.perf_counter() - started
        )

    def _make_batcher(self, entry: ModelEntry) -> Batcher | None:
        """Batching is on for every runtime with a batch axis; max_batch_size 1 in its settings turns it off."""
        runtime, settings = entry.runtime, entry.settings
        if settings is None or not isinstance(runtime, Runtime) or not runtime.batchable:
            return None
        size = settings.max_batch_size or DEFAULT_MAX_BATCH_SIZE
        if size <= 1:
            return None
        ranks = {spec.name: len(spec.shape) for spec in runtime.metadata().inputs if spec.shape}
        return Batcher(
            entry.name,
            runtime,
            self.executor,
            self.metrics,
            max_batch_size=size,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            input_ranks=ranks,
        )

    # -- Backend protocol ------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        # A model that failed to load does not hold back the others: its own readiness says so.
        return self.started and all(
            e.state == "READY" for e in self.entries.values() if e.state not in ("UNAVAILABLE", "FAILED")
        )

    def model_names(self) -> list[str]:
        return list(self.entries)

    def default_model(self) -> str | None:
        ready = [name for name, e in self.entries.items() if e.state == "READY"]
        return ready[0] if len(ready) >= 1 else None

    def is_raw(self, name: str) -> bool:
        entry = self.entries.get(name)
        return entry is not None and isinstance(entry.runtime, RawRuntime)

    def _entry(self, name: str, version: str | None = None) -> ModelEntry:
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(self.entries) or "none"
            raise NotFound(f"model {name!r} not found; models here: {known}")
        if (
            version is not None
            and entry.settings is not None
            and entry.settings.version not in (None, version)
        ):
            raise NotFound(f"model {name!r} has no version {version!r} (it has {entry.settings.version!r})")
        return entry

    def model_ready(self, name: str, version: str | None = None) -> bool:
        return self._entry(name, version).state == "READY"

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        entry = self._entry(name, version)
        runtime = entry.runtime
        if isinstance(runtime, Runtime):
            return runtime.metadata()
        return ModelMetadata(name=name, platform=runtime.name)

    def repository_index(self) -> list[dict[str, Any]]:
        return [
            {
                "name": e.name,
                "version": (e.settings.version if e.settings and e.settings.version else ""),
                "state": e.state,
                "reason": e.reason,
            }
            for e in self.entries.values()
        ]

    def statistics(self, name: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        """Triton's per-model statistics, the whole server's: of ``name``, or of every model."""
        entries = [self._entry(name, version)] if name else list(self.entries.values())
        models = [(e.name, e.settings.version if e.settings and e.settings.version else "") for e in entries]
        return model_statistics(self.metrics.statistics(), models)

    async def load(self, name: str) -> None:
        entry = self._entry(name)
        if entry.state == "READY":
            return
        # Loading can take seconds: do it on a thread of its own so scoring and health go on.
        await asyncio.to_thread(self._load, entry)

    async def unload(self, name: str) -> None:
        entry = self._entry(name)
        entry.state = "UNLOADING"
        if entry.batcher is not None:
            await entry.batcher.drain()
        unload = getattr(entry.runtime, "unload", None)
        if unload is not None:
            await asyncio.to_thread(unload)
        entry.state, entry.reason = "UNAVAILABLE", "unloaded"

    async def infer(self, name: str, version: str | None, request: InferenceRequest) -> InferenceResponse:
        entry = self._entry(name, version)
        if entry.state != "READY":
            raise _not_ready(entry)
        runtime = entry.runtime
        if not isinstance(runtime, Runtime):
            raise PrebakeError(f"model {name!r} takes raw requests only", status=400)
        started = time.perf_counter()
        try:
            if entry.batcher is not None:
                response: InferenceResponse = await entry.batcher.submit(request)
            else:
                response = await self.executor.run(functools.partial(timed_predict, runtime), request)
                self.metrics.observe_run(name, time.perf_counter() - started)
                self.metrics.observe_execution(name, request_rows(request), response.compute_s)
        except BaseException:
            self.metrics.observe_inference(name, False, time.perf_counter() - started, 0.0)
            raise
        self.metrics.observe_inference(name, True, time.perf_counter() - started, response.compute_s)
        response.model_name = response.model_name or name
        if response.model_version is None and entry.settings is not None:
            response.model_version = entry.settings.version
        response.id = request.id
        return response

    async def score_raw(self, name: str | None, request: RawRequest) -> RawResult:
        key = name or self.raw_name
        if key is None:
            raise NotFound("this server has no entry script; POST to a model's route instead")
        entry = self._entry(key)
        runtime = entry.runtime
        if not isinstance(runtime, RawRuntime):
            raise PrebakeError(f"model {key!r} does not take raw requests", status=400)
        if entry.state != "READY":
            raise _not_ready(entry)
        started = time.perf_counter()
        try:
            result = await self.executor.run(runtime.score, request)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_run(key, elapsed)
        if not result.run_ms:
            result.run_ms = elapsed * 1000
        return result


def _not_ready(entry: ModelEntry) -> ModelNotReady:
    why = f"{entry.state.lower()}: {entry.reason}" if entry.reason else entry.state.lower()
    return ModelNotReady(f"model {entry.name!r} is not ready ({why})")
