"""Build a base image locally with debootstrap, for hosts that reach Debian's archive but no registry.

The result is equivalent to ``python:3.X-slim-SUITE`` for our purpose: Debian (bookworm for Debian 12,
trixie for Debian 13) with its own Python and venv, and CA certificates. Docs, man pages, locales and apt's
lists and caches are removed: they are about half the rootfs and nothing at inference time reads them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prebake.errors import ImageError
from prebake.images.catalog import Base
from prebake.images.engine import Engine

PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Relative to the rootfs; each is emptied, not removed, so packages that expect the folder still find it.
STRIP = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/i18n",
    "usr/share/zoneinfo/right",
    # glibc's iconv modules for legacy encodings; Python brings its own codecs.
    "usr/lib/x86_64-linux-gnu/gconv",
)


@dataclass(frozen=True, slots=True)
class BaseResult:
    reference: str
    size_bytes: int
    seconds: float


def bootstrap_base(
    engine: Engine,
    base: Base,
    *,
    reference: str | None = None,
    mirror: str | None = None,
    force: bool = False,
) -> BaseResult:
    """Make ``base.local`` (or ``reference``) with debootstrap + import, unless it already exists
    (``force`` rebuilds).

    Needs root (debootstrap creates device nodes and chowns files) and the debootstrap package.
    """
    started = time.monotonic()
    reference = reference or base.local
    if not base.suite:
        raise ImageError(
            f"base {base.key} names no Debian suite in the catalog, so it cannot be bootstrapped"
        )
    if not force and engine.image_exists(reference):
        return BaseResult(reference, _size(engine, reference), time.monotonic() - started)
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise ImageError(
            "debootstrap is not installed: run scripts/install-podman.sh (or apt-get install debootstrap), "
            f"or build with --base pointing at a registry image such as {base.registry}"
        )
    if os.geteuid() != 0:
        raise ImageError("prebake base needs root (debootstrap creates device nodes); run it with sudo")
    with tempfile.TemporaryDirectory(prefix="prebake-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        command = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            base.suite,
            str(rootfs),
        ]
        if mirror:
            command.append(mirror)
        _progress(f"debootstrap {base.suite} ({', '.join(PACKAGES)})")
        result = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        if result.returncode != 0:
            tail = "\n".join(result.stdout.strip().splitlines()[-8:])
            raise ImageError(f"debootstrap failed (exit {result.returncode}):\n{tail}")
        _progress("stripping docs, locales and apt caches")
        _strip(rootfs)
        _progress(f"importing as {reference}")
        archive = Path(scratch) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        engine.run(
            "import",
            "--change",
            'CMD ["/usr/bin/python3"]',
            "--change",
            "ENV LANG=C.UTF-8",
            str(archive),
            reference,
        )
    return BaseResult(reference, _size(engine, reference), time.monotonic() - started)


def _strip(rootfs: Path) -> None:
    for relative in STRIP:
        folder = rootfs / relative
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _size(engine: Engine, reference: str) -> int:
    size = engine.inspect_image(reference).get("Size", 0)
    return int(size) if isinstance(size, int | float) else 0


def _progress(message: str) -> None:
    print(f"prebake base: {message}", file=sys.stderr, flush=True)
