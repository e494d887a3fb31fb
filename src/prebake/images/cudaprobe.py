"""Run inside a GPU image: load every CUDA library the image carries and say which loaded.

    podman run --rm --entrypoint python3 IMAGE -m prebake.images.cudaprobe [--device-check]

Every shared object of the nvidia-* wheels (site-packages/nvidia/*/lib) is opened with dlopen, and the
framework's own CUDA code (torch's libtorch_cuda through ``import torch``, onnxruntime's CUDA provider
library, TensorFlow's build information) is loaded the way it loads at serving time. Without a GPU this
still proves the image is complete: a missing or mismatched library fails here, at once, naming the file.
Objects that need the NVIDIA driver itself (libcuda.so.1, libnvidia-ml.so.1, which the host provides and
no image should carry) are reported apart: they can only load on a machine with a GPU. So are optional
transport plugins that link a cluster interconnect's libraries (MPI, UCX, InfiniBand), which load only
where that fabric is installed and configured.

Prints one JSON object; exit status 0 when nothing failed but for want of the driver.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import sys
import sysconfig
from pathlib import Path
from typing import Any

DRIVER_LIBRARIES = ("libcuda.so", "libnvidia-ml.so")
# Optional plugins of the CUDA wheels that link a cluster interconnect's own libraries (NVSHMEM's MPI, PMIx,
# OpenSHMEM, libfabric, UCX and InfiniBand transports; cuFile's RDMA): NVSHMEM and cuFile dlopen them only
# when that transport is configured, and no inference image carries a host's fabric stack (found so in
# torch 2.14.1's wheels: 8 of 47 objects, while torch itself and every other library loaded).
INTERCONNECT_LIBRARIES = ("libmlx5.so", "libibverbs.so", "librdmacm.so", "libmpi.so", "libpmix.so",
                          "liboshmem.so", "libfabric.so", "libucs.so", "libucp.so")  # fmt: skip


def _needs_driver(message: str) -> bool:
    return any(name in message for name in DRIVER_LIBRARIES)


def _needs_interconnect(message: str) -> bool:
    return any(name in message for name in INTERCONNECT_LIBRARIES)


def nvidia_libraries() -> list[Path]:
    site = Path(sysconfig.get_paths()["purelib"])
    return sorted(path for path in (site / "nvidia").glob("*/lib/*.so*") if path.is_file())


def load_all(paths: list[Path]) -> tuple[list[str], dict[str, str]]:
    """dlopen each path (RTLD_GLOBAL, so later ones find earlier ones), retrying failures until no pass
    loads more; (loaded names, {name: error} of those that never loaded)."""
    loaded: list[str] = []
    pending = list(paths)
    errors: dict[str, str] = {}
    while pending:
        failed = []
        for path in pending:
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                loaded.append(path.name)
            except OSError as error:
                errors[path.name] = str(error)
                failed.append(path)
        if len(failed) == len(pending):
            break
        pending = failed
    return loaded, {path.name: errors[path.name] for path in pending}


def framework_check() -> dict[str, Any]:
    """Load the framework's CUDA code as serving does; what it says of its CUDA build and of the device."""
    if importlib.util.find_spec("torch"):
        import torch

        return {"framework": "torch", "version": torch.__version__, "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(), "device_available": torch.cuda.is_available()}  # fmt: skip
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime as ort

        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()
        provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
        found: dict[str, Any] = {"framework": "onnxruntime", "version": ort.__version__,
                                 "providers": ort.get_available_providers(), "cuda_provider_library": provider.name}  # fmt: skip
        try:
            ctypes.CDLL(str(provider))  # the CUDA provider with every library it links
        except OSError as error:
            if not _needs_driver(str(error)):
                raise
            # The provider links libcuda.so.1 itself: every other library it needs loaded above.
            found["cuda_provider_needs_driver"] = str(error)
        return found
    if importlib.util.find_spec("tensorflow"):
        import tensorflow as tf

        info = tf.sysconfig.get_build_info()
        return {"framework": "tensorflow", "version": tf.__version__, "cuda": info.get("cuda_version"),
                "cudnn": info.get("cudnn_version"),
                "device_available": bool(tf.config.list_physical_devices("GPU"))}  # fmt: skip
    return {"framework": None}


def main() -> int:
    paths = nvidia_libraries()
    loaded, failed = load_all(paths)
    driver = {name: error for name, error in failed.items() if _needs_driver(error)}
    fabric = {
        name: error for name, error in failed.items() if name not in driver and _needs_interconnect(error)
    }
    broken = {name: error for name, error in failed.items() if name not in driver and name not in fabric}
    report: dict[str, Any] = {"libraries": len(paths), "loaded": len(loaded), "needs_driver": sorted(driver),
                              "needs_interconnect": sorted(fabric), "failed": broken}  # fmt: skip
    try:
        report["framework"] = framework_check()
    except Exception as error:  # the one place a probe reports any failure instead of raising it
        report["framework_error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(report))
    return 1 if broken or "framework_error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
