"""Rows (KServe V1, Vertex AI, SageMaker JSON) <-> named arrays."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from prebake import codec
from prebake.errors import InvalidInput
from prebake.rows import outputs_to_predictions, rows_to_inputs
from prebake.types import TensorSpec


def test_rows_to_inputs() -> None:
    """Rows become one array typed by metadata; object rows one array per key; mixed rows keep types."""
    x = TensorSpec("x", "FP32", [-1, 2])
    assert rows_to_inputs([[1, 2], [3, 4]], [x])["x"].tolist() == [[1, 2], [3, 4]]
    assert rows_to_inputs([[1, 2]], [x])["x"].dtype == np.float32
    assert list(rows_to_inputs([[1.5]])) == ["input-0"]
    assert rows_to_inputs([{"b64": "aGk="}])["input-0"].tolist() == [b"hi"]
    named = rows_to_inputs([{"a": 1, "b": "u"}, {"a": 2, "b": "v"}])
    assert named["a"].tolist() == [1, 2] and named["b"].tolist() == ["u", "v"]
    mixed = rows_to_inputs([[1, "a"], [2, "b"]])["input-0"]
    assert mixed.dtype == object and mixed.tolist() == [[1, "a"], [2, "b"]]
    with pytest.raises(InvalidInput, match="same shape"):
        rows_to_inputs([[1, 2], [3]], [x])
    with pytest.raises(InvalidInput, match="non-empty list"):
        rows_to_inputs({"a": 1}, [x])


def test_outputs_to_predictions() -> None:
    """One output is a list of rows; several with equal rows are one object per row."""
    one = outputs_to_predictions({"y": np.array([0, 1])})
    assert orjson.loads(codec.dumps(one)) == [0, 1]
    many = outputs_to_predictions({"label": np.array(["a", "b"]), "p": np.array([[0.1], [0.9]])})
    assert orjson.loads(codec.dumps(many)) == [{"label": "a", "p": [0.1]}, {"label": "b", "p": [0.9]}]


def test_bf16_rows_are_float32_not_truncated_integers() -> None:
    """A BF16 input fed JSON rows gets float32 values (BF16's decoded form), not 16-bit integers."""
    spec = TensorSpec("x", "BF16", [-1, 2])
    array = rows_to_inputs([[0.5, -1.25]], [spec])["x"]
    assert array.dtype == np.float32 and array.tolist() == [[0.5, -1.25]]
