"""Signatures and SBOM attestations for pushed images, stored in the registry the way cosign stores them.

Why this shape: the registry must keep the evidence beside the image, any OCI registry must accept it
(Debian's docker-registry 2.8 has no referrers API), and users must be able to check it with the tool they
already have. cosign's tag scheme does all three: for an image whose manifest digest is ``sha256:HEX``,

* ``REPO:sha256-HEX.sig`` is an OCI manifest whose layers are "simple signing" payloads
  (``application/vnd.dev.cosign.simplesigning.v1+json``: the image's repository and manifest digest),
  each carrying its ECDSA P-256 / SHA-256 signature in the ``dev.cosignproject.cosign/signature``
  annotation;
* ``REPO:sha256-HEX.att`` holds a DSSE envelope (``application/vnd.dsse.envelope.v1+json``) around an
  in-toto statement whose subject is the image digest and whose predicate is the image's CycloneDX SBOM.

So ``cosign verify --key cosign.pub --insecure-ignore-tlog REF`` and ``cosign verify-attestation --type
cyclonedx ...`` accept what ``prebake push`` writes, and ``prebake verify`` accepts what cosign writes
with a key. cosign itself is not packaged for Debian 12 and sigstore's keyless flow needs Fulcio and
Rekor, which an offline build machine cannot reach; keys and ``cryptography`` (PyPI) are enough here. No
transparency log is written: a key pair is the trust root, as with ``cosign sign --key --tlog-upload=false``.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prebake.errors import ImageError
from prebake.images.oci import OCI_MANIFEST, Reference, Registry, RegistryError, parse_reference

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
CYCLONEDX = "https://cyclonedx.org/bom"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


class SigningError(ImageError):
    """A key could not be read or made, or the signature could not be stored."""


class VerifyFailed(ImageError):
    """The image has no valid signature or attestation for the key."""


@dataclass(slots=True)
class Verification:
    reference: str
    digest: str
    signatures: int = 0  # valid ones, for the key
    attestation: bool = False
    sbom_components: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.signatures > 0 and self.attestation and not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reference": self.reference,
            "digest": self.digest,
            "valid_signatures": self.signatures,
            "sbom_attestation": self.attestation,
            "sbom_components": self.sbom_components,
            "problems": self.problems,
        }

    def text(self) -> str:
        lines = [f"{self.reference} -> {self.digest}"]
        lines.append(
            f"  signature: {self.signatures} valid for the key"
            if self.signatures
            else "  signature: none valid"
        )
        lines.append(
            f"  SBOM attestation: signed, CycloneDX, {self.sbom_components} components"
            if self.attestation
            else "  SBOM attestation: none valid"
        )
        lines += [f"  problem: {problem}" for problem in self.problems]
        lines.append("verified" if self.ok else "NOT verified")
        return "\n".join(lines)


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise SigningError(
            "signing and verifying need the cryptography package: pip install 'prebake[sign]'"
        ) from None
    return hashes, serialization, ec


def default_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "prebake" / "cosign.key"


def public_key_path(private: Path) -> Path:
    return private.with_suffix(".pub")


def generate_key(private: Path, *, password: bytes | None = None) -> Path:
    """Write an ECDSA P-256 key pair: ``private`` (PKCS#8 PEM, mode 0600) and its ``.pub`` (PKIX PEM)."""
    hashes, serialization, ec = _crypto()
    if private.exists():
        raise SigningError(f"{private} exists; remove it first or pass another path")
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    private.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        )
    public = public_key_path(private)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public


def _private_key(path: Path, password: bytes | None) -> Any:
    _, serialization, _ = _crypto()
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=password)
    except (OSError, ValueError, TypeError) as error:
        raise SigningError(f"cannot read the signing key {path}: {error}") from error


def _public_key(path: Path) -> Any:
    _, serialization, _ = _crypto()
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise VerifyFailed(f"cannot read the public key {path}: {error}") from error


def _sign(key: Any, data: bytes) -> str:
    hashes, _, ec = _crypto()
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def _valid(public: Any, data: bytes, signature: str) -> bool:
    hashes, _, ec = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(base64.b64decode(signature), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what an envelope's signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _tag(digest: str, suffix: str) -> str:
    return digest.replace(":", "-") + suffix


def _push_artifact(registry: Registry, repository: str, tag: str, layers: list[tuple[bytes, str, dict[str, str]]]) -> None:  # fmt: skip
    """An OCI manifest at ``tag`` with these (data, media type, annotations) layers, as cosign writes it."""
    descriptors = []
    for data, media_type, notes in layers:
        digest = registry.push_blob(repository, data)
        descriptors.append(
            {"mediaType": media_type, "size": len(data), "digest": digest, "annotations": notes}
        )
    config = json.dumps(
        {"architecture": "", "os": "", "config": {},
         "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]}},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    config_digest = registry.push_blob(repository, config)
    registry.push_manifest(
        repository,
        tag,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": config_digest},
            "layers": descriptors,
        },
    )


def sign_and_attest(
    reference: str, digest: str, sbom: dict[str, Any], *, key: Path, password: bytes | None = None
) -> tuple[str, str]:
    """Store a signature of ``digest`` and a signed SBOM attestation beside it; their two tags."""
    parsed = parse_reference(reference)
    private = _private_key(key, password)
    registry = Registry(parsed.registry)
    payload = json.dumps(
        {"critical": {"identity": {"docker-reference": parsed.name},
                      "image": {"docker-manifest-digest": digest}, "type": SIGNATURE_TYPE},
         "optional": None},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    signature_tag = _tag(digest, ".sig")
    _push_artifact(
        registry,
        parsed.repository,
        signature_tag,
        [(payload, SIMPLE_SIGNING, {SIGNATURE_ANNOTATION: _sign(private, payload)})],
    )
    statement = json.dumps(
        {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": CYCLONEDX,
         "subject": [{"name": parsed.name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
         "predicate": sbom},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    envelope = json.dumps(
        {"payloadType": IN_TOTO, "payload": base64.b64encode(statement).decode(),
         "signatures": [{"keyid": "", "sig": _sign(private, _pae(IN_TOTO, statement))}]},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    attestation_tag = _tag(digest, ".att")
    _push_artifact(
        registry, parsed.repository, attestation_tag, [(envelope, DSSE, {"predicateType": CYCLONEDX})]
    )
    return signature_tag, attestation_tag


def resolve_digest(reference: str) -> tuple[Reference, str]:
    """The manifest digest a reference names now (asked of the registry; a pinned digest is checked too)."""
    parsed = parse_reference(reference)
    found = Registry(parsed.registry).manifest(parsed.repository, parsed.digest or parsed.tag or "latest")
    if found is None:
        raise VerifyFailed(f"{reference} is not in the registry", status=404)
    return parsed, parsed.digest or found[2]


def verify(reference: str, *, key: Path) -> Verification:
    """Check ``reference``'s cosign-style signature and SBOM attestation against the public ``key``."""
    public = _public_key(key)
    parsed, digest = resolve_digest(reference)
    registry = Registry(parsed.registry)
    result = Verification(reference, digest)
    for data, _ in _layers(
        registry, parsed.repository, _tag(digest, ".sig"), SIMPLE_SIGNING, result, "signature"
    ):
        payload, signature = data
        if not _valid(public, payload, signature):
            result.problems.append("a signature does not verify with this key")
            continue
        critical = json.loads(payload).get("critical", {})
        if critical.get("image", {}).get("docker-manifest-digest") != digest:
            result.problems.append("a signature names another image digest")
            continue
        result.signatures += 1
    for data, _ in _layers(registry, parsed.repository, _tag(digest, ".att"), DSSE, result, "attestation"):
        envelope = json.loads(data[0])
        statement = base64.b64decode(envelope.get("payload", ""))
        signatures = [s.get("sig", "") for s in envelope.get("signatures", [])]
        if not any(_valid(public, _pae(envelope.get("payloadType", ""), statement), s) for s in signatures):
            result.problems.append("the SBOM attestation's signature does not verify with this key")
            continue
        body = json.loads(statement)
        subjects = [s.get("digest", {}).get("sha256") for s in body.get("subject", [])]
        if digest.removeprefix("sha256:") not in subjects:
            result.problems.append("the SBOM attestation is about another image digest")
            continue
        if body.get("predicateType") == CYCLONEDX:
            result.attestation = True
            result.sbom_components = len(body.get("predicate", {}).get("components", []))
    return result


def _layers(
    registry: Registry, repository: str, tag: str, media_type: str, result: Verification, what: str
) -> list[tuple[tuple[bytes, str], str]]:
    """((blob, signature annotation), media type) of each layer of ``tag``'s manifest; none if absent."""
    try:
        found = registry.manifest(repository, tag)
    except RegistryError as error:
        result.problems.append(f"cannot read the {what}: {error.message}")
        return []
    if found is None:
        result.problems.append(f"no {what} in the registry ({repository}:{tag})")
        return []
    layers = []
    for layer in json.loads(found[0]).get("layers", []):
        if layer.get("mediaType") != media_type:
            continue
        blob = registry.blob(repository, layer["digest"])
        layers.append(((blob, layer.get("annotations", {}).get(SIGNATURE_ANNOTATION, "")), media_type))
    return layers
