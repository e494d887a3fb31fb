"""``prebake extend``: a derived image FROM a prebuilt one, with more Python and Debian packages.

The Containerfile is one template (Containerfile.extend.in) rendered by a pure function. Before anything
is built, the inputs are checked (the image exists, the requirements do not change a pinned package, the
apt names are names); the build runs under a temporary tag, the result is smoke-tested with the image's
own test, and only then tagged: a failure at any step leaves no tag behind.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from prebake.errors import ConfigError, ImageError
from prebake.extend.layer import explain_pip_failure
from prebake.extend.pins import conflicts, pins_from_lock, requirement_lines
from prebake.images.catalog import Image
from prebake.images.engine import Engine, EngineFailed
from prebake.images.render import render_labels

TEMPLATE = Path(__file__).with_name("Containerfile.extend.in")
SBOM_UPDATE = Path(__file__).with_name("sbom_update.py")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.:~+-]+)?$")
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
_TAG = re.compile(r"^[a-z0-9]+([._/:-][a-zA-Z0-9]+)*(:[\w][\w.-]{0,127})?$")


class ExtendFailed(ImageError):
    """The derived image could not be built or failed its test; nothing was tagged."""


@dataclass(frozen=True, slots=True)
class ExtendSpec:
    image: Image
    tag: str
    requirements: Path | None = None
    apt: tuple[str, ...] = ()
    wheelhouse: Path | None = None
    ca_bundle: Path | None = None
    base: str | None = None  # the reference to build FROM; the catalog image's by default

    @property
    def base_reference(self) -> str:
        return self.base or self.image.reference


@dataclass(frozen=True, slots=True)
class ExtendResult:
    tag: str
    base: str
    seconds: float
    tested: bool
    size_bytes: int

    def summary(self) -> str:
        tested = "smoke test passed" if self.tested else "not tested (--no-test)"
        return f"built {self.tag} FROM {self.base}  {self.size_bytes / 1e6:.0f} MB  in {self.seconds:.1f} s; {tested}"


def labels(spec: ExtendSpec) -> dict[str, str]:
    """Labels the derived image overrides; the prebuilt image's others (framework, versions) are inherited."""
    requirements = (
        " ".join(requirement_lines(spec.requirements.read_text(encoding="utf-8")))
        if spec.requirements
        else ""
    )
    return {
        "org.opencontainers.image.title": spec.tag,
        "org.opencontainers.image.ref.name": spec.tag,
        "org.opencontainers.image.base.name": spec.base_reference,
        "org.opencontainers.image.description": f"{spec.image.name} extended by prebake extend",
        "ai.prebake.extended-from": spec.image.name,
        "ai.prebake.extra-requirements": requirements,
        "ai.prebake.extra-apt": " ".join(spec.apt),
    }


def render_containerfile(spec: ExtendSpec, template: str | None = None) -> str:
    """The derived image's Containerfile (a pure function of ``spec``)."""
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    values = {
        "tag": spec.tag,
        "base": spec.base_reference,
        "apt": " ".join(spec.apt),
        "pip_source": "--no-index --find-links /tmp/prebake-extend/wheels" if spec.wheelhouse else "",
        "labels": render_labels(labels(spec)),
    }
    if missing := set(_PLACEHOLDER.findall(text)) - values.keys():
        raise ImageError(f"extend template uses unknown placeholders: {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda match: values[match[1]], text)


def validate(spec: ExtendSpec) -> None:
    """Every check that needs no build, so a bad input fails in milliseconds (ConfigError)."""
    if not _TAG.match(spec.tag):
        raise ConfigError(f"-t {spec.tag!r} is not a valid image reference (e.g. my/model-image:1)")
    if not _REFERENCE.match(spec.base_reference):
        raise ConfigError(f"--from {spec.base_reference!r} is not an image reference")
    if spec.requirements is None and not spec.apt:
        raise ConfigError("nothing to add: give -r requirements.txt and/or --apt PACKAGE")
    for name in spec.apt:
        if not _APT_NAME.match(name):
            raise ConfigError(
                f"--apt {name!r} is not a Debian package name (lower case letters, digits, + - .)"
            )
    if spec.requirements is not None:
        if not spec.requirements.is_file():
            raise ConfigError(f"requirements file {spec.requirements} does not exist")
        if spec.image.lock_file.is_file():
            pins = pins_from_lock(spec.image.lock_file.read_text(encoding="utf-8"))
            lines = requirement_lines(spec.requirements.read_text(encoding="utf-8"))
            if found := conflicts(lines, pins):
                raise ConfigError("; ".join(conflict.message() for conflict in found))
    if spec.wheelhouse is not None and not spec.wheelhouse.is_dir():
        raise ConfigError(f"wheelhouse {spec.wheelhouse} is not a folder")
    if spec.ca_bundle is not None and not spec.ca_bundle.is_file():
        raise ConfigError(f"CA bundle {spec.ca_bundle} not found")


def extend_image(
    spec: ExtendSpec, engine: Engine, *, test: bool = True, log_dir: Path | None = None
) -> ExtendResult:
    """Build, test and tag the derived image; ConfigError or ExtendFailed (nothing tagged) otherwise."""
    started = time.monotonic()
    validate(spec)
    if not engine.image_exists(spec.base_reference):
        raise ConfigError(
            f"{spec.base_reference} is not built here: run `prebake build {spec.image.name}` first"
        )
    temporary = f"localhost/prebake-extending/{spec.image.name}:{uuid.uuid4().hex[:12]}"
    cache_before = engine.build_cache_ids()
    with tempfile.TemporaryDirectory(prefix="prebake-extend-") as scratch:
        context = Path(scratch)
        files = context / "extend"
        files.mkdir()
        (files / "requirements.txt").write_bytes(spec.requirements.read_bytes() if spec.requirements else b"")
        shutil.copy2(SBOM_UPDATE, files / "sbom_update.py")
        (files / "wheels").mkdir()
        if spec.wheelhouse is not None:
            for wheel in spec.wheelhouse.glob("*.whl"):
                shutil.copy2(wheel, files / "wheels" / wheel.name)
        (context / "Containerfile").write_text(render_containerfile(spec), encoding="utf-8")
        secret = context / "ca.pem"
        secret.write_bytes(spec.ca_bundle.read_bytes() if spec.ca_bundle else b"")
        log = (log_dir or context) / "extend-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        args = [
            "build",
            "-f",
            str(context / "Containerfile"),
            "--secret",
            f"id=ca,src={secret}",
            "-t",
            temporary,
        ]
        if engine.name == "podman":
            args += ["--format", "docker", "--force-rm"]  # keeps HEALTHCHECK and STOPSIGNAL
        print(f"prebake extend: building {spec.tag} FROM {spec.base_reference}", file=sys.stderr, flush=True)
        try:
            try:
                engine.stream(*args, str(context), log=log)
            except EngineFailed as error:
                raise ExtendFailed(
                    _explain_build(log.read_text(encoding="utf-8", errors="replace"), spec, error)
                ) from error
            if test:
                _test(spec, engine, temporary)
            engine.run("tag", temporary, spec.tag)
        finally:
            engine.remove_image(temporary)
            # docker keeps the context (the wheelhouse) as BuildKit cache records: this build's go too.
            engine.prune_build_cache(engine.build_cache_ids() - cache_before)
    size = engine.inspect_image(spec.tag).get("Size", 0)
    return ExtendResult(
        spec.tag,
        spec.base_reference,
        time.monotonic() - started,
        test,
        int(size) if isinstance(size, int | float) else 0,
    )


def _test(spec: ExtendSpec, engine: Engine, reference: str) -> None:
    from prebake.images.smoke import SmokeFailed, smoke_test

    try:
        result = smoke_test(spec.image, engine, reference=reference)
    except SmokeFailed as error:
        raise ExtendFailed(
            f"the derived image built but failed its smoke test; not tagged: {error.message}"
        ) from error
    print(f"prebake extend: {result.summary()}", file=sys.stderr, flush=True)
    user = engine.inspect_image(reference).get("Config")
    if isinstance(user, dict) and user.get("User") in ("", "0", "root", None):
        raise ExtendFailed("the derived image runs as root; it must stay non-root")


def _explain_build(log: str, spec: ExtendSpec, error: EngineFailed) -> str:
    missing = re.findall(r"E: (?:Unable to locate package|Package) '?([^\s']+)", log)
    if missing:
        names = ", ".join(sorted(set(missing)))
        return (
            f"apt package {names} does not exist in {spec.image.os} ({spec.image.base.key}); check the name "
            "(apt-cache search NAME, or packages.debian.org/bookworm). Nothing was tagged"
        )
    if spec.requirements is not None and "ERROR:" in log:
        return explain_pip_failure(
            log,
            spec.requirements,
            spec.wheelhouse,
            where=f"installing {spec.requirements.name} into {spec.tag} failed; nothing was tagged",
        )
    return f"building {spec.tag} failed; nothing was tagged: {error.message}"


def image_labels(engine: Engine, reference: str) -> dict[str, str]:
    """The labels of a built image (for tests and `prebake images show`)."""
    config = engine.inspect_image(reference).get("Config") or engine.inspect_image(reference).get("Labels")
    found = config.get("Labels") if isinstance(config, dict) else None
    return dict(found) if isinstance(found, dict) else {}


def sbom_of(engine: Engine, reference: str) -> dict[str, object]:
    """The SBOM inside an image."""
    out = engine.run_in(reference, "cat", "/usr/share/doc/prebake/sbom.json")
    document: dict[str, object] = json.loads(out)
    return document
