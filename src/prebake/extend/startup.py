"""Packages and source folders added at start, without rebuilding the image: the environment variables
read once, turned into paths the server puts on ``sys.path`` before its workers fork.

    PREBAKE_EXTRA_REQUIREMENTS   (or AZUREML_EXTRA_REQUIREMENTS_TXT)  a requirements file in the app or model folder
    PREBAKE_EXTRA_PYTHON_PATH    (or AZUREML_EXTRA_PYTHON_LIB_PATH)    a folder of modules or installed packages
    PREBAKE_WHEELHOUSE           a folder of wheels: install offline from it, never from an index
    PREBAKE_CACHE_DIR            where layers are kept (default /var/cache/prebake: mount a volume there)
    PREBAKE_PINS_FILE            the lock whose pins constrain the install (default: the image's)

Relative paths are looked up in the app root (where score.py is), then the model folder, as Azure ML does.

The server calls, once, in the supervisor before it forks::

    paths = prepare(os.environ, app_root=app_root, model_dir=model_dir)
    activate(paths)
"""

from __future__ import annotations

import logging
import os
import site
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from prebake.errors import ConfigError
from prebake.extend import PYTHON_PATH_VARS, REQUIREMENTS_VARS
from prebake.extend.layer import LayerRequest, ensure_layer
from prebake.extend.pins import image_pins

log = logging.getLogger("prebake.extend")

DEFAULT_CACHE = Path("/var/cache/prebake")

PREPARED = "PREBAKE_EXTRAS_PREPARED"  # set by `python -m prebake.extend.launch` for the command it runs


def prepare(env: Mapping[str, str], *, app_root: Path, model_dir: Path | None) -> list[Path]:
    """The folders to add to ``sys.path`` for the extra packages and source folders ``env`` asks for.

    Installs the extra requirements into a cached layer when the cache does not hold them yet. Raises
    ConfigError (exit 2) with an actionable message on a missing file, a conflict with the image's pins,
    an unreachable index or a broken wheel; nothing is left half-installed.

    >>> prepare({}, app_root=Path("."), model_dir=None)
    []
    """
    if env.get(PREPARED) == "1":
        return []  # done already by the launcher; its layer is on PYTHONPATH
    roots = [app_root] + ([model_dir] if model_dir is not None else [])
    paths: list[Path] = []
    requirements_name, requirements_var = _first(env, REQUIREMENTS_VARS)
    if requirements_name:
        requirements = _locate(requirements_name, roots, requirements_var, want_dir=False)
        wheelhouse = _wheelhouse(env, roots)
        pins_file = env.get("PREBAKE_PINS_FILE")
        if pins_file and not Path(pins_file).is_file():
            raise ConfigError(f"PREBAKE_PINS_FILE={pins_file} does not exist")
        request = LayerRequest(
            requirements=requirements,
            pins=image_pins(Path(pins_file) if pins_file else None),
            cache_dir=cache_dir(env),
            wheelhouse=wheelhouse,
        )
        layer = ensure_layer(request)
        log.info(
            "extra packages from %s: %s layer %s in %.2f s",
            requirements,
            "cached" if layer.cached else "installed",
            layer.root.name,
            layer.seconds,
        )
        paths.extend(layer.site_packages)
    python_path, python_path_var = _first(env, PYTHON_PATH_VARS)
    if python_path:
        for part in python_path.split(os.pathsep):
            if part:
                paths.append(_locate(part, roots, python_path_var, want_dir=True))
    return paths


def activate(paths: Sequence[Path]) -> None:
    """Add ``paths`` to this process's ``sys.path`` after the image's own packages (.pth files honoured)."""
    for path in paths:
        if str(path) not in sys.path:
            site.addsitedir(str(path))


def cache_dir(env: Mapping[str, str]) -> Path:
    """PREBAKE_CACHE_DIR, else /var/cache/prebake if writable, else a temporary folder (not kept)."""
    if configured := env.get("PREBAKE_CACHE_DIR"):
        return Path(configured)
    if _writable(DEFAULT_CACHE):
        return DEFAULT_CACHE
    fallback = Path(env.get("TMPDIR") or tempfile.gettempdir()) / "prebake-cache"
    log.warning(
        "%s is not writable: extra packages go to %s and are installed again at every start; "
        "mount a volume at %s (or set PREBAKE_CACHE_DIR) to keep them",
        DEFAULT_CACHE,
        fallback,
        DEFAULT_CACHE,
    )
    return fallback


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str]:
    for name in names:
        if value := env.get(name, "").strip():
            return value, name
    return "", names[0]


def _locate(value: str, roots: Sequence[Path], variable: str, *, want_dir: bool) -> Path:
    candidate = Path(value)
    candidates = [candidate] if candidate.is_absolute() else [root / candidate for root in roots]
    for path in candidates:
        if path.is_dir() if want_dir else path.is_file():
            return path.resolve()
    kind = "folder" if want_dir else "file"
    looked = ", ".join(str(path) for path in candidates)
    raise ConfigError(f"{variable}={value}: no such {kind} (looked in {looked})")


def _wheelhouse(env: Mapping[str, str], roots: Sequence[Path]) -> Path | None:
    value = env.get("PREBAKE_WHEELHOUSE", "").strip()
    return _locate(value, roots, "PREBAKE_WHEELHOUSE", want_dir=True) if value else None
