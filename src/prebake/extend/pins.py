"""The image's pins: every package the image's environment holds, at its exact version, and the
requirements that would change one of them.

Pins come from the image's lock file where it is inside the image (``/opt/prebake/requirements.lock``) or
given, and otherwise from the distributions installed in the running environment (the same set: the
image installs its lock with ``--no-deps`` and checks it). Names are compared in their normalised form.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

IMAGE_LOCK = Path("/opt/prebake/requirements.lock")
_LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")


def canonical(name: str) -> str:
    """The normalised project name (PEP 503): ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_from_lock(text: str) -> dict[str, str]:
    """name -> version for every ``name==version`` line of a lock or requirements file."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        if match := _LOCK_LINE.match(line.strip()):
            pins[canonical(match["name"])] = match["version"]
    return pins


def pins_from_environment(path: Iterable[str] | None = None) -> dict[str, str]:
    """name -> version for every distribution installed on ``path`` (default: this interpreter's sys.path)."""
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=list(path) if path is not None else sys.path):
        name = dist.metadata["Name"]
        if name:
            pins.setdefault(canonical(name), dist.version)
    return pins


def image_pins(lock: Path | None = None) -> dict[str, str]:
    """The pins of the environment prebake runs in: its lock file if present, else what is installed."""
    lock = lock or IMAGE_LOCK
    if lock.is_file():
        return pins_from_lock(lock.read_text(encoding="utf-8"))
    return pins_from_environment()


def constraints_text(pins: Mapping[str, str]) -> str:
    """A pip constraints file holding every pin."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


@dataclass(frozen=True, slots=True)
class Conflict:
    """A requirement line that asks for a version of a pinned package other than the pinned one."""

    requirement: str
    name: str
    pinned: str

    def message(self) -> str:
        return (
            f"{self.requirement!r} conflicts with the image: it pins {self.name}=={self.pinned}. "
            f"Remove the line or relax it to accept {self.pinned}, or choose an image with the version you need"
        )


def packaging() -> ModuleType:
    """The ``packaging`` library: the installed one, or the copy pip vendors (images need not ship it)."""
    try:
        import packaging.requirements  # noqa: F401

        return sys.modules["packaging"]
    except ImportError:
        import pip._vendor.packaging.requirements  # noqa: F401

        return sys.modules["pip._vendor.packaging"]


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file: comments, blanks and pip options left out."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def conflicts(lines: Iterable[str], pins: Mapping[str, str]) -> list[Conflict]:
    """The lines whose version specifier excludes the pinned version of the package they name.

    >>> conflicts(["numpy<2", "rich"], {"numpy": "2.3.1"})[0].pinned
    '2.3.1'
    """
    lib: Any = packaging()
    found: list[Conflict] = []
    for line in lines:
        try:
            requirement = lib.requirements.Requirement(line)
        except lib.requirements.InvalidRequirement:
            continue  # URLs, paths and the like: pip judges them
        name = canonical(requirement.name)
        pinned = pins.get(name)
        if pinned is None or requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if not requirement.specifier.contains(pinned, prereleases=True):
            found.append(Conflict(line, name, pinned))
    return found
