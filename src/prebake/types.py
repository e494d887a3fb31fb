"""Shared types: the internal request and response every protocol decodes to, and what a backend offers.

A leaf: it imports nothing from prebake, so protocols, runtimes and the server can all use it.
Tensors are numpy arrays; numpy is imported only for type checking here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np


@dataclass(slots=True)
class TensorSpec:
    """Name, V2 datatype (e.g. "FP32", "BYTES") and shape (-1 for any size) of one input or output.

    ``format`` is an image input's layout where known ("NCHW" or "NHWC", Triton's model configuration
    reports it and image clients read it); "" where it is not an image or nobody said.
    """

    name: str
    datatype: str
    shape: list[int]
    format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(slots=True)
class ModelMetadata:
    """What a loaded model says about itself (V2 model metadata)."""

    name: str
    platform: str
    versions: list[str] = field(default_factory=list)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    #: What tensor specs cannot say, for documents made from metadata (an MLflow model's optional
    #: columns, params with defaults, input example); MLServer's metadata has the same field.
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferenceRequest:
    """Named input arrays plus parameters: what every protocol decodes a wire request into.

    ``outputs`` names the outputs the client asked for (None: all of them).
    ``parameters`` holds request-level parameters; ``input_parameters`` per-input ones (e.g. V2 content_type).
    ``classification`` names outputs to answer as their top k classes, with k (Triton's classification
    extension; the server's served model does it).
    """

    inputs: dict[str, np.ndarray]
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] | None = None
    id: str | None = None
    input_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    classification: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class InferenceResponse:
    """Named output arrays: what every runtime returns and every protocol encodes.

    A runtime sets ``outputs`` (and ``parameters`` where its framework gives some); the server's served
    model sets everything else, once: the selected outputs, name, version and request id.
    """

    outputs: dict[str, np.ndarray]
    model_name: str = ""
    model_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    #: Seconds the model's predict call took for this response (its batch's, when batched); set by the
    #: server for the statistics extension, never sent.
    compute_s: float = 0.0


@dataclass(slots=True)
class RawRequest:
    """An HTTP request as raw parts, for runtimes that take the body themselves (Azure entry scripts,
    SageMaker handler scripts). Header names are lower-case."""

    method: str
    path: str
    query_string: bytes
    headers: Mapping[str, str]
    body: bytes
    request_id: str = ""
    root_url: str = "http://localhost/"


@dataclass(slots=True)
class RawResult:
    """What a raw runtime answers: status, body bytes and headers, sent as they are."""

    body: bytes
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    run_ms: float = 0.0
    run_failed: bool = False


@dataclass(slots=True)
class GenerationRequest:
    """One text generation request (an OpenAI completion or chat completion), nothing of HTTP or torch.

    One of ``prompt`` (text to continue) and ``messages`` (a chat: objects with "role" and "content",
    which the model's own chat template turns into its prompt) is set. ``max_tokens`` None: up to the
    context length. ``temperature`` 0 is greedy. ``n`` choices are generated, each a sequence of its own;
    ``seed`` makes sampling repeatable (choice i samples with seed + i).
    """

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1
    id: str = ""


FinishReason = Literal["stop", "length"]


@dataclass(slots=True)
class GenerationChunk:
    """One choice's progress: the text added since its previous chunk and, on its last chunk, why it
    ended. Token counts are running totals, so a choice's last chunk carries its usage."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


#: What an engine reports: a chunk, an error (the request ends with it), or None once every choice ended.
GenerationEvent = GenerationChunk | BaseException | None
GenerationSink = Callable[[GenerationEvent], None]


class TextGenerator(Protocol):
    """A generation engine serving one model: thread-safe, it runs on threads of its own and reports
    through ``sink``, calling it from those threads (the server hands the events to its event loop).

    Example::

        cancel = engine.submit(GenerationRequest(prompt="Hello", max_tokens=8), print)
        cancel()  # the client went away: its sequences leave the batch at the next step
    """

    #: Tokens the model attends to: prompt and completion together.
    context_length: int

    def submit(self, request: GenerationRequest, sink: GenerationSink) -> Callable[[], None]: ...


class SharedMemory(Protocol):
    """The server's system shared memory regions (Triton's shared memory extension), as protocols use them.

    Each method raises the errors.py family (400 for a region, offset or size a request gets wrong).
    """

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None: ...

    def unregister(self, name: str | None) -> None: ...

    def status(self, name: str | None) -> list[dict[str, Any]]: ...

    def check(self, region: str, offset: int, byte_size: int) -> None: ...

    def read(self, region: str, offset: int, byte_size: int) -> bytes: ...

    def write(self, region: str, offset: int, byte_size: int, data: bytes, tensor: str) -> None: ...


class Backend(Protocol):
    """What the server offers the protocols: models, readiness and inference, nothing of HTTP.

    Protocols receive one of these when their routes are built and never import the server.
    """

    def live(self) -> bool: ...

    def ready(self) -> bool: ...

    def model_names(self) -> list[str]: ...

    def default_model(self) -> str | None: ...

    def serving(self) -> bool:
        """Ready, with a model to answer a request that names none: the platforms' health checks."""
        ...

    def is_raw(self, name: str) -> bool: ...

    def model_ready(self, name: str, version: str | None = None) -> bool: ...

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata: ...

    def max_batch_size(self, name: str, version: str | None = None) -> int: ...

    def repository_index(self) -> list[dict[str, Any]]: ...

    def statistics(self, name: str | None = None, version: str | None = None) -> list[dict[str, Any]]: ...

    async def load(self, name: str, config: dict[str, Any] | None = None) -> None: ...

    async def unload(self, name: str) -> None: ...

    async def infer(self, name: str, version: str | None, request: InferenceRequest) -> InferenceResponse: ...

    async def score_raw(self, name: str | None, request: RawRequest) -> RawResult: ...

    def generate(self, name: str, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """The chunks of ``request`` on model ``name``'s engine, as they come. Errors (an unknown model, a
        prompt over the context, a model that does not generate) are raised by the call or the first
        ``__anext__``; closing the generator (``aclose()``) cancels the generation."""
        ...

    def shared_memory(self) -> SharedMemory: ...


class PathBackend(Backend, Protocol):
    """A backend that also loads models from a path under a name the caller chooses (SageMaker
    multi-model endpoints), and forgets them again."""

    async def load_path(self, name: str, url: str) -> None: ...

    async def remove_path(self, name: str) -> None: ...

    def paths(self) -> dict[str, str]: ...
