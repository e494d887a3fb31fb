"""The torch runtime against the module's own forward, for TorchScript and torch.export archives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.errors import InvalidInput, ModelLoadError
from prebake.runtimes.torch import resolve_device
from tests.unit.runtimes.helpers import assert_batching, load, need, request


def _expected(net: Any, x: np.ndarray) -> np.ndarray:
    torch = need("torch")
    with torch.no_grad():
        result: np.ndarray = net(torch.from_numpy(x.astype(np.float32))).numpy()
    return result


@pytest.mark.parametrize("fixture", ["torchscript_file", "exported_file"])
def test_predict_matches_forward(fixture: str, request_fixture: Any, torch_net: Any, iris: Any) -> None:
    """Both archive kinds give the module's own forward output, float64 inputs cast to float32."""
    x, _ = iris
    out = load(request_fixture(fixture), "torch", device="cpu").predict(request(x=x[:6])).outputs
    assert list(out) == ["output-0"]
    np.testing.assert_allclose(out["output-0"], _expected(torch_net, x[:6]), rtol=1e-5)


@pytest.mark.parametrize("fixture", ["torchscript_file", "exported_file"])
def test_batching_contract(fixture: str, request_fixture: Any, iris: Any) -> None:
    """Five rows at once give the same outputs as five one-row calls concatenated."""
    x, _ = iris
    model = load(request_fixture(fixture), "torch", device="cpu")
    assert model.batchable
    assert_batching(model, x[:5])


def test_exported_metadata_and_shape_check(exported_file: Path) -> None:
    """A .pt2 archive gives its input's name, dtype and shape, and a wrong width is InvalidInput."""
    model = load(exported_file, "torch", device="cpu")
    meta = model.metadata()
    assert meta.platform == "pytorch_export"
    assert [s.to_dict() for s in meta.inputs] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [s.to_dict() for s in meta.outputs] == [{"name": "output-0", "datatype": "FP32", "shape": [-1, 3]}]
    with pytest.raises(InvalidInput, match=r"\[1, 5\].*\[-1, 4\]"):
        model.predict(request(x=np.ones((1, 5))))


def test_torchscript_bad_shape(torchscript_file: Path) -> None:
    """A wrong width sent to TorchScript is InvalidInput carrying torch's reason, not a traceback."""
    with pytest.raises(InvalidInput, match="rejected input 'x'"):
        load(torchscript_file, "torch", device="cpu").predict(request(x=np.ones((1, 5))))


def test_settings_outputs_rename(torchscript_file: Path, iris: Any) -> None:
    """Output names from the settings file replace output-0."""
    from prebake.types import TensorSpec

    x, _ = iris
    model = load(torchscript_file, "torch", device="cpu", outputs=[TensorSpec("logits", "FP32", [-1, 3])])
    assert list(model.predict(request(x=x[:1])).outputs) == ["logits"]


def test_read_only_input(torchscript_file: Path, iris: Any) -> None:
    """A read-only float32 array (as decoded from binary tensors) is accepted without a warning."""
    x, _ = iris
    frozen = x[:2].astype(np.float32)
    frozen.flags.writeable = False
    out = load(torchscript_file, "torch", device="cpu").predict(request(x=frozen)).outputs
    assert out["output-0"].shape == (2, 3)


def test_state_dict_refused(tmp_path: Path, torch_net: Any) -> None:
    """A torch.save state_dict is refused with a message naming torch.jit.save and torch.export.save."""
    torch = need("torch")
    path = tmp_path / "weights.pt"
    torch.save(torch_net.state_dict(), path)
    with pytest.raises(ModelLoadError, match="not a TorchScript archive.*torch.export.save"):
        load(path, "torch", device="cpu")


def test_device_resolution() -> None:
    """auto picks CUDA only where available; cpu stays on CPU; cuda without CUDA refuses to load."""
    assert resolve_device("auto", True) == "cuda"
    assert resolve_device("auto", False) == "cpu"
    assert resolve_device("cpu", True) == "cpu"
    assert resolve_device("cuda", True) == "cuda"
    with pytest.raises(ModelLoadError, match="no CUDA device"):
        resolve_device("cuda", False)


def test_cuda_asked_without_gpu(torchscript_file: Path) -> None:
    """Loading with device cuda on a machine without CUDA is ModelLoadError, not a crash later."""
    torch = need("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present; tests/gpu covers this machine")
    with pytest.raises(ModelLoadError, match="no CUDA device"):
        load(torchscript_file, "torch", device="cuda")


def test_bfloat16_model_takes_bf16_and_answers_float32(tmp_path: Path, torch_net: Any, iris: Any) -> None:
    """A bfloat16 .pt2 says BF16 in its metadata, casts what arrives (float32: how BF16 is decoded) to
    bfloat16, and gives the output back as float32 (numpy has no bfloat16), equal to the model's own."""
    torch = need("torch")
    import copy

    net = copy.deepcopy(torch_net).to(torch.bfloat16)
    program = torch.export.export(
        net, (torch.randn(2, 4, dtype=torch.bfloat16),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    )
    torch.export.save(program, str(tmp_path / "bf16.pt2"))
    model = load(tmp_path / "bf16.pt2", "torch", device="cpu")
    meta = model.metadata()
    assert [s.to_dict() for s in meta.inputs] == [{"name": "x", "datatype": "BF16", "shape": [-1, 4]}]
    assert meta.outputs[0].datatype == "FP32"
    x = iris[0][:5].astype(np.float32)
    got = model.predict(request(x=x)).outputs["output-0"]
    with torch.no_grad():
        want = net(torch.from_numpy(x).to(torch.bfloat16)).float().numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
