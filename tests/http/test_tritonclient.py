"""tritonclient.http and tritonclient.grpc, unchanged, against a real `prebake serve iris.joblib` process:
predictions must equal the model's own, over JSON and binary tensors and over gRPC."""

from __future__ import annotations

import time
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


def test_statistics_count_the_inferences(
    server: tuple[ServerProcess, int], iris: tuple[Path, Any, np.ndarray]
) -> None:
    """Triton's statistics extension, as tritonclient (and perf_analyzer, which asks before measuring)
    reads it over HTTP and gRPC: inferences made are counted, with a model time within the request time."""
    process, grpc_port = server
    _, _, x = iris
    http = httpclient.InferenceServerClient(process.url.removeprefix("http://"))
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        name = http.get_model_repository_index()[0]["name"]
        before = _success_count(http.get_inference_statistics(name))
        rows = x.astype(np.float64)
        for _ in range(5):
            tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
            tensor.set_data_from_numpy(rows)
            http.infer(name, [tensor])
        deadline = time.monotonic() + 10  # workers publish their numbers about once a second
        while (stats := http.get_inference_statistics(name)) and _success_count(stats) < before + 5:
            assert time.monotonic() < deadline, stats
            time.sleep(0.2)
        (entry,) = stats["model_stats"]
        inference = entry["inference_stats"]
        assert entry["name"] == name and entry["execution_count"] >= 5
        assert 0 < inference["compute_infer"]["ns"] <= inference["success"]["ns"]
        assert entry["last_inference"] > 0
        assert {b["batch_size"] for b in entry["batch_stats"]} >= {len(rows)}
        over_grpc = grpc.get_inference_statistics(name, as_json=True)["model_stats"][0]
        assert int(over_grpc["inference_stats"]["success"]["count"]) >= before + 5
        everything = http.get_inference_statistics()
        assert [s["name"] for s in everything["model_stats"]] == [name]
        with pytest.raises(httpclient.InferenceServerException, match="not found"):
            http.get_inference_statistics("no-such-model")
    finally:
        http.close()
        grpc.close()


def _success_count(stats: dict[str, Any]) -> int:
    return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])
