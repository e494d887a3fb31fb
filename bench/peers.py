"""Virtual environments for the peer servers, under ``.cache/peers/<name>`` (relative to the repository).

Each peer gets its own venv with the peer pinned and scikit-learn, joblib and numpy at the versions of the
Python running this script (the project venv), so every server loads the same model with the same library.
A venv is reused when its Python can import the peer; otherwise it is (re)created.

    python bench/peers.py            # create or check every peer venv
    python bench/peers.py mlserver   # just one
"""

from __future__ import annotations

import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / ".cache" / "peers"
INSTALL_TIMEOUT_S = 900


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    requirements: tuple[str, ...]
    probe: str  # a module whose import proves the venv works

    @property
    def python(self) -> Path:
        return PEERS_DIR / self.name / "bin" / "python"


PEERS = {
    p.name: p
    for p in (
        Peer("azmlinfsrv", ("azureml-inference-server-http==1.5.1",), "azureml_inference_server_http"),
        # uvloop 0.22 raises in asyncio.get_event_loop() where MLServer 1.7.1's parallel workers call it
        # (each worker dies at start, every model fails to load); 0.21 is the release MLServer 1.7.1 shipped with.
        Peer("mlserver", ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"), "mlserver_sklearn"),
        # MLflow's own scoring server (`mlflow models serve`, FastAPI on uvicorn) and MLServer's MLflow runtime,
        # for the mlflow suite; cloudpickle loads the suite's model whatever mlflow each one brings.
        Peer("mlflow", ("mlflow==3.17.2", "cloudpickle"), "mlflow.pyfunc.scoring_server"),
        Peer(
            "mlserver-mlflow",
            ("mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop<0.22", "cloudpickle"),
            "mlserver_mlflow",
        ),
        # prebake and the floor, from this checkout, with only what an sklearn image ships: the project venv
        # also holds the test tools (pandas among them, which scikit-learn then imports: +0.6 s, +40 MB).
        Peer("prebake", ("-e", str(ROOT), "starlette", "uvloop", "httptools"), "prebake.cli"),
        # KServe 0.21's model server; its sklearn server (python/sklearnserver in the KServe repository) is not
        # on PyPI, so bench/apps/kserve_sklearn.py is the same thin kserve.Model around joblib, written here.
        Peer("kserve", ("kserve==0.21.0",), "kserve"),
        # MLServer's Hugging Face runtime (transformers pipelines). torch pinned to the CPU wheel in PIP_FIND_LINKS
        # where the machine has one: PyPI's Linux torch is a CUDA build of several GB.
        Peer(
            "mlserver-hf",
            # transformers 4.41: mlserver-huggingface 1.7.1 imports pipelines.Conversation, gone in 4.42.
            (
                "mlserver==1.7.1",
                "mlserver-huggingface==1.7.1",
                "uvloop<0.22",
                "torch==2.13.0",
                "transformers==4.41.2",
            ),
            "mlserver_huggingface",
        ),
    )
}


def _same_as_here() -> tuple[str, ...]:
    from importlib.metadata import version

    return tuple(f"{dist}=={version(dist)}" for dist in ("scikit-learn", "joblib", "numpy"))


# optimum 1.27 (mlserver-huggingface 1.7.1 imports it at start) imports TorchScript-exporter helpers from
# torch.onnx.symbolic_opset14, which torch 2.13 moved to torch.onnx._internal.torchscript_exporter. They serve
# ONNX export only, never a pipeline's inference; this .pth file points the old names at the new home, in
# the mlserver-hf venv only, so MLServer's Hugging Face runtime starts with the one CPU torch this machine has.
OPTIMUM_SHIM = (
    "import importlib.util, sys; "
    "exec('try:\\n import torch.onnx.symbolic_opset14 as o, torch.onnx._internal.torchscript_exporter."
    "symbolic_opset14 as n\\n for k in dir(n):\\n  hasattr(o, k) or setattr(o, k, getattr(n, k))\\n"
    "except Exception:\\n pass') if importlib.util.find_spec('optimum') else None\n"
)


def add_optimum_shim(peer: Peer) -> None:
    site = next((PEERS_DIR / peer.name / "lib").glob("python3*/site-packages"))
    (site / "zz_prebake_optimum_shim.pth").write_text(OPTIMUM_SHIM)


def works(peer: Peer) -> bool:
    if not peer.python.exists():
        return False
    probe = subprocess.run(
        [str(peer.python), "-c", f"import {peer.probe}"], capture_output=True, timeout=120, check=False
    )
    return probe.returncode == 0


def ensure(peer: Peer, log: Path | None = None) -> Path:
    """Return the peer venv's Python, creating the venv first if needed. Raises ``RuntimeError`` on failure."""
    if works(peer):
        return peer.python
    venv.EnvBuilder(with_pip=True, clear=True).create(PEERS_DIR / peer.name)
    log = log or PEERS_DIR / f"{peer.name}.install.log"
    with log.open("w") as out:
        result = subprocess.run(
            [str(peer.python), "-m", "pip", "install", "--no-input", *peer.requirements, *_same_as_here()],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    if peer.name == "mlserver-hf":
        add_optimum_shim(peer)
    if result.returncode != 0 or not works(peer):
        raise RuntimeError(f"installing {peer.name} failed, see {log}")
    return peer.python


def installed_version(peer: Peer, dist: str) -> str:
    out = subprocess.run(
        [str(peer.python), "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    for name in sys.argv[1:] or ["azmlinfsrv", "mlserver"]:
        try:
            print(name, ensure(PEERS[name]))
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(name, "FAILED:", error)
