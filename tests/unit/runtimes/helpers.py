"""Helpers the runtime tests share: load a model, build a request, check the batching contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.runtimes.base import ModelSettings, Runtime
from prebake.runtimes.registry import create_runtime
from prebake.types import InferenceRequest


def need(module: str) -> Any:
    """Import ``module`` or skip the test, naming it."""
    return pytest.importorskip(module, reason=f"{module} not installed")


def load(path: Path, runtime: str, **settings: Any) -> Runtime:
    """A loaded array runtime for the model at ``path``; the tests trust the pickles they made, so
    allow_pickle is on unless ``parameters`` say otherwise."""
    settings["parameters"] = {"allow_pickle": True, **settings.get("parameters", {})}
    model = create_runtime(
        ModelSettings(name=settings.pop("name", "m"), path=path, runtime=runtime, **settings)
    )
    assert isinstance(model, Runtime)
    model.load()
    return model


def request(**inputs: Any) -> InferenceRequest:
    return InferenceRequest(inputs={k: np.asarray(v) for k, v in inputs.items()})


def assert_batching(runtime: Runtime, x: np.ndarray, *, rtol: float = 1e-5) -> None:
    """The batching contract: one predict on n rows equals n one-row predicts concatenated, per output."""
    name = runtime.metadata().inputs[0].name
    whole = runtime.predict(request(**{name: x})).outputs
    rows = [runtime.predict(request(**{name: x[i : i + 1]})).outputs for i in range(len(x))]
    assert set(whole) == set(rows[0])
    for name, value in whole.items():
        assert value.shape[0] == len(x), f"output {name} is not row-aligned"
        joined = np.concatenate([r[name] for r in rows])
        np.testing.assert_allclose(joined, value, rtol=rtol, atol=1e-6)


def tiny_net() -> Any:
    """A small MLP, 4 features in and 3 logits out, with fixed weights (torch imported only here)."""
    torch = need("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(4, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x: Any) -> Any:
            return self.out(torch.relu(self.hidden(x)))

    torch.manual_seed(0)
    return Net().eval()
