"""Helpers of the reliability suite: scripts, a bounded load generator, a figures recorder, a leak finder."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SCRIPTS = Path(__file__).parent / "scripts"
SLOW = os.environ.get("PREBAKE_SLOW") == "1"
# What a response body must never show a client: a traceback, a source path, the venv.
LEAKS = ("Traceback (most recent call last)", 'File "', "site-packages", "/work/", "/home/", '.py", line')


def record(name: str, data: Any) -> None:
    """Write ``data`` as ``name``.json under PREBAKE_RELIABILITY_OUT, when that is set."""
    out = os.environ.get("PREBAKE_RELIABILITY_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))


def leaks(text: str) -> list[str]:
    return [marker for marker in LEAKS if marker in text]


@dataclass(slots=True)
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (the error names what happened)
    error: str = ""
    pid: int | None = None
    connection: int = 0  # which client (one keep-alive connection each) sent it
    previous_pid: int | None = None  # the worker this connection last talked to
    request_id: str = ""


@dataclass
class Load:
    """``clients`` threads, each one keep-alive connection, sending ``body`` to ``url`` until stopped.

    Bounded twice: each client stops after ``max_requests`` or ``max_seconds``, whichever comes first.
    A client whose connection fails opens a new one (as a load balancer would) and goes on.
    """

    url: str
    body: bytes | Callable[[str], bytes]  # or a function of the request id ("client-n")
    clients: int = 4
    max_requests: int = 2000
    max_seconds: float = 30.0
    timeout: float = 30.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self.outcomes

    def _client(self, index: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        last_pid: int | None = None
        http = httpx.Client(timeout=self.timeout)
        try:
            for number in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                request_id = f"{index}-{number}"
                body = self.body(request_id) if callable(self.body) else self.body
                started = time.monotonic()
                try:
                    response = http.post(self.url, content=body, headers={"x-request-id": request_id})
                except httpx.HTTPError as error:
                    outcome = Outcome(
                        started,
                        time.monotonic(),
                        None,
                        type(error).__name__,
                        None,
                        index,
                        last_pid,
                        request_id,
                    )
                    http.close()
                    http = httpx.Client(timeout=self.timeout)
                    last_pid = None
                    time.sleep(0.01)
                else:
                    pid = _pid(response)
                    outcome = Outcome(
                        started, time.monotonic(), response.status_code, "", pid, index, last_pid, request_id
                    )
                    last_pid = pid if pid is not None else last_pid
                with self._lock:
                    self.outcomes.append(outcome)
        finally:
            http.close()


def _pid(response: httpx.Response) -> int | None:
    try:
        value = response.json().get("pid")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (a bounded loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def protocols_present() -> bool:
    """Whether this tree has the V2/V1/SageMaker/Vertex protocol modules and the no-code runtimes."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("prebake.protocols.v2", "prebake.runtimes.discover", "sklearn", "joblib")
    )


def iris_model(path: Path) -> Path:
    """A fitted iris LogisticRegression saved with joblib at ``path`` (served by name ``path.stem``)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=300).fit(features, labels), path)
    return path
