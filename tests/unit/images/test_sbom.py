"""SBOMs list exactly the locked packages, prebake itself and the base's Debian packages, in CycloneDX 1.5."""

from __future__ import annotations

from prebake.images.catalog import load_catalog
from prebake.images.sbom import make_sbom, parse_lock

IMAGE = load_catalog().get("sklearn-1.9.1-debian12-py311-cpu-inference")


def test_parse_lock_reads_every_pin_and_hash() -> None:
    """Every `name==version` of the committed lock is parsed, each with at least one sha256."""
    text = IMAGE.lock_file.read_text(encoding="utf-8")
    packages = parse_lock(text)
    names = {package.name for package in packages}
    assert {"scikit-learn", "numpy", "uvicorn", "orjson"} <= names
    pins = [line for line in text.splitlines() if "==" in line and not line.startswith((" ", "#"))]
    assert len(packages) == len(pins)  # no pin missed
    assert all(package.sha256 for package in packages)


def test_sbom_document() -> None:
    """The document is CycloneDX 1.5 with purls for PyPI and Debian components and a content-derived serial."""
    lock = IMAGE.lock_file.read_text(encoding="utf-8")
    first = make_sbom(
        IMAGE, lock, prebake_wheel_sha256="0" * 64, base_reference="b", debian_packages=[("libc6", "2.36")]
    )
    second = make_sbom(
        IMAGE, lock, prebake_wheel_sha256="0" * 64, base_reference="b", debian_packages=[("libc6", "2.36")]
    )
    assert first["bomFormat"] == "CycloneDX" and first["specVersion"] == "1.5"
    assert first["serialNumber"] == second["serialNumber"]
    purls = {component["purl"] for component in first["components"]}
    assert "pkg:pypi/scikit-learn@1.9.1" in purls
    assert "pkg:deb/debian/libc6@2.36?distro=debian12" in purls
    assert "pkg:pypi/prebake@0.1.0" in purls
    assert first["metadata"]["component"]["type"] == "container"
