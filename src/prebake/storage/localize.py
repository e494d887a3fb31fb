"""Turn URIs into local paths for ``prebake serve``: the fetch runs in a child process (``python -m
prebake.storage``) so that the cloud libraries' threads, event loop, sockets and memory never reach the
server, which forks its workers afterwards.

    paths = localize(["s3://models/iris.joblib"], os.environ)   # {uri: Fetched}
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prebake.errors import StorageError
from prebake.storage.fetch import Fetched
from prebake.storage.secrets import scrub
from prebake.storage.uri import display, parse


def localize(uris: Sequence[str], env: Mapping[str, str]) -> dict[str, Fetched]:
    """``{uri: Fetched}`` for each distinct URI, all fetched (or found cached) before this returns.

    Raises StorageError (exit 2) naming the first URI that could not be fetched; nothing is left
    half-written in the cache.
    """
    wanted = list(dict.fromkeys(uris))
    for text in wanted:
        parse(text)  # a malformed URI fails here, before any process starts
    completed = subprocess.run(
        [sys.executable, "-m", "prebake.storage", *wanted],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    answer = _last_json(completed.stdout)
    if answer is None or "error" in answer:
        message = answer["error"] if answer else _tail(completed.stderr or completed.stdout, env, wanted)
        raise StorageError(str(message))
    results = [
        Fetched(
            item["uri"], Path(item["path"]), item["cached"], item["files"], item["bytes"], item["seconds"]
        )
        for item in answer["fetched"]
    ]
    return dict(zip(wanted, results, strict=True))


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _tail(output: str, env: Mapping[str, str], uris: Sequence[str]) -> str:
    lines = " | ".join(output.strip().splitlines()[-3:]) or "no output"
    shown = ", ".join(display(u) for u in uris)
    return scrub(f"fetching {shown} failed: {lines}", env, also=uris)
