"""`prebake deploy k8s|kserve`: what a user types, what lands on disk, and the exits on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from prebake import exits
from prebake.cli.deploy import deploy
from prebake.deploy.kubernetes import manifests
from prebake.deploy.render import dump_all
from prebake.deploy.spec import make_spec
from prebake.images.catalog import load_catalog

from .conftest import catalog_name

SKLEARN = catalog_name("sklearn")
MINIMAL = catalog_name("minimal")
GPU_IMAGE = next(catalog_name(f, gpu=True) for f in ("pytorch", "onnxruntime", "tensorflow"))


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(deploy, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_k8s_writes_what_the_renderer_renders(tmp_path: Path) -> None:
    """A catalog name resolves to its reference and NAME.yaml holds exactly the rendered manifests."""
    code, _, err = _run(
        "k8s", "iris", "--image", SKLEARN, "--model", "model.joblib", "--replicas", "3", "-o", str(tmp_path)
    )
    assert code == 0, err
    reference = load_catalog().get(SKLEARN).reference
    expected = dump_all(manifests(make_spec("iris", image=reference, model="model.joblib", replicas=3)))
    assert (tmp_path / "iris.yaml").read_text() == expected
    assert f"wrote {tmp_path / 'iris.yaml'}" in err


def test_k8s_ships_a_local_entry_script(tmp_path: Path) -> None:
    """--entry-script reads the local file into the ConfigMap under its own name."""
    script = tmp_path / "my_score.py"
    script.write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    code, out, err = _run("k8s", "iris", "--image", SKLEARN, "--entry-script", str(script), "-o", "-")
    assert code == 0, err
    config_map = next(yaml.safe_load_all(out))
    assert config_map["data"] == {"my_score.py": script.read_text()}


def test_k8s_accepts_an_image_reference_as_given() -> None:
    """A reference (say from `prebake extend -t`) is used unchanged, without the catalog."""
    code, out, err = _run(
        "k8s",
        "iris",
        "--image",
        "registry.example/team/iris:1",
        "--model",
        "/m/iris.joblib",
        "--model-source",
        "image",
        "-o",
        "-",
    )
    assert code == 0, err
    deployment = list(yaml.safe_load_all(out))[0]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/team/iris:1"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["k8s", "Iris_Model", "--image", SKLEARN, "--model", "m.joblib"],
            exits.USAGE,
            "not a valid Kubernetes name",
        ),
        (
            ["k8s", "iris", "--image", "sklearn-9.9", "--model", "m.joblib"],
            exits.NOT_FOUND,
            "unknown image 'sklearn-9.9'",
        ),
        (
            ["k8s", "iris", "--image", SKLEARN, "--model", "m.joblib", "--replicas", "0"],
            exits.USAGE,
            "replicas must be at least 1",
        ),
        (["k8s", "iris", "--image", SKLEARN], exits.USAGE, "nothing to serve"),
        (
            ["k8s", "iris", "--image", SKLEARN, "--entry-script", "missing.py"],
            exits.NOT_FOUND,
            "missing.py not found",
        ),
        (
            ["k8s", "iris", "--image", SKLEARN, "--model", "m", "--model-source", "nfs:/x"],
            exits.USAGE,
            "unknown model source",
        ),
        (["kserve", "--image", "nope"], exits.NOT_FOUND, "unknown image 'nope'"),
        (["kserve", "--image", MINIMAL], exits.USAGE, "no framework image"),
        (["kserve", "--isvc", "iris"], exits.USAGE, "go together"),
        (["kserve", "--isvc", "iris", "--storage-uri", "gs://b/m"], exits.USAGE, "exactly one --image"),
        (
            ["kserve", "--image", SKLEARN, "--isvc", "Iris", "--storage-uri", "gs://b/m"],
            exits.USAGE,
            "not a valid Kubernetes name",
        ),
        (
            ["kserve", "--image", SKLEARN, "--isvc", "iris", "--storage-uri", "gs://b/m", "--replicas", "0"],
            exits.USAGE,
            "at least 1",
        ),
        (["kserve", "--namespaced"], exits.USAGE, "--namespace"),
    ],
)
def test_bad_input_exits_with_a_message_and_writes_nothing(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    """Each bad input gives its named exit code, a message saying what is wrong, and no file at all."""
    output = tmp_path / "out"
    exit_code, out, err = _run(*args, "-o", str(output))
    assert exit_code == code
    assert message in err
    assert out == ""
    assert not output.exists()


def test_existing_manifest_is_kept_without_force(tmp_path: Path) -> None:
    """A second run refuses to overwrite NAME.yaml (exit 1) until --force."""
    args = ["k8s", "iris", "--image", SKLEARN, "--model", "m.joblib", "-o", str(tmp_path)]
    assert _run(*args)[0] == 0
    (tmp_path / "iris.yaml").write_text("edited\n")
    code, _, err = _run(*args)
    assert code == exits.FAILURE and "--force" in err
    assert (tmp_path / "iris.yaml").read_text() == "edited\n"
    assert _run(*args, "--force")[0] == 0
    assert (tmp_path / "iris.yaml").read_text() != "edited\n"


def test_kserve_writes_runtimes_and_an_inference_service(tmp_path: Path) -> None:
    """kserve writes runtimes.yaml, and NAME.yaml for --isvc, naming the runtime it uses."""
    code, _, err = _run(
        "kserve", "--image", SKLEARN, "--isvc", "iris", "--storage-uri", "gs://b/iris", "-o", str(tmp_path)
    )
    assert code == 0, err
    runtimes = list(yaml.safe_load_all((tmp_path / "runtimes.yaml").read_text()))
    service = yaml.safe_load((tmp_path / "iris.yaml").read_text())
    assert [runtime["kind"] for runtime in runtimes] == ["ClusterServingRuntime"]
    assert service["spec"]["predictor"]["model"]["runtime"] == runtimes[0]["metadata"]["name"]


def test_kserve_namespaced_runtimes_for_the_whole_catalog() -> None:
    """Without --image every framework image gets a runtime; --namespaced makes them ServingRuntimes in NS."""
    code, out, err = _run("kserve", "--namespaced", "--namespace", "ml", "-o", "-")
    assert code == 0, err
    runtimes = list(yaml.safe_load_all(out))
    assert len(runtimes) >= 6
    assert {(r["kind"], r["metadata"]["namespace"]) for r in runtimes} == {("ServingRuntime", "ml")}


def test_deploy_is_reachable_from_the_prebake_command() -> None:
    """The lazy top-level CLI lists `deploy` and its two subcommands."""
    from prebake.cli import main

    result = CliRunner().invoke(main, ["deploy", "--help"])
    assert result.exit_code == 0
    assert "k8s" in result.stdout and "kserve" in result.stdout


def test_k8s_gpu_images_ask_for_a_gpu() -> None:
    """A GPU catalog image gets one nvidia.com/gpu by default; --gpus overrides; CPU images get none."""

    def limits(*args: str) -> dict[str, str]:
        code, out, err = _run("k8s", "iris", "--model", "model.pt", "-o", "-", *args)
        assert code == 0, err
        deployment = list(yaml.safe_load_all(out))[0]
        result: dict[str, str] = deployment["spec"]["template"]["spec"]["containers"][0]["resources"][
            "limits"
        ]
        return result

    assert limits("--image", GPU_IMAGE)["nvidia.com/gpu"] == "1"
    assert limits("--image", GPU_IMAGE, "--gpus", "2")["nvidia.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in limits("--image", SKLEARN)


def test_k8s_refuses_an_unknown_image_under_the_catalog_registry() -> None:
    """A reference under prebake's registry that the catalog does not list is a typo: exit 4, nothing written."""
    code, out, err = _run(
        "k8s", "iris", "--image", "ghcr.io/prebake/sklearn-0.1-nope:latest", "--model", "m", "-o", "-"
    )
    assert code == exits.NOT_FOUND
    assert "unknown image 'sklearn-0.1-nope'" in err and out == ""


def test_k8s_storage_initializer_can_come_from_a_private_registry() -> None:
    """--storage-initializer replaces KServe's public downloader image in the init container."""
    code, out, err = _run(
        "k8s", "iris", "--image", SKLEARN, "--model", "m.joblib", "--model-source", "uri:s3://b/iris",
        "--storage-initializer", "registry.internal/kserve/storage-initializer:v0.20.0", "-o", "-",
    )  # fmt: skip
    assert code == 0, err
    pod = list(yaml.safe_load_all(out))[0]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["image"] == "registry.internal/kserve/storage-initializer:v0.20.0"


def test_catalog_images_pinned_by_digest_are_accepted() -> None:
    """A catalog image pinned by digest under prebake's registry is not mistaken for an unknown image."""
    digest = "sha256:" + "0" * 64
    code, out, err = _run(
        "k8s", "iris", "--image", f"ghcr.io/prebake/{SKLEARN}@{digest}", "--model", "m", "-o", "-"
    )
    assert code == 0, err
    assert f"ghcr.io/prebake/{SKLEARN}@{digest}" in out
