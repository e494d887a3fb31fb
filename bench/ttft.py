"""Where a served first token's time goes: one prebake server with bench/hf.py's generator model, 20
streamed completions of 8 tokens (time to headers, first data, first text, end) and 20 non-streamed
1-token completions, then generate()'s own first token in-process.

    .venv/bin/python bench/ttft.py [continuous|sequential]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

# The repository root instead of bench/ itself (see bench/hf.py).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx  # noqa: E402

from bench import hf  # noqa: E402


def main() -> None:
    os.sched_setaffinity(0, {int(hf.CLIENT_CPU)})
    hf.WORK.mkdir(parents=True, exist_ok=True)
    model = hf.generator_model(hf.WORK / "generator")
    text = hf.prompt()
    engine = sys.argv[1] if len(sys.argv) > 1 else "continuous"
    probe = json.dumps({"model": "m", "prompt": text, "max_tokens": 8, "temperature": 0}).encode()
    settings = {"max_batch_size": 64, "parameters": {"engine": engine}}
    streamed = {"model": "m", "prompt": text, "max_tokens": 8, "temperature": 0, "stream": True}
    single = {"model": "m", "prompt": text, "max_tokens": 1, "temperature": 0}
    rows: list[tuple[float, float, float, float]] = []
    whole: list[float] = []
    with (
        hf.prebake_server(f"gen-{engine}", model, settings, ("/v1/completions", probe)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120) as client,
    ):
        for _ in range(20):
            started = time.perf_counter()
            with client.stream("POST", "/v1/completions", json=streamed) as answer:
                headers = time.perf_counter() - started
                data = first_text = 0.0
                for line in answer.iter_lines():
                    if line.startswith("data: {"):
                        data = data or time.perf_counter() - started
                        if not first_text and json.loads(line[6:])["choices"][0]["text"]:
                            first_text = time.perf_counter() - started
            rows.append((headers, data, first_text, time.perf_counter() - started))
        for _ in range(20):
            started = time.perf_counter()
            client.post("/v1/completions", json=single).raise_for_status()
            whole.append(time.perf_counter() - started)
    for k, name in enumerate(["headers", "first data", "first text", "end (8 tokens)"]):
        print(f"{name}: {statistics.median(r[k] for r in rows) * 1000:.2f} ms")
    print(f"non-streamed, 1 token: {statistics.median(whole) * 1000:.2f} ms")
    print(f"generate() own first token: {hf.ttft_engine(model, text, 15) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
