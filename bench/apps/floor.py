"""The floor: a bare Starlette app on uvicorn (uvloop, httptools), one process, predicting on the event loop.

Nothing between the socket and ``model.predict`` but Starlette's routing and orjson, so no real server can
be expected to beat it; the other servers are compared to it as a ratio. It answers the same bodies as
the servers under test:

- ``POST /score``: the Azure entry-script body ``{"data": [[...], ...]}`` -> a JSON list of predictions.
- ``POST /v2/models/{name}/infer``: an Open Inference Protocol V2 request with one FP64/FP32 input
  -> a V2 response with one output; one predict call per request (the unbatched floor).
- ``GET /health``: 200.

Run: ``python bench/apps/floor.py --model .bench/models/iris/model.joblib --port 8000``
"""

from __future__ import annotations

import argparse

import joblib
import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(model_file: str) -> Starlette:
    model = joblib.load(model_file)

    async def score(request: Request) -> Response:
        data = np.asarray(orjson.loads(await request.body())["data"], dtype=np.float64)
        return Response(orjson.dumps(model.predict(data).tolist()), media_type="application/json")

    async def infer(request: Request) -> Response:
        body = orjson.loads(await request.body())
        tensor = body["inputs"][0]
        data = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        result = model.predict(data)
        out = {
            "model_name": request.path_params["name"],
            "id": body.get("id", ""),
            "outputs": [
                {"name": "predict", "shape": list(result.shape), "datatype": "INT64", "data": result.tolist()}
            ],
        }
        return Response(orjson.dumps(out), media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(
        routes=[
            Route("/score", score, methods=["POST"]),
            Route("/v2/models/{name}/infer", infer, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(
        build(args.model),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
