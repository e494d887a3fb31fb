"""The torch runtime on a CUDA device: placement, results equal to the CPU's, and batching."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.runtimes.helpers import assert_batching, load, request


@pytest.mark.parametrize("kind", ["pt", "pt2"])
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_runs_on_cuda(gpu_models: dict[str, Any], kind: str, device: str) -> None:
    """auto and cuda both place the model on the GPU and give the CPU's results back as host arrays."""
    x = np.random.default_rng(0).normal(size=(16, 4))
    gpu = load(gpu_models[kind], "torch", device=device)
    assert gpu.device == "cuda"  # type: ignore[attr-defined]
    cpu = load(gpu_models[kind], "torch", device="cpu")
    got = gpu.predict(request(x=x)).outputs["output-0"]
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, cpu.predict(request(x=x)).outputs["output-0"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["pt", "pt2"])
def test_parameters_live_on_the_gpu(gpu_models: dict[str, Any], kind: str) -> None:
    """The loaded module's weights are CUDA tensors, so predict does not copy the model each call."""
    runtime = load(gpu_models[kind], "torch", device="cuda")
    params = list(runtime.model.parameters()) + list(runtime.model.buffers())  # type: ignore[attr-defined]
    assert params and all(p.is_cuda for p in params)


@pytest.mark.parametrize("kind", ["pt", "pt2"])
def test_batching_contract_on_cuda(gpu_models: dict[str, Any], kind: str) -> None:
    """On the GPU too, eight rows at once equal eight one-row calls concatenated."""
    x = np.random.default_rng(1).normal(size=(8, 4))
    assert_batching(load(gpu_models[kind], "torch", device="cuda"), x, rtol=1e-4)


def test_bfloat16_model_on_cuda(gpu_models: dict[str, Any], tmp_path: Any) -> None:
    """A bfloat16 archive on the GPU: float32 arrives, is cast to bfloat16 on the device, and the answer
    comes back as float32 close to the same model's on the CPU (bfloat16 keeps about 3 digits)."""
    import copy

    import torch

    net = copy.deepcopy(gpu_models["net"]).to(torch.bfloat16)
    example = (torch.randn(2, 4, dtype=torch.bfloat16),)
    program = torch.export.export(net, example, dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, str(tmp_path / "bf16.pt2"))
    x = np.random.default_rng(2).normal(size=(16, 4)).astype(np.float32)
    gpu = load(tmp_path / "bf16.pt2", "torch", device="cuda")
    got = gpu.predict(request(x=x)).outputs["output-0"]
    cpu = load(tmp_path / "bf16.pt2", "torch", device="cpu").predict(request(x=x)).outputs["output-0"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, cpu, rtol=2e-2, atol=2e-2)
