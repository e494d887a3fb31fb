"""Publishing: push a built image to its registry, sign it and attach its SBOM there, remember the digest;
and the way back: make sure a reference is present locally, pulling it when it is not.

The SBOM attached is the one inside the image (/usr/share/doc/prebake/sbom.json), so what the registry
attests is what the image carries.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prebake.errors import ImageError, NotFound
from prebake.images.catalog import Image
from prebake.images.engine import Engine, EngineFailed
from prebake.images.state import Pushed, now, record_push

SBOM_PATH = "/usr/share/doc/prebake/sbom.json"


class PushFailed(ImageError):
    """The engine could not push, or the signature could not be stored."""


@dataclass(frozen=True, slots=True)
class SignWith:
    """How to sign pushes: a private key (PEM) and its password, if it has one."""

    key: Path
    password: bytes | None = None

    @classmethod
    def default(cls, key: Path | None) -> SignWith:
        """``key``, or prebake's default key, made on first use (the message says where its .pub is)."""
        from prebake.images.signing import default_key_path, generate_key

        password = os.environ.get("PREBAKE_SIGNING_PASSWORD", "").encode() or None
        if key is None:
            key = default_key_path()
            if not key.exists():
                public = generate_key(key, password=password)
                print(f"prebake push: made a signing key {key}; verifiers need {public}", file=sys.stderr)
        elif not key.is_file():
            raise PushFailed(f"signing key {key} not found (prebake keygen {key} makes one)")
        return cls(key, password)


def push_image(
    image: Image, engine: Engine, *, reference: str | None = None, sign: SignWith | None
) -> Pushed:
    """Push ``reference`` (the image's catalog reference by default), sign it, record the digest."""
    reference = reference or image.reference
    if not engine.image_exists(reference):
        raise PushFailed(f"{reference} is not built here: run `prebake build {image.name}` first", status=404)
    print(f"prebake push: pushing {reference} with {engine.name}", file=sys.stderr, flush=True)
    try:
        digest = engine.push(reference)
    except EngineFailed as error:
        raise PushFailed(
            f"pushing {reference} failed: {error.message}\n"
            f"(log in first with `{engine.name} login {reference.split('/', 1)[0]}`; a registry with its own CA "
            f"needs it in /etc/containers/certs.d/HOST/ca.crt for podman, /etc/docker/certs.d/HOST/ca.crt for docker)"
        ) from error
    signature = attestation = ""
    if sign is not None:
        from prebake.images.signing import sign_and_attest

        signature, attestation = sign_and_attest(
            reference, digest, sbom_of(engine, reference), key=sign.key, password=sign.password
        )
    record = Pushed(reference, digest, image.name, now(), engine.name, signature, attestation)
    record_push(record)
    return record


def sbom_of(engine: Engine, reference: str) -> dict[str, Any]:
    """The SBOM inside an image."""
    try:
        document: dict[str, Any] = json.loads(engine.run_in(reference, "cat", SBOM_PATH))
    except (EngineFailed, ValueError) as error:
        raise PushFailed(f"{reference} carries no readable SBOM at {SBOM_PATH}: {error}") from error
    return document


def ensure_local(engine: Engine, reference: str, *, pull: str = "missing") -> bool:
    """Make ``reference`` present locally: pull it when missing (``pull="missing"``), always
    (``"always"``) or never (``"never"``: ImageError when absent). Whether it was pulled."""
    present = engine.image_exists(reference)
    if pull == "never" or (present and pull == "missing"):
        if not present:
            raise NotFound(f"image {reference} is not here and --pull never forbids pulling it")
        return False
    if "/" not in reference or reference.startswith("localhost/"):
        if present:
            return False
        raise NotFound(f"image {reference} is not built here and names no registry to pull it from")
    try:
        engine.pull(reference)
    except EngineFailed as error:
        raise NotFound(
            f"image {reference} is not here and pulling it failed: {error.message}\n"
            f"Build it (prebake build), or check the registry: `{engine.name} login`, and its CA trusted as for push"
        ) from error
    return True
