"""The parent process: bind the port once, fork the workers, replace the ones that die or freeze,
drain on SIGTERM.

It imports nothing heavy, so workers start from a small, clean process. Safe as PID 1 in a container:
it reaps every child and forwards SIGTERM/SIGINT. A worker that stops beating (``heartbeat.py``) is
killed and replaced; SIGUSR1 from a worker (a repository change, ``control.py``) goes to every worker.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import signal
import socket
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from types import FrameType

from prebake import exits
from prebake.config import ServeConfig
from prebake.errors import ConfigError, PrebakeError
from prebake.server import control
from prebake.server.heartbeat import Heartbeats
from prebake.server.logs import configure_logging
from prebake.server.metrics import remove_snapshots, retire_snapshot
from prebake.server.rescue import Rescue

logger = logging.getLogger("prebake.supervisor")

#: A worker silent this long (it beats twice a second) may be frozen: its late requests are answered for it.
RESCUE_AFTER_S = 1.5
FAST_CRASH_S = 2.0  # a worker dying this soon after start, repeatedly, is a crash loop
MAX_FAST_CRASHES = 5
#: The thread-pool sizes of OpenMP (torch, scikit-learn, XGBoost, LightGBM), MKL and OpenBLAS.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a container's --cpus)."""
    cpus = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return cpus


def share_cores(workers: int, environ: MutableMapping[str, str], cpus: int) -> int | None:
    """Give each worker's math libraries its share of the CPUs, unless the user sized them.

    Each library otherwise starts one thread per core in every worker: N workers oversubscribe the
    machine N times, and spinning OpenMP threads then starve each other (a 2-worker torch server on
    2 cores fell from 120 to under 35 images/s). Returns the threads per worker, or None where unchanged.
    """
    if workers < 2 or any(name in environ for name in THREAD_VARS):
        return None
    share = max(1, cpus // workers)
    for name in THREAD_VARS:
        environ[name] = str(share)
    return share


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port}: {error.strerror}; is another server using the port?"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_port_free(host: str, port: int) -> None:
    """ConfigError unless ``host:port`` can be bound without SO_REUSEPORT, i.e. no other process listens
    there. The workers' gRPC servers bind with SO_REUSEPORT to share the port, which would otherwise let
    a second server start on it silently and take some of its connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = (
                "another process is listening there" if error.errno == errno.EADDRINUSE else error.strerror
            )
            raise ConfigError(f"cannot listen for gRPC on {host}:{port}: {reason}") from None


class Supervisor:
    def __init__(self, config: ServeConfig, sock: socket.socket) -> None:
        self.config = config
        self.sock = sock
        self.children: dict[int, float] = {}  # pid -> start time
        self.slots: dict[int, int] = {}  # pid -> heartbeat slot
        self.stopping = False
        # Shared by the workers: metrics snapshots, the repository's wanted state (control.py).
        self.state_dir = Path(tempfile.mkdtemp(prefix="prebake-state-"))
        self.heartbeats = Heartbeats(config.workers)
        self.rescue = Rescue(config.workers)
        self.fast_crashes = 0
        self.spawned = 0

    def spawn(self) -> None:
        from prebake.server.worker import Shared, run_worker  # imported before fork, once, in the parent

        slot = min(set(range(self.config.workers)) - set(self.slots.values()))
        self.heartbeats.clear(slot)
        self.rescue.clear(slot)
        pid = os.fork()
        if pid == 0:
            code = exits.FAILURE
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, control.SIGNAL):
                    signal.signal(sig, signal.SIG_DFL)
                _die_with_parent()
                # The first workers listen while they load (probes answer); replacements load first, so
                # none answers 503 beside workers that serve.
                shared = Shared(
                    self.state_dir,
                    self.heartbeats,
                    self.rescue,
                    slot,
                    initial=self.spawned < self.config.workers,
                )
                code = run_worker(self.config, self.sock, shared)
            finally:
                # Skip interpreter teardown: a wedged daemon thread or the parent's atexit hooks must not run.
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()
        self.slots[pid] = slot
        self.spawned += 1
        self._publish_workers()

    def _publish_workers(self) -> None:
        with contextlib.suppress(PrebakeError, OSError):  # an unwritable state directory: changes wait less
            control.write_workers(self.state_dir, list(self.children))

    def _forward_change(self, signum: int, frame: FrameType | None) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, control.SIGNAL)

    def _check_heartbeats(self) -> None:
        """Answer for a worker that stopped beating (its requests past their deadline get 504: it cannot
        send them), and kill it once silent for the heartbeat timeout; the reaping replaces it."""
        now = time.monotonic()
        limit = self.config.heartbeat_timeout_s
        for pid, slot in list(self.slots.items()):
            last = self.heartbeats.last(slot)
            if last and now - last > RESCUE_AFTER_S:
                self.rescue.answer_late(slot, pid)
            if last and now - last > limit:
                self.rescue.answer_all(slot, pid)
                logger.error(
                    "worker %d has not been heard from for %.1f s (stopped, or a call holding the GIL); "
                    "killing and replacing it",
                    pid,
                    now - last,
                )
                self.heartbeats.clear(slot)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            logger.info("received %s: draining in-flight requests", signal.Signals(signum).name)
        self.stopping = True
        # Workers close their copies as they drain; ours must go too, or the kernel keeps queueing new
        # connections that nobody will accept (they would hang, then be reset). Refused is retryable.
        with contextlib.suppress(OSError):
            self.sock.close()
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(control.SIGNAL, self._forward_change)
        for _ in range(self.config.workers):
            self.spawn()
        deadline: float | None = None
        result = exits.OK
        try:
            while self.children:
                if self.stopping and deadline is None:
                    deadline = time.monotonic() + self.config.graceful_timeout_s + 5
                pid, status = self._wait(deadline)
                if pid == 0:
                    continue
                started = self.children.pop(pid, time.monotonic())
                self.slots.pop(pid, None)
                self._publish_workers()
                code = os.waitstatus_to_exitcode(status)
                self._retire_metrics(pid)
                if self.stopping:
                    continue
                if code == exits.INIT_FAILED:
                    logger.error("a worker failed to initialise (exit %d): stopping the server", code)
                    result = exits.INIT_FAILED
                    self._on_signal(signal.SIGTERM, None)
                    continue
                lived = time.monotonic() - started
                self.fast_crashes = self.fast_crashes + 1 if lived < FAST_CRASH_S else 0
                if self.fast_crashes >= MAX_FAST_CRASHES:
                    logger.error("workers keep dying at start (last exit %d): stopping the server", code)
                    result = exits.FAILURE
                    self._on_signal(signal.SIGTERM, None)
                    continue
                logger.warning("worker %d exited (%s); starting a replacement", pid, _describe(code))
                time.sleep(min(0.1 * 2**self.fast_crashes, 5.0) if self.fast_crashes else 0)
                self.spawn()
        finally:
            self.sock.close()
            remove_snapshots(self.state_dir)  # and its in-memory fallback (metrics.py)
        return result

    def _wait(self, deadline: float | None) -> tuple[int, int]:
        """The next child to exit; meanwhile, heartbeats are checked and, when draining, the deadline."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return 0, 0
            if pid:
                return pid, status
            if deadline is None:
                self._check_heartbeats()
                time.sleep(0.1)
                continue
            if time.monotonic() > deadline:
                for child in list(self.children):
                    logger.warning("worker %d did not drain in time; killing it", child)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.05)

    def _retire_metrics(self, pid: int) -> None:
        retire_snapshot(self.state_dir, pid)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the supervisor dies (even by SIGKILL), so no orphan keeps the port."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: orphans are reaped by the OS's own rules


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code == 75:
        return "recycled after a stuck scoring call"
    return f"exit code {code}"


def serve(config: ServeConfig) -> int:
    """Run the server until SIGTERM/SIGINT; returns the process exit code.

    Start-time packages are the command's to prepare, before this: workers inherit ``sys.path``."""
    configure_logging(config.log_format, config.log_level)
    try:
        sock = bind(config.host, config.port)
        if config.grpc_port is not None:
            check_port_free(config.host, config.grpc_port)
    except (OSError, ConfigError) as error:
        logger.error("%s", error)
        return exits.USAGE
    # Before any worker imports a framework: the libraries read these once, when first loaded.
    cpus = usable_cpus()
    share = share_cores(config.workers, os.environ, cpus)
    if share is not None:
        logger.info("%s=%d per worker (%d usable CPUs); set it to override", THREAD_VARS[0], share, cpus)
    logger.info(
        "prebake serving on http://%s:%d with %d worker(s) x %d scoring thread(s)",
        config.host,
        sock.getsockname()[1],
        config.workers,
        config.threads,
    )
    return Supervisor(config, sock).run()
