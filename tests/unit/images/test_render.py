"""Rendering is pure and matches the committed golden Containerfiles; the template keeps its promises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prebake.errors import ImageError
from prebake.images.catalog import load_catalog
from prebake.images.render import render_containerfile

GOLDEN = Path(__file__).with_name("golden")
CATALOG = load_catalog()


@pytest.mark.parametrize("name", CATALOG.names())
def test_matches_golden(name: str) -> None:
    """Each image renders exactly its golden file (PREBAKE_UPDATE_GOLDEN=1 rewrites them after a deliberate change)."""
    text = render_containerfile(CATALOG.get(name), CATALOG)
    golden = GOLDEN / f"{name}.Containerfile"
    if os.environ.get("PREBAKE_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CATALOG.names())
def test_runtime_stage_rules(name: str) -> None:
    """Every Containerfile is multi-stage, runs as uid 1000, installs with hashes, and carries health, stop signal, port, SBOM and labels."""
    text = render_containerfile(CATALOG.get(name), CATALOG)
    runtime = text.split("# ---- runtime")[1]
    assert "FROM ${BASE_IMAGE} AS build" in text and "COPY --from=build /opt/prebake/venv" in runtime
    assert "--require-hashes" in text and "--only-binary=:all:" in text
    for line in ("USER 1000:1000", "EXPOSE 5001", "STOPSIGNAL SIGTERM", "HEALTHCHECK", "sbom.json"):
        assert line in runtime
    assert 'ENTRYPOINT ["prebake", "serve"' in runtime
    assert f'org.opencontainers.image.title="{name}"' in runtime
    assert "pip install" not in runtime  # Python packages come only from the build stage's venv
    if (
        "apt-get install" in runtime
    ):  # system libraries a wheel links against: lists removed in the same layer
        after = runtime.split("apt-get install")[1].split("\nCOPY")[0]
        assert "--no-install-recommends" in after and "rm -rf /var/lib/apt/lists/*" in after


def test_torch_cpu_names_its_index() -> None:
    """CPU torch images default to PyTorch's CPU index (overridable when a local wheel serves instead)."""
    text = render_containerfile(CATALOG.get("pytorch-2.13.0-debian12-py311-cpu-inference"), CATALOG)
    assert "ARG EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in text


def test_rendering_is_deterministic() -> None:
    """Rendering twice gives the same text: no timestamps or random values inside."""
    image = CATALOG.images[0]
    assert render_containerfile(image, CATALOG) == render_containerfile(image, CATALOG)


def test_unknown_placeholder_is_an_error() -> None:
    """A template placeholder with no value fails loudly instead of rendering a hole."""
    with pytest.raises(ImageError, match="nope"):
        render_containerfile(CATALOG.images[0], CATALOG, template="FROM {{nope}}\n")
