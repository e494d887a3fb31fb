"""Render an image's Containerfile from the one template (Containerfile.in): a pure function of the catalog.

Placeholders are ``{{key}}``; every key must be supplied and every placeholder filled, so a template edit
cannot silently leave a hole. Values that change per build (creation time, git revision) are not rendered:
the build driver passes them as ``--label`` flags, so the same catalog always renders the same text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prebake import __version__
from prebake.errors import ImageError
from prebake.images.catalog import Catalog, Image

TEMPLATE = Path(__file__).with_name("Containerfile.in")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
LABEL_PREFIX = "ai.prebake"


def labels(image: Image, catalog: Catalog) -> dict[str, str]:
    """The OCI labels (org.opencontainers.image.*) plus the catalog entry (ai.prebake.*) for an image."""
    return {
        "org.opencontainers.image.title": image.name,
        "org.opencontainers.image.description": image.description,
        "org.opencontainers.image.version": image.version or __version__,
        "org.opencontainers.image.vendor": "prebake",
        "org.opencontainers.image.source": catalog.source,
        "org.opencontainers.image.licenses": catalog.licenses,
        "org.opencontainers.image.ref.name": image.reference,
        "org.opencontainers.image.base.name": "${BASE_IMAGE}",
        f"{LABEL_PREFIX}.image": image.name,
        f"{LABEL_PREFIX}.framework": image.framework,
        f"{LABEL_PREFIX}.framework-version": image.version,
        f"{LABEL_PREFIX}.device": image.device,
        f"{LABEL_PREFIX}.os": image.os,
        f"{LABEL_PREFIX}.python": image.python,
        f"{LABEL_PREFIX}.environment": image.environment,
        f"{LABEL_PREFIX}.packages": " ".join(image.packages),
        f"{LABEL_PREFIX}.prebake-version": __version__,
        f"{LABEL_PREFIX}.sbom": "/usr/share/doc/prebake/sbom.json",
    }


def render_labels(values: dict[str, str]) -> str:
    # JSON strings are valid Containerfile quoted values; ${BASE_IMAGE} still expands inside them.
    return " \\\n      ".join(f"{key}={json.dumps(value)}" for key, value in values.items())


def _system_packages(image: Image) -> str:
    if not image.system_packages:
        return "# (no system packages)"
    # Lists and caches are removed in the same layer, so they never reach the image.
    return (
        "RUN set -eu; apt-get update -qq; \\\n"
        f"    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {' '.join(image.system_packages)}; \\\n"
        "    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log"
    )


def _ensure_python(image: Image, packages: str, *, check: bool) -> str:
    """Shell lines that give a base without Python (a plain debian:*-slim) Debian's python3 from apt, and
    stop with a clear message when the base's Python is not the one the lock was made for."""
    lines = [
        "    if ! command -v python3 >/dev/null 2>&1; then \\",
        "        apt-get update -qq; \\",
        f"        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {packages} >/dev/null; \\",
        "        rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log; \\",
        "    fi; \\",
    ]
    if check:
        lines += [
            f"    python3 -c 'import sys; sys.exit(sys.version_info[:2] != ({image.python.replace('.', ', ')}))' || {{ \\",
            f'        echo "prebake: the base has $(python3 --version), {image.name} is locked for Python {image.python}" >&2; exit 1; }}; \\',
        ]
    return "\n".join(lines)


def render_containerfile(image: Image, catalog: Catalog, template: str | None = None) -> str:
    """The Containerfile text for ``image``.

    >>> from prebake.images.catalog import load_catalog
    >>> catalog = load_catalog()
    >>> "USER 1000:1000" in render_containerfile(catalog.images[0], catalog)
    True
    """
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    values = {
        "name": image.name,
        "base_image": image.base.registry,
        "extra_index_url": image.index or "",
        "python": image.python,
        "labels": render_labels(labels(image, catalog)),
        "system_packages": _system_packages(image),
        "ensure_python": _ensure_python(image, "python3 python3-venv ca-certificates", check=True),
        "ensure_runtime_python": _ensure_python(image, "python3 ca-certificates", check=False),
    }
    used = set(_PLACEHOLDER.findall(text))
    if missing := used - values.keys():
        raise ImageError(f"Containerfile template uses unknown placeholders: {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda match: values[match[1]], text)
