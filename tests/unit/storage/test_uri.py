"""Storage URIs: what each names, the form that may be shown, and the errors for malformed ones."""

from __future__ import annotations

import pytest

from prebake.errors import StorageError
from prebake.storage.uri import display, is_uri, parse


@pytest.mark.parametrize(
    ("text", "scheme", "bucket", "path", "name"),
    [
        ("s3://models/iris.joblib", "s3", "models", "iris.joblib", "iris.joblib"),
        ("s3://models/team/iris/", "s3", "models", "team/iris", "iris"),
        ("gs://bucket", "gs", "bucket", "", "bucket"),
        ("gcs://bucket/a/b.onnx", "gs", "bucket", "a/b.onnx", "b.onnx"),
        ("az://container/m/model.pkl", "az", "container", "m/model.pkl", "model.pkl"),
        ("abfs://c@acct.dfs.core.windows.net/m", "az", "c@acct.dfs.core.windows.net", "m", "m"),
        ("abfss://c@acct.dfs.core.windows.net", "az", "c@acct.dfs.core.windows.net", "", "c"),
        ("https://host:8443/files/m.joblib?sig=x", "http", "host:8443", "files/m.joblib", "m.joblib"),
    ],
)
def test_parse_names_bucket_path_and_local_name(
    text: str, scheme: str, bucket: str, path: str, name: str
) -> None:
    """Each form parses to its bucket (container, host), its path, and the name its local copy gets."""
    uri = parse(text)
    assert (uri.scheme, uri.bucket, uri.path, uri.name) == (scheme, bucket, path, name)


def test_the_cache_key_ignores_a_trailing_slash_and_the_query() -> None:
    """s3://b/m and s3://b/m/ are one URI; a rotated SAS token does not make a new cache entry."""
    assert parse("s3://b/m").key == parse("s3://b/m/").key
    assert parse("https://h/m.joblib?sig=1").key == parse("https://h/m.joblib?sig=2").key


def test_display_drops_what_may_be_a_credential() -> None:
    """user:password and the query string are never shown; abfs's CONTAINER@ACCOUNT is kept."""
    assert display("https://u:p@h/m.joblib?sv=1&sig=s") == "https://h/m.joblib"
    assert display("abfs://c@acct.dfs.core.windows.net/m") == "abfs://c@acct.dfs.core.windows.net/m"


def test_is_uri_tells_uris_from_paths() -> None:
    """Only scheme:// is a URI: relative, absolute and Windows-looking paths are not."""
    assert is_uri("s3://b/k") and is_uri("https://h/m")
    assert not any(is_uri(p) for p in ("model.joblib", "/models/iris", "C:\\models", "s3:/folded"))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ftp://h/m", "unknown storage scheme 'ftp'"),
        ("s3://", "is not a bucket name"),
        ("s3://b/a/../k", "'.' and '..' are not allowed"),
        ("s3://b/k?versionId=1", "take no query string"),
        ("https:///m.joblib", "no host"),
        ("https://h/", "name a file"),
        ("gs://user:pw@b/k", "credentials do not go in"),
    ],
)
def test_malformed_uris_are_refused_by_name(text: str, says: str) -> None:
    """Each malformed URI is a StorageError (exit 2) naming it, never showing a password."""
    with pytest.raises(StorageError) as caught:
        parse(text)
    assert says in caught.value.message
    assert display(text) in caught.value.message
    assert "pw" not in caught.value.message
