"""Pick the catalog image for a saved model or a score.py, and say why.

Each image is scored by the evidence (evidence.py) it satisfies: a package the image holds counts, the
exact version the model records counts more, and an image named for the framework wins ties (its newest
release). A script that needs no framework gets the minimal image. Where no image holds the recorded version, the nearest is chosen with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prebake import frameworks
from prebake.extend.evidence import LOGGED_REQUIREMENT, Evidence, from_name, gather
from prebake.extend.pins import canonical, pins_from_lock
from prebake.images.catalog import Catalog, Image

# The package a catalog image installs under another name than the one a model needs.
ALIASES = {
    "xgboost": ("xgboost", "xgboost-cpu"),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
}
# The newest default-domain ONNX opset each onnxruntime release runs (onnxruntime's compatibility table).
ORT_MAX_OPSET = ((1, 15, 19), (1, 17, 20), (1, 18, 21), (1, 21, 22), (1, 23, 23))
# The package each catalog framework is named for: an image named for what the model needs wins ties.
FRAMEWORK_PACKAGE = {f.catalog: f.package for f in frameworks.FRAMEWORKS if f.catalog and f.package}


@dataclass(frozen=True, slots=True)
class Recommendation:
    image: Image
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)
    exact: bool = True
    evidence: list[Evidence] = field(default_factory=list)
    #: Requirements the model needs that the image lacks (``pkg==version``), for PREBAKE_EXTRA_REQUIREMENTS.
    lacking: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "image": self.image.name,
            "reference": self.image.reference,
            "exact": self.exact,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "lacking": self.lacking,
        }


def image_packages(image: Image) -> dict[str, str]:
    """Every package the image holds (its lock; its top-level pins where no lock is there) -> version."""
    if image.lock_file.is_file():
        return pins_from_lock(image.lock_file.read_text(encoding="utf-8"))
    return {canonical(name): version for name, version in image.pins().items()}


def provided(packages: dict[str, str], package: str) -> str | None:
    """The version of ``package`` (or its alias) the image holds, without a local label (+cpu)."""
    for name in ALIASES.get(package, (package,)):
        if (version := packages.get(canonical(name))) is not None:
            return version.split("+", 1)[0]
    return None


def max_opset(ort_version: str) -> int | None:
    parts = tuple(int(p) for p in re.findall(r"\d+", ort_version)[:2])
    best = None
    for major, minor, opset in ORT_MAX_OPSET:
        if parts >= (major, minor):
            best = opset
    return best


def _version_key(image: Image) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", image.version)) or (0,)


def recommend(path: Path, catalog: Catalog, *, device: str = "cpu") -> Recommendation:
    """The best image for ``path`` on ``device`` ('cpu' or 'gpu').

    Raises FileNotFoundError for a missing path and ValueError for a file that cannot be read.
    """
    return choose(gather(path), catalog, device=device, label=path.name)


def recommend_for_name(name: str, catalog: Catalog, *, device: str = "cpu") -> Recommendation:
    """The best image for a model known only by its file name (not on this machine): by its suffix.

    Raises ValueError when the name says nothing about the framework.
    """
    evidence = from_name(name)
    if not evidence:
        raise ValueError(f"{name}: the file name does not say which framework saved it")
    return choose(evidence, catalog, device=device, label=Path(name).name)


def choose(evidence: list[Evidence], catalog: Catalog, *, device: str, label: str) -> Recommendation:
    """The image the evidence points to, with the reasons (``label`` names what the evidence came from).
    What an MLflow model's logging environment listed is checked against the image, not used to pick it."""
    logged = [item for item in evidence if item.note == LOGGED_REQUIREMENT]
    evidence = [item for item in evidence if item.note != LOGGED_REQUIREMENT]
    candidates = [image for image in catalog.images if (image.device == "cpu") == (device == "cpu")]
    if not candidates:
        raise ValueError(f"the catalog has no {device} image")
    minimal = [image for image in candidates if image.framework == "minimal"]
    if not evidence and minimal:
        return _explain(minimal[0], image_packages(minimal[0]), evidence, label, logged)
    scored = []
    for image in candidates:
        packages = image_packages(image)
        held = sum(1 for item in evidence if provided(packages, item.package) is not None)
        exact = sum(
            1 for item in evidence if item.version and provided(packages, item.package) == item.version
        )
        named = sum(1 for item in evidence if FRAMEWORK_PACKAGE.get(image.framework) == item.package)
        # Among images named for the framework the newest wins; otherwise the smallest (the minimal image).
        newest = _version_key(image) if named else (0,)
        scored.append(((held, exact, named, newest, -len(packages)), image, packages))
    scored.sort(key=lambda entry: entry[0], reverse=True)
    _, image, packages = scored[0]
    return _explain(image, packages, evidence, label, logged)


def recommend_for_image(path: Path, image: Image) -> Recommendation:
    """What ``image`` gives and lacks for the model at ``path`` (as ``recommend`` explains its pick)."""
    everything = gather(path)
    evidence = [item for item in everything if item.note != LOGGED_REQUIREMENT]
    logged = [item for item in everything if item.note == LOGGED_REQUIREMENT]
    return _explain(image, image_packages(image), evidence, path.name, logged)


def _explain(
    image: Image,
    packages: dict[str, str],
    evidence: list[Evidence],
    label: str,
    logged: Sequence[Evidence] = (),
) -> Recommendation:
    reasons: list[str] = []
    warnings: list[str] = []
    exact = True
    if not evidence:
        reasons.append(
            f"{label} names no framework prebake recognises: the minimal image serves score.py files"
        )
    missing: list[str] = []
    for item in evidence:
        have = provided(packages, item.package)
        if have is None:
            missing.append(item.package)
            continue
        if item.version and have != item.version:
            exact = False
            same_minor = item.version.split(".")[:2] == have.split(".")[:2]
            warnings.append(
                f"{item.source}, but no catalog image has {item.package} {item.version}; {image.name} has {have}"
                + (" (same minor release: usually compatible)" if same_minor else ": re-save the model with "
                   f"{item.package} {have}, or test it with `prebake check` before deploying")
            )  # fmt: skip
        elif item.opset is not None:
            limit = max_opset(have)
            if limit is not None and item.opset > limit:
                exact = False
                warnings.append(
                    f"{item.source}, newer than onnxruntime {have} is known to run (opset {limit})"
                )
            else:
                reasons.append(f"{item.source}; onnxruntime {have} runs it")
        else:
            reasons.append(f"{item.source}; the image has {item.package} {have}")
            if item.note and "version" in item.note and item.package == "torch":
                warnings.append(
                    f"{item.note}: {image.name} has the newest CPU torch; check the model loads with it"
                )
    if missing:
        exact = False
        unique = sorted(set(missing))
        warnings.append(
            f"no catalog image holds {', '.join(unique)}: add {'it' if len(unique) == 1 else 'them'} with a requirements "
            "file (PREBAKE_EXTRA_REQUIREMENTS, or `prebake extend -r`)"
        )
    lacking = [_pin(item) for item in evidence if item.package in missing]
    absent = [item for item in logged if provided(packages, item.package) is None]
    if absent:
        lacking += [_pin(item) for item in absent]
        warnings.append(
            f"the model's requirements.txt also lists {', '.join(_pin(i) for i in absent)}, which {image.name} "
            "lacks: install them at start (PREBAKE_EXTRA_REQUIREMENTS) or with `prebake extend -r`, where the "
            "model needs them"
        )
    return Recommendation(image, reasons, warnings, exact, evidence, sorted(set(lacking)))


def _pin(item: Evidence) -> str:
    return f"{item.package}=={item.version}" if item.version else item.package
