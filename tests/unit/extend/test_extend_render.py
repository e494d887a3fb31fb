"""The derived image's Containerfile: a pure rendering of the spec that ends non-root and labels what it added."""

from __future__ import annotations

from pathlib import Path

import pytest

from prebake.errors import ConfigError
from prebake.extend.extend import ExtendSpec, render_containerfile, validate
from prebake.images.catalog import load_catalog

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"


def spec(tmp_path: Path, **changes: object) -> ExtendSpec:
    (tmp_path / "r.txt").write_text("rich==13.9.4  # pretty logs\n")
    values: dict[str, object] = {
        "image": load_catalog().get(SKLEARN),
        "tag": "my/model:1",
        "requirements": tmp_path / "r.txt",
    }
    values.update(changes)
    return ExtendSpec(**values)  # type: ignore[arg-type]


def test_render_is_non_root_and_labelled(tmp_path: Path) -> None:
    """The Containerfile builds FROM the catalog reference, switches back to uid 1000 last, and labels the additions."""
    text = render_containerfile(spec(tmp_path, apt=("jq", "curl")))
    assert f"ARG BASE_IMAGE=ghcr.io/prebake/{SKLEARN}:latest" in text
    users = [line for line in text.splitlines() if line.startswith("USER ")]
    assert users[-1] == "USER 1000:1000"
    assert "apt-get install -y -qq --no-install-recommends jq curl" in text
    assert (
        '"ai.prebake.extra-requirements"' not in text
        and 'ai.prebake.extra-requirements="rich==13.9.4"' in text
    )
    assert "{{" not in text and "--no-index" not in text


def test_render_offline_with_wheelhouse(tmp_path: Path) -> None:
    """With a wheelhouse, pip installs from the copied wheels only."""
    (tmp_path / "wheels").mkdir()
    assert "--no-index --find-links /tmp/prebake-extend/wheels" in render_containerfile(
        spec(tmp_path, wheelhouse=tmp_path / "wheels")
    )


def test_render_is_deterministic(tmp_path: Path) -> None:
    """The same spec renders the same text (no time or random parts)."""
    assert render_containerfile(spec(tmp_path)) == render_containerfile(spec(tmp_path))


def test_validate_rejects_conflict_and_bad_names(tmp_path: Path) -> None:
    """validate() refuses a pinned-package change, an unsafe apt name and a bad tag before any build."""
    (tmp_path / "c.txt").write_text("joblib==1.0.0\n")
    with pytest.raises(ConfigError, match=r"joblib==1.0.0.*joblib==1.6.0"):
        validate(spec(tmp_path, requirements=tmp_path / "c.txt"))
    with pytest.raises(ConfigError, match="not a Debian package name"):
        validate(spec(tmp_path, apt=("jq; rm -rf /",)))
    with pytest.raises(ConfigError, match="not a valid image reference"):
        validate(spec(tmp_path, tag="UPPER CASE"))
