"""The daemons the image tests start for themselves: a Docker engine and a TLS registry with basic auth.

**dockerd** (Debian's docker.io 20.10). What works in this sandbox, found by trying: the overlay2 storage
driver on the host's ext4 and cgroup v1 ("cgroupfs") work as they are, and runc is Debian's. What is set:
its own socket, data root and exec root per test session (so two sessions, or a user's own dockerd, never
share state) and its own bridge with a random /24: dockerd runs with ``--iptables=false`` and this helper
adds the two rules it needs (NAT for the bridge's subnet, FORWARD accept for the bridge) and removes them
after, because dockerd's own iptables management would rewrite the host's FORWARD policy and chains
that another dockerd, or podman's CNI rules, also use. Published ports go through docker-proxy.
BuildKit (``DOCKER_BUILDKIT=1``, for ``RUN --mount=type=secret``) is built into Debian's docker client
(/usr/bin/docker); the docker 28 client some machines carry in /usr/local/bin needs the buildx plugin.

**docker-registry** (Debian's, the CNCF distribution registry 2.8) on 127.0.0.1 with TLS from a CA made
here (trustme) and htpasswd (bcrypt) basic auth, as a company registry has them. The CA is installed where
each engine looks for a registry's CA: /etc/containers/certs.d/HOST:PORT/ca.crt (podman, and prebake's
own registry client) and /etc/docker/certs.d/HOST:PORT/ca.crt (dockerd); the per-port folders go after.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

DOCKERD = Path("/usr/sbin/dockerd")
DOCKER_CLIENT = Path("/usr/bin/docker")  # Debian's docker.io client: BuildKit built in
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
CERT_DIRS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


class DockerDaemon:
    """A dockerd of this test session's own, on its own socket, bridge and data root."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.root = Path(tempfile.mkdtemp(prefix="prebake-dockerd-", dir="/var/tmp"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.bridge = f"pbk{tag}"
        self.subnet = f"10.231.{secrets.randbelow(250) + 2}.0/24"
        self.process: subprocess.Popen[bytes] | None = None
        self._rules: list[list[str]] = []

    def __enter__(self) -> DockerDaemon:
        gateway = self.subnet.replace(".0/24", ".1/24")
        _run("ip", "link", "add", "name", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", gateway, "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for rule in (
            ["-t", "nat", "POSTROUTING", "-s", self.subnet, "!", "-o", self.bridge, "-j", "MASQUERADE"],
            ["-t", "filter", "FORWARD", "-i", self.bridge, "-j", "ACCEPT"],
            ["-t", "filter", "FORWARD", "-o", self.bridge, "-j", "ACCEPT"],
        ):
            table, chain, spec = rule[:2], rule[2], rule[3:]
            _run("iptables", *table, "-I", chain, *spec)
            self._rules.append([*table, "-D", chain, *spec])
        log = (self.root / "dockerd.log").open("wb")
        self.process = subprocess.Popen(
            [str(DOCKERD), "--host", self.host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
             "--bridge", self.bridge, "--iptables=false", "--ip-masq=false", "--storage-driver", "overlay2"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        env = {**os.environ, "DOCKER_HOST": self.host}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if subprocess.run([str(DOCKER_CLIENT), "info"], capture_output=True, env=env).returncode == 0:
                return self
            time.sleep(0.3)
        tail = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
        self.__exit__(None, None, None)
        raise RuntimeError(f"dockerd did not start:\n{tail}")

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for rule in self._rules:
            _run("iptables", *rule, check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        _run("umount", "-R", str(self.root / "data"), check=False)  # overlay mounts dockerd may leave
        shutil.rmtree(self.root, ignore_errors=True)


class TLSRegistry:
    """docker-registry on 127.0.0.1:PORT with TLS (a CA made here) and htpasswd basic auth."""

    def __init__(self, username: str = "prebake", password: str | None = None) -> None:
        self.username = username
        self.password = password or secrets.token_urlsafe(16)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="prebake-registry-"))
        self.ca_pem = self.root / "ca.crt"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TLSRegistry:
        import bcrypt
        import trustme

        ca = trustme.CA()
        certificate = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(self.ca_pem))
        certificate.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
        certificate.private_key_pem.write_to_path(str(self.root / "key.pem"))
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (self.root / "htpasswd").write_text(f"{self.username}:{hashed}\n")
        (self.root / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            f"  tls:\n    certificate: {self.root / 'cert.pem'}\n    key: {self.root / 'key.pem'}\n"
            f"auth:\n  htpasswd:\n    realm: prebake-test\n    path: {self.root / 'htpasswd'}\n"
        )
        for folder in CERT_DIRS:
            (folder / self.host).mkdir(parents=True, exist_ok=True)
            shutil.copy(self.ca_pem, folder / self.host / "ca.crt")
        log = (self.root / "registry.log").open("wb")
        self.process = subprocess.Popen(
            [str(REGISTRY_BINARY), "serve", str(self.root / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"https://{self.host}/v2/", timeout=2, context=context)
            except urllib.error.HTTPError as error:
                if error.code == 401:  # up, and asking for credentials as it should
                    return self
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        tail = (self.root / "registry.log").read_text(errors="replace")[-2000:]
        self.__exit__(None, None, None)
        raise RuntimeError(f"docker-registry did not start:\n{tail}")

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        for folder in CERT_DIRS:
            shutil.rmtree(folder / self.host, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
