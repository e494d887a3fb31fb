"""Test helpers, public so users' own tests can start a real server the way ours do.

Example::

    with ServerProcess(["--entry-script", "score.py"]) as server:
        httpx.post(server.url + "/score", content=b"[1, 2]")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A real `prebake serve` process on a free port, stopped with SIGTERM on exit.

    ``ready_path`` is polled until it answers 200 (or the process exits, or ``start_timeout`` passes).
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        ready_path: str = "/v2/health/ready",
        start_timeout: float = 30.0,
        wait_ready: bool = True,
        cwd: str | Path | None = None,
        new_session: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.args = [
            sys.executable,
            "-m",
            "prebake",
            "serve",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.env = {**os.environ, **(env or {})}
        self.ready_path = ready_path
        self.start_timeout = start_timeout
        self.wait_ready = wait_ready
        self.cwd = cwd
        # In its own process group, stopped as a group: for servers whose workers outlive their parent's death.
        self.new_session = new_session
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="prebake-server-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def logs(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def start(self) -> ServerProcess:
        for _ in range(3):
            self.process = subprocess.Popen(
                self.args,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=self.new_session,
            )
            if not self._lost_port_race():
                break
            # Another process took the free port between our look and the server's bind: take a new one.
            self.port = free_port()
            self.args[self.args.index("--port") + 1] = str(self.port)
        if self.wait_ready:
            self.wait_until_ready()
        return self

    def _lost_port_race(self) -> bool:
        assert self.process is not None
        try:
            code = self.process.wait(0.3)
        except subprocess.TimeoutExpired:
            return False
        return code == 2 and "cannot listen on" in self.logs()

    def wait_until_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode} before it was ready:\n{self.logs()}"
                )
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout or self.start_timeout} s:\n{self.logs()}")

    def worker_pids(self) -> list[int]:
        """Process ids of the workers (children of the supervisor)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it does not stop in time)."""
        assert self.process is not None
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def _signal(self, signum: int) -> None:
        assert self.process is not None
        if self.new_session:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._log.close()
