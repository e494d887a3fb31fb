"""GPU tests run only where CUDA is present; elsewhere they skip, saying so."""

from __future__ import annotations

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
