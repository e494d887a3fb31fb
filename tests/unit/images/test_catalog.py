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


def test_every_image_has_a_hashed_lock_except_where_its_index_is_unreachable() -> None:
    """Each image's lock exists and hashes every package; the only exception is the torch CPU row whose index this machine cannot reach."""
    missing = []
    for image in load_catalog().images:
        if not image.lock_file.is_file():
            missing.append(image.name)
            continue
        text = image.lock_file.read_text(encoding="utf-8")
        assert "--hash=sha256:" in text
        requirements = [line for line in text.splitlines() if "==" in line and not line.startswith(" ")]
        assert all(line.endswith("\\") for line in requirements), image.name  # each pin carries hashes
    assert missing == ["pytorch-2.12.1-debian12-py311-cpu-inference"]


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
    with pytest.raises(NotFound, match="Did you mean: sklearn-1.9.1-debian12-py311-cpu-inference"):
        load_catalog().get("sklearn-1.9.1")


def test_docs_list_every_image() -> None:
    """docs/images.md names every catalog image, so the documentation cannot fall behind the catalog."""
    docs = (CATALOG_FILE.parents[3] / "docs" / "images.md").read_text(encoding="utf-8")
    missing = [name for name in load_catalog().names() if name not in docs]
    assert missing == []
