"""Build catalog images: assemble a context (rendered Containerfile, lock, wheels, SBOM), run the engine,
and tag the result only when every step succeeded.

The engine builds under a temporary tag; the image's real reference is added after success and the
temporary tag removed either way, so a failed build leaves no half-tagged image behind.

A build leaves nothing else behind either, unless asked to keep its cache: the builder stage's images
podman keeps (labelled ``ai.prebake.stage=build`` by the template) are removed after the build, and so are
the BuildKit cache records a docker build adds. ``cache=True`` keeps them (labelled
``ai.prebake.stage=build``) so the next build of the same lock reuses them; ``prebake images prune``
removes them. Each build reports what it added to the engine's store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
from prebake.images.lock import has_local_wheels
from prebake.images.render import render_containerfile
from prebake.images.sbom import make_sbom, write_sbom
from prebake.images.selfwheel import CHECKOUT, is_checkout, prebake_wheel
from prebake.images.state import remember_cache

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
    added_bytes: int = 0  # what the engine's store grew by, the image included
    cache_bytes: int = 0  # builder stages / build cache kept for the next build (cache=True), else 0

    def summary(self) -> str:
        """The lines a build ends with: image, size, time, and the disk it used."""
        kept = (
            f"builder cache kept: {self.cache_bytes / 1e6:.0f} MB (`prebake images prune` removes it)"
            if self.cache_bytes
            else "nothing else left behind"
        )
        return (
            f"built {self.reference}  {self.size_bytes / 1e6:.0f} MB  in {self.seconds:.1f} s  (base {self.base})\n"
            f"  disk: the engine's store grew by {max(self.added_bytes, 0) / 1e6:.0f} MB; {kept}"
        )


def resolve_base(image: Image, engine: Engine, base: str) -> str:
    """'auto' (the local debootstrap base if present, else the registry one), 'local', 'registry', or a reference."""
    if base == "auto":
        return image.base.local if engine.image_exists(image.base.local) else image.base.registry
    if base == "local":
        if not engine.image_exists(image.base.local):
            raise ImageError(
                f"local base {image.base.local} not found: run `prebake base --base {image.base.key}` first"
            )
        return image.base.local
    if base == "registry":
        return image.base.registry
    return base


def build_prebake_wheel(destination: Path) -> Path:
    """prebake's own wheel for the image: built from the checkout, or packed from the installed prebake."""
    return prebake_wheel(destination)


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
    if not is_checkout():
        from prebake import __version__

        return f"prebake-{__version__}"  # an installed prebake: its version is what it was built from
    result = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
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
    cache: bool = False,
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
    images_before, cache_before = engine.image_ids(), engine.build_cache_ids()
    store_before = engine.store_bytes()
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
            # --layers keeps one layer per step (so `images show --layers` says what each costs); the
            # builder stage's images it leaves are removed after the build unless --cache keeps them.
            args += ["--format", "docker", "--force-rm", "--layers=true"]
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
            cache_bytes = _leftovers(
                engine, images_before, cache_before, keep=cache, own=committed_by(output_dir / "build.log")
            )
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
        added_bytes=engine.store_bytes() - store_before,
        cache_bytes=cache_bytes,
    )
    (output_dir / "build.json").write_text(
        json.dumps(
            {"image": image.name, "reference": result.reference, "id": result.image_id, "base": base_reference,
             "engine": engine.name, "size_bytes": result.size_bytes, "seconds": round(result.seconds, 1),
             "added_bytes": result.added_bytes, "cache_bytes": result.cache_bytes},
            indent=2,
        ) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    return result


def committed_by(log: Path) -> set[str]:
    """The image ids a podman build log says the build committed itself (``--> ID`` after each step),
    not those it reused from the cache (``--> Using cache ID``)."""
    if not log.is_file():
        return set()
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    reused = {
        m.group(1)
        for line in lines
        if (m := re.fullmatch(r"--> Using cache ([0-9a-f]{12,64})", line.strip()))
    }
    steps = {m.group(1) for line in lines if (m := re.fullmatch(r"--> ([0-9a-f]{11,64})", line.strip()))}
    return {short for short in steps if not any(full.startswith(short) for full in reused)}


def _leftovers(
    engine: Engine, images_before: set[str], cache_before: set[str], *, keep: bool, own: set[str]
) -> int:
    """Remove (or, with ``keep``, remember) what the build added besides its image; bytes kept.

    With podman only the stage images this build's log names are touched: the store is shared, and another
    build running at the same time has builder-stage images too (removing one under its running step fails
    that build: its files vanish mid-``pip install``)."""
    new_cache = engine.build_cache_ids() - cache_before
    new_images = {
        image_id
        for image_id in engine.image_ids() - images_before
        if (engine.name != "podman" or any(image_id.removeprefix("sha256:").startswith(i) for i in own))
        and _labels(engine, image_id).get("ai.prebake.stage") == "build"
    }
    if not keep:
        engine.prune_build_cache(new_cache)
        for image_id in sorted(new_images, key=lambda i: _created(engine, i), reverse=True):
            engine.remove_image(image_id)  # children first: a parent goes once nothing uses it
        return 0
    remember_cache(engine.name, new_cache)
    return sum(engine.image_size(image_id) for image_id in new_images) + _cache_size(engine, new_cache)


def _created(engine: Engine, image_id: str) -> str:
    try:
        return str(engine.inspect_image(image_id).get("Created", ""))
    except EngineFailed:
        return ""


def _labels(engine: Engine, image_id: str) -> dict[str, str]:
    try:
        config = engine.inspect_image(image_id).get("Config")
    except EngineFailed:
        return {}
    labels = config.get("Labels") if isinstance(config, dict) else None
    return dict(labels) if isinstance(labels, dict) else {}


def _cache_size(engine: Engine, ids: set[str]) -> int:
    if not ids:
        return 0
    from prebake.images.engine import parse_size

    out = engine.run("system", "df", "--verbose", "--format", "{{json .BuildCache}}")
    return sum(parse_size(str(r.get("Size", "0B"))) for r in json.loads(out or "[]") or [] if r["ID"] in ids)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _progress(message: str) -> None:
    print(f"prebake build: {message}", file=sys.stderr, flush=True)
