"""`prebake serve --device cuda` as users run it: forked workers each on the GPU, binary V2 tensors through
tritonclient.http, requests arriving together merged by adaptive batching, answers equal to the CPU model's."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from prebake.testing import ServerProcess

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient is a test-only extra")

REQUESTS = 64


@pytest.fixture(scope="module")
def server(cnn_dir: dict[str, Any]) -> Iterator[ServerProcess]:
    args = [str(cnn_dir["dir"]), "--model-name", "cnn", "--device", "cuda", "--workers", "2"]
    with ServerProcess(args, start_timeout=120) as process:
        yield process


def _expected(net: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


def test_workers_load_the_model_on_the_gpu(server: ServerProcess) -> None:
    """Each forked worker initialises CUDA itself (the parent never does) and says so in the log."""
    deadline = time.monotonic() + 60  # readiness needs one worker; the other may still be loading
    while len(devices := re.findall(r"model 'cnn': torch on (\w+)", server.logs())) < 2:
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.2)
    assert devices == ["cuda", "cuda"], server.logs()


def test_binary_requests_through_tritonclient_equal_the_cpu_model(
    server: ServerProcess, cnn_dir: dict[str, Any]
) -> None:
    """64 concurrent one-image requests with binary tensors: every answer is the CPU model's for its image
    (TF32 convolutions on the GPU allow a small difference)."""
    images = np.random.default_rng(0).normal(size=(REQUESTS, 1, 3, 32, 32)).astype(np.float32)
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"), concurrency=32)
    try:
        pending = []
        for image in images:
            tensor = httpclient.InferInput("input", list(image.shape), "FP32")
            tensor.set_data_from_numpy(image, binary_data=True)
            wanted = [httpclient.InferRequestedOutput("output-0", binary_data=True)]
            pending.append(client.async_infer("cnn", [tensor], outputs=wanted))
        got = np.concatenate([p.get_result().as_numpy("output-0") for p in pending])
    finally:
        client.close()
    want = _expected(cnn_dir["net"], images.reshape(REQUESTS, 3, 32, 32))
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-3)


def test_requests_arriving_together_are_batched_on_the_gpu(cnn_dir: dict[str, Any]) -> None:
    """32 requests sent before any answer is read: the worker merges those that queue behind a running
    predict, and each still gets its own image's answer."""
    images = np.random.default_rng(1).normal(size=(REQUESTS // 2, 1, 3, 32, 32)).astype(np.float32)
    args = [str(cnn_dir["dir"]), "--model-name", "cnn", "--device", "cuda", "--no-access-log"]
    with ServerProcess(args, start_timeout=120) as server:
        connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=60) for _ in images]
        try:
            for connection, image in zip(connections, images, strict=True):
                # Binary tensors: the worker reads all 32 in far less time than one predict takes.
                tensor = {"name": "input", "shape": list(image.shape), "datatype": "FP32"}
                header = json.dumps(
                    {"inputs": [{**tensor, "parameters": {"binary_data_size": image.nbytes}}]}
                )
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Inference-Header-Content-Length": str(len(header)),
                }
                connection.request("POST", "/v2/models/cnn/infer", header.encode() + image.tobytes(), headers)
            answers = [json.loads(c.getresponse().read()) for c in connections]
        finally:
            for connection in connections:
                connection.close()
        got = np.array([a["outputs"][0]["data"] for a in answers], dtype=np.float32)
        want = _expected(cnn_dir["net"], images.reshape(-1, 3, 32, 32))
        np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-3)
        rows, calls = _batch_totals(server, "cnn", len(images))
    assert calls < rows, f"no request was merged: {calls} predict calls for {rows} rows"


def test_wrong_shape_is_a_400_and_the_gpu_keeps_serving(
    server: ServerProcess, cnn_dir: dict[str, Any]
) -> None:
    """A request the model cannot take fails alone with a message naming the input; the next one works."""
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        bad = httpclient.InferInput("input", [1, 3, 7], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3, 7), np.float32), binary_data=True)
        with pytest.raises(httpclient.InferenceServerException) as error:
            client.infer("cnn", [bad])
        assert error.value.status() == "400" and "input" in str(error.value)
        image = np.ones((1, 3, 32, 32), np.float32)
        good = httpclient.InferInput("input", [1, 3, 32, 32], "FP32")
        good.set_data_from_numpy(image, binary_data=True)
        got = client.infer("cnn", [good]).as_numpy("output-0")
    finally:
        client.close()
    np.testing.assert_allclose(got, _expected(cnn_dir["net"], image), rtol=1e-2, atol=1e-3)


def _batch_totals(server: ServerProcess, model: str, rows: int) -> tuple[float, float]:
    """Rows and predict calls, from the prebake_batch_size_rows histogram in /metrics, once it counts
    ``rows`` rows (workers publish their counts about once a second)."""
    import urllib.request

    def value(text: str, suffix: str) -> float:
        match = re.search(rf'^prebake_batch_size_rows_{suffix}{{model="{model}"}} (\S+)$', text, re.M)
        return float(match.group(1)) if match else 0.0

    deadline = time.monotonic() + 10
    while True:
        text = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
        seen = value(text, "sum"), value(text, "count")
        if seen[0] >= rows or time.monotonic() > deadline:
            assert seen[0] >= rows, f"/metrics counts {seen[0]} batched rows, not {rows}:\n{text}"
            return seen
        time.sleep(0.2)
