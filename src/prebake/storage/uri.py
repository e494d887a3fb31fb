"""Storage URIs: which strings are remote, what they name, and how they may be shown.

    s3://BUCKET/KEY                      Amazon S3 (or any S3 API: AWS_ENDPOINT_URL)
    gs://BUCKET/OBJECT   gcs://...       Google Cloud Storage (STORAGE_EMULATOR_HOST for an emulator)
    az://CONTAINER/BLOB                  Azure Blob Storage; the account from the credentials
    abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH   (abfss:// too; also abfs://CONTAINER/PATH)
    https://HOST/PATH   http://...       one file over HTTP(S); a query string (a SAS token, a presigned
                                         URL's signature) is a credential: never shown, never a cache key

A URI names a file or a folder (every object under the prefix). ``display`` is the only form that goes
into a message or a log line: no user:password, no query string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

from prebake.errors import StorageError

Scheme = Literal["s3", "gs", "az", "http"]

#: URI scheme -> the backend that reads it.
SCHEMES: dict[str, Scheme] = {
    "s3": "s3",
    "gs": "gs",
    "gcs": "gs",
    "az": "az",
    "abfs": "az",
    "abfss": "az",
    "http": "http",
    "https": "http",
}
_LOOKS_LIKE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI (``scheme://...``) rather than a local path.

    >>> is_uri("s3://models/iris.joblib"), is_uri("./iris.joblib")
    (True, False)
    """
    return bool(_LOOKS_LIKE_URI.match(text))


@dataclass(frozen=True, slots=True)
class StorageURI:
    """A parsed URI. ``text`` is the URI as given (secrets included: pass it only to the library)."""

    text: str
    scheme: Scheme
    bucket: str  # the bucket, the container (CONTAINER@ACCOUNT... for abfs), the host for http(s)
    path: str  # the key or prefix inside the bucket, without leading or trailing '/'
    display: str  # safe to print

    @property
    def key(self) -> str:
        """What identifies the URI in the cache: no credentials, no trailing '/'."""
        return f"{self.scheme}://{self.bucket}/{self.path}"

    @property
    def name(self) -> str:
        """The last part of the path (the bucket where there is none): what the local copy is called."""
        return PurePosixPath(self.path).name or self.bucket.split("@", 1)[0]


def display(text: str) -> str:
    """``text`` without what may be a credential: user:password@ and the query string.

    >>> display("https://user:pw@host/m.joblib?sig=abc")
    'https://host/m.joblib'
    """
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.split("?", 1)[0].split("#", 1)[0]
    # abfs://CONTAINER@ACCOUNT... is no credential; anywhere else, what precedes '@' is user:password.
    host = parts.netloc if parts.scheme.lower() in ("abfs", "abfss") else parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


def parse(text: str) -> StorageURI:
    """StorageURI for ``text``; StorageError (exit 2) naming the URI when it cannot be read.

    >>> parse("s3://models/iris/").path
    'iris'
    """
    shown = display(text)
    try:
        parts = urlsplit(text)
    except ValueError as error:
        raise StorageError(f"{shown} is not a valid URI ({error})") from None
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        known = ", ".join(f"{name}://" for name in SCHEMES)
        raise StorageError(f"{shown}: unknown storage scheme {parts.scheme!r}; prebake reads {known}")
    path = parts.path.strip("/")
    if scheme == "http":
        if not parts.hostname:
            raise StorageError(f"{shown}: no host in the URL")
        if not path:
            raise StorageError(f"{shown}: name a file on the server (an HTTP URL cannot be listed)")
        return StorageURI(text, scheme, parts.netloc.rsplit("@", 1)[-1], path, shown)
    if parts.query or parts.fragment:
        raise StorageError(f"{shown}: {parts.scheme}:// URIs take no query string or fragment")
    bucket = parts.netloc
    if "@" in bucket and scheme != "az":
        raise StorageError(
            f"{shown}: credentials do not go in a {parts.scheme}:// URI: give them the cloud's usual way "
            "(environment, profile, workload identity)"
        )
    container = bucket.split("@", 1)[0]  # abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/...
    if scheme != "az" or not container:
        container = bucket
    if not _BUCKET.match(container):
        what = "container" if scheme == "az" else "bucket"
        raise StorageError(
            f"{shown}: {container!r} is not a {what} name (expected {parts.scheme}://{what.upper()}/PATH)"
        )
    if any(part in (".", "..") for part in path.split("/")):
        raise StorageError(f"{shown}: '.' and '..' are not allowed in a storage path")
    return StorageURI(text, scheme, bucket, path, shown)
