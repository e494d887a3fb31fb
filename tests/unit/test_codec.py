"""V2 tensors <-> numpy, the binary tensor data extension, and rows for V1/Vertex/SageMaker."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from prebake import codec
from prebake.errors import BadJSON, InvalidInput, ScoringError
from prebake.types import InferenceResponse

NUMERIC = ["UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_json_tensor_round_trip_every_numeric_datatype(datatype: str) -> None:
    """Every numeric V2 datatype decodes from JSON to its dtype and shape and encodes back unchanged."""
    array = codec.decode_json_tensor("x", datatype, [2, 3], [0, 1, 2, 3, 4, 5])
    assert array.dtype == codec.numpy_dtype(datatype)
    assert array.shape == (2, 3)
    encoded = orjson.loads(codec.dumps(codec.encode_json_tensor("y", array)))
    assert encoded == {"name": "y", "datatype": datatype, "shape": [2, 3], "data": [0, 1, 2, 3, 4, 5]}


def test_json_tensor_accepts_nested_data() -> None:
    """Nested row-major data is accepted as well as flat data."""
    array = codec.decode_json_tensor("x", "FP32", [2, 2], [[1.5, 2], [3, 4]])
    assert array.tolist() == [[1.5, 2.0], [3.0, 4.0]]


def test_bool_and_bytes_json_tensors() -> None:
    """BOOL takes true/false and 0/1; BYTES keeps JSON strings as str in an object array."""
    assert codec.decode_json_tensor("b", "BOOL", [3], [True, False, 1]).tolist() == [True, False, True]
    text = codec.decode_json_tensor("s", "BYTES", [2, 1], [["ab"], ["cd"]])
    assert text.dtype == object and text.tolist() == [["ab"], ["cd"]]
    out = orjson.loads(codec.dumps(codec.encode_json_tensor("o", np.array([b"x", b"yz"], dtype=object))))
    assert out == {"name": "o", "datatype": "BYTES", "shape": [2], "data": ["x", "yz"]}


def test_bool_rejects_strings() -> None:
    """A string in a BOOL tensor is an error rather than silently True."""
    with pytest.raises(InvalidInput, match="'flag'.*BOOL"):
        codec.decode_json_tensor("flag", "BOOL", [1], ["false"])


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "match"),
    [
        ("FP32", [2, 2], [1, 2, 3], r"'t': shape \[2, 2\] needs 4 elements, the data has 3"),
        ("UINT8", [1], [300], "input 't': 300 is out of range for UINT8"),
        ("INT32", [1], [{"a": 1}], "input 't': INT32 takes JSON integers, got {\"a\":1}"),
        ("INT32", [1], [1.7], "Unable to parse 'data' of input 't': INT32 takes JSON integers, got 1.7"),
        ("FP32", [1], [None], "input 't': FP32 takes JSON numbers, got null"),
        ("FP32", [1], ["1"], "input 't': FP32 takes JSON numbers, got \"1\""),
        ("FP16", [1], [70000], "input 't': 70000 is out of range for FP16"),
        ("INT64", [2], [-1, 2**63], "input 't': values out of range for INT64"),
        ("FP32", [2**40, 2**40, 0], [], "input 't'.*exceed maximum size of 9223372036854775807"),
        ("FP32", [1] * 65, [1], "input 't': 65 dimensions, the most a tensor may have is 64"),
        ("FP64", [2**31, 2**31, 0], [], "input 't'.*byte size would exceed maximum size"),
        ("FP33", [1], [1], "unknown datatype 'FP33' of tensor 't'"),
        ("FP32", [-1], [1], "'t': shape must be a list of non-negative integers"),
        ("FP32", [2, 2], [[1, 2], [3]], "'t': data does not fit"),
        ("BYTES", [1], [1], "'t': BYTES data must be strings"),
    ],
)
def test_json_tensor_errors_name_the_tensor(
    datatype: str, shape: list[int], data: object, match: str
) -> None:
    """Shape and datatype mismatches raise InvalidInput with status 400 naming the tensor."""
    with pytest.raises(InvalidInput, match=match) as info:
        codec.decode_json_tensor("t", datatype, shape, data)
    assert info.value.status == 400


@pytest.mark.parametrize("datatype", [*NUMERIC, "BOOL"])
def test_binary_tensor_round_trip(datatype: str) -> None:
    """Binary little-endian row-major data decodes with frombuffer and encodes back byte for byte."""
    dtype = codec.numpy_dtype(datatype)
    raw = np.arange(6).astype(dtype).tobytes() if datatype != "BOOL" else bytes([1, 0, 1, 1, 0, 0])
    array = codec.decode_binary_tensor("x", datatype, [3, 2], raw)
    assert array.shape == (3, 2)
    assert codec.encode_binary_tensor(array) == raw


def test_bf16_arrives_as_float32_holding_the_same_numbers() -> None:
    """BF16 (no numpy dtype): two bytes an element on the wire, float32 once decoded, from binary and JSON."""
    values = np.array([1.0, -2.5, 0.15625, 2.0**100], dtype=np.float32)  # each exact in bfloat16
    wire = (values.view("<u4") >> 16).astype("<u2").tobytes()
    array = codec.decode_binary_tensor("h", "BF16", [2, 2], wire)
    assert array.dtype == np.float32 and array.reshape(-1).tolist() == values.tolist()
    assert codec.decode_json_tensor("h", "BF16", [4], values.tolist()).dtype == np.float32
    with pytest.raises(InvalidInput, match="'h'.*needs 8 bytes, got 16"):
        codec.decode_binary_tensor("h", "BF16", [4], values.tobytes())  # float32 bytes sent as BF16


def test_binary_bytes_elements_are_length_prefixed() -> None:
    """BYTES binary data is a 4-byte little-endian length before each element, both ways."""
    raw = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0) + struct.pack("<I", 3) + b"\x00\xffz"
    array = codec.decode_binary_tensor("s", "BYTES", [3], raw)
    assert array.tolist() == [b"hi", b"", b"\x00\xffz"]
    assert codec.encode_binary_tensor(array) == raw


@pytest.mark.parametrize(
    ("datatype", "raw", "match"),
    [
        ("FP32", b"\x00" * 7, "needs 8 bytes, got 7"),
        ("BYTES", struct.pack("<I", 9) + b"abcdefg", "claims 9 bytes past the end"),
        ("BYTES", struct.pack("<I", 4) + b"abcd", "ends after 1 of 2 elements"),
        ("BYTES", struct.pack("<I", 0), "2 BYTES elements need at least 8 bytes"),
    ],
)
def test_binary_tensor_size_errors(datatype: str, raw: bytes, match: str) -> None:
    """Binary data of the wrong size for its shape is rejected with a message naming the tensor."""
    with pytest.raises(InvalidInput, match=f"'b'.*{match}"):
        codec.decode_binary_tensor("b", datatype, [2], raw)


def test_decode_v2_request_with_binary_inputs_and_parameters() -> None:
    """A V2 body with JSON and binary inputs yields named arrays, parameters and binary output choices."""
    header = orjson.dumps(
        {
            "id": "42",
            "parameters": {"binary_data_output": True, "temperature": 0.5},
            "inputs": [
                {"name": "a", "datatype": "UINT32", "shape": [2, 2], "parameters": {"binary_data_size": 16}},
                {"name": "b", "datatype": "BOOL", "shape": [3], "data": [True, False, True]},
                {"name": "c", "datatype": "FP16", "shape": [1], "parameters": {"binary_data_size": 2}},
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
        }
    )
    body = header + np.arange(4, dtype="<u4").tobytes() + np.array([1.5], dtype="<f2").tobytes()
    decoded = codec.decode_v2_request(body, len(header))
    request = decoded.request
    assert request.id == "42"
    assert request.parameters == {"temperature": 0.5}
    assert request.inputs["a"].tolist() == [[0, 1], [2, 3]]
    assert request.inputs["b"].tolist() == [True, False, True]
    assert request.inputs["c"].tolist() == [1.5]
    assert request.outputs == ["y"]
    assert decoded.binary_default is True and decoded.binary_outputs == {"y": False}


@pytest.mark.parametrize(
    ("doc", "tail", "match"),
    [
        ({"inputs": []}, b"", "non-empty 'inputs'"),
        ({"inputs": [{"name": "a", "datatype": "FP32", "shape": [1]}]}, b"", "But no field is set"),
        (
            {
                "inputs": [
                    {"name": "a", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 8}}
                ]
            },
            b"\x00" * 4,
            "binary_data_size 8 does not fit",
        ),
        (
            {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}]},
            b"xx",
            "2 bytes of binary",
        ),
        (
            {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{}]},
            b"",
            "output 0 needs a 'name'",
        ),
    ],
)
def test_decode_v2_request_errors(doc: dict[str, object], tail: bytes, match: str) -> None:
    """Malformed V2 bodies are rejected with status 400 and a message saying what is wrong."""
    header = orjson.dumps(doc)
    with pytest.raises(InvalidInput, match=match) as info:
        codec.decode_v2_request(header + tail, len(header) if tail else None)
    assert info.value.status == 400


def test_bad_json_is_bad_json() -> None:
    """A body that is not JSON raises BadJSON (400)."""
    with pytest.raises(BadJSON):
        codec.decode_v2_request(b"{not json")


def test_encode_v2_response_json_and_binary() -> None:
    """Outputs go back as JSON or binary as asked, with the header length of the JSON part."""
    response = InferenceResponse(
        outputs={"y": np.array([[1.0, 2.0]], dtype=np.float32), "label": np.array(["cat"])},
        model_name="m",
        model_version="1",
        id="7",
    )
    body, header_length = codec.encode_v2_response(response, binary_outputs={"y": True})
    assert header_length is not None
    doc = orjson.loads(body[:header_length])
    assert doc["model_name"] == "m" and doc["model_version"] == "1" and doc["id"] == "7"
    y, label = doc["outputs"]
    assert y == {"name": "y", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}
    assert np.frombuffer(body[header_length:], "<f4").tolist() == [1.0, 2.0]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["cat"]}


def test_output_dtype_without_v2_datatype_is_a_server_error() -> None:
    """A complex-valued output cannot be sent and is the server's fault (500), not the client's."""
    with pytest.raises(ScoringError):
        codec.datatype_of(np.zeros(1, dtype=np.complex64))


def test_outputs_in_any_layout_are_written_row_major_little_endian() -> None:
    """Transposed, big-endian and 0-d outputs are written row-major, little-endian, with their true shape."""
    transposed = np.arange(6, dtype=np.int32).reshape(2, 3).T
    doc = orjson.loads(codec.dumps(codec.encode_json_tensor("t", transposed)))
    assert doc["shape"] == [3, 2] and doc["data"] == [0, 3, 1, 4, 2, 5]
    assert codec.encode_binary_tensor(transposed) == np.ascontiguousarray(transposed).astype("<i4").tobytes()
    big = np.array([1.5, 2.5], dtype=">f4")
    assert orjson.loads(codec.dumps(codec.encode_json_tensor("b", big)))["data"] == [1.5, 2.5]
    assert codec.encode_binary_tensor(big) == np.array([1.5, 2.5], dtype="<f4").tobytes()
    scalar = orjson.loads(codec.dumps(codec.encode_json_tensor("s", np.float64(3.0) * np.ones(()))))
    assert scalar == {"name": "s", "datatype": "FP64", "shape": [], "data": [3.0]}


def test_json_numbers_that_fit_keep_their_values() -> None:
    """Valid data of each kind decodes exactly: integers into floats, UINT64 past int64, FP16's largest."""
    assert codec.decode_json_tensor("t", "FP32", [2], [1, 2.5]).tolist() == [1.0, 2.5]
    assert codec.decode_json_tensor("t", "UINT64", [2], [2**64 - 1, 1]).tolist() == [2**64 - 1, 1]
    assert codec.decode_json_tensor("t", "FP16", [1], [65504]).tolist() == [65504.0]
    assert codec.decode_json_tensor("t", "INT8", [2, 1], [[-128], [127]]).dtype == np.int8
    assert codec.decode_json_tensor("t", "INT32", [0], []).dtype == np.int32


def test_a_long_tensor_name_is_cut_in_messages() -> None:
    """A 20 KB tensor name is echoed cut (gRPC refuses error metadata past 8 KB)."""
    with pytest.raises(InvalidInput) as info:
        codec.decode_json_tensor("x" * 20_000, "INT32", [1], [1.5])
    assert "(20000 chars)" in info.value.message and len(info.value.message) < 1000


def test_npy_bodies_are_checked_against_their_header() -> None:
    """decode_npy reads what np.save wrote, and refuses a header claiming more than the body holds before allocating."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(6).reshape(2, 3))
    assert codec.decode_npy(buffer.getvalue()).tolist() == [[0, 1, 2], [3, 4, 5]]
    claimed = buffer.getvalue().replace(b"(2, 3)", b"(1000000000000, 3)", 1)
    with pytest.raises(InvalidInput, match="bytes follow it"):
        codec.decode_npy(claimed)
    with pytest.raises(InvalidInput, match="empty"):
        codec.decode_npy(b"")
