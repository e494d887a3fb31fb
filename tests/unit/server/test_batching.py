"""Adaptive batching: merged calls give the same answers as single calls, and merging follows the load."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from prebake.errors import InvalidInput
from prebake.runtimes.base import ModelSettings, Runtime
from prebake.server.batching import Batcher
from prebake.server.executor import Executor
from prebake.server.metrics import Metrics
from prebake.types import InferenceRequest, InferenceResponse


class AffineRuntime(Runtime):
    """y = x @ W + b per row, recording the batch sizes it was called with; slow enough to let work queue."""

    name = "affine"

    def __init__(self, delay: float = 0.005) -> None:
        super().__init__(ModelSettings(name="affine", path=__import__("pathlib").Path(".")))
        self.delay = delay
        self.calls: list[int] = []
        self.lock = threading.Lock()
        rng = np.random.default_rng(0)
        self.weights = rng.normal(size=(4, 3))
        self.bias = rng.normal(size=3)

    def load(self) -> None:
        pass

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        x = next(iter(request.inputs.values()))
        if x.shape[1:] != (4,):
            raise InvalidInput(f"input needs 4 features, got shape {list(x.shape)}")
        with self.lock:
            self.calls.append(x.shape[0])
        time.sleep(self.delay)
        return InferenceResponse(outputs={"y": x @ self.weights + self.bias, "label": np.argmax(x, axis=1)})


async def _serve(runtime: AffineRuntime, requests: list[InferenceRequest], *, delay_ms: float = 0.0) -> list:
    executor = Executor(1)
    executor.start(asyncio.get_running_loop())
    batcher = Batcher("affine", runtime, executor, Metrics(), max_batch_size=64, max_batch_delay_ms=delay_ms)
    try:
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
    finally:
        executor.close()


def _request(rows: np.ndarray) -> InferenceRequest:
    return InferenceRequest(inputs={"x": rows})


def assert_same(batched: np.ndarray, single: np.ndarray) -> None:
    """Integers must be equal; floats equal up to summation order in BLAS (a few ULP), nothing more."""
    assert batched.dtype == single.dtype and batched.shape == single.shape
    if np.issubdtype(single.dtype, np.floating):
        np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_array_equal(batched, single)


def test_batched_results_identical_to_unbatched() -> None:
    """Thirty-two concurrent 1-row requests answered in merged calls equal thirty-two single predicts."""
    rng = np.random.default_rng(1)
    rows = [rng.normal(size=(1, 4)) for _ in range(32)]
    runtime = AffineRuntime()
    results = asyncio.run(_serve(runtime, [_request(r) for r in rows]))
    single = AffineRuntime(delay=0)
    for row, result in zip(rows, results, strict=True):
        expected = single.predict(_request(row))
        assert_same(result.outputs["y"], expected.outputs["y"])
        assert_same(result.outputs["label"], expected.outputs["label"])
    assert max(runtime.calls) > 1, "concurrent requests should have been merged"
    assert sum(runtime.calls) == 32


def test_requests_of_several_rows_are_split_back_in_order() -> None:
    """Requests of 1, 3 and 5 rows merged together each get back exactly their own rows."""
    rng = np.random.default_rng(2)
    sizes = [1, 3, 5, 2, 4, 1]
    inputs = [rng.normal(size=(n, 4)) for n in sizes]
    results = asyncio.run(_serve(AffineRuntime(), [_request(x) for x in inputs]))
    reference = AffineRuntime(delay=0)
    for x, result in zip(inputs, results, strict=True):
        assert result.outputs["y"].shape == (x.shape[0], 3)
        assert_same(result.outputs["y"], reference.predict(_request(x)).outputs["y"])


def test_a_lone_request_runs_at_once_without_waiting() -> None:
    """With no load, a request is predicted alone and immediately, even with a batch delay configured."""
    runtime = AffineRuntime(delay=0)

    async def one() -> float:
        executor = Executor(1)
        executor.start(asyncio.get_running_loop())
        batcher = Batcher("affine", runtime, executor, Metrics(), max_batch_size=64, max_batch_delay_ms=50)
        started = time.perf_counter()
        await batcher.submit(_request(np.ones((1, 4))))
        elapsed = time.perf_counter() - started
        executor.close()
        return elapsed

    elapsed = asyncio.run(one())
    assert runtime.calls == [1]
    assert elapsed < 0.05, "a lone request must not wait for the batch delay"


def test_a_bad_request_fails_alone_not_its_batch_neighbours() -> None:
    """One malformed request merged with good ones gets its 400; the good ones still get answers."""
    rng = np.random.default_rng(3)
    requests = [_request(rng.normal(size=(1, 4))) for _ in range(10)]
    requests.insert(5, _request(rng.normal(size=(1, 7))))
    results = asyncio.run(_serve(AffineRuntime(), requests))
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], InvalidInput)
    assert all(isinstance(r, InferenceResponse) for i, r in enumerate(results) if i != 5)


def test_batch_never_exceeds_max_batch_size() -> None:
    """Under a burst of 200 one-row requests no predict call sees more than max_batch_size rows."""
    runtime = AffineRuntime()
    requests = [_request(np.ones((1, 4))) for _ in range(200)]
    results = asyncio.run(_serve(runtime, requests))
    assert all(isinstance(r, InferenceResponse) for r in results)
    assert max(runtime.calls) <= 64
    assert sum(runtime.calls) == 200


@pytest.mark.parametrize("delay_ms", [0.0, 2.0])
def test_delay_setting_keeps_results_correct(delay_ms: float) -> None:
    """With or without a batch delay every request gets its own correct answer."""
    rng = np.random.default_rng(4)
    rows = [rng.normal(size=(1, 4)) for _ in range(50)]
    results = asyncio.run(_serve(AffineRuntime(), [_request(r) for r in rows], delay_ms=delay_ms))
    reference = AffineRuntime(delay=0)
    for row, result in zip(rows, results, strict=True):
        assert_same(result.outputs["y"], reference.predict(_request(row)).outputs["y"])


def test_one_dimensional_rows_are_not_concatenated() -> None:
    """Where the model takes [-1, 4], requests sending one row as a 1-D [4] run alone and all succeed."""

    class RowRuntime(AffineRuntime):
        def predict(self, request: InferenceRequest) -> InferenceResponse:
            x = next(iter(request.inputs.values()))
            return super().predict(InferenceRequest(inputs={"x": x.reshape(-1, 4)}))

    runtime = RowRuntime()

    async def main() -> list:
        executor = Executor(1)
        executor.start(asyncio.get_running_loop())
        batcher = Batcher(
            "affine",
            runtime,
            executor,
            Metrics(),
            max_batch_size=64,
            max_batch_delay_ms=0,
            input_ranks={"x": 2},
        )
        requests = [_request(np.full(4, float(i))) for i in range(12)]
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in requests))
        finally:
            executor.close()

    results = asyncio.run(main())
    assert all(result.outputs["y"].shape == (1, 3) for result in results)
    assert set(runtime.calls) == {1}


class TextRuntime(Runtime):
    """A runtime that merges requests itself (the batch hook): texts in, their lengths out."""

    name = "texts"
    merges_requests = True

    def __init__(self) -> None:
        super().__init__(ModelSettings(name="texts", path=__import__("pathlib").Path(".")))
        self.batches: list[list[int]] = []

    def load(self) -> None:
        pass

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        return self.predict_batch([request])[0]

    def predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        self.batches.append([len(r.inputs["text"]) for r in requests])
        time.sleep(0.005)
        out = []
        for request in requests:
            texts = request.inputs["text"]
            if any(not isinstance(t, str) for t in texts):
                raise InvalidInput("texts only")
            out.append(InferenceResponse(outputs={"length": np.array([len(t) for t in texts])}))
        return out


def _texts(*values: object) -> InferenceRequest:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return InferenceRequest(inputs={"text": array})


def _submit_together(runtime: TextRuntime, requests: list) -> list:
    """Every request submitted at once to one batcher over ``runtime``; answers or errors, in order."""

    async def serve() -> list:
        executor = Executor(1)
        executor.start(asyncio.get_running_loop())
        batcher = Batcher("texts", runtime, executor, Metrics(), max_batch_size=64, max_batch_delay_ms=0)
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
        finally:
            executor.close()

    return asyncio.run(serve())


def test_text_requests_are_handed_whole_to_a_merging_runtime() -> None:
    """BYTES requests of any length are never concatenated as arrays; a runtime with the batch hook gets
    them whole, several per call, and each request gets its own answer back."""
    runtime = TextRuntime()
    requests = [_texts(*["x" * (i + j) for j in range(i % 3 + 1)]) for i in range(24)]

    results = _submit_together(runtime, requests)
    for request, result in zip(requests, results, strict=True):
        assert result.outputs["length"].tolist() == [len(t) for t in request.inputs["text"]]
    assert max(len(b) for b in runtime.batches) > 1, "concurrent text requests should share a call"
    assert sum(sum(b) for b in runtime.batches) == sum(len(r.inputs["text"]) for r in requests)


def test_a_bad_text_request_fails_alone_in_a_merged_batch() -> None:
    runtime = TextRuntime()
    requests = [_texts("a", "bb") for _ in range(8)]
    requests.insert(3, _texts("a", 5))

    results = _submit_together(runtime, requests)
    failures = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failures == [3] and isinstance(results[3], InvalidInput)
