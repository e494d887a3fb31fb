"""Triton's extensions to V2 that REST and gRPC share (a leaf, so neither protocol imports the other).

- Model control: ``POST .../load`` with ``{"parameters": {"config": "<model configuration JSON>"}}``
  reloads a model with a new configuration. prebake takes the batching part of it (``max_batch_size``
  and ``dynamic_batching.max_queue_delay_microseconds``) and refuses what it cannot honour, with
  Triton's words ("failed to load 'X'" and "Invalid config override: ...", as
  triton-inference-server/core src/model_repository_manager/model_repository_manager.cc has them),
  rather than ignore it. The config is protobuf JSON, where 64- and 32-bit integers may be strings
  (``{"max_batch_size": "16"}``, which Triton's own model-control examples send).
- Shared memory: an input or requested output with ``shared_memory_region`` (and
  ``shared_memory_byte_size``, optionally ``shared_memory_offset``) is read from or written to a region
  the client registered (``shm_reference``; the regions are the server's, see server/shm.py).
- Classification: a requested output with ``classification: k`` comes back as its top k classes
  (``classification_count``; the served model computes them, see server/classification.py).

The messages are Triton's (triton-inference-server/server, src/grpc/grpc_utils.h and src/http_server.cc),
so clients and users matching on them keep working.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prebake.errors import InvalidInput, echo

#: The extensions both transports offer (server metadata lists them; REST adds binary_tensor_data).
EXTENSIONS = [
    "classification",
    "model_configuration",
    "model_repository",
    "sequence",
    "statistics",
    "system_shared_memory",
]

SHM_REGION = "shared_memory_region"
SHM_OFFSET = "shared_memory_offset"
SHM_SIZE = "shared_memory_byte_size"
CLASSIFICATION = "classification"


@dataclass(frozen=True, slots=True)
class ShmReference:
    """Where a tensor's bytes are in a registered shared memory region."""

    region: str
    offset: int
    byte_size: int


def shm_reference(tensor: str, params: dict[str, Any]) -> ShmReference | None:
    """The shared memory parameters of a tensor, taken out of ``params``; None where it names no region.

    >>> shm_reference("x", {"shared_memory_region": "in", "shared_memory_byte_size": 64})
    ShmReference(region='in', offset=0, byte_size=64)
    """
    if not params:
        return None
    region = params.pop(SHM_REGION, None)
    offset = params.pop(SHM_OFFSET, None)
    size = params.pop(SHM_SIZE, None)
    where = f"tensor '{echo(tensor)}'"
    if region is None:
        for key, value in ((SHM_OFFSET, offset), (SHM_SIZE, size)):
            if value is not None:
                raise InvalidInput(
                    f"'{key}' can not be specified without '{SHM_REGION}' parameter for {where}"
                )
        return None
    if not isinstance(region, str) or not region:
        raise InvalidInput(
            f"invalid value type for '{SHM_REGION}' parameter for {where}, expected string_param."
        )
    if size is None:
        raise InvalidInput(f"'{SHM_SIZE}' must be specified along with '{SHM_REGION}' parameter for {where}")
    for key, value in ((SHM_OFFSET, offset), (SHM_SIZE, size)):
        if value is not None and (type(value) is not int or value < 0):
            raise InvalidInput(f"invalid value for '{key}' parameter for {where}, expected an integer >= 0.")
    return ShmReference(region, offset or 0, size)


def classification_count(tensor: str, params: dict[str, Any]) -> int:
    """k of a requested output's ``classification`` parameter (0: none), taken out of ``params``."""
    value = params.pop(CLASSIFICATION, None)
    if value is None or value is False or value == 0:  # 0: not asked (Triton's REST reading)
        return 0
    if type(value) is not int:
        raise InvalidInput(
            f"output '{echo(tensor)}': invalid value type for 'classification' parameter, expected an integer"
        )
    if value <= 0:
        raise InvalidInput(
            f"output '{echo(tensor)}': invalid value for 'classification' parameter, expected >= 0"
        )
    return value


#: Configuration fields that describe the model as it is (accepted when they agree, never changed).
_DESCRIPTIVE = {"name", "platform", "backend", "input", "output", "version_policy"}


def check_load_parameters(model: str, names: Iterable[str], *, allowed: tuple[str, ...]) -> None:
    """Refuse load/unload parameters prebake does not take (InvalidInput, 400), in Triton's words.

    ``file:<path>`` parameters carry a whole model's files in the request (Triton writes them to a
    temporary repository); prebake serves what its repository holds, so it says what to do instead.
    """
    for name in sorted(set(names) - set(allowed)):
        if name.startswith("file:"):
            raise InvalidInput(
                f"failed to load '{echo(model)}', failed to poll from model repository: prebake takes no "
                "'file:' overrides; put the model's files in the model repository and load it by name"
            )
        raise InvalidInput(f"Unrecognized load parameter '{echo(name)}'; prebake takes {', '.join(allowed)}")


def load_overrides(model: str, config: Any) -> dict[str, Any]:
    """ModelSettings overrides from a Triton configuration given to load; InvalidInput (400) for one
    that is not JSON, not an object, or asks for what prebake cannot do.

    >>> load_overrides("iris", '{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 500}}')
    {'max_batch_size': 8, 'max_batch_delay_ms': 0.5}
    """

    def fail(why: str) -> InvalidInput:
        return InvalidInput(f"failed to load '{echo(model)}': Invalid config override: {why}")

    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise fail(f"the config is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise fail("the config must be a JSON object (Triton's model configuration)")
    unknown = sorted(set(config) - _DESCRIPTIVE - {"max_batch_size", "dynamic_batching"})
    if unknown:
        raise fail(
            f"config field(s) {', '.join(unknown)} are not supported; prebake takes max_batch_size and dynamic_batching"
        )
    if "name" in config and config["name"] != model:
        raise fail(f"the config names model '{echo(str(config['name']))}'")
    overrides: dict[str, Any] = {}
    if "max_batch_size" in config:
        size = _integer(config["max_batch_size"])
        if type(size) is not int or size < 0:
            raise fail("max_batch_size must be a whole number >= 0")
        # Triton's 0 means "does not batch"; prebake's 1 does the same (its 0 is "the default").
        overrides["max_batch_size"] = size or 1
    batching = config.get("dynamic_batching")
    if batching is not None:
        if not isinstance(batching, dict):
            raise fail("dynamic_batching must be an object")
        extra = sorted(set(batching) - {"max_queue_delay_microseconds", "preferred_batch_size"})
        if extra:
            raise fail(f"dynamic_batching field(s) {', '.join(extra)} are not supported")
        delay = _integer(batching.get("max_queue_delay_microseconds", 0))
        if type(delay) is not int or delay < 0:
            raise fail("max_queue_delay_microseconds must be a whole number >= 0")
        overrides["max_batch_delay_ms"] = delay / 1000
    return overrides


def _integer(value: Any) -> Any:
    """A protobuf JSON integer: a number, or its digits in a string (how protobuf writes 64-bit ones)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return value


def shm_registration(doc: Any) -> tuple[str, int, int]:
    """The key, offset and byte size of a REST system shared memory registration body."""
    if not isinstance(doc, dict):
        raise InvalidInput("the shared memory register request must be a JSON object")
    key = doc.get("key")
    if key is None:
        raise InvalidInput("Shared memory register request has no 'key' field")
    if not isinstance(key, str):
        raise InvalidInput("Shared memory register request: 'key' must be a string")
    if "byte_size" not in doc:
        raise InvalidInput("Shared memory register request has no 'byte_size' field")
    offset, size = doc.get("offset", 0), doc["byte_size"]
    for field_name, value in (("offset", offset), ("byte_size", size)):
        if type(value) is not int or value < 0:
            raise InvalidInput(f"Shared memory register request: '{field_name}' must be an integer >= 0")
    return key, offset, size


def no_cuda_shared_memory(region: str) -> InvalidInput:
    """What a Triton built without GPUs answers a CUDA shared memory registration (src/http_server.cc)."""
    return InvalidInput(f"failed to register CUDA shared memory region: '{echo(region)}', GPUs not supported")


def config_dims(spec: Any, max_batch_size: int) -> list[int]:
    """A tensor's dims as Triton's model configuration has them: without the batch dimension where the
    model batches (max_batch_size > 0), the whole shape otherwise."""
    shape = list(spec.shape)
    if max_batch_size > 0 and shape and shape[0] == -1:
        return shape[1:]
    return shape


def config_format(spec: Any) -> str:
    """An input's ``format`` as Triton's model configuration names it (FORMAT_NONE where not an image)."""
    return f"FORMAT_{spec.format or 'NONE'}"
