"""KServe runtimes and InferenceServices: golden files, the Kubernetes parts validated by Kubernetes'
schemas, the KServe parts by the CRD fields (serving.kserve.io v1alpha1/v1beta1), and the selection rules."""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema
import pytest

from prebake.deploy import kserve
from prebake.deploy.render import dump_all
from prebake.deploy.spec import DeployError
from prebake.images.catalog import Catalog, expected_name, load_catalog, parse_catalog

from .conftest import assert_golden, catalog_name, validate_kubernetes

SKLEARN = catalog_name("sklearn")

# The fields of KServe's CRDs that prebake writes, as KServe v0.20 defines them (ServingRuntimeSpec,
# SupportedModelFormat, PredictorSpec, ModelSpec). Unknown fields are errors, as with strict field validation.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "required": ["name"],
    "additionalProperties": False,
}
RUNTIME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1alpha1"},
        "kind": {"enum": ["ClusterServingRuntime", "ServingRuntime"]},
        "metadata": _META,
        "spec": {
            "type": "object",
            "required": ["containers"],
            "additionalProperties": False,
            "properties": {
                "annotations": _STRING_MAP,
                "supportedModelFormats": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "autoSelect": {"type": "boolean"},
                            "priority": {"type": "integer", "minimum": 1},
                        },
                    },
                },
                "protocolVersions": {"type": "array", "items": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}},
                "multiModel": {"type": "boolean"},
                "containers": {"type": "array", "minItems": 1},
                "volumes": {"type": "array"},
            },
        },
    },
}
ISVC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": _META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["model"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
                        "scaleTarget": {"type": "integer"},
                        "model": {
                            "type": "object",
                            "required": ["modelFormat"],
                            "additionalProperties": False,
                            "properties": {
                                "modelFormat": {
                                    "type": "object",
                                    "required": ["name"],
                                    "additionalProperties": False,
                                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                                },
                                "runtime": {"type": "string"},
                                "protocolVersion": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]},
                                "storageUri": {"type": "string"},
                            },
                        },
                    },
                }
            },
        },
    },
}
# PredictorSpec inlines a PodSpec; these are the KServe-only fields to set aside before validating the rest as one.
_PREDICTOR_ONLY = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "model")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _as_pod(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": pod_spec}


def _image(framework: str, version: str, device: str) -> dict[str, Any]:
    name = expected_name(framework, version, "debian12", "3.11", device)
    return {"name": name, "framework": framework, "version": version, "device": device, "base": "b",
            "packages": [], "smoke": "entry-script", "description": "a fixed image for golden tests"}  # fmt: skip


# A small fixed catalog, so the golden files show rendering only and do not change with catalog.toml.
GOLDEN_CATALOG = parse_catalog(
    {
        "schema": 1, "registry": "ghcr.io/prebake", "tag": "1.0", "source": "https://example.org", "licenses": "MIT",
        "bases": {"b": {"registry": "docker.io/library/python:3.11-slim", "local": "localhost/b:1", "os": "debian12", "python": "3.11"}},
        "images": [
            _image("minimal", "", "cpu"),
            _image("sklearn", "1.9.1", "cpu"),
            _image("pytorch", "2.13.0", "cpu"),
            _image("pytorch", "2.12.1", "cpu"),
            _image("pytorch", "2.14.1", "cuda13"),
        ],
    }
)  # fmt: skip


def test_runtimes_match_golden_file() -> None:
    """Runtimes for a fixed catalog (CPU, GPU, two versions of one framework) render to the reviewed golden file."""
    assert_golden("kserve-runtimes.yaml", dump_all(kserve.serving_runtimes(GOLDEN_CATALOG.images)))


def test_inference_service_matches_golden_file() -> None:
    """The sample InferenceService renders to the reviewed golden file."""
    service = kserve.inference_service(
        "iris",
        GOLDEN_CATALOG.get("sklearn-1.9.1-debian12-py311-cpu-inference"),
        storage_uri="gs://kfserving-examples/models/sklearn/1.0/model",
        namespace="ml",
    )
    assert_golden("kserve-isvc-sklearn.yaml", dump_all([service]))


@pytest.mark.parametrize("kind", ["ClusterServingRuntime", "ServingRuntime"])
@pytest.mark.parametrize("grpc", [False, True])
def test_every_runtime_validates(catalog: Catalog, kind: kserve.RuntimeKind, grpc: bool) -> None:
    """Each runtime's KServe fields fit the CRD, and its containers and volumes pass Kubernetes' own schema."""
    for runtime in kserve.serving_runtimes(catalog.images, kind=kind, namespace="ml", grpc=grpc):
        jsonschema.validate(runtime, RUNTIME_SCHEMA)
        validate_kubernetes(
            _as_pod({"containers": runtime["spec"]["containers"], "volumes": runtime["spec"]["volumes"]})
        )


def test_every_inference_service_validates(catalog: Catalog) -> None:
    """Each framework's InferenceService fits the CRD; its inline pod fields pass Kubernetes' PodSpec schema."""
    for image in kserve.servable(catalog.images):
        service = kserve.inference_service("iris", image, storage_uri="s3://models/iris")
        jsonschema.validate(service, ISVC_SCHEMA)
        pod = {
            key: value for key, value in service["spec"]["predictor"].items() if key not in _PREDICTOR_ONLY
        }
        validate_kubernetes(
            _as_pod({**pod, "containers": [{"name": "kserve-container", "image": image.reference}]})
        )


def test_runtime_schema_rejects_unknown_fields(catalog: Catalog) -> None:
    """The KServe schema check is real: a misspelt field fails it."""
    runtime = kserve.serving_runtimes(catalog.images)[0]
    runtime["spec"]["supportedModelFormat"] = runtime["spec"].pop("supportedModelFormats")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(runtime, RUNTIME_SCHEMA)


def test_runtimes_cover_every_framework_image_with_v1_and_v2(catalog: Catalog) -> None:
    """Every framework image gets a runtime with its model format and protocols v1 and v2; minimal gets none."""
    runtimes = kserve.serving_runtimes(catalog.images)
    framework_images = [image for image in catalog.images if image.framework != "minimal"]
    assert len(runtimes) == len(framework_images)
    for runtime, image in zip(runtimes, framework_images, strict=True):
        assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]
        assert runtime["spec"]["supportedModelFormats"][0]["name"] == kserve.MODEL_FORMATS[image.framework]
        assert runtime["spec"]["containers"][0]["image"] == image.reference
        assert runtime["metadata"]["name"] == kserve.runtime_name(image)


def test_one_auto_selected_runtime_per_format(catalog: Catalog) -> None:
    """KServe's auto-selection is unambiguous: at most one runtime per format, always a CPU image."""
    runtimes = kserve.serving_runtimes(catalog.images)
    selected = [r for r in runtimes if r["spec"]["supportedModelFormats"][0]["autoSelect"]]
    formats = Counter(r["spec"]["supportedModelFormats"][0]["name"] for r in selected)
    assert formats and max(formats.values()) == 1
    assert set(formats) == {kserve.MODEL_FORMATS[i.framework] for i in kserve.servable(catalog.images)}
    assert all(r["metadata"]["name"].endswith("-cpu") for r in selected)
    assert kserve.auto_selected(GOLDEN_CATALOG.images) == {
        "sklearn-1.9.1-debian12-py311-cpu-inference",
        "pytorch-2.13.0-debian12-py311-cpu-inference",
    }


def test_runtime_serves_mnt_models_on_kserve_ports(catalog: Catalog) -> None:
    """The runtime serves KServe's /mnt/models on 8080 with KServe's argument names, names the model after the InferenceService, asks a GPU on GPU images."""
    cpu = kserve.serving_runtime(catalog.get(SKLEARN), auto_select=True)["spec"]["containers"][0]
    # The arguments KServe gives its own runtimes (kserve/config/runtimes/kserve-sklearnserver.yaml).
    assert cpu["args"][:3] == ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"]
    assert cpu["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    gpu_image = next(
        image for image in catalog.images if image.gpu and image.framework in kserve.MODEL_FORMATS
    )
    gpu = kserve.serving_runtime(gpu_image, auto_select=False)["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "Iris"}, "not a valid Kubernetes name"),
        ({"min_replicas": 0}, "at least 1"),
        ({"max_replicas": 0}, "max replicas"),
        ({"storage_uri": "/local/path"}, "storage URI"),
    ],
)
def test_inference_service_rejects_bad_input(catalog: Catalog, options: dict[str, Any], message: str) -> None:
    """Bad names, replica counts and storage URIs are refused with a message."""
    arguments: dict[str, Any] = {"name": "iris", "storage_uri": "gs://b/m", **options}
    with pytest.raises(DeployError, match=message):
        kserve.inference_service(image=catalog.get(SKLEARN), **arguments)


def test_minimal_image_has_no_runtime(catalog: Catalog) -> None:
    """The minimal image (score.py only) is refused as a KServe runtime, with the reason."""
    with pytest.raises(DeployError, match="entry scripts only"):
        kserve.serving_runtime(catalog.get(catalog_name("minimal")), auto_select=False)


@pytest.mark.parametrize("grpc", [False, True])
def test_runtime_arguments_are_flags_prebake_serve_accepts(catalog: Catalog, grpc: bool) -> None:
    """The runtime's arguments, after the image's `prebake serve` entrypoint, parse with the real serve command."""
    from prebake.cli.serve import serve

    runtime = kserve.serving_runtime(catalog.get(SKLEARN), auto_select=True, grpc=grpc)
    context = serve.make_context("serve", ["--host", "0.0.0.0", *runtime["spec"]["containers"][0]["args"]])
    assert context.params["port"] == 8080
    assert context.params["grpc_port"] == (8081 if grpc else None)
    assert context.params["model_dir"] == "/mnt/models"
    assert context.params["model_name"] == "{{.Name}}"
