"""Fast JSON for whatever a user's run() returns.

``dumps(obj) -> bytes`` serializes with orjson; a ``default`` hook, called only for types orjson does not
know, turns the rest into plain values. The choices, where the reference server's ``json.dumps`` fails (500):

======================== =====================================================================
numpy arrays, scalars    natively (``OPT_SERIALIZE_NUMPY``); other dtypes via ``.tolist()``/``.item()``
pandas DataFrame         a list of records, ``[{"col": value, ...}, ...]`` (what clients loop over)
pandas Series, Index     a list of the values (like a 1-d array; the index is dropped)
pandas Timestamp         ISO 8601 string; ``NaT`` and ``NA`` become null
datetime, date, UUID     orjson's ISO 8601 / string forms
Decimal                  a JSON number (via float)
set, frozenset           a list (sorted where the items allow, so output is stable)
bytes, bytearray         base64 text, the encoding inference-schema uses for bytes inputs
NaN, +-Infinity          null (``json.dumps`` writes ``NaN``, which is not JSON)
objects with tolist()    ``tolist()`` (torch, tensorflow and jax tensors, array-likes)
======================== =====================================================================

Dict keys that are not strings (ints, floats, numpy scalars, dates) become strings, as ``json.dumps`` does.
Anything else raises ``TypeError`` naming the type. A leaf: imports nothing from prebake; numpy and pandas
are touched only when the value is one of theirs, so importing this module imports neither.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import sys
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """Serialize ``obj`` to compact UTF-8 JSON bytes.

    >>> import numpy as np
    >>> dumps({"pred": np.array([1.5, 2.0]), "n": np.int64(2)})
    b'{"pred":[1.5,2.0],"n":2}'
    """
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        # orjson refuses a few things without asking default: dict keys it does not take (numpy scalars,
        # tuples) and integers past 64 bits. Only such values take the slow second pass.
        message = str(exc)
        if "Dict key" not in message and "Integer exceeds" not in message:
            raise TypeError(message) from exc
        return json.dumps(_plain(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _default(obj: Any) -> Any:
    """Turn one value orjson does not serialize into one it does; raise TypeError where there is none."""
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            # Non-contiguous arrays, object/str/complex dtypes: tolist() gives Python values, recursed on.
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
    pd = sys.modules.get("pandas")
    if pd is not None:
        converted = _from_pandas(pd, obj)
        if converted is not _UNHANDLED:
            return converted
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(obj).decode("ascii")
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        # Subclasses that orjson declines.
        return obj.isoformat()
    if isinstance(obj, complex):
        raise TypeError("complex numbers have no JSON form; return [real, imag] or a string")
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"Type is not JSON serializable: {type(obj).__module__}.{type(obj).__qualname__}")


_UNHANDLED = object()


def _from_pandas(pd: Any, obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return obj.to_dict(orient="records")
    if isinstance(obj, (pd.Series, pd.Index)):
        return obj.tolist()
    if obj is pd.NaT or obj is getattr(pd, "NA", None):
        return None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, pd.Timedelta):
        return obj.isoformat()
    if isinstance(obj, pd.Categorical):
        return obj.tolist()
    return _UNHANDLED


def _key(key: Any) -> Any:
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    try:
        converted = _default(key)
    except TypeError:
        return str(key)  # e.g. tuple keys: readable, where json.dumps would raise
    return converted if isinstance(converted, (str, int, float, bool)) else str(converted)


def _plain(obj: Any) -> Any:
    """``obj`` as str/int/float/bool/None/list/dict only, for the standard library's encoder."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {_key(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    try:
        # A leaf orjson knows (datetime, UUID, dataclass, numpy scalar...): its JSON, read back.
        return orjson.loads(orjson.dumps(obj, default=_default, option=_OPTIONS))
    except orjson.JSONEncodeError:
        return _plain(_default(obj))
