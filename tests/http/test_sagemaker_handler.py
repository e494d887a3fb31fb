"""A SageMaker model directory (model.joblib plus code/inference.py) on a real `prebake serve`: /invocations
hands the raw body and content types to the script's input_fn/output_fn, unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from prebake.testing import ServerProcess

pytest.importorskip(
    "prebake.runtimes.sagemaker", reason="the SageMaker script runtime is not on this branch yet"
)

SCRIPT = """
import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type):
    if content_type != "application/vnd.rows+json":
        raise ValueError("unexpected content type " + content_type)
    return np.asarray(json.loads(body)["rows"], dtype=float)


def predict_fn(data, model):
    return model.predict(data)


def output_fn(prediction, accept):
    return json.dumps({"classes": prediction.tolist(), "accept": accept}), "application/vnd.classes+json"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, list[int]]]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    directory = tmp_path_factory.mktemp("sm") / "iris"
    (directory / "code").mkdir(parents=True)
    joblib.dump(model, directory / "model.joblib")
    (directory / "code" / "inference.py").write_text(SCRIPT)
    with ServerProcess([str(directory)], ready_path="/ping") as process:
        yield process, model.predict(x[::50]).tolist()


def test_handler_script_sees_raw_content_types(server: tuple[ServerProcess, list[int]]) -> None:
    """A custom Content-Type and Accept reach input_fn/output_fn; their answer and media type come back."""
    process, expected = server
    from sklearn.datasets import load_iris

    rows = load_iris(return_X_y=True)[0][::50].tolist()
    response = httpx.post(
        process.url + "/invocations",
        json={"rows": rows},
        headers={"content-type": "application/vnd.rows+json", "accept": "application/vnd.classes+json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.classes+json")
    assert response.json() == {"classes": expected, "accept": "application/vnd.classes+json"}
