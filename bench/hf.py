"""Hugging Face benchmarks (issue #16, item 6): encoder classification and generation, served.

    .venv/bin/python bench/peers.py mlserver-hf     # MLServer 1.7.1 + mlserver-huggingface, once
    .venv/bin/python bench/hf.py                    # both parts; JSON under .bench/results/
    .venv/bin/python bench/hf.py --docs             # also keep it in docs/data/ and rewrite docs/benchmarks-hf.md
    .venv/bin/python bench/hf.py --render docs/data/hf-....json

Encoder: a 4-layer BERT classifier (hidden 256, random weights, tokenizer trained here), one text of 6 to
60 words a request, texts cycled so lengths mix. Requests/s at c=1, 8, 32 for prebake V2 with batching on
(padding-aware) and off, MLServer 1.7.1 with mlserver-huggingface (its pipeline; adaptive batching on
and off), and the floor: a plain transformers pipeline called in a loop in-process, no server.

Generation: a 4-layer Llama (hidden 256), 200-token prompts, 64 new tokens greedy (end of sequence never
chosen). Tokens/s at c=1, 8, 32 through /v1/completions for prebake's continuous batching and prebake's
sequential engine (transformers' generate, one request after another, as KServe's Hugging Face fallback
does), and time to first token at c=1 (streamed) against the engine's own: transformers generate() with a
streamer, in-process, no server.

Each server runs alone, pinned to core 0 with one math thread; the client runs on core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The repository root instead of bench/ itself, whose profile.py would shadow the standard library's
# (torch imports cProfile, which imports profile).
sys.path[0] = str(ROOT)

from bench import peers  # noqa: E402
from prebake.testing import free_port  # noqa: E402

WORK = ROOT / ".bench" / "hf"
RESULTS = ROOT / ".bench" / "results"
SERVER_CPU, CLIENT_CPU = "0", "1"
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "paris",
    "is",
    "the",
    "capital",
    "of",
    "france",
    "and",
    "berlin",
    "is",
    "the",
    "capital",
    "of",
    "germany",
    "i",
    "love",
    "this",
    "movie",
    "it",
    "was",
    "great",
    "but",
    "the",
    "film",
    "was",
    "terrible",
    "and",
    "boring",
    "alice",
    "met",
    "bob",
]
TARGETS = {"encoder_vs_mlserver_c32": 2.0, "generation_c8_vs_sequential": 4.0, "ttft_overhead": 0.10}


# -- models -----------------------------------------------------------------------------------------------
def encoder_model(directory: Path) -> Path:
    if (directory / "model.safetensors").exists():
        return directory
    import torch
    from tests import hfmodels
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tok = hfmodels.wordpiece_tokenizer()
    tok.model_max_length = 128
    config = BertConfig(
        vocab_size=len(tok), hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        max_position_embeddings=128, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1}, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    BertForSequenceClassification(config).eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    # transformers 5 names its fast tokenizer class TokenizersBackend; the 4.41 that MLServer's runtime
    # needs knows the same tokenizer.json as PreTrainedTokenizerFast.
    config_file = directory / "tokenizer_config.json"
    settings = json.loads(config_file.read_text())
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(settings))
    return directory


def generator_model(directory: Path) -> Path:
    if (directory / "model.safetensors").exists():
        return directory
    import torch
    from tests import hfmodels
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = hfmodels.bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Never ends early, so every request makes 64 tokens: a zero row scores 0, below the best of the
        # other random rows for any hidden state. (A row of -100 scores -100 * sum(h): the best of all
        # wherever sum(h) < 0, which ended every completion at its first token.)
        model.lm_head.weight[tok.eos_token_id] = 0.0
    model.eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def texts() -> list[str]:
    import random

    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 60))) for _ in range(64)]


def prompt() -> str:
    import random

    rng = random.Random(1)
    return " ".join(rng.choice(WORDS) for _ in range(120))


# -- servers ------------------------------------------------------------------------------------------------
class Server:
    """One server process pinned to core 0, in its own session; ``ready`` waits for a good answer."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], port: int, probe: tuple[str, bytes]
    ) -> None:
        self.name, self.argv, self.env, self.port, self.probe = name, argv, env, port, probe
        self.log = WORK / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *self.argv], env={**os.environ, **THREAD_ENV, **self.env},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            try:
                answer = httpx.post(f"http://127.0.0.1:{self.port}{self.probe[0]}", content=self.probe[1],
                                    headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
                if answer.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.name} not ready; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def prebake_server(name: str, model: Path, settings: dict[str, Any], probe: tuple[str, bytes]) -> Server:
    directory = WORK / "models" / name
    if not directory.exists():
        directory.mkdir(parents=True)
        for item in model.iterdir():
            (directory / item.name).symlink_to(item)
    (directory / "model-settings.json").write_text(json.dumps({"name": "m", **settings}))
    port = free_port()
    argv = [sys.executable, "-m", "prebake", "serve", str(directory), "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log"]  # fmt: skip
    return Server(name, argv, {}, port, probe)


def mlserver_server(name: str, model: Path, batched: bool, probe: tuple[str, bytes]) -> Server:
    peer = peers.PEERS["mlserver-hf"]
    if not peers.works(peer):
        raise RuntimeError("no mlserver-hf venv: run bench/peers.py mlserver-hf")
    repo = WORK / "mlserver" / name
    (repo / "m").mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "name": "m",
        "implementation": "mlserver_huggingface.HuggingFaceRuntime",
        "parameters": {
            "extra": {"task": "text-classification", "pretrained_model": str(model), "device": -1}
        },
    }
    if batched:
        settings.update({"max_batch_size": 32, "max_batch_time": 0.002})
    (repo / "m" / "model-settings.json").write_text(json.dumps(settings))
    port = free_port()
    env = {
        "MLSERVER_HOST": "127.0.0.1", "MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()), "MLSERVER_PARALLEL_WORKERS": "0",
    }  # fmt: skip
    return Server(name, [str(peer.python.parent / "mlserver"), "start", str(repo)], env, port, probe)


# -- load ---------------------------------------------------------------------------------------------------
async def _closed_loop(port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float,
                       warmup: float, count: Any) -> dict[str, Any]:  # fmt: skip
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    done: list[tuple[float, float, Any]] = []
    errors = 0
    start = time.perf_counter()
    window = (start + warmup, start + warmup + seconds)

    async def one(client: httpx.AsyncClient, worker: int) -> None:
        nonlocal errors
        i = worker
        while time.perf_counter() < window[1]:
            body = bodies[i % len(bodies)]
            i += concurrency
            sent = time.perf_counter()
            try:
                answer = await client.post(path, content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError:  # the server dropped the connection (MLServer's batched HF runtime does)
                errors += 1
                await asyncio.sleep(0.01)
                continue
            if answer.status_code != 200:
                errors += 1
                continue
            finished = time.perf_counter()
            if window[0] <= finished <= window[1]:  # throughput: what finished inside the window
                done.append((sent, finished, count(answer.content)))

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=300) as client:
        await asyncio.gather(*(one(client, w) for w in range(concurrency)))
    latencies = sorted(f - s for s, f, _ in done)

    def pct(q: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else 0.0
        )

    return {
        "requests": len(done), "errors": errors, "seconds": seconds,
        "per_second": round(len(done) / seconds, 2), "units_per_second": round(sum(c for *_, c in done) / seconds, 1),
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "load_average": round(os.getloadavg()[0], 2),
    }  # fmt: skip


def load(port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float, warmup: float,
         count: Any = lambda body: 1) -> dict[str, Any]:  # fmt: skip
    return asyncio.run(_closed_loop(port, path, bodies, concurrency, seconds, warmup, count))


# -- encoder part -----------------------------------------------------------------------------------------
def v2_text(text: str, name: str = "text", params: dict[str, Any] | None = None) -> bytes:
    tensor: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": [1], "data": [text]}
    if params:
        tensor["parameters"] = params
    return json.dumps({"inputs": [tensor]}).encode()


def pipeline_floor(model: Path, samples: list[str], seconds: float) -> dict[str, Any]:
    """The floor: transformers' pipeline called once per text, in a loop, in a pinned child process."""
    code = f"""
import json, time, torch
torch.set_num_threads(1)
from transformers import pipeline
pipe = pipeline("text-classification", model={str(model)!r}, device="cpu")
texts = {samples!r}
for t in texts[:8]: pipe(t)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    pipe(texts[n % len(texts)]); n += 1
print(json.dumps({{"requests": n, "per_second": round(n / (time.perf_counter() - start), 2)}}))
"""
    out = subprocess.run(["taskset", "-c", SERVER_CPU, sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **THREAD_ENV}, timeout=600, check=True)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def encoder_part(levels: list[int], seconds: float, warmup: float) -> dict[str, Any]:
    model = encoder_model(WORK / "encoder")
    samples = texts()
    prebake_bodies = [v2_text(t) for t in samples]
    ml_bodies = [v2_text(t, "args", {"content_type": "str"}) for t in samples]
    servers = [
        ("prebake-batch", lambda: prebake_server("enc-batch", model, {"max_batch_size": 32, "max_batch_delay_ms": 2.0},
                                                 ("/v2/models/m/infer", prebake_bodies[0])), prebake_bodies),
        ("prebake-nobatch", lambda: prebake_server("enc-nobatch", model, {"max_batch_size": 1},
                                                   ("/v2/models/m/infer", prebake_bodies[0])), prebake_bodies),
        ("mlserver-hf", lambda: mlserver_server("mlserver-hf", model, False, ("/v2/models/m/infer", ml_bodies[0])),
         ml_bodies),
        ("mlserver-hf-batch", lambda: mlserver_server("mlserver-hf-batch", model, True,
                                                      ("/v2/models/m/infer", ml_bodies[0])), ml_bodies),
    ]  # fmt: skip
    results: dict[str, Any] = {"floor-pipeline-loop": {"1": pipeline_floor(model, samples, seconds)}}
    for name, make, bodies in servers:
        try:
            with make() as server:
                results[name] = {
                    str(c): load(server.port, "/v2/models/m/infer", bodies, c, seconds, warmup)
                    for c in levels
                }
        except RuntimeError as error:
            results[name] = {"error": str(error)}
        print(name, json.dumps(results[name]), flush=True)
    return results


# -- generation part ------------------------------------------------------------------------------------------
def _usage_tokens(body: bytes) -> int:
    return int(json.loads(body)["usage"]["completion_tokens"])


def ttft_served(port: int, text: str, tries: int) -> float:
    """Median seconds from sending a streamed completion to its first text chunk."""
    import httpx

    body = {"model": "m", "prompt": text, "max_tokens": 8, "temperature": 0, "stream": True}
    times = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for _ in range(tries):
            started = time.perf_counter()
            with client.stream("POST", "/v1/completions", json=body) as answer:
                for line in answer.iter_lines():
                    if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["text"]:
                        times.append(time.perf_counter() - started)
                        break
    return statistics.median(times)


def ttft_engine(model: Path, text: str, tries: int) -> float:
    """The engine's own time to first token: transformers generate() with a streamer, in-process, pinned."""
    code = f"""
import json, statistics, time, torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained({str(model)!r}); model = AutoModelForCausalLM.from_pretrained({str(model)!r}).eval()
class First:
    def __init__(self): self.seen = 0; self.at = None
    def put(self, value):
        self.seen += 1
        if self.seen == 2 and self.at is None: self.at = time.perf_counter()
    def end(self): pass
times = []
for i in range({tries} + 2):
    started = time.perf_counter()
    ids = tok({text!r}, return_tensors="pt")["input_ids"]
    s = First()
    with torch.inference_mode():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, streamer=s,
                       pad_token_id=tok.pad_token_id)
    if i >= 2: times.append(s.at - started)
print(json.dumps(statistics.median(times)))
"""
    out = subprocess.run(["taskset", "-c", SERVER_CPU, sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **THREAD_ENV}, timeout=600, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def generation_part(levels: list[int], seconds: float, warmup: float) -> dict[str, Any]:
    model = generator_model(WORK / "generator")
    text = prompt()
    body = json.dumps({"model": "m", "prompt": text, "max_tokens": 64, "temperature": 0}).encode()
    results: dict[str, Any] = {}
    for name, engine in (("prebake-continuous", "continuous"), ("prebake-sequential", "sequential")):
        settings = {"max_batch_size": 64, "parameters": {"engine": engine}}
        with prebake_server(f"gen-{engine}", model, settings, ("/v1/completions", body)) as server:
            # First, on the idle server: after a load level the engine may still be finishing (or cancelling)
            # the sequences of the connections the load generator dropped.
            ttft = ttft_served(server.port, text, 15)
            results[name] = {
                str(c): load(server.port, "/v1/completions", [body], c, seconds, warmup, _usage_tokens) for c in levels
            }  # fmt: skip
            results[name]["ttft_c1_s"] = ttft
        print(name, json.dumps(results[name]), flush=True)
    results["engine-own"] = {"ttft_c1_s": ttft_engine(model, text, 15)}
    print("engine-own", json.dumps(results["engine-own"]), flush=True)
    return results


# -- report -----------------------------------------------------------------------------------------------------
def _rate(part: dict[str, Any], name: str, level: int, key: str) -> float | None:
    entry = part.get(name, {}).get(str(level))
    return None if not isinstance(entry, dict) else float(entry.get(key, 0)) or None


def verdicts(record: dict[str, Any]) -> dict[str, Any]:
    enc, gen = record.get("encoder", {}), record.get("generation", {})
    out: dict[str, Any] = {}
    ours = _rate(enc, "prebake-batch", 32, "per_second")
    theirs = max(
        filter(
            None,
            [_rate(enc, "mlserver-hf", 32, "per_second"), _rate(enc, "mlserver-hf-batch", 32, "per_second")],
        ),
        default=None,
    )
    if ours and theirs:
        out["encoder_vs_mlserver_c32"] = round(ours / theirs, 2)
    cont, seq = (
        _rate(gen, "prebake-continuous", 8, "units_per_second"),
        _rate(gen, "prebake-sequential", 8, "units_per_second"),
    )
    if cont and seq:
        out["generation_c8_vs_sequential"] = round(cont / seq, 2)
    served = gen.get("prebake-continuous", {}).get("ttft_c1_s")
    own = gen.get("engine-own", {}).get("ttft_c1_s")
    if served and own:
        out["ttft_overhead"] = round(served / own - 1, 3)
    return out


def render(record: dict[str, Any]) -> str:
    enc, gen, v = record.get("encoder", {}), record.get("generation", {}), verdicts(record)
    lines = [
        "# Hugging Face benchmarks (issue #16)", "",
        f"Machine: {record['machine']}. Run: {record['started']}. Each server alone, pinned to core 0 with one math",
        f"thread; the client on core 1; {record['seconds']:g} s a level after {record['warmup']:g} s of warm-up. "
        "Rerun: `.venv/bin/python bench/hf.py --docs`.", "",
        "## Encoder: text classification, requests/s (p99 ms)", "",
        "4-layer BERT (hidden 256), one text of 6 to 60 words a request, lengths mixed.", "",
        "| server | " + " | ".join(f"c={c}" for c in record["levels"]) + " |",
        "|---|" + "---|" * len(record["levels"]),
    ]  # fmt: skip
    for name, levels in enc.items():
        if "error" in levels:
            lines.append(f"| {name} | not run: {levels['error']} |")
            continue
        cells = []
        for c in record["levels"]:
            entry = levels.get(str(c))
            cells.append(
                ""
                if entry is None
                else f"{entry['per_second']:.0f}"
                + (f" ({entry['p99_ms']:.0f})" if "p99_ms" in entry else "")
                + (f", **{entry['errors']} errors**" if entry.get("errors") else "")
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loads = [
        f"{name} {'/'.join(str(levels[str(c)]['load_average']) for c in record['levels'] if 'load_average' in levels.get(str(c), {}))}"
        for part in (enc, gen)
        for name, levels in part.items()
        if any("load_average" in levels.get(str(c), {}) for c in record["levels"])
    ]
    if loads:
        lines += ["", "Load average (1 min, 2 cores) at the end of each level: " + "; ".join(loads) + "."]
    lines += ["", "`floor-pipeline-loop`: transformers' pipeline called in a loop, in-process, no server (one at a time).", "",
              "## Generation: tokens/s (requests/s), time to first token", "",
              "4-layer Llama (hidden 256), 120-word prompt, 64 new tokens greedy, /v1/completions.", "",
              "| engine | " + " | ".join(f"c={c}" for c in record["levels"]) + " | TTFT c=1 |",
              "|---|" + "---|" * (len(record["levels"]) + 1)]  # fmt: skip
    for name, levels in gen.items():
        cells = [
            f"{levels[str(c)]['units_per_second']:.0f} ({levels[str(c)]['per_second']:.1f})"
            if str(c) in levels
            else ""
            for c in record["levels"]
        ]
        ttft = levels.get("ttft_c1_s")
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {ttft * 1000:.1f} ms |"
            if ttft
            else f"| {name} | " + " | ".join(cells) + " | |"
        )
    lines += ["", "`engine-own`: transformers generate() with a streamer, in-process, no server: the engine's own time to first token.", "",
              "## Targets", "", "| target | needed | measured | met |", "|---|---|---|---|"]  # fmt: skip
    names = {
        "encoder_vs_mlserver_c32": (
            "batched encoder vs MLServer's huggingface runtime (its best), c=32",
            ">= 2x",
        ),
        "generation_c8_vs_sequential": ("generation tokens/s, continuous vs sequential, c=8", ">= 4x"),
        "ttft_overhead": ("time to first token at c=1 over the engine's own", "<= +10%"),
    }
    for key, (label, need) in names.items():
        value = v.get(key)
        met = (
            None
            if value is None
            else (value <= TARGETS[key] if key == "ttft_overhead" else value >= TARGETS[key])
        )
        shown = (
            "not run" if value is None else (f"{value:+.0%}" if key == "ttft_overhead" else f"{value:.2f}x")
        )
        lines.append(f"| {label} | {need} | {shown} | {'yes' if met else ('no' if met is False else '-')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["encoder", "generation", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument(
        "--docs", action="store_true", help="keep the JSON in docs/data and write docs/benchmarks-hf.md"
    )
    parser.add_argument("--render", type=Path, help="rewrite docs/benchmarks-hf.md from a saved run")
    args = parser.parse_args()
    if args.render:
        (ROOT / "docs" / "benchmarks-hf.md").write_text(render(json.loads(args.render.read_text())))
        return
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    WORK.mkdir(parents=True, exist_ok=True)
    levels = [int(c) for c in args.levels.split(",")]
    record: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "levels": levels,
        "seconds": args.seconds, "warmup": args.warmup,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores ({platform.processor() or 'cpu'}), Python {platform.python_version()}",
    }  # fmt: skip
    if args.part in ("encoder", "all"):
        record["encoder"] = encoder_part(levels, args.seconds, args.warmup)
    if args.part in ("generation", "all"):
        record["generation"] = generation_part(levels, args.seconds, args.warmup)
    record["verdicts"] = verdicts(record)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"hf-{time.strftime('%Y-%m-%dT%H%M', time.gmtime())}.json"
    (RESULTS / name).write_text(json.dumps(record, indent=2))
    if args.docs:
        (ROOT / "docs" / "data" / name).write_text(json.dumps(record, indent=2))
        (ROOT / "docs" / "benchmarks-hf.md").write_text(render(record))
    print(json.dumps(record["verdicts"]))


if __name__ == "__main__":
    main()
