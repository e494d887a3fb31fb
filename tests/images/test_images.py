"""Real images, built with podman from the catalog and smoke-tested: a prediction, non-root, read-only root.

CI (CI=true, root, Debian) installs podman when missing and builds the minimal, scikit-learn, XGBoost and
ONNX Runtime CPU images on the locally bootstrapped base. Elsewhere these tests skip unless podman is
present and PREBAKE_IMAGE_TESTS=1 asks for them (they take minutes and need network for pip).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from prebake.images.base import bootstrap_base
from prebake.images.build import BuildFailed, BuildResult, build_image, build_prebake_wheel
from prebake.images.catalog import Catalog, load_catalog
from prebake.images.engine import Engine
from prebake.images.smoke import smoke_test

pytestmark = [pytest.mark.images, pytest.mark.slow]

CI_IMAGES = [
    "minimal-debian12-py311-cpu-inference",
    "sklearn-1.9.1-debian12-py311-cpu-inference",
    "xgboost-3.2.0-debian12-py311-cpu-inference",
    "onnxruntime-1.32.0-debian12-py311-cpu-inference",
]
SIZE_LIMITS_MB = {
    "minimal-debian12-py311-cpu-inference": 200,
    "sklearn-1.9.1-debian12-py311-cpu-inference": 450,
}
INSTALL = Path(__file__).resolve().parents[2] / "scripts" / "install-podman.sh"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _engine_or_skip() -> Engine:
    in_ci = os.environ.get("CI") == "true"
    if not in_ci and os.environ.get("PREBAKE_IMAGE_TESTS") != "1":
        pytest.skip("image builds take minutes: set PREBAKE_IMAGE_TESTS=1 (CI=true runs them always)")
    if shutil.which("podman") is None and in_ci and os.geteuid() == 0:
        subprocess.run([str(INSTALL)], check=True)
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/install-podman.sh installs it on Debian)")
    if os.geteuid() != 0:
        pytest.skip("the image tests bootstrap a base with debootstrap, which needs root")
    return Engine.find("podman")


@pytest.fixture(scope="session")
def engine() -> Engine:
    found = _engine_or_skip()
    bootstrap_base(found)  # once per run; every build below shares it
    return found


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_prebake_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("out")


@pytest.fixture(scope="session")
def built(engine: Engine, catalog: Catalog, wheel: Path, output: Path) -> Iterator[dict[str, BuildResult]]:
    # Tests use the built image's id, not its tag: on a shared machine another build may move the tag.
    results = {}
    for name in CI_IMAGES:
        result = build_image(
            catalog.get(name), catalog, engine, prebake_wheel=wheel, base="local",
            ca_bundle=CA_BUNDLE if CA_BUNDLE.is_file() else None, output_root=output,
        )  # fmt: skip
        results[name] = result
    yield results


@pytest.mark.parametrize("name", CI_IMAGES)
def test_image_predicts_as_non_root_with_read_only_root(
    name: str, engine: Engine, catalog: Catalog, built: dict[str, BuildResult]
) -> None:
    """The built image starts, answers health, predicts what the host computed, runs as uid 1000 read-only, and stops with 0."""
    result = smoke_test(catalog.get(name), engine, reference=built[name].image_id)
    print(result.summary())
    assert result.uid == 1000
    assert result.seconds_to_first_prediction < 30


@pytest.mark.parametrize("name", sorted(SIZE_LIMITS_MB))
def test_size_targets(name: str, built: dict[str, BuildResult]) -> None:
    """The minimal and scikit-learn images stay within their size targets (200 MB, 450 MB)."""
    size_mb = built[name].size_bytes / 1e6
    assert size_mb <= SIZE_LIMITS_MB[name], f"{name} is {size_mb:.0f} MB"


def test_image_carries_sbom_labels_and_no_caches(
    engine: Engine, catalog: Catalog, built: dict[str, BuildResult], output: Path
) -> None:
    """The SBOM is inside the image and beside the build output, labels name the catalog entry, and no pip cache or apt lists remain."""
    image = catalog.get("sklearn-1.9.1-debian12-py311-cpu-inference")
    image_id = built[image.name].image_id
    inside = json.loads(
        engine.run("run", "--rm", "--entrypoint", "cat", image_id, "/usr/share/doc/prebake/sbom.json")
    )
    beside = json.loads((output / image.name / "sbom.json").read_text())
    assert inside == beside and inside["bomFormat"] == "CycloneDX"
    labels = engine.inspect_image(image_id)["Config"]["Labels"]  # type: ignore[index]
    assert labels["ai.prebake.image"] == image.name and labels["org.opencontainers.image.revision"]
    leftovers = engine.run(
        "run", "--rm", "--entrypoint", "sh", image_id, "-c",
        "ls /root/.cache /tmp/prebake /var/lib/apt/lists/*_Packages 2>/dev/null; command -v gcc cc || true",
    )  # fmt: skip
    assert leftovers.strip() == ""


def test_failed_build_leaves_no_tag(engine: Engine, catalog: Catalog, wheel: Path, output: Path) -> None:
    """A build whose base cannot be found fails with BuildFailed and tags nothing."""
    image = catalog.get("minimal-debian12-py311-cpu-inference")
    before = set(engine.run("images", "--format", "{{.Repository}}:{{.Tag}}").split())
    with pytest.raises(BuildFailed, match="failed"):
        build_image(
            image,
            catalog,
            engine,
            prebake_wheel=wheel,
            base="localhost/prebake-absent:none",
            output_root=output,
        )
    after = set(engine.run("images", "--format", "{{.Repository}}:{{.Tag}}").split())
    assert not {tag for tag in after - before if "prebake" in tag}


@pytest.mark.parametrize("name", [name for name in CI_IMAGES if not name.startswith("minimal")])
def test_image_serves_model_file_without_code(
    name: str, engine: Engine, catalog: Catalog, built: dict[str, BuildResult]
) -> None:
    """Given only the model file, the image serves it with no code and answers a V2 infer request correctly."""
    result = smoke_test(catalog.get(name), engine, reference=built[name].image_id, no_code=True)
    assert result.uid == 1000
