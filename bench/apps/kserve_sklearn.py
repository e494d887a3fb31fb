"""KServe 0.21's model server around a joblib scikit-learn model, for the protocol benchmark (issue #4).

KServe serves scikit-learn with its sklearn server (python/sklearnserver in the KServe repository), which
is not published on PyPI. This is the same thin ``kserve.Model``: load the joblib file, turn the request
into rows with KServe's own ``get_predict_input``, predict, answer with ``get_predict_response``. Everything
the benchmark measures (HTTP, V1 and V2 decoding, encoding) is KServe's ``ModelServer``. KServe's defaults
are kept: gRPC off here only because the benchmark speaks REST.

    python bench/apps/kserve_sklearn.py --model_name iris --model_file iris.joblib --http_port 8080
"""

from __future__ import annotations

import argparse
from typing import Any

import joblib
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.model: Any = None

    def load(self) -> bool:
        self.model = joblib.load(self.path)
        self.ready = True
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        rows = get_predict_input(payload)
        return get_predict_response(payload, self.model.predict(rows), self.name)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_file", required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_file)
    model.load()
    ModelServer(http_port=args.http_port, workers=args.workers, enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
