from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from prebake.testing import ServerProcess

CORE_SCRIPTS = Path(__file__).parent / "core_scripts"


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ServerProcess]:
    """One server with the echo entry script, shared by a module's read-only tests."""
    with ServerProcess(["--entry-script", str(CORE_SCRIPTS / "echo.py"), "--timeout-ms", "1500"]) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, np.ndarray]:
    """A LogisticRegression on iris saved with joblib, the model itself, and ten rows to send."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    path = tmp_path_factory.mktemp("models") / "iris.joblib"
    joblib.dump(model, path)
    return path, model, x[::15]
