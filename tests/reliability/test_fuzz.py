"""Schemathesis against the OpenAPI description of every HTTP route, on real server processes.

Each operation gets schema-valid cases (positive) and schema-breaking ones (negative: wrong types,
missing fields, bad headers, wrong content types). Whatever the input, the server must answer without a
5xx it does not document, every error must be a JSON object in the route's own error shape, and no
body may show a traceback or a path. CI runs a few dozen cases per operation with a fixed seed; the slow
run (PREBAKE_SLOW=1) runs hundreds with fresh randomness.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import orjson
import pytest
import requests

from prebake.testing import ServerProcess

from .helpers import SCRIPTS, SLOW, iris_model, leaks, protocols_present, record

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402 - after the importorskip above

EXAMPLES = int(os.environ.get("PREBAKE_FUZZ_EXAMPLES") or (300 if SLOW else 25))


def build_document(args: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document of a server started with these flags, built the way the worker builds routes."""
    from prebake.config import load_config
    from prebake.server import openapi
    from prebake.server.metrics import Metrics
    from prebake.server.worker import build_repository

    backend, routes = build_repository(load_config(**args, env={}), Metrics(None))
    names = backend.model_names()
    return openapi.document([*routes, openapi.route(routes, models=names)], models=names)


def fetch_document(server: ServerProcess, flags: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(timeout=10) as http:
        served = http.get(server.url + "/openapi.json")
    if served.status_code == 200:
        doc: dict[str, Any] = served.json()
        return doc
    return build_document(flags)


def _error_keys(operation: Any) -> set[str]:
    content = operation.definition.raw["responses"]["default"]["content"]["application/json"]["schema"]
    return set(content["required"])


def _content_type(response: Any) -> str:
    for name, values in response.headers.items():
        if name.lower() == "content-type":
            return str(values[0] if isinstance(values, list) else values)
    return ""


def check(operation: Any, case: Any, response: Any) -> None:
    """The fuzz oracle: no undocumented 5xx, errors are the route's JSON shape, nothing leaks."""
    raw = operation.definition.raw
    status = response.status_code
    where = f"{case.method} {case.formatted_path} -> {status}: {response.text[:300]!r}"
    if status >= 500:
        # The entry script here never raises, so a 500 is the server's own fault even on /score.
        assert status != 500 and str(status) in raw["responses"], f"server error: {where}"
    assert not leaks(response.text), f"leak {leaks(response.text)}: {where}"
    if status >= 400 and case.method.upper() != "HEAD":
        assert _content_type(response).startswith("application/json"), where
        body = orjson.loads(response.content)
        assert isinstance(body, dict), where
        expected = _error_keys(operation)
        # An unknown route or method answers in the error shape of the path it was aimed at, or V2's.
        assert expected <= set(body) or {"error"} <= set(body), where


def fuzz(doc: dict[str, Any], base_url: str) -> tuple[Counter[str], list[str]]:
    """Run every operation of ``doc`` in both generation modes.

    Returns the cases sent per operation and the failures (one per operation and mode at most: Hypothesis
    stops an operation at its first failure and shrinks it), so one bug does not hide the others.
    """
    failures: list[str] = []
    schema = schemathesis.openapi.from_dict(doc)
    sent: Counter[str] = Counter()
    session = requests.Session()
    settings = hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not SLOW,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if operation.definition.raw.get("x-prebake-changes-state"):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(operation, mode, label, base_url, session, settings, sent)
            except AssertionError as error:
                failures.append(f"{label} ({mode.value}): {str(error).splitlines()[0]}")
    session.close()
    return sent, failures


def _fuzz_operation(
    operation: Any,
    mode: Any,
    label: str,
    base_url: str,
    session: requests.Session,
    settings: hypothesis.settings,
    sent: Counter[str],
) -> None:
    @settings
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, timeout=30)
        except (UnicodeError, ValueError, requests.exceptions.InvalidHeader):
            sent["unsendable"] += 1  # the client library refuses to send it (bad header bytes)
            return
        sent[label] += 1
        check(operation, case, response)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing in this operation can be made invalid (no parameters, no body): positive cases cover it.
        assert mode == GenerationMode.NEGATIVE


@pytest.fixture(scope="module")
def azure_server() -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    flags = {"entry_script": str(SCRIPTS / "robust.py")}
    with ServerProcess(["--entry-script", flags["entry_script"], "--max-body-bytes", "1000000"]) as server:
        yield server, flags


def test_fuzz_azure_routes(azure_server: tuple[ServerProcess, dict[str, Any]]) -> None:
    """Every route of an entry-script server survives schema-valid and schema-breaking input without a 5xx or a leak."""
    server, flags = azure_server
    sent, failures = fuzz(fetch_document(server, flags), server.url)
    record("fuzz-azure", {"cases": sum(sent.values()), "failures": failures, "per_operation": dict(sent)})
    print(f"fuzz azure: {sum(sent.values())} cases: {dict(sent)}")
    assert failures == []
    assert sent["POST /score"] > 0
    assert server.process is not None and server.process.poll() is None
    assert httpx.get(server.url + "/", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    """A no-code server for an iris classifier: V2, V1, SageMaker and Vertex routes in one process."""
    if not protocols_present():
        pytest.skip("the V2/V1/SageMaker/Vertex protocol modules are not in this tree")
    path = iris_model(tmp_path_factory.mktemp("fuzz") / "iris.joblib")
    with ServerProcess([str(path), "--max-body-bytes", "1000000"]) as server:
        yield server, {"models": (str(path),)}


def test_fuzz_model_routes(model_server: tuple[ServerProcess, dict[str, Any]]) -> None:
    """Every V2, V1, SageMaker and Vertex route of a no-code server survives valid and invalid input without a 5xx or a leak."""
    server, flags = model_server
    sent, failures = fuzz(fetch_document(server, flags), server.url)
    record("fuzz-models", {"cases": sum(sent.values()), "failures": failures, "per_operation": dict(sent)})
    print(f"fuzz models: {sum(sent.values())} cases: {dict(sent)}")
    assert failures == []
    assert sent["POST /v2/models/{name}/infer"] > 0 and sent["POST /invocations"] > 0
    assert server.process is not None and server.process.poll() is None
    assert httpx.get(server.url + "/v2/health/ready", timeout=10).status_code == 200
