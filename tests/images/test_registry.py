"""Images published to a real registry and pulled back, as a platform team keeping its own mirror does.

The registry is Debian's docker-registry (the CNCF distribution registry 2.8) started by the tests on
127.0.0.1 with TLS (a CA made in the test) and htpasswd basic auth (daemons.TLSRegistry). Everything goes
through the prebake commands a user runs: `prebake push` / `build --push` (signed, the SBOM attested, the
digest recorded), `images list --format json` (the digests), `prebake verify`, `prebake test` / `run` /
`deploy k8s` by the pushed reference (pulled, across engines), and a build FROM a base in that registry.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prebake.images.engine import Engine
from prebake.images.oci import Registry

from .conftest import Builds, prebake_cli, record
from .daemons import TLSRegistry, free_port

pytestmark = [pytest.mark.images, pytest.mark.slow]

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"
MINIMAL = "minimal-debian12-py311-cpu-inference"
SCORE = """
import json, socket

def init():
    pass

def run(raw):
    return {"sum": sum(json.loads(raw)["data"]), "host": socket.gethostname()}
"""


@pytest.fixture(scope="module")
def mirror(registry: TLSRegistry, podman: Engine) -> Iterator[str]:
    yield f"{registry.host}/mirror"
    # Every tag these tests made or pulled under the registry's address goes with it (the port is not reused).
    listing = podman.run("images", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
    for repository, tag, digest in (line.split() for line in listing.splitlines() if line.strip()):
        if repository.startswith(f"{registry.host}/"):
            podman.remove_image(f"{repository}:{tag}" if tag != "<none>" else f"{repository}@{digest}")


@pytest.fixture(scope="module")
def docker_logged_in(docker: Engine, registry: TLSRegistry) -> Engine:
    docker.login(registry.host, registry.username, registry.password)
    return docker


def _listing(mirror: str) -> dict[str, Any]:
    result = prebake_cli("images", "list", "--format", "json", "--registry", mirror)
    assert result.returncode == 0, result.stderr
    return {record["name"]: record for record in json.loads(result.stdout)}


@pytest.fixture(scope="module")
def pushed_sklearn(builds: Builds, mirror: str) -> dict[str, Any]:
    """The scikit-learn image built with podman and pushed (signed) with `prebake push`; its listing record."""
    builds.get("podman", SKLEARN)
    result = prebake_cli("push", SKLEARN, "--registry", mirror, "--engine", "podman")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "digest sha256:" in result.stdout and "signed, SBOM attested" in result.stdout
    return dict(_listing(mirror)[SKLEARN])


@pytest.fixture(scope="module")
def pushed_minimal_from_docker(builds: Builds, docker_logged_in: Engine, mirror: str) -> dict[str, Any]:
    """The minimal image built with docker and pushed with docker (unsigned: --no-sign)."""
    builds.get("docker", MINIMAL)
    result = prebake_cli(
        "push", MINIMAL, "--registry", mirror, "--engine", docker_logged_in.path, "--no-sign"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "UNSIGNED" in result.stdout
    return dict(_listing(mirror)[MINIMAL])


def test_push_records_the_registry_digest_and_stores_signature_and_sbom(
    pushed_sklearn: dict[str, Any], registry: TLSRegistry, mirror: str
) -> None:
    """`images list --format json` shows the digest the registry stores, and the registry holds the cosign-style .sig and .att beside it."""
    reference = f"{mirror}/{SKLEARN}:latest"
    assert pushed_sklearn["reference"] == reference
    digest = pushed_sklearn["digest"]
    client = Registry(registry.host)
    stored = client.manifest(f"mirror/{SKLEARN}", "latest")
    assert stored is not None and stored[2] == digest
    push = pushed_sklearn["pushed"][-1]
    assert push["pinned"] == f"{mirror}/{SKLEARN}@{digest}" and push["engine"] == "podman"
    _, _, body = client.request(
        "GET", f"/v2/mirror/{SKLEARN}/tags/list", scope=f"repository:mirror/{SKLEARN}:pull"
    )
    tags = set(json.loads(body)["tags"])
    hex_digest = digest.removeprefix("sha256:")
    assert {"latest", f"sha256-{hex_digest}.sig", f"sha256-{hex_digest}.att"} <= tags
    assert (
        push["signature"] == f"sha256-{hex_digest}.sig" and push["attestation"] == f"sha256-{hex_digest}.att"
    )


def test_verify_accepts_the_signed_image_and_refuses_others(
    pushed_sklearn: dict[str, Any], pushed_minimal_from_docker: dict[str, Any], mirror: str, tmp_path: Path
) -> None:
    """`prebake verify` passes the signed push (signature and SBOM attestation), and exits 7 for an unsigned image or another key."""
    ok = prebake_cli("verify", pushed_sklearn["pushed"][-1]["pinned"], "--format", "json")
    report = json.loads(ok.stdout)
    assert ok.returncode == 0 and report["ok"], ok.stdout + ok.stderr
    assert report["valid_signatures"] == 1 and report["sbom_attestation"] and report["sbom_components"] > 50
    by_name = prebake_cli("verify", SKLEARN, "--registry", mirror)  # a catalog name under --registry
    assert by_name.returncode == 0 and "verified" in by_name.stdout, by_name.stdout + by_name.stderr
    unsigned = prebake_cli("verify", f"{mirror}/{MINIMAL}:latest")
    assert unsigned.returncode == 7 and "no signature in the registry" in unsigned.stdout, unsigned.stdout
    other = tmp_path / "other.key"
    assert prebake_cli("keygen", str(other)).returncode == 0
    wrong = prebake_cli("verify", f"{mirror}/{SKLEARN}:latest", "--key", str(other.with_suffix(".pub")))
    assert wrong.returncode == 7 and "does not verify with this key" in wrong.stdout, wrong.stdout


def test_podman_push_pulls_back_with_docker_and_serves(
    pushed_sklearn: dict[str, Any], docker_logged_in: Engine
) -> None:
    """The image podman pushed is pulled by docker from the registry by its pinned digest and passes the smoke test there."""
    pinned = pushed_sklearn["pushed"][-1]["pinned"]
    assert not docker_logged_in.image_exists(pinned)
    result = prebake_cli("test", pinned, "--engine", docker_logged_in.path, "--no-code")
    assert result.returncode == 0, result.stderr[-3000:]
    assert docker_logged_in.image_exists(pinned) and "ok sklearn" in result.stdout
    record("podman", SKLEARN, pushed=True, signed=True, pulled_and_tested_by="docker")


def test_docker_push_pulls_back_with_podman_and_runs(
    pushed_minimal_from_docker: dict[str, Any], podman: Engine, tmp_path: Path
) -> None:
    """The image docker pushed is pulled by `prebake run REF` with podman and serves an Azure score.py."""
    pinned = pushed_minimal_from_docker["pushed"][-1]["pinned"]
    podman.remove_image(pinned)
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text(SCORE)
    subprocess.run(["chmod", "-R", "a+rX", str(tmp_path)], check=True)
    port = free_port()
    result = prebake_cli("run", pinned, "--entry-script", str(app / "score.py"), "--port", str(port), "-d",
                         "--engine", "podman")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    container = result.stdout.strip().splitlines()[-1]
    try:
        answer = _post(f"http://127.0.0.1:{port}/score", {"data": [1, 2, 3]})
        assert answer["sum"] == 6
        record("docker", MINIMAL, pushed=True, signed=False, pulled_and_tested_by="podman")
    finally:
        podman.run("rm", "--force", container, check=False)


def test_deploy_by_pinned_reference_pulls_the_image_in_kube_play(
    pushed_minimal_from_docker: dict[str, Any], podman: Engine, tmp_path: Path
) -> None:
    """`prebake deploy k8s --image REF@DIGEST` writes that reference, and `podman kube play` pulls it from the registry and the pod serves."""
    pinned = pushed_minimal_from_docker["pushed"][-1]["pinned"]
    podman.remove_image(pinned)
    tmp_path.chmod(0o755)
    (tmp_path / "score.py").write_text(SCORE)
    (tmp_path / "model").mkdir()
    name = f"reg-{uuid.uuid4().hex[:8]}"
    result = prebake_cli("deploy", "k8s", name, "--image", pinned, "--entry-script", str(tmp_path / "score.py"),
                         "--model-source", f"hostpath:{tmp_path / 'model'}", "--replicas", "1", "-o", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / "out" / f"{name}.yaml"
    assert (
        f"image: {json.dumps(pinned)}" in manifest.read_text() or f"image: {pinned}" in manifest.read_text()
    )
    try:
        podman.run("kube", "play", str(manifest), timeout=300)
        assert podman.image_exists(pinned), "kube play did not pull the pinned reference"
        infra = podman.run("pod", "inspect", f"{name}-pod-0", "--format", "{{.InfraContainerID}}").strip()
        networks = json.loads(podman.run("container", "inspect", infra))[0]["NetworkSettings"]["Networks"]
        address = next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))
        answer = _post(f"http://{address}:5001/score", {"data": [4, 5]}, wait_s=120)
        assert answer["sum"] == 9 and answer["host"] == f"{name}-pod-0"
    finally:
        podman.run("kube", "down", str(manifest), check=False, timeout=120)
        podman.run("volume", "rm", "--force", f"{name}-code", check=False)


@pytest.fixture(scope="module")
def registry_base(podman: Engine, builds: Builds, registry: TLSRegistry) -> Iterator[str]:
    """A Debian 12 image without Python (as debian:bookworm-slim is) pushed as HOST/debian:bookworm-slim, and
    removed locally so a build has to pull it."""
    builds.base("podman", "debian12-py311")
    reference = f"{registry.host}/debian:bookworm-slim"
    name = f"prebake-slim-{uuid.uuid4().hex[:8]}"
    packages = ("python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl python3 python3-distutils "
                "python3-lib2to3 python3-minimal python3.11 python3.11-minimal libpython3-stdlib "
                "libpython3.11-stdlib libpython3.11-minimal")  # fmt: skip
    podman.run("run", "--name", name, "localhost/prebake-base:bookworm-py3.11", "sh", "-c",
               f"dpkg --purge {packages} >/dev/null && ! command -v python3")  # fmt: skip
    podman.run("commit", "--quiet", name, reference)
    podman.run("rm", name)
    podman.push(reference)
    podman.remove_image(reference)
    yield reference
    podman.remove_image(reference)


def test_build_from_a_base_in_the_registry_and_push(
    registry_base: str, podman: Engine, registry: TLSRegistry, tmp_path: Path
) -> None:
    """`prebake build --base HOST/debian:bookworm-slim --push` pulls the Python-less base, installs Debian's Python, passes the smoke test and is pushed signed."""
    target = f"{registry.host}/from-slim"
    result = prebake_cli("build", MINIMAL, "--base", registry_base, "--registry", target, "--engine", "podman",
                         "--push", "--output-dir", str(tmp_path), "--ca-bundle", "/etc/ssl/certs/ca-certificates.crt")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"pushed {target}/{MINIMAL}:latest" in result.stdout
    record = json.loads((tmp_path / MINIMAL / "build.json").read_text())
    assert record["base"] == registry_base and record["reference"] == f"{target}/{MINIMAL}:latest"
    tested = prebake_cli("test", MINIMAL, "--registry", target, "--engine", "podman")
    assert tested.returncode == 0, tested.stderr[-3000:]
    python = podman.run_in(f"{target}/{MINIMAL}:latest", "python3", "-c", "import sys; print(sys.executable)")
    assert python.strip() == "/opt/prebake/venv/bin/python3"
    verified = prebake_cli("verify", f"{target}/{MINIMAL}:latest")
    assert verified.returncode == 0, verified.stdout
    podman.remove_image(f"{target}/{MINIMAL}:latest")


def _post(url: str, body: dict[str, Any], wait_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while True:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
