"""Readable mounts: which paths uid 1000 cannot read, and the copies staged for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from prebake.errors import ConfigError
from prebake.extend import staging
from prebake.extend.staging import Stager, unreadable


def _tree(root: Path) -> Path:
    (root / "app" / "pkg").mkdir(parents=True)
    (root / "app" / "score.py").write_text("def init(): pass\n")
    (root / "app" / "pkg" / "helper.py").write_text("X = 1\n")
    (root / "app" / "run.sh").write_text("#!/bin/sh\n")
    (root / "app" / "run.sh").chmod(0o700)
    for path in (root / "app", root / "app" / "pkg"):
        path.chmod(0o755)
    for path in (root / "app" / "score.py", root / "app" / "pkg" / "helper.py"):
        path.chmod(0o644)
    return root / "app"


def test_world_readable_trees_are_mounted_as_they_are(tmp_path: Path) -> None:
    """Everything o+r (folders o+rx): no reason, no copy, no note."""
    app = _tree(tmp_path)
    (app / "run.sh").chmod(0o755)
    assert unreadable(app) is None
    with Stager(tmp_path / "stage") as stage:
        assert stage.readable(app, "app") == app
        assert stage.notes == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda app: app.chmod(0o700), "is mode 0700 (other users cannot list it)"),
        (lambda app: app.chmod(0o750), "is mode 0750"),
        (lambda app: (app / "pkg" / "helper.py").chmod(0o600), "helper.py is mode 0600 (not readable"),
        (lambda app: (app / "link.py").symlink_to("/etc/hostname"), "links to /etc/hostname, outside"),
    ],
)
def test_what_uid_1000_could_not_read_is_named(tmp_path: Path, change: object, says: str) -> None:
    """A 0700 or 0750 folder, a 0600 file and a link out of the folder are each a reason to copy."""
    app = _tree(tmp_path)
    (app / "run.sh").chmod(0o755)
    change(app)  # type: ignore[operator]
    reason = unreadable(app)
    assert reason is not None and says in reason


def test_a_staged_copy_is_readable_and_the_original_untouched(tmp_path: Path) -> None:
    """The copy is 0755/0644 (executables 0755), skips .git and .venv, and the note says why and how to avoid it."""
    app = _tree(tmp_path)
    (app / ".git").mkdir()
    (app / ".git" / "HEAD").write_text("ref")
    app.chmod(0o700)
    with Stager(tmp_path / "stage") as stage:
        script = stage.readable_folder_of(app / "score.py", "entry script")
        assert script.read_text() == "def init(): pass\n" and script.parent != app
        assert unreadable(script.parent) is None
        assert (script.parent / "run.sh").stat().st_mode & 0o777 == 0o755
        assert not (script.parent / ".git").exists()
        assert stage.notes == [
            f"mounted a readable copy of the entry script's folder {app}: {app} is mode 0700 (other users cannot "
            f"list it), and the container runs as uid 1000 (to mount it directly, `chmod -R o+rX {app}`)"
        ]
    assert not script.exists()  # removed on exit
    assert app.stat().st_mode & 0o777 == 0o700


def test_a_folder_too_large_to_copy_asks_for_chmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the copy limit the user is told to fix the permissions or narrow the folder."""
    app = _tree(tmp_path)
    app.chmod(0o700)
    monkeypatch.setattr(staging, "MAX_COPY_BYTES", 10)
    with Stager(tmp_path / "stage") as stage, pytest.raises(ConfigError, match="too large to copy"):
        stage.readable(app, "entry script's folder")


def test_kept_copies_outlive_the_stager_and_say_where(tmp_path: Path) -> None:
    """keep=True (a detached container): the copy stays, and the note gives its path."""
    model = tmp_path / "model.joblib"
    model.write_bytes(b"m")
    model.chmod(0o600)
    with Stager(tmp_path / "stage", keep=True) as stage:
        copy = stage.readable(model, "model")
    assert copy.read_bytes() == b"m" and copy.stat().st_mode & 0o777 == 0o644
    assert f" at {copy}:" in stage.notes[0]
