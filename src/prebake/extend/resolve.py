"""Resolve a requirements file against an image's pins without installing anything (``pip --dry-run``),
for the image's Python and platform, so ``prebake check`` catches a conflict on a laptop or in CI.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prebake.extend.layer import explain_pip_failure
from prebake.extend.pins import canonical, conflicts, constraints_text, requirement_lines


@dataclass(frozen=True, slots=True)
class Resolution:
    ok: bool
    message: str
    added: tuple[str, ...] = ()


def platforms(machine: str | None = None) -> list[str]:
    """The manylinux tags a Debian 12 (glibc 2.36) image accepts, newest first."""
    arch = machine or platform.machine()
    return [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)] + [
        f"manylinux2014_{arch}",
        f"linux_{arch}",
    ]


def resolve(
    requirements: Path,
    pins: Mapping[str, str],
    *,
    python: str = "3.11",
    wheelhouse: Path | None = None,
    timeout_s: float = 120.0,
) -> Resolution:
    """Whether ``requirements`` resolves with ``pins`` as constraints; the packages it would add."""
    text = requirements.read_text(encoding="utf-8")
    if found := conflicts(requirement_lines(text), pins):
        return Resolution(False, "; ".join(conflict.message() for conflict in found))
    with tempfile.TemporaryDirectory(prefix="prebake-resolve-") as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text(constraints_text(pins), encoding="utf-8")
        report = Path(scratch) / "report.json"
        args = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--report", str(report),
            "--target", str(Path(scratch) / "target"), "--only-binary", ":all:", "--python-version", python,
            "--constraint", str(constraints), "--requirement", str(requirements.resolve()),
            "--no-input", "--disable-pip-version-check", "--retries", "1", "--timeout", "10",
        ]  # fmt: skip
        for tag in platforms():
            args += ["--platform", tag]
        if wheelhouse is not None:
            args += ["--no-index", "--find-links", str(wheelhouse)]
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, cwd=requirements.parent, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            return Resolution(
                False, f"resolving {requirements.name} took over {timeout_s:.0f} s: is the index reachable?"
            )
        if result.returncode != 0:
            where = f"{requirements.name} does not resolve for the image"
            return Resolution(
                False,
                explain_pip_failure(result.stdout + result.stderr, requirements, wheelhouse, where=where),
            )
        items = json.loads(report.read_text(encoding="utf-8")).get("install", [])
    added = tuple(
        sorted(
            f"{item['metadata']['name']}=={item['metadata']['version']}"
            for item in items
            if canonical(item["metadata"]["name"]) not in pins
        )
    )
    summary = ", ".join(added) if added else "nothing beyond the image's packages"
    return Resolution(True, f"{requirements.name} resolves with the image's pins; it adds {summary}", added)
