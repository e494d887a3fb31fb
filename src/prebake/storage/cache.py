"""The model cache: one folder per URI, one complete copy per version of what the URI named.

    CACHE/models/.locks/<entry>           flock: one fetch at a time per URI, across processes and replicas
    CACHE/models/<slug>-<hash>/           one URI (<entry>; the hash of its key: a rotated SAS token or a
                                          trailing '/' is the same URI)
        .tmp-*/                           a download in progress; only ever renamed into place whole
        <version>/                        complete copies only: each appears by one atomic rename
            <name>                        the file or folder, named as in the URI (iris.joblib, iris/)
            prebake-source.json           the URI, every object's size and ETag/generation, when fetched

``version`` hashes the listing (every object's path, size and ETag, generation or mtime), so an object
changed in storage makes a new version and an unchanged one is found again without a download. The two
newest versions are kept (a replica may still be serving the one before); older ones are removed.

CACHE is PREBAKE_CACHE_DIR, else /var/cache/prebake where it is a writable folder (a mounted volume), else
$XDG_CACHE_HOME/prebake (~/.cache/prebake), else $TMPDIR/prebake-cache: on a read-only root file system
with a writable /tmp (the images set HOME=/tmp) that is /tmp/.cache/prebake.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prebake.errors import StorageError
from prebake.storage.uri import StorageURI

MANIFEST = "prebake-source.json"
KEEP_VERSIONS = 2
VOLUME = Path("/var/cache/prebake")


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One object under a URI: its path relative to what the URI names ('' for the URI's own file)."""

    relative: str
    size: int
    fingerprint: str  # ETag, generation, or size and mtime: changes whenever the content does


def version_of(objects: Sequence[RemoteObject]) -> str:
    """The name of the version folder for a listing."""
    digest = hashlib.sha256()
    for item in sorted(objects, key=lambda o: o.relative):
        digest.update(f"{item.relative}\0{item.size}\0{item.fingerprint}\n".encode())
    return digest.hexdigest()[:16]


def cache_root(env: Mapping[str, str]) -> Path:
    """The cache folder (see the module docstring for the order)."""
    if configured := env.get("PREBAKE_CACHE_DIR"):
        return Path(configured)
    if VOLUME.is_dir() and os.access(VOLUME, os.W_OK | os.X_OK):
        return VOLUME
    home = env.get("XDG_CACHE_HOME") or (str(Path(env["HOME"]) / ".cache") if env.get("HOME") else "")
    if home and _creatable(Path(home) / "prebake"):
        return Path(home) / "prebake"
    return Path(env.get("TMPDIR") or tempfile.gettempdir()) / "prebake-cache"


def _creatable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _slug(uri: StorageURI) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{uri.scheme}-{uri.bucket}-{uri.path}").strip("-.")[:60]
    return f"{readable}-{hashlib.sha256(uri.key.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class Entry:
    """The cache folder of one URI."""

    uri: StorageURI
    folder: Path

    @classmethod
    def of(cls, uri: StorageURI, root: Path) -> Entry:
        return cls(uri, root / "models" / _slug(uri))

    def path(self, version: str) -> Path:
        """Where version ``version``'s file or folder is (whether or not it is there yet)."""
        return self.folder / version / self.uri.name

    def complete(self, version: str) -> bool:
        return (self.folder / version / MANIFEST).is_file()

    def versions(self) -> list[str]:
        """Complete versions, newest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)]

    def manifest(self, version: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / version / MANIFEST).read_text(encoding="utf-8"))
        return data

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this URI's lock; stale downloads (from a process killed mid-way) are removed under it, and
        an entry left with no complete copy (every fetch failed) is removed on the way out."""
        locks = self.folder.parent / ".locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            handle = (locks / self.folder.name).open("a")
        except OSError as error:
            raise StorageError(
                f"the model cache {self.folder.parents[1]} is not writable ({error.strerror}): set "
                "PREBAKE_CACHE_DIR to a writable folder, or mount a volume at /var/cache/prebake"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            for stale in self.folder.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    self.folder.rmdir()  # only when empty: nothing was ever fetched for this URI

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch folder for a download; removed unless ``publish`` moved it into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.folder))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def publish(
        self, scratch: Path, version: str, objects: Sequence[RemoteObject], fetched_at: float
    ) -> Path:
        """Write the manifest into ``scratch`` and rename it into place as ``version``: one atomic step."""
        manifest = {
            "uri": self.uri.display,
            "version": version,
            "fetched_at": round(fetched_at, 3),
            "objects": [asdict(item) for item in objects],
        }
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        final = self.folder / version
        if final.exists():  # a version left without its manifest: never complete, so never served
            shutil.rmtree(final)
        os.chmod(scratch, 0o755)  # mkdtemp makes 0700; the copy is read by whoever serves it
        os.rename(scratch, final)
        self._prune(keep=version)
        return self.path(version)

    def _prune(self, keep: str) -> None:
        versions = [v for v in self.versions() if v != keep]
        for old in versions[KEEP_VERSIONS - 1 :]:
            shutil.rmtree(self.folder / old, ignore_errors=True)
