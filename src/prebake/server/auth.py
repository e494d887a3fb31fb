"""Optional API-key auth for every route that is not a health probe.

Keys come from PREBAKE_API_KEY (comma-separated) or a file (PREBAKE_API_KEY_FILE / --api-key-file, one key
per line; read by config.read_keys) so they need not sit in a process listing. A client sends `Authorization: Bearer KEY` (what
Azure ML online endpoints and KServe clients send) or `x-api-key: KEY`. Keys are compared in constant
time and never logged.
"""

from __future__ import annotations

import hmac

from prebake.errors import Unauthorized


def _presented(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.strip()
    return None


def check(keys: tuple[bytes, ...], headers: list[tuple[bytes, bytes]]) -> None:
    """Raise Unauthorized unless the request carries one of the keys."""
    token = _presented(headers)
    if token is None:
        raise Unauthorized(
            "this server needs an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            headers=[("www-authenticate", 'Bearer realm="prebake"')],
        )
    # Compare against every key, without stopping early, so timing says nothing about which matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    if not matched:
        raise Unauthorized(
            "the API key is not valid", headers=[("www-authenticate", 'Bearer error="invalid_token"')]
        )
