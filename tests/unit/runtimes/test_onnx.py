"""The ONNX runtime against onnxruntime's and scikit-learn's own results, and provider selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.errors import InvalidInput, ModelLoadError
from prebake.runtimes.onnx import CPU, CUDA, select_providers
from tests.unit.runtimes.helpers import assert_batching, load, need, request


def test_predict_matches_sklearn(onnx_file: Path, sklearn_model: Any, iris: Any) -> None:
    """The converted classifier's labels and probabilities equal scikit-learn's; ZipMap becomes a matrix."""
    x, _ = iris
    out = load(onnx_file, "onnx").predict(request(features=x[:10])).outputs
    np.testing.assert_array_equal(out["output_label"], sklearn_model.predict(x[:10]))
    assert out["output_probability"].shape == (10, 3)
    np.testing.assert_allclose(out["output_probability"], sklearn_model.predict_proba(x[:10]), atol=1e-5)


def test_batching_contract(onnx_file: Path, iris: Any) -> None:
    """Five rows at once give the same outputs as five one-row calls; the model is batchable."""
    x, _ = iris
    model = load(onnx_file, "onnx")
    assert model.batchable
    assert_batching(model, x[:5])


def test_two_inputs_by_name(onnx_two_inputs: Path) -> None:
    """A two-input graph takes its inputs by name and casts float64 to the graph's float32."""
    model = load(onnx_two_inputs, "onnx")
    out = model.predict(request(b=np.ones((2, 3)), a=np.full((2, 3), 2.0))).outputs
    np.testing.assert_array_equal(out["sum"], np.full((2, 3), 3.0, dtype=np.float32))
    with pytest.raises(InvalidInput, match="missing input 'b'"):
        model.predict(request(a=np.ones((1, 3))))


def test_wrong_shape(onnx_file: Path) -> None:
    """Three features for the four-feature graph is InvalidInput naming the graph's shape."""
    with pytest.raises(InvalidInput, match=r"'features' has shape \[1, 3\]; the model expects \[-1, 4\]"):
        load(onnx_file, "onnx").predict(request(features=np.ones((1, 3))))


def test_requested_output(onnx_file: Path, iris: Any) -> None:
    """Asking for one output runs only that one; with a name the graph lacks it runs them all (the served
    model refuses unknown names, once for every runtime)."""
    x, _ = iris
    model = load(onnx_file, "onnx")
    req = request(features=x[:2])
    req.outputs = ["output_label"]
    assert list(model.predict(req).outputs) == ["output_label"]
    req.outputs = ["logits"]
    assert set(model.predict(req).outputs) == {"output_label", "output_probability"}


def test_metadata_from_graph(onnx_file: Path) -> None:
    """Metadata gives the graph's input name, dtype and shape."""
    meta = load(onnx_file, "onnx").metadata()
    assert meta.platform == "onnxruntime_onnx"
    assert [s.to_dict() for s in meta.inputs] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta.outputs[0].name == "output_label"


def test_cpu_device_uses_cpu(onnx_file: Path) -> None:
    """--device cpu loads with the CPU provider only."""
    assert load(onnx_file, "onnx", device="cpu").providers == [CPU]


def test_provider_selection() -> None:
    """auto prefers CUDA where offered and falls back to CPU; cpu never uses CUDA."""
    assert select_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert select_providers("auto", [CPU]) == [CPU]
    assert select_providers("cuda", [CUDA, CPU]) == [CUDA, CPU]
    assert select_providers("cpu", [CUDA, CPU]) == [CPU]


def test_cuda_without_provider() -> None:
    """cuda without the CUDA provider is ModelLoadError telling to install onnxruntime-gpu."""
    with pytest.raises(ModelLoadError, match="onnxruntime-gpu"):
        select_providers("cuda", [CPU])


def test_corrupt_graph(tmp_path: Path) -> None:
    """A file that is no ONNX graph is ModelLoadError naming it."""
    need("onnxruntime")
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"nope")
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        load(path, "onnx", device="cpu")
