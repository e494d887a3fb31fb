"""Hostile tensors over gRPC (issue 13, items 13 and 19), sent with tritonclient.grpc to a real server.

Each must be INVALID_ARGUMENT naming the input, as the same tensor over REST is a 400: a shape no
array can take (INTERNAL before), an input name of 20 KB echoed in the error (the client saw
RESOURCE_EXHAUSTED, gRPC's 8 KB metadata limit, instead of the error). The server serves on after each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prebake.testing import ServerProcess, free_port

from .helpers import iris_model, protocols_present, record

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is a test-only extra")
from tritonclient.utils import InferenceServerException  # noqa: E402 - after the importorskip above


@pytest.fixture(scope="module")
def grpc_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if not protocols_present():
        pytest.skip("the V2 protocol modules are not in this tree")
    path: Path = iris_model(tmp_path_factory.mktemp("grpc") / "iris.joblib")
    port = free_port()
    with ServerProcess([str(path), "--allow-pickle", "--grpc-port", str(port)]):
        yield port


def _input(name: str, datatype: str, shape: list[int]) -> object:
    """An input with valid data of one row, then the hostile shape (tritonclient checks data against
    the shape only when the data is set)."""
    tensor = grpcclient.InferInput(name, [1, 4], datatype)
    numeric = np.float64 if datatype == "FP64" else np.float32
    data = np.array([[b"a"] * 4], dtype=object) if datatype == "BYTES" else np.ones((1, 4), numeric)
    tensor.set_data_from_numpy(data)
    tensor.set_shape(shape)
    return tensor


CASES = [
    ("FP32 shape [2^40, 2^40, 0] (overflows int64)", "input-0", "FP32", [2**40, 2**40, 0], "exceed maximum size"),
    ("BYTES shape [2^40, 2^40, 0]", "input-0", "BYTES", [2**40, 2**40, 0], "exceed maximum size"),
    ("65 dimensions", "input-0", "FP32", [1] * 65, "the most a tensor may have is 64"),
    ("shape [2^62, 4]", "input-0", "FP32", [2**62, 4], "exceed maximum size"),
    # Found by test_fuzz_grpc_tensors: 2^62 elements fit int64, their bytes do not (numpy cannot shape it).
    ("FP64 shape [2^31, 2^31, 0]", "input-0", "FP64", [2**31, 2**31, 0], "byte size would exceed"),
    ("20 KB input name, wrong shape", "x" * 20_000, "FP32", [2**40, 2**40, 0], "(20000 chars)"),
]  # fmt: skip


@pytest.fixture(scope="module")
def table() -> Iterator[list[dict[str, object]]]:
    rows: list[dict[str, object]] = []
    yield rows
    record("hostile-grpc", rows)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_tensor_over_grpc_is_invalid_argument(
    case: tuple[str, str, str, list[int], str], grpc_port: int, table: list[dict[str, object]]
) -> None:
    """The tensor is refused with INVALID_ARGUMENT and a message saying why (cut where it echoes a long name), and the server then predicts."""
    label, name, datatype, shape, says = case
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer("iris", [_input(name, datatype, shape)])
        status, message = info.value.status(), info.value.message()
        table.append({"input": label, "route": "gRPC ModelInfer", "status": status, "body": message[:90]})
        assert status == "StatusCode.INVALID_ARGUMENT", (status, message[:300])
        assert says in message and len(message) < 4000, message[:300]
        good = grpcclient.InferInput("input-0", [1, 4], "FP64")
        good.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]]))
        assert client.infer("iris", [good]).as_numpy("predict").tolist() == [0]
    finally:
        client.close()
