"""What the platform contract tests share: two tiny scikit-learn models that answer differently, and a
`prebake serve` process started the way a platform starts the image's entry point (its own arguments
and environment, the port chosen by the platform's variables rather than by --port).

These tests run the real server process with each platform's variables; tests/images/test_platforms.py
runs the same contracts against the built image with podman.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from prebake.testing import ServerProcess, free_port

ROWS = [[0.0, 0.0], [2.0, 2.0]]
#: What each model predicts for ROWS.
ANSWERS = {"one": [0, 1], "two": [1, 0]}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> a joblib LogisticRegression; "one" and "two" give opposite answers for ROWS."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0, 0], [2, 2], [0, 1], [2, 1]], dtype=float)
    folder = tmp_path_factory.mktemp("platform-models")
    paths = {}
    for name, labels in (("one", [0, 1, 0, 1]), ("two", [1, 0, 1, 0])):
        paths[name] = folder / f"{name}.joblib"
        joblib.dump(LogisticRegression().fit(x, labels), paths[name])
    return paths


def platform_server(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    port: int,
    ready_path: str,
    wait_ready: bool = True,
) -> ServerProcess:
    """`prebake serve ARGS` with ``env`` and no --port: the platform's variables must pick ``port``."""
    server = ServerProcess(
        args,
        env={"PREBAKE_ALLOW_PICKLE": "1", **env},
        port=port,
        ready_path=ready_path,
        wait_ready=wait_ready,
    )
    assert server.args[-2] == "--port"
    server.args = server.args[:-2]
    return server


__all__ = ["ANSWERS", "ROWS", "free_port", "platform_server"]
