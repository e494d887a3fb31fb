"""What to deploy, checked once: a Kubernetes name, an image, a model source, replicas and resources.

``DeploySpec`` is frozen and valid by construction (``make_spec`` raises ``DeployError`` naming the bad
value), so the renderers never re-check their input.

    >>> spec = make_spec("iris", image="ghcr.io/prebake/sklearn:1", model="iris.joblib")
    >>> spec.model_source.kind
    'pvc'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from prebake.errors import ConfigError

# Paths inside the pod. /mnt/models is where KServe's storage initializer puts a model, so one
# convention serves both the plain Deployment and KServe.
MODEL_MOUNT = "/mnt/models"
CODE_MOUNT = "/var/azureml-app/src"
HTTP_PORT = 5001
GRPC_PORT = 8081
PRESTOP_SLEEP_S = 5  # time for endpoint controllers and proxies to stop sending new requests
GRACE_MARGIN_S = 5  # beyond preStop + drain, so the kubelet's SIGKILL never cuts a drain short
# KServe's model downloader (args: URI, destination); it works as a plain init container without KServe.
STORAGE_INITIALIZER = "kserve/storage-initializer:v0.20.0"

SourceKind = Literal["pvc", "hostpath", "uri", "image"]
# DNS-1035 label: Services need it (a DNS-1123 subdomain is not enough), and it is a valid name for
# every other kind written here. 63 characters, less room for the longest suffix added to it ("-model",
# the model volume's name, which must itself be a 63-character label).
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 63 - len("-model")
LABEL_MAX = 63
# Kubernetes resource quantities (a subset: decimal numbers with an optional SI or binary suffix).
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_URI = re.compile(r"^(s3|gs|https?|pvc|hdfs|webhdfs|oci)://\S+$")
_IMAGE = re.compile(r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*$")


class DeployError(ConfigError):
    """A deploy input is invalid; the message names it and says what is allowed."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where the model directory comes from; mounted at /mnt/models except ``image`` (baked in)."""

    kind: SourceKind
    target: str = ""  # the claim name, host directory or URI; empty for "image"

    def describe(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


@dataclass(frozen=True, slots=True)
class DeploySpec:
    name: str
    image: str
    model: str | None = None  # relative: inside the model source; absolute: inside the image
    entry_script: str | None = None  # the script's text, shipped in a ConfigMap
    entry_script_name: str = "score.py"
    model_source: ModelSource = ModelSource("pvc")
    namespace: str | None = None
    replicas: int = 2
    max_replicas: int = 6
    cpu: str = "1"
    memory: str = "2Gi"
    graceful_timeout_s: int = 30
    workers: int = 1
    grpc: bool = False
    gpus: int = 0
    target_cpu_percent: int = 70
    storage_initializer: str = STORAGE_INITIALIZER
    allow_pickle: bool = False

    @property
    def termination_grace_s(self) -> int:
        return PRESTOP_SLEEP_S + self.graceful_timeout_s + GRACE_MARGIN_S

    @property
    def model_path(self) -> str:
        """The model's path in the container (the folder when no file is named)."""
        if self.model is not None and self.model.startswith("/"):
            return self.model
        return str(PurePosixPath(MODEL_MOUNT, self.model or ""))


def check_name(name: str, what: str = "name", *, limit: int = NAME_MAX) -> str:
    """``name`` if Kubernetes accepts it for every object written here; DeployError otherwise."""
    if len(name) > limit:
        raise DeployError(
            f"{what} {name!r} is {len(name)} characters; Kubernetes names here allow at most {limit}"
        )
    if not _NAME.match(name):
        raise DeployError(
            f"{what} {name!r} is not a valid Kubernetes name: use lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit (e.g. iris-classifier)"
        )
    return name


def parse_source(value: str, name: str) -> ModelSource:
    """``pvc[:CLAIM]``, ``hostpath:/DIR``, ``uri:s3://...`` or ``image``; DeployError otherwise."""
    kind, _, target = value.partition(":")
    if kind == "pvc":
        return ModelSource("pvc", check_name(target or f"{name}-model", "claim name", limit=LABEL_MAX))
    if kind == "hostpath":
        if not target.startswith("/"):
            raise DeployError(
                f"model source {value!r}: hostpath needs an absolute directory, e.g. hostpath:/srv/models/iris"
            )
        return ModelSource("hostpath", target)
    if kind == "uri":
        if not _URI.match(target):
            raise DeployError(
                f"model source {value!r}: give a URI the storage initializer reads (s3://, gs://, https://, pvc://, hdfs://)"
            )
        return ModelSource("uri", target)
    if kind == "image" and not target:
        return ModelSource("image")
    raise DeployError(
        f"unknown model source {value!r}: use pvc[:CLAIM], hostpath:/DIR, uri:s3://BUCKET/PATH or image "
        "(a model baked in with `prebake extend`)"
    )


def make_spec(
    name: str,
    *,
    image: str,
    model: str | None = None,
    entry_script: str | None = None,
    entry_script_name: str = "score.py",
    source: str = "pvc",
    namespace: str | None = None,
    replicas: int = 2,
    max_replicas: int | None = None,
    cpu: str = "1",
    memory: str = "2Gi",
    graceful_timeout_s: int = 30,
    workers: int = 1,
    grpc: bool = False,
    gpus: int = 0,
    target_cpu_percent: int = 70,
    storage_initializer: str | None = None,
    allow_pickle: bool = False,
) -> DeploySpec:
    """Validate every input and freeze them; the first problem raises DeployError."""
    check_name(name)
    if namespace is not None:
        check_name(namespace, "namespace")
    for label, reference in (
        ("image", image),
        ("storage initializer", storage_initializer or STORAGE_INITIALIZER),
    ):
        if not reference or not _IMAGE.match(reference):
            raise DeployError(
                f"{label} {reference!r} is not an image reference (e.g. ghcr.io/prebake/NAME:TAG)"
            )
    if model is None and entry_script is None:
        raise DeployError("nothing to serve: give --model PATH (no-code serving) or --entry-script score.py")
    model_source = parse_source(source, name)
    if model is not None:
        if model_source.kind == "image" and not model.startswith("/"):
            raise DeployError(
                f"--model {model!r}: a model baked into the image needs its absolute path in the image"
            )
        if model_source.kind != "image" and (model.startswith("/") or ".." in PurePosixPath(model).parts):
            raise DeployError(
                f"--model {model!r}: give the model's path relative to the model source (e.g. iris.joblib), "
                f"it is mounted at {MODEL_MOUNT}"
            )
    if not re.match(r"^[A-Za-z0-9_.-]+\.py$", entry_script_name):
        raise DeployError(f"entry script name {entry_script_name!r} must be a plain file name ending in .py")
    if replicas < 1:
        raise DeployError(f"replicas must be at least 1, got {replicas}")
    top = max_replicas if max_replicas is not None else max(replicas * 3, 3)
    if top < replicas:
        raise DeployError(f"max replicas ({top}) must be at least replicas ({replicas})")
    for label, quantity in (("cpu", cpu), ("memory", memory)):
        if not _QUANTITY.match(quantity):
            raise DeployError(f"{label} {quantity!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 2Gi)")
    if graceful_timeout_s < 0:
        raise DeployError(f"graceful timeout must be 0 or more seconds, got {graceful_timeout_s}")
    if workers < 1:
        raise DeployError(f"workers must be at least 1, got {workers}")
    if gpus < 0:
        raise DeployError(f"gpus must be 0 or more, got {gpus}")
    if not 1 <= target_cpu_percent <= 100:
        raise DeployError(f"target CPU utilisation must be 1-100 percent, got {target_cpu_percent}")
    return DeploySpec(
        name=name,
        image=image,
        model=model,
        entry_script=entry_script,
        entry_script_name=entry_script_name,
        model_source=model_source,
        namespace=namespace,
        replicas=replicas,
        max_replicas=top,
        cpu=cpu,
        memory=memory,
        graceful_timeout_s=graceful_timeout_s,
        workers=workers,
        grpc=grpc,
        gpus=gpus,
        target_cpu_percent=target_cpu_percent,
        storage_initializer=storage_initializer or STORAGE_INITIALIZER,
        allow_pickle=allow_pickle,
    )
