"""The catalog file is valid, complete, and its rules reject bad entries."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from prebake.errors import NotFound
from prebake.images.catalog import CATALOG_FILE, CatalogError, expected_name, load_catalog, parse_catalog


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return tomllib.loads(CATALOG_FILE.read_text(encoding="utf-8"))


def test_catalog_covers_every_required_image() -> None:
    """The shipped catalog has every framework/device the issue asks for, with two PyTorch CPU versions."""
    catalog = load_catalog()
    rows = {(image.framework, image.device == "cpu") for image in catalog.images}
    for framework in ("tensorflow", "onnxruntime", "pytorch"):
        assert (framework, True) in rows and (framework, False) in rows, framework
    for framework in ("sklearn", "xgboost", "lightgbm", "minimal"):
        assert (framework, True) in rows, framework
    torch_cpu = [image for image in catalog.images if image.framework == "pytorch" and not image.gpu]
    assert len({image.version for image in torch_cpu}) == 2


def test_every_image_has_a_hashed_lock() -> None:
    """Each image's lock exists and hashes every package (the second torch row included, from PyPI's wheel)."""
    for image in load_catalog().images:
        assert image.lock_file.is_file(), image.name
        text = image.lock_file.read_text(encoding="utf-8")
        assert "--hash=sha256:" in text
        requirements = [line for line in text.splitlines() if "==" in line and not line.startswith(" ")]
        assert all(line.endswith("\\") for line in requirements), image.name  # each pin carries hashes


def test_name_pattern() -> None:
    """Names say framework, version, OS, Python and device, as the seed's names do."""
    assert (
        expected_name("sklearn", "1.9.1", "debian12", "3.11", "cpu")
        == "sklearn-1.9.1-debian12-py311-cpu-inference"
    )
    assert expected_name("minimal", "", "debian12", "3.11", "cpu") == "minimal-debian12-py311-cpu-inference"
    assert expected_name("tensorflow", "2.21.0", "debian12", "3.11", "cuda12").endswith(
        "-cuda12-gpu-inference"
    )


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("name", "sklearn-latest", "does not follow the pattern"),
        ("packages", ["scikit-learn>=1.0"], "pinned exactly"),
        ("device", "gpu", "device must be"),
        ("base", "ubuntu", "unknown base"),
        ("smoke", "magic", "smoke must be"),
        ("index", "http://insecure.example", "https://"),
    ],
)
def test_bad_entries_are_rejected(data: dict[str, Any], field: str, value: Any, complaint: str) -> None:
    """Each catalog rule rejects a broken entry with a message naming the rule."""
    broken = copy.deepcopy(data)
    broken["images"][1][field] = value
    with pytest.raises(CatalogError, match=complaint):
        parse_catalog(broken)


def test_duplicate_names_are_rejected(data: dict[str, Any]) -> None:
    """An image listed twice is an error, not a silent overwrite."""
    broken = copy.deepcopy(data)
    broken["images"].append(broken["images"][0])
    with pytest.raises(CatalogError, match="listed twice"):
        parse_catalog(broken)


def test_unknown_name_suggests_close_ones() -> None:
    """An unknown image name raises NotFound (404) and suggests the nearest real name."""
    with pytest.raises(NotFound, match="Did you mean: .*sklearn-1.9.1-debian12-py311-cpu-inference"):
        load_catalog().get("sklearn-1.9.1")


def test_docs_list_every_image() -> None:
    """docs/images.md names every catalog image, so the documentation cannot fall behind the catalog."""
    docs = (CATALOG_FILE.parents[3] / "docs" / "images.md").read_text(encoding="utf-8")
    missing = [name for name in load_catalog().names() if name not in docs]
    assert missing == []


def test_both_bases_carry_minimal_and_sklearn() -> None:
    """Debian 12 + Python 3.11 (the default) and Debian 13 + Python 3.13 each have the minimal and scikit-learn rows."""
    catalog = load_catalog()
    assert [base.key for base in catalog.bases.values() if base.default] == ["debian12-py311"]
    assert (
        catalog.bases["debian13-py313"].suite == "trixie" and catalog.bases["debian13-py313"].python == "3.13"
    )
    for os_name in ("debian12", "debian13"):
        frameworks = {image.framework for image in catalog.images if image.os == os_name}
        assert {"minimal", "sklearn"} <= frameworks, os_name


def test_registry_override_moves_every_reference() -> None:
    """--registry HOST/PATH replaces ghcr.io/prebake in every reference, and a reference maps back to its image."""
    catalog = load_catalog(registry="127.0.0.1:5000/mirror/")
    assert catalog.registry == "127.0.0.1:5000/mirror"
    assert all(image.reference == f"127.0.0.1:5000/mirror/{image.name}:latest" for image in catalog.images)
    name = "sklearn-1.9.1-debian12-py311-cpu-inference"
    assert catalog.find_reference(f"127.0.0.1:5000/mirror/{name}@sha256:{'a' * 64}") is catalog.get(name)
    assert catalog.find_reference("docker.io/library/python:3.11") is None
    assert load_catalog(registry="ghcr.io/prebake").images == load_catalog().images


@pytest.mark.parametrize(
    "bad", ["https://ghcr.io/prebake", "ghcr.io/prebake:latest", "UPPER/Case", "just-a-name"]
)
def test_bad_registry_is_a_usage_error(bad: str) -> None:
    """A registry with a scheme, a tag, capitals in its path, or no host is refused with an example."""
    from prebake.errors import ConfigError

    with pytest.raises(ConfigError, match="HOST\\[:PORT\\]/PATH"):
        load_catalog(registry=bad)
