"""Input checks, casts and output naming shared by the array runtimes."""

from __future__ import annotations

import numpy as np
import pytest

from prebake.errors import InvalidInput
from prebake.runtimes.arrays import (
    InputPlan,
    TensorCheck,
    name_outputs,
    numpy_dtype,
    v2_datatype,
)
from prebake.types import InferenceRequest


def test_single_input_takes_any_name_only_where_the_name_is_ours() -> None:
    """A one-input model whose input name prebake made up takes the request's input whatever it is
    called, cast to its dtype; a model that names its input refuses another name with a 400 naming both."""
    loose = InputPlan([TensorCheck("input-0", np.dtype("float32"), (-1, 2))], any_name=True)
    (x,) = loose.arrays(InferenceRequest(inputs={"whatever": np.array([[1.0, 2.0]])}))
    assert x.dtype == np.float32 and x.shape == (1, 2)
    strict = InputPlan([TensorCheck("x", np.dtype("float32"), (-1, 2))])
    with pytest.raises(
        InvalidInput, match="unknown input 'whatever'; the model takes one input, 'x'"
    ) as info:
        strict.arrays(InferenceRequest(inputs={"whatever": np.array([[1.0, 2.0]])}))
    assert info.value.status == 400
    with pytest.raises(InvalidInput, match="unknown input 'y'"):
        strict.arrays(InferenceRequest(inputs={"x": np.ones((1, 2)), "y": np.ones((1, 2))}))


def test_fixed_dimension_checked() -> None:
    """A fixed dimension of the wrong size is InvalidInput naming the input and both shapes."""
    check = TensorCheck("img", None, (-1, 3, 2))
    with pytest.raises(InvalidInput, match=r"'img' has shape \[1, 3, 3\]; the model expects \[-1, 3, 2\]"):
        check.coerce(np.zeros((1, 3, 3)))


def test_rank_checked() -> None:
    """An array of the wrong rank (beyond a missing batch axis) is InvalidInput."""
    with pytest.raises(InvalidInput, match="has shape"):
        TensorCheck("x", None, (-1, 2)).coerce(np.zeros((1, 1, 2)))


def test_uncastable_dtype() -> None:
    """Strings that are not numbers are InvalidInput naming the input and the dtype."""
    with pytest.raises(InvalidInput, match="'x' has dtype <U3 that cannot be cast to float32"):
        TensorCheck("x", np.dtype("float32"), None).coerce(np.array(["abc"]))


def test_several_inputs_by_name() -> None:
    """A several-input model takes inputs by name, in its own order; missing and unknown names are refused."""
    plan = InputPlan([TensorCheck("a", None, None), TensorCheck("b", None, None)])
    a, b = plan.arrays(InferenceRequest(inputs={"b": np.array([2]), "a": np.array([1])}))
    assert (a[0], b[0]) == (1, 2)
    with pytest.raises(InvalidInput, match="missing input 'b'"):
        plan.arrays(InferenceRequest(inputs={"a": np.array([1])}))
    with pytest.raises(InvalidInput, match="unknown input 'c'"):
        plan.arrays(InferenceRequest(inputs={"a": np.array([1]), "b": np.array([1]), "c": np.array([1])}))


def test_output_naming_and_selection() -> None:
    """Sequences are named output-0..., mappings keep keys, and selection refuses unknown names."""
    assert list(name_outputs((np.zeros(1), np.ones(1)))) == ["output-0", "output-1"]
    assert list(name_outputs({"p": [1]})) == ["p"]
    assert list(name_outputs(np.zeros(1), ["y"])) == ["y"]


def test_datatypes_round_trip() -> None:
    """V2 datatype names map to numpy dtypes and back; strings are BYTES; unknown names are refused."""
    for name in ("BOOL", "INT8", "INT64", "UINT16", "FP16", "FP32", "FP64"):
        assert v2_datatype(numpy_dtype(name)) == name
    assert v2_datatype(np.array(["a"]).dtype) == "BYTES"
    with pytest.raises(ValueError, match="unknown datatype"):
        numpy_dtype("FP8")


def test_bytes_become_text() -> None:
    """BYTES inputs (bytes objects or fixed-width bytes) reach the model as str; numbers pass untouched."""
    check = TensorCheck("s", None, None)
    assert check.coerce(np.array([b"big", b"small"], dtype=object)).tolist() == ["big", "small"]
    assert check.coerce(np.array([b"a"])).tolist() == ["a"]
    numbers = np.ones(3)
    assert check.coerce(numbers) is numbers
