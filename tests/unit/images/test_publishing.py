"""The pieces of publishing that need no registry: references, stored credentials, the push record, the
listing's digests, the engine chosen by path, sizes, and prebake's own wheel packed from an install."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from prebake.images.catalog import load_catalog
from prebake.images.engine import Engine, EngineMissing, parse_size
from prebake.images.oci import RegistryError, credentials, parse_reference
from prebake.images.selfwheel import repack_installed
from prebake.images.state import Pushed, pushes, record_push
from prebake.images.table import images_json

DIGEST = "sha256:" + "ab" * 32


def test_references_split_into_registry_repository_tag_and_digest() -> None:
    """HOST[:PORT]/REPO[:TAG][@DIGEST] splits as registries read it; a reference without a host is refused."""
    ref = parse_reference(f"127.0.0.1:5000/ml/sklearn:1@{DIGEST}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "127.0.0.1:5000",
        "ml/sklearn",
        "1",
        DIGEST,
    )
    assert parse_reference("ghcr.io/prebake/x").tag == "" and parse_reference("localhost/x:2").tag == "2"
    with pytest.raises(RegistryError, match="names no registry"):
        parse_reference("prebake/x:1")
    with pytest.raises(RegistryError, match="sha256"):
        parse_reference("ghcr.io/x@sha256:short")


def test_credentials_come_from_the_engines_auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `podman login` wrote (REGISTRY_AUTH_FILE) is what prebake's registry client uses; other hosts get none."""
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps({"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"me:s3cret").decode()}}})
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert credentials("127.0.0.1:5000") == ("me", "s3cret")
    assert credentials("registry.example.com") is None


def test_pushes_are_remembered_and_listed_with_their_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push is recorded (a later push of the same reference replaces it) and `images list --format json` shows its digest under that registry."""
    monkeypatch.setenv("PREBAKE_STATE_DIR", str(tmp_path))
    name = "sklearn-1.9.1-debian12-py311-cpu-inference"
    reference = f"127.0.0.1:5000/ml/{name}:latest"
    record_push(Pushed(reference, "sha256:" + "00" * 32, name, "2026-01-01T00:00:00Z", "podman"))
    record_push(
        Pushed(reference, DIGEST, name, "2026-01-02T00:00:00Z", "podman", "sha256-x.sig", "sha256-x.att")
    )
    assert [p.digest for p in pushes()] == [DIGEST]
    listing = {
        r["name"]: r for r in json.loads(images_json(load_catalog(registry="127.0.0.1:5000/ml"), pushes()))
    }
    assert listing[name]["digest"] == DIGEST
    assert listing[name]["pushed"][0]["pinned"] == f"127.0.0.1:5000/ml/{name}@{DIGEST}"
    assert listing["minimal-debian12-py311-cpu-inference"]["digest"] is None
    # Under the catalog's own registry the same image was never pushed: no digest there.
    assert {r["name"]: r for r in json.loads(images_json(load_catalog(), pushes()))}[name]["digest"] is None


def test_engine_by_path_picks_that_client(tmp_path: Path) -> None:
    """--engine /path/to/docker uses that client (a docker CLI without buildx cannot build); a path to something else is refused."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert Engine.find(str(fake)) == Engine("docker", str(fake))
    other = tmp_path / "kubectl"
    other.write_text("#!/bin/sh\n")
    with pytest.raises(EngineMissing, match="must be podman or docker"):
        Engine.find(str(other))
    with pytest.raises(EngineMissing, match="no such executable"):
        Engine.find(str(tmp_path / "podman"))


def test_docker_sizes_parse() -> None:
    """docker's human sizes read as bytes (decimal units, as docker prints them)."""
    assert parse_size("408.2MB") == 408_200_000 and parse_size("12kB") == 12_000 and parse_size("0B") == 0
    assert parse_size("n/a") == 0


def test_installed_distribution_packs_back_into_an_installable_wheel(tmp_path: Path) -> None:
    """An installed distribution (click here) packs into a wheel holding its files with a correct RECORD; pip installs it."""
    wheel = repack_installed(tmp_path, "click")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/RECORD")).rsplit("/", 1)[0]
        assert f"{info}/WHEEL" in names and "click/__init__.py" in names
        assert not any(n.endswith(".pyc") or n.endswith("/INSTALLER") for n in names)
        for line in archive.read(f"{info}/RECORD").decode().splitlines():
            path, digest, size = line.split(",")
            if digest:
                data = archive.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}" and int(size) == len(data), path
    target = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True)  # fmt: skip
    import click

    assert (target / "click" / "__init__.py").read_bytes() == Path(click.__file__).read_bytes()
