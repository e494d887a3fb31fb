"""What prebake remembers between commands on this machine: the images it pushed (reference -> digest,
and whether they were signed) and the build caches it kept on purpose (``prebake build --cache``).

One JSON file, ``$PREBAKE_STATE_DIR/images.json`` (default ``$XDG_STATE_HOME/prebake``, else
``~/.local/state/prebake``), written atomically (a temporary file renamed over it), so a command killed
half-way leaves the previous record intact.

    >>> record = Pushed("127.0.0.1:5000/ml/x:latest", "sha256:" + "0" * 64, "x", "2026-01-01T00:00:00Z")
    >>> record.pinned
    '127.0.0.1:5000/ml/x@sha256:0000000000000000000000000000000000000000000000000000000000000000'
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    explicit = os.environ.get("PREBAKE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "prebake"


def _file() -> Path:
    return state_dir() / "images.json"


@dataclass(frozen=True, slots=True)
class Pushed:
    """One push: the reference pushed, the manifest digest the registry stored, and what was attached."""

    reference: str
    digest: str
    image: str  # the catalog name
    pushed_at: str
    engine: str = ""
    signature: str = ""  # the signature's tag in the registry (cosign's sha256-HEX.sig), if signed
    attestation: str = ""  # the SBOM attestation's tag (sha256-HEX.att), if attached

    @property
    def repository(self) -> str:
        name = self.reference.split("@", 1)[0]
        head, _, last = name.rpartition("/")
        return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]

    @property
    def pinned(self) -> str:
        """The reference by digest: what deployments should name, as it cannot move."""
        return f"{self.repository}@{self.digest}"


def _load() -> dict[str, Any]:
    try:
        data = json.loads(_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"pushed": [], "caches": {}}
    return data if isinstance(data, dict) else {"pushed": [], "caches": {}}


def _save(data: dict[str, Any]) -> None:
    path = _file()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".images-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(temporary, path)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_push(record: Pushed) -> None:
    """Remember a push; a later push of the same reference replaces the earlier record."""
    data = _load()
    data["pushed"] = [p for p in data.get("pushed", []) if p.get("reference") != record.reference]
    data["pushed"].append(asdict(record))
    _save(data)


def pushes() -> list[Pushed]:
    """Every push remembered here, oldest first."""
    found = []
    for entry in _load().get("pushed", []):
        try:
            found.append(Pushed(**entry))
        except TypeError:
            continue  # a record from another prebake version; skip rather than fail a listing
    return found


def remember_cache(engine: str, ids: Iterable[str]) -> None:
    """Remember BuildKit cache records kept on purpose, so `prebake images prune` can remove exactly them."""
    ids = set(ids)
    if not ids:
        return
    data = _load()
    caches = data.setdefault("caches", {})
    caches[engine] = sorted(set(caches.get(engine, [])) | ids)
    _save(data)


def forget_caches(engine: str) -> set[str]:
    """The cache records remembered for ``engine``, forgotten now (the caller prunes them)."""
    data = _load()
    ids = set(data.get("caches", {}).pop(engine, []))
    _save(data)
    return ids
