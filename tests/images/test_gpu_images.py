"""The multi-GB images: the three GPU images and the second PyTorch version, built here with podman.

Not in CI (its 90 minutes and no GPU; each image is 3 to 7 GB): run them with scripts/test-gpu-images.sh
(PREBAKE_GPU_IMAGE_TESTS=1, marker gpu_images). Without a GPU each GPU image must still be complete:

* every CUDA library it carries loads (prebake.images.cudaprobe dlopens each nvidia-* shared object and the
  framework's own CUDA code; only what needs the NVIDIA driver, libcuda.so.1, is left to a GPU machine);
* with ``--device auto`` it serves a tiny model of its framework on CPU, correctly, and logs that no GPU
  was found;
* with ``--device cuda`` it exits 3 with a message saying no GPU is there.

Each image is pushed to the test registry (its compressed size is the manifest's layer sizes, as registries
show sizes), its layers are listed, the figures written to out/gpu-images/NAME.json, and the image is
removed afterwards: these builds need ~15 GB of disk each while they run.

The two PyTorch CPU rows (2.13.0 from the local CPU wheel, 2.12.1 from PyPI's CUDA wheel) each serve a
TorchScript model made by their own torch version, side by side.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from prebake.images.catalog import Catalog
from prebake.images.engine import Engine
from prebake.images.oci import Registry
from prebake.images.runner import RunSpec, run_arguments
from prebake.images.smoke import smoke_test

from .conftest import ROOT, Builds
from .daemons import TLSRegistry, free_port

pytestmark = [pytest.mark.images, pytest.mark.gpu_images, pytest.mark.slow]

GPU_IMAGES = [
    "pytorch-2.14.1-debian12-py311-cuda13-gpu-inference",
    "onnxruntime-1.31.1-debian12-py311-cuda13-gpu-inference",
    "tensorflow-2.21.0-debian12-py311-cuda12-gpu-inference",
]
TORCH_CPU = ["pytorch-2.13.0-debian12-py311-cpu-inference", "pytorch-2.12.1-debian12-py311-cpu-inference"]
RESULTS = ROOT / "out" / "gpu-images"
NO_GPU_LINE = "no GPU found"


@pytest.fixture(autouse=True, scope="module")
def _asked_for() -> None:
    if os.environ.get("PREBAKE_GPU_IMAGE_TESTS") != "1":
        pytest.skip("multi-GB image builds: run scripts/test-gpu-images.sh (PREBAKE_GPU_IMAGE_TESTS=1)")


def _record(name: str, figures: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **figures}, indent=2) + "\n")


def _push(podman: Engine, registry: TLSRegistry, reference: str, name: str) -> dict[str, Any]:
    """Push to the test registry; (digest, compressed bytes: the layer sizes its manifest lists, seconds)."""
    target = f"{registry.host}/gpu/{name}:latest"
    podman.run("tag", reference, target)
    started = time.monotonic()
    digest = podman.push(target)
    seconds = time.monotonic() - started
    found = Registry(registry.host).manifest(f"gpu/{name}", "latest")
    assert found is not None and found[2] == digest
    manifest = json.loads(found[0])
    compressed = sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
    podman.remove_image(target)
    return {"digest": digest, "compressed_bytes": compressed, "push_seconds": round(seconds, 1)}


def _cuda_device_refused(podman: Engine, image_id: str, case_dir: Path, model_file: str) -> str:
    """Start the image with --device cuda (PREBAKE_DEVICE=cuda) on its tiny model; its exit code and log."""
    name = f"prebake-cuda-{uuid.uuid4().hex[:8]}"
    spec = RunSpec(image_id, free_port(), model=case_dir / model_file, name=name, detach=True, remove=False,
                   environment={"PREBAKE_DEVICE": "cuda", "PREBAKE_ALLOW_PICKLE": "1"})  # fmt: skip
    podman.run(*run_arguments(spec))
    try:
        code = podman.run("wait", name, timeout=180).strip()
        return f"{code}\n{podman.logs(name)}"
    finally:
        podman.run("rm", "--force", name, check=False)


@pytest.mark.parametrize("name", GPU_IMAGES)
def test_gpu_image_without_a_gpu(
    name: str, catalog: Catalog, builds: Builds, podman: Engine, registry: TLSRegistry, tmp_path: Path
) -> None:
    """The GPU image builds, loads every CUDA library it carries, serves its framework's tiny model on CPU saying no GPU was found, refuses --device cuda with a clear exit, and is pushed; then it is removed."""
    image = catalog.get(name)
    built = builds.get("podman", name)
    figures: dict[str, Any] = {"image": name, "engine": "podman", "size_bytes": built.size_bytes,
                               "build_seconds": round(built.seconds, 1), "added_bytes": built.added_bytes}  # fmt: skip
    try:
        figures["layers"] = [{"size_bytes": layer.size_bytes, "created_by": layer.created_by[:160]}
                             for layer in podman.layers(built.image_id)]  # fmt: skip
        probe = json.loads(
            podman.run(
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                "python3",
                built.image_id,
                "-m",
                "prebake.images.cudaprobe",
                check=False,  # it exits 1 when a library fails: its report says which, and is recorded
            )
            .strip()
            .splitlines()[-1]  # fmt: skip
        )
        figures["cuda_probe"] = probe
        assert probe["failed"] == {} and "framework_error" not in probe, probe
        accounted = probe["loaded"] + len(probe["needs_driver"]) + len(probe["needs_interconnect"])
        assert probe["loaded"] >= 5 and accounted == probe["libraries"], probe

        result = smoke_test(image, podman, reference=built.image_id, no_code=True, timeout=240)
        figures["seconds_to_first_prediction"] = round(result.seconds_to_first_prediction, 2)
        assert NO_GPU_LINE in result.log, result.log[-2000:]
        figures["no_gpu_log_line"] = next(line for line in result.log.splitlines() if NO_GPU_LINE in line)

        from prebake.images.tinymodels import make_case

        tmp_path.chmod(0o755)
        case = make_case(image.smoke, tmp_path)
        refused = _cuda_device_refused(podman, built.image_id, case.model_dir, case.model_file)
        code, _, log = refused.partition("\n")
        figures["device_cuda_exit"] = int(code)
        assert code == "3", refused[-2000:]
        assert "device 'cuda' was asked for" in log, log[-2000:]
        figures["device_cuda_message"] = next(line for line in log.splitlines() if "device 'cuda'" in line)[
            -300:
        ]

        figures.update(_push(podman, registry, built.image_id, name))
    finally:
        _record(name, figures)
        podman.remove_image(image.reference)


def _make_torchscript(podman: Engine, image_id: str, out: Path, label: str) -> dict[str, Any]:
    """A TorchScript model saved by the image's own torch, and that torch's answer for four rows."""
    script = (
        "import json, torch\n"
        "torch.manual_seed(0)\n"
        "net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))\n"
        "model = torch.jit.script(net.eval())\n"
        f"model.save('/out/{label}.pt')\n"
        "rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]\n"
        "print(json.dumps({'torch': torch.__version__, 'rows': rows,"
        " 'expected': model(torch.tensor(rows)).tolist()}))\n"
    )
    out_text = podman.run("run", "--rm", "--network", "none", "--volume", f"{out}:/out:rw",
                          "--entrypoint", "python3", image_id, "-c", script)  # fmt: skip
    made: dict[str, Any] = json.loads(out_text.strip().splitlines()[-1])
    return made


def test_two_pytorch_versions_serve_their_own_torchscript_side_by_side(
    catalog: Catalog, builds: Builds, podman: Engine, tmp_path: Path
) -> None:
    """torch 2.13.0 and 2.12.1 images each serve a TorchScript model saved by their own torch version, both running at once, each answering what its torch computed."""
    out = tmp_path / "models"
    out.mkdir()
    out.chmod(0o777)  # the images write as uid 1000
    made: dict[str, dict[str, Any]] = {}
    containers: list[str] = []
    try:
        for name in TORCH_CPU:
            built = builds.get("podman", name)
            label = "torch" + catalog.get(name).version.replace(".", "")
            made[name] = _make_torchscript(podman, built.image_id, out, label)
            assert made[name]["torch"].startswith(catalog.get(name).version), made[name]
            port = free_port()
            spec = RunSpec(built.image_id, port, model=out / f"{label}.pt", name=f"prebake-torch-{label}-{uuid.uuid4().hex[:6]}",
                           detach=True)  # fmt: skip
            podman.run(*run_arguments(spec))
            containers.append(str(spec.name))
            made[name]["port"] = port
            made[name]["label"] = label
            _record(name, {"image": name, "engine": "podman", "size_bytes": built.size_bytes,
                           "build_seconds": round(built.seconds, 1), "torch": made[name]["torch"]})  # fmt: skip
        for name, model in made.items():  # both containers are up now: ask each in turn
            answer = _infer(model["port"], model["label"], model["rows"])
            flat = [value for row in model["expected"] for value in row]
            assert answer == pytest.approx(flat, rel=1e-5, abs=1e-6), name
    finally:
        for container in containers:
            podman.run("rm", "--force", container, check=False)
        for name in TORCH_CPU:
            podman.remove_image(catalog.get(name).reference)  # 1 and 5 GB: measured, then gone


def _infer(port: int, model: str, rows: list[list[float]]) -> list[float]:
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:  # ready first: metadata answers while the model still loads, and infer is 503 until then
            with urllib.request.urlopen(f"{base}/v2/models/{model}/ready", timeout=5):
                pass
            with urllib.request.urlopen(f"{base}/v2/models/{model}", timeout=5) as response:
                meta = json.loads(response.read())
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    # A TorchScript archive records no input dtype or shape, so the metadata lists no inputs (V2 metadata
    # needs both); its forward() argument is nn.Sequential's "input".
    name = meta["inputs"][0]["name"] if meta["inputs"] else "input"
    tensor = {"name": name, "shape": [len(rows), 4], "datatype": "FP32",
              "data": [value for row in rows for value in row]}  # fmt: skip
    request = urllib.request.Request(f"{base}/v2/models/{model}/infer", data=json.dumps({"inputs": [tensor]}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        data: list[float] = json.loads(response.read())["outputs"][0]["data"]
        return data
