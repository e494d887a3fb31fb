"""KServe manifests: a ClusterServingRuntime (or namespaced ServingRuntime) per catalog image, and
InferenceServices that use them. Pure functions of catalog data.

KServe's storage initializer downloads ``storageUri`` into /mnt/models and starts the runtime's
``kserve-container``; prebake's runtime serves that directory as it lies (one file, or a folder) with no
code, on KServe's usual HTTP port 8080, answering KServe V1 and Open Inference Protocol V2 from one
process (and V2 gRPC on 8081 when asked). The arguments are the ones KServe's own runtimes take
(kserve-sklearnserver: ``--model_name={{.Name}} --model_dir=/mnt/models --http_port=8080``, and
``--grpc_port``), so the model's name on the wire is the InferenceService's name.

    >>> from prebake.images.catalog import load_catalog
    >>> runtime_name(load_catalog().get("sklearn-1.9.1-debian12-py311-cpu-inference"))
    'prebake-sklearn-1-9-1-cpu'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from prebake import frameworks
from prebake.deploy.kubernetes import UID
from prebake.deploy.spec import GRPC_PORT, MODEL_MOUNT, PRESTOP_SLEEP_S, DeployError, check_name
from prebake.images.catalog import Image

Manifest = dict[str, Any]
RuntimeKind = Literal["ClusterServingRuntime", "ServingRuntime"]
KSERVE_HTTP_PORT = 8080
API = "serving.kserve.io"
# catalog framework -> the model format name KServe's InferenceService uses (spec.predictor.model.modelFormat).
MODEL_FORMATS: dict[str, str] = {f.catalog: f.kserve for f in frameworks.FRAMEWORKS if f.catalog and f.kserve}


def runtime_name(image: Image) -> str:
    """A short Kubernetes name for the image's runtime: framework, version and device, and the OS and
    Python where the image is not on the catalog's default base (the same row on Debian 13 differs)."""
    version = image.version.replace(".", "-")
    name = (
        f"prebake-{image.framework}-{version}-{image.device}"
        if version
        else f"prebake-{image.framework}-{image.device}"
    )
    if not image.base.default:
        name += f"-{image.os}-py{image.python.replace('.', '')}"
    return name


def servable(images: Sequence[Image]) -> list[Image]:
    """The images KServe can pick by model format (the minimal image serves score.py files, not formats)."""
    return [image for image in images if image.framework in MODEL_FORMATS]


def auto_selected(images: Sequence[Image]) -> set[str]:
    """Names of the images KServe should pick when an InferenceService names only a format: per
    framework, the newest CPU image on the default base. GPU images, older versions and other bases are
    chosen by ``runtime:`` only."""
    best: dict[str, Image] = {}
    for image in servable(images):
        if image.gpu or not image.base.default:
            continue
        current = best.get(image.framework)
        if current is None or _version(image.version) > _version(current.version):
            best[image.framework] = image
    return {image.name for image in best.values()}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def serving_runtime(
    image: Image,
    *,
    auto_select: bool,
    kind: RuntimeKind = "ClusterServingRuntime",
    namespace: str | None = None,
    grpc: bool = False,
    cpu: str = "1",
    memory: str = "2Gi",
    graceful_timeout_s: int = 30,
    allow_pickle: bool = False,
) -> Manifest:
    """One runtime for one catalog image; ``allow_pickle`` lets it load joblib/pickle models (KServe's
    usual sklearn format), which prebake refuses unless allowed because pickles run code when loaded."""
    if image.framework not in MODEL_FORMATS:
        raise DeployError(f"{image.name} serves entry scripts only; KServe runtimes need a framework image")
    args = ["--model_name={{.Name}}", f"--model_dir={MODEL_MOUNT}", f"--http_port={KSERVE_HTTP_PORT}"]
    protocols = ["v1", "v2"]
    if grpc:
        args.append(f"--grpc_port={GRPC_PORT}")
        protocols.append("grpc-v2")
    args += ["--graceful-timeout", str(graceful_timeout_s), "--log-format", "json"]
    env = [{"name": "PREBAKE_ALLOW_PICKLE", "value": "1"}] if allow_pickle else []
    limits: dict[str, str] = {"cpu": cpu, "memory": memory}
    if image.gpu:
        limits["nvidia.com/gpu"] = "1"
    meta: Manifest = {"name": runtime_name(image)}
    if kind == "ServingRuntime" and namespace:
        meta["namespace"] = namespace
    meta["labels"] = {
        "app.kubernetes.io/managed-by": "prebake",
        "app.kubernetes.io/component": "serving-runtime",
    }
    meta["annotations"] = {"serving.kserve.io/server-type": "prebake", "prebake.dev/image": image.name}
    container: Manifest = {
        "name": "kserve-container",
        "image": image.reference,
        "args": args,
        **({"env": env} if env else {}),
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": KSERVE_HTTP_PORT},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "prebake-tmp", "mountPath": "/tmp"}],
    }
    major = _version(image.version)[:1]
    model_format: Manifest = {"name": MODEL_FORMATS[image.framework]}
    if major:
        model_format["version"] = str(major[0])
    model_format["autoSelect"] = auto_select
    if auto_select:
        model_format["priority"] = 1
    return {
        "apiVersion": f"{API}/v1alpha1",
        "kind": kind,
        "metadata": meta,
        "spec": {
            "annotations": {
                "prometheus.kserve.io/port": str(KSERVE_HTTP_PORT),
                "prometheus.kserve.io/path": "/metrics",
            },
            "supportedModelFormats": [model_format],
            "protocolVersions": protocols,
            "multiModel": False,
            "containers": [container],
            "volumes": [{"name": "prebake-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}}],
        },
    }


def serving_runtimes(
    images: Sequence[Image],
    *,
    kind: RuntimeKind = "ClusterServingRuntime",
    namespace: str | None = None,
    grpc: bool = False,
) -> list[Manifest]:
    """Runtimes for every image KServe can select by model format."""
    chosen = auto_selected(images)
    return [
        serving_runtime(image, auto_select=image.name in chosen, kind=kind, namespace=namespace, grpc=grpc)
        for image in servable(images)
    ]


def inference_service(
    name: str,
    image: Image,
    *,
    storage_uri: str,
    namespace: str | None = None,
    protocol: Literal["v1", "v2"] = "v2",
    min_replicas: int = 1,
    max_replicas: int = 4,
    target_cpu_percent: int = 70,
    graceful_timeout_s: int = 30,
) -> Manifest:
    """An InferenceService that serves ``storage_uri`` with ``image``'s runtime, scaled on CPU."""
    check_name(name, "InferenceService name")
    if image.framework not in MODEL_FORMATS:
        raise DeployError(
            f"{image.name} serves entry scripts only; pick a framework image for an InferenceService"
        )
    if min_replicas < 1:
        raise DeployError(f"replicas must be at least 1, got {min_replicas}")
    if max_replicas < min_replicas:
        raise DeployError(f"max replicas ({max_replicas}) must be at least replicas ({min_replicas})")
    if "://" not in storage_uri:
        raise DeployError(
            f"storage URI {storage_uri!r} must be a URI KServe reads (s3://, gs://, pvc://, https://)"
        )
    meta: Manifest = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/managed-by": "prebake"}
    return {
        "apiVersion": f"{API}/v1beta1",
        "kind": "InferenceService",
        "metadata": meta,
        "spec": {
            "predictor": {
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "scaleMetric": "cpu",
                "scaleTarget": target_cpu_percent,
                "terminationGracePeriodSeconds": PRESTOP_SLEEP_S + graceful_timeout_s + 5,
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "model": {
                    "modelFormat": {"name": MODEL_FORMATS[image.framework]},
                    "runtime": runtime_name(image),
                    "protocolVersion": protocol,
                    "storageUri": storage_uri,
                },
            }
        },
    }
