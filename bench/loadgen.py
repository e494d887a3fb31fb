"""A closed-loop HTTP/1.1 load generator in Python, for machines without wrk (the GPU machine has none).

Each connection sends one prebuilt request, waits for the whole answer, and sends it again, so
``connections`` is the concurrency. Connections are spread over several processes (asyncio, uvloop where
installed) so that the client is not the bottleneck for large binary bodies. Only answers that complete
inside the measured window count; the warm-up before it is discarded.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def request_bytes(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST with its body, ready to be written as it is."""
    lines = [f"POST {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run(
    port: int,
    payload: bytes,
    *,
    connections: int,
    seconds: float,
    warmup: float,
    processes: int = 4,
    host: str = "127.0.0.1",
) -> Load:
    """``connections`` closed loops for ``warmup + seconds``, counting the last ``seconds``."""
    processes = max(1, min(processes, connections))
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    start = time.time() + 0.5  # every process starts together
    window = (start + warmup, start + warmup + seconds)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.starmap(_process, [(host, port, payload, n, start, window) for n in shares])
    latencies = sorted(x for part, _ in parts for x in part)
    errors = sum(e for _, e in parts)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return Load(len(latencies), errors, seconds, pct(0.50), pct(0.90), pct(0.99))


def _process(
    host: str, port: int, payload: bytes, connections: int, start: float, window: tuple[float, float]
) -> tuple[list[float], int]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_clients(host, port, payload, connections, start, window))


async def _clients(
    host: str, port: int, payload: bytes, connections: int, start: float, window: tuple[float, float]
) -> tuple[list[float], int]:
    await asyncio.sleep(max(0.0, start - time.time()))
    latencies: list[float] = []
    errors = [0]
    await asyncio.gather(*(_loop(host, port, payload, window, latencies, errors) for _ in range(connections)))
    return latencies, errors[0]


async def _loop(
    host: str,
    port: int,
    payload: bytes,
    window: tuple[float, float],
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            sent = time.time()
            if sent >= window[1]:
                return
            writer.write(payload)
            status, _ = await read_response(reader)
            done = time.time()
            if window[0] <= sent and done <= window[1]:
                latencies.append(done - sent)
                errors[0] += status != 200
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)
