"""tritonclient.http and tritonclient.grpc, unchanged, against a real `prebake serve iris.joblib` process:
predictions must equal the model's own, over JSON and binary tensors and over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.testing import ServerProcess, free_port

pytest.importorskip("prebake.runtimes.sklearn", reason="the sklearn runtime is not on this branch yet")
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient is a test-only extra")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is a test-only extra")
from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype  # noqa: E402


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, np.ndarray]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    path = tmp_path_factory.mktemp("models") / "iris.joblib"
    joblib.dump(model, path)
    return path, model, x[::15]


@pytest.fixture(scope="module")
def server(iris: tuple[Path, Any, np.ndarray]) -> Iterator[tuple[ServerProcess, int]]:
    grpc_port = free_port()
    with ServerProcess([str(iris[0]), "--grpc-port", str(grpc_port)]) as process:
        yield process, grpc_port


def _rows(meta_input: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return x.astype(triton_to_np_dtype(meta_input["datatype"]))


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http_predicts_like_the_model(
    server: tuple[ServerProcess, int], iris: tuple[Path, Any, np.ndarray], binary: bool
) -> None:
    """tritonclient.http infer (binary or JSON tensors) returns what model.predict returns."""
    process, _ = server
    _, model, x = iris
    client = httpclient.InferenceServerClient(process.url.removeprefix("http://"))
    try:
        (entry,) = client.get_model_repository_index()
        name = entry["name"]
        assert client.is_model_ready(name)
        meta = client.get_model_metadata(name)
        rows = _rows(meta["inputs"][0], x)
        tensor = httpclient.InferInput(
            meta["inputs"][0]["name"], list(rows.shape), np_to_triton_dtype(rows.dtype)
        )
        tensor.set_data_from_numpy(rows, binary_data=binary)
        output = meta["outputs"][0]["name"]
        result = client.infer(
            name, [tensor], outputs=[httpclient.InferRequestedOutput(output, binary_data=binary)]
        )
        assert result.as_numpy(output).reshape(-1).tolist() == model.predict(x).tolist()
    finally:
        client.close()


def test_tritonclient_grpc_predicts_like_the_model(
    server: tuple[ServerProcess, int], iris: tuple[Path, Any, np.ndarray]
) -> None:
    """tritonclient.grpc infer over the --grpc-port returns what model.predict returns."""
    _, grpc_port = server
    _, model, x = iris
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        name = client.get_model_repository_index().models[0].name
        meta = client.get_model_metadata(name, as_json=True)
        rows = _rows(meta["inputs"][0], x)
        tensor = grpcclient.InferInput(
            meta["inputs"][0]["name"], list(rows.shape), np_to_triton_dtype(rows.dtype)
        )
        tensor.set_data_from_numpy(rows)
        output = meta["outputs"][0]["name"]
        result = client.infer(name, [tensor])
        assert result.as_numpy(output).reshape(-1).tolist() == model.predict(x).tolist()
    finally:
        client.close()
