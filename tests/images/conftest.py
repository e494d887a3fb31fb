"""What the image tests share: the engines (podman, and a dockerd started here), a TLS registry with basic
auth started here, prebake's wheel, the local bases, and every image built once per session.

These tests run in CI (CI=true, root, Debian: podman and docker.io are installed by scripts/setup.sh when
missing) and elsewhere when PREBAKE_IMAGE_TESTS=1 asks for them; otherwise they skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prebake.images.build import BuildResult, build_image, build_prebake_wheel
from prebake.images.catalog import Catalog, load_catalog
from prebake.images.engine import Engine

from .daemons import DOCKER_CLIENT, DOCKERD, REGISTRY_BINARY, DockerDaemon, TLSRegistry

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install-podman.sh"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA = CA_BUNDLE if CA_BUNDLE.is_file() else None
FIGURES = ROOT / "out" / "image-figures"  # what the runs measured, for docs/images.md (not assertions)


def record(engine: str, name: str, **figures: object) -> None:
    """Merge ``figures`` into out/image-figures/ENGINE/NAME.json."""
    import json

    path = FIGURES / engine / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **figures}, indent=2) + "\n")


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require_image_tests() -> None:
    if not in_ci() and os.environ.get("PREBAKE_IMAGE_TESTS") != "1":
        pytest.skip("image builds take minutes: set PREBAKE_IMAGE_TESTS=1 (CI=true runs them always)")
    if os.geteuid() != 0:
        pytest.skip("the image tests bootstrap bases with debootstrap and start dockerd, which need root")


def missing(message: str) -> None:
    """In CI a missing tool is a failure (setup.sh installs it); elsewhere a skip naming it."""
    pytest.fail(message) if in_ci() else pytest.skip(message)


@pytest.fixture(scope="session")
def podman() -> Engine:
    require_image_tests()
    if shutil.which("podman") is None and in_ci():
        subprocess.run([str(INSTALL)], check=True)
    if shutil.which("podman") is None:
        missing("podman is not installed (scripts/install-podman.sh installs it on Debian)")
    return Engine.find("podman")


@pytest.fixture(scope="session")
def docker() -> Iterator[Engine]:
    """Debian's docker client against a dockerd started for this session (DOCKER_HOST points at it)."""
    require_image_tests()
    if not (DOCKERD.exists() and DOCKER_CLIENT.exists()):
        missing("docker.io is not installed (scripts/setup.sh --test installs it: apt-get install docker.io)")
    with DockerDaemon() as daemon, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", daemon.host)
        yield Engine("docker", str(DOCKER_CLIENT))


def engine_named(request: pytest.FixtureRequest, name: str) -> Engine:
    engine: Engine = request.getfixturevalue(name)
    return engine


@pytest.fixture(scope="session")
def registry(podman: Engine) -> Iterator[TLSRegistry]:
    """A TLS + basic-auth registry on 127.0.0.1, podman logged in to it (docker logs in when it is used)."""
    if not REGISTRY_BINARY.exists():
        missing("docker-registry is not installed (scripts/setup.sh --test: apt-get install docker-registry)")
    with TLSRegistry() as started, pytest.MonkeyPatch.context() as patch:
        # Credentials go to files of this session's own, never the user's ~/.docker or auth.json.
        patch.setenv("REGISTRY_AUTH_FILE", str(started.root / "auth.json"))
        patch.setenv("DOCKER_CONFIG", str(started.root / "docker-config"))
        patch.setenv("PREBAKE_STATE_DIR", str(started.root / "state"))
        patch.setenv("XDG_CONFIG_HOME", str(started.root / "config"))  # the default signing key lands here
        podman.login(started.host, started.username, started.password)
        yield started


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_prebake_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("out")


class Builds:
    """Each (engine, image) built at most once per session, on the local debootstrap base."""

    def __init__(self, request: pytest.FixtureRequest, catalog: Catalog, wheel: Path, output: Path) -> None:
        self.request = request
        self.catalog = catalog
        self.wheel = wheel
        self.output = output
        self.results: dict[tuple[str, str], BuildResult] = {}
        self.bases: set[tuple[str, str]] = set()

    def engine(self, name: str) -> Engine:
        return engine_named(self.request, name)

    def base(self, engine_name: str, base_key: str) -> None:
        """The catalog base bootstrapped with podman (debootstrap) and copied into docker when needed."""
        if (engine_name, base_key) in self.bases:
            return
        from prebake.images.base import bootstrap_base

        podman = self.engine("podman")
        base = self.catalog.bases[base_key]
        bootstrap_base(podman, base)
        if engine_name == "docker":
            docker = self.engine("docker")
            if not docker.image_exists(base.local):
                podman.copy_to(docker, base.local)
        self.bases.add((engine_name, base_key))

    def get(self, engine_name: str, name: str) -> BuildResult:
        key = (engine_name, name)
        if key not in self.results:
            image = self.catalog.get(name)
            self.base(engine_name, image.base.key)
            self.results[key] = build_image(
                image, self.catalog, self.engine(engine_name), prebake_wheel=self.wheel, base="local",
                ca_bundle=CA, output_root=self.output / engine_name,
            )  # fmt: skip
            result = self.results[key]
            print(result.summary())
            record(engine_name, name, size_bytes=result.size_bytes, build_seconds=round(result.seconds, 1),
                   added_bytes=result.added_bytes, base=result.base)  # fmt: skip
        return self.results[key]


@pytest.fixture(scope="session")
def builds(request: pytest.FixtureRequest, catalog: Catalog, wheel: Path, output: Path) -> Builds:
    require_image_tests()
    return Builds(request, catalog, wheel, output)


def prebake_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """The prebake command of this checkout, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "prebake", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
