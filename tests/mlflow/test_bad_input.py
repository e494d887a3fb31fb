"""Bad MLflow models fail alone with a reason naming the file and what to do; bad requests get the status
codes `mlflow models serve` gives them, worded as MLflow words them; SageMaker's shapes keep working."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prebake.testing import ServerProcess, free_port
from tests.mlflow.conftest import Saved

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = [5.1, 3.5, 1.4, 0.2]

#: name -> (content type, body): requests both servers must refuse (or take) alike.
REQUESTS: dict[str, tuple[str, Any]] = {
    "good": ("application/json", {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}),
    "missing column": ("application/json", {"dataframe_split": {"columns": COLUMNS[:3], "data": [ROW[:3]]}}),
    "text in a double column": (
        "application/json",
        {"dataframe_split": {"columns": COLUMNS, "data": [["a", *ROW[1:]]]}},
    ),
    "no format key": ("application/json", {"rows": [ROW]}),
    "two format keys": ("application/json", {"inputs": [ROW], "instances": [ROW]}),
    "a list body": ("application/json", [ROW]),
    "unnamed tensor for named columns": ("application/json", {"inputs": [ROW]}),
    "split frame without columns": ("application/json", {"dataframe_split": {"data": [ROW]}}),
    "not JSON": ("application/json", b"{not json"),
    "records": ("application/json", {"dataframe_records": [dict(zip(COLUMNS, ROW, strict=True))]}),
    "extra column": (
        "application/json",
        {"dataframe_split": {"columns": [*COLUMNS, "z"], "data": [[*ROW, 1]]}},
    ),
    "csv": ("text/csv", (",".join(COLUMNS) + "\n" + ",".join(map(str, ROW)) + "\n").encode()),
    "plain text": ("text/plain", b"hello"),
}


def _send(url: str, content_type: str, body: Any) -> httpx.Response:
    import json

    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        url + "/invocations", content=content, headers={"content-type": content_type}, timeout=30
    )


@pytest.fixture(scope="module")
def mlflow_server(sklearn_model: Saved) -> Iterator[str]:
    """`mlflow models serve --env-manager local` itself, on the same model."""
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # mlflow runs `uvicorn` from PATH: the one beside this Python.
    path = f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true", "PATH": path}
    process = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", str(sklearn_model.path), "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {process.returncode}")
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("mlflow models serve did not become ready in 90 s")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            process.wait(30)


@pytest.fixture(scope="module")
def prebake_server(sklearn_model: Saved) -> Iterator[str]:
    with ServerProcess([str(sklearn_model.path)], start_timeout=60) as server:
        yield server.url


@pytest.mark.parametrize("case", list(REQUESTS))
def test_same_status_as_mlflow_models_serve(case: str, mlflow_server: str, prebake_server: str) -> None:
    """Each request gets the status MLflow's own server gives it (and the same predictions where 200)."""
    content_type, body = REQUESTS[case]
    theirs, ours = _send(mlflow_server, content_type, body), _send(prebake_server, content_type, body)
    assert ours.status_code == theirs.status_code, (case, ours.text, theirs.text)
    if theirs.status_code == 200:
        assert ours.json() == theirs.json()
    else:
        # MLflow's error body, or SageMaker's where the body is SageMaker's (a bare list, another media type).
        assert "message" in ours.json()


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("missing column", "Model is missing inputs ['petal width (cm)']"),
        ("text in a double column", "Failed to convert column sepal length (cm) to type 'float64'"),
        ("no format key", "The input must be a JSON dictionary with exactly one of the input fields"),
        ("unnamed tensor for named columns", "Model is missing inputs ['sepal length (cm)'"),
    ],
)
def test_messages_worded_as_mlflow(case: str, phrase: str, mlflow_server: str, prebake_server: str) -> None:
    """The message names the column and what was expected, in MLflow's words."""
    content_type, body = REQUESTS[case]
    for url in (mlflow_server, prebake_server):
        response = _send(url, content_type, body)
        assert phrase in response.json()["message"], (url, response.text)


def test_version_and_probes(mlflow_server: str, prebake_server: str) -> None:
    """/ping, /health and /version answer as MLflow's do."""
    for path in ("/ping", "/health"):
        theirs, ours = httpx.get(mlflow_server + path), httpx.get(prebake_server + path)
        assert (ours.status_code, ours.text) == (theirs.status_code, theirs.text)
    import mlflow

    assert httpx.get(prebake_server + "/version").text == mlflow.__version__  # the version that logged it


def _broken_models(
    root: Path, sklearn_model: Saved, pyfunc_model: Saved, sklearn_pickle_model: Saved
) -> Path:
    repo = root / "repo"
    repo.mkdir()
    shutil.copytree(sklearn_model.path, repo / "good")
    unknown = repo / "unknown_flavor"
    unknown.mkdir()
    (unknown / "MLmodel").write_text("flavors:\n  catboost:\n    data: model.cb\n")
    missing = repo / "missing_artifact"
    shutil.copytree(sklearn_model.path, missing)
    (missing / "model.skops").unlink()
    broken_code = repo / "broken_code"
    shutil.copytree(pyfunc_model.path, broken_code)
    (broken_code / "code" / "scaling.py").unlink()
    return repo


def test_bad_models_fail_alone(
    tmp_path: Path, sklearn_model: Saved, pyfunc_model: Saved, sklearn_pickle_model: Saved
) -> None:
    """An unknown flavor, a missing artifact, a code_paths import failure: each model FAILED with a reason
    naming the file and what to do; the good model serves (pickles allowed, so the pyfunc gets to import)."""
    repo = _broken_models(tmp_path, sklearn_model, pyfunc_model, sklearn_pickle_model)
    with ServerProcess(["--model-repository", str(repo), "--allow-pickle"], start_timeout=90) as server:
        index = {m["name"]: m for m in httpx.post(server.url + "/v2/repository/index").json()}
        assert index["good"]["state"] == "READY"
        reasons = {name: index[name]["reason"] for name in index if name != "good"}
        assert all(index[name]["state"] == "FAILED" for name in reasons), index
        assert "catboost" in reasons["unknown_flavor"] and "MLmodel" in reasons["unknown_flavor"]
        assert "python_function" in reasons["unknown_flavor"]
        assert "model.skops" in reasons["missing_artifact"] and "missing" in reasons["missing_artifact"]
        assert "scaling" in reasons["broken_code"] and "code_paths" in reasons["broken_code"]
        body = {
            "inputs": [
                {"name": c, "datatype": "FP64", "shape": [1], "data": [v]}
                for c, v in zip(COLUMNS, ROW, strict=True)
            ]
        }
        assert httpx.post(server.url + "/v2/models/good/infer", json=body).status_code == 200


def test_pickled_flavor_follows_the_pickle_policy(
    tmp_path: Path, sklearn_model: Saved, sklearn_pickle_model: Saved
) -> None:
    """A cloudpickle sklearn model is refused without --allow-pickle, saying so; a skops one beside it serves."""
    repo = tmp_path / "repo"
    shutil.copytree(sklearn_model.path, repo / "good")
    shutil.copytree(sklearn_pickle_model.path, repo / "pickled")
    server = ServerProcess(["--model-repository", str(repo)], start_timeout=90)
    server.env = {k: v for k, v in os.environ.items() if k != "PREBAKE_ALLOW_PICKLE"}  # the default: refuse
    with server:
        index = {m["name"]: m for m in httpx.post(server.url + "/v2/repository/index").json()}
        assert index["good"]["state"] == "READY"
        assert index["pickled"]["state"] == "FAILED"
        assert "--allow-pickle" in index["pickled"]["reason"] and "pickle" in index["pickled"]["reason"]


def test_sagemaker_shapes_still_work(tmp_path: Path) -> None:
    """For a model that is not an MLflow model, /invocations stays SageMaker's (bare rows, headerless CSV),
    and a dataframe_split body is taken too."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), tmp_path / "iris.joblib")
    with ServerProcess([str(tmp_path / "iris.joblib")]) as server:
        rows = _send(server.url, "application/json", [ROW])
        assert rows.status_code == 200 and rows.json() == [0]
        text = _send(server.url, "text/csv", b"5.1,3.5,1.4,0.2\n")
        assert text.status_code == 200 and text.json() == [0]
        wrapped = _send(server.url, "application/json", {"instances": [ROW]})
        assert wrapped.json() == {"predictions": [0]}
        split = _send(server.url, "application/json", {"dataframe_split": {"data": [ROW]}})
        assert split.status_code == 200 and split.json() == {"predictions": [0]}
        assert httpx.get(server.url + "/ping").text == ""  # SageMaker's probe, not MLflow's


def test_sagemaker_npy_for_an_mlflow_model(xgboost_model: Saved) -> None:
    """An .npy body to an MLflow model is SageMaker's, and answers the same numbers."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(xgboost_model.data))
    with ServerProcess([str(xgboost_model.path)]) as server:
        answer = _send(server.url, "application/x-npy", buffer.getvalue())
        assert answer.status_code == 200, answer.text
        assert answer.json() == xgboost_model.expected


def test_swagger_and_params(pyfunc_model: Saved) -> None:
    """Azure's swagger documents input_data and params (with its default); an omitted param takes the
    default, a param of the wrong type is a 400 naming it, as MLflow refuses it."""
    with ServerProcess([str(pyfunc_model.path)], start_timeout=60) as server:
        doc = httpx.get(server.url + "/swagger.json").json()
        service_input = doc["paths"]["/score"]["post"]["parameters"][0]["schema"]
        assert service_input["properties"]["params"]["properties"]["scale"]["default"] == 2.0
        assert httpx.get(server.url + "/swagger.json?version=3").json()["openapi"].startswith("3.")
        body = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}
        assert _send(server.url, "application/json", body).json() == {"predictions": [{"scaled": 2.5}]}
        bad = _send(server.url, "application/json", {**body, "params": {"scale": "big"}})
        assert bad.status_code == 400 and "scale" in bad.json()["message"]
        optional = {"dataframe_split": {"columns": ["x", "y"], "data": [[1.0, 10.0]]}}
        assert _send(server.url, "application/json", optional).json() == {"predictions": [{"scaled": 12.5}]}
