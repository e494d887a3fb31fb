"""Shared helpers for the deploy tests: golden files and schema validation for a stated Kubernetes version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate  # the test extra; needed, never skipped

GOLDEN = Path(__file__).with_name("golden")
# The oldest Kubernetes release still commonly run (1.30) and the newest kubernetes-validate knows (1.37):
# every manifest must pass both, in strict mode (unknown fields are errors).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def assert_golden(name: str, text: str) -> None:
    """``text`` equals golden/NAME; PREBAKE_UPDATE_GOLDEN=1 rewrites the file instead (then review the diff)."""
    path = GOLDEN / name
    if os.environ.get("PREBAKE_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"golden file {path} missing: run with PREBAKE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def validate_kubernetes(manifest: dict[str, Any]) -> None:
    """Validate against Kubernetes' own OpenAPI schemas (strict) for every stated version."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


def catalog_name(framework: str, *, gpu: bool = False) -> str:
    """The first catalog image of ``framework`` (any framework with ``framework=""``) and device class, so tests
    follow version bumps in catalog.toml."""
    from prebake.images.catalog import load_catalog

    for image in load_catalog().images:
        if (not framework or image.framework == framework) and image.gpu == gpu:
            return image.name
    raise LookupError(f"the catalog has no {'GPU' if gpu else 'CPU'} {framework or 'framework'} image")
