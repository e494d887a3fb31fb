"""Lock files: every package an image installs, pinned with hashes, made by one command.

``prebake images lock NAME`` runs ``uv pip compile --generate-hashes`` over the image's catalog packages
plus prebake's own server dependencies (read from pyproject.toml), for the image's Python on x86-64 Linux.
Builds then install with ``pip install --require-hashes --no-deps``: the lock is the whole environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from prebake.errors import ImageError
from prebake.images.catalog import Image

# The repository root when prebake runs from a checkout (locks are made there, then committed).
PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
PLATFORM = "x86_64-manylinux_2_28"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _installed_project() -> dict[str, Any]:
    """dependencies and optional-dependencies of the installed prebake, read from its METADATA."""
    import importlib.metadata
    import re

    try:
        requires = importlib.metadata.requires("prebake") or []
    except importlib.metadata.PackageNotFoundError as error:
        raise ImageError("locking needs a prebake checkout or an installed prebake") from error
    project: dict[str, Any] = {"dependencies": [], "optional-dependencies": {}}
    for line in requires:
        requirement, _, marker = line.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra:
            project["optional-dependencies"].setdefault(extra[1], []).append(requirement.strip())
        else:
            project["dependencies"].append(requirement.strip())
    return project


def server_requirements(extras: tuple[str, ...], pyproject: Path = PYPROJECT) -> list[str]:
    """prebake's runtime dependencies plus the image's server extras, as written in pyproject.toml (or,
    without a checkout, in the installed prebake's metadata)."""
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    else:
        project = _installed_project()
    requirements = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ImageError(
                f"prebake has no extra {extra!r} (pyproject.toml: {', '.join(sorted(optional))})"
            )
        requirements += optional[extra]
    return requirements


def lock_inputs(image: Image, pyproject: Path = PYPROJECT) -> str:
    """The requirements.in text for an image: a pure function of the catalog entry and pyproject."""
    lines = [
        f"# {image.name}: prebake server",
        *server_requirements(image.server_extras, pyproject),
        f"# {image.name}: catalog",
    ]
    lines += image.packages
    return "\n".join(lines) + "\n"


def local_wheel_dirs() -> list[Path]:
    """Folders in PIP_FIND_LINKS (space separated) that exist: local wheels, e.g. the CPU torch wheel."""
    return [Path(item) for item in os.environ.get("PIP_FIND_LINKS", "").split() if Path(item).is_dir()]


def has_local_wheels(image: Image) -> list[Path]:
    """Local wheel files for the image's packages that carry a local version label (e.g. torch 2.13.0+cpu)."""
    found = []
    for requirement in image.packages:
        name, _, version = requirement.partition("==")
        if "+" not in version:
            continue
        stem = f"{name.split('[')[0].replace('-', '_')}-{version}-"
        for folder in local_wheel_dirs():
            found += sorted(folder.glob(f"{stem}*.whl"))
    return found


def lock_image(image: Image, *, uv: str | None = None) -> Path:
    """Write image.lock_file; ImageError with uv's message when resolution fails."""
    uv = uv or shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        raise ImageError("locking needs uv: pip install uv")
    wheels = has_local_wheels(image)
    with tempfile.TemporaryDirectory(prefix="prebake-lock-") as scratch:
        # Run from the scratch folder with a relative input so the lock's "via -r" notes name no temp path.
        Path(scratch, "requirements.in").write_text(lock_inputs(image), encoding="utf-8")
        command = [
            uv, "pip", "compile", "requirements.in",
            "--output-file", str(image.lock_file.resolve()),
            "--generate-hashes",
            "--python-version", image.python,
            "--python-platform", PLATFORM,
            "--index-url", "https://pypi.org/simple",
            "--custom-compile-command", f"prebake images lock {image.name}",
            "--quiet",
        ]  # fmt: skip
        if wheels:
            # The same wheel as on the framework's index, served from a local folder where that index
            # cannot be reached; its hash is the same either way.
            command += ["--find-links", str(wheels[0].parent)]
        elif image.index:
            command += ["--extra-index-url", image.index, "--index-strategy", "unsafe-best-match"]
        env = dict(os.environ)
        if CA_BUNDLE.is_file():
            env.setdefault("SSL_CERT_FILE", str(CA_BUNDLE))
        image.lock_file.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=scratch, check=False)
    if result.returncode != 0:
        detail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise ImageError(f"locking {image.name} failed:\n{detail}")
    return image.lock_file
