"""Fetch one URI into the cache, or find it there: list, compare, download only what changed, publish whole.

    fetched = fetch("s3://models/iris.joblib", os.environ)
    fetched.path      # CACHE/models/s3-models-iris.joblib-<hash>/<version>/iris.joblib
    fetched.cached    # True when the listing matched a complete copy: nothing was downloaded

Under the URI's lock: the storage is listed (sizes and ETags only); a complete copy of that listing is
served as it is; otherwise every object is downloaded into a scratch folder beside the cache entry,
checked for size, and the folder renamed into place in one step. A download that fails or is killed
leaves only scratch, removed by the next fetch, so a half-written model is never served.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prebake.storage.cache import Entry, RemoteObject, cache_root, version_of
from prebake.storage.remote import open_source
from prebake.storage.uri import parse


@dataclass(frozen=True, slots=True)
class Fetched:
    uri: str  # the display form: no credentials
    path: Path
    cached: bool
    files: int
    bytes: int
    seconds: float

    def summary(self) -> str:
        size = f"{self.bytes / 1e6:.1f} MB" if self.bytes >= 100_000 else f"{self.bytes} bytes"
        files = f"{self.files} file{'s' if self.files != 1 else ''}"
        if self.cached:
            return f"{self.uri}: unchanged in storage, serving the cached copy {self.path} ({files}, {size})"
        return f"{self.uri}: fetched {files} ({size}) in {self.seconds:.1f} s into {self.path}"

    def as_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "path": str(self.path), "cached": self.cached, "files": self.files,
                "bytes": self.bytes, "seconds": round(self.seconds, 3)}  # fmt: skip


def fetch(text: str, env: Mapping[str, str]) -> Fetched:
    """The local copy of the file or folder ``text`` names; StorageError (exit 2) naming the URI if not."""
    uri = parse(text)
    entry = Entry.of(uri, cache_root(env))
    started = time.monotonic()
    with entry.locked():
        versions = entry.versions()
        known = [RemoteObject(**item) for item in entry.manifest(versions[0])["objects"]] if versions else []
        source = open_source(uri, env)
        try:
            objects = source.objects(known)
            version = version_of(objects)
            if all(item.fingerprint for item in objects) and entry.complete(version):
                return _cached(entry, version, objects, started)
            with entry.staging() as scratch:
                target = scratch / uri.name
                done = []
                for item in objects:
                    destination = target / item.relative if item.relative else target
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    done.append(source.download(item, destination))
                version = version_of(done)
                if entry.complete(version):  # a server with no ETag sent the same bytes again
                    return _cached(entry, version, done, started)
                path = entry.publish(scratch, version, done, time.time())
        finally:
            source.close()
    return Fetched(uri.display, path, False, len(done), sum(i.size for i in done), time.monotonic() - started)


def _cached(entry: Entry, version: str, objects: list[RemoteObject], started: float) -> Fetched:
    os.utime(entry.folder / version)  # in use again: the newest, so pruning keeps it
    return Fetched(entry.uri.display, entry.path(version), True, len(objects),
                   sum(max(item.size, 0) for item in objects), time.monotonic() - started)  # fmt: skip
