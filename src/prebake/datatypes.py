"""The V2 datatypes, once: every fact about each, and every place that needs one reads it here.

    name    on the wire   decoded as   gRPC contents field   Triton config
    BOOL    bool          bool         bool_contents         TYPE_BOOL
    INT32   <i4           int32        int_contents          TYPE_INT32
    FP16    <f2           float16      (raw contents only)   TYPE_FP16
    BYTES   object        object       bytes_contents        TYPE_STRING
    BF16    <u2           float32      (raw contents only)   TYPE_BF16
    ...

Little-endian on the wire (the binary tensor extension and gRPC raw contents), whatever this machine
is. BYTES arrays hold ``bytes`` (binary data) or ``str`` (JSON). bfloat16 has no numpy dtype: two
bytes on the wire, float32 once decoded (float32's upper half, so exact). A leaf: numpy only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Datatype(NamedTuple):
    name: str
    wire: np.dtype[Any]  # the element on the wire (binary data, gRPC raw contents)
    decoded: np.dtype[Any]  # the array a request brings the model, in native byte order
    contents: str | None  # the typed field of gRPC InferTensorContents; None: raw contents only
    config: str  # the name in Triton's model configuration


def _row(name: str, wire: str, decoded: str, contents: str | None, config: str = "") -> Datatype:
    return Datatype(name, np.dtype(wire), np.dtype(decoded), contents, config or f"TYPE_{name}")


DATATYPES: dict[str, Datatype] = {
    row.name: row
    for row in (
        _row("BOOL", "?", "?", "bool_contents"),
        _row("UINT8", "<u1", "u1", "uint_contents"),
        _row("UINT16", "<u2", "u2", "uint_contents"),
        _row("UINT32", "<u4", "u4", "uint_contents"),
        _row("UINT64", "<u8", "u8", "uint64_contents"),
        _row("INT8", "<i1", "i1", "int_contents"),
        _row("INT16", "<i2", "i2", "int_contents"),
        _row("INT32", "<i4", "i4", "int_contents"),
        _row("INT64", "<i8", "i8", "int64_contents"),
        _row("FP16", "<f2", "f2", None),
        _row("FP32", "<f4", "f4", "fp32_contents"),
        _row("FP64", "<f8", "f8", "fp64_contents"),
        _row("BYTES", "O", "O", "bytes_contents", "TYPE_STRING"),
        _row("BF16", "<u2", "f4", None),
    )
}
NAMES: tuple[str, ...] = tuple(DATATYPES)

# numpy dtype -> V2 name for what models return (bfloat16 never: it decodes to float32).
_BY_KIND_SIZE: dict[tuple[str, int], str] = {
    (row.decoded.kind, row.decoded.itemsize): row.name
    for row in DATATYPES.values()
    if row.name not in ("BYTES", "BF16")
}


def lookup(name: Any) -> Datatype | None:
    """The datatype called ``name`` (case as the spec spells it), or None."""
    return DATATYPES.get(name) if isinstance(name, str) else None


def of_dtype(dtype: Any) -> str | None:
    """The V2 name of a numpy dtype: strings and objects are BYTES; None where no V2 datatype holds it.

    >>> of_dtype(np.float32), of_dtype(np.dtype("<U3")), of_dtype(np.complex64)
    ('FP32', 'BYTES', None)
    """
    dt = np.dtype(dtype)
    if dt.kind in "OSU":
        return "BYTES"
    return _BY_KIND_SIZE.get((dt.kind, dt.itemsize))
