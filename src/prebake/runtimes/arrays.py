"""What the array runtimes share: picking inputs from a request, checking them, naming outputs.

Every check that can be worked out from the model is worked out once, in ``load()``, into an
``InputPlan``; ``predict()`` then pays a few attribute reads and comparisons per call. Bad input raises
``InvalidInput`` naming the input and the shape or dtype expected, never a framework traceback.

Example::

    plan = InputPlan([TensorCheck("x", np.dtype("float32"), (-1, 4))])
    (x,) = plan.arrays(request)          # float32, shape (n, 4), or InvalidInput
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from prebake import datatypes
from prebake.errors import InvalidInput
from prebake.types import InferenceRequest, TensorSpec


def v2_datatype(dtype: Any) -> str:
    """The V2 datatype name of a numpy dtype; strings, objects and anything else are BYTES.

    >>> v2_datatype(np.float32)
    'FP32'
    """
    return datatypes.of_dtype(dtype) or "BYTES"


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype an input of a V2 datatype arrives as (BF16: float32); ValueError for an unknown one."""
    row = datatypes.lookup(datatype.upper())
    if row is None:
        raise ValueError(f"unknown datatype {datatype!r}; expected one of {', '.join(datatypes.NAMES)}")
    return row.decoded


def shape_text(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class TensorCheck:
    """One input the model takes: its name, the dtype it is cast to (None: left as sent), and its shape
    with -1 for any size (None: any shape). ``coerce`` returns the array ready for the framework."""

    __slots__ = ("name", "dtype", "shape", "datatype", "_fixed")

    def __init__(
        self,
        name: str,
        dtype: np.dtype[Any] | None,
        shape: Sequence[int] | None,
        datatype: str | None = None,
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape) if shape is not None else None
        # The V2 datatype the metadata reports where the dtype does not say it (BF16 arrives as float32).
        self.datatype = datatype
        # (axis, size) for each dimension the model fixes; checked on every call.
        self._fixed = tuple((i, d) for i, d in enumerate(self.shape or ()) if d >= 0)

    def spec(self) -> TensorSpec:
        datatype = self.datatype or (v2_datatype(self.dtype) if self.dtype is not None else "FP64")
        return TensorSpec(self.name, datatype, list(self.shape) if self.shape is not None else [-1])

    def coerce(self, x: np.ndarray, sent_as: str | None = None) -> np.ndarray:
        """``x`` cast and checked; errors name the input as the client sent it (``sent_as``) where given."""
        dtype = self.dtype
        if x.dtype.kind in "OS":
            x = as_text(x)
        if dtype is not None and x.dtype != dtype:
            x = cast(sent_as or self.name, x, dtype)
        shape = self.shape
        if shape is None:
            return x
        sent = x
        if x.ndim != len(shape):
            # A V2 client often sends one row as shape [features]: add the batch axis back.
            if x.ndim == len(shape) - 1 and shape[0] == -1:
                x = x[np.newaxis, ...]
            else:
                raise self.shape_error(sent, sent_as)
        dims = x.shape
        for axis, size in self._fixed:
            if dims[axis] != size:
                raise self.shape_error(sent, sent_as)  # the shape the client sent, not our widened one
        return x

    def shape_error(self, x: np.ndarray, sent_as: str | None = None) -> InvalidInput:
        name = sent_as or self.name
        return InvalidInput(
            f"input {name!r} has shape {shape_text(x.shape)}; "
            f"the model expects {shape_text(self.shape or ())} (-1: any size)",
            input=name,
        )


def as_text(x: np.ndarray) -> np.ndarray:
    """Bytes (how V2 BYTES tensors arrive) as str, which scikit-learn encoders and onnxruntime expect;
    any other array is returned as it is."""
    if x.dtype.kind == "S":
        return x.astype(str).astype(object)
    if x.dtype.kind == "O" and x.size and isinstance(x.flat[0], bytes):
        return np.frompyfunc(_decode, 1, 1)(x)
    return x


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def cast(name: str, x: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """``x`` as ``dtype``, or InvalidInput naming the input when its values cannot be converted."""
    try:
        return x.astype(dtype, copy=False)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"input {name!r} has dtype {x.dtype} that cannot be cast to {dtype} ({exc})", input=name
        ) from None


class InputPlan:
    """The inputs a model takes, in the order its framework wants them.

    Inputs are taken by name: a request that misses one or names one the model does not know is refused,
    naming what the model takes. ``any_name`` relaxes that for a one-input model whose input name is
    prebake's own invention (``input-0`` of a scikit-learn, XGBoost or LightGBM model, which have none):
    there the request's single input is taken whatever its name, as MLServer does.
    """

    __slots__ = ("checks", "names", "_single", "_any_name")

    def __init__(self, checks: Sequence[TensorCheck], *, any_name: bool = False) -> None:
        if not checks:
            raise ValueError("a model takes at least one input")
        self.checks = list(checks)
        self.names = [c.name for c in self.checks]
        self._single = self.checks[0] if len(self.checks) == 1 else None
        self._any_name = any_name

    def specs(self) -> list[TensorSpec]:
        return [c.spec() for c in self.checks]

    def arrays(self, request: InferenceRequest) -> list[np.ndarray]:
        inputs = request.inputs
        single = self._single
        if single is not None:
            if not inputs:
                raise InvalidInput(f"the request has no inputs; the model takes one, {single.name!r}")
            name, x = next(iter(inputs.items()))
            if name != single.name and not self._any_name:
                raise InvalidInput(
                    f"unknown input {name!r}; the model takes one input, {single.name!r}", input=name
                )
            if len(inputs) > 1:
                extra = next(n for n in inputs if n != single.name)
                raise InvalidInput(
                    f"unknown input {extra!r}; the model takes one input, {single.name!r}", input=extra
                )
            return [single.coerce(x, name)]
        missing = [n for n in self.names if n not in inputs]
        if missing:
            raise InvalidInput(
                f"missing input {missing[0]!r}; the model takes inputs {', '.join(map(repr, self.names))}",
                input=missing[0],
            )
        if len(inputs) != len(self.names):
            unknown = [n for n in inputs if n not in self.names]
            raise InvalidInput(
                f"unknown input {unknown[0]!r}; the model takes inputs {', '.join(map(repr, self.names))}",
                input=unknown[0],
            )
        return [c.coerce(inputs[c.name]) for c in self.checks]


def plan_from_settings(specs: Sequence[TensorSpec]) -> InputPlan | None:
    """An InputPlan from the inputs a settings file declares, or None where it declares none."""
    if not specs:
        return None
    return InputPlan(
        [TensorCheck(s.name, numpy_dtype(s.datatype), s.shape, s.datatype.upper()) for s in specs]
    )


def tabular_plan(
    settings_inputs: Sequence[TensorSpec], n_features: int | None, dtype: np.dtype[Any] | None
) -> InputPlan:
    """The plan of a model that takes one 2-D feature matrix (sklearn, XGBoost, LightGBM).

    The settings file wins; otherwise the matrix is ``[-1, n_features]`` as learnt by the model.
    """
    plan = plan_from_settings(settings_inputs)
    if plan is not None:
        return plan
    check = TensorCheck("input-0", dtype, (-1, n_features if n_features is not None else -1))
    return InputPlan([check], any_name=True)


def name_outputs(result: Any, names: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Name what a framework returned: a mapping keeps its keys, a sequence takes ``names`` or
    ``output-0``, ``output-1``..., a single array is ``names[0]`` or ``output-0``."""
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return {_output_name(names, i): np.asarray(v) for i, v in enumerate(result)}
    return {_output_name(names, 0): np.asarray(result)}


def _output_name(names: Sequence[str], i: int) -> str:
    return names[i] if i < len(names) else f"output-{i}"


def rejected(plan: InputPlan, arrays: Sequence[np.ndarray], exc: BaseException) -> InvalidInput:
    """InvalidInput for a framework that refused the inputs after our checks passed (e.g. strings sent
    to a numeric pipeline), naming the inputs, their shapes and the framework's first line."""
    sent = ", ".join(
        f"{n!r} {shape_text(a.shape)} {a.dtype}" for n, a in zip(plan.names, arrays, strict=False)
    )
    expected = ", ".join(f"{shape_text(c.shape or (-1,))}" for c in plan.checks)
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InvalidInput(f"the model rejected input {sent} (expected {expected}): {first_line}")
