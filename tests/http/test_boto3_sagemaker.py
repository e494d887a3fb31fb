"""boto3's SageMaker Runtime client, unchanged but for ``endpoint_url``, against `prebake serve iris.joblib`:
invoke_endpoint with JSON, CSV and .npy bodies, and its modeled exceptions for bad input."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.testing import ServerProcess

boto3 = pytest.importorskip("boto3", reason="boto3 is a test-only extra")
pytest.importorskip("prebake.runtimes.sklearn", reason="the sklearn runtime is needed for the iris model")


@pytest.fixture(scope="module")
def runtime(iris: tuple[Path, Any, np.ndarray]) -> Iterator[Any]:
    with ServerProcess([str(iris[0])]) as process:
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=process.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        yield client


@pytest.mark.parametrize("endpoint", ["iris", "any-endpoint-name"])
def test_invoke_endpoint_json(runtime: Any, iris: tuple[Path, Any, np.ndarray], endpoint: str) -> None:
    """JSON rows in, the model's predictions out; an endpoint name that is no model's serves the default."""
    _, model, x = iris
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        Body=json.dumps(x.tolist()),
        ContentType="application/json",
        Accept="application/json",
    )
    assert answer["ContentType"].startswith("application/json")
    body = json.loads(answer["Body"].read())
    predictions = body["predictions"] if isinstance(body, dict) else body
    assert np.asarray(predictions).reshape(-1).tolist() == model.predict(x).tolist()


def test_invoke_endpoint_csv_and_npy(runtime: Any, iris: tuple[Path, Any, np.ndarray]) -> None:
    """CSV rows in with an .npy answer, and .npy in: both equal model.predict."""
    _, model, x = iris
    csv_body = "\n".join(",".join(str(v) for v in row) for row in x)
    answer = runtime.invoke_endpoint(
        EndpointName="iris", Body=csv_body, ContentType="text/csv", Accept="application/x-npy"
    )
    assert np.load(io.BytesIO(answer["Body"].read())).reshape(-1).tolist() == model.predict(x).tolist()
    npy = io.BytesIO()
    np.save(npy, x)
    answer = runtime.invoke_endpoint(
        EndpointName="iris", Body=npy.getvalue(), ContentType="application/x-npy", Accept="application/json"
    )
    body = json.loads(answer["Body"].read())
    predictions = body["predictions"] if isinstance(body, dict) else body
    assert np.asarray(predictions).reshape(-1).tolist() == model.predict(x).tolist()


def test_bad_input_raises_the_modeled_validation_error(runtime: Any) -> None:
    """Rows of the wrong width: boto3 raises ValidationError carrying prebake's message, status 400."""
    with pytest.raises(runtime.exceptions.ValidationError) as info:
        runtime.invoke_endpoint(EndpointName="iris", Body="[[1, 2]]", ContentType="application/json")
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "shape" in error["Error"]["Message"] and "4" in error["Error"]["Message"]
    answer = runtime.invoke_endpoint(
        EndpointName="iris", Body="[[1, 2, 3, 4]]", ContentType="application/json"
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
