"""A small client of the OCI distribution API: what signing and verifying need, no more.

It reads manifests and blobs and writes blobs and manifests (``/v2/NAME/...``) over HTTPS, trusting what the
engines trust: the system's CAs plus ``certs.d/HOST[:PORT]/*.crt`` under /etc/containers, /etc/docker and
~/.config/containers, as a company registry with its own CA is set up for podman or docker. Credentials are
the ones ``podman login`` or ``docker login`` stored (REGISTRY_AUTH_FILE, containers' auth.json, docker's
config.json); HTTP Basic challenges and Bearer token challenges (ghcr.io, Docker Hub, Harbor) both work.

    >>> parse_reference("127.0.0.1:5000/ml/sklearn:1")
    Reference(registry='127.0.0.1:5000', repository='ml/sklearn', tag='1', digest='')
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prebake.errors import ImageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST)
_TIMEOUT_S = 60.0


class RegistryError(ImageError):
    """The registry refused or failed a request; the message names the URL and what it said."""


@dataclass(frozen=True, slots=True)
class Reference:
    """An image reference split into its parts (``tag`` or ``digest``, or both, may be empty)."""

    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def at(self, digest: str) -> str:
        return f"{self.name}@{digest}"


def parse_reference(reference: str) -> Reference:
    """Split HOST[:PORT]/REPO[:TAG][@DIGEST]; a reference without a registry host is refused (no default)."""
    name, _, digest = reference.partition("@")
    host, _, rest = name.partition("/")
    if not rest or not ("." in host or ":" in host or host == "localhost"):
        raise RegistryError(f"{reference!r} names no registry: give HOST[:PORT]/REPOSITORY[:TAG]")
    repository, tag = rest, ""
    if ":" in rest.rsplit("/", 1)[-1]:
        repository, _, tag = rest.rpartition(":")
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise RegistryError(f"{reference!r}: the digest must be sha256:<64 hex digits>")
    return Reference(host, repository, tag, digest)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ca_files(registry: str) -> list[Path]:
    """CA certificates the engines would trust for ``registry`` (containers-certs.d(5), docker's certs.d)."""
    roots = [
        Path("/etc/containers/certs.d"),
        Path("/etc/docker/certs.d"),
        Path.home() / ".config" / "containers" / "certs.d",
    ]
    found: list[Path] = []
    for root in roots:
        folder = root / registry
        if folder.is_dir():
            found += sorted(
                p for p in folder.iterdir() if p.suffix == ".crt" and not p.name.endswith(".cert")
            )
    return found


def _auth_files() -> list[Path]:
    files = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    files.append(Path(f"/run/containers/{os.getuid()}/auth.json"))
    files.append(Path.home() / ".config" / "containers" / "auth.json")
    docker_config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    files.append(Path(docker_config) / "config.json")
    return files


def credentials(registry: str) -> tuple[str, str] | None:
    """(username, password) stored by ``podman login`` / ``docker login`` for ``registry``, if any."""
    for path in _auth_files():
        try:
            auths = json.loads(path.read_text(encoding="utf-8")).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        for key in (registry, f"https://{registry}", f"https://{registry}/v1/"):
            entry = auths.get(key)
            if isinstance(entry, dict) and entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
    return None


class Registry:
    """One registry host; remembers the token (or Basic credentials) its challenge asked for."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._context = ssl.create_default_context()
        for ca in ca_files(host):
            self._context.load_verify_locations(cafile=str(ca))
        self._credentials = credentials(host)
        self._authorization: str | None = None

    def _url(self, path: str) -> str:
        return path if path.startswith("https://") else f"https://{self.host}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        scope: str = "",
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); answers a 401 challenge once, RegistryError for other failures."""
        for attempt in range(2):
            request = urllib.request.Request(self._url(path), data=body, method=method)
            for key, value in (headers or {}).items():
                request.add_header(key, value)
            if self._authorization:
                request.add_header("Authorization", self._authorization)
            try:
                with urllib.request.urlopen(request, timeout=_TIMEOUT_S, context=self._context) as response:
                    return response.status, dict(response.headers.items()), response.read()
            except urllib.error.HTTPError as error:
                answer = error.read()
                if error.code == 401 and attempt == 0:
                    self._authorization = self._answer(error.headers.get("WWW-Authenticate", ""), scope)
                    continue
                if error.code in ok:
                    return error.code, dict(error.headers.items()), answer
                if error.code == 404 and 404 in ok:
                    return 404, {}, answer
                raise RegistryError(
                    f"{method} {self._url(path)} answered {error.code}: {answer[:300].decode(errors='replace')}"
                    + (" (log in first: podman login / docker login)" if error.code in (401, 403) else ""),
                    status=error.code,
                ) from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise RegistryError(f"cannot reach {self.host}: {reason}") from None
        raise RegistryError(
            f"{method} {self._url(path)}: credentials for {self.host} were refused", status=401
        )

    def _answer(self, challenge: str, scope: str) -> str:
        scheme, _, params = challenge.partition(" ")
        if self._credentials is None:
            raise RegistryError(
                f"{self.host} asks for credentials and none are stored: `podman login {self.host}` "
                f"(or docker login) first",
                status=401,
            )
        user, password = self._credentials
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if scheme.lower() == "basic":
            return basic
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", "")}
        if scope or fields.get("scope"):
            query["scope"] = scope or fields["scope"]
        request = urllib.request.Request(f"{fields['realm']}?{urllib.parse.urlencode(query)}")
        request.add_header("Authorization", basic)
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S, context=self._context) as response:
            token = json.loads(response.read())
        return f"Bearer {token.get('token') or token.get('access_token')}"

    # ---- the distribution API ----

    def manifest(self, repository: str, reference: str) -> tuple[bytes, str, str] | None:
        """(bytes, media type, digest) of a manifest by tag or digest; None when there is none."""
        status, headers, body = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            scope=f"repository:{repository}:pull",
            ok=(200, 404),
        )
        if status == 404:
            return None
        lowered = {key.lower(): value for key, value in headers.items()}
        return body, lowered.get("content-type", ""), sha256_digest(body)

    def blob(self, repository: str, digest: str) -> bytes:
        _, _, body = self.request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull"
        )
        if sha256_digest(body) != digest:
            raise RegistryError(f"blob {digest} of {self.host}/{repository} does not match its digest")
        return body

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` (monolithic upload) unless the registry has it; its digest."""
        digest = sha256_digest(data)
        scope = f"repository:{repository}:pull,push"
        status, _, _ = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope, ok=(200, 404))
        if status == 200:
            return digest
        _, headers, _ = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        location = {key.lower(): value for key, value in headers.items()}["location"]
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}digest={urllib.parse.quote(digest)}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
            scope=scope,
        )
        return digest

    def push_manifest(self, repository: str, tag: str, manifest: dict[str, Any]) -> str:
        data = json.dumps(manifest, separators=(",", ":")).encode()
        self.request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            body=data,
            headers={"Content-Type": manifest.get("mediaType", OCI_MANIFEST)},
            scope=f"repository:{repository}:pull,push",
        )
        return sha256_digest(data)
