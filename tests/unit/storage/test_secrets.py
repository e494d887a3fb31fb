"""Credentials scrubbed out of library error text before anything is shown."""

from __future__ import annotations

from prebake.storage.secrets import scrub


def test_scrub_removes_credential_values_from_the_environment() -> None:
    """The values of AWS/Azure secret variables disappear; ordinary values stay."""
    env = {"AWS_SECRET_ACCESS_KEY": "abc123secretvalue", "AWS_DEFAULT_REGION": "us-east-1",
           "AZURE_STORAGE_ACCOUNT_KEY": "a2V5a2V5a2V5"}  # fmt: skip
    text = scrub("signed with abc123secretvalue in us-east-1 key a2V5a2V5a2V5", env)
    assert text == "signed with *** in us-east-1 key ***"


def test_scrub_removes_signatures_keys_and_headers() -> None:
    """Query strings, AccountKey=, sig= and Authorization headers are blanked wherever they appear."""
    text = scrub(
        "GET https://a.blob.core.windows.net/c/m?sv=1&sig=SIGNATURE failed; "
        "AccountKey=KEYVALUE==;BlobEndpoint=x; Authorization: SharedKey acct:HMAC",
        {},
    )
    for secret in ("SIGNATURE", "KEYVALUE", "HMAC"):
        assert secret not in text
    assert "https://a.blob.core.windows.net/c/m?***" in text
