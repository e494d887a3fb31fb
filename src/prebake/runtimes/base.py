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

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prebake.errors import ScoringError, echo
from prebake.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RawRequest,
    RawResult,
    TensorSpec,
    TextGenerator,
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
    #: True where ``predict_batch`` merges requests itself: texts, say, which cannot be concatenated as
    #: arrays but go in one padded forward pass with others of similar length. The batcher then groups
    #: requests by input names, outputs and parameters only, and hands them over whole.
    merges_requests: bool = False

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        #: The inputs predict takes, and the outputs the model declares: set by load().
        self.plan: InputPlan | None = None
        self.output_specs: list[TensorSpec] = []

    def load(self) -> None:
        raise NotImplementedError

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError

    def predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        """One response per request, in order (the batch hook of ``merges_requests`` runtimes)."""
        return [self.predict(request) for request in requests]

    def generator(self) -> TextGenerator | None:
        """The engine of a generative model (text completions and chats), loaded; None for others."""
        return None

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


# RFC 9110: a field name is a token; a value is visible latin-1 text, spaces and tabs (no CR, LF or NUL).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def raw_result(
    body: bytes,
    status: int,
    headers: Iterable[tuple[str, str]],
    content_type: str,
    *,
    run_failed: bool = False,
) -> RawResult:
    """A RawResult from what user code chose (an AMLResponse, a handler's content type), checked so
    the server can send it: a status of 100 to 599, header names that are tokens, values in latin-1
    without control characters. Anything else is the script's error (ScoringError, 500), named,
    instead of a response the HTTP layer cannot write."""
    if type(status) is not int or not 100 <= status <= 599:
        raise ScoringError(
            f"the script answered with status {echo(repr(status))}; HTTP statuses are 100 to 599"
        )
    checked = list(headers)
    for name, value in [*checked, ("Content-Type", content_type)]:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ScoringError(
                f"the script answered with a header named {echo(repr(name))}, which HTTP does not allow"
            )
        if (
            not isinstance(value, str)
            or _BAD_VALUE.search(value)
            or not value.isascii()
            and not _latin1(value)
        ):
            raise ScoringError(
                f"the script answered with header {echo(repr(name))} = {echo(repr(value))}: HTTP header values must be "
                "latin-1 text without control characters (encode others, e.g. percent-encoding)"
            )
    return RawResult(body, status, checked, content_type, run_failed=run_failed)


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
