"""An MLflow model signature: its columns or tensors as V2 tensor specs, and its checks on a request.

MLflow signatures are column-based (``{"type": "double", "name": "x", "required": true}``: a DataFrame
column each) or tensor-based (``{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}``),
with optional ``params`` (``{"name": "k", "type": "long", "default": 3, "shape": null}``). In V2 each
column is one input of shape ``[-1]`` (as MLServer's mlflow runtime names them) and each tensor one input.

The checks follow MLflow's schema enforcement (``mlflow.models.utils._enforce_schema``) and word their
errors as it does, so a client that reads MLflow's messages reads ours: a required column missing is
"Model is missing inputs [...]", a value that cannot take the column's type is "Failed to convert column
...", a tensor of the wrong shape "Shape of input ... does not match expected shape ...". Values arriving
as JSON numbers are cast to the declared type, as MLflow's scoring server does when it parses a request.
Columns the signature does not name are dropped, as MLflow drops them. Pure numpy: no mlflow, no pandas.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from prebake.errors import InvalidInput, ModelLoadError
from prebake.types import TensorSpec

#: MLflow column type -> (numpy dtype the model gets, V2 datatype).
COLUMN_TYPES: dict[str, tuple[np.dtype[Any], str]] = {
    "boolean": (np.dtype("bool"), "BOOL"),
    "integer": (np.dtype("int32"), "INT32"),
    "long": (np.dtype("int64"), "INT64"),
    "float": (np.dtype("float32"), "FP32"),
    "double": (np.dtype("float64"), "FP64"),
    "string": (np.dtype("object"), "BYTES"),
    "binary": (np.dtype("object"), "BYTES"),
    "datetime": (np.dtype("datetime64[ns]"), "BYTES"),
}
#: Column types MLflow checks value by value (arrays, objects, maps, any): passed to the model as sent.
_NESTED = ("array", "object", "map", "any")


@dataclass(frozen=True, slots=True)
class Column:
    name: str | None
    type: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str | None
    dtype: np.dtype[Any]
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str
    default: Any = None
    shape: tuple[int, ...] | None = None


class Signature:
    """A parsed signature. ``columns`` or ``tensors`` is set (or neither: no input schema)."""

    def __init__(
        self,
        inputs: list[dict[str, Any]] | None,
        outputs: list[dict[str, Any]] | None = None,
        params: list[dict[str, Any]] | None = None,
        *,
        source: str = "MLmodel",
    ) -> None:
        self.source = source
        self.columns, self.tensors = _parse_specs(inputs, source, "inputs")
        self.output_columns, self.output_tensors = _parse_specs(outputs, source, "outputs")
        self.params = [_param(p, source) for p in params or []]

    # -- what the model declares ----------------------------------------------------------------------
    @property
    def named(self) -> bool:
        """True where the inputs have names (named columns, or named tensors)."""
        items: list[Any] = self.columns or self.tensors or []
        return bool(items) and all(i.name for i in items)

    @property
    def named_outputs(self) -> bool:
        items: list[Any] = self.output_columns or self.output_tensors or []
        return bool(items) and all(i.name for i in items)

    def input_specs(self) -> list[TensorSpec]:
        return _specs(self.columns, self.tensors, "input")

    def output_specs(self) -> list[TensorSpec]:
        return _specs(self.output_columns, self.output_tensors, "output")

    def describe(self) -> dict[str, Any]:
        """What V2 tensor specs cannot say: optional columns and params with their defaults."""
        out: dict[str, Any] = {"content_type": "pd" if self.columns else "np"}
        optional = [c.name for c in self.columns or [] if c.name and not c.required]
        if optional:
            out["optional"] = optional
        if self.params:
            out["params"] = [
                {
                    "name": p.name,
                    "datatype": COLUMN_TYPES.get(p.type, (None, "BYTES"))[1],
                    "type": p.type,
                    "default": p.default,
                    "shape": list(p.shape) if p.shape is not None else None,
                }
                for p in self.params
            ]
        return out

    # -- checks on a request ---------------------------------------------------------------------------
    def columns_for(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The named columns the model takes, in the signature's order, cast to their declared types;
        InvalidInput worded as MLflow's enforcement for a missing column or a value of the wrong type."""
        columns = self.columns or []
        missing = [c.name for c in columns if c.required and c.name not in inputs]
        if missing:
            extra = [n for n in inputs if n not in {c.name for c in columns}]
            note = f" Note that there were extra inputs: {extra}." if extra else ""
            raise InvalidInput(f"Model is missing inputs {missing}.{note}", input=missing[0])
        out: dict[str, np.ndarray] = {}
        for column in columns:
            assert column.name is not None
            if column.name in inputs:
                out[column.name] = cast_column(column.name, inputs[column.name], column.type)
        return out

    def tensors_for(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named tensors checked and cast (tensor-based signature with names)."""
        tensors = self.tensors or []
        missing = [t.name for t in tensors if t.name not in inputs]
        if missing:
            raise InvalidInput(f"Model is missing inputs {missing}.", input=missing[0])
        return {t.name: check_tensor(t, inputs[t.name]) for t in tensors if t.name is not None}

    def params_for(self, sent: Mapping[str, Any]) -> dict[str, Any] | None:
        """The params the model gets: each declared one as sent (checked) or its default; None where the
        signature declares none (MLflow then ignores what was sent)."""
        if not self.params:
            return None
        out: dict[str, Any] = {}
        for param in self.params:
            if param.name in sent and sent[param.name] is not None:
                out[param.name] = check_param(param, sent[param.name])
            else:
                out[param.name] = param.default
        return out


def cast_column(name: str, values: np.ndarray, type_: str) -> np.ndarray:
    """One column as its MLflow type; InvalidInput naming the column and the type where it cannot be."""
    if values.ndim > 1:
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        elif type_ not in _NESTED:
            raise InvalidInput(
                f"Incompatible input types for column {name}. Expected one value per row of type "
                f"{type_}, got an array of shape {list(values.shape)}.",
                input=name,
            )
    if type_ in _NESTED or type_ not in COLUMN_TYPES:
        return values
    dtype = COLUMN_TYPES[type_][0]
    if type_ == "string":
        if values.dtype.kind in "OUS":
            return _as_str(values)
        raise _incompatible(name, values.dtype, np.dtype(str))
    if type_ == "binary":
        return _binary(name, values)
    if type_ == "boolean" and values.dtype.kind not in "bO":
        raise _incompatible(name, values.dtype, dtype)
    if values.dtype == dtype:
        return values
    try:
        if dtype.kind in "iub" and _has_missing(values):
            raise ValueError("Cannot convert non-finite values (NA or inf) to integer")
        return values.astype(dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"Data is not compatible with model signature. Failed to convert column {name} to type "
            f"'{dtype}'. Error: '{exc}'",
            input=name,
        ) from None


def _has_missing(values: np.ndarray) -> bool:
    if values.dtype.kind == "f":
        return not bool(np.isfinite(values).all())
    return values.dtype.kind == "O" and any(v is None for v in values.reshape(-1))


def check_tensor(spec: Tensor, values: np.ndarray, name: str | None = None) -> np.ndarray:
    """A tensor cast to the spec's dtype and checked against its shape (-1: any size)."""
    label = name or spec.name or "the unnamed input"
    if values.dtype != spec.dtype:
        if values.dtype.kind in "OUS" and spec.dtype.kind not in "OUS":
            try:
                values = values.astype(spec.dtype)
            except (ValueError, TypeError):
                raise InvalidInput(
                    f"dtype of input {values.dtype} does not match expected dtype {spec.dtype} ({label})",
                    input=label,
                ) from None
        elif values.dtype.kind in "biuf" and spec.dtype.kind in "biuf":
            values = values.astype(spec.dtype)
        elif spec.dtype.kind == "O":
            values = values.astype(object)
    expected = spec.shape
    if not _fits(expected, values.shape):
        if not (len(expected) == values.ndim + 1 and expected[0] == -1 and _fits(expected[1:], values.shape)):
            raise InvalidInput(
                f"Shape of input {tuple(values.shape)} does not match expected shape {expected}. ({label})",
                input=label,
            )
        values = values[np.newaxis, ...]  # one row sent without its batch axis
    return values


def _fits(expected: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    return len(expected) == len(actual) and all(e in (-1, a) for e, a in zip(expected, actual, strict=True))


def check_param(param: Param, value: Any) -> Any:
    """A param value as its declared type, as MLflow's ``_enforce_param_datatype`` allows it
    (int -> long, float, double; long -> float, double; float -> double)."""
    if param.shape is not None:
        if not isinstance(value, list):
            raise InvalidInput(
                f"Invalid parameters found: {{'{param.name}': 'Value must be a 1D array with shape (-1,) "
                f"for param {param.name!r}: {param.type} (default: {param.default}) (shape: {param.shape}), "
                f"received {type(value).__name__}'}}",
            )
        return [_param_scalar(param, v) for v in value]
    return _param_scalar(param, value)


def _param_scalar(param: Param, value: Any) -> Any:
    kind = param.type
    ok: bool
    if kind == "boolean":
        ok = isinstance(value, bool)
    elif kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in ("float", "double"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind in ("string", "datetime"):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise InvalidInput(
            f"Invalid parameters found: {{'{param.name}': 'Failed to validate type and shape for "
            f"{param.name!r}, error: Can not safely convert {type(value)} to {kind} for value {value!r}'}}",
        )
    if kind in ("float", "double"):
        return float(value)
    return value


def _incompatible(name: str, sent: np.dtype[Any], expected: np.dtype[Any]) -> InvalidInput:
    return InvalidInput(
        f"Incompatible input types for column {name}. Can not safely convert {sent} to {expected}.",
        input=name,
    )


def _as_str(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "O" and not any(isinstance(v, bytes) for v in values.reshape(-1)[:1]):
        return values
    out = np.empty(values.shape, dtype=object)
    out.reshape(-1)[:] = [v.decode() if isinstance(v, bytes) else v for v in values.reshape(-1)]
    return out


def _binary(name: str, values: np.ndarray) -> np.ndarray:
    """Binary columns arrive base64-encoded in JSON (MLflow's convention) or as raw bytes in V2 BYTES."""
    out = np.empty(values.shape, dtype=object)
    try:
        out.reshape(-1)[:] = [
            v if isinstance(v, bytes) else base64.b64decode(str(v), validate=True) for v in values.reshape(-1)
        ]
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"Failed to convert column {name} to type 'binary': send binary values base64-encoded",
            input=name,
        ) from None
    return out


def _parse_specs(
    items: list[dict[str, Any]] | None, source: str, key: str
) -> tuple[list[Column] | None, list[Tensor] | None]:
    if not items:
        return None, None
    if all(i.get("type") == "tensor" for i in items):
        tensors = []
        for item in items:
            spec = item.get("tensor-spec") or {}
            try:
                dtype = np.dtype(spec.get("dtype", "float64"))
            except TypeError as exc:
                raise ModelLoadError(f"{source}: signature {key}: unknown tensor dtype ({exc})") from None
            tensors.append(Tensor(item.get("name"), dtype, tuple(int(d) for d in spec.get("shape") or [-1])))
        return None, tensors
    if any(i.get("type") == "tensor" for i in items):
        raise ModelLoadError(
            f"{source}: signature {key} mixes columns and tensors, which MLflow does not allow"
        )
    return [Column(i.get("name"), str(i.get("type")), bool(i.get("required", True))) for i in items], None


def _param(item: dict[str, Any], source: str) -> Param:
    if not isinstance(item.get("name"), str):
        raise ModelLoadError(f"{source}: signature params: each param needs a name")
    shape = item.get("shape")
    return Param(item["name"], str(item.get("type")), item.get("default"), tuple(shape) if shape else None)


def _specs(columns: list[Column] | None, tensors: list[Tensor] | None, prefix: str) -> list[TensorSpec]:
    if columns:
        return [
            TensorSpec(c.name or f"{prefix}-{i}", COLUMN_TYPES.get(c.type, (None, "BYTES"))[1], [-1])
            for i, c in enumerate(columns)
        ]
    if tensors:
        from prebake.runtimes.arrays import v2_datatype

        return [
            TensorSpec(t.name or f"{prefix}-{i}", v2_datatype(t.dtype), list(t.shape))
            for i, t in enumerate(tensors)
        ]
    return []
