"""CycloneDX 1.5 SBOMs for images, made from what the build installs: the lock, prebake's wheel, the base's
Debian packages. Built before the image so the same file goes inside it and beside the build output.

The lock is exact (``--require-hashes --no-deps`` installs it and nothing else), so it is the truth about
the Python packages; the serial number is derived from the content, so the same inputs give the same SBOM.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prebake import __version__
from prebake.images.catalog import Image

_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+?)\s*\\?$")
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})")


@dataclass(slots=True)
class LockedPackage:
    name: str
    version: str
    sha256: list[str] = field(default_factory=list)


def parse_lock(text: str) -> list[LockedPackage]:
    """The packages in a hashed lock file (uv/pip-tools format), in file order."""
    packages: list[LockedPackage] = []
    for line in text.splitlines():
        stripped = line.strip()
        if match := _REQUIREMENT.match(stripped):
            packages.append(LockedPackage(match["name"], match["version"]))
        elif packages and (digest := _HASH.search(stripped)):
            packages[-1].sha256.append(digest["digest"])
    return packages


def _pypi(package: LockedPackage) -> dict[str, Any]:
    name = re.sub(r"[-_.]+", "-", package.name).lower()
    return {
        "type": "library",
        "bom-ref": f"pkg:pypi/{name}@{package.version}",
        "name": name,
        "version": package.version,
        "purl": f"pkg:pypi/{name}@{package.version}",
        # Every artifact the lock allows; the one installed is among them (pip checked its hash).
        "hashes": [{"alg": "SHA-256", "content": digest} for digest in package.sha256],
    }


def _deb(name: str, version: str, os: str) -> dict[str, Any]:
    purl = f"pkg:deb/debian/{name}@{version}?distro={os}"
    return {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}


def make_sbom(
    image: Image,
    lock_text: str,
    *,
    prebake_wheel_sha256: str,
    base_reference: str,
    debian_packages: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The CycloneDX document for an image (a pure function of its inputs)."""
    components = [_pypi(package) for package in parse_lock(lock_text)]
    components.append(
        {
            "type": "application",
            "bom-ref": f"pkg:pypi/prebake@{__version__}",
            "name": "prebake",
            "version": __version__,
            "purl": f"pkg:pypi/prebake@{__version__}",
            "hashes": [{"alg": "SHA-256", "content": prebake_wheel_sha256}],
        }
    )
    components += [_deb(name, version, image.os) for name, version in sorted(debian_packages)]
    body = json.dumps([image.name, base_reference, components], sort_keys=True).encode()
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(body).hexdigest())}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "prebake", "version": __version__}]},
            "component": {
                "type": "container",
                "bom-ref": image.reference,
                "name": image.name,
                "version": image.version or __version__,
                "description": image.description,
                "properties": [
                    {"name": "prebake:base", "value": base_reference},
                    {"name": "prebake:device", "value": image.device},
                    {"name": "prebake:environment", "value": image.environment},
                ],
            },
        },
        "components": components,
    }


def write_sbom(document: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
