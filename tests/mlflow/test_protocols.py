"""Every MLflow model, served by a real prebake process, answers as mlflow.pyfunc predicts in this process,
through MLflow's /invocations, Azure's no-code /score, V2 and KServe V1: the same numbers everywhere."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from prebake.testing import ServerProcess
from tests.mlflow.conftest import ALL, Saved

pytestmark = [
    pytest.mark.slow,
    # mlflow warns as it saves models (type hints, requirement inference): its own business, not ours.
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]


def numbers(value: Any) -> list[float]:
    """Every number in an answer, in one canonical order: records and per-row objects become columns,
    objects are read in key order, so a DataFrame's records and V2's per-column outputs compare equal."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        value = {k: [row[k] for row in value] for k in value[0]}
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in numbers(value[key])]
    if isinstance(value, list):
        return [n for item in value for n in numbers(item)]
    return [float(value)]


def same(actual: Any, expected: Any) -> None:
    got, want = numbers(actual), numbers(expected)
    assert len(got) == len(want), (actual, expected)
    assert all(math.isclose(g, w, rel_tol=1e-5, abs_tol=1e-6) for g, w in zip(got, want, strict=True)), (
        actual,
        expected,
    )


def v2_inputs(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, pd.DataFrame):
        return [
            {"name": c, "datatype": "FP64", "shape": [len(data)], "data": data[c].astype(float).tolist()}
            for c in data.columns
        ]
    array = np.asarray(data)
    datatype = "FP32" if array.dtype == np.float32 else "FP64"
    return [
        {"name": "input-0", "datatype": datatype, "shape": list(array.shape), "data": array.ravel().tolist()}
    ]


def azure_body(saved: Saved) -> dict[str, Any]:
    data = saved.data
    body: dict[str, Any] = {}
    if isinstance(data, pd.DataFrame):
        body["input_data"] = {
            "columns": list(data.columns),
            "index": list(range(len(data))),
            "data": data.to_numpy().tolist(),
        }
    else:
        body["input_data"] = np.asarray(data).tolist()
    if "params" in saved.body:
        body["params"] = saved.body["params"]
    return body


def v1_body(saved: Saved) -> dict[str, Any]:
    data = saved.data
    instances = (
        data.to_dict(orient="records") if isinstance(data, pd.DataFrame) else np.asarray(data).tolist()
    )
    body: dict[str, Any] = {"instances": instances}
    if "params" in saved.body:
        body["parameters"] = saved.body["params"]
    return body


@pytest.fixture(scope="module", params=ALL)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Saved, ServerProcess]]:
    saved: Saved = request.getfixturevalue(request.param)
    with ServerProcess([str(saved.path), "--model-name", "m"], start_timeout=90) as server:
        yield request.param, saved, server


def test_invocations_answer_as_mlflow_predicts(served: tuple[str, Saved, ServerProcess]) -> None:
    """MLflow's scoring protocol: {"predictions": ...} equal to pyfunc predict in this process."""
    _, saved, server = served
    response = httpx.post(server.url + "/invocations", json=saved.body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"predictions"}
    same(answer["predictions"], saved.expected)
    if isinstance(saved.expected, list) and saved.expected and isinstance(saved.expected[0], dict):
        assert isinstance(answer["predictions"][0], dict)  # a DataFrame comes back as records, as MLflow's


def test_sagemaker_path_is_the_same_protocol(served: tuple[str, Saved, ServerProcess]) -> None:
    """boto3's invoke_endpoint path (/endpoints/NAME/invocations) answers the same MLflow body alike."""
    _, saved, server = served
    response = httpx.post(server.url + "/endpoints/m/invocations", json=saved.body, timeout=30)
    assert response.status_code == 200, response.text
    same(response.json()["predictions"], saved.expected)


def test_azure_no_code_score(served: tuple[str, Saved, ServerProcess]) -> None:
    """Azure's no-code request (input_data, params) gets the bare predictions."""
    _, saved, server = served
    response = httpx.post(server.url + "/score", json=azure_body(saved), timeout=30)
    assert response.status_code == 200, response.text
    same(response.json(), saved.expected)


def test_v2_named_inputs(served: tuple[str, Saved, ServerProcess]) -> None:
    """V2 with a DataFrame's columns as named inputs (as MLServer's mlflow runtime takes them)."""
    _, saved, server = served
    body: dict[str, Any] = {"inputs": v2_inputs(saved.data)}
    if "params" in saved.body:
        body["parameters"] = saved.body["params"]
    response = httpx.post(server.url + "/v2/models/m/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    expected = saved.expected
    if isinstance(expected, dict) or (
        isinstance(expected, list) and expected and isinstance(expected[0], dict)
    ):
        same(outputs, expected)
    else:
        (only,) = outputs.values()
        same(only, expected)


def test_kserve_v1(served: tuple[str, Saved, ServerProcess]) -> None:
    """KServe V1 instances (rows as objects for a DataFrame, lists for tensors)."""
    _, saved, server = served
    response = httpx.post(server.url + "/v1/models/m:predict", json=v1_body(saved), timeout=30)
    assert response.status_code == 200, response.text
    same(response.json()["predictions"], saved.expected)


def test_v2_metadata_from_signature(served: tuple[str, Saved, ServerProcess]) -> None:
    """V2 metadata lists the signature's columns or tensors, with the platform mlflow."""
    name, saved, server = served
    meta = httpx.get(server.url + "/v2/models/m", timeout=10).json()
    assert meta["platform"] == "mlflow"
    if isinstance(saved.data, pd.DataFrame) and name != "pyfunc_model":
        assert [i["name"] for i in meta["inputs"]] == list(saved.data.columns)
        assert all(i["shape"] == [-1] for i in meta["inputs"])
    if name == "pyfunc_model":
        assert [i["name"] for i in meta["inputs"]] == ["x", "y"]
        assert [o["name"] for o in meta["outputs"]] == ["scaled"]
