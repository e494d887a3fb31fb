"""Real images, built from the catalog with podman and with docker, and smoke-tested: a prediction,
non-root, read-only root; what a build leaves behind and reports.

CI (CI=true, root, Debian) builds the minimal, scikit-learn, XGBoost and ONNX Runtime CPU images with podman,
the minimal and scikit-learn images with docker (a dockerd started by the tests), and the minimal and
scikit-learn images on Debian 13 + Python 3.13, all on locally bootstrapped bases.
"""

from __future__ import annotations

import json

import pytest

from prebake.images.build import BuildFailed, build_image, committed_by
from prebake.images.catalog import Catalog
from prebake.images.smoke import smoke_test

from .conftest import CA, Builds, record

pytestmark = [pytest.mark.images, pytest.mark.slow]

PODMAN_IMAGES = [
    "minimal-debian12-py311-cpu-inference",
    "sklearn-1.9.1-debian12-py311-cpu-inference",
    "xgboost-3.2.0-debian12-py311-cpu-inference",
    "onnxruntime-1.32.0-debian12-py311-cpu-inference",
    "minimal-debian13-py313-cpu-inference",
    "sklearn-1.9.1-debian13-py313-cpu-inference",
]
DOCKER_IMAGES = ["minimal-debian12-py311-cpu-inference", "sklearn-1.9.1-debian12-py311-cpu-inference"]
CASES = [("podman", name) for name in PODMAN_IMAGES] + [("docker", name) for name in DOCKER_IMAGES]
SIZE_LIMITS_MB = {
    "minimal-debian12-py311-cpu-inference": 200,
    "sklearn-1.9.1-debian12-py311-cpu-inference": 450,
    "minimal-debian13-py313-cpu-inference": 200,
    "sklearn-1.9.1-debian13-py313-cpu-inference": 450,
}


@pytest.mark.parametrize(("engine_name", "name"), CASES)
def test_image_predicts_as_non_root_with_read_only_root(
    engine_name: str, name: str, catalog: Catalog, builds: Builds
) -> None:
    """The built image starts, answers health, predicts what the host computed, runs as uid 1000 read-only, and stops with 0."""
    built = builds.get(engine_name, name)
    result = smoke_test(catalog.get(name), builds.engine(engine_name), reference=built.image_id)
    print(result.summary())
    record(
        engine_name, name, first_prediction_seconds=round(result.seconds_to_first_prediction, 2), tested=True
    )
    assert result.uid == 1000
    assert result.seconds_to_first_prediction < 30


@pytest.mark.parametrize(("engine_name", "name"), [c for c in CASES if not c[1].startswith("minimal")])
def test_image_serves_model_file_without_code(
    engine_name: str, name: str, catalog: Catalog, builds: Builds
) -> None:
    """Given only the model file, the image serves it with no code and answers a V2 infer request correctly."""
    built = builds.get(engine_name, name)
    result = smoke_test(catalog.get(name), builds.engine(engine_name), reference=built.image_id, no_code=True)
    assert result.uid == 1000


@pytest.mark.parametrize(("engine_name", "name"), [c for c in CASES if c[1] in SIZE_LIMITS_MB])
def test_size_targets(engine_name: str, name: str, builds: Builds) -> None:
    """The minimal and scikit-learn images stay within their size targets (200 MB, 450 MB) on each base and engine."""
    size_mb = builds.get(engine_name, name).size_bytes / 1e6
    assert size_mb <= SIZE_LIMITS_MB[name], f"{name} is {size_mb:.0f} MB with {engine_name}"


@pytest.mark.parametrize("engine_name", ["podman", "docker"])
def test_build_leaves_nothing_behind_and_says_what_it_used(engine_name: str, builds: Builds) -> None:
    """After a build no builder stage (podman) or BuildKit cache record (docker) is left, and the summary says how much disk the build added."""
    engine = builds.engine(engine_name)
    result = builds.get(engine_name, "sklearn-1.9.1-debian12-py311-cpu-inference")
    stages = engine.run("images", "--all", "--quiet", "--filter", "label=ai.prebake.stage=build").split()
    # The store is shared (other builds, other sessions, may be running): this build's own stages are gone.
    own = committed_by(result.output_dir / "build.log") if engine_name == "podman" else set()
    assert engine_name == "docker" or own, "the build log names no step images"
    left = [stage for stage in stages if engine_name == "docker" or any(stage[:11] == o[:11] for o in own)]
    assert left == [], f"builder stages left: {left}"
    assert engine.build_cache_bytes() == 0  # docker may keep empty records; none holds data
    assert result.cache_bytes == 0
    # The store grew by the image's own layers (the shared base once), not by builder stages.
    assert 0 < result.added_bytes <= result.size_bytes
    assert (
        "disk: the engine's store grew by" in result.summary()
        and "nothing else left behind" in result.summary()
    )


def test_image_carries_sbom_labels_and_no_caches(builds: Builds) -> None:
    """The SBOM is inside the image and beside the build output, labels name the catalog entry, and no pip cache or apt lists remain."""
    name = "sklearn-1.9.1-debian12-py311-cpu-inference"
    built = builds.get("podman", name)
    engine = builds.engine("podman")
    inside = json.loads(
        engine.run("run", "--rm", "--entrypoint", "cat", built.image_id, "/usr/share/doc/prebake/sbom.json")
    )
    beside = json.loads((built.output_dir / "sbom.json").read_text())
    assert inside == beside and inside["bomFormat"] == "CycloneDX"
    labels = engine.inspect_image(built.image_id)["Config"]["Labels"]  # type: ignore[index]
    assert labels["ai.prebake.image"] == name and labels["org.opencontainers.image.revision"]
    leftovers = engine.run(
        "run", "--rm", "--entrypoint", "sh", built.image_id, "-c",
        "ls /root/.cache /tmp/prebake /var/lib/apt/lists/*_Packages 2>/dev/null; command -v gcc cc || true",
    )  # fmt: skip
    assert leftovers.strip() == ""


def test_debian13_images_run_python_313(builds: Builds) -> None:
    """The Debian 13 rows run Debian 13's Python 3.13, and the Debian 12 rows Python 3.11, in the same venv layout."""
    engine = builds.engine("podman")
    for name, expected in (
        ("sklearn-1.9.1-debian13-py313-cpu-inference", "3.13 13"),
        ("sklearn-1.9.1-debian12-py311-cpu-inference", "3.11 12"),
    ):
        built = builds.get("podman", name)
        out = engine.run_in(
            built.image_id, "sh", "-c",
            "python3 -c 'import sys; print(f\"{sys.version_info[0]}.{sys.version_info[1]}\", end=\" \")';"
            " cut -d. -f1 /etc/debian_version",
        )  # fmt: skip
        assert out.strip() == expected, (name, out)


def test_layers_are_listed_with_sizes(builds: Builds) -> None:
    """`images show --layers` lists each layer with its size; the venv layer is most of the image above the base."""
    from .conftest import prebake_cli

    name = "sklearn-1.9.1-debian12-py311-cpu-inference"
    built = builds.get("podman", name)
    result = prebake_cli("images", "show", name, "--layers", "--format", "json", "--engine", "podman")
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)["built"]["layers"]
    assert sum(layer["size_bytes"] for layer in layers) == pytest.approx(built.size_bytes, rel=0.05)
    venv = max(layers, key=lambda layer: layer["size_bytes"] if "/opt/prebake" in layer["created_by"] else 0)
    assert venv["size_bytes"] > 0.4 * built.size_bytes


def test_failed_build_leaves_no_tag(catalog: Catalog, builds: Builds) -> None:
    """A build whose base cannot be found fails with BuildFailed and tags nothing."""
    engine = builds.engine("podman")
    image = catalog.get("minimal-debian12-py311-cpu-inference")
    before = set(engine.run("images", "--format", "{{.Repository}}:{{.Tag}}").split())
    with pytest.raises(BuildFailed, match="failed"):
        build_image(image, catalog, engine, prebake_wheel=builds.wheel, base="localhost/prebake-absent:none",
                    ca_bundle=CA, output_root=builds.output)  # fmt: skip
    after = set(engine.run("images", "--format", "{{.Repository}}:{{.Tag}}").split())
    # Only this image's tags: other builds in the same store may tag theirs meanwhile.
    assert not {tag for tag in after - before if image.name in tag}
