"""The image catalog: catalog.toml read, validated and frozen into ``Catalog`` / ``Image`` records.

The TOML file is the data; this module only checks it (names follow the pattern, packages are pinned
exactly, bases exist) and answers questions about it. Nothing is read at import.

    >>> catalog = load_catalog()
    >>> catalog.get("sklearn-1.9.1-debian12-py311-cpu-inference").framework
    'sklearn'
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prebake.errors import ConfigError, ImageError, NotFound

CATALOG_FILE = Path(__file__).with_name("catalog.toml")
LOCKS_DIR = Path(__file__).with_name("locks")
SMOKE_KINDS = frozenset(
    {"entry-script", "sklearn", "xgboost", "lightgbm", "onnxruntime", "pytorch", "tensorflow", "transformers"}
)
_DEVICE = re.compile(r"^(cpu|cuda\d+)$")
# HOST[:PORT]/PATH, as registries name repositories (no scheme, no tag): ghcr.io/prebake, 127.0.0.1:5000/ml.
_REGISTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
# A requirement pinned to one version: name, optional extras, "==", version (local labels like +cpu allowed).
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==(?P<version>[A-Za-z0-9.+!_-]+)$"
)


class CatalogError(ImageError):
    """catalog.toml breaks a rule; the message names the image and the rule."""


@dataclass(frozen=True, slots=True)
class Base:
    """A base image: a registry reference and the locally bootstrapped equivalent (debootstrap ``suite``)."""

    key: str
    registry: str
    local: str
    suite: str
    os: str
    python: str
    default: bool = False  # the catalog's first base; images on others are the same rows, newer platform


@dataclass(frozen=True, slots=True)
class Image:
    """One prebuilt image, as the catalog describes it."""

    name: str
    framework: str
    version: str
    device: str
    base: Base
    packages: tuple[str, ...]
    smoke: str
    description: str
    reference: str
    index: str | None = None
    system_packages: tuple[str, ...] = ()
    server_extras: tuple[str, ...] = ("grpc",)

    @property
    def gpu(self) -> bool:
        return self.device != "cpu"

    @property
    def os(self) -> str:
        return self.base.os

    @property
    def python(self) -> str:
        return self.base.python

    @property
    def environment(self) -> str:
        """The curated-environment name, as Azure ML names its environments after its images."""
        return f"prebake-{self.name}"

    @property
    def lock_file(self) -> Path:
        return LOCKS_DIR / f"{self.name}.txt"

    def pins(self) -> dict[str, str]:
        """Top-level package -> exact version, for tables."""
        result = {}
        for requirement in self.packages:
            match = _PIN.match(requirement)
            assert match is not None  # validated on load
            result[match["name"]] = match["version"]
        return result


@dataclass(frozen=True, slots=True)
class Catalog:
    images: tuple[Image, ...]
    bases: dict[str, Base]
    registry: str
    source: str
    licenses: str
    tag: str = "latest"

    def with_registry(self, registry: str | None) -> Catalog:
        """The same catalog with every reference under ``registry`` (HOST[:PORT]/PATH) instead of its own.

        >>> load_catalog().with_registry("registry.example.com:5000/ml").images[0].reference
        'registry.example.com:5000/ml/minimal-debian12-py311-cpu-inference:latest'
        """
        if registry is None or registry.rstrip("/") == self.registry:
            return self
        registry = check_registry(registry)
        images = tuple(
            replace(image, reference=f"{registry}/{image.name}:{self.tag}") for image in self.images
        )
        return replace(self, images=images, registry=registry)

    def find_reference(self, reference: str) -> Image | None:
        """The catalog image a reference names (any registry, tag or digest): its last path part is the name."""
        repository = reference.split("@", 1)[0]
        last = repository.rsplit("/", 1)[-1]
        name = last.split(":", 1)[0]
        return next((image for image in self.images if image.name == name), None)

    def get(self, name: str) -> Image:
        """The image called ``name``; NotFound naming the closest names otherwise."""
        for image in self.images:
            if image.name == name:
                return image
        names = [image.name for image in self.images]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise NotFound(f"unknown image {name!r}.{hint} `prebake images list` shows every image.")

    def names(self) -> list[str]:
        return [image.name for image in self.images]


def expected_name(framework: str, version: str, os: str, python: str, device: str) -> str:
    """The name the pattern gives; e.g. sklearn, 1.9.1, debian12, 3.11, cpu -> sklearn-1.9.1-debian12-py311-cpu-inference."""
    device_part = "cpu" if device == "cpu" else f"{device}-gpu"
    head = framework if not version else f"{framework}-{version}"
    return f"{head}-{os}-py{python.replace('.', '')}-{device_part}-inference"


def check_registry(registry: str) -> str:
    """``registry`` without a trailing slash; ConfigError (a usage error) unless it reads HOST[:PORT]/PATH."""
    registry = registry.rstrip("/")
    if not _REGISTRY.match(registry) or "/" not in registry and "." not in registry and ":" not in registry:
        raise ConfigError(
            f"--registry {registry!r} is not a registry path: give HOST[:PORT]/PATH, e.g. "
            "registry.example.com/ml or 127.0.0.1:5000/prebake (no scheme, no tag)"
        )
    return registry


def load_catalog(path: Path = CATALOG_FILE, *, registry: str | None = None) -> Catalog:
    """Read and validate a catalog file; CatalogError names the first problem found.

    ``registry`` (HOST[:PORT]/PATH) replaces the catalog's own registry in every image reference.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CatalogError(f"cannot read catalog {path}: {error}") from error
    return parse_catalog(data).with_registry(registry)


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Validate catalog data (already parsed from TOML) and freeze it."""
    if data.get("schema") != 1:
        raise CatalogError(f"catalog schema must be 1, got {data.get('schema')!r}")
    registry = _string(data, "registry", "catalog")
    tag = _string(data, "tag", "catalog")
    bases = {
        key: _base(key, value, default=index == 0)
        for index, (key, value) in enumerate(_table(data, "bases", "catalog").items())
    }
    images: list[Image] = []
    seen: set[str] = set()
    for index, entry in enumerate(data.get("images", [])):
        image = _image(entry, bases, registry, tag, where=f"images[{index}]")
        if image.name in seen:
            raise CatalogError(f"image {image.name!r} is listed twice")
        seen.add(image.name)
        images.append(image)
    if not images:
        raise CatalogError("catalog lists no images")
    return Catalog(
        images=tuple(images),
        bases=bases,
        registry=registry,
        source=_string(data, "source", "catalog"),
        licenses=_string(data, "licenses", "catalog"),
        tag=tag,
    )


def _base(key: str, value: Any, *, default: bool) -> Base:
    if not isinstance(value, dict):
        raise CatalogError(f"bases.{key} must be a table")
    where = f"bases.{key}"
    return Base(
        key=key,
        registry=_string(value, "registry", where),
        local=_string(value, "local", where),
        suite=str(value.get("suite", "")),  # only `prebake base` needs it
        os=_string(value, "os", where),
        python=_string(value, "python", where),
        default=default,
    )


def _image(entry: Any, bases: dict[str, Base], registry: str, tag: str, *, where: str) -> Image:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} must be a table")
    name = _string(entry, "name", where)
    where = f"image {name!r}"
    framework = _string(entry, "framework", where)
    version = entry.get("version", "")
    device = _string(entry, "device", where)
    base_key = _string(entry, "base", where)
    if base_key not in bases:
        raise CatalogError(f"{where}: unknown base {base_key!r} (bases: {', '.join(sorted(bases))})")
    base = bases[base_key]
    if not _DEVICE.match(device):
        raise CatalogError(f"{where}: device must be 'cpu' or 'cudaN', got {device!r}")
    expected = expected_name(framework, str(version), base.os, base.python, device)
    if name != expected:
        raise CatalogError(f"{where}: name does not follow the pattern; expected {expected!r}")
    packages = entry.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise CatalogError(f"{where}: packages must be a list of strings")
    for requirement in packages:
        if not _PIN.match(requirement):
            raise CatalogError(f"{where}: package {requirement!r} must be pinned exactly (name==version)")
    smoke = _string(entry, "smoke", where)
    if smoke not in SMOKE_KINDS:
        raise CatalogError(f"{where}: smoke must be one of {', '.join(sorted(SMOKE_KINDS))}, got {smoke!r}")
    index = entry.get("index")
    if index is not None and not (isinstance(index, str) and index.startswith("https://")):
        raise CatalogError(f"{where}: index must be an https:// URL")
    system_packages = entry.get("system_packages", [])
    if not isinstance(system_packages, list) or not all(
        isinstance(p, str) and re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", p) for p in system_packages
    ):
        raise CatalogError(f"{where}: system_packages must be a list of Debian package names")
    server_extras = entry.get("server_extras", ["grpc"])
    if not isinstance(server_extras, list) or not all(isinstance(e, str) for e in server_extras):
        raise CatalogError(f"{where}: server_extras must be a list of prebake extras")
    return Image(
        name=name,
        framework=framework,
        version=str(version),
        device=device,
        base=base,
        packages=tuple(packages),
        smoke=smoke,
        description=_string(entry, "description", where),
        reference=f"{registry}/{name}:{tag}",
        index=index,
        system_packages=tuple(system_packages),
        server_extras=tuple(server_extras),
    )


def _string(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogError(f"{where}: {key!r} must be a non-empty string")
    return value


def _table(table: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = table.get(key)
    if not isinstance(value, dict) or not value:
        raise CatalogError(f"{where}: {key!r} must be a non-empty table")
    return value
