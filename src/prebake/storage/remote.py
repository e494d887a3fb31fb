"""Reading storage: list what a URI names (sizes and ETags, no content), then download objects.

Cloud URIs go through fsspec and the cloud's own filesystem (s3fs, gcsfs, adlfs: the ``storage`` extra),
imported only here, only when such a URI is given. Each finds credentials the way the cloud's own tools
do (environment, profile or config file, workload identity, instance metadata); prebake passes none.
http(s) URLs use the standard library: one GET, made conditional (If-None-Match / If-Modified-Since) on
the copy already cached, so an unchanged file is not sent again.

Every error becomes a StorageError that names the URI's display form, says whether the object is missing,
access was refused or storage was unreachable, and carries no credential (secrets.scrub).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from prebake.errors import StorageError
from prebake.storage.cache import RemoteObject
from prebake.storage.secrets import scrub
from prebake.storage.uri import StorageURI

CHUNK = 1 << 20
HTTP_TIMEOUT_S = 60.0  # per connect and per read, not for the whole download
#: scheme -> (the fsspec package that reads it, the pip extra that brings it)
PACKAGES = {"s3": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "az": ("adlfs", "azure")}
CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity (IRSA) or an instance role",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, or workload identity",
    "az": "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or "
    "AZURE_STORAGE_SAS_TOKEN, or a managed or workload identity (AZURE_CLIENT_ID)",
    "http": "a presigned URL or a SAS token in its query string",
}
_REFUSED = ("accessdenied", "invalidaccesskeyid", "signaturedoesnotmatch", "authenticationfailed",
            "authorizationfailure", "authorizationpermissionmismatch", "clientauthenticationerror",
            "invalidtoken", "expiredtoken", "forbidden", "unauthorized", "refresherror")  # fmt: skip
_MISSING = ("nosuchkey", "nosuchbucket", "notfound", "resourcenotfound", "containernotfound", "blobnotfound")


class Source(Protocol):
    """What a URI names, read in two steps so that an unchanged cache costs no download."""

    def objects(self, known: Sequence[RemoteObject]) -> list[RemoteObject]:
        """Every object, with its size and fingerprint. ``known`` is the newest cached listing."""
        ...

    def download(self, item: RemoteObject, destination: Path) -> RemoteObject:
        """Write ``item`` to ``destination``; returns it (its fingerprint completed where only now known)."""
        ...

    def close(self) -> None: ...


def open_source(uri: StorageURI, env: Mapping[str, str]) -> Source:
    return HTTPSource(uri, env) if uri.scheme == "http" else FsspecSource(uri, env)


@contextlib.contextmanager
def translated(uri: StorageURI, env: Mapping[str, str], doing: str) -> Iterator[None]:
    """Turn whatever a storage library raises into a StorageError naming ``uri`` and carrying no secret.

    Catching every exception here is deliberate: this is the boundary to three clouds' libraries, whose
    errors share no base class.
    """
    try:
        yield
    except StorageError:
        raise
    except ImportError as error:
        package, extra = PACKAGES.get(uri.scheme, ("", ""))
        raise StorageError(
            f"{uri.display}: reading {uri.scheme}:// URIs needs {package} ({error.name or error}), which is not "
            f"installed: pip install 'prebake[{extra}]' (or 'prebake[storage]' for every cloud); in an image, "
            "extend it (docs/storage.md)"
        ) from None
    except Exception as error:  # noqa: BLE001  the library boundary: see the docstring
        raise StorageError(_describe(uri, env, doing, error)) from None


def _describe(uri: StorageURI, env: Mapping[str, str], doing: str, error: BaseException) -> str:
    detail = scrub(f"{type(error).__name__}: {error}".replace(uri.text, uri.display), env, also=[uri.text])
    detail = " ".join(detail.split())[:400]
    status = (
        getattr(error, "code", None) or getattr(error, "status_code", None) or getattr(error, "status", None)
    )
    words = f"{type(error).__name__} {error}".lower().replace("_", "")
    if isinstance(error, PermissionError) or status in (401, 403) or any(w in words for w in _REFUSED):
        return (
            f"{uri.display}: access refused while {doing} ({detail}); check the credentials "
            f"({CREDENTIALS[uri.scheme]})"
        )
    if isinstance(error, FileNotFoundError) or status == 404 or any(w in words for w in _MISSING):
        return f"{uri.display}: no such object or folder ({detail}); check the bucket and path"
    if isinstance(error, OSError | TimeoutError) or "connect" in words or "timeout" in words:
        return f"{uri.display}: storage could not be reached while {doing} ({detail}); check the endpoint and network"
    return f"{uri.display}: {doing} failed ({detail})"


def _fingerprint(info: Mapping[str, Any]) -> str:
    for key in ("generation", "VersionId", "ETag", "etag", "md5Hash", "content_md5"):
        if value := info.get(key):
            return f"{key}:{str(value).strip(chr(34))}"
    for key in ("LastModified", "last_modified", "updated", "mtime", "created"):
        if value := info.get(key):
            return f"mtime:{value}"
    return ""


class FsspecSource:
    """s3://, gs:// and az:// through fsspec."""

    def __init__(self, uri: StorageURI, env: Mapping[str, str]) -> None:
        self.uri = uri
        self.env = env
        with translated(uri, env, "connecting"):
            import fsspec  # the storage extra

            # abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/...: adlfs reads the account from the URL itself.
            self.fs, self.root = fsspec.core.url_to_fs(uri.text)
            self.root = self.root.rstrip("/")

    def objects(self, known: Sequence[RemoteObject]) -> list[RemoteObject]:
        with translated(self.uri, self.env, "listing"):
            info = self.fs.info(self.root)
            if info.get("type") == "file":
                return [RemoteObject("", int(info.get("size") or 0), _fingerprint(info))]
            found = self.fs.find(self.root, detail=True, withdirs=False)
        objects = []
        for name, item in sorted(found.items()):
            relative = name.rstrip("/")[len(self.root) :].lstrip("/")
            if not relative or name.endswith("/") or item.get("type") == "directory":
                continue  # a folder marker (a zero-byte 'prefix/' object)
            if any(part in ("", ".", "..") for part in relative.split("/")):
                raise StorageError(
                    f"{self.uri.display}: object {relative!r} has a path that cannot be a file name"
                )
            objects.append(RemoteObject(relative, int(item.get("size") or 0), _fingerprint(item)))
        if not objects:
            raise StorageError(f"{self.uri.display}: no objects under this prefix; check the bucket and path")
        return objects

    def download(self, item: RemoteObject, destination: Path) -> RemoteObject:
        remote = f"{self.root}/{item.relative}" if item.relative else self.root
        with translated(self.uri, self.env, f"downloading {item.relative or self.uri.name}"):
            self.fs.get_file(remote, str(destination))
        size = destination.stat().st_size
        if size != item.size:
            raise StorageError(
                f"{self.uri.display}: {item.relative or self.uri.name} arrived with {size} of {item.size} bytes "
                "(changed or cut off during the download); start again"
            )
        return item

    def close(self) -> None:
        pass  # fsspec keeps its sessions for the process, which ends after the fetch


class HTTPSource:
    """One file over http(s) with the standard library (proxies and SSL_CERT_FILE honoured)."""

    def __init__(self, uri: StorageURI, env: Mapping[str, str]) -> None:
        self.uri = uri
        self.env = env
        self.response: http.client.HTTPResponse | None = None

    def objects(self, known: Sequence[RemoteObject]) -> list[RemoteObject]:
        headers = {"User-Agent": "prebake", "Accept-Encoding": "identity"}
        previous = known[0].fingerprint if len(known) == 1 else ""
        if previous.startswith("etag:"):
            headers["If-None-Match"] = previous.removeprefix("etag:")
        elif previous.startswith("mtime:"):
            headers["If-Modified-Since"] = previous.removeprefix("mtime:")
        request = urllib.request.Request(self.uri.text, headers=headers)
        with translated(self.uri, self.env, "requesting"):
            try:
                self.response = urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
            except urllib.error.HTTPError as error:
                if error.code != 304:
                    raise
                error.close()
                return list(known)  # Not Modified: the cached copy is current
        return self._listing()

    def _listing(self) -> list[RemoteObject]:
        assert self.response is not None
        length = self.response.headers.get("Content-Length")
        size = int(length) if length and length.isdigit() else -1
        if etag := self.response.headers.get("ETag"):
            fingerprint = f"etag:{etag}"
        elif modified := self.response.headers.get("Last-Modified"):
            fingerprint = f"mtime:{modified}"
        else:
            fingerprint = ""  # no validator: the content's hash, known after the download
        return [RemoteObject("", size, fingerprint)]

    def download(self, item: RemoteObject, destination: Path) -> RemoteObject:
        assert self.response is not None, "objects() first"
        digest = hashlib.sha256()
        written = 0
        with translated(self.uri, self.env, "downloading"), destination.open("wb") as out:
            while chunk := self.response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
        if item.size >= 0 and written != item.size:
            raise StorageError(
                f"{self.uri.display}: the download ended after {written} of {item.size} bytes; start again"
            )
        return RemoteObject("", written, item.fingerprint or f"sha256:{digest.hexdigest()}")

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
