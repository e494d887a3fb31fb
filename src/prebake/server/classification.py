"""Triton's classification extension: an output asked for with ``classification: k`` comes back as its k
highest scores, as BYTES ``"score:index"`` or ``"score:index:label"`` where the model has labels.

As Triton's ``TopkClassifications`` (triton-inference-server/server, src/classification.cc, and the
shaping in src/http_server.cc and src/grpc/infer_handler.h): a model that batches gets the top k of each
row (shape ``[rows, k]``), one that does not the top k of the whole output (shape ``[k]``); k is cut to
the number of scores; scores are written as C++'s ``std::to_string`` writes them (six decimals for
floating point); only integer and FP32/FP64 outputs can be classified.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prebake.errors import InvalidInput

#: As Triton's kMaxClassificationElements: past it, sorting is refused rather than paid for.
MAX_ELEMENTS = 1_000_000
_KINDS = "iuf"


def classify(name: str, array: np.ndarray, k: int, labels: Sequence[str], *, batched: bool) -> np.ndarray:
    """The top ``k`` classes of ``array`` as an object array of bytes.

    >>> classify("p", np.array([[0.1, 0.7, 0.2]], dtype=np.float32), 2, ["a", "b", "c"], batched=True)
    array([[b'0.700000:1:b', b'0.200000:2:c']], dtype=object)
    """
    array = np.asarray(array)
    if array.dtype.kind not in _KINDS or array.dtype == np.float16:
        raise InvalidInput(
            f"class result not available for output '{name}' due to unsupported type '{_datatype(array)}'"
        )
    if array.size > MAX_ELEMENTS:
        raise InvalidInput(f"output '{name}': classification output tensor too large")
    rows = array.reshape(array.shape[0], -1) if batched and array.ndim > 0 else array.reshape(1, -1)
    count = min(k, rows.shape[1])
    out = np.empty((rows.shape[0], count), dtype=object)
    floating = array.dtype.kind == "f"
    for r, row in enumerate(rows):
        # Highest first; a stable sort keeps the lower index first among equal scores.
        order = np.argsort(-row.astype(np.float64), kind="stable")[:count]
        for c, index in enumerate(order.tolist()):
            value = row[index]
            text = f"{float(value):f}" if floating else str(int(value))
            entry = f"{text}:{index}"
            if index < len(labels) and labels[index]:
                entry += f":{labels[index]}"
            out[r, c] = entry.encode()
    return out if batched and array.ndim > 0 else out.reshape(-1)


def _datatype(array: np.ndarray) -> str:
    from prebake import datatypes

    return datatypes.of_dtype(array.dtype) or str(array.dtype)
