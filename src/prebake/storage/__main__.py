"""``python -m prebake.storage URI...``: fetch each URI into the cache; print one JSON line, exit 0 or 2.

    {"fetched": [{"uri": ..., "path": ..., "cached": ..., "files": ..., "bytes": ..., "seconds": ...}]}
    {"error": "s3://bucket/model.joblib: no such object or folder (...)"}

The process ``prebake serve`` runs before it starts the server (localize.py), and a tool for scripts.
"""

from __future__ import annotations

import json
import os
import sys

from prebake.errors import StorageError
from prebake.storage.fetch import fetch
from prebake.storage.secrets import scrub

USAGE = 2


def main(argv: list[str]) -> int:
    if not argv:
        print(json.dumps({"error": "usage: python -m prebake.storage URI [URI ...]"}))
        return USAGE
    try:
        results = [fetch(text, os.environ).as_json() for text in argv]
    except StorageError as error:
        print(json.dumps({"error": error.message}))
        return USAGE
    except Exception as error:  # noqa: BLE001  this process's outermost layer: say what broke, no secret
        message = scrub(
            f"fetching failed unexpectedly: {type(error).__name__}: {error}", os.environ, also=argv
        )
        print(json.dumps({"error": message}))
        return 1
    print(json.dumps({"fetched": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
