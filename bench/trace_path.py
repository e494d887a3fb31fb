"""Which prebake modules a V2 infer passes through, in the order first entered (issue 12's "at most 6").

    .venv/bin/python bench/trace_path.py

Builds the server in-process as a worker does (one iris scikit-learn model, batching off), sends one
`POST /v2/models/iris/infer` through the ASGI transport, and prints every prebake module that runs a
function during that request, with how many times a call crossed into it from another module (a
coroutine resumed after an await counts again). The scoring thread was started before tracing, so the
runtime's own module does not appear; `--calls` prints each crossing.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import joblib
import orjson
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from prebake.config import load_config  # noqa: E402
from prebake.server.metrics import Metrics  # noqa: E402
from prebake.server.pipeline import build_pipeline  # noqa: E402
from prebake.server.worker import build_repository  # noqa: E402


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), folder / "iris.joblib")
    config = load_config(models=(str(folder / "iris.joblib"),), allow_pickle=True, access_log=False, env={})
    metrics = Metrics(None)
    repository, routes = build_repository(config, metrics)
    from prebake.server.http_transport import HttpTransport

    pipeline = build_pipeline(
        metrics=metrics,
        access_log=None,
        known_model=repository.has,
        api_keys=(),
        max_header_bytes=65536,
        max_body_bytes=1 << 22,
        limit_concurrency=None,
        timeout_s=None,
    )
    app = HttpTransport(routes, pipeline, max_body_bytes=1 << 22)
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    )

    async def call() -> bytes:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v2/models/iris/infer",
            "raw_path": b"/v2/models/iris/infer",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
        sent: list[dict] = []
        chunks = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def receive() -> dict:
            return next(chunks, {"type": "http.disconnect"})

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")

    loop = asyncio.new_event_loop()
    repository.load_all()
    repository.executor.start(loop)
    print(loop.run_until_complete(call())[:120])  # warm: imports and first-call caches
    order: list[str] = []
    entries: Counter[str] = Counter()
    calls: list[str] = []

    def profile(frame, event, arg):  # noqa: ANN001, ANN202
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if module.startswith("prebake") and module != caller:
            if module not in entries:
                order.append(module)
            entries[module] += 1
            calls.append(
                f"{caller.removeprefix('prebake.')} -> {module.removeprefix('prebake.')}.{frame.f_code.co_name}"
            )

    sys.setprofile(profile)
    threading.setprofile(profile)
    loop.run_until_complete(call())
    sys.setprofile(None)
    threading.setprofile(None)
    if "--calls" in sys.argv:
        print("\n".join(calls))
    for module in order:
        print(f"{entries[module]:3d}  {module}")
    print(f"{len(order)} prebake modules on the request path")


if __name__ == "__main__":
    main()
