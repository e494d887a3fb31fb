"""The container engine driver: the one module that knows whether podman or docker is used.

Every call goes through ``Engine.run`` (captured) or ``Engine.stream`` (progress shown as it goes), so the
rest of prebake speaks in images and containers, never in command lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prebake.errors import ImageError

EngineName = Literal["podman", "docker"]
ENGINES: tuple[EngineName, ...] = ("podman", "docker")
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")


class EngineMissing(ImageError):
    """Neither podman nor docker (or not the one asked for) is on PATH."""


class EngineFailed(ImageError):
    """An engine command exited non-zero."""


def engine_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment engine commands run with: prebake's containers.conf unless the user set their own."""
    env = dict(os.environ if base is None else base)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    # docker needs BuildKit for RUN --mount=type=secret (the CA bundle); podman has it built in.
    env.setdefault("DOCKER_BUILDKIT", "1")
    return env


@dataclass(frozen=True, slots=True)
class Engine:
    """A found engine: its name and executable path."""

    name: EngineName
    path: str

    @classmethod
    def find(cls, preferred: str | None = None) -> Engine:
        """The engine asked for, or the first of podman and docker on PATH; EngineMissing otherwise."""
        if preferred is not None and preferred not in ENGINES:
            raise EngineMissing(f"unknown engine {preferred!r}: choose one of {', '.join(ENGINES)}")
        names: Sequence[EngineName] = (preferred,) if preferred else ENGINES
        for name in names:
            path = shutil.which(name)
            if path:
                return cls(name, path)
        wanted = preferred or "podman or docker"
        raise EngineMissing(
            f"no container engine found: {wanted} is not on PATH. "
            "Install podman (Debian: scripts/install-podman.sh, or apt-get install podman) or docker."
        )

    def run(self, *args: str, check: bool = True, timeout: float | None = None) -> str:
        """Run an engine command, capture its output and return stdout; EngineFailed on a non-zero exit."""
        result = subprocess.run(
            [self.path, *args],
            capture_output=True,
            text=True,
            env=engine_environment(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise EngineFailed(
                f"{self.name} {args[0]} failed (exit {result.returncode}): " + " | ".join(detail)
            )
        return result.stdout

    def run_in(self, image: str, program: str, *args: str) -> str:
        """``program args`` run once inside ``image``, offline, in a container removed after; its stdout."""
        return self.run("run", "--rm", "--network", "none", "--entrypoint", program, image, *args)

    def stream(self, *args: str, log: Path | None = None, input_file: Path | None = None) -> None:
        """Run an engine command showing its output line by line (long builds); EngineFailed on failure.

        The last lines are kept so the error names the step that failed; ``log`` keeps the whole output.
        """
        tail: list[str] = []
        stdin = input_file.open("rb") if input_file else subprocess.DEVNULL
        try:
            with subprocess.Popen(
                [self.path, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=stdin,
                text=True,
                env=engine_environment(),
            ) as process:
                assert process.stdout is not None
                with log.open("w") if log else open(os.devnull, "w") as sink:
                    for line in process.stdout:
                        sink.write(line)
                        sys.stderr.write(line)
                        tail = [*tail[-11:], line.rstrip()]
                code = process.wait()
        finally:
            if input_file:
                stdin.close()  # type: ignore[union-attr]
        if code != 0:
            raise EngineFailed(f"{self.name} {args[0]} failed (exit {code}); last lines:\n" + "\n".join(tail))

    def image_exists(self, reference: str) -> bool:
        """Whether a local image with this reference exists."""
        args = ("image", "exists", reference) if self.name == "podman" else ("image", "inspect", reference)
        return (
            subprocess.run(
                [self.path, *args], capture_output=True, env=engine_environment(), check=False
            ).returncode
            == 0
        )

    def inspect_image(self, reference: str) -> dict[str, object]:
        """The engine's inspect record of one image (size, labels, config)."""
        records = json.loads(self.run("image", "inspect", reference))
        record: dict[str, object] = records[0]
        return record

    def remove_image(self, reference: str) -> None:
        """Remove an image if it is there (cleanup after a failed build); never raises."""
        subprocess.run(
            [self.path, "image", "rm", "-f", reference],
            capture_output=True,
            env=engine_environment(),
            check=False,
        )
