"""prebake.jsonout: run() outputs of every common kind become JSON, quickly and predictably."""

from __future__ import annotations

import datetime
import decimal
import json
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest

from prebake.jsonout import dumps


def loads(data: bytes) -> object:
    return json.loads(data)


def test_plain_values_match_json_dumps() -> None:
    """Values json.dumps handles give the same parsed result, so plain scripts see no change."""
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "é"}, "t": (1, 2)}
    assert loads(dumps(value)) == json.loads(json.dumps(value))


def test_numpy_arrays_and_scalars() -> None:
    """numpy arrays of any layout and dtype, and numpy scalars, serialize as lists and numbers."""
    value = {
        "f32": np.array([1.5, 2.5], dtype=np.float32),
        "i64": np.arange(6).reshape(2, 3)[:, ::2],  # not contiguous
        "f16": np.array([0.5], dtype=np.float16),
        "str": np.array(["a", "b"]),
        "obj": np.array([{"k": 1}, None], dtype=object),
        "scalar": np.float64(0.25),
        "int": np.int32(7),
        "bool": np.bool_(True),
        "zero_d": np.array(3.0),
    }
    assert loads(dumps(value)) == {
        "f32": [1.5, 2.5],
        "i64": [[0, 2], [3, 5]],
        "f16": [0.5],
        "str": ["a", "b"],
        "obj": [{"k": 1}, None],
        "scalar": 0.25,
        "int": 7,
        "bool": True,
        "zero_d": 3.0,
    }


def test_dataframe_is_a_list_of_records() -> None:
    """A DataFrame becomes a list of row objects, NaN and NaT as null, timestamps as ISO 8601."""
    frame = pd.DataFrame(
        {"label": ["a", "b"], "score": [0.5, np.nan], "when": pd.to_datetime(["2024-01-02", None])}
    )
    assert loads(dumps(frame)) == [
        {"label": "a", "score": 0.5, "when": "2024-01-02T00:00:00"},
        {"label": "b", "score": None, "when": None},
    ]


def test_series_and_index_are_lists() -> None:
    """A Series or Index becomes the list of its values (the index dropped), like a 1-d array."""
    assert loads(dumps(pd.Series([1.5, 2.5], index=["x", "y"]))) == [1.5, 2.5]
    assert loads(dumps(pd.Index(["p", "q"]))) == ["p", "q"]


def test_standard_library_types() -> None:
    """datetime, date, Decimal, UUID, set and bytes get the documented forms."""
    ident = uuid.UUID(int=1)
    value = {
        "dt": datetime.datetime(2024, 5, 1, 12, 30),
        "d": datetime.date(2024, 5, 1),
        "dec": decimal.Decimal("9.5"),
        "u": ident,
        "s": {3, 1, 2},
        "b": b"hi",
    }
    assert loads(dumps(value)) == {
        "dt": "2024-05-01T12:30:00",
        "d": "2024-05-01",
        "dec": 9.5,
        "u": str(ident),
        "s": [1, 2, 3],
        "b": "aGk=",
    }


def test_nan_and_infinity_become_null() -> None:
    """NaN and infinities give valid JSON (null), where json.dumps writes the invalid token NaN."""
    assert dumps([float("nan"), float("inf"), np.float64("-inf")]) == b"[null,null,null]"


def test_non_string_keys_become_strings() -> None:
    """int, numpy and tuple dict keys become strings instead of failing."""
    assert loads(dumps({1: "a", np.int64(2): "b", (3, 4): "c"})) == {"1": "a", "2": "b", "(3, 4)": "c"}


def test_objects_with_tolist() -> None:
    """Array-likes from other libraries (anything with tolist()) serialize through tolist()."""

    class Tensor:
        def tolist(self) -> list[int]:
            return [1, 2]

    assert loads(dumps({"t": Tensor()})) == {"t": [1, 2]}


def test_unknown_types_raise_type_error() -> None:
    """A value with no JSON form raises TypeError rather than producing something wrong."""
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(TypeError):
        dumps(1 + 2j)


def test_import_loads_neither_numpy_nor_pandas() -> None:
    """Importing prebake.jsonout imports neither numpy nor pandas (nothing heavy at import)."""
    code = "import sys, prebake.jsonout; print('numpy' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_integers_past_64_bits() -> None:
    """Integers orjson cannot hold are still written exactly, as json.dumps writes them."""
    value = {"big": 2**70, "nested": [{"k": -(2**65)}, float("nan")], np.int64(1): "numpy key"}
    assert loads(dumps(value)) == {"big": 2**70, "nested": [{"k": -(2**65)}, None], "1": "numpy key"}
