"""Keep credentials out of every message: a cloud library's error text can quote a signed URL, a
connection string or a header, so each one is scrubbed before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Environment variables whose values are credentials (the clouds' standard names, and anything named so).
_SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCOUNT_KEY|ACCESS_KEY|CONNECTION_STRING|SAS"
)
_PATTERNS = (
    # a URL's query string: SAS tokens and presigned signatures live there
    re.compile(r"(?i)(https?://[^\s?'\"]*)\?[^\s'\"]*"),
    # key=value credentials in connection strings and query strings
    re.compile(
        r"(?i)\b(AccountKey|SharedAccessSignature|sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token"
        r"|X-Goog-Signature|X-Goog-Credential|access_token|client_secret)=[^\s;&'\"]+"
    ),
    re.compile(
        r"(?i)\b(Authorization|x-amz-security-token|x-ms-copy-source-authorization)(['\"]?\s*[:=]\s*['\"]?)[^'\"\n]+"
    ),
)
_MIN_SECRET = 6  # shorter values (a "1", a region) would blank out ordinary words


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values in ``env`` that are credentials, longest first."""
    values = {
        value
        for name, value in env.items()
        if _SECRET_NAME.search(name.upper()) and len(value) >= _MIN_SECRET
    }
    return sorted(values, key=len, reverse=True)


def scrub(text: str, env: Mapping[str, str], also: Iterable[str] = ()) -> str:
    """``text`` with every credential replaced by ``***``: the secret values of ``env``, the strings in
    ``also``, and anything shaped like a signature, key or token.

    >>> scrub("GET https://h/m?sig=abc failed", {})
    'GET https://h/m?*** failed'
    """
    for value in (*sorted(also, key=len, reverse=True), *secret_values(env)):
        if value:
            text = text.replace(value, "***")
    text = _PATTERNS[0].sub(r"\1?***", text)
    text = _PATTERNS[1].sub(r"\1=***", text)
    return _PATTERNS[2].sub(r"\1\2***", text)
