"""GPU benchmark (issue #4): a ResNet-18 served by `prebake serve --device cuda` with adaptive batching
on and off, against the raw model's own throughput at the same batch size, with binary V2 tensors.

Run on a machine with an NVIDIA GPU (torch with CUDA, and prebake's own dependencies importable)::

    python3 bench/gpu.py --out DIR [--docs]

It writes DIR/gpu.json and DIR/gpu.md (models and server logs go to ``--work``); ``--docs`` also writes docs/benchmarks-gpu.md,
which bench/run.py carries into docs/benchmarks.md. ``--device cpu --image-size 32 --seconds 2`` runs the
whole path on a CPU in under a minute (a check of the script, not a figure).

What is measured:
- raw: the model alone in this process, a batch of B images from host memory to the device and the
  answers back to host numpy arrays (what a server has to do too), images/s;
- server: prebake with ``max_batch_size`` 1 (unbatched) and 32 (batched), W workers, C connections each
  sending one 224x224 FP32 image per request as a binary tensor and asking for a binary output;
  images/s, p50/p99, and the mean rows per predict call from /metrics.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# The repository root instead of bench/ itself, whose profile.py would shadow the standard library's;
# and its src/, for a machine where prebake is not installed (the GPU machine).
sys.path[0] = str(Path(__file__).resolve().parents[1])
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))
from bench import loadgen  # noqa: E402
from prebake.testing import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
MODEL = "resnet18"
TARGET = 4.0  # issue #4: batched at least 4x unbatched


def resnet18(torch: Any, classes: int = 1000) -> Any:
    """ResNet-18 (He et al. 2015): BasicBlocks [2, 2, 2, 2], 11.7 M parameters, random weights."""
    nn = torch.nn

    class Block(nn.Module):  # type: ignore[misc]
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: Any) -> Any:
            skip = x if self.down is None else self.down(x)
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + skip)

    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    widths = [64, 128, 256, 512]
    cin = 64
    for i, width in enumerate(widths):
        layers += [Block(cin, width, 1 if i == 0 else 2), Block(width, width, 1)]
        cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    torch.manual_seed(0)
    return nn.Sequential(*layers).eval()


def export(torch: Any, net: Any, size: int, path: Path) -> None:
    batch = torch.export.Dim("batch", max=4096)
    program = torch.export.export(net, (torch.randn(2, 3, size, size),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))


def loaded_models(torch: Any, net: Any, pt2: Path, device: str, size: int) -> dict[str, Any]:
    """The served archive as the torch runtime loads it (``export``), and for comparison the module it was
    exported from (``eager``) and a TorchScript trace of it (``torchscript``), all on ``device``."""
    program = torch.export.load(str(pt2))
    if device != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    example = torch.randn(2, 3, size, size, device=device)
    eager = copy.deepcopy(net).to(device)
    with torch.inference_mode():
        script = torch.jit.trace(copy.deepcopy(net).to(device), example)
    return {"export": program.module(), "eager": eager, "torchscript": script}


def raw_throughput(torch: Any, model: Any, device: str, size: int, batch: int, seconds: float) -> float:
    """Images/s of a model alone: host array -> device -> forward -> host array."""
    x = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)

    def step() -> None:
        with torch.inference_mode():
            model(torch.from_numpy(x).to(device)).cpu().numpy()

    for _ in range(5):
        step()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += batch
    return done / (time.perf_counter() - started)


def model_dir(base: Path, pt2: Path, size: int, max_batch: int) -> Path:
    out = base / f"model-b{max_batch}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.pt2").write_bytes(pt2.read_bytes())
    settings = {
        "name": MODEL,
        "runtime": "torch",
        "max_batch_size": max_batch,
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3, size, size]}],
    }
    (out / "model-settings.json").write_text(json.dumps(settings))
    return out


def infer_request(image: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """A V2 infer body with the image as a binary tensor, asking for the output as binary too."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(image.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": image.nbytes},
                }
            ],
            "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + image.tobytes(), headers


def binary_output(body: bytes, header_length: int) -> np.ndarray:
    header = json.loads(body[:header_length])
    (output,) = header["outputs"]
    return np.frombuffer(body[header_length:], dtype=np.float32).reshape(output["shape"])


class Server:
    def __init__(self, directory: Path, workers: int, device: str, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        args = [sys.executable, "-m", "prebake", "serve", str(directory), "--device", device]
        args += ["--workers", str(workers), "--port", str(port), "--host", "127.0.0.1", "--no-access-log"]
        args += ["--max-body-bytes", str(512 * 1024 * 1024)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
        self.workers = workers

    def wait_ready(self, timeout: float = 300) -> None:
        """Every worker ready: the log names the model as ready once per worker."""
        deadline = time.monotonic() + timeout
        while self.log.read_text(errors="replace").count(f"model '{MODEL}' ready") < self.workers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.port} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, int]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("POST", f"/v2/models/{MODEL}/infer", body, headers)
            answer = connection.getresponse()
            length = int(answer.getheader("Inference-Header-Content-Length") or 0)
            return answer.status, answer.read(), length
        finally:
            connection.close()

    def batch_totals(self) -> tuple[float, float]:
        """Rows and predict calls so far (rows per call is 1 where batching is off and no histogram exists)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        values = []
        for suffix in ("sum", "count"):
            match = re.search(rf'^prebake_batch_size_rows_{suffix}{{model="{MODEL}"}} (\S+)$', text, re.M)
            values.append(float(match.group(1)) if match else 0.0)
        return values[0], values[1]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "gpu")
    parser.add_argument(
        "--work", type=Path, default=None, help="models and server logs (default: a temp dir)"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32, help="max_batch_size of the batched server")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--client-processes", type=int, default=6)
    parser.add_argument("--docs", action="store_true", help="also write docs/benchmarks-gpu.md")
    args = parser.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="prebake-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    size, device = args.image_size, args.device
    workers = [int(w) for w in args.workers.split(",")]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    card = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    record: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python3 bench/gpu.py " + " ".join(sys.argv[1:]),
        "card": card,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "image_size": size,
        "batch": args.batch,
        "seconds": args.seconds,
        "raw": {},
        "raw_eager": {},
        "raw_torchscript": {},
        "server": [],
    }

    def save() -> None:
        (args.out / "gpu.json").write_text(json.dumps(record, indent=2))

    net = resnet18(torch)
    pt2 = work / "resnet18.pt2"
    export(torch, net, size, pt2)
    for kind, model in loaded_models(torch, net, pt2, device, size).items():
        # The served kind at every size; the others at the two sizes that bound the table.
        for batch in sorted({1, 8, args.batch} if kind == "export" else {1, args.batch}):
            rate = raw_throughput(torch, model, device, size, batch, min(args.seconds, 4.0))
            record["raw" if kind == "export" else f"raw_{kind}"][str(batch)] = rate
            print(f"raw {kind} batch {batch}: {rate:,.0f} images/s", flush=True)
    if device == "cuda":
        torch.cuda.empty_cache()
    save()

    image = np.random.default_rng(1).normal(size=(1, 3, size, size)).astype(np.float32)
    with torch.inference_mode():
        reference = net(torch.from_numpy(image)).numpy()  # on the CPU, in fp32
    body, headers = infer_request(image)
    payload = loadgen.request_bytes(f"/v2/models/{MODEL}/infer", body, headers)

    servers: dict[tuple[int, int], Server] = {}
    for w in workers:
        for max_batch in (1, args.batch):
            directory = model_dir(work / "models", pt2, size, max_batch)
            log = work / f"server-w{w}-b{max_batch}.log"
            servers[(w, max_batch)] = Server(directory, w, device, free_port(), log)
    try:
        for server in servers.values():
            server.wait_ready()
        for (w, max_batch), server in servers.items():
            status, answer, length = server.post(body, headers)
            if status != 200:
                raise RuntimeError(f"server w={w} b={max_batch}: {status} {answer[:300]!r}")
            got = binary_output(answer, length)
            difference = float(np.max(np.abs(got - reference)))
            scale = float(np.max(np.abs(reference)))
            print(
                f"w={w} b={max_batch}: answer differs from the CPU's by {difference:.2e} (scale {scale:.2f})"
            )
            if not np.allclose(got, reference, rtol=1e-2, atol=1e-2 * scale):
                raise RuntimeError(f"server w={w} b={max_batch} answers wrong: differs by {difference}")
            for c in concurrency:
                rows_before, calls_before = server.batch_totals()
                load = loadgen.run(
                    server.port,
                    payload,
                    connections=c,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    processes=args.client_processes,
                )
                time.sleep(1.2)  # workers publish their counters about once a second
                rows, calls = server.batch_totals()
                mean_rows = (rows - rows_before) / (calls - calls_before) if calls > calls_before else 1.0
                point = {
                    "workers": w,
                    "max_batch_size": max_batch,
                    "concurrency": c,
                    "images_per_s": load.per_second,
                    "p50_ms": load.p50_ms,
                    "p99_ms": load.p99_ms,
                    "errors": load.errors,
                    "mean_rows_per_call": mean_rows,
                    "max_abs_diff_vs_cpu": difference,
                }
                record["server"].append(point)
                save()
                print(json.dumps(point), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    markdown = render(record)
    (args.out / "gpu.md").write_text(markdown)
    print(markdown)
    if args.docs:
        stamp = time.strftime("%Y-%m-%dT%H%M", time.gmtime())
        (DATA / f"gpu-{stamp}.json").write_text(json.dumps(record, indent=2))
        write_docs()
    return 0


def write_docs() -> None:
    """docs/benchmarks-gpu.md from every run kept in docs/data (newest first)."""
    records = [json.loads(p.read_text()) for p in sorted(DATA.glob("gpu-*.json"), reverse=True)]
    (ROOT / "docs" / "benchmarks-gpu.md").write_text(render_page(records))


def render_page(records: list[dict[str, Any]]) -> str:
    """Every run, with the issue's target (batched at least 4x unbatched) judged on each point."""
    verdicts = []
    for record in records:
        points = {(p["workers"], p["max_batch_size"], p["concurrency"]): p for p in record["server"]}
        for (w, size, c), on in sorted(points.items()):
            off = points.get((w, 1, c))
            if size == 1 or off is None:
                continue
            ratio = on["images_per_s"] / off["images_per_s"]
            verdicts.append(
                (ratio >= TARGET, f"{ratio:.2f}x at {w} worker(s), c={c} ({record['date'][:16]})")
            )
    met = [text for ok, text in verdicts if ok]
    missed = [text for ok, text in verdicts if not ok]
    lines = [
        "## GPU: ResNet-18 with binary V2 tensors (issue #4)",
        "",
        f"Target: batched at least {TARGET:.0f}x unbatched. Met at {len(met)} of {len(verdicts)} points: "
        + ("; ".join(met) or "none")
        + ". Missed: "
        + ("; ".join(missed) or "none")
        + ". Runs are kept in docs/data/gpu-*.json; `python3 bench/gpu.py --docs` adds one and rewrites this page.",
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(render(r) for r in records)


def render(record: dict[str, Any]) -> str:
    """One run: the raw limits, then unbatched against batched per workers x concurrency."""
    raw, batch = record["raw"], record["batch"]
    points = {(p["workers"], p["max_batch_size"], p["concurrency"]): p for p in record["server"]}
    size = record["image_size"]
    lines = [
        f"### {record['date']}, {record['card']}",
        "",
        f"{record['cpus']} CPU cores, torch {record['torch']}: `{record.get('command', 'python3 bench/gpu.py')}`. "
        f"ResNet-18 (random weights, torch.export archive), one {size}x{size} FP32 image per request as a "
        f"binary tensor, output asked as binary; {record['seconds']:.0f} s per point after a warm-up, "
        "closed-loop clients (bench/loadgen.py).",
        "",
        "Raw model (the served archive alone, host to device and back; the limit): " + _rates(raw) + ".",
    ]
    others = [
        f"{label} {_rates(record[key])}"
        for label, key in (
            ("the nn.Module before export", "raw_eager"),
            ("a TorchScript trace", "raw_torchscript"),
        )
        if record.get(key)
    ]
    if others:
        lines += ["", "The same network as " + "; as ".join(others) + "."]
    lines += [
        "",
        "| workers | concurrency | unbatched images/s | batched images/s | batched / unbatched | "
        f"batched / raw batch {batch} | rows per call | p99 ms unbatched / batched |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w, _, c in sorted(k for k in points if k[1] == 1):
        off, on = points[(w, 1, c)], points.get((w, batch, c))
        if on is None:
            continue
        lines.append(
            f"| {w} | {c} | {off['images_per_s']:,.0f} | {on['images_per_s']:,.0f} | "
            f"{on['images_per_s'] / off['images_per_s']:.2f}x | {on['images_per_s'] / raw[str(batch)]:.2f} | "
            f"{on['mean_rows_per_call']:.1f} | {off['p99_ms']:.1f} / {on['p99_ms']:.1f} |"
        )
    errors = sum(p["errors"] for p in record["server"])
    worst = max((p["max_abs_diff_vs_cpu"] for p in record["server"]), default=0.0)
    lines += [
        "",
        f"Errors: {errors}. Each server's answer for the benchmark image was checked against the model on the "
        f"CPU in FP32 before its load: largest difference {worst:.1e}.",
    ]
    return "\n".join(lines) + "\n"


def _rates(rates: dict[str, float]) -> str:
    return ", ".join(f"batch {b} {rates[b]:,.0f} images/s" for b in sorted(rates, key=int))


if __name__ == "__main__":
    sys.exit(main())
