"""Hostile inputs against a real server: each one answered with a clean status, none crashes a worker.

The cases are data (``CASES``): the input, the route, the raw bytes sent, and the statuses allowed.
After each, the same worker must still answer, and no body may show a traceback or a path.
docs/reliability.md's table is these rows, as recorded with PREBAKE_RELIABILITY_OUT.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from prebake.testing import ServerProcess

from .helpers import SCRIPTS, iris_model, leaks, protocols_present, record, wait_for
from .rawhttp import RawAnswer, exchange, read_answer, request

MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    route: str
    data: Callable[[], bytes]
    allowed: frozenset[int | None]
    json_error: bool = True  # an error answer must be a JSON body (the server's, not the parser's)
    says: str = ""  # the body must hold this: a 400 for the right reason, not the model's own complaint


def _chunked(total: int) -> bytes:
    chunk = b"x" * 65536
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(total // len(chunk))]
    head = (
        b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    return head + b"".join(parts) + b"0\r\n\r\n"


def _post(path: str, body: bytes, **headers: str) -> Callable[[], bytes]:
    return lambda: request(
        "POST", path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


CASES = [
    Case(
        "oversized body (8 MiB, limit 4 MiB)",
        "POST /score",
        _post("/score", b"x" * (2 * MAX_BODY)),
        frozenset({413}),
    ),
    Case(
        "oversized chunked body, no Content-Length",
        "POST /score",
        lambda: _chunked(2 * MAX_BODY),
        frozenset({413}),
    ),
    Case(
        "deep JSON nesting (100,000 levels)",
        "POST /score",
        _post("/score", b"[" * 100_000 + b"]" * 100_000),
        frozenset({400, 422, 500}),  # run() parses it; its RecursionError is run() failing (azmlinfsrv: 500)
    ),
    Case(
        "huge JSON array (1,000,000 numbers)",
        "POST /score",
        _post("/score", b'{"echo": [' + b"1," * 999_999 + b"1]}"),
        frozenset({200}),
    ),
    Case(
        "NaN and Infinity literals",
        "POST /score",
        _post("/score", b'{"echo": [NaN, Infinity, -Infinity]}'),
        frozenset({200, 400}),
    ),
    Case(
        "invalid UTF-8 body",
        "POST /score",
        _post("/score", b'{"echo": "\xff\xfe\xc3\x28"}'),
        frozenset({400}),
    ),
    Case(
        "wrong content type (application/xml, JSON body)",
        "POST /score",
        _post("/score", b'{"echo": 1}', content_type="application/xml"),
        frozenset({200, 415}),
    ),
    Case("empty body", "POST /score", _post("/score", b""), frozenset({200, 400})),
    Case(
        "gzip body sent to a route that takes none",
        "POST /score",
        _post("/score", gzip.compress(b'{"echo": 1}'), content_encoding="gzip"),
        frozenset({400, 415, 500}),  # run() gets bytes it cannot parse
    ),
    Case(
        "path traversal",
        "GET /score/../../etc/passwd",
        lambda: request("GET", "/score/../../etc/passwd"),
        frozenset({404}),
    ),
    Case("NUL byte in the path", "GET /sco%00re", lambda: request("GET", "/sco%00re"), frozenset({404})),
    Case(
        "100 KB query string",
        "GET /score",
        lambda: request("GET", "/score?q=" + "a" * 100_000),
        frozenset({200, 400, 414, 431}),
        json_error=False,  # the HTTP parser refuses it before the app sees it
    ),
    Case(
        "headers over 64 KiB",
        "POST /score",
        _post("/score", b"{}", **{f"x_filler_{i}": "y" * 4000 for i in range(20)}),
        frozenset({431}),
    ),
    Case(
        "10,000 small headers",
        "POST /score",
        _post("/score", b"{}", **{f"x_h{i}": "v" for i in range(10_000)}),
        frozenset({431}),
    ),
    Case(
        "Content-Length and Transfer-Encoding both (smuggling)",
        "POST /score",
        lambda: (
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        frozenset({400}),
        json_error=False,
    ),
    Case(
        "negative Content-Length",
        "POST /score",
        lambda: b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n{}",
        frozenset({400}),
        json_error=False,
    ),
    Case(
        "malformed request line",
        "-",
        lambda: b"GARBAGE / HTTP/9.9 extra\r\n\r\n",
        frozenset({400, None}),
        json_error=False,
    ),
    Case(
        "unknown method",
        "BREW /score",
        lambda: request("BREW", "/score"),
        frozenset({400, 405}),
        json_error=False,
    ),
]


def _v2(body: bytes, **headers: str) -> Callable[[], bytes]:
    return _post("/v2/models/iris/infer", body, content_type="application/json", **headers)


def _npy_with_pickle() -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _tensor(datatype: str, shape: list[int], data: object) -> Callable[[], bytes]:
    doc = {"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]}
    return _v2(json.dumps(doc).encode())


def _binary(datatype: str, shape: list[int]) -> Callable[[], bytes]:
    """A binary-extension request whose header claims ``shape`` for a zero-byte tensor."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": shape,
                    "datatype": datatype,
                    "parameters": {"binary_data_size": 0},
                }
            ]
        }
    ).encode()
    return _v2(header, inference_header_content_length=str(len(header)))


def _gzip_body(cut: int = 0, tail: bytes = b"") -> Callable[[], bytes]:
    body = gzip.compress(b'{"inputs":[' + _ROW + b"]}")
    return _v2(body[: len(body) - cut] + tail, content_encoding="gzip")


def _npy(array_bytes: bytes, accept: str = "application/json") -> Callable[[], bytes]:
    headers = {"content-type": "application/x-npy", "accept": accept}
    return lambda: request("POST", "/invocations", body=array_bytes, headers=headers)


def _npy_bytes(shape: tuple[int, ...], claim: str | None = None) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape))
    data = buffer.getvalue()
    return data if claim is None else data.replace(str(shape).encode(), claim.encode(), 1)


def _npz_cut() -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, a=np.zeros(3))
    return buffer.getvalue()[:60]


_ROW = b'{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}'
MODEL_CASES = [
    Case(
        "oversized body (8 MiB, limit 4 MiB)",
        "POST /v2/models/iris/infer",
        _v2(b"x" * (2 * MAX_BODY)),
        frozenset({413}),
    ),
    Case(
        "gzip bomb (64 KiB inflating to 64 MiB)",
        "POST /v2/models/iris/infer",
        _v2(gzip.compress(b" " * (64 * 1024 * 1024)), content_encoding="gzip"),
        frozenset({400, 413}),
    ),
    Case(
        "deep JSON nesting (100,000 levels)",
        "POST /v2/models/iris/infer",
        _v2(b'{"inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        frozenset({400, 422}),
    ),
    Case(
        "huge declared shape ([1e12, 4]) with 4 values",
        "POST /v2/models/iris/infer",
        _v2(b'{"inputs":[{"name":"input-0","shape":[1000000000000,4],"datatype":"FP64","data":[1,2,3,4]}]}'),
        frozenset({400, 422}),
    ),
    Case(
        "negative and non-integer shape",
        "POST /v2/models/iris/infer",
        _v2(b'{"inputs":[{"name":"input-0","shape":[-1,"4"],"datatype":"FP64","data":[1,2,3,4]}]}'),
        frozenset({400, 422}),
    ),
    Case(
        "huge JSON array (1,000,000 values, wrong shape)",
        "POST /v2/models/iris/infer",
        _v2(
            b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":['
            + b"1," * 999_999
            + b"1]}]}"
        ),
        frozenset({400, 422}),
    ),
    Case(
        "NaN and Infinity literals",
        "POST /v2/models/iris/infer",
        _v2(
            b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[NaN,Infinity,-Infinity,1]}]}'
        ),
        frozenset({400}),
    ),
    Case(
        "float overflow (1e400) in FP32 data",
        "POST /v2/models/iris/infer",
        _v2(b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[1e400,1,1,1]}]}'),
        frozenset({200, 400, 422}),
    ),
    Case(
        "invalid UTF-8 in JSON",
        "POST /v2/models/iris/infer",
        _v2(b'{"id":"\xff\xfe","inputs":[' + _ROW + b"]}"),
        frozenset({400}),
    ),
    Case(
        "binary header length past the body",
        "POST /v2/models/iris/infer",
        _v2(b'{"inputs":[]}', inference_header_content_length="999999"),
        frozenset({400}),
    ),
    Case(
        "wrong content type (text/xml)",
        "POST /v1/models/iris:predict",
        _post("/v1/models/iris:predict", b"<instances/>", content_type="text/xml"),
        frozenset({400, 415}),
    ),
    Case(
        "instances of mixed lengths",
        "POST /v1/models/iris:predict",
        _post("/v1/models/iris:predict", b'{"instances": [[1,2,3,4],[1,2]]}'),
        frozenset({400, 422}),
    ),
    Case(
        "wrong content type (application/xml)",
        "POST /invocations",
        _post("/invocations", b"<a/>", content_type="application/xml"),
        frozenset({415}),
    ),
    Case(
        "invalid UTF-8 CSV",
        "POST /invocations",
        _post("/invocations", b"1,2,\xff,4\n", content_type="text/csv"),
        frozenset({400}),
    ),
    Case(
        ".npy holding a pickled object array",
        "POST /invocations",
        lambda: request(
            "POST", "/invocations", body=_npy_with_pickle(), headers={"content-type": "application/x-npy"}
        ),
        frozenset({400}),
    ),
    Case(
        "Accept nothing we can write",
        "POST /invocations",
        _post("/invocations", b"[[1,2,3,4]]", content_type="application/json", accept="image/png"),
        frozenset({406}),
    ),
    Case(
        "instances not a list",
        "POST /predict (Vertex)",
        _post("/predict", b'{"instances": "nope"}', content_type="application/json"),
        frozenset({400, 422}),
    ),
    # Issue 13, items 13 and 14: shapes no array can take, data that does not match its datatype.
    Case(
        "shape whose element count overflows int64 ([2^40, 2^40, 0]), JSON",
        "POST /v2/models/iris/infer",
        _tensor("FP32", [2**40, 2**40, 0], []),
        frozenset({400}),
        says="exceed maximum size",
    ),
    Case(
        "65 dimensions, JSON",
        "POST /v2/models/iris/infer",
        _tensor("FP32", [1] * 65, [1]),
        frozenset({400}),
        says="the most a tensor may have is 64",
    ),
    Case(
        "BYTES shape overflowing int64, JSON",
        "POST /v2/models/iris/infer",
        _tensor("BYTES", [2**40, 2**40, 0], []),
        frozenset({400}),
        says="exceed maximum size",
    ),
    Case(
        "shape overflowing int64, binary tensor",
        "POST /v2/models/iris/infer",
        _binary("FP32", [2**40, 2**40, 0]),
        frozenset({400}),
        says="exceed maximum size",
    ),
    Case(
        "BYTES shape overflowing int64, binary tensor",
        "POST /v2/models/iris/infer",
        _binary("BYTES", [2**40, 2**40, 0]),
        frozenset({400}),
        says="exceed maximum size",
    ),
    Case(
        "INT32 data 1.7 (would be truncated to 1)",
        "POST /v2/models/iris/infer",
        _tensor("INT32", [1, 4], [1.7, 1, 1, 1]),
        frozenset({400}),
        says="INT32 takes JSON integers, got 1.7",
    ),
    Case(
        "FP32 data null (would be NaN)",
        "POST /v2/models/iris/infer",
        _tensor("FP32", [1, 4], [None, 1.0, 1.0, 1.0]),
        frozenset({400}),
        says="FP32 takes JSON numbers, got null",
    ),
    Case(
        'FP32 data "1" (would be parsed)',
        "POST /v2/models/iris/infer",
        _tensor("FP32", [1, 4], ["1", 1.0, 1.0, 1.0]),
        frozenset({400}),
        says="FP32 takes JSON numbers",
    ),
    Case(
        "FP16 data 70000 (would be inf)",
        "POST /v2/models/iris/infer",
        _tensor("FP16", [1, 4], [70000, 1.0, 1.0, 1.0]),
        frozenset({400}),
        says="70000 is out of range for FP16",
    ),
    Case(
        "FP32 data true (would be 1.0)",
        "POST /v2/models/iris/infer",
        _tensor("FP32", [1, 4], [True, True, True, True]),
        frozenset({400}),
        says="FP32 takes JSON numbers, got true",
    ),
    # Item 19: compressed bodies that are not whole.
    Case(
        "gzip body missing its trailer",
        "POST /v2/models/iris/infer",
        _gzip_body(cut=8),
        frozenset({400}),
        says="ends before its compressed data does",
    ),
    Case(
        "gzip body with trailing junk",
        "POST /v2/models/iris/infer",
        _gzip_body(tail=b"junkjunk"),
        frozenset({400}),
        says="follow the end of the gzip request body",
    ),
    # Item 15: .npy bodies whose header is not what the body holds.
    Case("empty .npy", "POST /invocations", _npy(b""), frozenset({400}), says="empty"),
    Case(
        ".npy header claiming 10^12 elements in a 128-byte body",
        "POST /invocations",
        _npy(_npy_bytes((3,), claim="(1000000000000,)")),
        frozenset({400}),
        says="bytes follow it",
    ),
    Case("corrupt .npz", "POST /invocations", _npy(_npz_cut()), frozenset({400}), says=".npz"),
    Case(
        "0-row .npy, Accept: text/csv",
        "POST /invocations",
        _npy(_npy_bytes((0, 4)), accept="text/csv"),
        frozenset({200, 400}),
    ),
]


def _kind(kind: str) -> Callable[[], bytes]:
    return _post("/score", json.dumps({"kind": kind}).encode(), content_type="application/json")


# Issue 13, item 16: an entry script (schema-decorated) that misbehaves, and input that trips its parsing.
SCRIPT_CASES = [
    Case("run() raises KeyboardInterrupt", "POST /score", _kind("keyboard-interrupt"), frozenset({500}),
         says="An unexpected error occurred in scoring script"),
    Case("run() raises BaseException", "POST /score", _kind("base-exception"), frozenset({500}),
         says="An unexpected error occurred in scoring script"),
    Case("AMLResponse with status 600", "POST /score", _kind("status-600"), frozenset({500}),
         says="HTTP statuses are 100 to 599"),
    Case("AMLResponse with a non-latin-1 header value", "POST /score", _kind("non-latin-1-header"),
         frozenset({500}), says="latin-1"),
    Case("AMLResponse with a header name holding a space", "POST /score", _kind("bad-header-name"),
         frozenset({500}), says="which HTTP does not allow"),
    Case(
        "2,000-deep JSON body to a schema script",
        "POST /score",
        _post("/score", b'{"kind": ' + b"[" * 2000 + b"]" * 2000 + b"}", content_type="application/json"),
        frozenset({400, 422}),
        says="nests too deeply",
    ),
    Case(
        "2,000-deep query value",
        "GET /score",
        lambda: request("GET", "/score?kind=" + "%5B" * 2000 + "%5D" * 2000),
        frozenset({400, 422}),
        says="nests too deeply",
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[ServerProcess]:
    args = ["--entry-script", str(SCRIPTS / "work.py"), "--max-body-bytes", str(MAX_BODY)]
    with ServerProcess(args) as server:
        yield server


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not protocols_present():
        pytest.skip("the V2/V1/SageMaker/Vertex protocol modules are not in this tree")
    path = iris_model(tmp_path_factory.mktemp("hostile") / "iris.joblib")
    with ServerProcess([str(path), "--max-body-bytes", str(MAX_BODY)]) as server:
        yield server


@pytest.fixture(scope="module")
def table() -> Iterator[list[dict[str, object]]]:
    rows: list[dict[str, object]] = []
    yield rows
    record("hostile", rows)


def _row(case: Case, answer: RawAnswer) -> dict[str, object]:
    return {
        "input": case.name,
        "route": case.route,
        "status": answer.status if answer.status is not None else "closed",
        "body": answer.excerpt() or answer.note,
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_a_clean_answer(
    case: Case, hostile_server: ServerProcess, table: list[dict[str, object]]
) -> None:
    """The hostile input gets an allowed status, a JSON error body where the server answers, no leak, and the worker lives on."""
    (worker,) = hostile_server.worker_pids()
    answer = exchange(hostile_server.port, case.data(), timeout=30)
    table.append(_row(case, answer))
    text = answer.body.decode("utf-8", "replace")
    assert answer.status in case.allowed, f"{case.name}: {answer}"
    assert not leaks(text), f"{case.name}: leaked {leaks(text)}"
    if case.json_error and answer.status is not None and answer.status >= 400:
        assert answer.headers.get("content-type", "").startswith("application/json"), answer
    with httpx.Client(timeout=10) as client:
        assert client.get(hostile_server.url + "/").status_code == 200
    assert hostile_server.worker_pids() == [worker], "the input crashed the worker"


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c.name + " " + c.route for c in MODEL_CASES])
def test_hostile_input_to_model_routes_gets_a_clean_answer(
    case: Case, model_server: ServerProcess, table: list[dict[str, object]]
) -> None:
    """The hostile input to a V2, V1, SageMaker or Vertex route gets an allowed status and a JSON error, leaks nothing, and the worker lives on."""
    (worker,) = model_server.worker_pids()
    answer = exchange(model_server.port, case.data(), timeout=60)
    table.append(_row(case, answer))
    text = answer.body.decode("utf-8", "replace")
    assert answer.status in case.allowed, f"{case.name}: {answer}"
    assert not leaks(text), f"{case.name}: leaked {leaks(text)}"
    if answer.status is not None and answer.status >= 400:
        assert answer.headers.get("content-type", "").startswith("application/json"), answer
    assert case.says in text, f"{case.name}: {answer}"
    with httpx.Client(timeout=10) as client:
        assert client.get(model_server.url + "/v2/health/ready").status_code == 200
    assert model_server.worker_pids() == [worker], "the input crashed the worker"


@pytest.fixture(scope="module")
def script_server() -> Iterator[ServerProcess]:
    with ServerProcess(["--entry-script", str(SCRIPTS / "hostile.py")], ready_path="/") as server:
        yield server


def _in_flight(url: str) -> int:
    text = httpx.get(url + "/metrics", timeout=10).text
    (line,) = [line for line in text.splitlines() if line.startswith("prebake_requests_in_flight ")]
    return int(line.split()[1])


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=[c.name for c in SCRIPT_CASES])
def test_a_misbehaving_entry_script_gets_a_json_answer(
    case: Case, script_server: ServerProcess, table: list[dict[str, object]]
) -> None:
    """Whatever run() raises or returns, and however deep its input nests, the client gets a JSON answer saying what went wrong, the in-flight gauge goes back to the scrape alone, and the worker lives on."""
    (worker,) = script_server.worker_pids()
    answer = exchange(script_server.port, case.data(), timeout=30)
    table.append(_row(case, answer))
    text = answer.body.decode("utf-8", "replace")
    assert answer.status in case.allowed, f"{case.name}: {answer}"
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    assert case.says in text and "message" in orjson_keys(answer.body), f"{case.name}: {answer}"
    assert not leaks(text), f"{case.name}: leaked {leaks(text)}"
    assert _in_flight(script_server.url) == 1, "a request is still counted in flight"  # the scrape itself
    assert httpx.post(script_server.url + "/score", json={"kind": "ok"}, timeout=10).json() == {"kind": "ok"}
    assert script_server.worker_pids() == [worker], "the input crashed the worker"


def test_a_deep_body_read_with_get_json_is_a_400(table: list[dict[str, object]]) -> None:
    """A 2,000-deep JSON body that a @rawhttp run() reads with request.get_json() is the client's 400 saying so, not a 500 (Python's json raised RecursionError, not ValueError)."""
    case = Case(
        "2,000-deep JSON body read by get_json() under @rawhttp",
        "POST /score",
        _post("/score", b"[" * 2000 + b"]" * 2000, content_type="application/json"),
        frozenset({400}),
        says="nests too deeply",
    )
    fixture = Path(__file__).parents[1] / "fixtures" / "scripts" / "rawhttp.py"
    with ServerProcess(["--entry-script", str(fixture)], ready_path="/") as server:
        answer = exchange(server.port, case.data(), timeout=30)
    table.append(_row(case, answer))
    assert answer.status in case.allowed and case.says in answer.body.decode(), answer


def orjson_keys(body: bytes) -> set[str]:
    doc = json.loads(body)
    return set(doc) if isinstance(doc, dict) else set()


def test_a_zero_row_npy_answers_an_empty_csv(tmp_path: Path) -> None:
    """A 0-row .npy to a model that answers 0 rows, with Accept: text/csv, gets 200 and an empty CSV (it was a 500: the CSV writer could not reshape zero rows)."""
    import io

    import joblib
    import numpy as np
    from sklearn.preprocessing import FunctionTransformer

    folder = tmp_path / "identity"
    folder.mkdir()
    joblib.dump(FunctionTransformer().fit(np.zeros((2, 4))), folder / "model.joblib")
    (folder / "model-settings.json").write_text('{"predict_method": "transform"}')
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((0, 4)))
    with ServerProcess([str(folder), "--allow-pickle"]) as server:
        headers = {"content-type": "application/x-npy", "accept": "text/csv"}
        answer = httpx.post(
            server.url + "/invocations", content=buffer.getvalue(), headers=headers, timeout=30
        )
        assert (answer.status_code, answer.content) == (200, b""), answer.text
        assert answer.headers["content-type"].startswith("text/csv")


def test_deep_parameters_sent_while_the_model_is_busy_are_served(model_server: ServerProcess) -> None:
    """Requests whose parameters nest 1,000 deep, sent while the model is busy (so the batcher compares them with the queue), are served, not answered 500 (repr of the parameters recursed past Python's limit)."""
    from concurrent.futures import ThreadPoolExecutor

    # Built as bytes: Python's own json cannot write 1,000 levels either.
    body = b'{"parameters":{"deep":' + b"[" * 1000 + b"1" + b"]" * 1000 + b'},"inputs":[' + _ROW + b"]}"
    big = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [200_000, 4], "datatype": "FP64", "data": [0.5] * 800_000}]}
    ).encode()
    url = model_server.url + "/v2/models/iris/infer"
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(17) as pool:
        busy = pool.submit(client.post, url, content=big)  # keeps the model busy for a while
        time.sleep(0.2)
        answers = list(pool.map(lambda _: client.post(url, content=body).status_code, range(16)))
        assert busy.result().status_code == 200
    assert answers == [200] * 16, answers


def test_a_gzip_body_inflating_past_the_body_limit_gets_413(model_server: ServerProcess) -> None:
    """A gzip V2 body under --max-body-bytes that inflates past it is refused with 413, as an uncompressed one would be."""
    rows = (MAX_BODY * 2) // 18
    inflated = (
        b'{"inputs":[{"name":"input-0","shape":[%d,4],"datatype":"FP64","data":[' % rows
        + b",".join([b"[5.1,3.5,1.4,0.2]"] * rows)
        + b"]}]}"
    )
    body = gzip.compress(inflated)
    assert len(body) < MAX_BODY < len(inflated)
    answer = exchange(model_server.port, _v2(body, content_encoding="gzip")(), timeout=60)
    assert answer.status == 413, answer


@pytest.mark.parametrize("body", [b"1,2\r3,4", b"1," + b"9" * 200_000], ids=["bare CR", "200 KB field"])
def test_unreadable_csv_is_a_client_error(body: bytes, model_server: ServerProcess) -> None:
    """A CSV body that trips Python's csv reader gets a 4xx JSON error on /invocations, not a 500."""
    answer = exchange(model_server.port, _post("/invocations", body, content_type="text/csv")(), timeout=30)
    assert answer.status in (400, 422), answer


def test_slowloris_connections_do_not_starve_other_clients(table: list[dict[str, object]]) -> None:
    """Hundreds of connections trickling their headers byte by byte do not stop other clients from being served."""
    slow_count = 300
    with ServerProcess(["--entry-script", str(SCRIPTS / "work.py")]) as server:
        slow: list[socket.socket] = []
        try:
            for _ in range(slow_count):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
                slow.append(sock)
            served: list[float] = []
            with httpx.Client(timeout=10) as client:
                for round_ in range(6):  # bounded: 6 rounds, ~1 s apart, each slow socket adds a byte
                    for sock in slow:
                        sock.sendall(b"X")
                    started = time.monotonic()
                    response = client.post(
                        server.url + "/score", content=b'{"echo": 1}', headers={"connection": "close"}
                    )
                    served.append(time.monotonic() - started)
                    assert response.status_code == 200, round_
                    time.sleep(1)
            still_open = sum(1 for sock in slow if _open(sock))
        finally:
            for sock in slow:
                sock.close()
        table.append(
            {
                "input": f"slowloris: {slow_count} connections sending a header byte a second",
                "route": "POST /score",
                "status": 200,
                "body": f"others served in {max(served) * 1000:.0f} ms at worst; {still_open} slow connections still open after 6 s",
            }
        )
        assert len(served) == 6


def _open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_a_connection_that_never_finishes_its_headers_is_closed() -> None:
    """Slowloris: a connection that sends part of a request head and then nothing, one that sends
    nothing, and a second request stalled on a kept-alive connection are all closed by the server
    within its header timeout; a client that sends whole requests slowly, one after the other, is not."""
    with ServerProcess(
        ["--entry-script", str(SCRIPTS / "work.py")], env={"PREBAKE_HEADER_TIMEOUT_S": "2"}
    ) as server:
        partial = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        kept = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            partial.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
            request = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            for _ in range(2):  # whole requests 1.5 s apart: each head is on time, the connection stays
                kept.sendall(request)
                assert read_answer(kept).status == 200, "a whole request was refused"
                time.sleep(1.5)
            kept.sendall(b"POST /score HTTP/1.1\r\n")  # then a head that never ends
            for sock in (partial, silent, kept):
                assert wait_for(lambda sock=sock: not _open(sock), 8), "the server still holds a connection"
        finally:
            for sock in (partial, silent, kept):
                sock.close()
        with httpx.Client(timeout=10) as client:
            assert client.post(server.url + "/score", content=b"{}").status_code == 200


def test_header_timeout_must_be_positive() -> None:
    """A header timeout that is not a positive number stops the start with a message saying so."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "prebake",
            "serve",
            "--entry-script",
            str(SCRIPTS / "work.py"),
            "--header-timeout",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "header timeout must be above 0" in result.stderr


def test_limit_concurrency_refuses_excess_with_503_and_recovers() -> None:
    """With --limit-concurrency, requests past the limit of those in progress get a JSON 503 at once,
    and service resumes when the running ones finish."""
    args = ["--entry-script", str(SCRIPTS / "work.py"), "--limit-concurrency", "20", "--threads", "20"]
    with ServerProcess(args) as server:
        answers: list[httpx.Response] = []
        lock = threading.Lock()
        together = threading.Barrier(25)

        def slow() -> None:
            together.wait()
            answer = httpx.post(server.url + "/score", json={"sleep": 3}, timeout=60)
            with lock:
                answers.append(answer)

        clients = [threading.Thread(target=slow) for _ in range(25)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        refused = [a for a in answers if a.status_code == 503]
        assert len(refused) >= 5 and {a.status_code for a in answers} <= {200, 503}
        assert "limit of 20" in refused[0].json()["message"]
        with httpx.Client(timeout=10) as client:
            assert client.post(server.url + "/score", content=b"{}").status_code == 200
