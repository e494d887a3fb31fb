"""The ONNX runtime on CUDA, where onnxruntime offers the CUDA provider (onnxruntime-gpu)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prebake.runtimes.onnx import CUDA
from tests.unit.runtimes.helpers import load, need, request


@pytest.fixture(scope="module")
def onnx_add(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("onnx")
    ort = need("onnxruntime")
    if CUDA not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu not installed)")
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Relu", ["a"], ["y"])], "relu", [a], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx-gpu") / "relu.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_cuda_provider_first(onnx_add: Path) -> None:
    """device cuda puts the CUDA provider first in the session and gives the CPU's results."""
    runtime = load(onnx_add, "onnx", device="cuda")
    assert runtime.session.get_providers()[0] == CUDA  # type: ignore[attr-defined]
    x = np.array([[-1.0, 0.5, 2.0]])
    np.testing.assert_allclose(runtime.predict(request(a=x)).outputs["y"], np.maximum(x, 0))
