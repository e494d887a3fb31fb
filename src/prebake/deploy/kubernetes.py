"""Kubernetes manifests for one model: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget,
and a ConfigMap holding the entry script when there is one. Each is a pure function of a ``DeploySpec``.

The pod is hardened the way a restricted Pod Security Standard asks: non-root uid 1000 (the images'
user), read-only root with an in-memory /tmp, every capability dropped, no privilege escalation, the
runtime's default seccomp profile, and no service-account token (the server never calls the API).

Shutdown is ordered so no request is lost: on deletion the preStop sleep runs while endpoint controllers
take the pod out of Services; then SIGTERM makes ``prebake serve`` stop accepting and drain in-flight
requests for up to ``--graceful-timeout`` seconds; terminationGracePeriodSeconds covers both plus a
margin, so the kubelet's SIGKILL never cuts a drain short.

No ``ports`` are declared on the container: Kubernetes does not need them (Service targetPort and probes
use the number), and podman kube play (before 5.0) publishes every declared containerPort on the host,
which would make two replicas on one machine collide. Prometheus finds the port in the pod annotations.
"""

from __future__ import annotations

import hashlib
from typing import Any

from prebake.deploy.spec import (
    CODE_MOUNT,
    GRPC_PORT,
    HTTP_PORT,
    MODEL_MOUNT,
    PRESTOP_SLEEP_S,
    DeploySpec,
)

Manifest = dict[str, Any]
UID = 1000  # the catalog images' user
TMP_SIZE = "512Mi"


def labels(spec: DeploySpec) -> dict[str, str]:
    """The recommended app.kubernetes.io labels every object carries."""
    return {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/managed-by": "prebake",
    }


def selector(spec: DeploySpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name}


def metadata(spec: DeploySpec, name: str | None = None) -> Manifest:
    meta: Manifest = {"name": name or spec.name}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    meta["labels"] = labels(spec)
    return meta


def server_args(spec: DeploySpec) -> list[str]:
    """What follows the image's entrypoint (``prebake serve --host 0.0.0.0``)."""
    args: list[str] = []
    if spec.entry_script is not None:
        args += ["--entry-script", f"{CODE_MOUNT}/{spec.entry_script_name}"]
        if spec.model_source.kind != "image":
            args += ["--model-dir", MODEL_MOUNT]
        elif spec.model is not None:
            args += ["--model-dir", spec.model]
    else:
        args.append(spec.model_path)
    args += ["--port", str(HTTP_PORT)]
    if spec.grpc:
        args += ["--grpc-port", str(GRPC_PORT)]
    args += [
        "--workers",
        str(spec.workers),
        "--graceful-timeout",
        str(spec.graceful_timeout_s),
        "--log-format",
        "json",
    ]
    return args


def _environment(spec: DeploySpec) -> list[Manifest]:
    env: list[Manifest] = []
    if spec.allow_pickle:
        env.append({"name": "PREBAKE_ALLOW_PICKLE", "value": "1"})
    if spec.entry_script is not None:
        model_dir = spec.model if spec.model_source.kind == "image" and spec.model else MODEL_MOUNT
        # score.py files read AZUREML_MODEL_DIR; modules beside score.py import from AML_APP_ROOT.
        env += [
            {"name": "AZUREML_MODEL_DIR", "value": model_dir},
            {"name": "AML_APP_ROOT", "value": CODE_MOUNT},
        ]
    return env


def _hardened() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _resources(spec: DeploySpec) -> Manifest:
    limits = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        limits["nvidia.com/gpu"] = str(spec.gpus)  # extended resources are set as limits only
    return {"requests": {"cpu": spec.cpu, "memory": spec.memory}, "limits": limits}


def _probe(path: str, *, period: int, timeout: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": HTTP_PORT},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _volumes(spec: DeploySpec) -> tuple[list[Manifest], list[Manifest]]:
    """(pod volumes, server mounts). Volume names carry the app name: podman turns them into named volumes."""
    tmp = f"{spec.name}-tmp"
    volumes: list[Manifest] = [{"name": tmp, "emptyDir": {"medium": "Memory", "sizeLimit": TMP_SIZE}}]
    mounts: list[Manifest] = [{"name": tmp, "mountPath": "/tmp"}]
    source = spec.model_source
    model = f"{spec.name}-model"
    if source.kind == "pvc":
        volumes.append(
            {"name": model, "persistentVolumeClaim": {"claimName": source.target, "readOnly": True}}
        )
    elif source.kind == "hostpath":
        volumes.append({"name": model, "hostPath": {"path": source.target, "type": "Directory"}})
    elif source.kind == "uri":
        volumes.append({"name": model, "emptyDir": {}})
    if source.kind != "image":
        mounts.append({"name": model, "mountPath": MODEL_MOUNT, "readOnly": True})
    if spec.entry_script is not None:
        code = f"{spec.name}-code"
        volumes.append({"name": code, "configMap": {"name": code, "defaultMode": 0o444}})
        mounts.append({"name": code, "mountPath": CODE_MOUNT, "readOnly": True})
    return volumes, mounts


def _storage_initializer(spec: DeploySpec) -> Manifest:
    """KServe's storage initializer as a plain init container: it copies the URI into /mnt/models."""
    return {
        "name": "storage-initializer",
        "image": spec.storage_initializer,
        "args": [spec.model_source.target, MODEL_MOUNT],
        "resources": {
            "requests": {"cpu": "100m", "memory": "100Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": _hardened(),
        "volumeMounts": [{"name": f"{spec.name}-model", "mountPath": MODEL_MOUNT}],
    }


def container(spec: DeploySpec) -> Manifest:
    """The server container: image, arguments, probes, resources, drain hook, hardened context."""
    volumes_mounts = _volumes(spec)[1]
    body: Manifest = {
        "name": "server",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": server_args(spec),
    }
    env = _environment(spec)
    if env:
        body["env"] = env
    body.update(
        {
            "resources": _resources(spec),
            # Startup guards liveness while a large model loads (up to 5 minutes); readiness keeps traffic
            # away until the model answers; liveness restarts a wedged process only.
            "startupProbe": _probe("/v2/health/live", period=2, timeout=2, failures=150),
            "readinessProbe": _probe("/v2/health/ready", period=5, timeout=2, failures=2),
            "livenessProbe": _probe("/v2/health/live", period=10, timeout=3, failures=3),
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}},
            "securityContext": _hardened(),
            "volumeMounts": volumes_mounts,
        }
    )
    return body


def config_map(spec: DeploySpec) -> Manifest | None:
    """The entry script, shipped as a ConfigMap; None when serving a model with no code."""
    if spec.entry_script is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(spec, f"{spec.name}-code"),
        "data": {spec.entry_script_name: spec.entry_script},
    }


def deployment(spec: DeploySpec) -> Manifest:
    volumes = _volumes(spec)[0]
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": "/metrics",
    }
    if spec.entry_script is not None:
        # A changed script changes the pod template, so `kubectl apply` rolls the pods onto it.
        annotations["prebake.dev/entry-script-sha256"] = hashlib.sha256(
            spec.entry_script.encode()
        ).hexdigest()
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": spec.termination_grace_s,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(spec)},
            }
        ],
    }
    if spec.model_source.kind == "uri":
        pod["initContainers"] = [_storage_initializer(spec)]
    pod["containers"] = [container(spec)]
    pod["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec),
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels(spec), "annotations": annotations}, "spec": pod},
        },
    }


def service(spec: DeploySpec) -> Manifest:
    ports: list[Manifest] = [{"name": "http", "port": 80, "targetPort": HTTP_PORT, "protocol": "TCP"}]
    if spec.grpc:
        ports.append(
            {
                "name": "grpc",
                "port": GRPC_PORT,
                "targetPort": GRPC_PORT,
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(spec),
        "spec": {"type": "ClusterIP", "selector": selector(spec), "ports": ports},
    }


def autoscaler(spec: DeploySpec) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": spec.target_cpu_percent},
                    },
                }
            ],
            # Scale up at once; scale down one pod a minute after five calm minutes, so drains do not pile up.
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0},
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
            },
        },
    }


def disruption_budget(spec: DeploySpec) -> Manifest:
    # maxUnavailable rather than minAvailable: with one replica, minAvailable 1 would block node drains forever.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(spec),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(spec)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def manifests(spec: DeploySpec) -> list[Manifest]:
    """Every object, in the order ``kubectl apply`` should create them (the ConfigMap before its users)."""
    code = config_map(spec)
    head = [code] if code is not None else []
    return [*head, deployment(spec), service(spec), autoscaler(spec), disruption_budget(spec)]
