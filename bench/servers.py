"""The servers under test: how to start each one, pinned to core 0, and how to find its worker process.

A ``Server`` is a name plus a function that, given a free port, returns the command line, environment and
route of one running instance. ``Running`` spawns it in its own session (so stopping it stops its workers
too), waits for the first successful prediction, reads a worker's memory and stops it, every wait bounded.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import models, peers
from prebake.testing import free_port

ROOT = models.ROOT
WORK = ROOT / ".bench"
SERVER_CPU = "0"
# Every server gets the same thread settings: one core each, so BLAS/OpenMP pools would only contend.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# Where prebake reads per-model settings; the runtimes work defines the format (keys as ModelSettings).
PREBAKE_SETTINGS_FILE = "model-settings.json"
BATCH = {"max_batch_size": 32, "max_batch_delay_ms": 2.0}
# MLServer's inference runs in the HTTP process with 0, in separate worker processes (its default, 1)
# otherwise. On one core 0 measured about 2x faster here, so MLServer is measured at its best.
MLSERVER_PARALLEL_WORKERS = "0"


class NotAvailable(Exception):
    """This server cannot run here; the message says why, and the table shows it as "not run (why)"."""


@dataclass(slots=True)
class Launch:
    argv: list[str]
    path: str  # the route predictions are POSTed to
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    launch: Callable[[models.Workload, int], Launch]
    protocol: str = "azure"  # which body the workload sends: "azure" ({"data": rows}) or "v2"


def body(workload: models.Workload, protocol: str) -> bytes:
    rows = models.rows(workload)
    if protocol == "v1":
        return json.dumps({"instances": rows}).encode()
    if protocol == "mlflow":
        return json.dumps({"dataframe_split": {"columns": models.IRIS_COLUMNS, "data": rows}}).encode()
    if protocol == "v2":
        flat = [v for row in rows for v in row]
        tensor = {
            "name": "predict",
            "shape": [len(rows), workload.features],
            "datatype": "FP64",
            "data": flat,
        }
        return json.dumps({"inputs": [tensor]}).encode()
    return json.dumps({"data": rows}).encode()


# --- the servers ---------------------------------------------------------------------------------------


def _python() -> str:
    """prebake and the floor run from the lean venv (see peers.py) where it works, else from this Python."""
    lean = peers.PEERS["prebake"]
    return str(lean.python) if peers.works(lean) else sys.executable


def _floor(workload: models.Workload, port: int) -> Launch:
    argv = [_python(), str(ROOT / "bench" / "apps" / "floor.py"), "--model", str(workload.model_file)]
    return Launch([*argv, "--port", str(port)], "/score")


def _floor_v2(workload: models.Workload, port: int) -> Launch:
    launch = _floor(workload, port)
    launch.path = f"/v2/models/{workload.name}/infer"
    return launch


def _script(workload: models.Workload) -> Path:
    return ROOT / "bench" / "scripts" / f"score_{workload.name}.py"


def _azmlinfsrv(workload: models.Workload, port: int) -> Launch:
    peer = peers.PEERS["azmlinfsrv"]
    if not peers.works(peer):
        raise NotAvailable("no azmlinfsrv venv; run bench/peers.py")
    argv = [
        str(peer.python.parent / "azmlinfsrv"),
        "--entry_script", str(_script(workload)),
        "--model_dir", str(workload.model_dir),
        "--port", str(port),
    ]  # fmt: skip
    return Launch(argv, "/score", env={"AZUREML_MODEL_DIR": str(workload.model_dir), "WORKER_COUNT": "1"})


@functools.cache
def compile_sources(src: Path = ROOT / "src") -> None:
    """Compile a checkout's modules, as an installed prebake has them (pip compiles a wheel's, as in the
    images). Where PYTHONDONTWRITEBYTECODE is set (it is on the benchmark machine), every start would
    otherwise compile some 100 modules again: about 90 ms of a 1.1 s cold start that no user pays."""
    subprocess.run([_python(), "-m", "compileall", "-q", str(src)], check=True)


@functools.cache
def _prebake_available() -> None:
    probe = subprocess.run(
        [_python(), "-m", "prebake", "serve", "--help"], capture_output=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        raise NotAvailable("`prebake serve` is not on this branch yet")
    compile_sources()


def _prebake_script(workload: models.Workload, port: int) -> Launch:
    _prebake_available()
    argv = [
        _python(), "-m", "prebake", "serve",
        "--entry-script", str(_script(workload)),
        "--model-dir", str(workload.model_dir),
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    return Launch(argv, "/score", env={"AZUREML_MODEL_DIR": str(workload.model_dir)})


def _prebake_model_dir(variant: str, workload: models.Workload, settings: dict[str, object]) -> Path:
    """A model directory named for the model (the V2 name), holding the model and the settings file."""
    target = WORK / "prebake" / variant / workload.name
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "model.joblib").exists():
        shutil.copyfile(workload.model_file, target / "model.joblib")
    (target / PREBAKE_SETTINGS_FILE).write_text(json.dumps({"name": workload.name, **settings}, indent=2))
    return target


def _prebake_v2(variant: str, settings: dict[str, object]) -> Callable[[models.Workload, int], Launch]:
    def launch(workload: models.Workload, port: int) -> Launch:
        _prebake_available()
        model_dir = _prebake_model_dir(variant, workload, settings)
        argv = [
            _python(),
            "-m",
            "prebake",
            "serve",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return Launch(argv, f"/v2/models/{workload.name}/infer", env={"PREBAKE_ALLOW_PICKLE": "1"})

    return launch


def _prebake_v1(workload: models.Workload, port: int) -> Launch:
    """The unbatched prebake-v2 server, spoken to over KServe V1."""
    launch = _prebake_v2("unbatched", {"max_batch_size": 1})(workload, port)
    launch.path = f"/v1/models/{workload.name}:predict"
    return launch


def _kserve(protocol: str) -> Callable[[models.Workload, int], Launch]:
    def launch(workload: models.Workload, port: int) -> Launch:
        peer = peers.PEERS["kserve"]
        if not peers.works(peer):
            raise NotAvailable("no kserve venv; run bench/peers.py kserve")
        argv = [
            str(peer.python), str(ROOT / "bench" / "apps" / "kserve_sklearn.py"),
            "--model_name", workload.name,
            "--model_file", str(workload.model_file),
            "--http_port", str(port),
            "--workers", "1",
        ]  # fmt: skip
        path = (
            f"/v1/models/{workload.name}:predict" if protocol == "v1" else f"/v2/models/{workload.name}/infer"
        )
        return Launch(argv, path)

    return launch


def _mlserver(batched: bool) -> Callable[[models.Workload, int], Launch]:
    def launch(workload: models.Workload, port: int) -> Launch:
        peer = peers.PEERS["mlserver"]
        if not peers.works(peer):
            raise NotAvailable("no mlserver venv; run bench/peers.py")
        repo = WORK / "mlserver" / ("batched" if batched else "unbatched")
        model_dir = repo / workload.name
        model_dir.mkdir(parents=True, exist_ok=True)
        settings: dict[str, object] = {
            "name": workload.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(workload.model_file)},
        }
        if batched:  # MLServer's adaptive batching: max_batch_time is in seconds
            settings["max_batch_size"] = BATCH["max_batch_size"]
            settings["max_batch_time"] = float(BATCH["max_batch_delay_ms"]) / 1000
        (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2))
        env = _mlserver_env(port)
        return Launch(
            [str(peer.python.parent / "mlserver"), "start", str(repo)],
            f"/v2/models/{workload.name}/infer",
            env,
        )

    return launch


def _prebake_mlflow(workload: models.Workload, port: int) -> Launch:
    """`prebake serve DIR` on the MLflow model, answering MLflow's /invocations."""
    _prebake_available()
    argv = [
        _python(),
        "-m",
        "prebake",
        "serve",
        str(workload.model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Launch(argv, "/invocations", env={"PREBAKE_ALLOW_PICKLE": "1"})


def _mlflow_serve(workload: models.Workload, port: int) -> Launch:
    """`mlflow models serve --env-manager local`: uvicorn with one worker running MLflow's FastAPI app."""
    peer = peers.PEERS["mlflow"]
    if not peers.works(peer):
        raise NotAvailable("no mlflow venv; run bench/peers.py mlflow")
    bin_dir = peer.python.parent
    argv = [
        str(bin_dir / "mlflow"), "models", "serve", "-m", str(workload.model_dir), "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port), "-w", "1",
    ]  # fmt: skip
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # it runs `uvicorn` from PATH
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
        "MLFLOW_TRACKING_URI": f"file://{WORK / 'mlruns'}",
    }
    return Launch(argv, "/invocations", env)


def _mlserver_mlflow(workload: models.Workload, port: int) -> Launch:
    """MLServer 1.7.1 with mlserver-mlflow, answering MLflow's /invocations (its MLflow-compatible route)."""
    peer = peers.PEERS["mlserver-mlflow"]
    if not peers.works(peer):
        raise NotAvailable("no mlserver-mlflow venv; run bench/peers.py mlserver-mlflow")
    repo = WORK / "mlserver-mlflow"
    model_dir = repo / "mlflow-iris"
    model_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "name": "mlflow-iris",
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(workload.model_dir)},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2))
    env = {**_mlserver_env(port), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    return Launch([str(peer.python.parent / "mlserver"), "start", str(repo)], "/invocations", env)


SERVERS = {
    s.name: s
    for s in (
        Server("floor", _floor),
        Server("azmlinfsrv", _azmlinfsrv),
        Server("prebake", _prebake_script),
        Server("floor-v2", _floor_v2, "v2"),
        # 1, not 0: the worker reads 0 as "the default size" (batching on), the settings docs as "off".
        Server("prebake-v2", _prebake_v2("unbatched", {"max_batch_size": 1}), "v2"),
        Server("prebake-v2-batch", _prebake_v2("batched", BATCH), "v2"),
        Server("mlserver", _mlserver(batched=False), "v2"),
        Server("mlserver-batch", _mlserver(batched=True), "v2"),
        Server("prebake-v1", _prebake_v1, "v1"),
        Server("kserve", _kserve("v1"), "v1"),
        Server("kserve-v2", _kserve("v2"), "v2"),
        Server("prebake-mlflow", _prebake_mlflow, "mlflow"),
        Server("mlflow", _mlflow_serve, "mlflow"),
        Server("mlserver-mlflow", _mlserver_mlflow, "mlflow"),
    )
}


# --- one running instance ------------------------------------------------------------------------------


def post(port: int, path: str, payload: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Running:
    """One spawned server. Use as a context manager; ``ready_s`` is spawn to first successful prediction."""

    def __init__(self, server: Server, workload: models.Workload, log_dir: Path) -> None:
        self.server = server
        self.workload = workload
        self.port = free_port()
        self.launch = server.launch(workload, self.port)
        self.body = body(workload, server.protocol)
        self.log_path = log_dir / f"{server.name}-{workload.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = float("nan")
        self.sample = b""

    def __enter__(self) -> Running:
        env = {**os.environ, **THREAD_ENV, **self.launch.env}
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *self.launch.argv],
                cwd=self.launch.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, started: float) -> None:
        assert self.proc is not None
        deadline = started + READY_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.server.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                status, payload = post(self.port, self.launch.path, self.body, timeout=2.0)
            except OSError:
                time.sleep(0.005)
                continue
            if status == 200:
                self.ready_s = time.perf_counter() - started
                self.sample = payload[:200]
                return
            time.sleep(0.005)
        raise RuntimeError(
            f"{self.server.name} gave no prediction in {READY_TIMEOUT_S:.0f} s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the session we started: the server and its workers
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass

    def worker_rss_mb(self) -> float:
        """VmRSS of the largest leaf process under the server: the worker, not a supervisor or master."""
        assert self.proc is not None
        leaves = [pid for pid in _tree(self.proc.pid) if not _children(pid)]
        return max((_rss_kb(pid) for pid in leaves), default=0) / 1024

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the server's whole process tree."""
        assert self.proc is not None
        return sum(_cpu_ticks(pid) for pid in _tree(self.proc.pid)) / CLOCK_TICKS

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        leaves = [pid for pid in _tree(self.proc.pid) if not _children(pid)]
        return sorted(leaves, key=_rss_kb, reverse=True)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.extend(int(c) for c in text.split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo and len(pids) < 1000:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _mlserver_env(port: int) -> dict[str, str]:
    """MLServer on 127.0.0.1:``port``, its gRPC and metrics ports out of the way."""
    return {
        "MLSERVER_HOST": "127.0.0.1",
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_PARALLEL_WORKERS": MLSERVER_PARALLEL_WORKERS,
    }
