"""Local storage services for the storage tests, each started and stopped by a fixture: moto's S3 server,
gcp-storage-emulator (GCS), Azurite (Azure Blob, from npm into .tools/azurite) and a small HTTP server.

Each store puts objects with the cloud's own client library, gives the environment a server needs to reach
it (the clouds' standard variables only: AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST,
AZURE_STORAGE_CONNECTION_STRING), and counts object downloads from the service's own request log: the
proof that a cached start downloaded nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prebake.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account (published in Azure's documentation; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Distinctive credentials: the tests assert that they appear in no log line.
AWS_KEY_ID = "AKIAPREBAKETESTKEY01"
AWS_SECRET = "prebake-test-secret-9f3c1e7a2b"


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{process.args} did not listen on {port} in {timeout} s:\n{log.read_text()}")


@dataclass
class Service:
    """A service process on a free port, its output kept in a log file (the request log)."""

    command: list[str]
    log: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        _wait_port(self.port, self.process, self.log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


class Store:
    """What every store offers the tests."""

    scheme: str
    bucket = "models"

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def downloads(self, key: str) -> int:
        """How many times the object ``key``'s content was sent (metadata requests not counted)."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class S3(Store):
    """moto in server mode. ``auth=True`` turns on its IAM checks: unknown keys are refused."""

    scheme = "s3"

    def __init__(self, folder: Path, *, auth: bool = False) -> None:
        port = free_port()
        env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if auth else {}
        moto = Path(sys.executable).with_name("moto_server")
        self.service = Service(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], folder / "moto.log", port, env
        )
        self.service.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        if not auth:
            self._client().create_bucket(Bucket=self.bucket)

    def _client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET)  # fmt: skip

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip

    def put(self, key: str, data: bytes) -> None:
        self._client().put_object(Bucket=self.bucket, Key=key, Body=data)

    def downloads(self, key: str) -> int:
        pattern = re.compile(rf'"GET /{self.bucket}/{re.escape(key)} HTTP')
        return sum(1 for line in self.service.lines() if pattern.search(line))

    def stop(self) -> None:
        self.service.stop()


class GCS(Store):
    """gcp-storage-emulator, in memory. It checks no credentials (so no refused-credentials case)."""

    scheme = "gs"

    def __init__(self, folder: Path) -> None:
        port = free_port()
        emulator = Path(sys.executable).with_name("gcp-storage-emulator")
        command = [str(emulator), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
        self.service = Service(command, folder / "gcs.log", port)
        self.service.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._client().create_bucket(self.bucket)

    def _client(self) -> Any:
        os.environ["STORAGE_EMULATOR_HOST"] = self.endpoint  # google-cloud-storage reads it at each call
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="prebake-test", credentials=AnonymousCredentials())

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def put(self, key: str, data: bytes) -> None:
        self._client().bucket(self.bucket).blob(key).upload_from_string(data)

    def downloads(self, key: str) -> int:
        quoted = urllib.parse.quote(key, safe="")
        pattern = re.compile(
            rf'"GET (/download)?/storage/v1/b/{self.bucket}/o/{re.escape(quoted)}\?alt=media'
        )
        return sum(1 for line in self.service.lines() if pattern.search(line))

    def stop(self) -> None:
        self.service.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)


class Azure(Store):
    """Azurite's blob service, its data in a temporary folder."""

    scheme = "az"

    def __init__(self, folder: Path) -> None:
        port = free_port()
        data = folder / "azurite"
        data.mkdir()
        command = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(data),
                   "--skipApiVersionCheck", "--loose", "--disableTelemetry"]  # fmt: skip
        self.service = Service(command, folder / "azurite.log", port)
        self.service.start()
        self.endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        self._client().create_container(self.bucket)

    def connection_string(self, key: str = AZURITE_KEY) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
                f"BlobEndpoint={self.endpoint};")  # fmt: skip

    def _client(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string()}

    def put(self, key: str, data: bytes) -> None:
        self._client().get_container_client(self.bucket).upload_blob(key, data, overwrite=True)

    def downloads(self, key: str) -> int:
        pattern = re.compile(rf'"GET /{AZURITE_ACCOUNT}/{self.bucket}/{re.escape(key)} HTTP')
        return sum(1 for line in self.service.lines() if pattern.search(line))

    def stop(self) -> None:
        self.service.stop()


@dataclass
class _File:
    data: bytes
    etag: str | None


class Web(Store):
    """An HTTP file server in this process: ETags and If-None-Match (304), request counts, and paths that
    misbehave on purpose: ``cut/`` sends half the body and closes, ``stall/`` sends half and waits for
    ``release``, ``private/`` needs ``?sig=`` the right token, ``plain/`` sends no ETag or Last-Modified."""

    scheme = "http"
    token = "sv=2024&sig=prebake-sas-secret-7d1e"

    def __init__(self, folder: Path) -> None:
        self.files: dict[str, _File] = {}
        self.sent: dict[str, int] = {}
        self.release = threading.Event()
        self.stalled = threading.Event()
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                key = parts.path.lstrip("/")
                if key.startswith("private/") and urllib.parse.parse_qs(parts.query).get("sig") != [
                    "prebake-sas-secret-7d1e"
                ]:
                    self.send_error(403, "Server failed to authenticate the request")
                    return
                found = store.files.get(key)
                if found is None:
                    self.send_error(404)
                    return
                if found.etag and self.headers.get("If-None-Match") == found.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(found.data)))
                if found.etag and not key.startswith("plain/"):
                    self.send_header("ETag", found.etag)
                self.end_headers()
                store.sent[key] = store.sent.get(key, 0) + 1
                if key.startswith(("cut/", "stall/")) and (
                    key.startswith("cut/") or not store.release.is_set()
                ):
                    self.wfile.write(found.data[: len(found.data) // 2])
                    self.wfile.flush()
                    if key.startswith("stall/"):
                        store.stalled.set()
                        store.release.wait(60)
                    self.close_connection = True
                    return
                self.wfile.write(found.data)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def uri(self, key: str) -> str:
        return f"{self.endpoint}/{key}"

    def env(self) -> dict[str, str]:
        return {}

    def put(self, key: str, data: bytes) -> None:
        import hashlib

        self.files[key] = _File(data, f'"{hashlib.md5(data).hexdigest()}"')

    def downloads(self, key: str) -> int:
        return self.sent.get(key, 0)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def azurite_available() -> bool:
    return AZURITE.exists() and shutil.which("node") is not None
