"""prebake's own wheel, to install into the images it builds: from a checkout, or from the installed prebake.

In a checkout (pyproject.toml beside src/), the wheel is built from source with ``pip wheel``. Where prebake
was installed from a wheel (``pip install prebake``, no checkout), the installed files are packed back into
a wheel: the installed distribution's RECORD lists every file the original wheel put into site-packages,
with its hash, so the result holds the same files (and the same METADATA) as the wheel the user installed.
Bytecode, the installer's own notes (INSTALLER, REQUESTED, direct_url.json) and launcher scripts are left
out; pip recreates scripts from entry_points.txt.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

from prebake.errors import ImageError

CHECKOUT = Path(__file__).resolve().parents[3]
# Written by the installer, not the wheel (PEP 376 / 610); RECORD is rewritten for the files kept.
_INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: the same files give the same bytes


class WheelFailed(ImageError):
    """prebake's own wheel could not be made."""


def is_checkout(root: Path = CHECKOUT) -> bool:
    """Whether prebake runs from a source tree (its pyproject.toml beside src/prebake)."""
    pyproject = root / "pyproject.toml"
    return pyproject.is_file() and (root / "src" / "prebake").is_dir()


def prebake_wheel(destination: Path, *, root: Path = CHECKOUT) -> Path:
    """A wheel of the running prebake in ``destination``: built from the checkout, else repacked."""
    destination.mkdir(parents=True, exist_ok=True)
    if is_checkout(root):
        return _build_from_checkout(destination, root)
    return repack_installed(destination)


def _build_from_checkout(destination: Path, root: Path) -> Path:
    print("prebake build: building the prebake wheel from the checkout", file=sys.stderr, flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(destination), str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(destination.glob("prebake-*.whl"))
    if result.returncode != 0 or not wheels:
        raise WheelFailed(f"building the prebake wheel failed: {result.stderr.strip()[-500:]}")
    return wheels[-1]


def repack_installed(destination: Path, distribution: str = "prebake") -> Path:
    """Pack the installed distribution's files (as its RECORD lists them) into a wheel."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise WheelFailed(f"{distribution} is not installed, and this is no checkout") from error
    files = dist.files
    if not files:
        raise WheelFailed(f"the installed {distribution} has no RECORD; reinstall it with pip")
    info = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
    wheel_path = destination / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-py3-none-any.whl"
    entries: list[tuple[str, bytes]] = []
    for file in files:
        name = file.as_posix()
        if name.startswith("..") or "__pycache__" in file.parts or name.endswith(".pyc"):
            continue  # launcher scripts (outside site-packages) and bytecode: the installer makes them
        if file.parts[0] == info and file.name in _INSTALLER_FILES:
            continue
        path = Path(str(file.locate()))
        if not path.is_file():
            raise WheelFailed(f"installed file {path} is missing: reinstall {distribution}")
        entries.append((name, path.read_bytes()))
    if not any(name == f"{info}/WHEEL" for name, _ in entries):
        raise WheelFailed(f"the installed {distribution} has no {info}/WHEEL file; reinstall it with pip")
    record_lines = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in entries]
    record_lines.append(f"{info}/RECORD,,")
    entries.append((f"{info}/RECORD", ("\n".join(record_lines) + "\n").encode()))
    with zipfile.ZipFile(wheel_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(entries, key=lambda entry: (entry[0].startswith(info), entry[0])):
            member = zipfile.ZipInfo(name, _EPOCH)
            member.external_attr = 0o644 << 16
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, data)
    print(f"prebake build: packed the installed prebake {dist.version} into {wheel_path.name}",
          file=sys.stderr, flush=True)  # fmt: skip
    return wheel_path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
