#!/usr/bin/env python3
"""Run Triton's own example clients, unchanged, against `prebake serve`, and print what passed.

    .venv/bin/python scripts/triton_examples.py EXAMPLES_DIR [--only NAME ...] [--json FILE] [-v]

EXAMPLES_DIR is ``src/python/examples`` of github.com/triton-inference-server/client (this script fetches
nothing; see the README for how to get it). The script

1. builds the models the examples expect, as tiny ONNX graphs served by prebake's ONNX runtime, in a
   model repository laid out as Triton's (``simple/1/model.onnx``, a ``model-settings.json`` beside it
   saying what Triton's ``config.pbtxt`` says: max_batch_size, sequence controls, input format, labels);
2. starts ``prebake serve --model-repository ... --port 8000 --grpc-port 8001 --allow-client-shm``
   (the ports the examples default to; ``memory_growth_test.py`` cannot be told others);
3. runs every example as Triton's QA does (``qa/L0_http/test.sh``, ``qa/L0_grpc/test.sh``), each
   unchanged, with the arguments that QA gives it, and checks its exit code;
4. prints one row per example: PASS, FAIL, XFAIL (fails for a reason written here) or SKIP (cannot run
   here, and why). The exit code is 1 where an example fails that should pass, or one expected to fail
   passes (so the expectations below stay true), else 0.

The two model-control examples change the repository (load, reload, unload) and count its models (the
HTTP one 7, the gRPC one 8: Triton's QA runs them on different repositories), so each gets a server of
its own, with 7 and 8 models.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HTTP_PORT = 8000
GRPC_PORT = 8001
EXAMPLE_TIMEOUT_S = 120
SERVER_START_S = 60


# -- the models ---------------------------------------------------------------------------------------


def _onnx_model(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: Any = ()) -> None:
    from onnx import helper, save

    graph = helper.make_graph(nodes, path.parent.parent.name, inputs, outputs, initializer=list(inits))
    # Opset 14 (Add and Sub of int8) and IR 8: every onnxruntime from 1.11 on loads it.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))


def _settings(directory: Path, settings: dict[str, Any]) -> None:
    (directory / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def build_repository(root: Path, *, with_dyna: bool = True) -> list[str]:
    """Triton's example models (docs/examples/model_repository of triton-inference-server/server, by
    their config.pbtxt), rebuilt as tiny ONNX graphs of our own; returns their names."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def tensor(name: str, elem: int, dims: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, elem, dims)

    # simple, simple_int8: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, 16 elements per row.
    for name, elem in (("simple", TensorProto.INT32), ("simple_int8", TensorProto.INT8)):
        _onnx_model(
            root / name / "1" / "model.onnx",
            [
                helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
                helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
            ],
            [tensor("INPUT0", elem, ["batch", 16]), tensor("INPUT1", elem, ["batch", 16])],
            [tensor("OUTPUT0", elem, ["batch", 16]), tensor("OUTPUT1", elem, ["batch", 16])],
        )
        _settings(root / name, {"max_batch_size": 8})

    # simple_string: the same on numbers written as strings (ONNX Cast parses and prints them).
    _onnx_model(
        root / "simple_string" / "1" / "model.onnx",
        [
            helper.make_node("Cast", ["INPUT0"], ["a"], to=TensorProto.INT32),
            helper.make_node("Cast", ["INPUT1"], ["b"], to=TensorProto.INT32),
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Sub", ["a", "b"], ["diff"]),
            helper.make_node("Cast", ["sum"], ["OUTPUT0"], to=TensorProto.STRING),
            helper.make_node("Cast", ["diff"], ["OUTPUT1"], to=TensorProto.STRING),
        ],
        [
            tensor("INPUT0", TensorProto.STRING, ["batch", 16]),
            tensor("INPUT1", TensorProto.STRING, ["batch", 16]),
        ],
        [
            tensor("OUTPUT0", TensorProto.STRING, ["batch", 16]),
            tensor("OUTPUT1", TensorProto.STRING, ["batch", 16]),
        ],
    )
    _settings(root / "simple_string", {"max_batch_size": 8})

    # simple_identity (strings, any length) and custom_identity_int32 (memory_growth_test.py).
    for name, elem in (("simple_identity", TensorProto.STRING), ("custom_identity_int32", TensorProto.INT32)):
        _onnx_model(
            root / name / "1" / "model.onnx",
            [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
            [tensor("INPUT0", elem, ["batch", "n"])],
            [tensor("OUTPUT0", elem, ["batch", "n"])],
        )
        _settings(root / name, {"max_batch_size": 8})

    # simple_sequence: OUTPUT = READY * (INPUT + START); the server gives START and READY, as Triton's
    # sequence batcher does (control_input CONTROL_SEQUENCE_START / _READY).
    i32 = TensorProto.INT32
    _onnx_model(
        root / "simple_sequence" / "1" / "model.onnx",
        [
            helper.make_node("Add", ["INPUT", "START"], ["started"]),
            helper.make_node("Mul", ["READY", "started"], ["OUTPUT"]),
        ],
        [
            tensor("INPUT", i32, ["batch", 1]),
            tensor("START", i32, ["batch", 1]),
            tensor("READY", i32, ["batch", 1]),
        ],
        [tensor("OUTPUT", i32, ["batch", 1])],
    )
    _settings(
        root / "simple_sequence", {"max_batch_size": 8, "sequence": {"START": "start", "READY": "ready"}}
    )

    names = [
        "simple",
        "simple_int8",
        "simple_string",
        "simple_identity",
        "custom_identity_int32",
        "simple_sequence",
    ]
    if with_dyna:
        # simple_dyna_sequence: READY * (INPUT + START + END * CORRID): the correlation id on the last request.
        _onnx_model(
            root / "simple_dyna_sequence" / "1" / "model.onnx",
            [
                helper.make_node("Cast", ["CORRID"], ["corrid"], to=i32),
                helper.make_node("Mul", ["END", "corrid"], ["ended"]),
                helper.make_node("Add", ["INPUT", "START"], ["started"]),
                helper.make_node("Add", ["started", "ended"], ["sum"]),
                helper.make_node("Mul", ["READY", "sum"], ["OUTPUT"]),
            ],
            [
                tensor("INPUT", i32, ["batch", 1]),
                tensor("START", i32, ["batch", 1]),
                tensor("END", i32, ["batch", 1]),
                tensor("READY", i32, ["batch", 1]),
                tensor("CORRID", TensorProto.UINT64, ["batch", 1]),
            ],
            [tensor("OUTPUT", i32, ["batch", 1])],
        )
        _settings(
            root / "simple_dyna_sequence",
            {
                "max_batch_size": 8,
                "sequence": {"START": "start", "END": "end", "READY": "ready", "CORRID": "correlation_id"},
            },
        )
        names.append("simple_dyna_sequence")

    # densenet_onnx, as the image clients expect it: one NCHW FP32 image of 3x224x224, no batching, 1000
    # scores with labels. The "network" averages each channel and mixes the three means into 1000 scores.
    weights = np.random.default_rng(7).standard_normal((3, 1000)).astype(np.float32)
    _onnx_model(
        root / "densenet_onnx" / "1" / "model.onnx",
        [
            helper.make_node("ReduceMean", ["data_0"], ["means"], axes=[1, 2], keepdims=0),
            helper.make_node("Reshape", ["means", "row"], ["means_row"]),
            helper.make_node("MatMul", ["means_row", "weights"], ["scores"]),
            helper.make_node("Reshape", ["scores", "flat"], ["fc6_1"]),
        ],
        [tensor("data_0", TensorProto.FLOAT, [3, 224, 224])],
        [tensor("fc6_1", TensorProto.FLOAT, [1000])],
        [
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "row"),
            numpy_helper.from_array(np.array([1000], dtype=np.int64), "flat"),
        ],
    )
    (root / "densenet_onnx" / "densenet_labels.txt").write_text("".join(f"LABEL_{i}\n" for i in range(1000)))
    _settings(
        root / "densenet_onnx",
        {
            "inputs": [{"name": "data_0", "datatype": "FP32", "shape": [3, 224, 224], "format": "NCHW"}],
            "outputs": [
                {"name": "fc6_1", "datatype": "FP32", "shape": [1000], "labels": "densenet_labels.txt"}
            ],
        },
    )
    names.append("densenet_onnx")
    return names


def write_image(path: Path) -> None:
    """A small JPEG for the image clients (any picture does: the model is not a real classifier)."""
    from PIL import Image

    image = Image.new("RGB", (320, 240))
    image.putdata([(x % 256, y % 256, (x + y) % 256) for y in range(240) for x in range(320)])
    image.save(path, "JPEG")


# -- what each example needs, and what to expect ------------------------------------------------------

SERVER_NAME = (
    "the example requires the server to call itself 'triton' (get_server_metadata().name); with that one "
    "comparison changed it passes"
)
NO_DECOUPLED = (
    "needs Triton's decoupled model repeat_int32 (several responses to one request, a C++ backend "
    "example); prebake runtimes answer each request once"
)
NO_ENSEMBLE = (
    "needs an ensemble (preprocess_inception_ensemble: DALI image decoding feeding inception); prebake "
    "has no ensembles, and Triton's own QA leaves this example commented out"
)


FILE_OVERRIDE = (
    "every check passes up to a load with a 'file:' override whose path is over NAME_MAX, for which it "
    "wants StatusCode.INTERNAL, where prebake (which takes no file: overrides) answers INVALID_ARGUMENT "
    "with the same 'failed to poll from model repository' text: the code the example's own TODO "
    "(TRI-958) calls right"
)


@dataclass
class Example:
    file: str
    args: list[str] = field(default_factory=list)
    expect: str = "pass"  # "pass", or "xfail: why"
    server: str = "main"  # "main", or a server of its own: "control-http" (7 models), "control-grpc" (8)
    needs: tuple[str, ...] = ()  # Python modules it imports that may be missing here


def examples(image: Path) -> list[Example]:
    img = ["-m", "densenet_onnx", "-s", "INCEPTION", "-c", "1", "-b", "1", str(image)]
    return [
        Example("ensemble_image_client.py", expect="skip: " + NO_ENSEMBLE),
        Example("grpc_client.py"),
        Example("grpc_explicit_byte_content_client.py"),
        Example("grpc_explicit_int8_content_client.py"),
        Example("grpc_explicit_int_content_client.py"),
        Example("grpc_image_client.py", img, needs=("PIL",)),
        Example("image_client.py", img, needs=("PIL", "attrdict")),
        Example("memory_growth_test.py"),
        Example("reuse_infer_objects_client.py"),
        Example("simple_grpc_aio_infer_client.py"),
        Example("simple_grpc_aio_sequence_stream_infer_client.py"),
        Example("simple_grpc_async_infer_client.py"),
        Example("simple_grpc_cudashm_client.py", expect="cuda", needs=("cuda",)),
        Example("simple_grpc_custom_args_client.py"),
        Example("simple_grpc_custom_repeat.py", expect="skip: " + NO_DECOUPLED),
        Example("simple_grpc_health_metadata.py", expect="xfail: " + SERVER_NAME),
        Example("simple_grpc_infer_client.py"),
        Example("simple_grpc_keepalive_client.py"),
        Example("simple_grpc_model_control.py", expect="xfail: " + FILE_OVERRIDE, server="control-grpc"),
        Example("simple_grpc_sequence_stream_infer_client.py"),
        Example("simple_grpc_sequence_sync_infer_client.py"),
        Example("simple_grpc_shm_client.py"),
        Example("simple_grpc_shm_string_client.py"),
        Example("simple_grpc_string_infer_client.py"),
        Example("simple_http_aio_infer_client.py"),
        Example("simple_http_async_infer_client.py"),
        Example("simple_http_cudashm_client.py", expect="cuda", needs=("cuda",)),
        Example("simple_http_health_metadata.py", expect="xfail: " + SERVER_NAME),
        Example("simple_http_infer_client.py"),
        Example("simple_http_model_control.py", server="control-http"),
        Example("simple_http_sequence_sync_infer_client.py"),
        Example("simple_http_shm_client.py"),
        Example("simple_http_shm_string_client.py"),
        Example("simple_http_string_infer_client.py"),
    ]


CUDA_SKIP = "needs a GPU and cuda-python (tritonclient.utils.cuda_shared_memory)"
CUDA_XFAIL = (
    "prebake has no CUDA shared memory: it answers registration as a Triton built without GPUs does "
    "(\"failed to register CUDA shared memory region: '...', GPUs not supported\")"
)


# -- running ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    example: Example
    result: str  # PASS FAIL XFAIL XPASS SKIP
    why: str = ""
    seconds: float = 0.0
    output: str = ""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def serving(repository: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    for port in (HTTP_PORT, GRPC_PORT):
        if not _port_free(port):
            raise SystemExit(
                f"port {port} is in use; the examples talk to localhost:{HTTP_PORT} and :{GRPC_PORT} "
                "(stop what holds it, then run again)"
            )
    command = [
        sys.executable, "-m", "prebake", "serve", "--model-repository", str(repository),
        "--host", "127.0.0.1", "--port", str(HTTP_PORT), "--grpc-port", str(GRPC_PORT),
        "--allow-client-shm",
    ]  # fmt: skip
    with log.open("ab") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                raise SystemExit(f"prebake serve exited with {server.returncode}:\n{log.read_text()}")
            if _ready():
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"prebake serve was not ready in {SERVER_START_S} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/v2/health/ready", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def run_example(folder: Path, example: Example) -> Outcome:
    expect = example.expect
    missing = [m for m in example.needs if importlib.util.find_spec(m) is None]
    if expect == "cuda":
        if missing:
            return Outcome(example, "SKIP", CUDA_SKIP)
        expect = "xfail: " + CUDA_XFAIL
    elif missing:
        return Outcome(example, "SKIP", f"Python module(s) {', '.join(missing)} not installed")
    if expect.startswith("skip: "):
        return Outcome(example, "SKIP", expect.removeprefix("skip: "))
    started = time.monotonic()
    # No -u: each example talks to its own default address, as it would to Triton.
    try:
        done = subprocess.run(
            [sys.executable, str(folder / example.file), *example.args],
            capture_output=True,
            timeout=EXAMPLE_TIMEOUT_S,
            cwd=folder,
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        passed = done.returncode == 0
    except subprocess.TimeoutExpired as timeout:
        output = f"timed out after {EXAMPLE_TIMEOUT_S} s\n" + (timeout.stdout or b"").decode(errors="replace")
        passed = False
    seconds = time.monotonic() - started
    if expect.startswith("xfail: "):
        why = expect.removeprefix("xfail: ")
        return Outcome(example, "XPASS" if passed else "XFAIL", why, seconds, output)
    return Outcome(
        example, "PASS" if passed else "FAIL", "" if passed else _last_line(output), seconds, output
    )


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("examples", type=Path, help="src/python/examples of triton-inference-server/client")
    parser.add_argument("--only", nargs="*", default=None, help="run only these examples (file names)")
    parser.add_argument("--json", type=Path, help="also write the outcomes to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the output of failures")
    args = parser.parse_args(argv)
    folder = args.examples.resolve()
    if not (folder / "simple_http_infer_client.py").is_file():
        parser.error(f"{folder} does not hold Triton's examples (no simple_http_infer_client.py)")

    work = Path(tempfile.mkdtemp(prefix="prebake-triton-examples-"))
    try:
        return _run(folder, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(folder: Path, work: Path, args: argparse.Namespace) -> int:
    image = work / "image.jpg"
    if importlib.util.find_spec("PIL") is not None:
        write_image(image)
    wanted = examples(image)
    if args.only:
        wanted = [e for e in wanted if e.file in args.only or e.file.removesuffix(".py") in args.only]
    repositories = {
        "main": work / "models",
        "control-grpc": work / "models-8",
        "control-http": work / "models-7",
    }
    build_repository(repositories["main"])
    shutil.copytree(repositories["main"], repositories["control-grpc"])
    build_repository(repositories["control-http"], with_dyna=False)
    log = work / "server.log"
    outcomes: list[Outcome] = []
    for server in ("main", "control-http", "control-grpc"):
        group = [e for e in wanted if e.server == server]
        runnable = [e for e in group if not e.expect.startswith("skip: ")]
        if not runnable:
            outcomes += [run_example(folder, e) for e in group]
            continue
        with serving(repositories[server], log):
            for example in group:
                outcome = run_example(folder, example)
                outcomes.append(outcome)
                print(f"  {outcome.result:<5} {example.file}", file=sys.stderr, flush=True)
    outcomes.sort(key=lambda o: o.example.file)
    _print_table(outcomes, args.verbose)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "example": o.example.file,
                        "result": o.result,
                        "why": o.why,
                        "seconds": round(o.seconds, 2),
                    }
                    for o in outcomes
                ],
                indent=2,
            )
            + "\n"
        )
    bad = [o for o in outcomes if o.result in ("FAIL", "XPASS")]
    if bad and args.verbose:
        print("\nserver log:\n" + log.read_text()[-20000:])
    return 1 if bad else 0


def _print_table(outcomes: list[Outcome], verbose: bool) -> None:
    width = max(len(o.example.file) for o in outcomes)
    print(f"{'example':<{width}}  result  seconds  why")
    for o in outcomes:
        seconds = f"{o.seconds:7.1f}" if o.seconds else " " * 7
        print(f"{o.example.file:<{width}}  {o.result:<6}  {seconds}  {o.why}")
        if verbose and o.result in ("FAIL", "XPASS"):
            print("    | " + o.output.strip().replace("\n", "\n    | ")[-4000:])
    counts = {r: sum(o.result == r for o in outcomes) for r in ("PASS", "FAIL", "XFAIL", "XPASS", "SKIP")}
    print(
        f"\n{counts['PASS']} passed, {counts['FAIL']} failed, {counts['XFAIL']} failed as expected, "
        f"{counts['XPASS']} passed unexpectedly, {counts['SKIP']} skipped, of {len(outcomes)} examples"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
