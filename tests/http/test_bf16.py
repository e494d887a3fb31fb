"""BF16 end to end: a bfloat16 torch.export model served by `prebake serve`, fed bfloat16 tensors by
tritonclient (http binary and gRPC raw contents, ml_dtypes arrays as tritonclient sends them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.testing import ServerProcess, free_port

torch = pytest.importorskip("torch", reason="torch is needed to make a bfloat16 model")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="tritonclient sends BF16 from ml_dtypes arrays")
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient is a test-only extra")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is a test-only extra")


@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net = net.to(torch.bfloat16).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        net, (torch.randn(2, 4, dtype=torch.bfloat16),), dynamic_shapes=({0: batch},)
    )
    path = tmp_path_factory.mktemp("bf16") / "half.pt2"
    torch.export.save(program, str(path))
    return path, net


@pytest.fixture(scope="module")
def server(bf16_model: tuple[Path, Any]) -> Iterator[tuple[ServerProcess, int]]:
    grpc_port = free_port()
    with ServerProcess([str(bf16_model[0]), "--grpc-port", str(grpc_port)]) as process:
        yield process, grpc_port


def _rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(5, 4)).astype(ml_dtypes.bfloat16)


def _want(net: Any, rows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(rows.astype(np.float32)).to(torch.bfloat16)
        return net(x).float().numpy()


def test_metadata_says_bf16(server: tuple[ServerProcess, int]) -> None:
    client = httpclient.InferenceServerClient(server[0].url.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("half")
    finally:
        client.close()
    assert meta["inputs"] == [{"name": "input", "datatype": "BF16", "shape": [-1, 4]}]


def test_tritonclient_http_bf16(server: tuple[ServerProcess, int], bf16_model: tuple[Path, Any]) -> None:
    """Binary BF16 in over HTTP; the model's own bfloat16 answer back (as FP32, which numpy can hold)."""
    rows = _rows()
    client = httpclient.InferenceServerClient(server[0].url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("input", list(rows.shape), "BF16")
        tensor.set_data_from_numpy(rows, binary_data=True)
        result = client.infer("half", [tensor])
    finally:
        client.close()
    assert result.get_output("output-0")["datatype"] == "FP32"
    np.testing.assert_array_equal(result.as_numpy("output-0"), _want(bf16_model[1], rows))


def test_tritonclient_grpc_bf16(server: tuple[ServerProcess, int], bf16_model: tuple[Path, Any]) -> None:
    """BF16 in gRPC raw_input_contents, the same answer as over HTTP."""
    rows = _rows()
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server[1]}")
    try:
        tensor = grpcclient.InferInput("input", list(rows.shape), "BF16")
        tensor.set_data_from_numpy(rows)
        result = client.infer("half", [tensor])
    finally:
        client.close()
    np.testing.assert_array_equal(result.as_numpy("output-0"), _want(bf16_model[1], rows))


def test_a_wrong_input_name_is_a_400_naming_the_one_expected(server: tuple[ServerProcess, int]) -> None:
    """A model that names its input refuses another name, saying which it takes; the next request works."""
    import httpx

    url = server[0].url + "/v2/models/half/infer"
    tensor = {"shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    wrong = httpx.post(url, json={"inputs": [{"name": "features", **tensor}]}, timeout=30)
    assert wrong.status_code == 400
    assert "unknown input 'features'" in wrong.json()["error"] and "'input'" in wrong.json()["error"]
    assert httpx.post(url, json={"inputs": [{"name": "input", **tensor}]}, timeout=30).status_code == 200
