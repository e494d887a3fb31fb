"""Readable mounts: the user's files as the image's uid 1000 can read them.

``prebake check`` and ``prebake run`` bind-mount the user's model and score.py folder into a container that
runs as uid 1000. A bind mount keeps the host's permissions, so a file or folder that only its owner (or
group) may read (a 0700 temporary folder, a 0750 home, a 0600 model) is "Permission denied" inside, for a
script that works on the user's machine. Only the "other" permission bits hold whatever the user mapping
(rootful or rootless podman, docker), so a path is mounted as it is when everything in it is world-readable,
and otherwise a readable copy is staged and mounted instead, and the output says so. The user's files are
never changed (podman's ``:U`` would chown them on the host).

    with Stager(scratch) as stage:
        model = stage.readable(model, "model")
        script = stage.readable_folder_of(script, "entry script")
        stage.notes    # what was copied, and why
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from prebake.errors import ConfigError

#: The most a folder may hold to be copied; past it the user is asked to fix the permissions instead.
MAX_COPY_BYTES = 2 * 1024**3
#: Folders never worth copying into a container (a score.py's folder is often a project root).
SKIPPED = (
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
)


def unreadable(path: Path) -> str | None:
    """Why a container user other than the owner cannot read ``path`` (a file, or a folder and everything
    in it); None when it can. Symbolic links are followed; one that leads out of a mounted folder is a
    reason too (it would dangle inside the container)."""
    path = path.resolve()
    if path.is_file():
        return _file_reason(path)
    root = path
    for folder, folders, files in os.walk(path, followlinks=False):
        current = Path(folder)
        if reason := _folder_reason(current):
            return reason
        folders[:] = [name for name in folders if name not in SKIPPED]
        for name in [*files, *folders]:
            entry = current / name
            if entry.is_symlink():
                target = entry.resolve()
                if not target.is_relative_to(root):
                    return f"{entry} links to {target}, outside the mounted folder"
                if target.is_file() and (reason := _file_reason(target)):
                    return reason
            elif entry.is_file() and (reason := _file_reason(entry)):
                return reason
    return None


def _file_reason(path: Path) -> str | None:
    mode = path.stat().st_mode
    return (
        None
        if mode & stat.S_IROTH
        else f"{path} is mode {stat.S_IMODE(mode):04o} (not readable by other users)"
    )


def _folder_reason(path: Path) -> str | None:
    mode = path.stat().st_mode
    if mode & stat.S_IROTH and mode & stat.S_IXOTH:
        return None
    return f"{path} is mode {stat.S_IMODE(mode):04o} (other users cannot list it)"


@dataclass
class Stager:
    """Stages readable copies under ``root`` (a fresh temporary folder when None); removes them on exit
    unless ``keep`` (a detached container still needs them: the notes say where they are)."""

    root: Path | None = None
    keep: bool = False
    notes: list[str] = field(default_factory=list)
    _made: Path | None = None

    def __enter__(self) -> Stager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._made is not None and not self.keep:
            shutil.rmtree(self._made, ignore_errors=True)

    def _folder(self) -> Path:
        if self._made is None:
            if self.root is not None:
                self.root.mkdir(parents=True, exist_ok=True)
            self._made = Path(tempfile.mkdtemp(prefix="prebake-readable-", dir=self.root))
            self._made.chmod(0o755)
        target = Path(tempfile.mkdtemp(dir=self._made))
        target.chmod(0o755)
        return target

    def readable(self, path: Path, label: str) -> Path:
        """``path`` itself when uid 1000 can read all of it, else a readable copy (noted)."""
        reason = unreadable(path)
        if reason is None:
            return path
        source = path.resolve()
        if source.is_dir():
            size = _size(source)
            if size > MAX_COPY_BYTES:
                raise ConfigError(
                    f"the container's user (uid 1000) cannot read the {label} {path}: {reason}; it is too large "
                    f"to copy ({size / 1e9:.1f} GB): run `chmod -R o+rX {path}`, or give a folder that holds "
                    "only what the deployment needs"
                )
            copy = self._folder() / source.name
            shutil.copytree(source, copy, symlinks=False, ignore=shutil.ignore_patterns(*SKIPPED))
        else:
            copy = self._folder() / source.name
            shutil.copyfile(source, copy)
        _open_up(copy)
        where = f" at {copy}" if self.keep else ""
        self.notes.append(
            f"mounted a readable copy of the {label} {path}{where}: {reason}, and the container runs as uid "
            f"1000 (to mount it directly, `chmod -R o+rX {path}`)"
        )
        return copy

    def readable_folder_of(self, script: Path, label: str) -> Path:
        """``script``, or the same file inside a readable copy of its folder (the folder is what is mounted)."""
        folder = self.readable(script.resolve().parent, f"{label}'s folder")
        return folder / script.name


def _size(folder: Path) -> int:
    total = 0
    for current, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if name not in SKIPPED]
        for name in files:
            try:
                total += (Path(current) / name).stat().st_size
            except OSError:
                continue
    return total


def _open_up(path: Path) -> None:
    """World-readable copies: folders 0755, files 0644 (0755 where the owner could execute them)."""
    items = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in items:
        if item.is_dir():
            item.chmod(0o755)
        else:
            item.chmod(0o755 if item.stat().st_mode & stat.S_IXUSR else 0o644)
