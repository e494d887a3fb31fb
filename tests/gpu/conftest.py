"""GPU tests run only where CUDA is present; elsewhere they skip, saying so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.runtimes.helpers import need, tiny_net


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _cuda_reason()
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.gpu)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def gpu_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny MLP as TorchScript and torch.export archives, saved from the CPU."""
    torch = need("torch")
    out = tmp_path_factory.mktemp("gpu-models")
    net = tiny_net()
    torch.jit.save(torch.jit.trace(net, torch.randn(2, 4)), str(out / "net.pt"))
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.randn(2, 4),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, str(out / "net.pt2"))
    return {"net": net, "pt": out / "net.pt", "pt2": out / "net.pt2"}


@pytest.fixture(scope="session")
def cnn_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small CNN (convolutions, batch norm, pooling: cuDNN's paths) as a torch.export archive with a
    dynamic batch axis, in a model directory whose settings turn batching on."""
    torch = need("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()
    out = tmp_path_factory.mktemp("cnn") / "cnn"
    out.mkdir()
    batch = torch.export.Dim("batch", max=1024)
    program = torch.export.export(net, (torch.randn(2, 3, 32, 32),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(out / "model.pt2"))
    settings = {"runtime": "torch", "max_batch_size": 16, "max_batch_delay_ms": 2.0}
    (out / "model-settings.json").write_text(json.dumps(settings))
    return {"net": net, "dir": out}
