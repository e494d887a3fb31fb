"""The models of a worker, by name: what the protocols call (``types.Backend``), nothing of HTTP.

It resolves a name and version to a ``ServedModel`` (unknown ones are Triton's 404, worded as Triton
words it, since Triton's clients and users match on it), answers readiness and the repository index,
and loads and unloads. With a model repository directory, a load of a name it does not know yet looks
there first (Triton's explicit model control: folders added after the start can be loaded). With several
workers, a load or unload acts on all of them (``control.py``) before it is answered.

For a SageMaker multi-model endpoint, models are also loaded from a path under a name the platform
chooses (``load_path``) and forgotten again (``remove_path``); the least recently used are unloaded
first where a new one would not fit (``residency.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from prebake.errors import (
    AlreadyLoaded,
    InsufficientMemory,
    InvalidInput,
    ModelLoadError,
    NotFound,
    PrebakeError,
    echo,
)
from prebake.runtimes.base import ModelSettings, RawRuntime, Runtime
from prebake.server.control import Control, Wanted
from prebake.server.executor import Executor
from prebake.server.metrics import Metrics
from prebake.server.model import RuntimeFactory, ServedModel, State
from prebake.server.residency import Residency, footprint
from prebake.server.shm import SharedMemoryRegistry
from prebake.server.statistics import model_statistics
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

#: Finds a model added to the repository directory after the start: its settings, or None.
Discover = Callable[[str], ModelSettings | None]
#: The settings of the model at a path, served under a name (SageMaker multi-model endpoints).
FromPath = Callable[[str, Path], ModelSettings]


def unknown_model(name: str, version: str | None = None) -> NotFound:
    """Triton's words for a model (or version) it does not have."""
    if version is None:
        return NotFound(f"Request for unknown model: '{echo(name)}' is not found")
    return NotFound(f"Request for unknown model: '{echo(name)}' version {echo(version)} is not found")


class ModelRepository:
    def __init__(
        self,
        executor: Executor,
        metrics: Metrics,
        *,
        factory: RuntimeFactory | None = None,
        discover: Discover | None = None,
        control: Control | None = None,
        shared_memory: SharedMemoryRegistry | None = None,
        from_path: FromPath | None = None,
        residency: Residency | None = None,
    ) -> None:
        self.executor = executor
        self.metrics = metrics
        self.factory = factory
        self.discover = discover
        self.control = control or Control(None, workers=1)
        self.regions = shared_memory or SharedMemoryRegistry(self.control.directory, allowed=False)
        self.models: dict[str, ServedModel] = {}
        self.raw_name: str | None = None  # the entry script (or handler script) that /score uses
        self.started = False
        self.from_path = from_path
        self.residency = residency or Residency()
        self.urls: dict[str, str] = {}  # models loaded by path, and where they lie

    # -- set-up -------------------------------------------------------------------------------------------
    def add(self, name: str, runtime: Runtime | RawRuntime, settings: ModelSettings | None = None) -> None:
        if name in self.models:
            raise PrebakeError(f"two models are named {name!r}; give one a different name")
        model = ServedModel(
            name, runtime, settings, executor=self.executor, metrics=self.metrics, factory=self.factory
        )
        self.models[name] = model
        if model.raw and self.raw_name is None:
            self.raw_name = name

    def load_all(self) -> None:
        """Load every model (a worker's start, on a thread while the server already answers probes).

        A model that fails is FAILED, with its reason, and the others serve; the start fails only where an
        entry script fails (the Azure contract) or no model loads at all.
        """
        failures = 0
        generation, wanted = self.control.wanted()
        for name, want in wanted.items():
            # A worker started after API changes starts as the others are.
            if name not in self.models and want.loaded:
                self._create(name, want.url)
            if name in self.models and want.config:
                self.models[name].configure(want.config)
        for model in self.models.values():
            wanted_here = wanted.get(model.name)
            if wanted_here is not None and not wanted_here.loaded:
                model.reason = "unloaded"
                continue
            try:
                model.load_blocking()
            except PrebakeError:
                if model.raw or len(self.models) == 1:
                    raise
                failures += 1
                logger.error(
                    "model '%s' failed to load: %s; the other models serve "
                    "(fix it, then POST /v2/repository/models/%s/load)",
                    model.name,
                    model.reason,
                    model.name,
                )
        if self.models and failures == len(self.models):
            reasons = "; ".join(f"{m.name}: {m.reason}" for m in self.models.values())
            raise ModelLoadError(f"no model could be loaded: {reasons}")
        self.control.mark_applied(generation)
        self.control.mark_status("ready")
        self.started = True

    # -- lookups ------------------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.models

    def get(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise unknown_model(name)
        if self.urls:
            self.residency.touch(name)
        if version is not None and version != model.version:
            raise unknown_model(name, version)
        return model

    # -- types.Backend ------------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        # A model that failed to load does not hold back the others: its own readiness says so.
        return (
            self.started
            and all(
                m.state is State.READY
                for m in self.models.values()
                if m.state not in (State.UNAVAILABLE, State.FAILED)
            )
            and self.control.others_ready()
        )

    def model_names(self) -> list[str]:
        return list(self.models)

    def default_model(self) -> str | None:
        for name, model in self.models.items():
            if model.state is State.READY:
                return name
        return None

    def serving(self) -> bool:
        return self.ready() and self.default_model() is not None

    def is_raw(self, name: str) -> bool:
        model = self.models.get(name)
        return model is not None and model.raw

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Ready or not; a model (or version) this server does not have is not ready, as Triton answers."""
        model = self.models.get(name)
        if model is None or (version is not None and version != model.version):
            return False
        return model.state is State.READY

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        return self.get(name, version).metadata()

    def max_batch_size(self, name: str, version: str | None = None) -> int:
        return self.get(name, version).max_batch_size

    def repository_index(self) -> list[dict[str, Any]]:
        return [
            {"name": m.name, "version": m.version or "", "state": m.state.value, "reason": m.reason}
            for m in self.models.values()
        ]

    def statistics(self, name: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        """Triton's per-model statistics, the whole server's: of ``name``, or of every model."""
        models = [self.get(name, version)] if name else list(self.models.values())
        return model_statistics(self.metrics.statistics(), [(m.name, m.version or "") for m in models])

    async def load(self, name: str, config: dict[str, Any] | None = None) -> None:
        """Load ``name`` (with settings ``config`` overrides: a reload) on every worker."""
        await self._load_here(name, config)
        await self._share(name, Wanted(True, config))

    async def unload(self, name: str) -> None:
        await self.get(name).unload()
        await self._share(name, Wanted(False))

    async def reconcile(self) -> None:
        """Apply what another worker changed (its SIGUSR1, forwarded by the supervisor)."""
        generation, wanted = self.control.wanted()
        if generation <= self.control.applied:
            return
        for name, want in wanted.items():
            try:
                if want.loaded:
                    await self._load_here(name, want.config, want.url)
                elif name in self.models:
                    await self.models[name].unload()
                    self._forget_path(name)
            except PrebakeError as error:
                logger.error(
                    "model '%s': applying a change from another worker failed: %s", name, error.message
                )
        self.control.mark_applied(generation)

    async def _load_here(self, name: str, config: dict[str, Any] | None, url: str | None = None) -> None:
        model = self.models.get(name)
        if model is None:
            model = self._create(name, url)
        await model.load(config)

    # -- SageMaker multi-model endpoints ------------------------------------------------------------------
    async def load_path(self, name: str, url: str) -> None:
        """Load the model at ``url`` as ``name`` on every worker, unloading the least recently used ones
        first where it would not fit: AlreadyLoaded (409) for a name that is loaded, InsufficientMemory
        (507) where it cannot fit, ModelLoadError for a path that holds no model it can load."""
        if name in self.urls:
            raise AlreadyLoaded(f"model '{echo(name)}' is already loaded")
        path = Path(url)
        if not path.exists():
            raise NotFound(f"model '{echo(name)}': {echo(url)} does not exist")
        need = footprint(path)
        for victim in self.residency.victims(need):
            logger.info("model '%s' unloaded to make room for '%s' (least recently used)", victim, name)
            await self.remove_path(victim)
        self._create(name, url)
        try:
            await self.models[name].load()
        except MemoryError:
            self._forget_path(name)
            raise InsufficientMemory(f"model '{echo(name)}' ran out of memory while loading") from None
        except PrebakeError:
            self._forget_path(name)
            raise
        await self._share(name, Wanted(True, None, url))

    async def remove_path(self, name: str) -> None:
        """Unload a model loaded by path and forget it, on every worker (NotFound where it is not loaded)."""
        if name not in self.urls:
            raise unknown_model(name)
        await self.models[name].unload()
        self._forget_path(name)
        await self._share(name, Wanted(False))

    def paths(self) -> dict[str, str]:
        """The models loaded by path, name -> where they lie, in the order they were loaded."""
        return dict(self.urls)

    def _forget_path(self, name: str) -> None:
        if name in self.urls:
            del self.urls[name]
            self.models.pop(name, None)
            self.residency.remove(name)
            if self.raw_name == name:
                self.raw_name = None

    def _create(self, name: str, url: str | None) -> ServedModel:
        if url is None:
            return self._discover(name)
        if self.from_path is None or self.factory is None:
            raise InvalidInput("this server loads no models by path (SAGEMAKER_MULTI_MODEL is not set)")
        settings = self.from_path(name, Path(url))
        self.add(name, self.factory(settings), settings)
        self.urls[name] = url
        self.residency.add(name, footprint(Path(url)))
        return self.models[name]

    async def _share(self, name: str, wanted: Wanted) -> None:
        if self.control.directory is not None:
            await self.control.settle(self.control.publish(name, wanted))

    async def infer(self, name: str, version: str | None, request: InferenceRequest) -> InferenceResponse:
        return await self.get(name, version).infer(request)

    def generate(self, name: str, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        return self.get(name).generate(request)

    async def score_raw(self, name: str | None, request: RawRequest) -> RawResult:
        key = name or self.raw_name
        if key is None:
            raise NotFound("this server has no entry script; POST to a model's route instead")
        return await self.get(key).score(request)

    def shared_memory(self) -> SharedMemoryRegistry:
        """The server's system shared memory regions (types.Backend)."""
        return self.regions

    def _discover(self, name: str) -> ServedModel:
        settings = self.discover(name) if self.discover is not None else None
        if settings is None or self.factory is None:
            raise InvalidInput(
                f"failed to load '{echo(name)}', failed to poll from model repository"
                + ("" if self.discover is not None else ": this server has no model repository directory")
            )
        self.add(settings.name, self.factory(settings), settings)
        logger.info("model '%s' found in the repository at %s", settings.name, Path(settings.path))
        return self.models[settings.name]
