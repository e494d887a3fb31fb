"""Validation of deploy inputs: each bad value is refused with a message naming it."""

from __future__ import annotations

import pytest

from prebake.deploy.spec import DeployError, make_spec, parse_source

IMAGE = "ghcr.io/prebake/sklearn-1.9.1-debian12-py311-cpu-inference:latest"


@pytest.mark.parametrize(
    "name", ["Iris", "iris_model", "9iris", "iris-", "-iris", "iris.model", "", "a" * 58, "iris model"]
)
def test_invalid_kubernetes_names_are_refused(name: str) -> None:
    """Names Kubernetes would reject for a Service (DNS-1035 labels) never reach a manifest."""
    with pytest.raises(DeployError, match="Kubernetes"):
        make_spec(name, image=IMAGE, model="m.joblib")


@pytest.mark.parametrize("name", ["iris", "iris-classifier-2", "a", "a" * 57])
def test_valid_names_are_accepted(name: str) -> None:
    """Lower-case names with digits and inner dashes, up to 57 characters, are accepted."""
    assert make_spec(name, image=IMAGE, model="m.joblib").name == name


@pytest.mark.parametrize("replicas", [0, -1])
def test_replicas_below_one_are_refused(replicas: int) -> None:
    """Zero or negative replicas are an error, not an empty Deployment."""
    with pytest.raises(DeployError, match="replicas must be at least 1"):
        make_spec("iris", image=IMAGE, model="m.joblib", replicas=replicas)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image": ""}, "not an image reference"),
        ({"image": "Not An Image"}, "not an image reference"),
        ({"model": None}, "nothing to serve"),
        ({"max_replicas": 1, "replicas": 2}, "max replicas"),
        ({"cpu": "one"}, "cpu 'one' is not a Kubernetes quantity"),
        ({"memory": "2GB"}, "memory '2GB' is not a Kubernetes quantity"),
        ({"graceful_timeout_s": -1}, "graceful timeout"),
        ({"workers": 0}, "workers"),
        ({"gpus": -1}, "gpus"),
        ({"storage_initializer": "Bad Image"}, "storage initializer"),
        ({"target_cpu_percent": 0}, "CPU utilisation"),
        ({"namespace": "ML"}, "namespace"),
        ({"model": "/abs/m.joblib"}, "relative to the model source"),
        ({"model": "../m.joblib"}, "relative to the model source"),
        ({"model": "m.joblib", "source": "image"}, "absolute path in the image"),
        ({"entry_script": "x", "entry_script_name": "../score.py"}, "plain file name"),
    ],
)
def test_bad_inputs_name_the_problem(options: dict[str, object], message: str) -> None:
    """Each bad input raises DeployError whose message says what is wrong."""
    arguments: dict[str, object] = {"image": IMAGE, "model": "m.joblib", **options}
    with pytest.raises(DeployError, match=message):
        make_spec("iris", **arguments)


@pytest.mark.parametrize(
    ("value", "kind", "target"),
    [
        ("pvc", "pvc", "iris-model"),
        ("pvc:models", "pvc", "models"),
        ("hostpath:/srv/iris", "hostpath", "/srv/iris"),
        ("uri:s3://bucket/iris", "uri", "s3://bucket/iris"),
        ("uri:gs://bucket/iris", "uri", "gs://bucket/iris"),
        ("image", "image", ""),
    ],
)
def test_model_sources_parse(value: str, kind: str, target: str) -> None:
    """Each documented model source spelling parses to its kind and target."""
    source = parse_source(value, "iris")
    assert (source.kind, source.target) == (kind, target)


@pytest.mark.parametrize(
    "value", ["nfs:/x", "hostpath:relative", "uri:ftp://x", "uri:", "pvc:Bad_Claim", "image:x"]
)
def test_bad_model_sources_are_refused(value: str) -> None:
    """Unknown kinds, relative host paths, unreadable URIs and bad claim names are refused."""
    with pytest.raises(DeployError):
        parse_source(value, "iris")


def test_grace_period_covers_prestop_and_drain() -> None:
    """The pod's termination grace exceeds preStop sleep plus the server's drain timeout."""
    spec = make_spec("iris", image=IMAGE, model="m.joblib", graceful_timeout_s=45)
    assert spec.termination_grace_s > 45 + 5


def test_default_autoscaler_range() -> None:
    """Without --max-replicas the autoscaler may triple the replicas (at least 3)."""
    assert make_spec("iris", image=IMAGE, model="m", replicas=1).max_replicas == 3
    assert make_spec("iris", image=IMAGE, model="m", replicas=4).max_replicas == 12
