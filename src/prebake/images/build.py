"""Build catalog images: assemble a context (rendered Containerfile, lock, wheels, SBOM), run the engine,
and tag the result only when every step succeeded.

The engine builds under a temporary tag; the image's real reference is added after success and the
temporary tag removed either way, so a failed build leaves no half-tagged image behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prebake.errors import ImageError
from prebake.images.catalog import Catalog, Image
from prebake.images.engine import Engine, EngineFailed
from prebake.images.lock import PYPROJECT, has_local_wheels
from prebake.images.render import render_containerfile
from prebake.images.sbom import make_sbom, write_sbom

DEFAULT_OUTPUT = Path("out/images")


class BuildFailed(ImageError):
    """A build step failed; the message names it."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    image: Image
    reference: str
    base: str
    size_bytes: int
    seconds: float
    output_dir: Path
    image_id: str = ""  # what was built, even if another build later moves the tag

    def summary(self) -> str:
        """The one-line summary a build ends with."""
        return f"built {self.reference}  {self.size_bytes / 1e6:.0f} MB  in {self.seconds:.1f} s  (base {self.base})"


def resolve_base(image: Image, engine: Engine, base: str) -> str:
    """'auto' (the local debootstrap base if present, else the registry one), 'local', 'registry', or a reference."""
    if base == "auto":
        return image.base.local if engine.image_exists(image.base.local) else image.base.registry
    if base == "local":
        if not engine.image_exists(image.base.local):
            raise ImageError(f"local base {image.base.local} not found: run `prebake base` first")
        return image.base.local
    if base == "registry":
        return image.base.registry
    return base


def build_prebake_wheel(destination: Path, pyproject: Path = PYPROJECT) -> Path:
    """Build prebake's own wheel from the checkout into ``destination`` (once per command)."""
    if not pyproject.is_file():
        raise ImageError(f"building images needs a prebake checkout: {pyproject} not found")
    destination.mkdir(parents=True, exist_ok=True)
    _progress("building the prebake wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(destination),
            str(pyproject.parent),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(destination.glob("prebake-*.whl"))
    if result.returncode != 0 or not wheels:
        raise BuildFailed(f"building the prebake wheel failed: {result.stderr.strip()[-500:]}")
    return wheels[-1]


def debian_packages(engine: Engine, base: str) -> list[tuple[str, str]]:
    """(package, version) of the base's Debian packages, for the SBOM; empty when the base is not local."""
    if not engine.image_exists(base):
        return []
    try:
        out = engine.run_in(base, "dpkg-query", "-W", "-f=${Package}\t${Version}\n")
    except EngineFailed:
        return []
    return [tuple(line.split("\t", 1)) for line in out.splitlines() if "\t" in line]  # type: ignore[misc]


def _revision() -> str:
    result = subprocess.run(
        ["git", "-C", str(PYPROJECT.parent), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build_image(
    image: Image,
    catalog: Catalog,
    engine: Engine,
    *,
    prebake_wheel: Path,
    base: str = "auto",
    ca_bundle: Path | None = None,
    output_root: Path = DEFAULT_OUTPUT,
) -> BuildResult:
    """Build one image and tag it ``image.reference``; BuildFailed (nothing tagged) when a step fails."""
    started = time.monotonic()
    if not image.lock_file.is_file():
        raise BuildFailed(
            f"{image.name} has no lock file ({image.lock_file}): run `prebake images lock {image.name}`"
        )
    if ca_bundle is not None and not ca_bundle.is_file():
        raise ImageError(f"CA bundle {ca_bundle} not found")
    base_reference = resolve_base(image, engine, base)
    output_dir = output_root / image.name
    output_dir.mkdir(parents=True, exist_ok=True)
    temporary = f"localhost/prebake-building/{image.name}:{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="prebake-build-") as scratch:
        context = Path(scratch)
        (context / "wheels").mkdir()
        shutil.copy2(prebake_wheel, context / "wheels" / prebake_wheel.name)
        local = has_local_wheels(image)
        for wheel in local:
            _link_or_copy(wheel, context / "wheels" / wheel.name)
        lock_text = image.lock_file.read_text(encoding="utf-8")
        (context / "requirements.lock").write_text(lock_text, encoding="utf-8")
        containerfile = render_containerfile(image, catalog)
        (context / "Containerfile").write_text(containerfile, encoding="utf-8")
        (output_dir / "Containerfile").write_text(containerfile, encoding="utf-8")
        sbom = make_sbom(
            image,
            lock_text,
            prebake_wheel_sha256=hashlib.sha256(prebake_wheel.read_bytes()).hexdigest(),
            base_reference=base_reference,
            debian_packages=debian_packages(engine, base_reference),
        )
        write_sbom(sbom, context / "sbom.json")
        write_sbom(sbom, output_dir / "sbom.json")
        # The CA bundle travels as a build secret: pip reads it, no layer keeps it.
        secret = Path(scratch) / "ca.pem"
        secret.write_bytes(ca_bundle.read_bytes() if ca_bundle else b"")
        args = ["build", "-f", str(context / "Containerfile"), "--build-arg", f"BASE_IMAGE={base_reference}"]
        if engine.name == "podman":
            # Docker format keeps HEALTHCHECK and STOPSIGNAL, which the OCI image config has no field for.
            args += ["--format", "docker", "--force-rm"]
        if local:
            args += ["--build-arg", "EXTRA_INDEX_URL="]
        args += [
            "--secret", f"id=ca,src={secret}",
            "--label", f"org.opencontainers.image.created={datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "--label", f"org.opencontainers.image.revision={_revision()}",
            "-t", temporary,
            str(context),
        ]  # fmt: skip
        _progress(f"building {image.name} from {base_reference} with {engine.name}")
        try:
            engine.stream(*args, log=output_dir / "build.log")
            engine.run("tag", temporary, image.reference)
        except EngineFailed as error:
            raise BuildFailed(
                f"building {image.name} failed (full log: {output_dir / 'build.log'}): {error.message}"
            ) from error
        finally:
            engine.remove_image(temporary)
    inspected = engine.inspect_image(image.reference)
    size = inspected.get("Size", 0)
    result = BuildResult(
        image=image,
        reference=image.reference,
        base=base_reference,
        size_bytes=int(size) if isinstance(size, int | float) else 0,
        seconds=time.monotonic() - started,
        output_dir=output_dir,
        image_id=str(inspected.get("Id", "")),
    )
    (output_dir / "build.json").write_text(
        json.dumps(
            {"image": image.name, "reference": result.reference, "id": result.image_id, "base": base_reference,
             "size_bytes": result.size_bytes, "seconds": round(result.seconds, 1)},
            indent=2,
        ) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    return result


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _progress(message: str) -> None:
    print(f"prebake build: {message}", file=sys.stderr, flush=True)
