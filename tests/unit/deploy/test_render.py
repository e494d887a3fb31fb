"""The YAML emitter and the all-or-nothing writer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prebake.deploy.render import dump, dump_all, scalar, write_files
from prebake.errors import ConfigError

TRICKY = [
    "true", "False", "yes", "no", "on", "off", "null", "~", "y", "n", "",
    "5001", "1.5", "1e3", "0x1F", "0o17", "2Gi", "100m", "-x", "--port", "- item", "a: b", "a #b",
    "{{.Name}}", "[x]", "*anchor", "&ref", "!tag", "%dir", "@at", "`tick`", "'single'", '"double"',
    "ghcr.io/prebake/sklearn:1", "/mnt/models", "app.kubernetes.io/name", "kubernetes.io/h2c",
    "x: ", " leading", "trailing ", "tab\there", "uni ✓", "colon:", "a,b", "?q", "|pipe", ">fold",
]  # fmt: skip


@pytest.mark.parametrize("text", TRICKY)
def test_scalars_read_back_as_the_same_string(text: str) -> None:
    """Every string, however YAML might misread it, comes back from a YAML parser as the same string."""
    assert yaml.safe_load(f"key: {scalar(text)}\n") == {"key": text}


def test_nested_documents_round_trip() -> None:
    """Dicts in lists in dicts, empty containers, ints, booleans and multi-line text read back unchanged."""
    document = {
        "kind": "Thing",
        "spec": {
            "items": [{"name": "a", "values": [1, True, "x"]}, {"empty": {}}, {"list": []}, [1, [2, 3]]],
            "script": "import os\n\ndef init():\n    pass\n",
            "no_newline": "a\nb",
            "indented_first": "  x\ny\n",
            "windows": "a\r\nb",
        },
    }
    assert yaml.safe_load(dump(document)) == document
    assert list(yaml.safe_load_all(dump_all([document, {"a": 1}]))) == [document, {"a": 1}]


def test_layout_reads_like_kubectl() -> None:
    """Lists sit at their key's indentation and multi-line strings become literal blocks."""
    text = dump({"spec": {"args": ["--port", "5001"], "data": {"score.py": "x = 1\n"}}})
    assert text == 'spec:\n  args:\n  - "--port"\n  - "5001"\n  data:\n    score.py: |\n      x = 1\n'


def test_unsupported_values_are_refused() -> None:
    """A float or an object in a manifest is a programming error, reported, not silently stringified."""
    with pytest.raises(TypeError, match="float"):
        dump({"x": 1.5})


def test_write_files_writes_every_file(tmp_path: Path) -> None:
    """All files land in the directory (created if needed) with their text."""
    written = write_files(tmp_path / "out", {"a.yaml": "a: 1\n", "b.yaml": "b: 2\n"})
    assert [path.read_text() for path in written] == ["a: 1\n", "b: 2\n"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.yaml", "b.yaml"]


def test_write_files_keeps_existing_files_unless_forced(tmp_path: Path) -> None:
    """An existing manifest is neither overwritten nor joined by the others without --force."""
    (tmp_path / "b.yaml").write_text("old\n")
    with pytest.raises(ConfigError, match="already exist"):
        write_files(tmp_path, {"a.yaml": "a: 1\n", "b.yaml": "b: 2\n"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.yaml"]
    assert (tmp_path / "b.yaml").read_text() == "old\n"
    write_files(tmp_path, {"a.yaml": "a: 1\n", "b.yaml": "b: 2\n"}, force=True)
    assert (tmp_path / "b.yaml").read_text() == "b: 2\n"


def test_write_files_reports_an_unwritable_directory(tmp_path: Path) -> None:
    """A file where the output directory should be gives a clear error and writes nothing."""
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ConfigError, match="cannot create output directory"):
        write_files(tmp_path / "out", {"a.yaml": "a: 1\n"})
