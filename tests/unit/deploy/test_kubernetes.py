"""Kubernetes manifests: golden files, strict schema validation, and the hardening the issue asks for."""

from __future__ import annotations

from typing import Any

import pytest

from prebake.deploy.kubernetes import manifests
from prebake.deploy.render import dump_all
from prebake.deploy.spec import DeploySpec, make_spec

from .conftest import assert_golden, validate_kubernetes

IMAGE = "ghcr.io/prebake/sklearn-1.9.1-debian12-py311-cpu-inference:latest"
SCRIPT = 'import os\n\n\ndef init():\n    pass\n\n\ndef run(raw_data):\n    return {"ok": True}\n'

SPECS: dict[str, DeploySpec] = {
    "k8s-entry-script-hostpath.yaml": make_spec(
        "iris", image=IMAGE, entry_script=SCRIPT, source="hostpath:/srv/models/iris", replicas=2
    ),
    "k8s-no-code-pvc.yaml": make_spec("iris", image=IMAGE, model="model.joblib", namespace="ml", replicas=3),
    "k8s-no-code-uri-grpc.yaml": make_spec(
        "iris",
        image=IMAGE,
        model="model.joblib",
        source="uri:s3://models/iris/1",
        grpc=True,
        cpu="2",
        memory="4Gi",
    ),
    "k8s-baked-image.yaml": make_spec(
        "iris",
        image="registry.example/iris:1",
        model="/var/prebake/model/iris.joblib",
        source="image",
        replicas=1,
    ),
    "k8s-gpu.yaml": make_spec(
        "resnet",
        image="ghcr.io/prebake/pytorch-2.14.1-debian12-py311-cuda13-gpu-inference:latest",
        model="model.pt",
        gpus=1,
        cpu="4",
        memory="16Gi",
    ),
}


def _by_kind(spec: DeploySpec) -> dict[str, dict[str, Any]]:
    return {manifest["kind"]: manifest for manifest in manifests(spec)}


@pytest.mark.parametrize("golden", sorted(SPECS))
def test_manifests_match_golden_files(golden: str) -> None:
    """Rendering is a pure function of the spec: the YAML equals the reviewed golden file byte for byte."""
    assert_golden(golden, dump_all(manifests(SPECS[golden])))


@pytest.mark.parametrize("golden", sorted(SPECS))
def test_every_manifest_passes_kubernetes_schema_validation(golden: str) -> None:
    """Every object validates strictly against Kubernetes 1.30 and 1.37 OpenAPI schemas."""
    for manifest in manifests(SPECS[golden]):
        validate_kubernetes(manifest)


def test_validation_catches_a_broken_manifest() -> None:
    """The schema check is real: an unknown field in the pod spec fails it."""
    import kubernetes_validate

    deployment = _by_kind(SPECS["k8s-no-code-pvc.yaml"])["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(deployment)


@pytest.mark.parametrize("golden", sorted(SPECS))
def test_pod_is_hardened(golden: str) -> None:
    """Non-root, read-only root with a writable /tmp, no capabilities, RuntimeDefault seccomp, no token."""
    pod = _by_kind(SPECS[golden])["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    server = pod["containers"][0]
    tmp = next(mount for mount in server["volumeMounts"] if mount["mountPath"] == "/tmp")
    volume = next(volume for volume in pod["volumes"] if volume["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_probes_resources_and_drain() -> None:
    """Probes hit the server's live/ready endpoints; requests and limits are set; grace > preStop + drain."""
    spec = SPECS["k8s-no-code-pvc.yaml"]
    pod = _by_kind(spec)["Deployment"]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 5001}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 5001}
    assert server["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["resources"]["requests"] and server["resources"]["limits"]
    sleep = int(server["lifecycle"]["preStop"]["exec"]["command"][1])
    drain = int(server["args"][server["args"].index("--graceful-timeout") + 1])
    assert drain == spec.graceful_timeout_s
    assert pod["terminationGracePeriodSeconds"] > sleep + drain


def test_service_autoscaler_and_budget_select_the_pods() -> None:
    """Service, HPA and PDB all point at the Deployment's pods; the HPA's floor is the replica count."""
    objects = _by_kind(SPECS["k8s-no-code-pvc.yaml"])
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert objects["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"}
    assert hpa["minReplicas"] == objects["Deployment"]["spec"]["replicas"] == 3
    assert all(manifest["metadata"]["namespace"] == "ml" for manifest in objects.values())


def test_model_sources_become_volumes_or_init_containers() -> None:
    """pvc and hostpath mount a volume at /mnt/models; uri adds KServe's storage initializer; image mounts none."""
    hostpath = _by_kind(SPECS["k8s-entry-script-hostpath.yaml"])["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "iris-model", "hostPath": {"path": "/srv/models/iris", "type": "Directory"}} in hostpath[
        "volumes"
    ]
    uri = _by_kind(SPECS["k8s-no-code-uri-grpc.yaml"])["Deployment"]["spec"]["template"]["spec"]
    assert uri["initContainers"][0]["args"] == ["s3://models/iris/1", "/mnt/models"]
    baked = _by_kind(SPECS["k8s-baked-image.yaml"])["Deployment"]["spec"]["template"]["spec"]
    assert [volume["name"] for volume in baked["volumes"]] == ["iris-tmp"]
    assert baked["containers"][0]["args"][0] == "/var/prebake/model/iris.joblib"


def test_entry_script_ships_in_a_configmap_that_rolls_pods() -> None:
    """The script's text is in a ConfigMap mounted read-only, and its hash is on the pod template."""
    objects = _by_kind(SPECS["k8s-entry-script-hostpath.yaml"])
    assert objects["ConfigMap"]["data"] == {"score.py": SCRIPT}
    template = objects["Deployment"]["spec"]["template"]
    assert "prebake.dev/entry-script-sha256" in template["metadata"]["annotations"]
    args = template["spec"]["containers"][0]["args"]
    assert args[:4] == ["--entry-script", "/var/azureml-app/src/score.py", "--model-dir", "/mnt/models"]
    assert list(manifests(SPECS["k8s-entry-script-hostpath.yaml"]))[0]["kind"] == "ConfigMap"


def test_grpc_adds_a_service_port() -> None:
    """With gRPC on, the server gets --grpc-port 8081 and the Service an h2c port."""
    objects = _by_kind(SPECS["k8s-no-code-uri-grpc.yaml"])
    assert "--grpc-port" in objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert objects["Service"]["spec"]["ports"][1]["appProtocol"] == "kubernetes.io/h2c"


@pytest.mark.parametrize("golden", sorted(SPECS))
def test_server_arguments_are_flags_prebake_serve_accepts(golden: str) -> None:
    """Every argument the Deployment passes after the image's `prebake serve` entrypoint parses with the real serve command."""
    from prebake.cli.serve import serve

    args = _by_kind(SPECS[golden])["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    context = serve.make_context("serve", ["--host", "0.0.0.0", *args])
    assert context.params["port"] == 5001
    assert context.params["graceful_timeout_s"] == SPECS[golden].graceful_timeout_s
