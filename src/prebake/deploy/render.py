"""Manifests (plain dicts) to YAML text, and writing them out all or nothing.

A small emitter of its own keeps PyYAML out of prebake's dependencies: manifests only hold dicts,
lists, strings, integers and booleans. Strings that YAML could read as anything else (numbers, booleans,
null, text with ``: `` or a leading indicator) are written double-quoted, JSON-style, which YAML reads
back unchanged; multi-line strings become literal blocks. Keys keep their insertion order, so the output
reads like a hand-written manifest and golden files stay stable.

    >>> print(dump({"kind": "Service", "spec": {"ports": [{"port": 80}]}}), end="")
    kind: Service
    spec:
      ports:
      - port: 80
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prebake.errors import ConfigError

_PLAIN = re.compile(r"^[A-Za-z/_.][A-Za-z0-9/_.=+@-]*(:[A-Za-z0-9/_.@+-][A-Za-z0-9/_.=+@:-]*)*$")
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def scalar(value: Any) -> str:
    """One scalar as YAML: plain where that reads back as the same string, quoted otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _RESERVED:
            return value
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"manifests hold str, int, bool, lists and dicts; got {type(value).__name__}")


def _block(value: str, indent: int) -> str:
    pad = " " * indent
    chomp = "" if value.endswith("\n") else "-"
    lines = value[:-1].split("\n") if value.endswith("\n") else value.split("\n")
    return f"|{chomp}\n" + "\n".join(f"{pad}{line}" if line else "" for line in lines)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.extend(_entry(f"{pad}{scalar(str(key))}:", item, indent, indent + 2))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if isinstance(item, Mapping) and item:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.extend(_entry(f"{pad}-", item, indent, indent + 2))
    return out


def _entry(head: str, item: Any, indent: int, child: int) -> list[str]:
    if isinstance(item, Mapping):
        return [f"{head} {{}}"] if not item else [head, *_lines(item, child)]
    if isinstance(item, Sequence) and not isinstance(item, str):
        # Block lists under a key sit at the key's own indentation, as kubectl writes them.
        return [f"{head} []"] if not item else [head, *_lines(item, indent if head.endswith(":") else child)]
    if isinstance(item, str) and "\n" in item and item[:1] not in (" ", "\n") and "\r" not in item:
        return [f"{head} {_block(item, child)}"]
    return [f"{head} {scalar(item)}"]


def dump(document: Mapping[str, Any]) -> str:
    """One manifest as YAML text, ending in a newline."""
    return "\n".join(_lines(document, 0)) + "\n"


def dump_all(documents: Sequence[Mapping[str, Any]]) -> str:
    """Several manifests as one multi-document YAML stream (``kubectl apply -f`` and ``podman kube play`` read it)."""
    return "---\n".join(dump(document) for document in documents)


def write_files(directory: Path, files: Mapping[str, str], *, force: bool = False) -> list[Path]:
    """Write ``files`` (name -> text) into ``directory``: every file or, on any problem, none.

    Existing files are kept unless ``force``; each file is written to a temporary name and renamed, so a
    failure part-way leaves no half-written manifest.
    """
    targets = [directory / name for name in files]
    if not force:
        present = [str(path) for path in targets if path.exists()]
        if present:
            raise ConfigError(f"{', '.join(present)} already exist: pass --force to overwrite")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create output directory {directory}: {error.strerror}") from error
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in zip(targets, files.values(), strict=True):
            handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            staged.append((Path(staging), path))
    except OSError as error:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write manifests to {directory}: {error.strerror}") from error
    for temporary, path in staged:
        temporary.chmod(0o644)
        temporary.replace(path)
    return targets
