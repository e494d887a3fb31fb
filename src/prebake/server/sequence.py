"""Sequence control inputs: what Triton's sequence batcher gives a sequence model with each request.

A model whose settings name control inputs (``"sequence": {"START": "start", "READY": "ready"}``) is a
sequence model: each request must carry a ``sequence_id`` (a non-zero integer or a non-empty string) and
one row, and the server adds the controls the client does not send: ``start`` and ``end`` (1 on the
request flagged ``sequence_start`` / ``sequence_end``, else 0), ``ready`` (1) and ``correlation_id``
(the sequence id), each of shape ``[1, 1]`` in the input's dtype. As Triton's ``control_input`` kinds
CONTROL_SEQUENCE_START, _END, _READY and _CORRID; the messages are Triton's
(triton-inference-server/core, src/sequence_batch_scheduler/).

Each request's controls come from its own flags, so any worker can serve any request of a sequence;
no state is kept between requests (a model needing its own state across a sequence, Triton's implicit
state, is not served by this).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from prebake.errors import InvalidInput, echo
from prebake.types import InferenceRequest


def with_controls(
    model: str,
    controls: Mapping[str, np.dtype[Any] | None],
    kinds: Mapping[str, str],
    request: InferenceRequest,
) -> InferenceRequest:
    """``request`` with the control inputs of a sequence model added; InvalidInput (400) for a request
    that is not one of a sequence."""
    params = request.parameters
    sequence_id = params.get("sequence_id")
    if isinstance(sequence_id, bool) or not isinstance(sequence_id, int | str) or not sequence_id:
        raise InvalidInput(
            f"inference request to model '{model}' must specify a non-zero or non-empty correlation ID"
        )
    for name in request.inputs:
        if name in controls:
            raise InvalidInput(
                f"unexpected inference input '{echo(name)}' for model '{model}': the server gives this "
                "sequence control input itself"
            )
    first = next(iter(request.inputs.values()), None)
    if first is not None and first.ndim > 0 and first.shape[0] > 1:
        raise InvalidInput(
            f"inference request to model '{model}' must specify batch-size 1 due to requirements of "
            "sequence batcher"
        )
    values = {
        "start": int(bool(params.get("sequence_start"))),
        "end": int(bool(params.get("sequence_end"))),
        "ready": 1,
    }
    inputs = dict(request.inputs)
    for name, dtype in controls.items():
        kind = kinds[name]
        if kind != "correlation_id":
            inputs[name] = np.full((1, 1), values[kind], dtype=dtype or np.int32)
        elif dtype is None or dtype.kind in "OSU":
            inputs[name] = np.array([[str(sequence_id)]], dtype=object)
        elif isinstance(sequence_id, int) and 0 < sequence_id < 2**64:
            inputs[name] = np.full((1, 1), sequence_id, dtype=dtype)
        else:
            raise InvalidInput(f"model '{model}': correlation ID in request is not an unsigned int")
    return dataclasses.replace(request, inputs=inputs)
