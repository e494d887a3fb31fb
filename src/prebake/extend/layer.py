"""A package layer: extra requirements installed once into a content-hashed folder of a cache directory,
beside (never into) the image's environment.

    CACHE/layers/<key>/            complete layers only: each appears by one atomic rename
        lib/python3.X/site-packages
        prebake-layer.json         what was asked, what was installed, how long it took
    CACHE/layers/.tmp-<key>-*/     an install in progress; removed when it fails

The key hashes everything that decides the result (the requirements text, the pins, the wheelhouse's
files, the interpreter and platform), so a start with the same inputs finds the layer and runs no pip. pip
runs with the pins as constraints: it can add packages, never change one the image holds. A lock file
beside the layers serialises replicas that share one cache volume.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prebake.errors import ConfigError
from prebake.extend.pins import conflicts, constraints_text, requirement_lines

MANIFEST = "prebake-layer.json"
PIP_TIMEOUT_S = 300.0


class ExtraPackagesError(ConfigError):
    """Extra requirements cannot be installed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class LayerRequest:
    """Everything one layer is made from."""

    requirements: Path
    pins: Mapping[str, str]
    cache_dir: Path
    wheelhouse: Path | None = None
    python: str = sys.executable
    timeout_s: float = PIP_TIMEOUT_S

    def key(self) -> str:
        """The content hash naming the layer."""
        digest = hashlib.sha256()
        for part in (
            *(path.read_bytes() for path in requirement_files(self.requirements)),
            constraints_text(self.pins).encode(),
            _wheelhouse_listing(self.wheelhouse).encode(),
            f"{sys.implementation.cache_tag} {platform.machine()} {sys.platform}".encode(),
        ):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Layer:
    root: Path
    site_packages: tuple[Path, ...]
    cached: bool
    seconds: float


_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")


def requirement_files(requirements: Path, seen: frozenset[Path] = frozenset()) -> list[Path]:
    """The requirements file and every file it includes (-r, -c), so a change in any makes a new layer."""
    path = requirements.resolve()
    if path in seen or not path.is_file():
        return []
    files = [path]
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := _INCLUDE.match(line):
            files += requirement_files(path.parent / match[1], seen | {path})
    return files


def site_packages(root: Path) -> tuple[Path, ...]:
    """The site-packages folders pip made under a ``--prefix`` root (lib and lib64, any Python minor)."""
    return tuple(sorted(root.glob("lib*/python*/site-packages")))


def ensure_layer(request: LayerRequest) -> Layer:
    """The layer for ``request``: found in the cache, or installed now; ExtraPackagesError leaves nothing."""
    started = time.monotonic()
    layers = request.cache_dir / "layers"
    key = request.key()
    final = layers / key
    if (final / MANIFEST).is_file():
        return Layer(final, site_packages(final), cached=True, seconds=time.monotonic() - started)
    try:
        layers.mkdir(parents=True, exist_ok=True)
        lock = (layers / f".lock-{key}").open("w")
    except OSError as error:
        raise ExtraPackagesError(
            f"the package cache {request.cache_dir} is not writable ({error.strerror}): mount a writable volume "
            "there or set PREBAKE_CACHE_DIR to a writable folder"
        ) from error
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another replica may be installing the same layer
        if (final / MANIFEST).is_file():
            return Layer(final, site_packages(final), cached=True, seconds=time.monotonic() - started)
        _install(request, layers, final)
    return Layer(final, site_packages(final), cached=False, seconds=time.monotonic() - started)


def _install(request: LayerRequest, layers: Path, final: Path) -> None:
    text = request.requirements.read_text(encoding="utf-8")
    if found := conflicts(requirement_lines(text), request.pins):
        raise ExtraPackagesError(
            f"{request.requirements}: " + "; ".join(conflict.message() for conflict in found)
        )
    scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=layers))
    try:
        constraints = scratch / "constraints.txt"
        constraints.write_text(constraints_text(request.pins), encoding="utf-8")
        prefix = scratch / "layer"
        started = time.monotonic()
        output = _pip(request, prefix, constraints)
        installed = sorted(p.name for sp in site_packages(prefix) for p in sp.glob("*.dist-info"))
        manifest = {
            "requirements": text,
            "installed": installed,
            "seconds": round(time.monotonic() - started, 2),
            "wheelhouse": str(request.wheelhouse) if request.wheelhouse else None,
            "pip_tail": output.splitlines()[-3:],
        }
        prefix.mkdir(exist_ok=True)
        (prefix / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.rename(prefix, final)  # atomic: the layer is there whole, or not at all
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def pip_arguments(request: LayerRequest, prefix: Path, constraints: Path) -> list[str]:
    """The pip command that installs the layer (wheels only, pins as constraints, quick network failure)."""
    args = [
        request.python, "-m", "pip", "install",
        "--prefix", str(prefix),
        "--constraint", str(constraints),
        "--requirement", str(request.requirements.resolve()),
        "--only-binary", ":all:",
        "--no-input", "--disable-pip-version-check", "--no-warn-script-location", "--no-cache-dir",
        "--retries", "1", "--timeout", "10",
    ]  # fmt: skip
    if request.wheelhouse is not None:
        args += ["--no-index", "--find-links", str(request.wheelhouse)]
    return args


def _pip(request: LayerRequest, prefix: Path, constraints: Path) -> str:
    env = dict(os.environ, PIP_NO_INPUT="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        result = subprocess.run(
            pip_arguments(request, prefix, constraints),
            capture_output=True,
            text=True,
            cwd=request.requirements.parent,
            env=env,
            timeout=request.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ExtraPackagesError(
            f"installing {request.requirements} took over {request.timeout_s:.0f} s and was stopped; nothing was "
            "installed. Give a wheelhouse (PREBAKE_WHEELHOUSE) or build a derived image with `prebake extend`"
        ) from error
    if result.returncode != 0:
        raise ExtraPackagesError(
            explain_pip_failure(result.stdout + result.stderr, request.requirements, request.wheelhouse)
        )
    return result.stdout


_NETWORK = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|Failed to establish|"
    r"ConnectTimeout|ProxyError|No route to host|SSLError"
)


def explain_pip_failure(output: str, requirements: Path, wheelhouse: Path | None, *, where: str = "") -> str:
    """A message a user can act on, from pip's output: the conflict, the network, a broken wheel, a typo."""
    where = where or f"installing {requirements} failed; nothing was installed"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if "ResolutionImpossible" in output or "conflict is caused by" in output:
        cause = _section(lines, "The conflict is caused by:")
        return (
            f"{where}: the requirements cannot be resolved against the image's pinned packages"
            f"{(': ' + '; '.join(cause)) if cause else ''}. A line marked '(constraint)' is the image's pin: "
            "relax your requirement, or choose an image whose pins fit"
        )
    if wheelhouse is None and _NETWORK.search(output):
        return (
            f"{where}: no package index is reachable. Give a local wheelhouse with PREBAKE_WHEELHOUSE=/path "
            "(pip download -r requirements.txt -d wheels), or build a derived image with `prebake extend`"
        )
    if re.search(r"is not a valid wheel|BadZipFile|invalid wheel|Wheel .* is invalid", output):
        return f"{where}: a wheel is broken: {_last_error(lines)}. Download it again"
    if "No matching distribution found" in output or "Could not find a version" in output:
        source = f"wheelhouse {wheelhouse}" if wheelhouse else "the package index"
        return (
            f"{where}: {_last_error(lines)} in {source} (wheels only: a package that has no wheel for "
            "this Python needs `prebake extend`). Check the name and version"
        )
    return f"{where}: {_last_error(lines)}"


def _section(lines: Sequence[str], heading: str) -> list[str]:
    if heading not in lines:
        return []
    start = lines.index(heading) + 1
    taken: list[str] = []
    for line in lines[start:]:
        if line.startswith(("To fix", "Additionally", "ERROR", "For more")):
            break
        taken.append(line)
        if len(taken) == 6:
            break
    return taken


def _last_error(lines: Sequence[str]) -> str:
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    return errors[-1] if errors else (lines[-1] if lines else "pip failed without output")


def _wheelhouse_listing(wheelhouse: Path | None) -> str:
    if wheelhouse is None:
        return ""
    return "\n".join(f"{p.name} {p.stat().st_size}" for p in sorted(wheelhouse.iterdir()) if p.is_file())
