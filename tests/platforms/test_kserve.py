"""KServe's ServingRuntime contract, with the real server process.

"Serving Runtimes" and "Model Storage" (kserve.github.io/website/docs/admin-guide/serving-runtime,
.../model-serving/storage/storage-containers): KServe starts a runtime's kserve-container with the
ServingRuntime's args after its template variables are filled ({{.Name}}: the InferenceService's name)
as its own Python runtimes take them (kserve/config/runtimes/kserve-sklearnserver.yaml:
`--model_name={{.Name}} --model_dir=/mnt/models --http_port=8080`, and `--grpc_port=8081`), after
the storage initializer copied storageUri into /mnt/models: a single object as one file there, a
prefix as the folder's contents. Requests follow the V1 (`/v1/models/NAME:predict`) and V2 protocols.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from prebake.deploy import kserve
from prebake.images.catalog import load_catalog

from .conftest import ANSWERS, ROWS, free_port, platform_server

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"


def runtime_args(name: str, port: int) -> list[str]:
    """The ServingRuntime's args as KServe passes them: templates filled; the HTTP port moved off 8080
    (this machine may have it taken), everything else as written."""
    container = kserve.serving_runtime(load_catalog().get(SKLEARN), auto_select=True)["spec"]["containers"][0]
    args = [arg.replace("{{.Name}}", name) for arg in container["args"]]
    assert f"--http_port={kserve.KSERVE_HTTP_PORT}" in args
    return [f"--http_port={port}" if arg.startswith("--http_port=") else arg for arg in args]


@pytest.mark.parametrize("layout", ["single file", "folder"])
def test_runtime_args_serve_mnt_models_as_the_storage_initializer_leaves_it(
    layout: str, tmp_path: Path, models: dict[str, Path]
) -> None:
    """The ServingRuntime's args (--model_name, --model_dir, --http_port) serve /mnt/models holding one file, or a folder's contents, as the InferenceService's name over V1 and V2."""
    mnt_models = tmp_path / "mnt" / "models"
    mnt_models.mkdir(parents=True)
    if layout == "single file":  # storageUri gs://bucket/iris/model.joblib
        shutil.copy(models["two"], mnt_models / "model.joblib")
    else:  # storageUri gs://bucket/iris/ holding the model and what else was beside it
        shutil.copy(models["two"], mnt_models / "iris.joblib")
        (mnt_models / "README.md").write_text("trained on 2026-12-01\n")
    port = free_port()
    args = [arg.replace("/mnt/models", str(mnt_models)) for arg in runtime_args("iris-isvc", port)]
    with platform_server(args, env={}, port=port, ready_path="/v2/health/ready") as server:
        v1 = httpx.post(f"{server.url}/v1/models/iris-isvc:predict", json={"instances": ROWS})
        ready = httpx.get(f"{server.url}/v1/models/iris-isvc")
    assert v1.json() == {"predictions": ANSWERS["two"]}
    assert ready.json()["ready"] is True


def test_grpc_port_argument_is_accepted() -> None:
    """With gRPC the runtime adds KServe's --grpc_port=8081, which `prebake serve` reads as its gRPC port."""
    from prebake.cli.serve import serve

    container = kserve.serving_runtime(load_catalog().get(SKLEARN), auto_select=True, grpc=True)
    args = container["spec"]["containers"][0]["args"]
    assert "--grpc_port=8081" in args
    context = serve.make_context("serve", ["--host", "0.0.0.0", *args, "--workers", "2"])
    assert context.params["grpc_port"] == 8081
    assert context.params["workers"] == 2
