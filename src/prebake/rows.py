"""Rows: the JSON of KServe V1, Vertex AI and SageMaker (one entry per row), to and from named arrays.

V2 speaks tensors (codec.py); these protocols speak rows: ``instances`` in, ``predictions`` out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prebake.codec import bad, native_dtype, to_jsonable
from prebake.errors import echo
from prebake.types import TensorSpec


def rows_to_inputs(instances: Any, specs: Sequence[TensorSpec] = ()) -> dict[str, np.ndarray]:
    """``instances`` (one entry per row) as named input arrays.

    Rows that are JSON objects name their inputs (TensorFlow Serving's row format): each key becomes an
    input. Any other rows form one array named by the model's first input (``"input-0"`` if it names
    none). Where the model's metadata gives an input's numeric datatype, the array takes it (an ONNX
    model wants FP32, not the float64 JSON numbers would give); otherwise numpy infers float64 or int64,
    and text stays Python str in an object array. ``{"b64": "..."}`` values (Vertex AI's convention for
    binary data) become bytes.
    """
    if not isinstance(instances, list) or not instances:
        raise bad("'instances' must be a non-empty list, one entry per row")
    datatypes = {spec.name: spec.datatype for spec in specs}
    first = instances[0]
    if isinstance(first, dict) and set(first) != {"b64"}:
        if not all(isinstance(row, dict) and row.keys() == first.keys() for row in instances):
            raise bad("every instance must be an object with the same keys")
        return {
            key: column(key, [_unb64(key, row[key]) for row in instances], datatypes.get(key))
            for key in first
        }
    name = specs[0].name if specs else "input-0"
    return {name: column(name, [_unb64(name, row) for row in instances], datatypes.get(name))}


def _unb64(name: str, value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise bad(f"input '{echo(name)}': 'b64' value is not base64") from None
    return value


def column(name: str, values: list[Any], datatype: str | None = None) -> np.ndarray:
    """A list of rows as one array, in ``datatype`` when the model gives a numeric one."""
    dtype = native_dtype(datatype)
    if dtype is not None:
        try:
            return np.asarray(values, dtype=dtype)
        except (ValueError, TypeError, OverflowError):
            pass  # fall through to inference below, which says what is wrong, or lets the model decide
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise bad(f"input '{echo(name)}': rows are not all the same shape ({exc})") from None
    if array.dtype.kind in "US":
        # Text (or text mixed with numbers, as in a row of mixed features) keeps each value's own
        # Python type in an object array: strings stay str, as BYTES from JSON do elsewhere.
        array = np.empty(array.shape, dtype=object)
        try:
            array[...] = values
        except ValueError as exc:
            raise bad(f"input '{echo(name)}': rows are not all the same shape ({exc})") from None
    if array.dtype.kind not in "biufO":
        raise bad(f"input '{echo(name)}': cannot use values of type {array.dtype}")
    if array.dtype.kind == "O" and not all(
        v is None or isinstance(v, str | bytes | int | float) for v in array.reshape(-1)
    ):
        raise bad(f"input '{echo(name)}': rows are not all the same shape, or hold objects")
    return array


def outputs_to_predictions(outputs: Mapping[str, np.ndarray]) -> Any:
    """The ``predictions`` value for V1, Vertex and SageMaker JSON.

    One output: its rows, as a list. Several outputs with the same number of rows: one object per row
    keyed by output name (TensorFlow Serving's convention for multi-output models). Several outputs
    whose row counts differ: one object mapping each name to its whole value.
    """
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if len(arrays) == 1:
        (array,) = arrays.values()
        return to_jsonable(array) if array.ndim else array.item()
    rows = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(rows) == 1 and None not in rows:
        columns = {
            name: to_jsonable(a).tolist() if a.dtype.kind in "biuf" else to_jsonable(a)
            for name, a in arrays.items()
        }
        count = next(iter(rows))
        assert count is not None
        return [{name: values[i] for name, values in columns.items()} for i in range(count)]
    return {name: to_jsonable(a) if a.ndim else a.item() for name, a in arrays.items()}
