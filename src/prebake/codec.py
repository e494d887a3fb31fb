"""Tensors on the wire: Open Inference Protocol V2 JSON and binary tensors <-> numpy, and fast JSON.

One leaf every protocol shares (V2 REST and gRPC, KServe V1, SageMaker, Vertex), so none imports another.

- V2 datatypes map one-to-one onto numpy dtypes; BYTES is an object array (``str`` from JSON, ``bytes``
  from binary data) and, on the way out, any object, ``str`` or ``bytes`` array.
- Numeric JSON data goes through one ``np.asarray(data)`` call (numpy infers what the JSON holds, in C)
  and one cast, binary data through ``np.frombuffer`` (zero copy: those arrays are read-only), and
  outputs through orjson's numpy serializer, so no numeric tensor is walked element by element in
  Python. The inferred kind is checked against the datatype, as Triton checks each JSON value: integer
  datatypes take JSON integers only (``1.7`` is refused, not truncated), float datatypes take numbers
  (not ``null``, not ``"1"``), and a value the datatype cannot hold (``70000`` as FP16, ``300`` as
  INT8) is refused instead of becoming ``inf`` or wrapping around. Booleans mixed into numbers are the
  one leniency: numpy promotes them to 0/1 and telling them apart would cost a Python pass.
- Shapes are checked before anything is sized by them: at most 64 dimensions (numpy's limit), and an
  element count that fits int64 (Triton's rule), so a claimed shape never allocates on its own word.
- Bad tensors raise ``InvalidInput`` with status 400, naming the tensor: 400 is what the V2 spec,
  Triton's clients and KServe expect for a malformed request. Client-given names are cut to
  ``errors.ECHO_LIMIT`` characters in messages (gRPC refuses error metadata over 8 KB).
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from tokenize import TokenError
from typing import Any, TypeVar

import numpy as np
import orjson

from prebake import datatypes, v2ext
from prebake.errors import BadJSON, InvalidInput, ScoringError, echo
from prebake.types import InferenceRequest, InferenceResponse, SharedMemory

_DTYPES: dict[str, np.dtype[Any]] = {name: row.wire for name, row in datatypes.DATATYPES.items()}
DATATYPES: tuple[str, ...] = datatypes.NAMES
# JSON numbers parse into the decoded dtype; built once, as dtype lookups cost on the hot path.
_NATIVE: dict[str, np.dtype[Any]] = {name: row.decoded for name, row in datatypes.DATATYPES.items()}
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY
_LEN = struct.Struct("<I")
#: The most dimensions a tensor may have: numpy's limit (NPY_MAXDIMS), so reshape never fails on it.
MAX_DIMS = 64
INT64_MAX = 2**63 - 1
_MAX_ELEMENTS = INT64_MAX // 8  # elements of the widest V2 datatype (8 bytes) that numpy can shape
# What a JSON value of each numeric kind is called in messages (Triton's wording: JSON integers, numbers).
_TAKES = {"i": "JSON integers", "u": "JSON integers >= 0", "f": "JSON numbers"}
#: Longest error message sent back: a backstop under the names cut by ``errors.echo``.
_MESSAGE_LIMIT = 2000
# The range each narrow datatype holds, looked up once (np.finfo/np.iinfo cost on the hot path).
_LIMITS: dict[str, tuple[float, float]] = {
    name: (float(np.finfo(dt).min), float(np.finfo(dt).max))
    if dt.kind == "f"
    else (np.iinfo(dt).min, np.iinfo(dt).max)
    for name, dt in _NATIVE.items()
    if dt.kind in "iuf"
}
# Up to this many values, Python's min()/max() over a flat list beat numpy's reductions (about 1.3 us each).
_SMALL = 32
_EMPTY = memoryview(b"")

#: Bodies at least this big are decoded and encoded on a thread, so the event loop (health, other
#: requests) goes on meanwhile: a 30 MiB body of small BYTES elements takes seconds in Python.
OFF_LOOP_BYTES = 1024 * 1024
T = TypeVar("T")

# Parameters of the binary tensor data extension: wire bookkeeping, never passed to a model.
BINARY_SIZE = "binary_data_size"
BINARY_OUT = "binary_data"
BINARY_ALL_OUT = "binary_data_output"


async def off_loop(size: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, on a thread where ``size`` (the bytes it works through) is OFF_LOOP_BYTES or more."""
    if size < OFF_LOOP_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def bad(message: str) -> InvalidInput:
    """An InvalidInput (400, what V2, Triton and KServe clients expect for a malformed request).

    Messages past ``_MESSAGE_LIMIT`` characters are cut: whatever a client sent, its error fits in gRPC's
    metadata and in a log line."""
    if len(message) > _MESSAGE_LIMIT:
        message = f"{message[:_MESSAGE_LIMIT]}... ({len(message)} chars)"
    return InvalidInput(message)


def dumps(obj: Any) -> bytes:
    """JSON bytes, numpy arrays and scalars included (NaN and infinity become null, as JSON has neither)."""
    return orjson.dumps(obj, option=_JSON_OPTS, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return _text(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def loads(body: bytes | memoryview | str) -> Any:
    """Parse JSON or raise BadJSON (400) saying where it broke."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadJSON(f"request body is not valid JSON: {exc}") from None


def numpy_dtype(datatype: Any, tensor: str = "") -> np.dtype[Any]:
    """The numpy dtype of a V2 datatype name, e.g. ``numpy_dtype("FP32") == np.dtype("<f4")``."""
    try:
        return _DTYPES[datatype]
    except (KeyError, TypeError):
        where = f" of tensor '{echo(tensor)}'" if tensor else ""
        raise bad(f"unknown datatype {datatype!r}{where}; expected one of {', '.join(DATATYPES)}") from None


def native_dtype(datatype: Any) -> np.dtype[Any] | None:
    """The native-order numpy dtype that JSON numbers of a numeric V2 datatype parse into (BF16: float32);
    None for BYTES and unknown names."""
    if datatype == "BYTES":
        return None
    return _NATIVE.get(datatype)


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype name of an array: object, str and bytes arrays are BYTES."""
    name = datatypes.of_dtype(array.dtype)
    if name is None:
        raise ScoringError(f"the model returned a {array.dtype} array, which no V2 datatype holds")
    return name


def check_shape(tensor: str, shape: Any) -> list[int]:
    """``shape`` as a list of non-negative ints, or InvalidInput (400) naming the tensor.

    At most ``MAX_DIMS`` dimensions, and a total element count within int64, as Triton requires, with
    its byte size (at the widest element, 8 bytes) within int64 too, as numpy needs to shape any array
    by it: zero dimensions aside, as ``[2**40, 2**40, 0]`` holds no element but shapes no array either.
    """
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad(
            f"tensor '{echo(tensor)}': shape must be a list of non-negative integers, got {echo(repr(shape))}"
        )
    if len(shape) > MAX_DIMS:
        raise bad(
            f"invalid shape for input '{echo(tensor)}': {len(shape)} dimensions, "
            f"the most a tensor may have is {MAX_DIMS}"
        )
    count = math.prod(shape)
    if count == 0:
        count = math.prod(d for d in shape if d)
    if count > INT64_MAX:
        raise bad(
            f"invalid shape for input '{echo(tensor)}': shape {echo(str(shape))} causes total element count "
            f"to exceed maximum size of {INT64_MAX}"
        )
    if count > _MAX_ELEMENTS:
        raise bad(
            f"invalid shape for input '{echo(tensor)}': shape {echo(str(shape))} needs {count} elements, whose "
            f"byte size would exceed maximum size of {INT64_MAX}"
        )
    return shape


def _reshape(tensor: str, array: np.ndarray, shape: list[int]) -> np.ndarray:
    if array.size != math.prod(shape):
        raise bad(
            f"tensor '{echo(tensor)}': shape {shape} needs {math.prod(shape)} elements, the data has {array.size}"
        )
    return array.reshape(shape)


# ---- JSON tensors -----------------------------------------------------------------------------------


def decode_json_tensor(tensor: str, datatype: Any, shape: Any, data: Any) -> np.ndarray:
    """A V2 JSON tensor's ``data`` (flat or nested, row-major) as an array of ``shape``.

    >>> decode_json_tensor("x", "INT32", [2, 2], [1, 2, 3, 4]).tolist()
    [[1, 2], [3, 4]]
    """
    numpy_dtype(datatype, tensor)  # raises, naming the tensor, for an unknown datatype
    shape = check_shape(tensor, shape)
    if not isinstance(data, list):
        # A lone scalar is a common shorthand for shape [1] or [].
        data = [data]
    if datatype == "BYTES":
        array = _bytes_array(tensor, data)
    elif datatype == "BOOL":
        array = _bool_array(tensor, data)
    else:
        array = _numeric_array(tensor, datatype, data)
    return _reshape(tensor, array, shape)


def _numeric_array(tensor: str, datatype: str, data: list[Any]) -> np.ndarray:
    """JSON numbers as an array of ``datatype``: numpy infers the kind the JSON holds (one pass, in C),
    which must be one the datatype takes, and the values must fit it, checked before the cast."""
    target = _NATIVE[datatype]
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise bad(f"tensor '{echo(tensor)}': data does not fit datatype {datatype}: {exc}") from None
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(target)
    if target.kind == "f":
        if kind not in "iuf":
            raise _mismatch(tensor, datatype, data, "f")
        # JSON has no inf or NaN: a value past the datatype's largest would become inf in the cast.
        if target.itemsize < 8 and not _within(array, data, datatype):
            low, high = _LIMITS[datatype]
            raise _out_of_range(tensor, datatype, data, (array < low) | (array > high))
        return array.astype(target, copy=False)
    if kind not in "iu":
        return _exact_integers(tensor, datatype, data, target)
    if array.dtype != target and not _within(array, data, datatype):
        low, high = _LIMITS[datatype]
        raise _out_of_range(tensor, datatype, data, (array < low) | (array > high))
    return array.astype(target, copy=False)


def _within(array: np.ndarray, data: list[Any], datatype: str) -> bool:
    """Whether every value fits ``datatype``'s range."""
    low, high = _LIMITS[datatype]
    if array.ndim == 1 and len(data) <= _SMALL:
        return bool(low <= min(data) and max(data) <= high)
    return bool(low <= array.min() and array.max() <= high)


def _takes(value: Any, kind: str) -> bool:
    if type(value) is int:  # not bool: JSON true is no number
        return kind != "u" or value >= 0
    return kind == "f" and type(value) is float


def _mismatch(tensor: str, datatype: str, data: list[Any], kind: str) -> InvalidInput:
    """The error for JSON values the datatype does not take, naming the first one (found only now, on
    the error path)."""
    for index, value in enumerate(_flatten(data)):
        if not _takes(value, kind):
            shown = echo(orjson.dumps(value, default=repr).decode())
            return bad(
                f"Unable to parse 'data' of input '{echo(tensor)}': {datatype} takes {_TAKES[kind]}, "
                f"got {shown} (element {index})"
            )
    return bad(f"Unable to parse 'data' of input '{echo(tensor)}': values out of range for {datatype}")


def _exact_integers(tensor: str, datatype: str, data: list[Any], target: np.dtype[Any]) -> np.ndarray:
    """Integer data numpy could not infer as one integer dtype: a non-integer among it (refused), or
    integers spanning int64 and uint64 together (numpy makes floats of those), converted exactly here."""
    if not all(_takes(value, target.kind) for value in _flatten(data)):
        raise _mismatch(tensor, datatype, data, target.kind)
    try:
        return np.asarray(data, dtype=target)
    except (OverflowError, ValueError):
        raise bad(
            f"Unable to parse 'data' of input '{echo(tensor)}': values out of range for {datatype}"
        ) from None


def _out_of_range(tensor: str, datatype: str, data: list[Any], outside: np.ndarray) -> InvalidInput:
    index = int(np.flatnonzero(outside)[0])
    value = _flatten(data)[index]  # as the client wrote it (the inferred array may have made it a float)
    return bad(
        f"Unable to parse 'data' of input '{echo(tensor)}': {echo(repr(value))} is out of range for "
        f"{datatype} (element {index})"
    )


def _bool_array(tensor: str, data: list[Any]) -> np.ndarray:
    # np.asarray(["false"], dtype=bool) is True: accept only JSON booleans and 0/1.
    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise bad(f"tensor '{echo(tensor)}': data does not fit datatype BOOL: {exc}") from None
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind in "iu" and bool(np.isin(array, (0, 1)).all()):
        return array.astype(np.bool_)
    raise bad(f"tensor '{echo(tensor)}': BOOL data must be true/false (or 0/1)")


def _bytes_array(tensor: str, data: list[Any]) -> np.ndarray:
    flat = _flatten(data)
    if not all(isinstance(x, str | bytes) for x in flat):
        raise bad(f"tensor '{echo(tensor)}': BYTES data must be strings")
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(x, list) for x in data):
        return data
    out: list[Any] = []
    stack: list[Iterable[Any]] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def to_jsonable(array: np.ndarray) -> Any:
    """An array as something ``dumps`` writes: numeric arrays stay arrays (orjson writes them in C),
    text and bytes become lists of str (bytes decoded as UTF-8)."""
    if array.dtype.kind in "biuf":
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        return np.ascontiguousarray(array)
    if array.dtype.kind in "OS":
        return _texts(array.tolist())
    if array.dtype.kind == "U":
        return array.tolist()
    raise ScoringError(f"the model returned a {array.dtype} array, which cannot be written as JSON")


def _texts(value: Any) -> Any:
    if isinstance(value, list):
        return [_texts(v) for v in value]
    return _text(value) if isinstance(value, bytes) else value


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ScoringError(
            "an output holds bytes that are not UTF-8; ask for it as binary data instead of JSON"
        ) from None


def encode_json_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """A V2 output tensor with its data flattened row-major, ready for ``dumps``."""
    datatype = datatype_of(array)
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": to_jsonable(array.reshape(-1)),
    }


# ---- binary tensors (the binary tensor data extension and gRPC raw contents) ---------------------


def decode_binary_tensor(tensor: str, datatype: Any, shape: Any, buffer: bytes | memoryview) -> np.ndarray:
    """A tensor from its raw little-endian, row-major bytes; BYTES elements are length-prefixed."""
    dtype = numpy_dtype(datatype, tensor)
    shape = check_shape(tensor, shape)
    count = math.prod(shape)
    if datatype == "BYTES":
        return deserialize_bytes(tensor, buffer, count).reshape(shape)
    if len(buffer) != count * dtype.itemsize:
        raise bad(
            f"tensor '{echo(tensor)}': shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"got {len(buffer)}"
        )
    array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    return bf16_to_float32(array) if datatype == "BF16" else array


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values, given as their 16 bits, as float32 (the same number).

    >>> bf16_to_float32(np.array([0x3F80, 0xC000], dtype="<u2")).tolist()
    [1.0, -2.0]
    """
    return (bits.astype("<u4") << 16).view("<f4")


def deserialize_bytes(tensor: str, buffer: bytes | memoryview, count: int) -> np.ndarray:
    """``count`` BYTES elements, each a 4-byte little-endian length followed by that many bytes."""
    view = memoryview(buffer)
    if count * 4 > len(view):
        # Checked before allocating: a huge claimed shape must not size an array on its own word.
        raise bad(
            f"tensor '{echo(tensor)}': {count} BYTES elements need at least {count * 4} bytes, got {len(view)}"
        )
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(view):
            raise bad(f"tensor '{echo(tensor)}': BYTES data ends after {i} of {count} elements")
        (size,) = _LEN.unpack_from(view, offset)
        offset += 4
        if offset + size > len(view):
            raise bad(
                f"tensor '{echo(tensor)}': BYTES element {i} claims {size} bytes past the end of the data"
            )
        out[i] = bytes(view[offset : offset + size])
        offset += size
    if offset != len(view):
        raise bad(f"tensor '{echo(tensor)}': {len(view) - offset} bytes left after {count} BYTES elements")
    return out


def encode_binary_tensor(array: np.ndarray) -> bytes:
    """An array's raw little-endian, row-major bytes (BYTES: each element length-prefixed)."""
    datatype = datatype_of(array)
    if datatype == "BYTES":
        return serialize_bytes(array)
    return np.ascontiguousarray(array, dtype=_DTYPES[datatype]).tobytes()


def serialize_bytes(array: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for item in array.reshape(-1).tolist():
        data = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(_LEN.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


# ---- .npy bodies (SageMaker's application/x-npy) -----------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def decode_npy(body: bytes) -> np.ndarray:
    """One array from an ``np.save`` body, read without ``np.load``: its header is checked against the
    body first, so a header claiming 10**12 elements in a 128-byte body is a 400, not an allocation
    sized by the client. Object arrays (pickles) and .npz archives are refused. The array is a
    read-only view of the body, as binary V2 tensors are.

    >>> buffer = io.BytesIO(); np.save(buffer, np.arange(3)); decode_npy(buffer.getvalue()).tolist()
    [0, 1, 2]
    """
    if not body:
        raise bad("the .npy body is empty; send an array saved with numpy.save")
    if body.startswith(_ZIP_MAGIC):
        raise bad("the body is an .npz archive; send one array in .npy format")
    if not body.startswith(_NPY_MAGIC):
        raise bad("the body is not an .npy array (it does not start with numpy's magic string)")
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise bad(f"the .npy format version {version[0]}.{version[1]} is not supported; use 1.0 or 2.0")
    except (ValueError, SyntaxError, TypeError, TokenError, RecursionError, MemoryError) as exc:
        # What numpy's header reader raises for a header it cannot read (its own text, tokenized).
        raise bad(f"the .npy header cannot be read: {exc}") from None
    if dtype.hasobject:
        raise bad("the .npy array holds Python objects, which only a pickle can carry; pickles are refused")
    dims = check_shape(".npy", list(shape))
    count = math.prod(dims)
    offset = stream.tell()
    if count * dtype.itemsize != len(body) - offset:
        raise bad(
            f"the .npy header says {dims} of {dtype}, {count * dtype.itemsize} bytes, "
            f"but {len(body) - offset} bytes follow it"
        )
    array = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return array.reshape(dims[::-1]).transpose() if fortran else array.reshape(dims)


# ---- V2 inference request and response bodies ------------------------------------------------------


def write_shm_output(
    name: str, array: np.ndarray, where: v2ext.ShmReference, shared_memory: SharedMemory | None
) -> dict[str, Any]:
    """Write an output's bytes to its shared memory region; its response entry, without data (REST and
    gRPC describe it the same way)."""
    if shared_memory is None:
        raise bad(
            f"output '{echo(name)}' names shared memory region '{where.region}', but this server has none"
        )
    raw = encode_binary_tensor(array)
    shared_memory.write(where.region, where.offset, where.byte_size, raw, name)
    return {
        "name": name,
        "datatype": datatype_of(array),
        "shape": list(array.shape),
        "parameters": {v2ext.SHM_REGION: where.region, v2ext.SHM_SIZE: len(raw)},
    }


@dataclass(slots=True)
class V2Request:
    """A decoded V2 infer body: the internal request, plus which outputs go back as binary data."""

    request: InferenceRequest
    binary_outputs: dict[str, bool]
    binary_default: bool
    shm_outputs: dict[str, v2ext.ShmReference] = field(default_factory=dict)


def decode_v2_request(
    body: bytes, header_length: int | None = None, shared_memory: SharedMemory | None = None
) -> V2Request:
    """A V2 REST infer body (JSON, then any binary tensors when ``header_length`` is given); inputs in
    ``shared_memory`` regions are read from there (Triton's shared memory extension)."""
    header: bytes | memoryview
    if header_length is None:
        header, tail = body, _EMPTY
    else:
        if not 0 < header_length <= len(body):
            raise bad(
                f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
            )
        view = memoryview(body)
        header, tail = view[:header_length], view[header_length:]
    doc = loads(header)
    if not isinstance(doc, dict):
        raise bad("the inference request must be a JSON object")
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise bad("the inference request needs a non-empty 'inputs' list")
    parameters = _parameters(doc.get("parameters"), "request")
    binary_default = bool(parameters.pop(BINARY_ALL_OUT, False))

    inputs: dict[str, np.ndarray] = {}
    input_parameters: dict[str, dict[str, Any]] = {}
    offset = 0
    for index, item in enumerate(inputs_doc):
        if not isinstance(item, dict):
            raise bad(f"input {index} must be a JSON object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise bad(f"input {index} needs a 'name' string")
        if name in inputs:
            raise bad(f"input '{echo(name)}' is given twice")
        params = _parameters(item.get("parameters"), "input", name)
        size = params.pop(BINARY_SIZE, None)
        shm = v2ext.shm_reference(name, params)
        if shm is not None or ("data" in item) + (size is not None) != 1:
            array = _shm_input(name, item, shm, size, shared_memory)
        elif size is not None:
            if type(size) is not int or size < 0 or offset + size > len(tail):
                raise bad(
                    f"input '{echo(name)}': binary_data_size {size!r} does not fit the binary data sent"
                )
            chunk = tail[offset : offset + size]
            offset += size
            array = decode_binary_tensor(name, item.get("datatype"), item.get("shape"), chunk)
        else:
            array = decode_json_tensor(name, item.get("datatype"), item.get("shape"), item["data"])
        if array.dtype == object and params.get("content_type") == "str":
            array = _as_str(name, array)
        inputs[name] = array
        if params:
            input_parameters[name] = params
    if offset != len(tail):
        raise bad(f"{len(tail) - offset} bytes of binary data follow the inputs that no input claims")

    outputs, binary_outputs, extensions = _requested_outputs(doc.get("outputs"))
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad("'id' must be a string")
    for name, where in extensions.shm.items():
        _shm_check(name, where, shared_memory)
    return V2Request(
        request=InferenceRequest(
            inputs=inputs,
            parameters=parameters,
            outputs=outputs,
            id=request_id,
            input_parameters=input_parameters,
            classification=extensions.classes,
        ),
        binary_outputs=binary_outputs,
        binary_default=binary_default,
        shm_outputs=extensions.shm,
    )


def _shm_input(
    name: str,
    item: dict[str, Any],
    shm: v2ext.ShmReference | None,
    size: Any,
    shared_memory: SharedMemory | None,
) -> np.ndarray:
    """An input read from a shared memory region, or Triton's error for an input that names not exactly
    one of data, binary data and a region."""
    given = [
        label
        for label, present in (
            ("data", "data" in item),
            ("binary_data_size", size is not None),
            ("shared_memory_region", shm is not None),
        )
        if present
    ]
    if shm is None or len(given) != 1:
        said = " set " + " ".join(f"'{g}'" for g in given) if given else " no field is set"
        raise bad(
            f"input '{echo(name)}': Input must set only one of the following fields: 'data', 'binary_data_size' "
            f"in 'parameters', 'shared_memory_region' in 'parameters'. But{said}"
        )
    if shared_memory is None:
        raise bad(f"input '{echo(name)}' names shared memory region '{shm.region}', but this server has none")
    chunk = shared_memory.read(shm.region, shm.offset, shm.byte_size)
    return decode_binary_tensor(name, item.get("datatype"), item.get("shape"), chunk)


def _shm_check(name: str, where: v2ext.ShmReference, shared_memory: SharedMemory | None) -> None:
    if shared_memory is None:
        raise bad(
            f"output '{echo(name)}' names shared memory region '{where.region}', but this server has none"
        )
    shared_memory.check(where.region, where.offset, where.byte_size)


@dataclass(slots=True)
class _OutputExtensions:
    """What requested outputs ask beyond binary data: classes (name -> k), shared memory (name -> where)."""

    classes: dict[str, int]
    shm: dict[str, v2ext.ShmReference]


def _as_str(tensor: str, array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    try:
        out.reshape(-1)[:] = [x.decode("utf-8") if isinstance(x, bytes) else x for x in array.reshape(-1)]
    except UnicodeDecodeError:
        raise bad(f"tensor '{echo(tensor)}' has content_type 'str' but is not UTF-8") from None
    return out


def _parameters(value: Any, kind: str, name: str | None = None) -> dict[str, Any]:
    """The ``parameters`` of a request or a tensor (``kind`` "input" or "output", named ``name``), copied
    so extensions can pop theirs."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        where = kind if name is None else f"{kind} '{echo(name)}'"
        raise bad(f"{where}: 'parameters' must be a JSON object")
    return dict(value)


def _requested_outputs(value: Any) -> tuple[list[str] | None, dict[str, bool], _OutputExtensions]:
    extensions = _OutputExtensions({}, {})
    if value is None:
        return None, {}, extensions
    if not isinstance(value, list):
        raise bad("'outputs' must be a list")
    names: list[str] = []
    binary: dict[str, bool] = {}
    for index, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise bad(f"requested output {index} needs a 'name' string")
        params = _parameters(item.get("parameters"), "output", name)
        classes = v2ext.classification_count(name, params)
        shm = v2ext.shm_reference(name, params)
        if shm is not None:
            # Triton's rules (src/http_server.cc ValidateOutputParameter): the classes are not written
            # to shared memory, and bytes in a region are not also sent.
            if classes:
                raise bad(
                    f"output '{echo(name)}': Output can't set both 'shared_memory_region' and 'classification'"
                )
            if params.get(BINARY_OUT):
                raise bad(
                    f"output '{echo(name)}': Output can't set both 'shared_memory_region' and 'binary_data'"
                )
            extensions.shm[name] = shm
        if classes:
            extensions.classes[name] = classes
        if BINARY_OUT in params:
            binary[name] = bool(params[BINARY_OUT])
        names.append(name)
    return names, binary, extensions


def encode_v2_response(
    response: InferenceResponse,
    *,
    binary_outputs: Mapping[str, bool] | None = None,
    binary_default: bool = False,
    shm_outputs: Mapping[str, v2ext.ShmReference] | None = None,
    shared_memory: SharedMemory | None = None,
) -> tuple[bytes, int | None]:
    """A V2 REST infer response body and, when binary tensors follow the JSON, the JSON's length
    (the value of Inference-Header-Content-Length). Outputs in ``shm_outputs`` are written to their
    shared memory regions instead, and described without data."""
    binary_outputs = binary_outputs or {}
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in response.outputs.items():
        array = np.asarray(array)
        if shm_outputs and name in shm_outputs:
            tensors.append(write_shm_output(name, array, shm_outputs[name], shared_memory))
        elif binary_outputs.get(name, binary_default):
            raw = encode_binary_tensor(array)
            tensors.append(
                {
                    "name": name,
                    "datatype": datatype_of(array),
                    "shape": list(array.shape),
                    "parameters": {BINARY_SIZE: len(raw)},
                }
            )
            chunks.append(raw)
        else:
            tensors.append(encode_json_tensor(name, array))
    doc: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = tensors
    header = dumps(doc)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
