"""The cache folder: where it is, versions named by their listing, atomic publication, stale scratch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prebake.storage.cache import MANIFEST, Entry, RemoteObject, cache_root, version_of
from prebake.storage.uri import parse


def test_cache_root_prefers_the_variable_then_a_writable_home(tmp_path: Path) -> None:
    """PREBAKE_CACHE_DIR wins; else XDG_CACHE_HOME/prebake; else $TMPDIR/prebake-cache."""
    assert cache_root({"PREBAKE_CACHE_DIR": "/x"}) == Path("/x")
    if not (Path("/var/cache/prebake").is_dir() and os.access("/var/cache/prebake", os.W_OK)):
        assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "prebake"
        assert cache_root({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "prebake"


def test_cache_root_under_an_unwritable_home_uses_tmpdir(tmp_path: Path) -> None:
    """A HOME that is a file (cannot hold .cache) sends the cache to TMPDIR: no error at start."""
    if Path("/var/cache/prebake").is_dir() and os.access("/var/cache/prebake", os.W_OK):
        pytest.skip("/var/cache/prebake is a writable folder here, and is preferred")
    home = tmp_path / "not-a-folder"
    home.write_text("")
    assert cache_root({"HOME": str(home), "TMPDIR": str(tmp_path)}) == tmp_path / "prebake-cache"


def test_a_changed_object_is_a_new_version() -> None:
    """Any change of size or fingerprint changes the version; the order of the listing does not."""
    a, b = RemoteObject("a", 1, "etag:1"), RemoteObject("b", 2, "etag:2")
    assert version_of([a, b]) == version_of([b, a])
    assert version_of([a, b]) != version_of([a, RemoteObject("b", 2, "etag:3")])
    assert version_of([a]) != version_of([RemoteObject("a", 9, "etag:1")])


def test_publish_is_one_rename_and_keeps_two_versions(tmp_path: Path) -> None:
    """A copy becomes visible whole; the third publication removes the oldest; scratch left by a killed
    fetch is removed under the lock."""
    entry = Entry.of(parse("s3://b/m.joblib"), tmp_path)
    published = []
    for n in range(3):
        with entry.locked(), entry.staging() as scratch:
            (scratch / "m.joblib").write_bytes(b"x" * n)
            objects = [RemoteObject("", n, f"etag:{n}")]
            published.append(entry.publish(scratch, version_of(objects), objects, 0.0))
            os.utime(published[-1].parent, (n + 1, n + 1))  # make the order of publication the mtime order
    assert not published[0].exists() and published[1].exists() and published[2].exists()
    assert all((p.parent / MANIFEST).is_file() for p in published[1:])
    stale = entry.folder / ".tmp-killed"
    stale.mkdir()
    with entry.locked():
        assert not stale.exists()
