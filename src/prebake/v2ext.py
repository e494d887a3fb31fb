"""Triton's extensions to V2 that REST and gRPC share (a leaf, so neither protocol imports the other).

- Model control: ``POST .../load`` with ``{"parameters": {"config": "<model configuration JSON>"}}``
  reloads a model with a new configuration. prebake takes the batching part of it (``max_batch_size``
  and ``dynamic_batching.max_queue_delay_microseconds``) and refuses what it cannot honour, with
  Triton's "failed to load" wording, rather than ignore it.
"""

from __future__ import annotations

import json
from typing import Any

from prebake.errors import InvalidInput, echo

#: Configuration fields that describe the model as it is (accepted when they agree, never changed).
_DESCRIPTIVE = {"name", "platform", "backend", "input", "output", "version_policy"}


def load_overrides(model: str, config: Any) -> dict[str, Any]:
    """ModelSettings overrides from a Triton configuration given to load; InvalidInput (400) for one
    that is not JSON, not an object, or asks for what prebake cannot do.

    >>> load_overrides("iris", '{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 500}}')
    {'max_batch_size': 8, 'max_batch_delay_ms': 0.5}
    """

    def fail(why: str) -> InvalidInput:
        return InvalidInput(f"failed to load '{echo(model)}': {why}")

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
        size = config["max_batch_size"]
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
        delay = batching.get("max_queue_delay_microseconds", 0)
        if isinstance(delay, str) and delay.isdigit():
            delay = int(delay)  # protobuf's JSON writes uint64 as a string
        if type(delay) is not int or delay < 0:
            raise fail("max_queue_delay_microseconds must be a whole number >= 0")
        overrides["max_batch_delay_ms"] = delay / 1000
    return overrides
