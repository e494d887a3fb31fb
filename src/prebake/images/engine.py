"""The container engine driver: the one module that knows whether podman or docker is used.

Every call goes through ``Engine.run`` (captured) or ``Engine.stream`` (progress shown as it goes), so the
rest of prebake speaks in images and containers, never in command lines. Where the two engines differ
(how an image's existence is asked, how a push reports its digest, what a build leaves behind) the
difference is written here once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prebake.errors import ImageError

EngineName = Literal["podman", "docker"]
ENGINES: tuple[EngineName, ...] = ("podman", "docker")
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


class EngineMissing(ImageError):
    """Neither podman nor docker (or not the one asked for) is on PATH."""


class EngineFailed(ImageError):
    """An engine command exited non-zero."""


def engine_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment engine commands run with: prebake's containers.conf unless the user set their own."""
    env = dict(os.environ if base is None else base)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    # docker needs BuildKit for RUN --mount (the CA secret, the local wheels); podman has it built in.
    env.setdefault("DOCKER_BUILDKIT", "1")
    return env


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of an image, newest first as the engine's history lists them."""

    size_bytes: int
    created_by: str


@dataclass(frozen=True, slots=True)
class Engine:
    """A found engine: its name and executable path."""

    name: EngineName
    path: str

    @classmethod
    def find(cls, preferred: str | None = None) -> Engine:
        """The engine asked for (a name, or the path of a podman or docker executable), or the first of
        podman and docker on PATH; EngineMissing otherwise.

        A path picks one client among several: a docker CLI without buildx cannot use BuildKit, while
        Debian's docker.io client (/usr/bin/docker) has it built in.
        """
        if preferred and os.sep in preferred:
            executable = Path(preferred)
            kind = next((name for name in ENGINES if executable.name.startswith(name)), None)
            if kind is None:
                raise EngineMissing(f"--engine {preferred}: the executable must be podman or docker")
            if not (executable.is_file() and os.access(executable, os.X_OK)):
                raise EngineMissing(f"--engine {preferred}: no such executable")
            return cls(kind, str(executable))
        if preferred is not None and preferred not in ENGINES:
            raise EngineMissing(
                f"unknown engine {preferred!r}: choose podman or docker, or give the path of one"
            )
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

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None, input_text: str | None = None
    ) -> str:
        """Run an engine command, capture its output and return stdout; EngineFailed on a non-zero exit."""
        result = subprocess.run(
            [self.path, *args],
            capture_output=True,
            text=True,
            env=engine_environment(),
            timeout=timeout,
            input=input_text,
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
            text = "\n".join(tail)
            if "buildx component is missing" in text:
                text += (
                    f"\n{self.path} needs the buildx plugin for BuildKit (RUN --mount). Install docker-buildx, "
                    "or point --engine (PREBAKE_ENGINE) at a docker client with BuildKit built in, such as "
                    "Debian's docker.io (/usr/bin/docker)."
                )
            raise EngineFailed(f"{self.name} {args[0]} failed (exit {code}); last lines:\n" + text)

    def logs(self, container: str, tail: int | None = None) -> str:
        """A container's output, stdout and stderr together (the server logs to stderr); never raises."""
        args = [self.path, "logs", *(["--tail", str(tail)] if tail else []), container]
        result = subprocess.run(args, capture_output=True, text=True, env=engine_environment(), check=False)
        return (result.stdout + result.stderr).strip()

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

    def image_size(self, reference: str) -> int:
        size = self.inspect_image(reference).get("Size", 0)
        return int(size) if isinstance(size, int | float) else 0

    def remove_image(self, reference: str) -> None:
        """Remove an image if it is there (cleanup after a failed build); never raises."""
        subprocess.run(
            [self.path, "image", "rm", "-f", reference],
            capture_output=True,
            env=engine_environment(),
            check=False,
        )

    # ---- registries ----

    def push(self, reference: str) -> str:
        """Push a local image to its registry; the manifest digest (sha256:...) the registry stored."""
        if self.name == "podman":
            with tempfile.TemporaryDirectory(prefix="prebake-push-") as scratch:
                digest_file = Path(scratch) / "digest"
                self.stream("push", "--digestfile", str(digest_file), reference)
                found = _DIGEST.search(digest_file.read_text(encoding="utf-8"))
        else:
            # docker prints "TAG: digest: sha256:... size: N" as its last line.
            found = _DIGEST.search(self.run("push", reference).strip().splitlines()[-1])
        if found is None:
            raise EngineFailed(f"{self.name} push {reference} reported no digest")
        return found.group(0)

    def pull(self, reference: str) -> None:
        """Pull ``reference`` from its registry (credentials and CAs as the engine is configured)."""
        self.stream("pull", reference)

    def login(self, registry: str, username: str, password: str) -> None:
        """Log the engine in to ``registry`` (the password goes on stdin, never on a command line)."""
        self.run("login", "--username", username, "--password-stdin", registry, input_text=password)

    def copy_to(self, other: Engine, reference: str) -> None:
        """Copy a local image into another engine's store (podman save | docker load), e.g. a base."""
        with tempfile.TemporaryDirectory(prefix="prebake-copy-") as scratch:
            archive = Path(scratch) / "image.tar"
            self.run("save", "-o", str(archive), reference)
            other.run("load", "-i", str(archive))

    # ---- what an image is made of, and what a build leaves ----

    def layers(self, reference: str) -> list[Layer]:
        """The image's layers, newest first, with the instruction that made each (``history``)."""
        out = self.run(
            "history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", reference
        )
        layers = []
        for line in out.splitlines():
            size, _, created_by = line.partition("\t")
            if size.strip().isdigit():
                layers.append(Layer(int(size), created_by.strip()))
            elif size.strip():
                layers.append(Layer(parse_size(size), created_by.strip()))
        return layers

    def image_ids(self) -> set[str]:
        """Every local image id, intermediate ones included.

        podman fails the whole listing ("checking if image ... is dangling: reading image ...") when an
        image goes while it lists, as when another build in the same store removes its stages: ask again."""
        for attempt in range(4):
            try:
                return set(self.run("images", "--all", "--quiet", "--no-trunc").split())
            except EngineFailed:
                if attempt == 3:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def build_cache_ids(self) -> set[str]:
        """docker's BuildKit cache records (empty for podman, whose builds keep no separate cache)."""
        if self.name != "docker":
            return set()
        out = self.run("system", "df", "--verbose", "--format", "{{json .BuildCache}}")
        return {str(record["ID"]) for record in json.loads(out or "[]") or []}

    def prune_build_cache(self, ids: set[str]) -> None:
        """Remove these BuildKit cache records (docker takes one id per call); never raises.

        ``--all``: a step's result that the image shares (a COPY into the last stage, "Shared") goes
        only with it; the image keeps its layer. A record still used by another (its child) survives
        its own prune, so rounds repeat until a round removes nothing more.
        """
        remaining = set(ids)
        idle_rounds = 0
        while remaining and idle_rounds < 5:
            for record in sorted(remaining):
                subprocess.run(
                    [self.path, "builder", "prune", "--force", "--all", "--filter", f"id={record}"],
                    capture_output=True,
                    env=engine_environment(),
                    check=False,
                )
            left = remaining & self.build_cache_ids()
            # Records of the build's context stay in use for a moment after the build returns: wait, retry.
            idle_rounds = idle_rounds + 1 if left == remaining else 0
            if idle_rounds:
                time.sleep(0.2 * idle_rounds)
            remaining = left

    def build_cache_bytes(self) -> int:
        """Bytes in docker's BuildKit cache (0 for podman)."""
        if self.name != "docker":
            return 0
        out = self.run("system", "df", "--format", "{{.Type}}|{{.Size}}")
        return sum(
            parse_size(s)
            for k, _, s in (line.partition("|") for line in out.splitlines())
            if k == "Build Cache"
        )

    def store_bytes(self) -> int:
        """Bytes the engine's store holds on disk: podman's graph root as du counts it (its own sizes
        count a shared base once per image), docker's images (shared layers once) plus build cache."""
        if self.name == "podman":
            root = self.run("info", "--format", "{{.Store.GraphRoot}}").strip()
            du = subprocess.run(["du", "-sb", root], capture_output=True, text=True, check=False)
            if du.returncode == 0 and du.stdout.split():
                return int(du.stdout.split()[0])
            return 0
        out = self.run("system", "df", "--format", "{{.Type}}|{{.Size}}")
        return sum(
            parse_size(size)
            for kind, _, size in (line.partition("|") for line in out.splitlines())
            if kind in ("Images", "Build Cache")
        )


def parse_size(text: str) -> int:
    """docker's human sizes ("408.2MB", "12kB", "0B") as bytes; 0 for what it cannot read."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kKMGT]?B)\s*", text)
    if not match:
        return 0
    return int(float(match[1]) * _UNITS.get(match[2], 1))
