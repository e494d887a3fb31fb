"""DataFrames as JSON without pandas: pandas' ``split`` and ``records`` orientations to and from named
column arrays, and a model's answer as MLflow writes it (``mlflow.utils.proto_json_utils._get_jsonable_obj``).

MLflow's scoring protocol and Azure's no-code MLflow requests speak these; both protocols use this leaf
(protocols never import each other). Columns are typed as pandas types them from JSON: bool, int64,
float64 (a missing value among numbers is NaN), else objects.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prebake import codec
from prebake.types import InferenceResponse


def split_frame(value: Any) -> dict[str, np.ndarray]:
    """pandas' ``split`` orientation: ``{"columns": [...], "data": [[...], ...], "index": [...]}``."""
    if not isinstance(value, dict):
        raise codec.bad(f"Dataframe split format must be a dictionary. Got {type(value).__name__}.")
    keys = set(value)
    if "data" not in keys or keys - {"columns", "data", "index"}:
        raise codec.bad(
            "Dataframe split format must have 'data' field and optionally 'columns' and 'index' fields. "
            f"Got {sorted(keys)}."
        )
    rows, columns = value["data"], value.get("columns")
    if not isinstance(rows, list) or not rows:
        raise codec.bad("dataframe_split 'data' must be a non-empty list of rows")
    if not all(isinstance(row, list) for row in rows):
        rows = [[v] for v in rows]
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        raise codec.bad("dataframe_split: every row of 'data' must have the same number of values")
    if columns is None:
        return {"": tensor("dataframe_split", rows)}
    if not isinstance(columns, list) or len(columns) != width:
        raise codec.bad(
            f"dataframe_split: {len(columns) if isinstance(columns, list) else 'no'} columns named but the "
            f"rows have {width} values"
        )
    names = [str(c) for c in columns]
    if len(set(names)) != len(names):
        raise codec.bad("dataframe_split: column names must be unique")
    return columns_to_arrays(dict(zip(names, (list(c) for c in zip(*rows, strict=True)), strict=True)))


def records_frame(value: Any) -> dict[str, np.ndarray]:
    """pandas' ``records`` orientation: one object per row (a key missing from a row is a missing value)."""
    if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
        raise codec.bad("Dataframe records format must be a non-empty list of records (JSON objects).")
    return columns_to_arrays(records_columns(value))


def records_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            names.setdefault(str(key), None)
    return {name: [row.get(name) for row in rows] for name in names}


def columns_to_arrays(columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    return {name: column(name, values) for name, values in columns.items()}


def column(name: str, values: list[Any]) -> np.ndarray:
    """One DataFrame column as pandas would type it from JSON: bool, int64, float64 (missing values NaN
    among numbers), else objects (str, None, nested lists)."""
    kinds = {type(v) for v in values}
    if kinds <= {bool}:
        return np.asarray(values, dtype=bool)
    if kinds <= {int}:
        try:
            return np.asarray(values, dtype=np.int64)
        except OverflowError:
            pass
    if kinds <= {int, float, type(None)} and kinds - {type(None)}:
        return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def tensor(name: str, values: Any) -> np.ndarray:
    """A tensor from nested JSON lists (``instances`` / ``inputs``), as ``np.array`` makes it."""
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise codec.bad(f"'{name}': rows are not all the same shape ({exc})") from None
    if array.dtype.kind == "U":
        array = array.astype(object)
    if array.dtype.kind not in "biufO":
        raise codec.bad(f"'{name}': cannot use values of type {array.dtype}")
    return array


def predictions(response: InferenceResponse) -> Any:
    """The ``predictions`` value MLflow writes for what the model returned (``_get_jsonable_obj``)."""
    outputs = response.outputs
    kind = response.parameters.get("content_type")
    if kind == "pd":
        columns = {name: _values(array) for name, array in outputs.items()}
        count = len(next(iter(columns.values()), []))
        return [{name: values[i] for name, values in columns.items()} for i in range(count)]
    if kind == "dict" or len(outputs) != 1:
        return {name: _values(array) for name, array in outputs.items()}
    (array,) = outputs.values()
    return array.item() if array.ndim == 0 else codec.to_jsonable(array)


def _values(array: np.ndarray) -> list[Any]:
    value = codec.to_jsonable(array)
    return value.tolist() if isinstance(value, np.ndarray) else list(value) if array.ndim else [value]
