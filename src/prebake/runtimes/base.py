"""The runtime interface: one framework each, synchronous, nothing of HTTP.

A runtime loads one model and turns an ``InferenceRequest`` (named numpy arrays) into an
``InferenceResponse``. The server calls ``load`` once per worker and ``predict`` from its scoring threads,
never on the event loop. Frameworks are imported inside ``load`` so ``import prebake`` needs none.

Example::

    class EchoRuntime(Runtime):
        name = "echo"

        def load(self) -> None:
            pass

        def predict(self, request: InferenceRequest) -> InferenceResponse:
            return InferenceResponse(outputs=dict(request.inputs))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prebake.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RawRequest,
    RawResult,
    TensorSpec,
)

if TYPE_CHECKING:
    from prebake.runtimes.arrays import InputPlan


@dataclass(slots=True)
class ModelSettings:
    """Per-model settings: from a settings file beside the model, from flags, or defaults.

    ``predict_method`` picks e.g. predict or predict_proba; ``inputs``/``outputs`` describe tensors;
    ``max_batch_size`` of 0 or 1 turns adaptive batching off; ``max_batch_delay_ms`` bounds the wait.
    """

    name: str
    path: Path
    runtime: str = ""
    version: str | None = None
    predict_method: str | None = None
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    max_batch_size: int = 0
    max_batch_delay_ms: float = 2.0
    device: str = "auto"
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Class names of an output, for the classification extension ("score:index:label").
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: A sequence model's control inputs, filled by the server: input name -> start, end, ready or
    #: correlation_id (see settings.py).
    sequence: dict[str, str] = field(default_factory=dict)


class Runtime:
    """Base class of the array runtimes. Subclasses set ``name`` and implement ``load`` and ``predict``."""

    name: str = ""
    #: True where predict accepts any number of rows along axis 0, so requests can be batched.
    batchable: bool = True

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        #: The inputs predict takes, and the outputs the model declares: set by load().
        self.plan: InputPlan | None = None
        self.output_specs: list[TensorSpec] = []

    def load(self) -> None:
        raise NotImplementedError

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError

    def unload(self) -> None:
        """Free what load() took; the default drops nothing and lets garbage collection work."""

    def platform(self) -> str:
        """The metadata's platform name (Triton's names where Triton has the same backend)."""
        return self.name

    def metadata(self) -> ModelMetadata:
        """What the settings file declares, else what the loaded model says (its plan and output specs)."""
        plan = self.plan
        return ModelMetadata(
            name=self.settings.name,
            platform=self.platform(),
            versions=[self.settings.version] if self.settings.version else [],
            inputs=list(self.settings.inputs) or (plan.specs() if plan is not None else []),
            outputs=list(self.settings.outputs) or list(self.output_specs),
        )


class RawRuntime:
    """A runtime that takes the HTTP body itself (Azure entry scripts, SageMaker handler scripts)."""

    name: str = ""
    batchable: bool = False

    def load(self) -> None:
        raise NotImplementedError

    def score(self, request: RawRequest) -> RawResult:
        raise NotImplementedError
